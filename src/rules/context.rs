//! What a judgement depends on besides the object: the root keys, the
//! clock, the pusher, and which commits are on `main`. This is also the one
//! place that decides which policy and which time judge each object:
//!
//! - a commit is judged by the policy of its parent (the first commit by
//!   the root keys). On a push onto an existing `main`, a policy commit must
//!   be the last commit of the push, so the parent's policy is the policy
//!   in force before the push for every commit of it;
//! - a registration tag is judged with the commit it names, by that
//!   commit's policy and signer;
//! - an approval or promotion tag names, in `Mvault-Record`, the commit of
//!   `main` it was made against; the policy there judges it. The hook also
//!   requires that no policy change came after that commit (a push-time
//!   fact);
//! - keys expire by the server's clock at push time, and by each object's
//!   own date when history is replayed; no date may run ahead of the
//!   judge's clock by more than the allowed skew.

use std::collections::BTreeSet;

use ssh_key::PublicKey;
use time::OffsetDateTime;

use super::source::{self, ObjectSource};
use super::{Refusal, Rule};
use crate::crypto;
use crate::model::policy::Policy;
use crate::store::objects::{CommitObject, ObjectId};
use crate::store::StoreError;

/// The trailer that carries a root key's fingerprint on a vault's first commit.
pub const ROOT_KEY_TRAILER: &str = "Mvault-Root-Key";
pub use crate::model::approval::RECORD_TRAILER;
/// How far a date may run ahead of the judge's clock unless configured.
pub const DEFAULT_SKEW_SECONDS: i64 = 300;

/// The vault's root keys, by SHA-256 fingerprint: pinned by the server's
/// own configuration, or recorded in the vault's first commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootKeys {
    fingerprints: BTreeSet<String>,
}

impl RootKeys {
    /// Root keys from their public keys.
    pub fn from_keys<'k>(keys: impl IntoIterator<Item = &'k PublicKey>) -> Self {
        RootKeys {
            fingerprints: keys.into_iter().map(crypto::fingerprint).collect(),
        }
    }

    /// Root keys from `SHA256:…` fingerprints.
    pub fn from_fingerprints<S: Into<String>>(fps: impl IntoIterator<Item = S>) -> Self {
        RootKeys {
            fingerprints: fps.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether `key` is a root key.
    pub fn contains(&self, key: &PublicKey) -> bool {
        self.fingerprints.contains(&crypto::fingerprint(key))
    }

    /// Whether a fingerprint is a root key's.
    pub fn contains_fingerprint(&self, fp: &str) -> bool {
        self.fingerprints.contains(fp)
    }

    /// The fingerprints, sorted.
    pub fn fingerprints(&self) -> impl Iterator<Item = &str> {
        self.fingerprints.iter().map(String::as_str)
    }

    /// The keys in both sets.
    pub fn intersect(&self, other: &RootKeys) -> RootKeys {
        RootKeys {
            fingerprints: self
                .fingerprints
                .intersection(&other.fingerprints)
                .cloned()
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty()
    }

    pub fn len(&self) -> usize {
        self.fingerprints.len()
    }
}

/// The judge's clock.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// The server at push time: keys expire by `now`.
    Server { now: i64, skew: i64 },
    /// Replaying history at `now`: each object is judged at its own date.
    Replay { now: i64, skew: i64 },
}

impl Clock {
    /// The time at which keys and roles are judged for an object dated `dated`.
    /// A date no calendar time can hold (past year 9999, say) is judged at
    /// the latest time there is, when every expiring key has expired: never
    /// at 1970, when every key was still valid (fail closed).
    pub fn judgement_time(&self, dated: i64) -> OffsetDateTime {
        let t = match *self {
            Clock::Server { now, .. } => now,
            Clock::Replay { .. } => dated,
        };
        OffsetDateTime::from_unix_timestamp(t).unwrap_or(time::PrimitiveDateTime::MAX.assume_utc())
    }

    /// The latest date an object may carry.
    pub fn latest_allowed(&self) -> i64 {
        match *self {
            Clock::Server { now, skew } | Clock::Replay { now, skew } => now.saturating_add(skew),
        }
    }

    /// At push time, `dated` must not run ahead of the server's clock by
    /// more than the skew. A replay cannot know the server's clock when
    /// the object arrived, so it does not judge this (a push-only rule).
    pub fn check_not_future(&self, subject: &str, what: &str, dated: i64) -> Result<(), Refusal> {
        let Clock::Server { now, skew } = *self else {
            return Ok(());
        };
        if dated > self.latest_allowed() {
            return Err(Refusal::new(
                Rule::DatedInFuture,
                subject,
                format!(
                    "{what} is dated {}, {} s after the judge's clock ({}, skew {skew} s)",
                    rfc3339(dated),
                    dated - now,
                    rfc3339(now)
                ),
                "fix the clock of the machine that made it, and make it again",
            ));
        }
        Ok(())
    }
}

/// RFC 3339 of unix seconds, for messages.
pub fn rfc3339(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

/// Which commits are on `main` (for the hook: after the push).
pub trait MainLine {
    /// Whether `commit` is on main.
    fn contains(&self, commit: ObjectId) -> Result<bool, StoreError>;
    /// main's tip.
    fn tip(&self) -> ObjectId;
    /// The date of the first policy commit on main after `commit`, if any.
    fn policy_change_after(&self, commit: ObjectId) -> Result<Option<i64>, StoreError>;
    /// The stage story of `model` on main at commit `at`: its promotion
    /// tags whose record (`Mvault-Record`) is `at` or one of its
    /// ancestors, so a later promotion never vouches for an earlier
    /// commit, in the hook and in a replay alike.
    fn stages_at(
        &self,
        model: &crate::model::names::ModelName,
        at: ObjectId,
    ) -> Result<super::stages::ModelStages, StoreError>;

    /// The stage `version` of `model` is in on main at commit `at`
    /// (from [`MainLine::stages_at`]).
    fn stage_of(
        &self,
        model: &crate::model::names::ModelName,
        version: &crate::model::names::Version,
        at: ObjectId,
    ) -> Result<crate::model::names::Stage, StoreError> {
        Ok(self
            .stages_at(model, at)?
            .stage_of(&version.to_string())
            .stage)
    }
}

/// [`MainLine::policy_change_after`] by walking main's first parents back
/// from `tip` to `commit`: a cost that follows how far behind `commit` is.
pub fn walk_policy_change_after(
    src: &dyn ObjectSource,
    tip: ObjectId,
    commit: ObjectId,
) -> Result<Option<i64>, StoreError> {
    let mut first = None;
    let mut at = tip;
    while at != commit {
        let c = source::commit(src, at)?;
        let t = crate::model::trailers::trailers(&c.message);
        if crate::model::trailers::trailer(&t, "Mvault-Action") == Some("policy") {
            first = Some(c.committer.time);
        }
        match c.parents.first() {
            Some(p) => at = *p,
            None => break,
        }
    }
    Ok(first)
}

/// The first deploy commit of `model` on main after `commit` (walking
/// back from `tip`): a deployment a promotion made against `commit` did
/// not see, though the replay reads that promotion at the deployment.
pub fn walk_deployment_after(
    src: &dyn ObjectSource,
    tip: ObjectId,
    commit: ObjectId,
    model: &crate::model::names::ModelName,
) -> Result<Option<ObjectId>, StoreError> {
    use crate::model::trailers::{trailer, trailers};
    let mut first = None;
    let mut at = tip;
    let name = model.to_string();
    while at != commit {
        let c = source::commit(src, at)?;
        let t = trailers(&c.message);
        if trailer(&t, "Mvault-Action") == Some("deploy")
            && trailer(&t, "Mvault-Model") == Some(name.as_str())
        {
            first = Some(at);
        }
        match c.parents.first() {
            Some(p) => at = *p,
            None => break,
        }
    }
    Ok(first)
}

/// Everything a judgement depends on besides the objects.
pub struct Context<'a> {
    pub roots: &'a RootKeys,
    pub clock: Clock,
    /// Who pushes, when a push is judged; `None` when history is replayed
    /// or the pusher is the server's business (pre-push without identity).
    pub pusher: Option<&'a str>,
    pub main: &'a dyn MainLine,
}

/// The policy that judges commit `c` (not the first): its parent's.
pub fn policy_for_commit(
    src: &dyn ObjectSource,
    subject: &str,
    c: &CommitObject,
) -> Result<Policy, Refusal> {
    let parent = c
        .parents
        .first()
        .copied()
        .ok_or_else(|| Refusal::internal(subject, "a first commit has no policy before it"))?;
    source::policy_at(src, parent).map_err(|e| Refusal::internal(subject, e))
}
