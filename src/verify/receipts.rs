//! The receipt driver of `audit verify`: was every commit of `main` and
//! every tag received under a valid receipt from the pinned server key, and
//! is the receipt chain unbroken?
//!
//! The chain is judged by `rules::receipts::receipt_index` (signatures by
//! the key the policy in force pins, `prev` links, each ref taken from
//! where the previous receipt left it). Then every object is placed:
//!
//! - received: a believed receipt landed it;
//! - before receipts began: a `main` commit at or before `main` as it was
//!   just before the first believed receipt; a tag whose commit is, dated
//!   before that receipt;
//! - otherwise it was placed behind the hook's back (plumbing in the server
//!   repository), or, in a clone, it may be newer than the receipts the
//!   clone has fetched. In the server's repository (it has the decision
//!   log) that is a break; in a clone, `main` commits older than the newest
//!   received one are a break, and newer objects are counted as not yet
//!   covered (`mvault sync` fetches the receipts that cover them).

use crate::audit::events::{AuditBreak, ReceiptSummary};
use crate::model::receipt::RECEIPTS_REF;
use crate::rules::receipts::{receipt_index, ReceiptIndex};
use crate::server::log::LOG_FILE;
use crate::store::objects::{ObjectId, ObjectKind};
use crate::store::{Store, MAIN_REF};

fn receipt_break(object: impl ToString, detail: String) -> AuditBreak {
    AuditBreak {
        object: object.to_string(),
        rule: "not received under a receipt".into(),
        detail,
    }
}

/// Check the receipts against `main` (oldest first) and the tags.
pub fn verify_receipts(
    store: &Store,
    main: &[ObjectId],
    tags: &[(String, ObjectId)],
) -> Result<Option<ReceiptSummary>, AuditBreak> {
    let server_side = store.git_dir().join(LOG_FILE).exists();
    let unreadable = |e: crate::store::StoreError| AuditBreak {
        object: RECEIPTS_REF.into(),
        rule: "receipt chain broken".into(),
        detail: e.to_string(),
    };
    let main_tip = main.last().copied();
    let pinned = main_tip
        .and_then(|t| crate::rules::source::policy_at(store, t).ok())
        .and_then(|p| p.server_key);
    let Some(tip) = store.ref_target(RECEIPTS_REF).map_err(unreadable)? else {
        if pinned.is_some() && server_side {
            return Err(AuditBreak {
                object: RECEIPTS_REF.into(),
                rule: "receipt chain broken".into(),
                detail: "the policy pins a server key but the repository has no receipt chain (deleted, or the post-receive hook never ran)".into(),
            });
        }
        return Ok(pinned.map(|_| ReceiptSummary {
            not_yet_covered: main.len() + tags.len(),
            ..Default::default()
        }));
    };
    let index: ReceiptIndex = receipt_index(store, tip, main_tip).map_err(|b| AuditBreak {
        object: b.object,
        rule: "receipt chain broken".into(),
        detail: b.detail,
    })?;
    let mut s = ReceiptSummary {
        receipts: index.chain.len(),
        believed: index.believed.iter().filter(|b| **b).count(),
        ..Default::default()
    };
    let Some(first) = index.first_believed else {
        s.before_receipts = main.len() + tags.len();
        return Ok(Some(s));
    };
    let began = index.chain[first].receipt.unix_time();
    let ancestor = |a: ObjectId, b: Option<ObjectId>| -> Result<bool, AuditBreak> {
        match b {
            None => Ok(false),
            Some(b) => Ok(a == b || store.is_ancestor(a, b).map_err(unreadable)?),
        }
    };
    // The newest main commit a believed receipt landed.
    let newest_received = main
        .iter()
        .rev()
        .find(|c| index.received.contains_key(*c))
        .copied();
    for c in main {
        if index.received.contains_key(c) {
            s.received += 1;
        } else if ancestor(*c, index.main_before_first)? {
            s.before_receipts += 1;
        } else if server_side || ancestor(*c, newest_received)? {
            return Err(receipt_break(
                c,
                format!(
                    "commit {c} on {MAIN_REF} was not received under any receipt: it was placed in the repository behind the hook's back (plumbing such as git update-ref), or its post-receive hook failed"
                ),
            ));
        } else {
            s.not_yet_covered += 1;
        }
    }
    for (name, id) in tags {
        if index.received.contains_key(id) {
            s.received += 1;
            continue;
        }
        let (target, dated) = match store.object(*id) {
            Ok((ObjectKind::Tag, data)) => match crate::store::objects::parse_tag(&data) {
                Ok(t) => (Some(t.target), t.tagger.map(|p| p.time).unwrap_or(i64::MAX)),
                Err(_) => (None, i64::MAX),
            },
            _ => (None, i64::MAX),
        };
        let before = dated < began
            && match target {
                Some(t) => ancestor(t, index.main_before_first)?,
                None => false,
            };
        if before {
            s.before_receipts += 1;
        } else if server_side {
            return Err(receipt_break(
                name,
                format!(
                    "tag {name} ({id}) was not received under any receipt: it was placed in the repository behind the hook's back, or its post-receive hook failed"
                ),
            ));
        } else {
            s.not_yet_covered += 1;
        }
    }
    // In the server's repository, every ref a believed receipt moved is
    // still where the newest receipt left it.
    if server_side {
        for (name, new) in &index.last {
            if name == MAIN_REF || name == RECEIPTS_REF {
                continue;
            }
            let now = store.ref_target(name).map_err(unreadable)?;
            let want = crate::store::objects::parse_id(new).filter(|id| !id.is_null());
            if now != want {
                return Err(receipt_break(
                    name,
                    format!(
                        "{name} is at {}, but its newest receipt left it at {new}: moved behind the hook's back",
                        now.map(|n| n.to_string()).unwrap_or_else(|| "nothing (deleted)".into())
                    ),
                ));
            }
        }
    }
    Ok(Some(s))
}
