//! Witnesses: an independent party checks the server's receipt chain and
//! the decision log's chain between receipts, then pushes a signed
//! cosignature of a checkpoint; a client counts fresh cosignatures of the
//! chain it sees before it trusts what a stage serves.
//!
//! The witness's last checkpoint per remote is kept in its own clone
//! (`.git/mvault-witness/<digest of the remote>.json`), never taken from
//! the server: a new chain must extend it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::crypto::{Signer, SshIdentity};
use crate::model::manifest::Sha256Digest;
use crate::model::names::ModelName;
use crate::model::policy::Policy;
use crate::model::receipt::{format_time, RECEIPTS_REF};
use crate::model::witness::{
    witness_ref, Checkpoint, CHECKPOINT_FILE, CHECKPOINT_FORMAT, RECEIPT_LOG_FILE,
    WITNESS_NAMESPACE, WITNESS_PREFIX,
};
use crate::rules::receipts::{read_chain, SignedReceipt};
use crate::rules::source;
use crate::rules::witness::{read_cosignature, signed_by_witness};
use crate::store::objects::ObjectId;
use crate::store::{Actor, Store, StoreError};
use crate::vault::Vault;

/// Where fetched receipts and cosignatures are kept in a clone, apart from
/// its own refs.
const FETCHED: &str = "refs/mvault/witnessed/";

/// Why a witness run or a witness requirement failed.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// git, the object store or a file failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The vault's own record could not be read.
    #[error(transparent)]
    Vault(Box<crate::vault::VaultError>),
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The witness may not witness (no auditor role, unknown key, …).
    #[error("{0}")]
    NotAWitness(String),
    /// The server has no receipts to witness, or no server key is pinned.
    #[error("{0}")]
    NoChain(String),
    /// The receipt chain or the decision log's chain is broken, or does
    /// not extend the witness's last checkpoint.
    #[error("{0}")]
    Broken(String),
    /// Fewer fresh cosignatures than required.
    #[error("{0}")]
    TooFewWitnesses(String),
}

impl From<crate::vault::VaultError> for WitnessError {
    fn from(e: crate::vault::VaultError) -> Self {
        WitnessError::Vault(Box::new(e))
    }
}

/// The witness's memory of one remote: its last checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Remembered {
    remote: String,
    seq: u64,
    receipt: String,
    commit: String,
    decision_log: String,
    time: String,
}

/// What a witness run did.
#[derive(Debug, Clone, Serialize)]
pub struct Witnessed {
    pub witness: String,
    pub remote: String,
    /// The receipt cosigned (number and hash).
    pub seq: u64,
    pub receipt: String,
    pub decision_log: String,
    /// Receipts checked in this run (those after the last checkpoint).
    pub checked: u64,
    /// Decision-log lines recomputed in this run.
    pub log_lines: u64,
    /// The cosignature commit pushed to `refs/mvault/witness/<name>`.
    pub cosignature: String,
    pub time: String,
}

/// Fetch the server's receipt chain, record and cosignatures into this
/// clone's `refs/mvault/witnessed/…`.
fn fetch(store: &Store, remote: &str) -> Result<(), WitnessError> {
    let receipts = format!("+{RECEIPTS_REF}:{FETCHED}receipts");
    let witnesses = format!("+{WITNESS_PREFIX}*:{FETCHED}witness/*");
    // Forget cosignatures fetched before: only what the server has now counts.
    if let Ok(old) = store.git(&[
        "for-each-ref",
        "--format=%(refname)",
        &format!("{FETCHED}witness/"),
    ]) {
        for r in old.lines().filter(|l| !l.is_empty()) {
            store.git(&["update-ref", "-d", r])?;
        }
    }
    store
        .git(&["fetch", "-q", "--no-tags", remote, &receipts, &witnesses])
        .map_err(|e| {
            WitnessError::NoChain(format!(
                "cannot fetch {RECEIPTS_REF} from {remote}: {} (does the server write receipts? mvault hook install --server-key)",
                e.to_string().lines().next().unwrap_or("")
            ))
        })?;
    Ok(())
}

/// The receipt chain fetched, oldest first, every receipt signed by the
/// server key `policy` pins.
fn fetched_chain(store: &Store, policy: &Policy) -> Result<Vec<SignedReceipt>, WitnessError> {
    let tip = store
        .ref_target(&format!("{FETCHED}receipts"))?
        .ok_or_else(|| WitnessError::NoChain("the server has no receipts".into()))?;
    let chain = read_chain(store, tip)
        .map_err(|e| WitnessError::Broken(format!("the receipt chain is broken at {e}")))?;
    let Some(key) = &policy.server_key else {
        return Err(WitnessError::NoChain(
            "the policy pins no server key ([server] key): receipts cannot be believed".into(),
        ));
    };
    for r in &chain {
        if r.signer != *key {
            return Err(WitnessError::Broken(format!(
                "receipt {} (commit {}) is signed by {}, not by the server key the policy pins ({})",
                r.receipt.seq,
                r.commit,
                crate::crypto::fingerprint(&r.signer),
                crate::crypto::fingerprint(key)
            )));
        }
    }
    Ok(chain)
}

/// A short, escaped description of a decision-log line, for messages.
fn describe_line(line: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(line).unwrap_or_default();
    let what = v["decision"]
        .as_str()
        .or_else(|| v["event"].as_str())
        .unwrap_or("?");
    let who = v["pusher"]
        .as_str()
        .or_else(|| v["user"].as_str())
        .unwrap_or("?");
    crate::model::text::escape(&format!(
        "{} {what} by {who}",
        v["time"].as_str().unwrap_or("?")
    ))
}

/// Recompute the decision log's chain from `prev`'s head to `r`'s head
/// through the lines `r` carries; the number of lines.
fn check_log_between(
    store: &Store,
    prev: &SignedReceipt,
    r: &SignedReceipt,
) -> Result<u64, WitnessError> {
    let seq = r.receipt.seq;
    let tree = source::commit(store, r.commit)?.tree;
    let lines = source::read_path(store, tree, RECEIPT_LOG_FILE)?.unwrap_or_default();
    let mut at = prev.receipt.decision_log.clone();
    let mut n = 0;
    for (i, line) in lines
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let v: serde_json::Value = serde_json::from_slice(line).unwrap_or_default();
        let got = v["prev"].as_str().unwrap_or("");
        if got != at {
            let after = if i == 0 {
                format!("receipt {} pinned the log at {at}", prev.receipt.seq)
            } else {
                format!("the line before it hashes to {at}")
            };
            return Err(WitnessError::Broken(format!(
                "the decision log's chain breaks between receipt {} and receipt {seq}: line {} of the lines receipt {seq} carries ({}) chains from {got}, but {after}: the decision log was rewritten {}",
                prev.receipt.seq,
                i + 1,
                describe_line(line),
                if i == 0 {
                    format!("at or before the last line receipt {} witnessed", prev.receipt.seq)
                } else {
                    "between these lines".into()
                }
            )));
        }
        at = Sha256Digest::of(line).to_hex();
        n += 1;
    }
    if at != r.receipt.decision_log {
        return Err(WitnessError::Broken(format!(
            "the decision log's chain breaks at receipt {seq}: its lines end at {at}, but it names the head {} ({})",
            r.receipt.decision_log,
            if n == 0 {
                format!("it carries no lines since receipt {}", prev.receipt.seq)
            } else {
                "lines are missing".into()
            }
        )));
    }
    Ok(n)
}

fn state_path(store: &Store, remote: &str) -> PathBuf {
    let digest = Sha256Digest::of(remote.as_bytes()).to_hex();
    store
        .git_dir()
        .join("mvault-witness")
        .join(format!("{}.json", &digest[..16]))
}

/// `mvault witness REMOTE`: check the server's receipt chain (signatures
/// by the pinned server key, prev links, and the decision log's chain
/// between receipts), that it extends this witness's last checkpoint, then
/// push a signed cosignature of its newest receipt.
pub fn witness(
    vault: &Vault,
    remote: &str,
    identity: &SshIdentity,
    now: OffsetDateTime,
) -> Result<Witnessed, WitnessError> {
    let store = &vault.store;
    let policy = vault.policy()?;
    let name = policy
        .user_of_key(identity.public_key())
        .map(|u| u.name.clone())
        .ok_or_else(|| {
            WitnessError::NotAWitness(format!(
                "your key ({}) is no policy user's",
                crate::crypto::fingerprint(identity.public_key())
            ))
        })?;
    policy
        .check_witness(&name, now)
        .map_err(|d| WitnessError::NotAWitness(d.to_string()))?;
    fetch(store, remote)?;
    let chain = fetched_chain(store, &policy)?;
    let tip = chain.last().expect("a chain has a receipt");
    // 1. The chain extends the last checkpoint: same receipt at its number.
    let path = state_path(store, remote);
    let remembered: Option<Remembered> = match std::fs::read(&path) {
        Ok(b) => Some(serde_json::from_slice(&b).map_err(|e| WitnessError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => return Err(WitnessError::Io { path, source }),
    };
    let start = match &remembered {
        None => 0,
        Some(m) => {
            let Some(r) = chain.get(m.seq as usize - 1) else {
                return Err(WitnessError::Broken(format!(
                    "the receipt chain ends at receipt {}, before receipt {} that this witness cosigned at {}: the server rolled its chain back",
                    tip.receipt.seq, m.seq, m.time
                )));
            };
            if r.hash != m.receipt || r.receipt.decision_log != m.decision_log {
                return Err(WitnessError::Broken(format!(
                    "receipt {} is now {} (decision log {}), but this witness cosigned it as {} (decision log {}) at {}: the receipt chain was rewritten",
                    m.seq, r.hash, r.receipt.decision_log, m.receipt, m.decision_log, m.time
                )));
            }
            m.seq as usize - 1
        }
    };
    // 2. The decision log chains from each receipt's head to the next.
    let mut lines = 0;
    for pair in chain[start..].windows(2) {
        lines += check_log_between(store, &pair[0], &pair[1])?;
    }
    // 3. Cosign the newest receipt, on top of this witness's previous cosignature.
    let checkpoint = Checkpoint {
        format: CHECKPOINT_FORMAT.into(),
        witness: name.clone(),
        seq: tip.receipt.seq,
        receipt: tip.hash.clone(),
        commit: tip.commit.to_string(),
        decision_log: tip.receipt.decision_log.clone(),
        server_time: tip.receipt.time.clone(),
        time: format_time(now.unix_timestamp()),
    };
    let bytes = checkpoint.render();
    let sig = identity
        .sign(WITNESS_NAMESPACE, bytes.as_bytes())
        .map_err(|e| WitnessError::NotAWitness(format!("cannot sign: {e}")))?;
    let body = store.write_blob(bytes.as_bytes())?;
    let sig = store.write_blob(sig.as_bytes())?;
    let tree = store.edit_tree(
        None,
        &[
            (CHECKPOINT_FILE.to_owned(), body),
            (format!("{CHECKPOINT_FILE}.sig"), sig),
        ],
    )?;
    let parent = store.ref_target(&format!("{FETCHED}witness/{name}"))?;
    let actor = Actor {
        name: name.clone(),
        time: now.unix_timestamp(),
    };
    let parents: Vec<ObjectId> = parent.into_iter().collect();
    let commit = store.write_signed_commit(
        tree,
        &parents,
        &actor,
        &format!(
            "mvault witness: receipt {} cosigned by {name}\n",
            tip.receipt.seq
        ),
        identity,
    )?;
    let target = witness_ref(&name);
    // `--no-verify`: a client-side pre-push check cannot judge a
    // cosignature (the chain it names is the server's, kept here under
    // refs/mvault/witnessed/); the server's hook does (rules 95–97).
    store
        .git(&[
            "push",
            "-q",
            "--no-verify",
            remote,
            &format!("{commit}:{target}"),
        ])
        .map_err(|e| {
            WitnessError::NotAWitness(format!(
                "the server refused the cosignature on {target}: {}",
                e.to_string().trim()
            ))
        })?;
    // 4. Remember the checkpoint only once the server took it.
    let m = Remembered {
        remote: remote.to_owned(),
        seq: checkpoint.seq,
        receipt: checkpoint.receipt.clone(),
        commit: checkpoint.commit.clone(),
        decision_log: checkpoint.decision_log.clone(),
        time: checkpoint.time.clone(),
    };
    let io = |source| WitnessError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(path.parent().expect("a file in a directory")).map_err(io)?;
    std::fs::write(&path, serde_json::to_vec(&m).expect("serialises")).map_err(io)?;
    Ok(Witnessed {
        witness: name,
        remote: remote.to_owned(),
        seq: checkpoint.seq,
        receipt: checkpoint.receipt,
        decision_log: checkpoint.decision_log,
        checked: (chain.len() - start) as u64,
        log_lines: lines,
        cosignature: commit.to_string(),
        time: checkpoint.time,
    })
}

/// One cosignature a client counted, or why it did not count.
#[derive(Debug, Clone, Serialize)]
pub struct WitnessSeen {
    pub witness: String,
    pub seq: u64,
    pub time: String,
    /// `None`: it counts; else why not.
    pub rejected: Option<String>,
}

/// What a client requires: `count` witnesses, each cosigned no longer than
/// `max_age` seconds ago (none: any age).
#[derive(Debug, Clone, Copy)]
pub struct WitnessRequirement {
    pub count: usize,
    pub max_age: Option<i64>,
}

/// Before trusting what `model`'s stages say: fetch the receipt chain and
/// the cosignatures from `remote`, and count the witnesses (auditors of the
/// policy in force in this clone) whose checkpoint is signed by them, is
/// fresh enough, names a receipt of the very chain this client sees, and
/// is not older than the newest receipt that records a promotion of
/// `model`. Fewer than required is an error that lists each witness.
pub fn require_witnesses(
    vault: &Vault,
    remote: &str,
    model: &ModelName,
    need: WitnessRequirement,
    now: OffsetDateTime,
) -> Result<Vec<WitnessSeen>, WitnessError> {
    let store = &vault.store;
    let policy = vault.policy()?;
    fetch(store, remote)?;
    let chain = fetched_chain(store, &policy)?;
    let prefix = format!("refs/tags/{model}#");
    let promoted = chain
        .iter()
        .rev()
        .find(|r| {
            r.receipt
                .updates
                .iter()
                .any(|u| u.refname.starts_with(&prefix))
        })
        .map(|r| r.receipt.seq)
        .unwrap_or(0);
    let refs = store.git(&[
        "for-each-ref",
        "--format=%(refname) %(objectname)",
        &format!("{FETCHED}witness/"),
    ])?;
    let mut seen = Vec::new();
    for line in refs.lines() {
        let Some((refname, id)) = line.split_once(' ') else {
            continue;
        };
        let name = refname.rsplit('/').next().unwrap_or("").to_owned();
        let Ok(id) = id.parse::<ObjectId>() else {
            continue;
        };
        let judged = judge_seen(
            store,
            &policy,
            &name,
            id,
            &chain,
            promoted,
            need.max_age,
            now,
        );
        seen.push(match judged {
            Ok(c) => WitnessSeen {
                witness: name,
                seq: c.seq,
                time: c.time,
                rejected: None,
            },
            Err((seq, time, why)) => WitnessSeen {
                witness: name,
                seq,
                time,
                rejected: Some(why),
            },
        });
    }
    let good = seen.iter().filter(|s| s.rejected.is_none()).count();
    if good < need.count {
        let list: Vec<String> = seen
            .iter()
            .map(|s| match &s.rejected {
                None => format!(
                    "{} (receipt {}, {}): counts",
                    crate::model::text::escape(&s.witness),
                    s.seq,
                    s.time
                ),
                Some(why) => format!("{}: {why}", crate::model::text::escape(&s.witness)),
            })
            .collect();
        return Err(WitnessError::TooFewWitnesses(format!(
            "{good} of the {} required witness cosignatures of {remote}'s receipt chain{} count{}",
            need.count,
            need.max_age
                .map(|a| format!(" newer than {a} s"))
                .unwrap_or_default(),
            if list.is_empty() {
                ": no witness has cosigned".to_owned()
            } else {
                format!(": {}", list.join("; "))
            }
        )));
    }
    Ok(seen)
}

#[allow(clippy::too_many_arguments)]
fn judge_seen(
    store: &Store,
    policy: &Policy,
    name: &str,
    id: ObjectId,
    chain: &[SignedReceipt],
    promoted: u64,
    max_age: Option<i64>,
    now: OffsetDateTime,
) -> Result<Checkpoint, (u64, String, String)> {
    let sig = read_cosignature(store, id).map_err(|e| (0, String::new(), e))?;
    let c = sig.checkpoint.clone();
    let no = |why: String| (c.seq, c.time.clone(), why);
    policy
        .check_witness(name, now)
        .map_err(|d| no(d.to_string()))?;
    signed_by_witness(policy, name, &sig).map_err(no)?;
    if let Some(age) = max_age {
        if c.unix_time() < now.unix_timestamp() - age {
            return Err(no(format!(
                "its checkpoint is from {}, older than {age} s",
                c.time
            )));
        }
    }
    match chain.get((c.seq as usize).wrapping_sub(1)) {
        Some(r) if r.hash == c.receipt => {}
        Some(r) => {
            return Err(no(format!(
                "it cosigned receipt {} as {}, but this client sees {}: the server shows different chains (a fork)",
                c.seq, c.receipt, r.hash
            )))
        }
        None => {
            return Err(no(format!(
                "it cosigned receipt {}, which the chain this client sees does not reach",
                c.seq
            )))
        }
    }
    if c.seq < promoted {
        return Err(no(format!(
            "it cosigned receipt {}, before receipt {promoted}, which records the newest promotion of this model",
            c.seq
        )));
    }
    Ok(c)
}
