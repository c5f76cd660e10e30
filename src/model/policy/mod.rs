//! The policy: who may do what to which models, as code in the repository.
//!
//! `.mvault/policy.toml` names users and their SSH keys, grants roles per model
//! glob, sets promotion rules per stage and defines the environments
//! versions are deployed to (`environments.rs`). It is parsed into raw serde
//! structs (with spans, so a bad policy names its line) and compiled into a
//! [`Policy`] that answers questions and fails closed: no grant, no access.

use std::collections::BTreeMap;
use std::fmt;

use globset::{Glob, GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};
use ssh_key::PublicKey;
use time::{Date, OffsetDateTime};

use crate::crypto;
use crate::model::names::{ModelName, Stage};

mod aliases;
mod lint;
mod settings;
mod stage_edit;
mod users;

pub use aliases::{alias_matches, valid_alias, ALIAS_RULE};
pub use lint::{check_glob, matches_any, GlobWarning};
pub use settings::{
    retention_due_at, valid_environment_name, ModelSettings, ModelSettingsEdit, ModelSettingsRule,
    PurgeRight, SettingKey,
};
pub use stage_edit::StageRuleEdit;
mod environments;

pub use environments::{
    Environment, EnvironmentChange, EnvironmentDenial, EnvironmentName, EnvironmentNameError,
    EnvironmentSpec, DEFAULT_DEPLOY_ROLE, DEPLOYABLE_STAGES, ENVIRONMENT_NAME_RULE,
};

/// Where the policy lives in the tree.
pub const POLICY_PATH: &str = ".mvault/policy.toml";

/// A role, granted per model glob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Viewer,
    Developer,
    MlEngineer,
    MlAdmin,
    Approver,
    /// Witnesses the server's receipt chain (granted on `**`); reads no model.
    Auditor,
}

impl Role {
    /// All roles.
    pub const ALL: [Role; 6] = [
        Role::Viewer,
        Role::Developer,
        Role::MlEngineer,
        Role::MlAdmin,
        Role::Approver,
        Role::Auditor,
    ];
    /// The role's name in the policy.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Developer => "developer",
            Role::MlEngineer => "ml_engineer",
            Role::MlAdmin => "ml_admin",
            Role::Approver => "approver",
            Role::Auditor => "auditor",
        }
    }
    /// Parse a role name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
    /// Whether this role allows `ability`.
    pub fn allows(self, ability: Ability) -> bool {
        use Ability::*;
        match self {
            Role::Viewer => matches!(ability, Read),
            Role::Developer => matches!(ability, Read | Register),
            Role::MlEngineer => matches!(ability, Read | Register | Promote),
            Role::Approver => matches!(ability, Read | Approve),
            // An auditor only cosigns checkpoints (`Policy::check_witness`).
            Role::Auditor => false,
            Role::MlAdmin => true,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What someone wants to do to a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ability {
    /// Unwrap the data key (enforced cryptographically).
    Read,
    /// Add versions.
    Register,
    /// Move versions between stages.
    Promote,
    /// Approve a version for a stage.
    Approve,
    /// Change the policy (needs ml_admin on `**`).
    Admin,
}

impl Ability {
    /// The verb used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Ability::Read => "read",
            Ability::Register => "register",
            Ability::Promote => "promote",
            Ability::Approve => "approve",
            Ability::Admin => "admin",
        }
    }
    /// The least role that grants it, for hints.
    pub fn least_role(self) -> Role {
        match self {
            Ability::Read => Role::Viewer,
            Ability::Register => Role::Developer,
            Ability::Promote => Role::MlEngineer,
            Ability::Approve => Role::Approver,
            Ability::Admin => Role::MlAdmin,
        }
    }
}

/// A policy that does not parse or breaks a rule.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Not TOML of the policy's shape.
    #[error("policy line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// A value breaks its rule.
    #[error("policy line {line}: {field}: {rule} (found {found:?})")]
    Rule {
        line: usize,
        field: String,
        rule: String,
        found: String,
    },
    /// A value breaks its rule, at a line and column (the lifecycle keys:
    /// `[[models]]` and `rollback_role`).
    #[error("policy line {line}, column {column}: {field}: {rule} (found {found:?})")]
    At {
        line: usize,
        column: usize,
        field: String,
        rule: String,
        found: String,
    },
}

/// A refusal: who, what, on which model, what they have and what is needed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{user} has {have} on {model}; {ability} needs {need}")]
pub struct Denial {
    pub user: String,
    pub model: String,
    pub ability: &'static str,
    /// What the user holds, as text ("role developer on nlp/*", "no role").
    pub have: String,
    /// What would allow it.
    pub need: String,
    /// What an admin can change to allow it, for hints.
    pub remedy: Remedy,
}

/// What would turn a [`Denial`] into an allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remedy {
    /// A grant of this role on the denial's model
    /// (`mvault policy grant USER --role ROLE --models MODEL`).
    Grant(Role),
    /// A grant of ml_admin on `**`, what changing the policy needs.
    GrantAdmin,
    /// A key that has not expired.
    RenewKey,
    /// An entry for the user.
    AddUser,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    schema: toml::Spanned<u32>,
    #[serde(default)]
    users: BTreeMap<String, RawUser>,
    #[serde(default)]
    grants: Vec<RawGrant>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    stages: Vec<RawStageRule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    models: Vec<settings::RawModelSettings>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    environments: Vec<environments::RawEnvironment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    server: Option<RawServer>,
}

/// `[server]`: the server's own key, which signs receipts and timestamps.
#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawServer {
    key: toml::Spanned<String>,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawUser {
    keys: Vec<toml::Spanned<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires: Option<toml::Spanned<String>>,
    /// Other names the user goes by on a git server (`aliases.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    aliases: Vec<toml::Spanned<String>>,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawGrant {
    user: toml::Spanned<String>,
    role: toml::Spanned<String>,
    models: toml::Spanned<String>,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawStageRule {
    stage: toml::Spanned<String>,
    models: toml::Spanned<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    promote_role: Option<toml::Spanned<String>>,
    #[serde(default)]
    approvals: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    approver_role: Option<toml::Spanned<String>>,
    #[serde(default)]
    allow_self_approval: bool,
    #[serde(default)]
    require_ticket: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rollback_role: Option<toml::Spanned<String>>,
}

/// One key that may sign (`mvault signers --json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SignerEntry {
    pub user: String,
    /// The SSH signature namespaces the key signs in.
    pub namespaces: Vec<String>,
    /// The day (UTC, YYYY-MM-DD) from which the key no longer counts.
    pub expires: Option<String>,
    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// The public key line, `ssh-ed25519 AAAA…`.
    pub key: String,
}

/// A user of the vault.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub keys: Vec<PublicKey>,
    /// The day (UTC) from which the user's keys no longer count.
    pub expires: Option<Date>,
    /// The names a git server may give for this user (`Alice`,
    /// `alice@corp.example`), mapped to it by the hook and the fetch log.
    pub aliases: Vec<String>,
}

impl User {
    /// Whether the keys still count at `now`.
    pub fn active_at(&self, now: OffsetDateTime) -> bool {
        self.expires.is_none_or(|d| now.date() < d)
    }
}

/// A role granted on models matching a glob.
#[derive(Debug, Clone)]
pub struct Grant {
    pub user: String,
    pub role: Role,
    pub models: String,
    matcher: GlobMatcher,
}

impl Grant {
    /// Whether the grant covers `model`.
    pub fn covers(&self, model: &ModelName) -> bool {
        self.matcher.is_match(model.as_str())
    }
}

/// The rule for promotions into one stage of matching models.
#[derive(Debug, Clone)]
pub struct StageRule {
    pub stage: Stage,
    pub models: String,
    matcher: GlobMatcher,
    /// Role needed to promote into the stage (default: ml_engineer).
    pub promote_role: Role,
    /// Approvals needed.
    pub approvals: u32,
    /// Role an approver needs (default: approver).
    pub approver_role: Role,
    /// Whether the version's author or the promoter may approve.
    pub allow_self_approval: bool,
    /// Whether a ticket is required.
    pub require_ticket: bool,
    /// Role needed to roll back (production's rule only; default:
    /// ml_admin, as in the registry mvault replaces).
    pub rollback_role: Role,
}

impl StageRule {
    /// The rule for a stage the policy says nothing about: ml_engineer
    /// promotes, no approvals, no ticket.
    pub fn default_for(stage: Stage) -> Self {
        StageRule {
            stage,
            models: "**".into(),
            matcher: compile_glob("**").expect("valid glob"),
            promote_role: Role::MlEngineer,
            approvals: 0,
            approver_role: Role::Approver,
            allow_self_approval: false,
            require_ticket: false,
            rollback_role: Role::MlAdmin,
        }
    }

    /// Whether the rule covers `model`.
    pub fn covers(&self, model: &ModelName) -> bool {
        self.matcher.is_match(model.as_str())
    }
}

/// A compiled policy.
#[derive(Clone)]
pub struct Policy {
    raw: RawPolicy,
    pub users: BTreeMap<String, User>,
    pub grants: Vec<Grant>,
    pub stages: Vec<StageRule>,
    /// The per-model settings, `[[models]]`, in file order.
    pub models: Vec<ModelSettingsRule>,
    /// Where versions are deployed (`environments`).
    pub environments: Vec<Environment>,
    /// The server key receipts and timestamps must be signed by
    /// (`[server] key`); `None`: receipts are not believed.
    pub server_key: Option<PublicKey>,
}

/// The user name rule.
pub const USER_NAME_RULE: &str = "[a-z][a-z0-9._-]{0,63}";

pub fn valid_user_name(name: &str) -> bool {
    let mut c = name.chars();
    name.len() <= 64
        && c.next().is_some_and(|f| f.is_ascii_lowercase())
        && c.all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
}

fn compile_glob(glob: &str) -> Result<GlobMatcher, globset::Error> {
    Ok(GlobBuilder::new(glob)
        .literal_separator(true)
        .build()?
        .compile_matcher())
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let line = text.as_bytes()[..offset]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1;
    let col = offset - text[..offset].rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

/// Parse the date form `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<Date> {
    // `[year]` alone also takes a sign ("+2030-01-01", "-0001-01-01"), and
    // a negative year makes a malformed `valid-before` in allowed_signers.
    let shaped = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shaped {
        return None;
    }
    Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_toml())
    }
}

impl Policy {
    /// Parse and compile policy text.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            PolicyError::Syntax {
                line,
                column,
                message: e.message().to_owned(),
            }
        })?;
        Self::compile(raw, text)
    }

    fn compile(raw: RawPolicy, text: &str) -> Result<Self, PolicyError> {
        let rule = |span: std::ops::Range<usize>, field: &str, rule: &str, found: &str| {
            PolicyError::Rule {
                line: line_col(text, span.start).0,
                field: field.to_owned(),
                rule: rule.to_owned(),
                found: found.to_owned(),
            }
        };
        if *raw.schema.get_ref() != 1 {
            return Err(rule(
                raw.schema.span(),
                "schema",
                "this mvault reads schema 1",
                &raw.schema.get_ref().to_string(),
            ));
        }
        let mut aliases = aliases::check(&raw, text)?;
        let mut users = BTreeMap::new();
        let mut seen_keys: BTreeMap<String, String> = BTreeMap::new();
        for (name, u) in &raw.users {
            if !valid_user_name(name) {
                return Err(PolicyError::Rule {
                    line: 0,
                    field: format!("users.{name}"),
                    rule: format!("a user name is {USER_NAME_RULE}"),
                    found: name.clone(),
                });
            }
            if u.keys.is_empty() {
                return Err(PolicyError::Rule {
                    line: 0,
                    field: format!("users.{name}.keys"),
                    rule: "a user has at least one key".into(),
                    found: "[]".into(),
                });
            }
            let mut keys = Vec::new();
            for k in &u.keys {
                let key = crypto::parse_public_key(k.get_ref()).map_err(|e| {
                    rule(
                        k.span(),
                        &format!("users.{name}.keys"),
                        "an ssh-ed25519 public key",
                        &e.to_string(),
                    )
                })?;
                let line = crypto::public_key_line(&key);
                if let Some(other) = seen_keys.insert(line.clone(), name.clone()) {
                    return Err(rule(
                        k.span(),
                        &format!("users.{name}.keys"),
                        &format!("a key belongs to one user; it is already {other}'s"),
                        &line,
                    ));
                }
                keys.push(key);
            }
            let expires = match &u.expires {
                None => None,
                Some(e) => Some(parse_date(e.get_ref()).ok_or_else(|| {
                    rule(
                        e.span(),
                        &format!("users.{name}.expires"),
                        "a date YYYY-MM-DD",
                        e.get_ref(),
                    )
                })?),
            };
            users.insert(
                name.clone(),
                User {
                    name: name.clone(),
                    keys,
                    expires,
                    aliases: aliases.remove(name).unwrap_or_default(),
                },
            );
        }
        let mut grants = Vec::new();
        for (i, g) in raw.grants.iter().enumerate() {
            if !users.contains_key(g.user.get_ref()) {
                return Err(rule(
                    g.user.span(),
                    &format!("grants[{i}].user"),
                    "a user defined under [users]",
                    g.user.get_ref(),
                ));
            }
            let role = Role::parse(g.role.get_ref()).ok_or_else(|| {
                rule(
                    g.role.span(),
                    &format!("grants[{i}].role"),
                    "one of viewer, developer, ml_engineer, ml_admin, approver",
                    g.role.get_ref(),
                )
            })?;
            let matcher = compile_glob(g.models.get_ref()).map_err(|e| {
                rule(
                    g.models.span(),
                    &format!("grants[{i}].models"),
                    "a glob of model names",
                    &e.to_string(),
                )
            })?;
            grants.push(Grant {
                user: g.user.get_ref().clone(),
                role,
                models: g.models.get_ref().clone(),
                matcher,
            });
        }
        let mut stages = Vec::new();
        for (i, s) in raw.stages.iter().enumerate() {
            let stage = Stage::parse(s.stage.get_ref()).map_err(|e| {
                rule(
                    s.stage.span(),
                    &format!("stages[{i}].stage"),
                    "a stage name",
                    &e.to_string(),
                )
            })?;
            let matcher = compile_glob(s.models.get_ref()).map_err(|e| {
                rule(
                    s.models.span(),
                    &format!("stages[{i}].models"),
                    "a glob of model names",
                    &e.to_string(),
                )
            })?;
            let role_field = |f: &Option<toml::Spanned<String>>, name: &str, default: Role| match f
            {
                None => Ok(default),
                Some(r) => Role::parse(r.get_ref()).ok_or_else(|| {
                    rule(
                        r.span(),
                        &format!("stages[{i}].{name}"),
                        "a role name",
                        r.get_ref(),
                    )
                }),
            };
            let rollback_role = settings::rollback_role(text, i, stage, &s.rollback_role)?;
            stages.push(StageRule {
                stage,
                models: s.models.get_ref().clone(),
                matcher,
                promote_role: role_field(&s.promote_role, "promote_role", Role::MlEngineer)?,
                approvals: s.approvals,
                approver_role: role_field(&s.approver_role, "approver_role", Role::Approver)?,
                allow_self_approval: s.allow_self_approval,
                require_ticket: s.require_ticket,
                rollback_role,
            });
        }
        let models = settings::compile(&raw.models, text)?;
        let environments = environments::compile(&raw.environments, text)?;
        let server_key = match &raw.server {
            None => None,
            Some(s) => Some(crypto::parse_public_key(s.key.get_ref()).map_err(|e| {
                rule(
                    s.key.span(),
                    "server.key",
                    "an ssh-ed25519 public key",
                    &e.to_string(),
                )
            })?),
        };
        Ok(Policy {
            raw,
            users,
            grants,
            stages,
            models,
            environments,
            server_key,
        })
    }

    /// Pin the server's key (`None`: unpin it); whether anything changed.
    pub fn set_server_key(&mut self, key: Option<&PublicKey>) -> bool {
        let line = key.map(crypto::public_key_line);
        let now = self.server_key.as_ref().map(crypto::public_key_line);
        if line == now {
            return false;
        }
        self.raw.server = line.map(|l| RawServer {
            key: toml::Spanned::new(0..0, l),
        });
        self.server_key = key.cloned();
        true
    }

    /// The policy `mvault init` writes: one admin, production needs one
    /// approval from an approver who is not the author.
    pub fn initial(admin: &str, key: &PublicKey) -> Self {
        let text = format!(
            "schema = 1\n\n[users.{admin}]\nkeys = [\"{}\"]\n\n[[grants]]\nuser = \"{admin}\"\nrole = \"ml_admin\"\nmodels = \"**\"\n\n[[stages]]\nstage = \"production\"\nmodels = \"**\"\npromote_role = \"ml_engineer\"\napprovals = 1\napprover_role = \"approver\"\nallow_self_approval = false\nrequire_ticket = false\n",
            crypto::public_key_line(key)
        );
        Policy::parse(&text).expect("the initial policy is valid")
    }

    /// The canonical TOML of this policy.
    pub fn to_toml(&self) -> String {
        toml::to_string(&self.raw).expect("a policy always serialises")
    }

    /// The user a key belongs to.
    pub fn user_of_key(&self, key: &PublicKey) -> Option<&User> {
        self.users
            .values()
            .find(|u| u.keys.iter().any(|k| k.key_data() == key.key_data()))
    }

    /// The roles `user` holds on `model`.
    pub fn roles_of(&self, user: &str, model: &ModelName) -> Vec<(Role, &str)> {
        self.grants
            .iter()
            .filter(|g| g.user == user && g.covers(model))
            .map(|g| (g.role, g.models.as_str()))
            .collect()
    }

    /// Whether `user` is granted ml_admin on `**` (expiry aside: every
    /// judgement goes through [`Policy::check`] or [`Policy::check_admin`]).
    fn grants_admin(&self, user: &str) -> bool {
        self.grants
            .iter()
            .any(|g| g.user == user && g.role == Role::MlAdmin && g.models == "**")
    }

    /// Whether some user with an unexpired key at `at` is a policy admin.
    pub fn has_active_admin(&self, at: OffsetDateTime) -> bool {
        self.users
            .values()
            .any(|u| u.active_at(at) && self.grants_admin(&u.name))
    }

    /// Allow `user` to administer the policy at `at` (ml_admin on `**`,
    /// with an unexpired key), or say why not.
    pub fn check_admin(&self, user: &str, at: OffsetDateTime) -> Result<(), Denial> {
        let any = ModelName::parse("any").expect("a valid model name");
        self.check(user, &any, Ability::Admin, at).map_err(|mut d| {
            d.model = "**".into();
            d
        })
    }

    /// Allow `user` to cosign the server's receipt chain as a witness at
    /// `at`: the auditor role on `**`, with an unexpired key. An admin is
    /// no witness unless also granted it: a witness is someone else.
    pub fn check_witness(&self, user: &str, at: OffsetDateTime) -> Result<(), Denial> {
        let any = ModelName::parse("any").expect("a valid model name");
        self.check_active_user(user, &any, "witness", at)
            .map_err(|mut d| {
                d.model = "**".into();
                d
            })?;
        let auditor = self
            .grants
            .iter()
            .any(|g| g.user == user && g.role == Role::Auditor && g.models == "**");
        if auditor {
            return Ok(());
        }
        Err(Denial {
            user: user.to_owned(),
            model: "**".into(),
            ability: "witness",
            have: self.describe_roles(user, &any),
            need: "auditor on **".into(),
            remedy: Remedy::Grant(Role::Auditor),
        })
    }

    /// The rule for promotions of `model` into `stage`, or the default:
    /// ml_engineer promotes, no approvals, no ticket.
    pub fn rule_for(&self, model: &ModelName, stage: Stage) -> StageRule {
        self.stage_rule(model, stage)
            .cloned()
            .unwrap_or_else(|| StageRule::default_for(stage))
    }

    /// The first thing every permission asks: `user` is in the policy and
    /// their keys still count at `now`; else a denial of `ability`.
    fn check_active_user(
        &self,
        user: &str,
        model: &ModelName,
        ability: &'static str,
        now: OffsetDateTime,
    ) -> Result<(), Denial> {
        let deny = |have: String, need: String, remedy: Remedy| Denial {
            user: user.to_owned(),
            model: model.to_string(),
            ability,
            have,
            need,
            remedy,
        };
        let Some(u) = self.users.get(user) else {
            return Err(deny(
                "no entry in the policy".into(),
                "a user with a key".into(),
                Remedy::AddUser,
            ));
        };
        if !u.active_at(now) {
            return Err(deny(
                format!(
                    "a key that expired on {}",
                    u.expires.map(|d| d.to_string()).unwrap_or_default()
                ),
                "an unexpired key".into(),
                Remedy::RenewKey,
            ));
        }
        Ok(())
    }

    /// Allow `user` to do `ability` on `model` at `now`, or say why not.
    pub fn check(
        &self,
        user: &str,
        model: &ModelName,
        ability: Ability,
        now: OffsetDateTime,
    ) -> Result<(), Denial> {
        let deny = |have: String, need: String, remedy: Remedy| Denial {
            user: user.to_owned(),
            model: model.to_string(),
            ability: ability.as_str(),
            have,
            need,
            remedy,
        };
        self.check_active_user(user, model, ability.as_str(), now)?;
        if ability == Ability::Admin {
            return if self.grants_admin(user) {
                Ok(())
            } else {
                Err(deny(
                    self.describe_roles(user, model),
                    "ml_admin on **".into(),
                    Remedy::GrantAdmin,
                ))
            };
        }
        let roles = self.roles_of(user, model);
        if roles.iter().any(|(r, _)| r.allows(ability)) {
            return Ok(());
        }
        Err(deny(
            self.describe_roles(user, model),
            ability.least_role().to_string(),
            Remedy::Grant(ability.least_role()),
        ))
    }

    /// Whether `user` holds `role`, or ml_admin, on `model`: the named role
    /// a stage rule asks of promoters and approvers.
    fn has_role(&self, user: &str, model: &ModelName, role: Role) -> bool {
        self.roles_of(user, model)
            .iter()
            .any(|(r, _)| *r == role || *r == Role::MlAdmin)
    }

    /// [`Policy::check`] for `ability`, and the stage rule's `role` as well.
    pub fn check_role(
        &self,
        user: &str,
        model: &ModelName,
        role: Role,
        ability: Ability,
        now: OffsetDateTime,
    ) -> Result<(), Denial> {
        self.check(user, model, ability, now)?;
        if self.has_role(user, model, role) {
            return Ok(());
        }
        Err(Denial {
            user: user.to_owned(),
            model: model.to_string(),
            ability: ability.as_str(),
            have: self.describe_roles(user, model),
            need: role.to_string(),
            remedy: Remedy::Grant(role),
        })
    }

    fn describe_roles(&self, user: &str, model: &ModelName) -> String {
        let roles = self.roles_of(user, model);
        if roles.is_empty() {
            "no role".into()
        } else {
            roles
                .iter()
                .map(|(r, g)| format!("role {r} on {g}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    }

    /// The readers of `model` at `now`: every unexpired user with any role on it.
    pub fn readers(&self, model: &ModelName, now: OffsetDateTime) -> Vec<(&str, &PublicKey)> {
        let mut out = Vec::new();
        for u in self.users.values() {
            if u.active_at(now)
                && self
                    .grants
                    .iter()
                    .any(|g| g.user == u.name && g.covers(model) && g.role.allows(Ability::Read))
            {
                out.extend(u.keys.iter().map(|k| (u.name.as_str(), k)));
            }
        }
        out
    }

    /// The promotion rule for `stage` on `model`: the first matching rule.
    pub fn stage_rule(&self, model: &ModelName, stage: Stage) -> Option<&StageRule> {
        self.stages
            .iter()
            .find(|r| r.stage == stage && r.covers(model))
    }

    fn replace(&mut self, raw: RawPolicy) -> Result<(), PolicyError> {
        let text = toml::to_string(&raw).expect("a policy always serialises");
        *self = Policy::parse(&text)?;
        Ok(())
    }

    /// Whether a glob is syntactically valid.
    pub fn valid_glob(glob: &str) -> bool {
        Glob::new(glob).is_ok()
    }
}

#[cfg(test)]
mod tests;
