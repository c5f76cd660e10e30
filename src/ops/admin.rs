//! Creating a vault and changing its policy.
//!
//! A policy change is one admin-signed commit that carries the new
//! `.mvault/policy.toml` together with every key ring the change affects:
//! a new reader gets the ring re-wrapped to them; a removed reader causes a
//! new data-key generation (future versions) because they may have kept the
//! old key. Old versions stay readable to whoever already had their key;
//! that is true of every system of this kind.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;
use ssh_key::PublicKey;
use time::OffsetDateTime;

use crate::crypto::{self, DataKey, KeyRing, Signer, SshIdentity};
use crate::model::names::{ModelName, Stage};
use crate::model::policy::{
    check_glob, EnvironmentChange, EnvironmentName, EnvironmentSpec, GlobWarning,
    ModelSettingsEdit, Policy, PolicyError, Role, StageRuleEdit, DEFAULT_DEPLOY_ROLE, POLICY_PATH,
};
use crate::ops::register::signer_user;
use crate::ops::sync;
use crate::rules::context::ROOT_KEY_TRAILER;
use crate::store::{Actor, RefUpdate, Store, MAIN_REF};
use crate::vault::{rfc3339, Vault, VaultError};

/// The attributes every vault commits: blobs are binary and never deltified.
pub const GITATTRIBUTES: &str = "# mvault: key rings and parts (named by their 64-hex digest) are binary, incompressible and never deltified\n.mvault/keys/** binary -delta\n????????????????????????????????????????????????????????????????  binary -delta\n";

/// Sparse-checkout patterns: a checkout shows manifests and policy, never blobs.
pub const SPARSE_PATTERNS: &str = "/*\n!blobs/\n";

/// What `init` made.
#[derive(Debug, Clone, Serialize)]
pub struct InitOutcome {
    pub path: String,
    pub admin: String,
    pub fingerprint: String,
    pub commit: String,
}

/// `mvault init DIR --admin-key KEY.pub`.
pub fn init(
    dir: &Path,
    admin: &str,
    admin_key: &PublicKey,
    signer: &SshIdentity,
    now: OffsetDateTime,
) -> Result<InitOutcome, VaultError> {
    if signer.public_key().key_data() != admin_key.key_data() {
        return Err(VaultError::Input {
            path: signer.path().display().to_string(),
            reason: format!(
                "the signing key ({}) is not the admin key ({}); the first commit must be signed by the admin: pass --key with the admin's private key",
                crypto::fingerprint(signer.public_key()),
                crypto::fingerprint(admin_key)
            ),
        });
    }
    if dir.join(".git").exists() || dir.join("HEAD").exists() {
        return Err(VaultError::Input {
            path: dir.display().to_string(),
            reason: "is already a git repository".into(),
        });
    }
    let policy = Policy::initial(admin, admin_key);
    let store = Store::init(dir)?;
    let upserts = vec![
        (
            POLICY_PATH.to_owned(),
            store.write_blob(policy.to_toml().as_bytes())?,
        ),
        (
            ".gitattributes".to_owned(),
            store.write_blob(GITATTRIBUTES.as_bytes())?,
        ),
    ];
    let tree = store.edit_tree(None, &upserts)?;
    let actor = Actor {
        name: admin.to_owned(),
        time: now.unix_timestamp(),
    };
    // The vault records its root key, so that a replay and the client's
    // pre-push judge root-signed commits as the server does.
    let message = format!(
        "init vault\n\nMvault-Action: init\nMvault-Admin: {admin} {fp}\n{ROOT_KEY_TRAILER}: {fp}\n",
        fp = crypto::fingerprint(admin_key)
    );
    let commit = store.write_signed_commit(tree, &[], &actor, &message, signer)?;
    store.update_refs(&[RefUpdate {
        name: MAIN_REF.into(),
        expected: None,
        new: Some(commit),
        reason: "init".into(),
    }])?;
    store.git(&["config", "--local", "core.sparseCheckout", "true"])?;
    let info = store.git_dir().join("info");
    std::fs::create_dir_all(&info).map_err(|e| VaultError::Io {
        path: info.display().to_string(),
        source: e,
    })?;
    std::fs::write(info.join("sparse-checkout"), SPARSE_PATTERNS).map_err(|e| VaultError::Io {
        path: info.display().to_string(),
        source: e,
    })?;
    store.git(&["read-tree", "-m", "-u", "HEAD"])?;
    Ok(InitOutcome {
        path: dir.display().to_string(),
        admin: admin.to_owned(),
        fingerprint: crypto::fingerprint(admin_key),
        commit: commit.to_string(),
    })
}

/// A change to the policy.
#[derive(Debug, Clone)]
pub enum PolicyChange {
    AddUser {
        name: String,
        key: PublicKey,
        expires: Option<time::Date>,
    },
    RemoveUser {
        name: String,
    },
    Grant {
        user: String,
        role: crate::model::policy::Role,
        models: String,
    },
    Revoke {
        user: String,
        role: crate::model::policy::Role,
        models: String,
    },
    /// `policy rule …`: a stage rule or model settings.
    Rule(RuleChange),
    /// `mvault policy rule env add`.
    EnvAdd(EnvironmentSpec),
    /// `mvault policy rule env change`.
    EnvChange {
        name: EnvironmentName,
        change: EnvironmentChange,
    },
    /// `mvault policy rule env remove`.
    EnvRemove {
        name: EnvironmentName,
    },
    /// `mvault policy server-key`: pin (or, `None`, unpin) the key the
    /// server signs receipts and timestamps with.
    ServerKey {
        key: Option<PublicKey>,
    },
}

/// A change to the rules of the policy (`mvault policy rule …`). Each is
/// keyed by what the first-match lookup reads: a stage rule by its stage
/// and glob, model settings by their glob.
#[derive(Debug, Clone)]
pub enum RuleChange {
    /// Add or change a `[[stages]]` rule.
    SetStage(StageRuleEdit),
    /// Remove a `[[stages]]` rule.
    RemoveStage { stage: Stage, models: String },
    /// Add or change a `[[models]]` entry.
    SetModel(ModelSettingsEdit),
    /// Remove a `[[models]]` entry.
    RemoveModel { models: String },
}

impl RuleChange {
    fn describe(&self) -> String {
        let role = |r: &Option<Role>| r.map(|r| r.to_string());
        let num = |n: &Option<u32>| n.map(|n| n.to_string());
        let set = |pairs: Vec<(&str, Option<String>)>| {
            pairs
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| format!(" {k}={v}")))
                .collect::<String>()
        };
        match self {
            RuleChange::SetStage(e) => format!(
                "rule stage set {} {}{}",
                e.stage,
                e.models,
                set(vec![
                    ("promote_role", role(&e.promote_role)),
                    ("approvals", num(&e.approvals)),
                    ("approver_role", role(&e.approver_role)),
                    (
                        "allow_self_approval",
                        e.allow_self_approval.map(|b| b.to_string())
                    ),
                    ("require_ticket", e.require_ticket.map(|b| b.to_string())),
                    ("rollback_role", role(&e.rollback_role)),
                ])
            ),
            RuleChange::RemoveStage { stage, models } => {
                format!("rule stage remove {stage} {models}")
            }
            RuleChange::SetModel(e) => format!(
                "rule model set {}{}{}",
                e.models,
                set(vec![
                    ("retention_days", num(&e.retention_days)),
                    ("purge_role", role(&e.purge_role)),
                    ("max_versions", num(&e.max_versions)),
                    (
                        "allowed_environments",
                        e.allowed_environments.as_ref().map(|l| l.join(",")),
                    ),
                ]),
                e.unset
                    .iter()
                    .map(|k| format!(" -{}", k.as_str()))
                    .collect::<String>()
            ),
            RuleChange::RemoveModel { models } => format!("rule model remove {models}"),
        }
    }

    /// The glob the change names.
    fn glob(&self) -> &str {
        match self {
            RuleChange::SetStage(e) => &e.models,
            RuleChange::RemoveStage { models, .. } | RuleChange::RemoveModel { models } => models,
            RuleChange::SetModel(e) => &e.models,
        }
    }

    fn apply(&self, policy: &mut Policy) -> Result<bool, PolicyError> {
        match self {
            RuleChange::SetStage(e) => policy.set_stage_rule(e),
            RuleChange::RemoveStage { stage, models } => policy.remove_stage_rule(*stage, models),
            RuleChange::SetModel(e) => policy.set_model_settings(e),
            RuleChange::RemoveModel { models } => policy.remove_model_settings(models),
        }
    }
}

impl PolicyChange {
    fn describe(&self) -> String {
        match self {
            PolicyChange::AddUser { name, key, expires } => format!(
                "add-user {name} {}{}",
                crypto::fingerprint(key),
                expires.map(|d| format!(" expires {d}")).unwrap_or_default()
            ),
            PolicyChange::RemoveUser { name } => format!("remove-user {name}"),
            PolicyChange::Grant { user, role, models } => format!("grant {user} {role} {models}"),
            PolicyChange::Revoke { user, role, models } => format!("revoke {user} {role} {models}"),
            PolicyChange::Rule(r) => r.describe(),
            PolicyChange::EnvAdd(e) => format!(
                "env-add {} stage {} models {} deploy_role {}",
                e.name,
                e.stage,
                e.models,
                e.deploy_role.unwrap_or(DEFAULT_DEPLOY_ROLE)
            ),
            PolicyChange::EnvChange { name, change } => {
                let mut s = format!("env-change {name}");
                if let Some(st) = change.stage {
                    s.push_str(&format!(" stage {st}"));
                }
                if let Some(m) = &change.models {
                    s.push_str(&format!(" models {m}"));
                }
                if let Some(r) = change.deploy_role {
                    s.push_str(&format!(" deploy_role {r}"));
                }
                s
            }
            PolicyChange::EnvRemove { name } => format!("env-remove {name}"),
            PolicyChange::ServerKey { key: Some(k) } => {
                format!("server-key {}", crypto::fingerprint(k))
            }
            PolicyChange::ServerKey { key: None } => "server-key removed".into(),
        }
    }
}

/// What a policy change did.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyOutcome {
    pub change: String,
    pub commit: String,
    /// Key rings re-wrapped to a new reader set.
    pub rewrapped: Vec<String>,
    /// Key rings given a new data-key generation.
    pub rotated: Vec<String>,
    pub pushed: Option<String>,
    /// The glob the change names, when it matches no model of the vault
    /// (a grant on `*` for `nlp/bert`, say), with one that would.
    pub warnings: Vec<GlobWarning>,
}

/// Apply a policy change as one admin-signed commit.
pub fn change_policy(
    vault: &Vault,
    change: PolicyChange,
    signer: &SshIdentity,
    now: OffsetDateTime,
    push: bool,
) -> Result<PolicyOutcome, VaultError> {
    vault.store.ensure_config()?;
    let (tip, tree) = vault.main()?;
    let old = vault.policy_at(tree)?;
    let user = signer_user(&old, signer)?;
    old.check_admin(&user, now)?;
    let mut new = old.clone();
    let bad = |e: crate::model::policy::PolicyError| VaultError::Policy {
        path: POLICY_PATH.into(),
        source: e,
    };
    let changed = match &change {
        PolicyChange::AddUser { name, key, expires } => {
            new.add_user(name, key, *expires).map_err(bad)?;
            true
        }
        PolicyChange::RemoveUser { name } => new.remove_user(name).map_err(bad)?,
        PolicyChange::Grant { user, role, models } => {
            if !new.users.contains_key(user) {
                return Err(VaultError::Input {
                    path: user.clone(),
                    reason:
                        "no such user in the policy; add them first with mvault policy add-user"
                            .into(),
                });
            }
            new.grant(user, *role, models).map_err(bad)?
        }
        PolicyChange::Revoke { user, role, models } => {
            new.revoke(user, *role, models).map_err(bad)?
        }
        PolicyChange::Rule(r) => r.apply(&mut new).map_err(bad)?,
        PolicyChange::EnvAdd(spec) => {
            new.add_environment(spec).map_err(bad)?;
            true
        }
        PolicyChange::EnvChange { name, change } => {
            new.change_environment(name, change).map_err(bad)?
        }
        PolicyChange::EnvRemove { name } => {
            new.remove_environment(name).map_err(bad)?;
            true
        }
        PolicyChange::ServerKey { key } => new.set_server_key(key.as_ref()),
    };
    let known: Vec<ModelName> = vault.models(tree)?.into_keys().collect();
    let warnings: Vec<GlobWarning> = match &change {
        PolicyChange::Grant { models, .. } => check_glob("--models", models, &known),
        PolicyChange::Rule(r @ (RuleChange::SetStage(_) | RuleChange::SetModel(_))) => {
            check_glob("--models", r.glob(), &known)
        }
        _ => None,
    }
    .into_iter()
    .collect();
    if !changed {
        return Err(VaultError::Input {
            path: POLICY_PATH.into(),
            reason: format!("{} changes nothing", change.describe()),
        });
    }
    if !new.has_active_admin(now) {
        return Err(VaultError::Input {
            path: POLICY_PATH.into(),
            reason: "the change would leave no admin (ml_admin on **); grant another admin first"
                .into(),
        });
    }
    let mut upserts = vec![(
        POLICY_PATH.to_owned(),
        vault.store.write_blob(new.to_toml().as_bytes())?,
    )];
    let mut rewrapped = Vec::new();
    let mut rotated = Vec::new();
    for model in vault.models(tree)?.into_keys() {
        let path = model.keyring_path();
        let Some(sealed) = vault.store.read_path(tree, &path)? else {
            continue;
        };
        // Who can open the ring now is what its age header says, not what
        // the old policy says: an expired user still holds the old wrapping.
        let before: BTreeSet<String> = crypto::age_header_stanzas(&sealed)
            .unwrap_or_default()
            .into_iter()
            .filter(|(kind, _)| kind == "ssh-ed25519")
            .filter_map(|(_, args)| args.into_iter().next())
            .collect();
        let after: BTreeSet<String> = new
            .readers(&model, now)
            .iter()
            .map(|(_, k)| crypto::ssh_stanza_tag(k))
            .collect();
        if before == after {
            continue;
        }
        let mut ring = KeyRing::open(&sealed, signer).map_err(|e| VaultError::NoReadAccess {
            model: model.to_string(),
            reason: format!("the admin key does not open {path}: {e}"),
        })?;
        if !before.is_subset(&after) {
            ring.generations.push(DataKey::generate(&rfc3339(now)));
            rotated.push(model.to_string());
        } else {
            rewrapped.push(model.to_string());
        }
        let readers: Vec<PublicKey> = new
            .readers(&model, now)
            .into_iter()
            .map(|(_, k)| k.clone())
            .collect();
        let sealed = ring
            .seal(model.as_str(), &readers)
            .map_err(|e| VaultError::Decrypt {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        upserts.push((path, vault.store.write_blob(&sealed)?));
    }
    let new_tree = vault.store.edit_tree(Some(tree), &upserts)?;
    let mut message = format!(
        "policy: {}\n\nMvault-Action: policy\nMvault-Policy-Change: {}\n",
        change.describe(),
        change.describe()
    );
    for m in &rewrapped {
        message.push_str(&format!("Mvault-Key-Rewrap: {m}\n"));
    }
    for m in &rotated {
        message.push_str(&format!("Mvault-Key-Rotation: {m}\n"));
    }
    let actor = Actor {
        name: user,
        time: crate::ops::register::not_before_parent(vault, tip, now)?.unix_timestamp(),
    };
    let commit = vault
        .store
        .write_signed_commit(new_tree, &[tip], &actor, &message, signer)?;
    vault.store.update_refs(&[RefUpdate {
        name: MAIN_REF.into(),
        expected: Some(tip),
        new: Some(commit),
        reason: format!("policy: {}", change.describe()),
    }])?;
    sync::refresh_worktree(vault, tip, commit);
    let pushed = if push {
        sync::push_main(vault, tip, commit)?
    } else {
        None
    };
    Ok(PolicyOutcome {
        change: change.describe(),
        commit: commit.to_string(),
        rewrapped,
        rotated,
        pushed,
        warnings,
    })
}

/// The models on main, what glob warnings compare with.
pub fn model_names(vault: &Vault) -> Result<Vec<ModelName>, VaultError> {
    let (_, tree) = vault.main()?;
    Ok(vault.models(tree)?.into_keys().collect())
}

/// Check a policy file; `Ok` carries what it holds, and a warning for
/// each glob that matches none of `known` (the models of the vault the
/// check runs in; none outside a vault).
pub fn check_policy_text(
    text: &str,
    known: &[ModelName],
) -> Result<PolicySummary, crate::model::policy::PolicyError> {
    let p = Policy::parse(text)?;
    Ok(PolicySummary {
        warnings: p.unmatched_globs(known),
        users: p.users.len(),
        grants: p.grants.len(),
        stage_rules: p.stages.len(),
        model_settings: p.models.len(),
        admins: p
            .users
            .keys()
            .filter(|u| p.check_admin(u, crate::vault::now()).is_ok())
            .count(),
    })
}

/// What a policy that parses holds (`mvault policy check`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicySummary {
    pub users: usize,
    pub grants: usize,
    pub stage_rules: usize,
    /// `[[models]]` entries.
    pub model_settings: usize,
    /// Users who are admins now (expired ones do not count).
    pub admins: usize,
    /// Globs that match none of the vault's models (not errors).
    pub warnings: Vec<GlobWarning>,
}

impl std::fmt::Display for PolicySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} users, {} grants, {} stage rules, {} model settings, {} admins",
            self.users, self.grants, self.stage_rules, self.model_settings, self.admins
        )
    }
}
