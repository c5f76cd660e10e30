//! Reading the server's receipts and timestamp back: each a commit whose
//! tree holds the canonical file and its SSH signature. What is read here
//! is only parsed and its signature checked; whether the signer is the key
//! the policy pins is for the caller, who knows which policy is in force.

use ssh_key::PublicKey;

use crate::crypto;
use crate::model::receipt::{
    zero_hash, Receipt, Timestamp, RECEIPT_FILE, RECEIPT_NAMESPACE, TIMESTAMP_FILE,
    TIMESTAMP_NAMESPACE,
};
use crate::rules::{source, ObjectSource};
use crate::store::objects::ObjectId;

/// A receipt as found in the repository, its signature checked.
#[derive(Debug, Clone)]
pub struct SignedReceipt {
    /// The receipt commit on `refs/mvault/receipts`.
    pub commit: ObjectId,
    pub receipt: Receipt,
    /// SHA-256 of the receipt file.
    pub hash: String,
    /// The key whose signature over the file verifies.
    pub signer: PublicKey,
}

/// A receipt or timestamp that cannot be believed, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{object}: {detail}")]
pub struct ReceiptBreak {
    /// The commit (or ref) at fault.
    pub object: String,
    pub detail: String,
}

fn broken(object: impl ToString, detail: impl Into<String>) -> ReceiptBreak {
    ReceiptBreak {
        object: object.to_string(),
        detail: detail.into(),
    }
}

/// The signed file `name` of commit `id`: its bytes and the key that signed it.
fn signed_file(
    src: &dyn ObjectSource,
    id: ObjectId,
    name: &str,
    namespace: &str,
) -> Result<(Vec<u8>, PublicKey), ReceiptBreak> {
    let c = source::commit(src, id).map_err(|e| broken(id, e.to_string()))?;
    let read = |path: &str| {
        source::read_path(src, c.tree, path)
            .map_err(|e| broken(id, e.to_string()))?
            .ok_or_else(|| broken(id, format!("no {path} in the commit's tree")))
    };
    let bytes = read(name)?;
    let sig = read(&format!("{name}.sig"))?;
    let signer = crypto::verify_signature(&sig, namespace, &bytes)
        .map_err(|e| broken(id, format!("{name}.sig: {e}")))?;
    Ok((bytes, signer))
}

/// One receipt commit, parsed and its signature checked.
pub fn read_receipt(src: &dyn ObjectSource, id: ObjectId) -> Result<SignedReceipt, ReceiptBreak> {
    let (bytes, signer) = signed_file(src, id, RECEIPT_FILE, RECEIPT_NAMESPACE)?;
    let receipt = Receipt::parse(&bytes).map_err(|e| broken(id, format!("{RECEIPT_FILE}: {e}")))?;
    Ok(SignedReceipt {
        commit: id,
        hash: receipt.hash(),
        receipt,
        signer,
    })
}

/// The timestamp commit, parsed and its signature checked.
pub fn read_timestamp(
    src: &dyn ObjectSource,
    id: ObjectId,
) -> Result<(Timestamp, PublicKey), ReceiptBreak> {
    let (bytes, signer) = signed_file(src, id, TIMESTAMP_FILE, TIMESTAMP_NAMESPACE)?;
    let t = Timestamp::parse(&bytes).map_err(|e| broken(id, format!("{TIMESTAMP_FILE}: {e}")))?;
    Ok((t, signer))
}

/// The whole chain ending at `tip`, oldest first, each link checked: a
/// receipt's `prev` is the hash of the one before it (zeros for the
/// first), its `seq` one more, its time not earlier, and its commit's only
/// parent is the previous receipt's commit.
pub fn read_chain(
    src: &dyn ObjectSource,
    tip: ObjectId,
) -> Result<Vec<SignedReceipt>, ReceiptBreak> {
    let mut back = Vec::new();
    let mut at = Some(tip);
    while let Some(id) = at {
        let r = read_receipt(src, id)?;
        let c = source::commit(src, id).map_err(|e| broken(id, e.to_string()))?;
        at = match c.parents.as_slice() {
            [] => None,
            [p] => Some(*p),
            _ => return Err(broken(id, "a receipt commit has one parent at most")),
        };
        back.push(r);
    }
    back.reverse();
    let mut prev: Option<&SignedReceipt> = None;
    for r in &back {
        let (want_prev, want_seq) = match prev {
            None => (zero_hash(), 1),
            Some(p) => (p.hash.clone(), p.receipt.seq + 1),
        };
        if r.receipt.prev != want_prev {
            return Err(broken(
                r.commit,
                format!(
                    "receipt {} names prev {}, but the receipt before it hashes to {want_prev} (the chain was cut or rewritten)",
                    r.receipt.seq, r.receipt.prev
                ),
            ));
        }
        if r.receipt.seq != want_seq {
            return Err(broken(
                r.commit,
                format!("receipt numbered {}, expected {want_seq}", r.receipt.seq),
            ));
        }
        if let Some(p) = prev {
            if r.receipt.unix_time() < p.receipt.unix_time() {
                return Err(broken(
                    r.commit,
                    format!(
                        "receipt {} is dated {}, before receipt {} ({})",
                        r.receipt.seq, r.receipt.time, p.receipt.seq, p.receipt.time
                    ),
                ));
            }
        }
        prev = Some(r);
    }
    Ok(back)
}

/// When a believed receipt landed an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub seq: u64,
    /// The server's time, unix seconds.
    pub time: i64,
}

/// The receipt chain as the policy in force believes it.
#[derive(Debug, Clone, Default)]
pub struct ReceiptIndex {
    pub chain: Vec<SignedReceipt>,
    /// Per receipt: whether the policy in force pinned a key (and the
    /// receipt is signed by it). A receipt under no pinned key is "before
    /// receipts began" (or after they were unpinned): not believed.
    pub believed: Vec<bool>,
    /// The first believed receipt.
    pub first_believed: Option<usize>,
    /// `main` just before the first believed receipt, when known.
    pub main_before_first: Option<ObjectId>,
    /// Every object a believed receipt landed: the commits of each `main`
    /// update, the tag, payload tree or counter each other update points at.
    pub received: std::collections::BTreeMap<ObjectId, Received>,
    /// Per ref, what the newest receipt (believed or not) moved it to.
    pub last: std::collections::BTreeMap<String, String>,
}

/// Read the chain from `tip` and judge each receipt by the policy in force
/// as its own push left `main` (so the push that pins a key is the first
/// receipt it vouches for): signed by the pinned key, and each ref it
/// moves taken from where the previous receipt left it. The first break
/// is returned.
pub fn receipt_index(
    src: &dyn ObjectSource,
    tip: ObjectId,
    main_tip: Option<ObjectId>,
) -> Result<ReceiptIndex, ReceiptBreak> {
    use crate::store::MAIN_REF;
    let chain = read_chain(src, tip)?;
    let main_update = |r: &SignedReceipt| {
        r.receipt
            .updates
            .iter()
            .find(|u| u.refname == MAIN_REF)
            .cloned()
    };
    let mut main_at = chain
        .iter()
        .find_map(main_update)
        .map(|u| crate::store::objects::parse_id(&u.old).filter(|id| !id.is_null()))
        .unwrap_or(main_tip);
    let mut index = ReceiptIndex::default();
    let mut keys: std::collections::BTreeMap<ObjectId, Option<PublicKey>> = Default::default();
    for r in &chain {
        let before = main_at;
        if let Some(u) = main_update(r) {
            main_at = u.new_id();
        }
        let key = match main_at {
            None => None,
            Some(m) => match keys.get(&m) {
                Some(k) => k.clone(),
                None => {
                    let k = source::policy_at(src, m).ok().and_then(|p| p.server_key);
                    keys.insert(m, k.clone());
                    k
                }
            },
        };
        let believed = match &key {
            None => false,
            Some(k) if k.key_data() == r.signer.key_data() => true,
            Some(k) => {
                return Err(broken(
                    r.commit,
                    format!(
                    "receipt {} is signed by {}, but the policy in force pins the server key {}",
                    r.receipt.seq,
                    crypto::fingerprint(&r.signer),
                    crypto::fingerprint(k)
                ),
                ))
            }
        };
        if believed && index.first_believed.is_none() {
            index.first_believed = Some(index.believed.len());
            index.main_before_first = before;
        }
        for u in &r.receipt.updates {
            if believed {
                if let Some(prev) = index.last.get(&u.refname) {
                    if *prev != u.old {
                        return Err(broken(
                            &u.old,
                            format!(
                                "{} moved from {prev} to {} outside any receipt (receipt {} starts from it): placed behind the hook's back",
                                u.refname, u.old, r.receipt.seq
                            ),
                        ));
                    }
                }
                let at = Received {
                    seq: r.receipt.seq,
                    time: r.receipt.unix_time(),
                };
                if u.refname == MAIN_REF {
                    let stop = crate::store::objects::parse_id(&u.old).filter(|id| !id.is_null());
                    let mut c = u.new_id();
                    while let Some(id) = c.filter(|id| Some(*id) != stop) {
                        index.received.entry(id).or_insert(at);
                        c = source::commit(src, id)
                            .map_err(|e| broken(id, e.to_string()))?
                            .parents
                            .first()
                            .copied();
                    }
                } else if let Some(id) = u.new_id() {
                    index.received.entry(id).or_insert(at);
                }
            }
            index.last.insert(u.refname.clone(), u.new.clone());
        }
        index.believed.push(believed);
    }
    index.chain = chain;
    Ok(index)
}
