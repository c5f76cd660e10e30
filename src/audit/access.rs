//! The access review (`mvault access review`): for each model, who can
//! read, register, promote, approve, deploy, roll back and administer it,
//! and through which grant; every user's keys with their fingerprint and
//! expiry; each user's last activity in the record (and in the server's
//! log, when the caller hands it over); users with grants and no activity
//! for a while; and former readers who still hold an old data-key
//! generation, with the versions it opens.
//!
//! A read-only view, like `log`: the policy is the one on `main`, activity
//! is what the record's objects name, and nothing is verified here (`audit
//! verify` checks the record). Who can open which version is read from the
//! key rings' age headers along `main`: a version's data key is in the ring
//! of the commit that registered it and in every later ring (rings keep
//! their generations), so whoever any of those rings was wrapped to holds
//! it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use time::OffsetDateTime;

use crate::audit::events::{self, main_commits};
use crate::crypto;
use crate::model::names::{ModelName, Stage};
use crate::model::policy::{Ability, Grant, Policy, Role, User};
use crate::model::trailers::{trailer, trailers};
use crate::rules::ring;
use crate::store::objects::ObjectId;
use crate::vault::{rfc3339, Vault, VaultError};

/// Keys that stop counting within this many days are "expiring".
pub const EXPIRING_DAYS: i64 = 30;
/// How many days without activity make a user with grants stale, unless
/// the caller says otherwise: a quarterly review.
pub const DEFAULT_STALE_DAYS: u64 = 90;
/// What the deploy column says until the policy has environments.
pub const DEPLOY_NOT_CONFIGURED: &str = "not configured";

/// What to review.
#[derive(Debug, Clone)]
pub struct ReviewRequest<'a> {
    /// Only models that match (every model when `None`).
    pub model: Option<&'a globset::GlobMatcher>,
    /// Users with grants and no activity for this many days are stale.
    pub stale_days: u64,
    /// Activity from the server's log, when the review runs on the
    /// server's repository (`None` otherwise).
    pub server: Option<&'a [ServerActivity]>,
    pub now: OffsetDateTime,
}

/// One thing a user did that only the server's log records (a push, a
/// fetch), handed in by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerActivity {
    pub user: String,
    /// Unix seconds.
    pub time: i64,
    /// `push`, `refused push` or `fetch`.
    pub action: String,
}

/// The whole review.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AccessReview {
    /// When the review was made (RFC 3339, UTC); expiry is judged then.
    pub generated: String,
    pub stale_days: u64,
    /// Whether the server's log was read for activity.
    pub server_log: bool,
    pub models: Vec<ModelAccess>,
    pub users: Vec<UserReview>,
    /// Users with grants and no activity for `stale_days` days.
    pub stale_users: Vec<String>,
    /// Former readers who can still open versions with a data key they
    /// were given before an expiry or a revocation.
    pub old_key_holders: Vec<OldKeyHolder>,
}

/// Who can do what on one model.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModelAccess {
    pub model: String,
    /// The environments the model may be deployed to, or
    /// [`DEPLOY_NOT_CONFIGURED`].
    pub deploy: String,
    /// One row per user with a grant that covers the model, by name.
    pub access: Vec<AccessRow>,
}

/// What one user can do on one model; `None` where they cannot.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AccessRow {
    pub user: String,
    /// `active`, `expiring` or `expired` (an expired user can do nothing).
    pub key_status: KeyStatus,
    /// The user's grants that cover the model, as `role on glob`.
    pub grants: Vec<String>,
    pub read: Option<Permit>,
    pub register: Option<Permit>,
    pub promote: Option<Permit>,
    pub approve: Option<Permit>,
    pub deploy: Option<Permit>,
    pub rollback: Option<Permit>,
    pub admin: Option<Permit>,
}

impl AccessRow {
    /// The cells in column order, with their names.
    pub fn cells(&self) -> [(&'static str, Option<&Permit>); 7] {
        [
            ("read", self.read.as_ref()),
            ("register", self.register.as_ref()),
            ("promote", self.promote.as_ref()),
            ("approve", self.approve.as_ref()),
            ("deploy", self.deploy.as_ref()),
            ("rollback", self.rollback.as_ref()),
            ("admin", self.admin.as_ref()),
        ]
    }
}

/// An ability held, and the grant(s) it comes through.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Permit {
    /// The grants, as `role on glob`, in policy order.
    pub via: Vec<String>,
    /// For promote and approve: the stages it covers. Empty otherwise.
    pub stages: Vec<String>,
    /// For deploy: the environments (`[[environments]]` that serve the
    /// model and whose `deploy_role` the user holds). Absent otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
}

/// Where a user's keys stand at the review's time.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    /// Stops counting within [`EXPIRING_DAYS`] days.
    Expiring,
    Expired,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Expiring => "expiring",
            KeyStatus::Expired => "expired",
        }
    }

    fn of(user: &User, now: OffsetDateTime) -> Self {
        match user.expires {
            _ if !user.active_at(now) => KeyStatus::Expired,
            Some(d) if (d - now.date()).whole_days() <= EXPIRING_DAYS => KeyStatus::Expiring,
            _ => KeyStatus::Active,
        }
    }
}

/// One user of the policy.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UserReview {
    pub user: String,
    pub key_status: KeyStatus,
    /// The day (UTC) from which the keys stop counting.
    pub expires: Option<String>,
    /// Fingerprints (`SHA256:…`) of the user's keys.
    pub keys: Vec<String>,
    /// The user's grants, as `role on glob`.
    pub grants: Vec<String>,
    pub last_activity: Option<Activity>,
    /// Grants and no activity for `stale_days` days.
    pub stale: bool,
}

/// The latest thing a user did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Activity {
    pub time: String,
    /// An action of `mvault log` (`register`, `promote`, `grant`, …), or
    /// `push`, `refused push`, `fetch` from the server's log.
    pub action: String,
    /// `record` or `server`.
    pub source: String,
}

/// A former reader who still holds old data-key generations of a model.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OldKeyHolder {
    /// The policy name, or `key <stanza tag>` for a key no policy names.
    pub user: String,
    pub model: String,
    /// Why they are no longer a reader: `expired YYYY-MM-DD`, `no grant on
    /// the model`, `removed from the policy`, `key removed`.
    pub why: String,
    /// The versions whose data key they were given.
    pub versions: Vec<String>,
    /// Whether the ring on main is still wrapped to them: no write since
    /// they stopped being a reader, so the next version rotates the key.
    pub in_current_ring: bool,
}

/// The review of the vault at `req.now`.
pub fn review(vault: &Vault, req: &ReviewRequest<'_>) -> Result<AccessReview, VaultError> {
    let now = req.now;
    let (_, tree) = vault.main()?;
    let policy = vault.policy_at(tree)?;
    let models: Vec<ModelName> = vault
        .models(tree)?
        .into_keys()
        .filter(|m| req.model.is_none_or(|g| g.is_match(m.as_str())))
        .collect();

    let access = models
        .iter()
        .map(|m| ModelAccess {
            model: m.to_string(),
            deploy: deploy_targets(&policy, m),
            access: policy
                .users
                .values()
                .filter(|u| {
                    policy
                        .grants
                        .iter()
                        .any(|g| g.user == u.name && g.covers(m))
                })
                .map(|u| access_row(&policy, u, m, now))
                .collect(),
        })
        .collect();

    let activity = last_activity(vault, req.server)?;
    let stale_before = now.unix_timestamp() - (req.stale_days as i64).saturating_mul(86_400);
    let users: Vec<UserReview> = policy
        .users
        .values()
        .map(|u| {
            let grants: Vec<String> = policy
                .grants
                .iter()
                .filter(|g| g.user == u.name)
                .map(grant_text)
                .collect();
            let last = activity.get(&u.name);
            UserReview {
                user: u.name.clone(),
                key_status: KeyStatus::of(u, now),
                expires: u.expires.map(|d| d.to_string()),
                keys: u.keys.iter().map(crypto::fingerprint).collect(),
                stale: !grants.is_empty() && last.is_none_or(|(t, _)| *t < stale_before),
                grants,
                last_activity: last.map(|(t, a)| Activity {
                    time: unix_rfc3339(*t),
                    action: a.action.clone(),
                    source: a.source.clone(),
                }),
            }
        })
        .collect();
    let stale_users = users
        .iter()
        .filter(|u| u.stale)
        .map(|u| u.user.clone())
        .collect();

    let mut old_key_holders = Vec::new();
    let commits = main_commits(&vault.store)?;
    for m in &models {
        old_key_holders.extend(old_holders(vault, &commits, &policy, m, now)?);
    }
    Ok(AccessReview {
        generated: rfc3339(now),
        stale_days: req.stale_days,
        server_log: req.server.is_some(),
        models: access,
        users,
        stale_users,
        old_key_holders,
    })
}

fn grant_text(g: &Grant) -> String {
    format!("{} on {}", g.role, g.models)
}

fn unix_rfc3339(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .map(rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// The role a rollback of `model` needs: the `rollback_role` of the
/// production rule that covers it (ml_admin by default).
fn rollback_role(policy: &Policy, model: &ModelName) -> Role {
    policy.rule_for(model, Stage::Production).rollback_role
}

/// The environments `model` may be deployed to, as the deploy column's
/// heading says it: their names, or [`DEPLOY_NOT_CONFIGURED`].
fn deploy_targets(policy: &Policy, model: &ModelName) -> String {
    let names: Vec<String> = policy
        .environments
        .iter()
        .filter(|e| policy.may_deploy_to(model, e.name.as_str()).is_ok())
        .map(|e| e.name.to_string())
        .collect();
    if names.is_empty() {
        DEPLOY_NOT_CONFIGURED.to_owned()
    } else {
        names.join(", ")
    }
}

/// The grants of `user` on `model` that give `role` (or ml_admin, which
/// always qualifies) and allow `ability`.
fn grants_for(
    policy: &Policy,
    user: &str,
    model: &ModelName,
    role: Option<Role>,
    ability: Ability,
) -> Vec<String> {
    policy
        .grants
        .iter()
        .filter(|g| g.user == user && g.covers(model) && g.role.allows(ability))
        .filter(|g| role.is_none_or(|r| g.role == r || g.role == Role::MlAdmin))
        .map(grant_text)
        .collect()
}

fn permit(via: Vec<String>, stages: Vec<String>) -> Option<Permit> {
    (!via.is_empty()).then_some(Permit {
        via,
        stages,
        environments: Vec::new(),
    })
}

fn access_row(policy: &Policy, u: &User, model: &ModelName, now: OffsetDateTime) -> AccessRow {
    let name = u.name.as_str();
    let key_status = KeyStatus::of(u, now);
    let active = key_status != KeyStatus::Expired;
    let plain = |ability: Ability| {
        let via = if active && policy.check(name, model, ability, now).is_ok() {
            grants_for(policy, name, model, None, ability)
        } else {
            Vec::new()
        };
        permit(via, Vec::new())
    };
    // Promote and approve: the stage rule names the role, per stage.
    let staged = |ability: Ability| {
        let mut via: Vec<String> = Vec::new();
        let mut stages = Vec::new();
        for stage in Stage::ALL {
            let rule = policy.rule_for(model, stage);
            let role = match ability {
                Ability::Approve => rule.approver_role,
                _ => rule.promote_role,
            };
            if active && policy.check_role(name, model, role, ability, now).is_ok() {
                stages.push(stage.to_string());
                for g in grants_for(policy, name, model, Some(role), ability) {
                    if !via.contains(&g) {
                        via.push(g);
                    }
                }
            }
        }
        permit(via, stages)
    };
    let role = rollback_role(policy, model);
    let rollback = if active
        && policy
            .check_role(name, model, role, Ability::Promote, now)
            .is_ok()
    {
        permit(
            grants_for(policy, name, model, Some(role), Ability::Promote),
            Vec::new(),
        )
    } else {
        None
    };
    // Deploy: each environment that may take the model, by its deploy role.
    let mut deploy_via: Vec<String> = Vec::new();
    let mut environments = Vec::new();
    for e in &policy.environments {
        if !active
            || policy.may_deploy_to(model, e.name.as_str()).is_err()
            || policy.check_deployer(name, model, e, now).is_err()
        {
            continue;
        }
        environments.push(e.name.to_string());
        for g in grants_for(policy, name, model, Some(e.deploy_role), Ability::Read) {
            if !deploy_via.contains(&g) {
                deploy_via.push(g);
            }
        }
    }
    let deploy = permit(deploy_via, Vec::new()).map(|p| Permit { environments, ..p });
    let admin = (active && policy.check_admin(name, now).is_ok())
        .then(|| {
            policy
                .grants
                .iter()
                .filter(|g| g.user == name && g.role == Role::MlAdmin && g.models == "**")
                .map(grant_text)
                .collect::<Vec<String>>()
        })
        .and_then(|via| permit(via, Vec::new()));
    AccessRow {
        user: u.name.clone(),
        key_status,
        grants: policy
            .grants
            .iter()
            .filter(|g| g.user == name && g.covers(model))
            .map(grant_text)
            .collect(),
        read: plain(Ability::Read),
        register: plain(Ability::Register),
        promote: staged(Ability::Promote),
        approve: staged(Ability::Approve),
        deploy,
        rollback,
        admin,
    }
}

/// What one user did last, by time.
struct Last {
    action: String,
    source: String,
}

/// Each user's latest activity: the record's events (by the name written
/// in each object), then the server's pushes and fetches.
fn last_activity(
    vault: &Vault,
    server: Option<&[ServerActivity]>,
) -> Result<BTreeMap<String, (i64, Last)>, VaultError> {
    let mut out: BTreeMap<String, (i64, Last)> = BTreeMap::new();
    // The record's events come first; a server line replaces one only
    // when it is later (at the same second, the record says more).
    let mut note = |user: &str, time: i64, action: &str, source: &str| {
        let later = |t: i64| time > t || (time == t && source == "record");
        if out.get(user).is_none_or(|(t, _)| later(*t)) {
            out.insert(
                user.to_owned(),
                (
                    time,
                    Last {
                        action: action.to_owned(),
                        source: source.to_owned(),
                    },
                ),
            );
        }
    };
    for e in events::events(vault, &events::Filter::default())? {
        note(&e.actor, e.unix, &e.action, "record");
    }
    for a in server.unwrap_or_default() {
        note(&a.user, a.time, &a.action, "server");
    }
    Ok(out)
}

/// A ring on main, from the commit that wrote it on: who it is wrapped to.
struct RingState {
    holders: BTreeSet<String>,
}

/// Former readers of `model` who hold data keys of its versions: walk main,
/// note each new ring and each version, then a version opens to everyone a
/// ring from its own commit on was wrapped to.
fn old_holders(
    vault: &Vault,
    commits: &[(ObjectId, crate::store::objects::CommitObject)],
    policy: &Policy,
    model: &ModelName,
    now: OffsetDateTime,
) -> Result<Vec<OldKeyHolder>, VaultError> {
    let path = model.keyring_path();
    let mut states: Vec<RingState> = Vec::new();
    let mut last_ring = None;
    let mut versions: Vec<(String, usize)> = Vec::new();
    // Stanza tag → policy name, from every policy a ring was written under.
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for (_, c) in commits {
        let t = trailers(&c.message);
        let registers_here = trailer(&t, "Mvault-Action") == Some("register")
            && trailer(&t, "Mvault-Model") == Some(model.as_str());
        if !registers_here && trailer(&t, "Mvault-Action") != Some("policy") {
            continue;
        }
        let ring_id = vault.store.entry(c.tree, &path)?.map(|(id, _)| id);
        if let Some(id) = ring_id.filter(|_| ring_id != last_ring) {
            let (_, sealed) = vault.store.object(id)?;
            let holders = ring::ring_holders(&sealed).unwrap_or_default();
            for u in vault.policy_at(c.tree)?.users.values() {
                for k in &u.keys {
                    names.insert(crypto::ssh_stanza_tag(k), u.name.clone());
                }
            }
            states.push(RingState { holders });
            last_ring = ring_id;
        }
        if registers_here && !states.is_empty() {
            if let Some(v) = trailer(&t, "Mvault-Version") {
                versions.push((v.to_owned(), states.len() - 1));
            }
        }
    }
    for u in policy.users.values() {
        for k in &u.keys {
            names.insert(crypto::ssh_stanza_tag(k), u.name.clone());
        }
    }
    let readers = ring::reader_tags(policy, model, now);
    let current = states.last().map(|s| s.holders.clone()).unwrap_or_default();
    // holder name → (versions, in the current ring)
    let mut found: BTreeMap<String, (BTreeSet<usize>, bool)> = BTreeMap::new();
    for (i, s) in states.iter().enumerate() {
        for tag in s.holders.difference(&readers) {
            let who = names
                .get(tag)
                .cloned()
                .unwrap_or_else(|| format!("key {tag}"));
            let entry = found.entry(who).or_default();
            // A ring opens the versions registered under it and before.
            entry.0.extend(
                versions
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, at))| *at <= i)
                    .map(|(n, _)| n),
            );
            entry.1 |= current.contains(tag);
        }
    }
    Ok(found
        .into_iter()
        .filter(|(_, (vs, _))| !vs.is_empty())
        .map(|(who, (vs, in_current_ring))| OldKeyHolder {
            why: why_not_reader(policy, &who, model, now),
            user: who,
            model: model.to_string(),
            versions: vs.into_iter().map(|n| versions[n].0.clone()).collect(),
            in_current_ring,
        })
        .collect())
}

/// Why `who` is no longer a reader of `model`.
fn why_not_reader(policy: &Policy, who: &str, model: &ModelName, now: OffsetDateTime) -> String {
    match policy.users.get(who) {
        None => "removed from the policy".into(),
        Some(u) if !u.active_at(now) => {
            format!(
                "expired {}",
                u.expires.map(|d| d.to_string()).unwrap_or_default()
            )
        }
        Some(u)
            if !policy
                .grants
                .iter()
                .any(|g| g.user == u.name && g.covers(model)) =>
        {
            "no grant on the model".into()
        }
        Some(_) => "key removed".into(),
    }
}
