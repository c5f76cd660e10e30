//! A deploy commit: the signed record that one version of a model went to
//! one environment.
//!
//! Checks, in order, each citing what it stops:
//! 1. trailers name one model, one version and one environment, and the
//!    version is in the vault (a record for a version that never existed);
//! 2. the policy in force defines the environment and lets it serve the
//!    model (a deployment to a place the policy never named, or of a model
//!    the environment may not run);
//! 3. the signer and the pusher hold the environment's deploy role on the
//!    model (a deployer without the role);
//! 4. the change is exactly the record `deployments/<env>/<model>/_deployment.toml`
//!    added or replaced, nothing else (a record mixed with a version or a
//!    policy change; a record filed under another model's path);
//! 5. the record is canonical and names the trailers' version and
//!    environment, the manifest the version has, the signer, and the
//!    commit's own date (a record for one thing under the trailers of
//!    another; a backdated record, since the commit's date itself cannot
//!    run before its parent's nor ahead of the server's clock);
//! 6. the version is in the stage the environment requires, by the one
//!    definition of a version's stage (its promotion tags on main up to
//!    the parent commit), and the record says that stage.

use super::{Action, CommitUnderJudgement, CommitVerdict};
use crate::model::deployment::{self, DeploymentRecord, ENVIRONMENT_TRAILER};
use crate::model::manifest::Sha256Digest;
use crate::model::names;
use crate::model::policy::{EnvironmentDenial, EnvironmentName};
use crate::model::trailers::trailer;
use crate::rules::source;
use crate::rules::{escape, Accepted, Refusal, Rule};
use crate::store::objects::EntryKind;

const HINT: &str = "deploy with mvault deploy MODEL#STAGE --env ENVIRONMENT";

pub(super) fn judge_deploy(j: &CommitUnderJudgement<'_>) -> Result<CommitVerdict, Refusal> {
    let bad = |rule: Rule, detail: String| j.refuse(rule, detail, HINT);
    let internal = |e: crate::store::StoreError| Refusal::internal(j.subject, e);
    // 1. One model, version and environment; the version exists.
    let (model, version) = j.model_and_version(HINT)?;
    let env_s = trailer(j.trailers, ENVIRONMENT_TRAILER).ok_or_else(|| {
        bad(
            Rule::BadTrailers,
            format!("no single {ENVIRONMENT_TRAILER} trailer"),
        )
    })?;
    let env_name =
        EnvironmentName::parse(env_s).map_err(|e| bad(Rule::BadName, escape(&e.to_string())))?;
    let manifest_path = format!("{}/manifest.toml", names::version_dir(&model, &version));
    let Some(manifest) =
        source::read_path(j.src, j.parent.tree, &manifest_path).map_err(internal)?
    else {
        return Err(bad(
            Rule::BadDeployment,
            format!("{model}@{version} is not in the vault"),
        ));
    };
    let digest = Sha256Digest::of(&manifest).to_hex();
    if trailer(j.trailers, "Mvault-Manifest-Sha256") != Some(digest.as_str()) {
        return Err(bad(
            Rule::BadTrailers,
            format!("Mvault-Manifest-Sha256 does not match {manifest_path} ({digest})"),
        ));
    }
    // 2. The environment, by the policy in force.
    let env = j
        .policy
        .may_deploy_to(&model, env_name.as_str())
        .map_err(|d| {
            let rule = match d {
                EnvironmentDenial::Unknown { .. } => Rule::UnknownEnvironment,
                EnvironmentDenial::NotServed { .. }
                | EnvironmentDenial::NotAllowedForModel { .. } => Rule::EnvironmentNotAllowed,
            };
            j.refuse(rule, escape(&d.to_string()), &d.hint())
        })?;
    // 3. The deploy role, for the signer and the pusher.
    let Some(user) = j.signer.user.as_deref() else {
        return Err(bad(
            Rule::Role,
            "root keys change the policy; deployments are signed by users".into(),
        ));
    };
    let at = j.at();
    let role = |who: &str, what: &str, rule: Rule| {
        j.policy
            .check_deployer(who, &model, env, at)
            .map_err(|d| {
                Refusal::new(
                    rule,
                    j.subject,
                    format!("{what} {}", escape(&d.to_string())),
                    format!(
                        "have someone with {} on {model} deploy, or ask an admin: mvault policy grant {} --role {} --models '{model}'",
                        env.deploy_role, escape(who), env.deploy_role
                    ),
                )
            })
    };
    role(user, "signer", Rule::Role)?;
    if let Some(pusher) = j.ctx.pusher {
        role(pusher, "pusher", Rule::PusherRole)?;
    }
    // 4. Exactly the record, added or replaced.
    let path = deployment::deployment_path(&env_name, &model);
    let mut record = None;
    for c in j.changes {
        if let Some((e, m)) = deployment::parse_deployment_path(&c.path) {
            if c.path != path {
                return Err(bad(
                    Rule::BadDeployment,
                    format!(
                        "{} is the record of {m} in {e}; the trailers name {model} to {env_name}",
                        escape(&c.path)
                    ),
                ));
            }
        }
        if c.path != path {
            return Err(bad(
                Rule::MixedActions,
                format!(
                    "a deploy commit changes {} too; it changes {path} only",
                    escape(&c.path)
                ),
            ));
        }
        record = c.new;
    }
    let Some((id, kind)) = record else {
        return Err(bad(
            Rule::BadDeployment,
            format!("{path} is removed; a deployment record is replaced, never removed"),
        ));
    };
    if kind != EntryKind::Blob {
        return Err(bad(
            Rule::BadFileMode,
            format!("{path} is a {kind:?}; only regular files are stored"),
        ));
    }
    // 5. The record says what the commit says, and is dated as it.
    let text = j.record_text(id, &path, Rule::BadDeployment, HINT)?;
    let r = DeploymentRecord::parse(&text).map_err(|e| {
        bad(
            Rule::BadDeployment,
            format!("{path}: {}", escape(&e.to_string())),
        )
    })?;
    if r.model != model || r.version != version || r.environment != env_name {
        return Err(bad(
            Rule::BadDeployment,
            format!(
                "{path} records {}@{} to {}, the trailers {model}@{version} to {env_name}",
                r.model, r.version, r.environment
            ),
        ));
    }
    if r.manifest_sha256 != digest {
        return Err(bad(
            Rule::BadDeployment,
            format!(
                "{path} binds manifest {}, {model}@{version}'s is {digest}",
                r.manifest_sha256
            ),
        ));
    }
    j.record_names_its_commit(
        &path,
        "deployed",
        &r.deployed_by,
        &r.time,
        user,
        Rule::BadDeployment,
        HINT,
    )?;
    // 6. The version is in the environment's stage.
    let stage = j
        .ctx
        .main
        .stage_of(&model, &version, j.commit.parents[0])
        .map_err(internal)?;
    if stage != env.stage {
        return Err(j.refuse(
            Rule::NotInEnvironmentStage,
            format!(
                "{model}@{version} is in {stage}; {env_name} takes versions in {}",
                env.stage
            ),
            &format!(
                "deploy {model}#{} (mvault deploy {model}#{} --env {env_name}), or promote the version first",
                env.stage, env.stage
            ),
        ));
    }
    if r.stage != stage {
        return Err(bad(
            Rule::BadDeployment,
            format!("{path} says stage {}, the version is in {stage}", r.stage),
        ));
    }
    Ok(CommitVerdict {
        accepted: Accepted {
            subject: j.subject.to_owned(),
            what: format!(
                "deploy {model}@{version} to {env_name} by {user} ({})",
                j.id
            ),
        },
        action: Action::Deploy {
            model: model.to_string(),
            version: version.to_string(),
            environment: env_name.to_string(),
        },
        signer: Some(user.to_owned()),
    })
}
