//! Freshness: whether what the server serves now is at least as new as
//! what this clone has seen, and new enough.
//!
//! The clone remembers the newest receipt chain and timestamp it has
//! believed as its own `refs/mvault/receipts` and `refs/mvault/timestamp`
//! (a `pull --from` cache is a repository of its own, one per server URL).
//! On every fetch, when the policy of the server's `main` pins a server key:
//!
//! 1. the server's timestamp is signed by that key (else refused);
//! 2. it names the receipt chain's head the server serves, and that head is
//!    signed by the key too (mix-and-match: a fresh timestamp over an old
//!    chain, or a chain from elsewhere);
//! 3. the served chain contains the one the clone has seen, and the
//!    timestamp is not older than the one it has seen (rollback);
//! 4. the served `main` is the one the newest receipt that moved `main`
//!    names (rollback or freeze of `main` alone, or a `main` moved behind
//!    the hook's back);
//! 5. with `--max-age`, the timestamp is no older than that (freeze).
//!
//! Only then are the clone's memory refs moved, in the same ref
//! transaction as the rest of the fetch.

use ssh_key::PublicKey;

use crate::model::receipt::{RECEIPTS_REF, TIMESTAMP_REF};
use crate::rules::receipts::{read_receipt, read_timestamp};
use crate::store::{ObjectId, RefUpdate, MAIN_REF};
use crate::vault::{Vault, VaultError};

/// How far back along the receipt chain the check looks for the newest
/// receipt that moved `main`.
const MAIN_LOOKBACK: usize = 1000;

/// How old the server's timestamp may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxAge {
    /// Seconds.
    pub seconds: i64,
    /// Given by the user (`--max-age`): a vault that pins no server key
    /// cannot satisfy it. A default applies only where a key is pinned.
    pub explicit: bool,
}

/// The default `--max-age` of `pull --from`: 24 hours.
pub const DEFAULT_PULL_FROM_MAX_AGE: i64 = 24 * 3600;

/// What the server served, fetched into scratch refs.
pub(super) struct Served {
    pub main: Option<ObjectId>,
    pub receipts: Option<ObjectId>,
    pub timestamp: Option<ObjectId>,
}

fn pinned_key(vault: &Vault, main: Option<ObjectId>) -> Option<PublicKey> {
    let main = main?;
    crate::rules::source::policy_at(&vault.store, main)
        .ok()?
        .server_key
}

/// Check what the server served against what the clone has seen; the ref
/// updates that remember it, when believed.
pub(super) fn check(
    vault: &Vault,
    remote: &str,
    served: &Served,
    max_age: Option<MaxAge>,
    now: i64,
) -> Result<Vec<RefUpdate>, VaultError> {
    let seen_receipts = vault.store.ref_target(RECEIPTS_REF)?;
    let seen_stamp = vault.store.ref_target(TIMESTAMP_REF)?;
    let rollback = |detail: String| VaultError::Rollback {
        remote: remote.to_owned(),
        detail,
    };
    let unbelieved = |detail: String| VaultError::ReceiptNotBelieved {
        remote: remote.to_owned(),
        detail,
    };
    let Some(key) = pinned_key(vault, served.main) else {
        if let Some(m) = max_age.filter(|m| m.explicit) {
            return Err(unbelieved(format!(
                "--max-age {} cannot be checked: the vault's policy pins no server key ([server] key), so no timestamp is believed",
                human_age(m.seconds)
            )));
        }
        // Receipts are kept for the audit, but nothing is believed of them.
        let mut edits = Vec::new();
        if let Some(r) = served.receipts {
            let forward = match seen_receipts {
                None => true,
                Some(s) => s != r && vault.store.is_ancestor(s, r)?,
            };
            if forward {
                edits.push(remember(RECEIPTS_REF, seen_receipts, r));
            }
        }
        return Ok(edits);
    };
    // 1.
    let Some(stamp_id) = served.timestamp else {
        return Err(unbelieved(format!(
            "the vault pins a server key but the server serves no signed timestamp ({TIMESTAMP_REF})"
        )));
    };
    let (stamp, signer) = read_timestamp(&vault.store, stamp_id)
        .map_err(|e| unbelieved(format!("the server's timestamp: {e}")))?;
    if signer.key_data() != key.key_data() {
        return Err(unbelieved(format!(
            "the server's timestamp is signed by {}, not by the pinned server key {}",
            crate::crypto::fingerprint(&signer),
            crate::crypto::fingerprint(&key)
        )));
    }
    // 2.
    let head = match served.receipts {
        None if stamp.seq == 0 => None,
        None => {
            return Err(rollback(format!(
                "the timestamp names receipt {} but the server serves no receipt chain ({RECEIPTS_REF})",
                stamp.seq
            )))
        }
        Some(id) => {
            let r = read_receipt(&vault.store, id)
                .map_err(|e| unbelieved(format!("the newest receipt: {e}")))?;
            if r.signer.key_data() != key.key_data() {
                return Err(unbelieved(format!(
                    "receipt {} is signed by {}, not by the pinned server key {}",
                    r.receipt.seq,
                    crate::crypto::fingerprint(&r.signer),
                    crate::crypto::fingerprint(&key)
                )));
            }
            if r.hash != stamp.receipt || r.receipt.seq != stamp.seq {
                return Err(rollback(format!(
                    "the timestamp names receipt {} ({}), but the server serves receipt {} ({}): they do not belong together",
                    stamp.seq, stamp.receipt, r.receipt.seq, r.hash
                )));
            }
            Some(r)
        }
    };
    // 3.
    if let Some(seen) = seen_receipts {
        let served_id = head.as_ref().map(|h| h.commit);
        let contains = match served_id {
            Some(s) => s == seen || vault.store.is_ancestor(seen, s)?,
            None => false,
        };
        if !contains {
            let seen_seq = read_receipt(&vault.store, seen)
                .map(|r| r.receipt.seq.to_string())
                .unwrap_or_else(|_| seen.to_string());
            return Err(rollback(format!(
                "rollback: the server serves receipt {} but this clone has seen receipt {seen_seq}, which the served chain does not contain",
                head.as_ref()
                    .map(|h| h.receipt.seq.to_string())
                    .unwrap_or_else(|| "none".into())
            )));
        }
    }
    if let Some(seen) = seen_stamp {
        if let Ok((old, _)) = read_timestamp(&vault.store, seen) {
            if stamp.unix_time() < old.unix_time() {
                return Err(rollback(format!(
                    "rollback: the server's timestamp ({}) is older than one this clone has seen ({})",
                    stamp.time, old.time
                )));
            }
        }
    }
    // 4.
    if let (Some(h), Some(main)) = (&head, served.main) {
        let mut at = Some(h.commit);
        for _ in 0..MAIN_LOOKBACK {
            let Some(id) = at else { break };
            let r = read_receipt(&vault.store, id)
                .map_err(|e| unbelieved(format!("receipt chain: {e}")))?;
            if let Some(u) = r.receipt.updates.iter().find(|u| u.refname == MAIN_REF) {
                if u.new_id() != Some(main) {
                    return Err(rollback(format!(
                        "the server serves main at {main}, but its receipt {} says main moved to {}",
                        r.receipt.seq, u.new
                    )));
                }
                break;
            }
            at = vault.store.commit_parents(id)?.first().copied();
        }
    }
    // 5.
    if let Some(m) = max_age {
        let age = now - stamp.unix_time();
        if age > m.seconds {
            return Err(VaultError::Frozen {
                remote: remote.to_owned(),
                time: stamp.time.clone(),
                age: human_age(age),
                max_age: human_age(m.seconds),
            });
        }
    }
    let mut edits = Vec::new();
    if let Some(h) = head.filter(|h| Some(h.commit) != seen_receipts) {
        edits.push(remember(RECEIPTS_REF, seen_receipts, h.commit));
    }
    if Some(stamp_id) != seen_stamp {
        edits.push(remember(TIMESTAMP_REF, seen_stamp, stamp_id));
    }
    Ok(edits)
}

fn remember(name: &str, expected: Option<ObjectId>, new: ObjectId) -> RefUpdate {
    RefUpdate {
        name: name.to_owned(),
        expected,
        new: Some(new),
        reason: "mvault: the newest receipts seen from the server".into(),
    }
}

/// `90s`, `15m`, `3h`, `2d`: how `--max-age` is written.
pub fn human_age(seconds: i64) -> String {
    match seconds {
        s if s % 86_400 == 0 && s != 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 && s != 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 && s != 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Parse `--max-age`: a number with a unit, `s`, `m`, `h` or `d`.
pub fn parse_max_age(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let (n, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: i64 = n
        .parse()
        .map_err(|_| format!("{text:?}: a number with a unit (90s, 15m, 24h, 7d)"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "{text:?}: the unit is s, m, h or d (90s, 15m, 24h, 7d)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{text:?}: too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_reads_units_and_prints_back() {
        assert_eq!(parse_max_age("24h"), Ok(86_400));
        assert_eq!(parse_max_age("90s"), Ok(90));
        assert_eq!(human_age(86_400), "1d");
        assert_eq!(human_age(5400), "90m");
        assert!(parse_max_age("24").is_err());
        assert!(parse_max_age("h").is_err());
    }
}
