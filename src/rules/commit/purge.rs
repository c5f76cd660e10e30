//! A purge commit: the signed record that a version's payload may go.
//!
//! Checks, in order:
//! 1. trailers name one model and one version, which exists;
//! 2. the signer and the pusher hold ml_admin on the model, or the
//!    model's `purge_role` (then step 5 applies);
//! 3. the change is exactly one new `purge.toml` in the version's
//!    directory, canonical, naming the version, the signer and the commit's
//!    own date, with a reason;
//! 4. the version is archived (its stage story, from its promotion tags);
//! 5. a purge by the `purge_role` rather than ml_admin: the version's
//!    retention is due, `retention_days` after the tag that archived it,
//!    both at the judgement time (the server's clock at push time) and at
//!    the purge commit's own date (what a replay judges at), so that a
//!    backdated purge cannot land by the server's clock and then fail
//!    every audit.
//!
//! The record of the version stays; with this commit in a push, the hook
//! lets exactly that version's payload ref be deleted.

use super::{Action, CommitUnderJudgement, CommitVerdict};
use crate::model::names::{self, Stage};
use crate::model::policy::{retention_due_at, PurgeRight};
use crate::model::purge::PurgeRecord;
use crate::rules::context::rfc3339;
use crate::rules::source;
use crate::rules::{escape, Accepted, Refusal, Rule};
use crate::store::objects::EntryKind;

const HINT: &str =
    "purge with mvault purge MODEL@VERSION --reason TEXT, after archiving the version";

pub(super) fn judge_purge(j: &CommitUnderJudgement<'_>) -> Result<CommitVerdict, Refusal> {
    let bad = |rule: Rule, detail: String| j.refuse(rule, detail, HINT);
    let internal = |e: crate::store::StoreError| Refusal::internal(j.subject, e);
    // 1.
    let (model, version) = j.model_and_version(HINT)?;
    let dir = names::version_dir(&model, &version);
    if source::entry(j.src, j.parent.tree, &format!("{dir}/manifest.toml"))
        .map_err(internal)?
        .is_none()
    {
        return Err(bad(
            Rule::BadPurge,
            format!("{model}@{version} is not in the vault"),
        ));
    }
    // 2.
    let Some(user) = j.signer.user.as_deref() else {
        return Err(bad(
            Rule::Role,
            "root keys change the policy; purges are signed by users".into(),
        ));
    };
    let at = j.at();
    let role = |who: &str, what: &str, rule: Rule| {
        j.policy.purge_right(who, &model, at).map_err(|d| {
            Refusal::new(
                rule,
                j.subject,
                format!("{what} {d}"),
                format!("a purge needs ml_admin on {model}, or the purge_role of its [[models]] settings once retention is due; ask an admin to purge"),
            )
        })
    };
    let mut rights = vec![role(user, "signer", Rule::Role)?];
    if let Some(pusher) = j.ctx.pusher {
        rights.push(role(pusher, "pusher", Rule::PusherRole)?);
    }
    // 3.
    let path = names::purge_path(&model, &version);
    let mut record = None;
    for c in j.changes {
        if c.path != path {
            return Err(bad(
                Rule::FileOutsideVersion,
                format!(
                    "{} is not the purge record {path}; a purge commit adds that file only",
                    escape(&c.path)
                ),
            ));
        }
        if c.old.is_some() {
            return Err(bad(
                Rule::ExistingContentChanged,
                format!("{path} already exists: the version was purged before"),
            ));
        }
        record = c.new;
    }
    let Some((id, kind)) = record else {
        return Err(bad(Rule::BadPurge, format!("{path} is not added")));
    };
    if kind != EntryKind::Blob {
        return Err(bad(
            Rule::BadFileMode,
            format!("{path} is a {kind:?}; only regular files are stored"),
        ));
    }
    let text = j.record_text(id, &path, Rule::BadPurge, HINT)?;
    let p = PurgeRecord::parse(&text).map_err(|e| bad(Rule::BadPurge, format!("{path}: {e}")))?;
    if p.model != model || p.version != version {
        return Err(bad(
            Rule::BadPurge,
            format!(
                "{path} names {}@{}, the trailers {model}@{version}",
                p.model, p.version
            ),
        ));
    }
    j.record_names_its_commit(
        &path,
        "purged",
        &p.purged_by,
        &p.time,
        user,
        Rule::BadPurge,
        HINT,
    )?;
    // 4.
    let stages = j
        .ctx
        .main
        .stages_at(&model, j.commit.parents[0])
        .map_err(internal)?;
    let stage = stages.stage_of(&version.to_string()).stage;
    if stage != Stage::Archived {
        return Err(bad(
            Rule::PurgeNotArchived,
            format!(
                "{model}@{version} is in {stage}; only an archived version's payload is purged"
            ),
        ));
    }
    // 5. Retention, for a purge by the purge_role (signer or pusher).
    for right in rights {
        let PurgeRight::Retention { retention_days, .. } = right else {
            continue;
        };
        let archived = stages.archived_since(&version.to_string()).ok_or_else(|| {
            Refusal::internal(j.subject, "an archived version without its archive tag")
        })?;
        let due = retention_due_at(archived, retention_days);
        // Due by the judge's clock and by the commit's own date, the one
        // the replay judges at: a purge commit backdated before its due
        // date (as far as its parent's date) would otherwise land by the
        // server's clock and break every later audit.
        let judged = at.unix_timestamp().min(j.commit.committer.time);
        if judged < due {
            return Err(j.refuse(
                Rule::RetentionNotDue,
                format!(
                    "{model}@{version} was archived at {}; retention_days = {retention_days} makes its purge due at {}, and the purge is judged at {} (the earlier of its own date and the judge's clock)",
                    rfc3339(archived),
                    rfc3339(due),
                    rfc3339(judged)
                ),
                "wait until the retention is due (mvault retention lists what is), or ask an ml_admin to purge",
            ));
        }
    }
    Ok(CommitVerdict {
        accepted: Accepted {
            subject: j.subject.to_owned(),
            what: format!("purge {model}@{version} by {user} ({})", j.id),
        },
        action: Action::Purge {
            model: model.to_string(),
            version: version.to_string(),
        },
        signer: Some(user.to_owned()),
    })
}
