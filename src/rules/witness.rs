//! Witness refs: `refs/mvault/witness/<name>` holds the cosignatures of
//! witness `<name>`, and only that witness may move it.
//!
//! Checks, in order:
//! 1. (rule 95) the pusher is the witness the ref names, and the policy in
//!    force grants that user the auditor role on `**` with an unexpired
//!    key — stops anyone else writing a cosignature in a witness's name,
//!    and a former witness signing on;
//! 2. (rule 96) the commit is the child of the ref's previous value (none
//!    for the first), holds a canonical checkpoint signed by one of the
//!    witness's keys, names that witness, and does not go back to an
//!    earlier receipt than the witness's previous checkpoint — stops
//!    forged, replayed or rewound cosignatures;
//! 3. (rule 97) the receipt the checkpoint names is in the server's own
//!    receipt chain, with the same hash, commit and decision-log head —
//!    stops a cosignature of a chain this server never wrote (a fork shown
//!    to the witness alone).

use time::OffsetDateTime;

use crate::crypto;
use crate::model::policy::Policy;
use crate::model::receipt::RECEIPTS_REF;
use crate::model::witness::{parse_witness_ref, Checkpoint, CHECKPOINT_FILE, WITNESS_NAMESPACE};
use crate::rules::receipts::read_receipt;
use crate::rules::{escape, source, Accepted, ObjectSource, Refusal, Rule};
use crate::store::objects::ObjectId;

/// A cosignature commit, read and its signature checked (against no
/// particular key: the caller knows whose it must be).
#[derive(Debug, Clone)]
pub struct Cosignature {
    pub checkpoint: Checkpoint,
    /// The key whose signature over the checkpoint verifies.
    pub signer: ssh_key::PublicKey,
    pub parents: Vec<ObjectId>,
}

/// Read the cosignature in commit `id`; `Err` says what is wrong with it.
pub fn read_cosignature(src: &dyn ObjectSource, id: ObjectId) -> Result<Cosignature, String> {
    let c = source::commit(src, id).map_err(|e| e.to_string())?;
    let read = |path: &str| {
        source::read_path(src, c.tree, path)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no {path} in commit {id}"))
    };
    let bytes = read(CHECKPOINT_FILE)?;
    let sig = read(&format!("{CHECKPOINT_FILE}.sig"))?;
    let signer = crypto::verify_signature(&sig, WITNESS_NAMESPACE, &bytes)
        .map_err(|e| format!("{CHECKPOINT_FILE}.sig: {e}"))?;
    let checkpoint = Checkpoint::parse(&bytes).map_err(|e| format!("{CHECKPOINT_FILE}: {e}"))?;
    Ok(Cosignature {
        checkpoint,
        signer,
        parents: c.parents,
    })
}

/// Whether `sig` is witness `name`'s own: a key of that policy user signed
/// it and it names that witness.
pub fn signed_by_witness(policy: &Policy, name: &str, sig: &Cosignature) -> Result<(), String> {
    let by = policy.user_of_key(&sig.signer).map(|u| u.name.as_str());
    if by != Some(name) {
        return Err(format!(
            "signed by {}, not by a key of {}",
            by.map(escape).unwrap_or_else(|| format!(
                "a key no policy user holds ({})",
                crypto::fingerprint(&sig.signer)
            )),
            escape(name)
        ));
    }
    if sig.checkpoint.witness != name {
        return Err(format!(
            "the checkpoint names witness {}",
            escape(&sig.checkpoint.witness)
        ));
    }
    Ok(())
}

/// Judge an update of a witness ref to `new` (from `old`), pushed by
/// `pusher` under `policy` at `now`.
pub fn judge_witness(
    src: &dyn ObjectSource,
    policy: &Policy,
    refname: &str,
    old: Option<ObjectId>,
    new: ObjectId,
    pusher: Option<&str>,
    now: OffsetDateTime,
) -> Result<Accepted, Refusal> {
    let Some(name) = parse_witness_ref(refname) else {
        return Err(Refusal::new(
            Rule::UnknownNamespace,
            refname,
            "a witness ref is refs/mvault/witness/<user>",
            "push cosignatures with mvault witness",
        ));
    };
    // 1. Only the witness it names, an auditor on `**`.
    if pusher != Some(name) {
        return Err(Refusal::new(
            Rule::WitnessRef,
            refname,
            format!(
                "pushed by {}, but the ref is witness {}'s",
                pusher
                    .map(escape)
                    .unwrap_or_else(|| "an unknown pusher".into()),
                escape(name)
            ),
            "each witness pushes its own ref with mvault witness",
        ));
    }
    policy.check_witness(name, now).map_err(|d| {
        Refusal::new(
            Rule::WitnessRef,
            refname,
            d.to_string(),
            "ask an admin: mvault policy grant USER --role auditor --models '**'",
        )
    })?;
    // 2. A signed checkpoint, the child of the previous one, not rewound.
    let bad = |detail: String| {
        Refusal::new(
            Rule::BadCosignature,
            refname,
            detail,
            "cosign with mvault witness REMOTE",
        )
    };
    let sig = read_cosignature(src, new).map_err(bad)?;
    let want: Vec<ObjectId> = old.into_iter().collect();
    if sig.parents != want {
        return Err(bad(format!(
            "commit {new} must have exactly the witness's previous cosignature as its parent ({})",
            old.map(|o| o.to_string()).unwrap_or_else(|| "none".into())
        )));
    }
    signed_by_witness(policy, name, &sig).map_err(bad)?;
    let c = &sig.checkpoint;
    if let Some(old) = old {
        let before = read_cosignature(src, old).map_err(|e| Refusal::internal(refname, e))?;
        if c.seq < before.checkpoint.seq || c.unix_time() < before.checkpoint.unix_time() {
            return Err(bad(format!(
                "the checkpoint goes back: receipt {} at {}, after receipt {} at {}",
                c.seq, c.time, before.checkpoint.seq, before.checkpoint.time
            )));
        }
    }
    // 3. The receipt is in the server's chain, as the checkpoint says.
    let unknown = |detail: String| {
        Refusal::new(
            Rule::UnknownReceipt,
            refname,
            detail,
            "fetch refs/mvault/receipts again and re-run mvault witness; if it still differs, the server showed you another chain",
        )
    };
    let mut at = src
        .ref_target(RECEIPTS_REF)
        .map_err(|e| Refusal::internal(refname, e))?;
    while let Some(id) = at {
        let r = read_receipt(src, id).map_err(|e| Refusal::internal(refname, e))?;
        if r.receipt.seq < c.seq {
            break;
        }
        if r.receipt.seq == c.seq {
            if r.hash != c.receipt
                || c.commit.parse::<ObjectId>().ok() != Some(id)
                || r.receipt.decision_log != c.decision_log
            {
                return Err(unknown(format!(
                    "receipt {} here is {} (commit {id}, decision log {}); the checkpoint names {} (commit {}, decision log {})",
                    c.seq, r.hash, r.receipt.decision_log, c.receipt, c.commit, c.decision_log
                )));
            }
            return Ok(Accepted {
                subject: refname.to_owned(),
                what: format!(
                    "cosignature by {} of receipt {} ({})",
                    escape(name),
                    c.seq,
                    c.receipt
                ),
            });
        }
        at = source::commit(src, id)
            .map_err(|e| Refusal::internal(refname, e))?
            .parents
            .first()
            .copied();
    }
    Err(unknown(format!(
        "the server's receipt chain has no receipt {} ({})",
        c.seq, c.receipt
    )))
}
