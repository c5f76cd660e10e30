//! Environments: the places a version is deployed to (`prod-eu`,
//! `staging`), each with the stage a version must be in to go there, the
//! models it may serve and the role that may deploy. They live in the
//! policy as `[[environments]]` tables, so who may put what where is code
//! in the repository, changed only by an admin-signed commit.
//!
//! Everything a deployment needs from the policy goes through
//! [`Policy::may_deploy_to`] (is this environment there, and may it serve
//! this model) and [`Policy::check_deployer`] (may this user deploy there):
//! the client, the hook and `pull --env` ask the same two questions.

use globset::GlobMatcher;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{compile_glob, line_col, Denial, Policy, PolicyError, Remedy, Role};
use crate::model::names::{ModelName, Stage};

/// The rule an environment name follows.
pub const ENVIRONMENT_NAME_RULE: &str = "[a-z0-9][a-z0-9._-]{0,63}, one segment (no '/')";

/// The stages an environment may require: a deprecated or archived
/// version is on its way out, never into an environment.
pub const DEPLOYABLE_STAGES: [Stage; 3] = [Stage::Development, Stage::Staging, Stage::Production];

/// The role that deploys when an environment names none: the role that
/// promotes (a release owner), as for stage rules.
pub const DEFAULT_DEPLOY_ROLE: Role = Role::MlEngineer;

/// A checked environment name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnvironmentName(String);

/// A name that breaks [`ENVIRONMENT_NAME_RULE`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment {found:?}: an environment name is {ENVIRONMENT_NAME_RULE}")]
pub struct EnvironmentNameError {
    pub found: String,
}

impl EnvironmentName {
    /// Parse and check a name.
    pub fn parse(s: &str) -> Result<Self, EnvironmentNameError> {
        let mut chars = s.chars();
        let ok = s.len() <= 64
            && chars
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
        if ok {
            Ok(EnvironmentName(s.to_owned()))
        } else {
            Err(EnvironmentNameError {
                found: s.to_owned(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for EnvironmentName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for EnvironmentName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// `[[environments]]` as written.
#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEnvironment {
    name: toml::Spanned<String>,
    stage: toml::Spanned<String>,
    models: toml::Spanned<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deploy_role: Option<toml::Spanned<String>>,
}

/// A checked environment.
#[derive(Debug, Clone)]
pub struct Environment {
    pub name: EnvironmentName,
    /// The stage a version must be in to be deployed here.
    pub stage: Stage,
    /// The glob of models it may serve.
    pub models: String,
    matcher: GlobMatcher,
    /// The role that deploys here (ml_admin always may).
    pub deploy_role: Role,
}

impl Environment {
    /// Whether the environment may serve `model`.
    pub fn serves(&self, model: &ModelName) -> bool {
        self.matcher.is_match(model.as_str())
    }
}

/// What `mvault policy rule env add` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentSpec {
    pub name: EnvironmentName,
    pub stage: Stage,
    pub models: String,
    /// `None`: the default ([`DEFAULT_DEPLOY_ROLE`]), not written.
    pub deploy_role: Option<Role>,
}

/// What `mvault policy rule env change` changes; `None` keeps a field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvironmentChange {
    pub stage: Option<Stage>,
    pub models: Option<String>,
    pub deploy_role: Option<Role>,
}

impl EnvironmentChange {
    /// Whether it changes nothing at all.
    pub fn is_empty(&self) -> bool {
        self.stage.is_none() && self.models.is_none() && self.deploy_role.is_none()
    }
}

/// Why a model may not go to an environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvironmentDenial {
    /// The policy defines no environment of that name.
    #[error("the policy defines no environment {name:?} (known: {})", known_list(.known))]
    Unknown { name: String, known: Vec<String> },
    /// The environment does not serve the model.
    #[error("environment {environment} serves models {models}, not {model}")]
    NotServed {
        environment: String,
        model: String,
        models: String,
    },
    /// The model's settings (`[[models]] allowed_environments`) do not
    /// list the environment.
    #[error("{model} may be deployed only to {} (its allowed_environments), not {environment}", known_list(.allowed))]
    NotAllowedForModel {
        environment: String,
        model: String,
        allowed: Vec<String>,
    },
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "none".into()
    } else {
        known.join(", ")
    }
}

impl EnvironmentDenial {
    /// What would allow it, for hints.
    pub fn hint(&self) -> String {
        match self {
            EnvironmentDenial::Unknown { name, known } => {
                let near = known.iter().find(|k| close(k, name));
                match near {
                    Some(k) => format!("did you mean {k}? (mvault policy show lists the environments)"),
                    None => format!(
                        "ask an admin to define it: mvault policy rule env add {} --stage production --models 'MODEL-GLOB'",
                        crate::model::text::escape(name)
                    ),
                }
            }
            EnvironmentDenial::NotServed {
                environment, model, ..
            } => format!(
                "deploy to an environment that serves {model}, or ask an admin: mvault policy rule env change {environment} --models 'GLOB'"
            ),
            EnvironmentDenial::NotAllowedForModel {
                environment, model, ..
            } => format!(
                "deploy to one of its allowed environments, or ask an admin to add {environment}: mvault policy rule model set --models 'GLOB' --allowed-environments … (the glob of {model}'s entry)"
            ),
        }
    }
}

/// Whether two names are a typo or two apart (edit distance at most 2).
fn close(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut row = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            row.push(sub.min(prev[j + 1] + 1).min(row[j] + 1));
        }
        prev = row;
    }
    prev[b.len()] <= 2
}

/// Compile the `[[environments]]` of a policy whose text is `text`.
pub(super) fn compile(raw: &[RawEnvironment], text: &str) -> Result<Vec<Environment>, PolicyError> {
    let rule =
        |span: std::ops::Range<usize>, field: String, rule: &str, found: &str| PolicyError::Rule {
            line: line_col(text, span.start).0,
            field,
            rule: rule.to_owned(),
            found: found.to_owned(),
        };
    let mut out: Vec<Environment> = Vec::new();
    for (i, e) in raw.iter().enumerate() {
        let field = |f: &str| format!("environments[{i}].{f}");
        let name = EnvironmentName::parse(e.name.get_ref()).map_err(|_| {
            rule(
                e.name.span(),
                field("name"),
                &format!("an environment name is {ENVIRONMENT_NAME_RULE}"),
                e.name.get_ref(),
            )
        })?;
        if out.iter().any(|o| o.name == name) {
            return Err(rule(
                e.name.span(),
                field("name"),
                "each environment is defined once",
                e.name.get_ref(),
            ));
        }
        let stage = Stage::parse(e.stage.get_ref())
            .ok()
            .filter(|s| DEPLOYABLE_STAGES.contains(s))
            .ok_or_else(|| {
                rule(
                    e.stage.span(),
                    field("stage"),
                    "one of development, staging, production",
                    e.stage.get_ref(),
                )
            })?;
        if e.models
            .get_ref()
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(rule(
                e.models.span(),
                field("models"),
                "a glob of model names, without spaces or control characters",
                e.models.get_ref(),
            ));
        }
        let matcher = compile_glob(e.models.get_ref()).map_err(|err| {
            rule(
                e.models.span(),
                field("models"),
                "a glob of model names",
                &err.to_string(),
            )
        })?;
        let deploy_role = match &e.deploy_role {
            None => DEFAULT_DEPLOY_ROLE,
            Some(r) => Role::parse(r.get_ref()).ok_or_else(|| {
                rule(
                    r.span(),
                    field("deploy_role"),
                    "one of viewer, developer, ml_engineer, ml_admin, approver",
                    r.get_ref(),
                )
            })?,
        };
        out.push(Environment {
            name,
            stage,
            models: e.models.get_ref().clone(),
            matcher,
            deploy_role,
        });
    }
    Ok(out)
}

fn spanned<T>(v: T) -> toml::Spanned<T> {
    toml::Spanned::new(0..0, v)
}

impl Policy {
    /// The environment called `name`, if the policy defines it.
    pub fn environment(&self, name: &str) -> Option<&Environment> {
        self.environments.iter().find(|e| e.name.as_str() == name)
    }

    /// Whether `model` may be deployed to environment `env`: the
    /// environment exists and serves the model, and the model's settings
    /// (`[[models]] allowed_environments`), when they list environments,
    /// list this one. The one place that
    /// answers it (the client, the hook and `pull --env` ask here).
    pub fn may_deploy_to(
        &self,
        model: &ModelName,
        env: &str,
    ) -> Result<&Environment, EnvironmentDenial> {
        let Some(e) = self.environment(env) else {
            return Err(EnvironmentDenial::Unknown {
                name: env.to_owned(),
                known: self
                    .environments
                    .iter()
                    .map(|e| e.name.to_string())
                    .collect(),
            });
        };
        if !e.serves(model) {
            return Err(EnvironmentDenial::NotServed {
                environment: e.name.to_string(),
                model: model.to_string(),
                models: e.models.clone(),
            });
        }
        if let Some(allowed) = self.settings_for(model).allowed_environments {
            if !allowed.iter().any(|a| a == env) {
                return Err(EnvironmentDenial::NotAllowedForModel {
                    environment: e.name.to_string(),
                    model: model.to_string(),
                    allowed,
                });
            }
        }
        Ok(e)
    }

    /// Allow `user` to deploy `model` to `env` at `now`: an unexpired key
    /// and the environment's deploy role, or ml_admin, on the model.
    pub fn check_deployer(
        &self,
        user: &str,
        model: &ModelName,
        env: &Environment,
        now: OffsetDateTime,
    ) -> Result<(), Denial> {
        let deny = |have: String, need: String, remedy: Remedy| Denial {
            user: user.to_owned(),
            model: model.to_string(),
            ability: "deploy",
            have,
            need,
            remedy,
        };
        self.check_active_user(user, model, "deploy", now)?;
        if self.has_role(user, model, env.deploy_role) {
            return Ok(());
        }
        Err(deny(
            self.describe_roles(user, model),
            format!("{} (to {})", env.deploy_role, env.name),
            Remedy::Grant(env.deploy_role),
        ))
    }

    /// Define a new environment (policy edit).
    pub fn add_environment(&mut self, spec: &EnvironmentSpec) -> Result<(), PolicyError> {
        if self.environment(spec.name.as_str()).is_some() {
            return Err(PolicyError::Rule {
                line: 0,
                field: "environments".into(),
                rule:
                    "each environment is defined once; change it with mvault policy rule env change"
                        .into(),
                found: spec.name.to_string(),
            });
        }
        let mut raw = self.raw.clone();
        raw.environments.push(RawEnvironment {
            name: spanned(spec.name.to_string()),
            stage: spanned(spec.stage.as_str().to_owned()),
            models: spanned(spec.models.clone()),
            deploy_role: spec.deploy_role.map(|r| spanned(r.as_str().to_owned())),
        });
        self.replace(raw)
    }

    /// Change an environment (policy edit); returns false when it changes
    /// nothing. An unknown name is an error.
    pub fn change_environment(
        &mut self,
        name: &EnvironmentName,
        change: &EnvironmentChange,
    ) -> Result<bool, PolicyError> {
        let mut raw = self.raw.clone();
        let Some(e) = raw
            .environments
            .iter_mut()
            .find(|e| e.name.get_ref() == name.as_str())
        else {
            return Err(unknown(name));
        };
        let before = (
            e.stage.get_ref().clone(),
            e.models.get_ref().clone(),
            e.deploy_role.as_ref().map(|r| r.get_ref().clone()),
        );
        if let Some(s) = change.stage {
            e.stage = spanned(s.as_str().to_owned());
        }
        if let Some(m) = &change.models {
            e.models = spanned(m.clone());
        }
        if let Some(r) = change.deploy_role {
            e.deploy_role = Some(spanned(r.as_str().to_owned()));
        }
        let after = (
            e.stage.get_ref().clone(),
            e.models.get_ref().clone(),
            e.deploy_role.as_ref().map(|r| r.get_ref().clone()),
        );
        if before == after {
            return Ok(false);
        }
        self.replace(raw)?;
        Ok(true)
    }

    /// Remove an environment (policy edit). An unknown name is an error.
    pub fn remove_environment(&mut self, name: &EnvironmentName) -> Result<(), PolicyError> {
        let mut raw = self.raw.clone();
        let before = raw.environments.len();
        raw.environments
            .retain(|e| e.name.get_ref() != name.as_str());
        if raw.environments.len() == before {
            return Err(unknown(name));
        }
        self.replace(raw)
    }
}

fn unknown(name: &EnvironmentName) -> PolicyError {
    PolicyError::Rule {
        line: 0,
        field: "environments".into(),
        rule: "an environment the policy defines".into(),
        found: name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHd9ghdDaDwXwdAnm6LdD0mdBN2HGNHUSqdn5ebgGy5N a";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPpQgt0aS5dHZbjwkZd+j3fPAAuFbHuDT8Pp5dAS8oOg b";

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap()
    }

    fn base() -> Policy {
        let a = crypto::parse_public_key(KEY_A).unwrap();
        let b = crypto::parse_public_key(KEY_B).unwrap();
        let mut p = Policy::initial("admin", &a);
        p.add_user("alice", &b, None).unwrap();
        p.grant("alice", Role::MlEngineer, "nlp/*").unwrap();
        p
    }

    fn with(extra: &str) -> Result<Policy, PolicyError> {
        Policy::parse(&format!("{}\n{extra}", base().to_toml()))
    }

    fn bert() -> ModelName {
        ModelName::parse("nlp/bert").unwrap()
    }

    #[test]
    fn an_environment_round_trips_with_its_default_role() {
        let p = with(
            "[[environments]]\nname = \"prod-eu\"\nstage = \"production\"\nmodels = \"nlp/**\"\n",
        )
        .unwrap();
        let e = p.environment("prod-eu").unwrap();
        assert_eq!(e.stage, Stage::Production);
        assert_eq!(e.deploy_role, Role::MlEngineer);
        assert!(e.serves(&bert()));
        assert!(!e.serves(&ModelName::parse("vision/resnet").unwrap()));
        // The default is not written back.
        let again = Policy::parse(&p.to_toml()).unwrap();
        assert!(!again.to_toml().contains("deploy_role"));
        assert_eq!(again.environments.len(), 1);
        // No environments: none written.
        assert!(!base().to_toml().contains("environments"));
    }

    #[test]
    fn a_misspelt_key_is_refused_with_line_and_column() {
        let text = format!(
            "{}\n[[environments]]\nname = \"prod-eu\"\nstage = \"production\"\nmodels = \"**\"\ndeploy_rol = \"approver\"\n",
            base().to_toml()
        );
        let e = Policy::parse(&text).unwrap_err().to_string();
        let line = text
            .lines()
            .position(|l| l.starts_with("deploy_rol"))
            .unwrap()
            + 1;
        assert!(
            e.starts_with(&format!(
                "policy line {line}, column 1: unknown field `deploy_rol`"
            )),
            "{e}"
        );
        assert!(e.contains("`deploy_role`"), "{e}");
    }

    #[test]
    fn bad_values_name_their_field_and_line() {
        for (extra, field, found) in [
            (
                "name = \"Prod\"\nstage = \"production\"\nmodels = \"**\"\n",
                "environments[0].name",
                "Prod",
            ),
            (
                "name = \"a/b\"\nstage = \"production\"\nmodels = \"**\"\n",
                "environments[0].name",
                "a/b",
            ),
            (
                "name = \"p\"\nstage = \"archived\"\nmodels = \"**\"\n",
                "environments[0].stage",
                "archived",
            ),
            (
                "name = \"p\"\nstage = \"prod\"\nmodels = \"**\"\n",
                "environments[0].stage",
                "prod",
            ),
            (
                "name = \"p\"\nstage = \"staging\"\nmodels = \"[\"\n",
                "environments[0].models",
                "",
            ),
            (
                "name = \"p\"\nstage = \"staging\"\nmodels = \"**\"\ndeploy_role = \"god\"\n",
                "environments[0].deploy_role",
                "god",
            ),
        ] {
            let e = with(&format!("[[environments]]\n{extra}")).unwrap_err();
            let PolicyError::Rule {
                line,
                field: f,
                found: got,
                ..
            } = &e
            else {
                panic!("{e}");
            };
            assert_eq!(f, field, "{e}");
            assert!(*line > 0, "{e}");
            assert!(got.contains(found), "{e}");
        }
        // Missing required keys.
        let e = with("[[environments]]\nname = \"p\"\nmodels = \"**\"\n").unwrap_err();
        assert!(e.to_string().contains("missing field `stage`"), "{e}");
        // Twice the same name.
        let one = "[[environments]]\nname = \"p\"\nstage = \"staging\"\nmodels = \"**\"\n";
        let e = with(&format!("{one}{one}")).unwrap_err();
        assert!(e.to_string().contains("defined once"), "{e}");
    }

    #[test]
    fn may_deploy_to_honours_the_models_allowed_environments() {
        let p = with(
            "[[environments]]\nname = \"prod-eu\"\nstage = \"production\"\nmodels = \"**\"\n[[environments]]\nname = \"prod-us\"\nstage = \"production\"\nmodels = \"**\"\n[[models]]\nmodels = \"nlp/**\"\nallowed_environments = [\"prod-eu\"]\n",
        )
        .unwrap();
        assert!(p.may_deploy_to(&bert(), "prod-eu").is_ok());
        let e = p.may_deploy_to(&bert(), "prod-us").unwrap_err();
        assert!(matches!(e, EnvironmentDenial::NotAllowedForModel { .. }));
        assert_eq!(
            e.to_string(),
            "nlp/bert may be deployed only to prod-eu (its allowed_environments), not prod-us"
        );
        // A model the settings do not cover goes wherever the environment serves it.
        let resnet = ModelName::parse("vision/resnet").unwrap();
        assert!(p.may_deploy_to(&resnet, "prod-us").is_ok());
    }

    #[test]
    fn may_deploy_to_names_unknown_and_unserved_environments() {
        let p = with(
            "[[environments]]\nname = \"prod-eu\"\nstage = \"production\"\nmodels = \"vision/**\"\n",
        )
        .unwrap();
        let e = p.may_deploy_to(&bert(), "prod-us").unwrap_err();
        assert!(matches!(e, EnvironmentDenial::Unknown { .. }));
        assert!(e.to_string().contains("known: prod-eu"), "{e}");
        assert!(e.hint().contains("did you mean prod-eu"), "{}", e.hint());
        let e = p.may_deploy_to(&bert(), "prod-eu").unwrap_err();
        assert!(matches!(e, EnvironmentDenial::NotServed { .. }));
        assert_eq!(
            e.to_string(),
            "environment prod-eu serves models vision/**, not nlp/bert"
        );
        let resnet = ModelName::parse("vision/resnet").unwrap();
        assert_eq!(
            p.may_deploy_to(&resnet, "prod-eu").unwrap().stage,
            Stage::Production
        );
        // A policy without environments allows no deployment at all.
        assert!(base().may_deploy_to(&bert(), "prod-eu").is_err());
    }

    #[test]
    fn only_the_deploy_role_or_an_admin_deploys() {
        let mut p = with(
            "[[environments]]\nname = \"prod-eu\"\nstage = \"production\"\nmodels = \"**\"\ndeploy_role = \"approver\"\n",
        )
        .unwrap();
        let env = p.environment("prod-eu").unwrap().clone();
        let d = p.check_deployer("alice", &bert(), &env, now()).unwrap_err();
        assert_eq!(
            d.to_string(),
            "alice has role ml_engineer on nlp/* on nlp/bert; deploy needs approver (to prod-eu)"
        );
        assert_eq!(d.remedy, Remedy::Grant(Role::Approver));
        p.check_deployer("admin", &bert(), &env, now()).unwrap();
        assert!(p.check_deployer("nobody", &bert(), &env, now()).is_err());
        p.grant("alice", Role::Approver, "nlp/bert").unwrap();
        p.check_deployer("alice", &bert(), &env, now()).unwrap();
    }

    #[test]
    fn environments_are_added_changed_and_removed() {
        let mut p = base();
        let name = EnvironmentName::parse("prod-eu").unwrap();
        let spec = EnvironmentSpec {
            name: name.clone(),
            stage: Stage::Production,
            models: "nlp/**".into(),
            deploy_role: None,
        };
        p.add_environment(&spec).unwrap();
        assert!(p.add_environment(&spec).is_err());
        let text = p.to_toml();
        assert!(text.contains("[[environments]]\nname = \"prod-eu\"\nstage = \"production\"\nmodels = \"nlp/**\"\n"), "{text}");
        let change = EnvironmentChange {
            deploy_role: Some(Role::Approver),
            ..Default::default()
        };
        assert!(p.change_environment(&name, &change).unwrap());
        assert!(!p.change_environment(&name, &change).unwrap());
        assert_eq!(
            p.environment("prod-eu").unwrap().deploy_role,
            Role::Approver
        );
        let bad = EnvironmentChange {
            models: Some("[".into()),
            ..Default::default()
        };
        assert!(p.change_environment(&name, &bad).is_err());
        assert_eq!(p.environment("prod-eu").unwrap().models, "nlp/**");
        p.remove_environment(&name).unwrap();
        assert!(p.environment("prod-eu").is_none());
        assert!(p.remove_environment(&name).is_err());
        let other = EnvironmentName::parse("qa").unwrap();
        assert!(p.change_environment(&other, &change).is_err());
    }

    #[test]
    fn environment_names_follow_their_rule() {
        for ok in ["prod-eu", "staging", "eu.1", "0a_b"] {
            EnvironmentName::parse(ok).unwrap();
        }
        for bad in ["", "Prod", "-a", "a/b", ".a", "a b", &"a".repeat(65)] {
            assert!(EnvironmentName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
