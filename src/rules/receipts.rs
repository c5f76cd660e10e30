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
