//! `mvault audit verify`: the replay of the whole record, and with a key,
//! the decryption of every version it can read, each plaintext digest
//! checked.

use crate::audit::events::{AuditBreak, AuditReport};
use crate::audit::report::{LineageNode, Report};
use crate::crypto::SshIdentity;
use crate::model::names::{ModelName, VersionRef};
use crate::vault::{now, Vault, VaultError};
use crate::verify::replay;

/// Replay the record; with `decrypt`, also decrypt and check every
/// version the key can read.
pub fn verify(vault: &Vault, decrypt: Option<&SshIdentity>) -> Result<AuditReport, VaultError> {
    let mut report = replay::verify(&vault.store, now().unix_timestamp());
    let Some(who) = decrypt.filter(|_| report.ok) else {
        return Ok(report);
    };
    let (_, tip_tree) = vault.main()?;
    for (model, versions) in vault.models(tip_tree)? {
        for v in versions {
            let r = VersionRef::Exact(model.clone(), v.clone());
            match crate::ops::retrieve::verify(vault, &r, who, &crate::ops::progress::Silent) {
                Ok(_) => report.versions_decrypted += 1,
                Err(VaultError::NoReadAccess { .. }) => {}
                Err(e) => {
                    report.ok = false;
                    report.first_break = Some(AuditBreak {
                        object: format!("{model}@{v}"),
                        rule: "plaintext check failed".into(),
                        detail: e.to_string(),
                    });
                    return Ok(report);
                }
            }
        }
    }
    Ok(report)
}

/// A model's promotions as a client believes them: those that replay from
/// the root keys (`status`, `lineage` and the report read the same set).
pub fn believed_chain(
    vault: &Vault,
    model: &ModelName,
) -> Result<crate::verify::replay::ModelChain, VaultError> {
    replay::model_chain(&vault.store, model, now().unix_timestamp()).map_err(|b| {
        VaultError::RecordBroken {
            object: b.object,
            rule: b.rule,
            detail: b.detail,
        }
    })
}

/// `mvault lineage MODEL`: the tree of parents, each version's stage from
/// the promotions that replay.
pub fn lineage(vault: &Vault, model: &ModelName) -> Result<Vec<LineageNode>, VaultError> {
    let chain = believed_chain(vault, model)?;
    crate::audit::report::lineage(vault, model, &chain.stages)
}

/// `mvault report MODEL`: the compliance report, its stages from the
/// promotions that replay.
pub fn report(
    vault: &Vault,
    model: &ModelName,
    since: Option<i64>,
    until: Option<i64>,
    now: time::OffsetDateTime,
    integrity: AuditReport,
) -> Result<Report, VaultError> {
    let chain = believed_chain(vault, model)?;
    crate::audit::report::build(vault, model, since, until, now, integrity, &chain.stages)
}

/// `mvault access review`: the review of the vault at `now`, with the
/// pushes and fetches of the server's log when the vault is the server's
/// repository (it holds the decision log).
pub fn access_review(
    vault: &Vault,
    model: Option<&globset::GlobMatcher>,
    stale_days: u64,
    now: time::OffsetDateTime,
) -> Result<crate::audit::access::AccessReview, VaultError> {
    use crate::audit::access::{review, ReviewRequest, ServerActivity};
    use crate::server::log::{read_log, ServerEvent, ServerFilter, LOG_FILE};
    let git_dir = vault.store.git_dir();
    let server: Option<Vec<ServerActivity>> = if git_dir.join(LOG_FILE).exists() {
        let entries =
            read_log(git_dir, &ServerFilter::default()).map_err(|e| VaultError::Input {
                path: git_dir.join(LOG_FILE).display().to_string(),
                reason: e.to_string(),
            })?;
        Some(
            entries
                .into_iter()
                .filter_map(|e| {
                    let user = e.actor?;
                    let time = time::OffsetDateTime::parse(
                        &e.time,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .ok()?
                    .unix_timestamp();
                    let action = match e.event {
                        ServerEvent::Accept => "push",
                        ServerEvent::Refuse => "refused push",
                        ServerEvent::Fetch => "fetch",
                        ServerEvent::Landed => "push landed",
                        ServerEvent::NotLanded => "push did not land",
                    };
                    Some(ServerActivity {
                        user,
                        time,
                        action: action.to_owned(),
                    })
                })
                .collect(),
        )
    } else {
        None
    };
    review(
        vault,
        &ReviewRequest {
            model,
            stale_days,
            server: server.as_deref(),
            now,
        },
    )
}
