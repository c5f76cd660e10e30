//! Which approvals count for a promotion: decided once, here, for the
//! client that picks them and for every judge that checks them.

use std::collections::BTreeSet;

use serde::Serialize;
use time::OffsetDateTime;

use crate::crypto;
use crate::model::approval::Approval;
use crate::model::names::ModelName;
use crate::model::policy::{Ability, Policy, StageRule};

/// The outcome of counting approvals for one promotion.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApprovalCount {
    /// Approvals that count, one per person.
    pub counted: Vec<Approval>,
    /// Approvals that do not count, with the reason.
    pub rejected: Vec<(String, String)>,
}

/// Who is involved in a promotion, to keep people from approving their own work.
pub struct Parties<'a> {
    pub author: &'a str,
    pub promoter: &'a str,
}

/// Decide which approvals count: valid for this version, stage and
/// manifest, signed by the approver the name says, holding the rule's
/// approver role (or ml_admin) at `now`, not the author or promoter unless
/// the rule allows it, and one per person however many keys they have.
pub fn count_approvals(
    policy: &Policy,
    rule: &StageRule,
    model: &ModelName,
    manifest_sha256: &str,
    parties: &Parties<'_>,
    candidates: Vec<Approval>,
    now: OffsetDateTime,
) -> ApprovalCount {
    let mut out = ApprovalCount::default();
    let mut people = BTreeSet::new();
    for a in candidates {
        let reject = |why: String| (a.name.clone(), why);
        let signer = policy.user_of_key(&a.key);
        let r = match signer {
            None => Err(reject(format!(
                "signed by key {}, which is in no policy entry",
                crypto::fingerprint(&a.key)
            ))),
            Some(u) if u.name != a.user => Err(reject(format!(
                "named for {} but signed by {}",
                a.user, u.name
            ))),
            Some(u) if !u.active_at(now) => Err(reject(format!("{}'s key has expired", u.name))),
            Some(_) if a.manifest_sha256 != manifest_sha256 => Err(reject(format!(
                "binds manifest {}, the version's is {manifest_sha256}",
                a.manifest_sha256
            ))),
            Some(u) if !rule.allow_self_approval && u.name == parties.author => {
                Err(reject(format!(
                    "{} is the version's author; self-approval is not allowed",
                    u.name
                )))
            }
            Some(u) if !rule.allow_self_approval && u.name == parties.promoter => Err(reject(
                format!("{} is the promoter; self-approval is not allowed", u.name),
            )),
            Some(u) => {
                if policy
                    .check_role(&u.name, model, rule.approver_role, Ability::Approve, now)
                    .is_ok()
                {
                    if people.insert(u.name.clone()) {
                        Ok(())
                    } else {
                        Err(reject(format!(
                            "{} already counted once; approvals are one per person",
                            u.name
                        )))
                    }
                } else {
                    Err(reject(format!(
                        "{} does not hold {} on {model}",
                        u.name, rule.approver_role
                    )))
                }
            }
        };
        match r {
            Ok(()) => out.counted.push(a),
            Err(e) => out.rejected.push(e),
        }
    }
    out
}
