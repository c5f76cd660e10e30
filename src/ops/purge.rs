//! `mvault purge MODEL@VERSION --reason TEXT`: record on `main`, signed,
//! that an archived version's payload goes, and delete its payload ref in
//! the same atomic push. The record of the version stays: `show`, `log`,
//! `lineage` and `audit verify` still work, and `pull` explains.
//!
//! What a purge cannot do: copies already fetched (clones that pulled the
//! version, caches of `pull --from`, backups of the server) keep the
//! ciphertext, and whoever holds the data key can still read those. The
//! server drops the objects at its next `git gc` once nothing else refers
//! to them; a part a later version shares stays.

use serde::Serialize;
use time::OffsetDateTime;

use crate::crypto::SshIdentity;
use crate::model::names::{self, ModelName, Stage, Version};
use crate::model::policy::{retention_due_at, PurgeRight};
use crate::model::purge::PurgeRecord;
use crate::ops::register::{not_before_parent, signer_user};
use crate::ops::sync;
use crate::store::{Actor, RefUpdate, MAIN_REF};
use crate::vault::{rfc3339, Vault, VaultError};

/// What a purge did.
#[derive(Debug, Clone, Serialize)]
pub struct PurgeOutcome {
    pub model: String,
    pub version: String,
    pub commit: String,
    pub payload_ref: String,
    pub reason: String,
    pub pushed: Option<String>,
}

/// Purge `model@version`'s payload.
pub fn purge(
    vault: &Vault,
    model: &ModelName,
    version: &Version,
    reason: &str,
    signer: &SshIdentity,
    now: OffsetDateTime,
    push: bool,
) -> Result<PurgeOutcome, VaultError> {
    vault.store.ensure_config()?;
    if push {
        if let Some(remote) = sync::remote(vault) {
            sync::fetch_checked(vault, &remote, &sync::TagScope::model(model))?;
        }
    }
    crate::verify::replay::verify_main(&vault.store, now.unix_timestamp()).map_err(|b| {
        VaultError::RecordBroken {
            object: b.object,
            rule: b.rule,
            detail: b.detail,
        }
    })?;
    let (tip, tree) = vault.main()?;
    let policy = vault.policy_at(tree)?;
    let user = signer_user(&policy, signer)?;
    // ml_admin purges any archived version; the model's purge_role one
    // whose retention is due (checked below, as the hook will).
    let right = policy.purge_right(&user, model, now)?;
    if !vault.versions_of(tree, model)?.contains(version) {
        return Err(VaultError::NoSuchVersion {
            model: model.to_string(),
            version: version.to_string(),
        });
    }
    let path = names::purge_path(model, version);
    if let Some(bytes) = vault.store.read_path(tree, &path)? {
        let p = PurgeRecord::parse(&String::from_utf8_lossy(&bytes)).ok();
        return Err(VaultError::Input {
            path: format!("{model}@{version}"),
            reason: match p {
                Some(p) => format!(
                    "already purged on {} by {}: {}",
                    p.time, p.purged_by, p.reason
                ),
                None => "already purged".into(),
            },
        });
    }
    let stages =
        crate::vault::stages::read_stages(&vault.store, model).map_err(|e| VaultError::Input {
            path: model.to_string(),
            reason: e.to_string(),
        })?;
    let stage = stages.stage_of(&version.to_string()).stage;
    if stage != Stage::Archived {
        return Err(VaultError::Input {
            path: format!("{model}@{version}"),
            reason: format!(
                "is in {stage}; only an archived version is purged (mvault promote {model}@{version} --to deprecated, then --to archived)"
            ),
        });
    }
    let reason = reason.trim();
    let when = not_before_parent(vault, tip, now)?;
    if let PurgeRight::Retention { retention_days, .. } = right {
        let archived = stages
            .archived_since(&version.to_string())
            .unwrap_or(i64::MAX);
        let due = retention_due_at(archived, retention_days);
        if when.unix_timestamp() < due {
            let show = |t: i64| {
                OffsetDateTime::from_unix_timestamp(t)
                    .map(rfc3339)
                    .unwrap_or_else(|_| t.to_string())
            };
            return Err(VaultError::RetentionNotDue {
                model: model.to_string(),
                version: version.to_string(),
                archived: show(archived),
                retention_days,
                due: show(due),
            });
        }
    }
    let record = PurgeRecord {
        model: model.clone(),
        version: version.clone(),
        purged_by: user.clone(),
        time: rfc3339(when),
        reason: reason.to_owned(),
    };
    let text = record.to_canonical();
    // Check as the hook will, before anything is written.
    PurgeRecord::parse(&text).map_err(|e| VaultError::Input {
        path: "--reason".into(),
        reason: e.to_string(),
    })?;
    let blob = vault.store.write_blob(text.as_bytes())?;
    let new_tree = vault.store.edit_tree(Some(tree), &[(path, blob)])?;
    let message = format!(
        "purge {model}@{version}\n\n{reason}\n\nMvault-Action: purge\nMvault-Model: {model}\nMvault-Version: {version}\n"
    );
    let actor = Actor {
        name: user,
        time: when.unix_timestamp(),
    };
    let commit = vault
        .store
        .write_signed_commit(new_tree, &[tip], &actor, &message, signer)?;
    let payload_ref = names::payload_ref(model, version);
    let payload = vault.store.ref_target(&payload_ref)?;
    let mut edits = vec![RefUpdate {
        name: MAIN_REF.into(),
        expected: Some(tip),
        new: Some(commit),
        reason: format!("purge {model}@{version}"),
    }];
    if let Some(p) = payload {
        edits.push(RefUpdate {
            name: payload_ref.clone(),
            expected: Some(p),
            new: None,
            reason: format!("purge {model}@{version}"),
        });
    }
    vault.store.update_refs(&edits)?;
    sync::refresh_worktree(vault, tip, commit);
    let pushed = if push {
        sync::push_purge(vault, tip, commit, &payload_ref, payload)?
    } else {
        None
    };
    Ok(PurgeOutcome {
        model: model.to_string(),
        version: version.to_string(),
        commit: commit.to_string(),
        payload_ref,
        reason: reason.to_owned(),
        pushed,
    })
}
