//! `mvault retention`: the archived versions whose payload the policy no
//! longer keeps (`retention_days` in the model's `[[models]]` settings)
//! and that are not purged yet, each with who may purge it.
//!
//! A version is due when it has been archived for at least
//! `retention_days`: from the date of the promotion tag that archived it
//! (believed only when it chains through main, as `status` believes it)
//! to the clock of this command. The hook judges a purge by the same
//! arithmetic, on the server's clock.

use serde::Serialize;
use time::OffsetDateTime;

use crate::model::names;
use crate::model::policy::retention_due_at;
use crate::vault::{rfc3339, Vault, VaultError};

/// One version whose payload is due for purge.
#[derive(Debug, Clone, Serialize)]
pub struct DueVersion {
    pub model: String,
    pub version: String,
    /// When the version was archived (its archive tag's date), RFC 3339.
    pub archived_at: String,
    pub retention_days: u32,
    /// When the purge became due, RFC 3339.
    pub due_at: String,
    /// The role the policy names for the purge (besides ml_admin), if any.
    pub purge_role: Option<String>,
}

fn show(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .map(rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// Every archived, unpurged version whose retention is due at `now`,
/// by model then version.
pub fn due_versions(vault: &Vault, now: OffsetDateTime) -> Result<Vec<DueVersion>, VaultError> {
    crate::verify::replay::verify_main(&vault.store, now.unix_timestamp()).map_err(|b| {
        VaultError::RecordBroken {
            object: b.object,
            rule: b.rule,
            detail: b.detail,
        }
    })?;
    let (_, tree) = vault.main()?;
    let policy = vault.policy_at(tree)?;
    let mut out = Vec::new();
    for (model, versions) in vault.models(tree)? {
        let settings = policy.settings_for(&model);
        let Some(days) = settings.retention_days else {
            continue;
        };
        let stages = vault.believed_stages(&model)?;
        for v in versions {
            let Some(archived) = stages.archived_since(&v.to_string()) else {
                continue;
            };
            let due = retention_due_at(archived, days);
            if now.unix_timestamp() < due {
                continue;
            }
            if vault
                .store
                .read_path(tree, &names::purge_path(&model, &v))?
                .is_some()
            {
                continue;
            }
            out.push(DueVersion {
                model: model.to_string(),
                version: v.to_string(),
                archived_at: show(archived),
                retention_days: days,
                due_at: show(due),
                purge_role: settings.purge_role.map(|r| r.to_string()),
            });
        }
    }
    Ok(out)
}
