//! Naming a version: `nlp/bert@1.2.0`, `nlp/bert` (the latest) or
//! `nlp/bert#production` (what the stage serves, believed only when the
//! model's promotion chain replays).

use crate::audit::events::AuditBreak;
use crate::model::names::{ModelName, Stage, Version, VersionRef};
use crate::rules::stages::{StageHead, StageState};
use crate::store::ObjectId;
use crate::vault::{now, Vault, VaultError};
use crate::verify::replay;

/// Resolve what the user named to one version.
pub fn resolve(vault: &Vault, r: &VersionRef) -> Result<(ModelName, Version), VaultError> {
    // Nothing is believed that does not chain back to the root keys.
    replay::verify_main(&vault.store, now().unix_timestamp()).map_err(broken)?;
    let (_, tree) = vault.main()?;
    match r {
        VersionRef::Exact(m, v) => Ok((m.clone(), v.clone())),
        VersionRef::Latest(m) => {
            let v = vault
                .versions_of(tree, m)?
                .pop()
                .ok_or_else(|| VaultError::NoSuchModel {
                    model: m.to_string(),
                })?;
            Ok((m.clone(), v))
        }
        VersionRef::Stage(m, stage) => {
            // The stage is what the promotion tags say: believe them only
            // when each points into main and their chain verifies. A tag
            // whose commit descends from main says main is merely behind.
            if let Some(why) = behind(vault, m)? {
                return Err(VaultError::Behind { detail: why });
            }
            vault.believed_stages(m)?;
            let stages = replay::verify_model_chain(&vault.store, m, now().unix_timestamp())
                .map_err(|b| VaultError::Signer {
                    what: format!("{m}#{stage}"),
                    signer: b.object,
                    reason: format!("breaks the promotion chain: {}: {}", b.rule, b.detail),
                })?;
            // What the stage serves: one definition, rules::stages.
            let head = stages.head(*stage);
            let v = head
                .serving
                .as_deref()
                .and_then(|v| Version::parse(v).ok())
                .ok_or_else(|| VaultError::Input {
                    path: format!("{m}#{stage}"),
                    reason: serves_nothing(m, &head),
                })?;
            Ok((m.clone(), v))
        }
    }
}

/// Whether one of `model`'s tags points at a commit newer than this
/// clone's main (a stale clone with fresh tags), and which.
fn behind(vault: &Vault, model: &ModelName) -> Result<Option<String>, VaultError> {
    let Some(tip) = vault.store.main_tip()? else {
        return Ok(None);
    };
    // main's history, read once per tip and shared with the stage check
    // after this one: a commit on it is answered in memory, and git is
    // asked only about the few that are not (main is linear, so being on
    // its first-parent history is being an ancestor of its tip).
    let history = vault.main_history()?;
    let newer = |commit: ObjectId| -> Result<bool, VaultError> {
        // A commit this clone lacks is one its main has not reached yet; a
        // commit it has is newer when it descends from main.
        Ok(!vault.store.has_object(commit)
            || (!history.contains(commit) && vault.store.is_ancestor(tip, commit)?))
    };
    for prefix in [format!("refs/tags/{model}#"), format!("refs/tags/{model}@")] {
        for (name, id) in vault.store.refs_with_prefix(&prefix)? {
            let short = name.trim_start_matches("refs/tags/");
            let Ok(commit) = vault.peel_to_commit(id) else {
                continue;
            };
            if newer(commit)? {
                return Ok(Some(format!(
                    "tag {short} points at commit {commit}, which is newer than this clone's main ({tip})"
                )));
            }
            // The main commit a promotion or approval says it was made on.
            let Ok((_, data)) = vault.store.object(id) else {
                continue;
            };
            let Ok(tag) = crate::store::objects::parse_tag(&data) else {
                continue;
            };
            let trailers = crate::model::trailers::trailers(&tag.message);
            if let Some(record) =
                crate::model::trailers::trailer(&trailers, crate::model::approval::RECORD_TRAILER)
                    .and_then(|r| r.parse::<ObjectId>().ok())
            {
                if newer(record)? {
                    return Ok(Some(format!(
                        "tag {short} was made on main at {record}, which this clone's main ({tip}) has not reached"
                    )));
                }
            }
        }
    }
    Ok(None)
}

/// Why `m#stage` names no version, truthfully: never promoted there, or
/// the version last promoted there has moved on.
fn serves_nothing(m: &ModelName, head: &StageHead) -> String {
    let stage = head.stage;
    match &head.state {
        StageState::MovedOn { version, to, tag } => format!(
            "serves no version: {m}@{version}, the last version promoted to {stage}, has moved on to {to} ({tag}); promote a version to {stage}{}",
            if stage == Stage::Production {
                " or roll one back"
            } else {
                ""
            }
        ),
        _ => format!(
            "no version of {m} has been promoted to {stage} (run mvault sync to fetch the server's promotions)"
        ),
    }
}

fn broken(b: AuditBreak) -> VaultError {
    VaultError::RecordBroken {
        object: b.object,
        rule: b.rule,
        detail: b.detail,
    }
}
