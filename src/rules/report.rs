//! Integrity reports (rules 98 and 99): a client that found a bad digest,
//! signature, size or chain pushes a signed report under
//! `refs/mvault/reports/<user>/<id>`; any user of the policy may.
//!
//! Checks, in order, each naming the attack it stops:
//! 1. the ref is `refs/mvault/reports/<user>/<id>` and points at a commit
//!    with no parent and the empty tree whose message is a well-formed
//!    report with that id (a report ref used to smuggle content or history
//!    into the server): rule 98;
//! 2. the commit's SSH signature verifies, by a key of a user of the
//!    policy in force on `main`, unexpired, who is the report's reporter
//!    and the pusher (a forged report in another user's name, or one pushed
//!    by someone else): rule 99;
//! 3. author and committer name the signer, as on every commit (rule 14).
//!
//! The driver (`verify::receive`) adds what only a push shows: a report
//! is never mixed with other updates (rule 100) and never moved or
//! deleted (rule 101).

use super::commit::{check_identity, verify_git_signature, Signer};
use super::source::{commit, policy_at};
use super::{escape, Accepted, Context, ObjectSource, Refusal, Rule};
use crate::crypto;
use crate::model::report::{report_ref_user, IntegrityReport, EMPTY_TREE, REPORT_PREFIX};
use crate::store::objects::{parse_id, ObjectId};

/// A report the rules accepted.
#[derive(Debug, Clone)]
pub struct AcceptedReport {
    pub accepted: Accepted,
    pub report: IntegrityReport,
    /// The signer's policy user name (the reporter and the pusher).
    pub signer: String,
}

const HINT: &str = "send reports with mvault (pull and verify send them when they find a problem)";

/// Judge the report that `refname` is created at, `id`.
pub fn judge_report(
    src: &dyn ObjectSource,
    ctx: &Context<'_>,
    refname: &str,
    id: ObjectId,
) -> Result<AcceptedReport, Refusal> {
    let bad = |detail: String| Refusal::new(Rule::BadReport, refname, detail, HINT);
    // 1. The ref's form, the commit's shape, the report's form.
    let Some(ref_user) = report_ref_user(refname) else {
        return Err(bad(format!(
            "a report's ref is {REPORT_PREFIX}<user>/<id>, <user> a policy user name and <id> 16 lower-case hex digits"
        )));
    };
    let c = commit(src, id).map_err(|e| bad(format!("not a report commit: {e}")))?;
    if !c.parents.is_empty() {
        return Err(bad(format!(
            "the report commit has {} parent(s); a report stands alone",
            c.parents.len()
        )));
    }
    if parse_id(EMPTY_TREE) != Some(c.tree) {
        return Err(bad(format!(
            "the report commit's tree is {}; a report carries no files (the empty tree {EMPTY_TREE})",
            c.tree
        )));
    }
    let report = IntegrityReport::parse(c.message.as_bytes()).map_err(|e| bad(e.to_string()))?;
    report
        .check_ref(refname, c.message.as_bytes())
        .map_err(|e| bad(e.to_string()))?;
    // 2. Who signed it: a user of the policy in force, the reporter, the pusher.
    let signer_refusal = |detail: String| {
        Refusal::new(
            Rule::ReportSigner,
            refname,
            detail,
            "a report is signed and pushed by the policy user it names, with their own key",
        )
    };
    let key = verify_git_signature(
        refname,
        "the report",
        c.signature.as_ref(),
        Rule::ReportSigner,
        Rule::ReportSigner,
    )?;
    let policy = policy_at(src, ctx.main.tip()).map_err(|e| Refusal::internal(refname, e))?;
    let at = ctx.clock.judgement_time(c.committer.time);
    let user = match policy.user_of_key(&key) {
        Some(u) if u.active_at(at) => u.name.clone(),
        Some(u) => {
            return Err(signer_refusal(format!(
                "the report is signed by {}, whose key expired on {}",
                u.name,
                u.expires.map(|d| d.to_string()).unwrap_or_default()
            )))
        }
        None => {
            return Err(signer_refusal(format!(
                "the report is signed by key {}, which is in no policy entry in force",
                crypto::fingerprint(&key)
            )))
        }
    };
    if user != ref_user {
        return Err(signer_refusal(format!(
            "the report names reporter {}, but {user} signed it",
            escape(ref_user)
        )));
    }
    if let Some(pusher) = ctx.pusher {
        if pusher != user {
            return Err(signer_refusal(format!(
                "{} pushed a report signed by {user}",
                escape(pusher)
            )));
        }
    }
    // 3. The identities name the signer.
    let signer = Signer {
        key,
        user: Some(user.clone()),
    };
    check_identity(refname, "author", &c.author, &signer)?;
    check_identity(refname, "committer", &c.committer, &signer)?;
    let what = match (&report.model, &report.version) {
        (Some(m), Some(v)) => format!(" of {m}@{v}"),
        (Some(m), None) => format!(" of {m}"),
        _ => String::new(),
    };
    Ok(AcceptedReport {
        accepted: Accepted {
            subject: refname.to_owned(),
            what: format!(
                "integrity report by {user}: {} check failed{what}",
                report.check.as_str()
            ),
        },
        report,
        signer: user,
    })
}
