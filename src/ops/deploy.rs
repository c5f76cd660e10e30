//! `mvault deploy REF --env ENV [--reason TEXT]`: record on `main`, signed,
//! that a version went to an environment; and `mvault deployments`, what
//! is deployed where and how it got there.
//!
//! A deployment is a commit that does only that: it adds or replaces
//! `deployments/<env>/<model>/_deployment.toml` (docs/formats.md). The
//! client checks what the hook will check (rules 79 to 82), from the same
//! policy questions ([`Policy::may_deploy_to`], [`Policy::check_deployer`])
//! and the same stage definition, so a refusal reaches the user before
//! anything is written. mvault records the deployment; rolling the files
//! out is the serving side's work (`mvault pull REF --env ENV`).

use serde::Serialize;
use time::OffsetDateTime;

use crate::audit::events::{events, Event, Filter};
use crate::crypto::SshIdentity;
use crate::model::deployment::{check_reason, deploy_message, deployment_path, DeploymentRecord};
use crate::model::manifest::Sha256Digest;
use crate::model::names::{ModelName, Stage, Version, VersionRef};
use crate::model::policy::{Environment, Policy};
use crate::ops::register::{not_before_parent, signer_user};
use crate::ops::sync;
use crate::store::{Actor, RefUpdate, MAIN_REF};
use crate::vault::{rfc3339, Vault, VaultError};
use crate::verify::replay;

/// What a deployment did.
#[derive(Debug, Clone, Serialize)]
pub struct DeployOutcome {
    pub model: String,
    pub version: String,
    pub environment: String,
    pub stage: String,
    pub manifest_sha256: String,
    pub deployed_by: String,
    pub time: String,
    pub reason: Option<String>,
    /// The version the environment ran before, if any.
    pub previous: Option<String>,
    pub commit: String,
    /// The remote it was pushed to; `None` when kept local.
    pub pushed: Option<String>,
}

/// The environment `model@version` may go to, or why not: the policy
/// defines `env` and lets it serve the model, and the version is in the
/// stage it requires, as the verified promotion chain says. What `deploy`
/// and `pull --env` both ask.
pub fn check_deployable<'p>(
    vault: &Vault,
    policy: &'p Policy,
    model: &ModelName,
    version: &Version,
    env: &str,
    now: i64,
) -> Result<(&'p Environment, Stage), VaultError> {
    let refuse = |reason: String, hint: String| VaultError::NotDeployable {
        model: model.to_string(),
        version: version.to_string(),
        environment: env.to_owned(),
        reason,
        hint,
    };
    let e = policy
        .may_deploy_to(model, env)
        .map_err(|d| refuse(d.to_string(), d.hint()))?;
    let stages =
        replay::verify_model_chain(&vault.store, model, now).map_err(|b| VaultError::Signer {
            what: model.to_string(),
            signer: b.object,
            reason: format!("breaks the promotion chain: {}: {}", b.rule, b.detail),
        })?;
    let stage = stages.stage_of(&version.to_string()).stage;
    if stage != e.stage {
        return Err(refuse(
            format!("it is in {stage}; {env} takes versions in {}", e.stage),
            format!(
                "deploy what {} serves (mvault deploy {model}#{} --env {env}), or promote the version first",
                e.stage, e.stage
            ),
        ));
    }
    Ok((e, stage))
}

/// Deploy what `r` names to `env`.
#[allow(clippy::too_many_arguments)]
pub fn deploy(
    vault: &Vault,
    r: &VersionRef,
    env: &str,
    reason: Option<&str>,
    signer: &SshIdentity,
    now: OffsetDateTime,
    push: bool,
) -> Result<DeployOutcome, VaultError> {
    vault.store.ensure_config()?;
    if push {
        if let Some(remote) = sync::remote(vault) {
            sync::fetch_checked(vault, &remote, &sync::TagScope::model(r.model()))?;
        }
    }
    let reason = reason.map(str::trim);
    if let Some(text) = reason {
        check_reason(text).map_err(|e| VaultError::Input {
            path: "--reason".into(),
            reason: e.to_string(),
        })?;
    }
    let (model, version) = crate::ops::resolve::resolve(vault, r)?;
    let rec = vault.record(&model, &version)?;
    vault.verify_manifest_signature(&rec)?;
    let (tip, tree) = vault.main()?;
    let policy = vault.policy_at(tree)?;
    let user = signer_user(&policy, signer)?;
    let (environment, stage) =
        check_deployable(vault, &policy, &model, &version, env, now.unix_timestamp())?;
    policy.check_deployer(&user, &model, environment, now)?;
    let path = deployment_path(&environment.name, &model);
    let previous = vault
        .store
        .read_path(tree, &path)?
        .and_then(|b| DeploymentRecord::parse(&String::from_utf8_lossy(&b)).ok())
        .map(|p| p.version.to_string());
    let when = not_before_parent(vault, tip, now)?;
    let record = DeploymentRecord {
        environment: environment.name.clone(),
        model: model.clone(),
        version: version.clone(),
        stage,
        manifest_sha256: Sha256Digest::of(rec.manifest_text.as_bytes()).to_hex(),
        deployed_by: user.clone(),
        time: rfc3339(when),
        reason: reason.map(str::to_owned),
    };
    let text = record.to_canonical();
    DeploymentRecord::parse(&text).map_err(|e| VaultError::Input {
        path: "--reason".into(),
        reason: e.to_string(),
    })?;
    let blob = vault.store.write_blob(text.as_bytes())?;
    let new_tree = vault.store.edit_tree(Some(tree), &[(path, blob)])?;
    let actor = Actor {
        name: user.clone(),
        time: when.unix_timestamp(),
    };
    let commit = vault.store.write_signed_commit(
        new_tree,
        &[tip],
        &actor,
        &deploy_message(&record),
        signer,
    )?;
    vault.store.update_refs(&[RefUpdate {
        name: MAIN_REF.into(),
        expected: Some(tip),
        new: Some(commit),
        reason: format!("deploy {model}@{version} to {}", environment.name),
    }])?;
    sync::refresh_worktree(vault, tip, commit);
    let pushed = if push {
        sync::push_main(vault, tip, commit)?
    } else {
        None
    };
    Ok(DeployOutcome {
        model: model.to_string(),
        version: version.to_string(),
        environment: environment.name.to_string(),
        stage: stage.to_string(),
        manifest_sha256: record.manifest_sha256,
        deployed_by: user,
        time: record.time,
        reason: record.reason,
        previous,
        commit: commit.to_string(),
        pushed,
    })
}

/// What runs in one environment: the newest deployment of one model there.
#[derive(Debug, Clone, Serialize)]
pub struct CurrentDeployment {
    pub environment: String,
    pub model: String,
    pub version: String,
    pub stage: String,
    pub manifest_sha256: String,
    pub deployed_by: String,
    pub time: String,
    pub reason: Option<String>,
}

impl From<DeploymentRecord> for CurrentDeployment {
    fn from(r: DeploymentRecord) -> Self {
        CurrentDeployment {
            environment: r.environment.to_string(),
            model: r.model.to_string(),
            version: r.version.to_string(),
            stage: r.stage.to_string(),
            manifest_sha256: r.manifest_sha256,
            deployed_by: r.deployed_by,
            time: r.time,
            reason: r.reason,
        }
    }
}

/// `mvault deployments [MODEL]`: what is deployed where, and every
/// deployment in order.
#[derive(Debug, Clone, Serialize)]
pub struct Deployments {
    /// The newest deployment per environment and model, by environment
    /// then model.
    pub current: Vec<CurrentDeployment>,
    /// Every deployment, oldest first (`deploy` events of `mvault log`).
    pub history: Vec<Event>,
}

/// What is deployed where, from main's verified record; only `model`'s
/// when given.
pub fn deployments(
    vault: &Vault,
    model: Option<&ModelName>,
    now: i64,
) -> Result<Deployments, VaultError> {
    replay::verify_main(&vault.store, now).map_err(|b| VaultError::RecordBroken {
        object: b.object,
        rule: b.rule,
        detail: b.detail,
    })?;
    let (_, tree) = vault.main()?;
    let current = vault
        .deployments(tree, model)?
        .into_iter()
        .map(CurrentDeployment::from)
        .collect();
    let filter = Filter {
        model: match model {
            Some(m) => Some(
                globset::Glob::new(&globset::escape(m.as_str()))
                    .map_err(|e| VaultError::Input {
                        path: m.to_string(),
                        reason: e.to_string(),
                    })?
                    .compile_matcher(),
            ),
            None => None,
        },
        actions: vec!["deploy".into()],
        ..Filter::default()
    };
    let history = events(vault, &filter)?;
    Ok(Deployments { current, history })
}
