//! Integrity reports from a clone: when `pull` or `verify` finds a bad
//! digest, signature, size or chain in what the server served, the clone
//! notes it in its own event log (`audit::incidents`) and pushes a signed
//! report to its remote (`model::report`), which the server's hook takes
//! into its log and its alerts.
//!
//! Sending never changes the outcome of the command that found the
//! problem: the caller keeps its error and only says whether the report
//! went out.

use time::OffsetDateTime;

use crate::audit::incidents::{self, Incident, INTEGRITY_VIOLATION};
use crate::crypto::{Signer, SshIdentity};
use crate::model::names::VersionRef;
use crate::model::report::{Check, IntegrityReport, REPORT_KIND, REPORT_SCHEMA};
use crate::store::objects::parse_id;
use crate::store::Actor;
use crate::vault::{rfc3339, Vault, VaultError};

/// The longest error text a report carries.
const MAX_DETAIL: usize = 2000;

/// The check an error says failed, when it is one a server could have
/// caused (what it served is not what was signed); `None` for every other
/// error (a missing key, a local directory that differs, a typo).
pub fn failed_check(e: &VaultError) -> Option<Check> {
    use VaultError::*;
    match e {
        Mismatch { check, .. } if check.contains("size") => Some(Check::Size),
        Mismatch { .. } => Some(Check::Digest),
        Signature { .. } | Signer { .. } => Some(Check::Signature),
        RecordBroken { .. }
        | UntrustedTag { .. }
        | TagReplaced { .. }
        | MainRewritten { .. }
        | Manifest { .. }
        | Policy { .. } => Some(Check::Chain),
        Decrypt { .. } => Some(Check::Decrypt),
        _ => None,
    }
}

/// What a command was doing when it found the problem.
#[derive(Debug, Clone, Copy)]
pub struct Finding<'a> {
    /// `pull` or `verify`.
    pub command: &'static str,
    pub reference: &'a VersionRef,
    pub error: &'a VaultError,
}

/// Note and send a report of `finding`, if its error is an integrity
/// failure; the incident as noted (`sent` says whether the server took
/// it). `signer` is the user's key, when the command had one.
pub fn report_finding(
    vault: &Vault,
    signer: Option<&SshIdentity>,
    finding: Finding<'_>,
    now: OffsetDateTime,
) -> Option<Incident> {
    let check = failed_check(finding.error)?;
    let reporter = signer.and_then(|s| {
        vault
            .policy()
            .ok()?
            .user_of_key(s.public_key())
            .map(|u| u.name.clone())
    });
    let mut detail = finding.error.to_string();
    if detail.len() > MAX_DETAIL {
        let mut cut = MAX_DETAIL;
        while !detail.is_char_boundary(cut) {
            cut -= 1;
        }
        detail.truncate(cut);
    }
    let (model, version) = match finding.reference {
        VersionRef::Exact(m, v) => (m.to_string(), Some(v.to_string())),
        other => (other.model().to_string(), None),
    };
    let report = IntegrityReport {
        schema: REPORT_SCHEMA,
        kind: REPORT_KIND.into(),
        reporter: reporter.clone().unwrap_or_else(|| "unknown".into()),
        time: rfc3339(now),
        model: Some(model),
        version,
        check,
        detail,
        command: finding.command.into(),
        main: vault
            .store
            .main_tip()
            .ok()
            .flatten()
            .map(|id| id.to_string()),
    };
    let remote = crate::ops::sync::remote(vault);
    let sent = match (&remote, signer, &reporter) {
        (None, _, _) => Err("this clone has no remote".to_owned()),
        (_, None, _) => Err("no key to sign it with".to_owned()),
        (_, _, None) => Err("your key is in no entry of the policy".to_owned()),
        (Some(remote), Some(signer), Some(user)) => send(vault, remote, signer, user, &report, now),
    };
    let (report_ref, sent, send_error) = match sent {
        Ok(r) => (Some(r), true, None),
        Err(e) => (None, false, Some(e)),
    };
    let incident = Incident {
        time: rfc3339(now),
        event: INTEGRITY_VIOLATION.into(),
        report,
        remote,
        report_ref,
        sent,
        send_error,
    };
    // The note is the clone's own; failing to write it loses nothing the
    // caller reports.
    let _ = incidents::append(vault.store.git_dir(), &incident);
    Some(incident)
}

/// Sign `report` as a commit and push it alone to its ref on `remote`.
fn send(
    vault: &Vault,
    remote: &str,
    signer: &SshIdentity,
    user: &str,
    report: &IntegrityReport,
    now: OffsetDateTime,
) -> Result<String, String> {
    let message = report.to_message();
    let tree = vault
        .store
        .git_with_input(&["mktree"], b"")
        .ok()
        .and_then(|t| parse_id(t.trim()))
        .ok_or("cannot write the empty tree")?;
    let actor = Actor {
        name: user.to_owned(),
        time: now.unix_timestamp(),
    };
    let commit = vault
        .store
        .write_signed_commit(tree, &[], &actor, &message, signer)
        .map_err(|e| e.to_string())?;
    let refname = IntegrityReport::ref_for(user, message.as_bytes());
    let out = std::process::Command::new("git")
        .args([
            "push",
            "--porcelain",
            remote,
            &format!("{commit}:{refname}"),
        ])
        .current_dir(vault.store.command_dir())
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        return Ok(refname);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let refused: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("remote: "))
        .filter(|l| l.starts_with("mvault: refused"))
        .collect();
    let why = match refused.first() {
        Some(l) => l.trim().to_owned(),
        None => stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("git push failed")
            .trim()
            .to_owned(),
    };
    Err(format!("push to {remote} failed: {why}"))
}
