//! Per-model settings: the lifecycle the policy gives the models matching
//! a glob (`[[models]]` in `.mvault/policy.toml`).
//!
//! ```toml
//! [[models]]
//! models = "nlp/**"
//! retention_days = 365                      # an archived version's payload is kept this long
//! purge_role = "ml_engineer"                # may purge a version whose retention is due
//! max_versions = 20                         # versions not archived, at most
//! allowed_environments = ["prod-eu", "staging"]
//! ```
//!
//! The first `[[models]]` entry whose glob matches a model gives all of its
//! settings, as for stage rules; a key the entry leaves out has no effect.
//! Values are checked when the policy is compiled, and a bad one names its
//! line and column, so a typo is an error rather than a silent no-op.

use globset::GlobMatcher;
use serde::{Deserialize, Serialize};

use super::{compile_glob, line_col, PolicyError, Role, ENVIRONMENT_NAME_RULE};
use crate::model::names::ModelName;

/// The longest retention the policy accepts: a hundred years.
pub const MAX_RETENTION_DAYS: i64 = 36_500;
/// The largest cap on a model's versions.
pub const MAX_VERSIONS_CAP: i64 = 1_000_000;

/// One `[[models]]` entry as written.
#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawModelSettings {
    pub(super) models: toml::Spanned<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) retention_days: Option<toml::Spanned<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) purge_role: Option<toml::Spanned<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) max_versions: Option<toml::Spanned<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) allowed_environments: Option<toml::Spanned<Vec<toml::Spanned<String>>>>,
}

/// What the policy says about one model's lifecycle.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ModelSettings {
    /// Days an archived version's payload is kept; `None`: kept until an
    /// ml_admin purges it.
    pub retention_days: Option<u32>,
    /// The role that may purge a version whose retention is due (ml_admin
    /// may purge any archived version).
    pub purge_role: Option<Role>,
    /// How many versions not archived the model may have.
    pub max_versions: Option<u32>,
    /// The environments the model may be deployed to; `None`: the policy
    /// does not restrict them here.
    pub allowed_environments: Option<Vec<String>>,
}

/// The settings for the models matching a glob.
#[derive(Debug, Clone)]
pub struct ModelSettingsRule {
    pub models: String,
    matcher: GlobMatcher,
    pub settings: ModelSettings,
}

impl ModelSettingsRule {
    /// Whether the entry covers `model`.
    pub fn covers(&self, model: &ModelName) -> bool {
        self.matcher.is_match(model.as_str())
    }
}

/// Whether `name` is a valid environment name.
pub fn valid_environment_name(name: &str) -> bool {
    super::EnvironmentName::parse(name).is_ok()
}

/// An error at a span: line and column of its start.
pub(super) fn at(
    text: &str,
    span: std::ops::Range<usize>,
    field: String,
    rule: &str,
    found: String,
) -> PolicyError {
    let (line, column) = line_col(text, span.start);
    PolicyError::At {
        line,
        column,
        field,
        rule: rule.to_owned(),
        found,
    }
}

/// The `rollback_role` of `stages[i]`, a rule for `stage`: ml_admin when
/// it names none; only a production rule may name one.
pub(super) fn rollback_role(
    text: &str,
    i: usize,
    stage: crate::model::names::Stage,
    raw: &Option<toml::Spanned<String>>,
) -> Result<Role, PolicyError> {
    let Some(r) = raw else {
        return Ok(Role::MlAdmin);
    };
    let field = format!("stages[{i}].rollback_role");
    let role = Role::parse(r.get_ref()).ok_or_else(|| {
        at(
            text,
            r.span(),
            field.clone(),
            "a role name",
            r.get_ref().clone(),
        )
    })?;
    if stage != crate::model::names::Stage::Production {
        return Err(at(
            text,
            r.span(),
            field,
            "rollback_role belongs to a production rule (a rollback puts a version back in production)",
            r.get_ref().clone(),
        ));
    }
    Ok(role)
}

/// Compile the `[[models]]` entries.
pub(super) fn compile(
    raw: &[RawModelSettings],
    text: &str,
) -> Result<Vec<ModelSettingsRule>, PolicyError> {
    let mut out = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let field = |name: &str| format!("models[{i}].{name}");
        let matcher = compile_glob(r.models.get_ref()).map_err(|e| {
            at(
                text,
                r.models.span(),
                field("models"),
                "a glob of model names",
                e.to_string(),
            )
        })?;
        let bounded = |v: &Option<toml::Spanned<i64>>, name: &str, lo: i64, hi: i64| match v {
            None => Ok(None),
            Some(n) if (lo..=hi).contains(n.get_ref()) => Ok(Some(*n.get_ref() as u32)),
            Some(n) => Err(at(
                text,
                n.span(),
                field(name),
                &format!("an integer from {lo} to {hi}"),
                n.get_ref().to_string(),
            )),
        };
        let retention_days = bounded(&r.retention_days, "retention_days", 0, MAX_RETENTION_DAYS)?;
        let max_versions = bounded(&r.max_versions, "max_versions", 1, MAX_VERSIONS_CAP)?;
        let purge_role = match &r.purge_role {
            None => None,
            Some(p) => {
                let role = Role::parse(p.get_ref()).ok_or_else(|| {
                    at(
                        text,
                        p.span(),
                        field("purge_role"),
                        "one of viewer, developer, ml_engineer, ml_admin, approver",
                        p.get_ref().clone(),
                    )
                })?;
                if retention_days.is_none() {
                    return Err(at(
                        text,
                        p.span(),
                        field("purge_role"),
                        "purge_role purges versions whose retention is due: set retention_days in the same entry",
                        p.get_ref().clone(),
                    ));
                }
                Some(role)
            }
        };
        let allowed_environments = match &r.allowed_environments {
            None => None,
            Some(list) => {
                let mut names: Vec<String> = Vec::new();
                for n in list.get_ref() {
                    if !valid_environment_name(n.get_ref()) {
                        return Err(at(
                            text,
                            n.span(),
                            field("allowed_environments"),
                            &format!("an environment name is {ENVIRONMENT_NAME_RULE}"),
                            n.get_ref().clone(),
                        ));
                    }
                    if names.contains(n.get_ref()) {
                        return Err(at(
                            text,
                            n.span(),
                            field("allowed_environments"),
                            "each environment once",
                            n.get_ref().clone(),
                        ));
                    }
                    names.push(n.get_ref().clone());
                }
                Some(names)
            }
        };
        if out
            .iter()
            .any(|o: &ModelSettingsRule| o.models == *r.models.get_ref())
        {
            return Err(at(
                text,
                r.models.span(),
                field("models"),
                "one [[models]] entry per glob (the first would always win)",
                r.models.get_ref().clone(),
            ));
        }
        out.push(ModelSettingsRule {
            models: r.models.get_ref().clone(),
            matcher,
            settings: ModelSettings {
                retention_days,
                purge_role,
                max_versions,
                allowed_environments,
            },
        });
    }
    Ok(out)
}

/// A change to one `[[models]]` entry, keyed by its glob: each `Some`
/// sets a key, each name in `unset` removes one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelSettingsEdit {
    pub models: String,
    pub retention_days: Option<u32>,
    pub purge_role: Option<Role>,
    pub max_versions: Option<u32>,
    pub allowed_environments: Option<Vec<String>>,
    /// Keys to remove: `retention_days`, `purge_role`, `max_versions`,
    /// `allowed_environments`.
    pub unset: Vec<SettingKey>,
    /// A new entry goes first (it then wins over every other), not last.
    pub first: bool,
}

/// A key of a `[[models]]` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingKey {
    RetentionDays,
    PurgeRole,
    MaxVersions,
    AllowedEnvironments,
}

impl SettingKey {
    /// Every key, in the order the file writes them.
    pub const ALL: [SettingKey; 4] = [
        SettingKey::RetentionDays,
        SettingKey::PurgeRole,
        SettingKey::MaxVersions,
        SettingKey::AllowedEnvironments,
    ];
    /// The key's name in the policy.
    pub fn as_str(self) -> &'static str {
        match self {
            SettingKey::RetentionDays => "retention_days",
            SettingKey::PurgeRole => "purge_role",
            SettingKey::MaxVersions => "max_versions",
            SettingKey::AllowedEnvironments => "allowed_environments",
        }
    }
    /// Parse a key name.
    pub fn parse(s: &str) -> Option<SettingKey> {
        SettingKey::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

fn spanned<T>(v: T) -> toml::Spanned<T> {
    toml::Spanned::new(0..0, v)
}

impl super::Policy {
    /// The settings of `model`: the first `[[models]]` entry whose glob
    /// matches it, or none at all.
    pub fn settings_for(&self, model: &ModelName) -> ModelSettings {
        self.models
            .iter()
            .find(|r| r.covers(model))
            .map(|r| r.settings.clone())
            .unwrap_or_default()
    }

    /// Add or change the `[[models]]` entry of `edit.models` (policy
    /// edit); returns false when it changes nothing.
    pub fn set_model_settings(&mut self, edit: &ModelSettingsEdit) -> Result<bool, PolicyError> {
        let mut raw = self.raw.clone();
        let pos = raw
            .models
            .iter()
            .position(|m| *m.models.get_ref() == edit.models);
        let mut entry = match pos {
            Some(p) => raw.models[p].clone(),
            None => RawModelSettings {
                models: spanned(edit.models.clone()),
                retention_days: None,
                purge_role: None,
                max_versions: None,
                allowed_environments: None,
            },
        };
        if let Some(d) = edit.retention_days {
            entry.retention_days = Some(spanned(i64::from(d)));
        }
        if let Some(r) = edit.purge_role {
            entry.purge_role = Some(spanned(r.as_str().to_owned()));
        }
        if let Some(n) = edit.max_versions {
            entry.max_versions = Some(spanned(i64::from(n)));
        }
        if let Some(envs) = &edit.allowed_environments {
            entry.allowed_environments =
                Some(spanned(envs.iter().map(|e| spanned(e.clone())).collect()));
        }
        for k in &edit.unset {
            match k {
                SettingKey::RetentionDays => entry.retention_days = None,
                SettingKey::PurgeRole => entry.purge_role = None,
                SettingKey::MaxVersions => entry.max_versions = None,
                SettingKey::AllowedEnvironments => entry.allowed_environments = None,
            }
        }
        match pos {
            Some(p) => raw.models[p] = entry,
            None if edit.first => raw.models.insert(0, entry),
            None => raw.models.push(entry),
        }
        let before = self.to_toml();
        self.replace(raw)?;
        Ok(self.to_toml() != before)
    }

    /// Remove the `[[models]]` entry of glob `models` (policy edit);
    /// returns false when there was none.
    pub fn remove_model_settings(&mut self, models: &str) -> Result<bool, PolicyError> {
        let mut raw = self.raw.clone();
        let before = raw.models.len();
        raw.models.retain(|m| m.models.get_ref() != models);
        let changed = raw.models.len() != before;
        self.replace(raw)?;
        Ok(changed)
    }
}

/// By what right a user may purge an archived version of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeRight {
    /// ml_admin on the model: any archived version.
    Admin,
    /// The model's `purge_role`: only a version archived at least
    /// `retention_days` ago.
    Retention { role: Role, retention_days: u32 },
}

impl super::Policy {
    /// Whether and how `user` may purge versions of `model` at `now`: as
    /// ml_admin, else by the model's `purge_role`; or why not.
    pub fn purge_right(
        &self,
        user: &str,
        model: &ModelName,
        now: time::OffsetDateTime,
    ) -> Result<PurgeRight, super::Denial> {
        let admin = self.check(user, model, super::Ability::Admin, now);
        let Err(mut denial) = admin else {
            return Ok(PurgeRight::Admin);
        };
        denial.ability = "purge";
        let s = self.settings_for(model);
        let (Some(role), Some(retention_days)) = (s.purge_role, s.retention_days) else {
            denial.need = "ml_admin".into();
            denial.remedy = super::Remedy::Grant(Role::MlAdmin);
            return Err(denial);
        };
        // The named role (ml_admin always qualifies); every role reads.
        match self.check_role(user, model, role, super::Ability::Read, now) {
            Ok(()) => Ok(PurgeRight::Retention {
                role,
                retention_days,
            }),
            Err(mut d) => {
                d.ability = "purge";
                d.need = format!(
                    "ml_admin, or {role} once the retention of {retention_days} day(s) is due"
                );
                Err(d)
            }
        }
    }
}

/// When an archived version's retention is due: `retention_days` after
/// it was archived (unix seconds).
pub fn retention_due_at(archived_at: i64, retention_days: u32) -> i64 {
    archived_at.saturating_add(i64::from(retention_days) * 86_400)
}

impl Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
