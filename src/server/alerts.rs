//! Alerts: rules over the server log's lines, each with a threshold in the
//! bare repository's config, and the one place a line enters the log.
//!
//! [`record`] appends a line to the hash-chained log, judges it against
//! the alert rules, appends any alert it fires as a line of its own, and
//! forwards all of them to the sinks (`server::sink`). Only the append can
//! fail the caller: an alert that cannot be judged or a sink that cannot be
//! reached never refuses a push or a fetch.
//!
//! The rules, and the key of their threshold:
//! - `mvault.alertRefusals` (default `3/10m`): refusals of one pusher;
//! - `mvault.alertKey` (default `1`): a push refused for an expired key or
//!   a key in no policy entry, or a fetch by a user whose key expired or who
//!   is no longer in the policy;
//! - `mvault.alertFirstFetch` (default `1`): a user's first fetch of a
//!   model's payload;
//! - `mvault.alertReport` (default `1`): an integrity report;
//! - `mvault.alertGrant` (default `1`): an accepted policy change that
//!   grants a role (every role reads; ml_admin administers).
//!
//! A threshold is `N` (the Nth occurrence for one subject fires, then the
//! count starts again), `N/WINDOW` (N within WINDOW: `30s`, `10m`, `2h`,
//! `1d`) or `off`. Counts live in `mvault-alerts.json` beside the log.
//! When a sink is configured every rule is on at its default unless set
//! `off`; without a sink only the rules whose key is set are on (their
//! alerts are then in the log alone).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::log::append_chained;
use super::sink::{self, FileLock, Sink, SINK_CONFIG};
use crate::model::policy::{Policy, Role};
use crate::store::Store;

/// The alert counts and the (user, model) pairs already fetched.
pub const STATE_FILE: &str = "mvault-alerts.json";

/// An alert rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertRule {
    Refusals,
    Key,
    FirstFetch,
    Report,
    Grant,
}

impl AlertRule {
    pub const ALL: [AlertRule; 5] = [
        AlertRule::Refusals,
        AlertRule::Key,
        AlertRule::FirstFetch,
        AlertRule::Report,
        AlertRule::Grant,
    ];

    /// The name alert lines carry.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertRule::Refusals => "refusals",
            AlertRule::Key => "expired-or-revoked-key",
            AlertRule::FirstFetch => "first-fetch",
            AlertRule::Report => "integrity-report",
            AlertRule::Grant => "grant",
        }
    }

    /// The git config key of its threshold.
    pub fn config_key(self) -> &'static str {
        match self {
            AlertRule::Refusals => "mvault.alertRefusals",
            AlertRule::Key => "mvault.alertKey",
            AlertRule::FirstFetch => "mvault.alertFirstFetch",
            AlertRule::Report => "mvault.alertReport",
            AlertRule::Grant => "mvault.alertGrant",
        }
    }

    fn default_threshold(self) -> Threshold {
        match self {
            AlertRule::Refusals => Threshold {
                count: 3,
                window: Some(600),
            },
            _ => Threshold {
                count: 1,
                window: None,
            },
        }
    }
}

/// How many occurrences for one subject fire, within how many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    pub count: u32,
    /// Seconds; `None`: no window.
    pub window: Option<i64>,
}

impl Threshold {
    /// `N`, `N/WINDOW` or `off` (`Ok(None)`).
    pub fn parse(text: &str) -> Result<Option<Threshold>, String> {
        let text = text.trim();
        if text == "off" {
            return Ok(None);
        }
        let (n, window) = match text.split_once('/') {
            Some((n, w)) => (n, Some(w)),
            None => (text, None),
        };
        let count = n
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|c| (1..=1_000_000).contains(c))
            .ok_or_else(|| format!("{text:?}: the count is a number from 1 up"))?;
        let window = match window {
            None => None,
            Some(w) => {
                let w = w.trim();
                let (digits, unit) = w.split_at(w.len().saturating_sub(1));
                let scale = match unit {
                    "s" => 1,
                    "m" => 60,
                    "h" => 3600,
                    "d" => 86_400,
                    _ => 0,
                };
                let n = digits.parse::<i64>().ok().filter(|n| *n > 0);
                match n {
                    Some(n) if scale > 0 => Some(n * scale),
                    _ => {
                        return Err(format!(
                            "{text:?}: the window is a number and s, m, h or d (10m)"
                        ))
                    }
                }
            }
        };
        Ok(Some(Threshold { count, window }))
    }
}

/// The alert and forwarding settings of a repository.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub sinks: Vec<Sink>,
    /// Each rule's threshold; a rule turned off is absent.
    pub thresholds: BTreeMap<AlertRule, Threshold>,
    /// What could not be read, said by `hook check`; an unreadable
    /// threshold keeps its default, an unreadable sink is skipped.
    pub problems: Vec<String>,
}

impl Settings {
    /// Read the settings from the repository's config.
    pub fn read(store: &Store) -> Settings {
        let mut s = Settings::default();
        let urls = store.config_strings(SINK_CONFIG);
        // With a sink, every rule is on at its default unless turned off;
        // without one, only the rules whose threshold is set are.
        let defaults = urls.iter().any(|u| !u.trim().is_empty());
        for parsed in sink::configured(&urls) {
            match parsed {
                Ok(sink) => s.sinks.push(sink),
                Err(e) => s.problems.push(e.to_string()),
            }
        }
        for rule in AlertRule::ALL {
            let threshold = match store.config_string(rule.config_key()) {
                None if defaults => Some(rule.default_threshold()),
                None => None,
                Some(v) => Threshold::parse(&v).unwrap_or_else(|e| {
                    s.problems.push(format!("{}: {e}", rule.config_key()));
                    Some(rule.default_threshold())
                }),
            };
            if let Some(t) = threshold {
                s.thresholds.insert(rule, t);
            }
        }
        s
    }
}

/// A role a policy change grants, for the decision line and the alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantLine {
    pub user: String,
    pub role: String,
    pub models: String,
}

/// The grants `after` holds that `before` did not: every role reads its
/// models, ml_admin administers them.
pub fn new_grants(before: &Policy, after: &Policy) -> Vec<GrantLine> {
    let old: BTreeSet<(String, Role, String)> = before
        .grants
        .iter()
        .map(|g| (g.user.clone(), g.role, g.models.clone()))
        .collect();
    after
        .grants
        .iter()
        .filter(|g| !old.contains(&(g.user.clone(), g.role, g.models.clone())))
        .map(|g| GrantLine {
            user: g.user.clone(),
            role: g.role.as_str().to_owned(),
            models: g.models.clone(),
        })
        .collect()
}

/// Whether a fetching user's key counts under `policy` at `now`:
/// `Some("expired")`, `Some("revoked")` (no longer in the policy), or
/// `None` when it does.
pub fn key_problem(policy: &Policy, user: &str, now: OffsetDateTime) -> Option<&'static str> {
    match policy.users.get(user) {
        None => Some("revoked"),
        Some(u) if !u.active_at(now) => Some("expired"),
        Some(_) => None,
    }
}

/// The alert counts kept between events.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// `rule\tsubject` → the times (unix seconds) counted so far.
    #[serde(default)]
    counts: BTreeMap<String, Vec<i64>>,
    /// `user\tmodel` pairs that have fetched.
    #[serde(default)]
    fetched: BTreeSet<String>,
}

/// Something that may fire an alert: a rule, the user concerned, the
/// subject counted, and what happened.
struct Occurrence {
    rule: AlertRule,
    user: Option<String>,
    subject: String,
    cause: String,
}

/// The occurrences a log line holds.
fn occurrences(line: &Value, state: &mut State) -> Vec<Occurrence> {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let mut out = Vec::new();
    let actor = text(line, "pusher").or_else(|| text(line, "user"));
    let who = actor.clone().unwrap_or_else(|| "unknown".into());
    match (
        text(line, "decision").as_deref(),
        text(line, "event").as_deref(),
    ) {
        (Some("refuse"), _) => {
            let rule = line["refusal"]["rule"].as_str().unwrap_or("");
            let subject = line["refusal"]["subject"].as_str().unwrap_or("");
            let cause = format!("refused {subject}: {rule}");
            if matches!(rule, "expired key" | "unknown signer") {
                out.push(Occurrence {
                    rule: AlertRule::Key,
                    user: actor.clone(),
                    subject: who.clone(),
                    cause: cause.clone(),
                });
            }
            out.push(Occurrence {
                rule: AlertRule::Refusals,
                user: actor,
                subject: who,
                cause,
            });
        }
        (Some("accept"), _) => {
            for g in line["grants"].as_array().into_iter().flatten() {
                let (user, role, models) = (
                    g["user"].as_str().unwrap_or(""),
                    g["role"].as_str().unwrap_or(""),
                    g["models"].as_str().unwrap_or(""),
                );
                out.push(Occurrence {
                    rule: AlertRule::Grant,
                    user: Some(user.to_owned()),
                    subject: format!("{user} {role} {models}"),
                    cause: format!(
                        "{who} pushed a policy change granting {user} {role} on {models}"
                    ),
                });
            }
        }
        (None, Some("fetch")) => {
            if let Some(problem) = text(line, "key") {
                out.push(Occurrence {
                    rule: AlertRule::Key,
                    user: actor.clone(),
                    subject: who.clone(),
                    cause: format!("fetch by {who}, whose key is {problem}"),
                });
            }
            let models: BTreeSet<&str> = line["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v["model"].as_str())
                .collect();
            for m in models {
                if actor.is_some() && state.fetched.insert(format!("{who}\t{m}")) {
                    out.push(Occurrence {
                        rule: AlertRule::FirstFetch,
                        user: actor.clone(),
                        subject: format!("{who} {m}"),
                        cause: format!("{who} fetched {m} for the first time"),
                    });
                }
            }
        }
        (None, Some("integrity-violation")) => {
            let r = &line["report"];
            let what = match (r["model"].as_str(), r["version"].as_str()) {
                (Some(m), Some(v)) => format!(" on {m}@{v}"),
                (Some(m), None) => format!(" on {m}"),
                _ => String::new(),
            };
            out.push(Occurrence {
                rule: AlertRule::Report,
                user: actor,
                subject: who.clone(),
                cause: format!(
                    "{who} reports a failed {} check{what}: {}",
                    r["check"].as_str().unwrap_or("?"),
                    r["detail"].as_str().unwrap_or("")
                ),
            });
        }
        _ => {}
    }
    out
}

/// The alert lines `line` fires, the counts updated in the state file.
fn judge(git_dir: &Path, settings: &Settings, line: &Value, now: i64, time: &str) -> Vec<Value> {
    if line.get("event").and_then(Value::as_str) == Some("alert") {
        return Vec::new();
    }
    let path = git_dir.join(STATE_FILE);
    let Ok(_lock) = FileLock::acquire(
        &git_dir.join(format!("{STATE_FILE}.lock")),
        Duration::from_secs(2),
    ) else {
        return Vec::new();
    };
    let mut state: State = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut alerts = Vec::new();
    for o in occurrences(line, &mut state) {
        let Some(t) = settings.thresholds.get(&o.rule) else {
            continue;
        };
        let key = format!("{}\t{}", o.rule.as_str(), o.subject);
        let times = state.counts.entry(key.clone()).or_default();
        if let Some(w) = t.window {
            times.retain(|at| *at > now - w);
        }
        times.push(now);
        if times.len() >= t.count as usize {
            alerts.push(json!({
                "time": time,
                "event": "alert",
                "rule": o.rule.as_str(),
                "user": o.user,
                "subject": o.subject,
                "count": times.len(),
                "window": t.window,
                "cause": o.cause,
            }));
            state.counts.remove(&key);
        }
    }
    state.counts.retain(|_, v| !v.is_empty());
    let tmp = git_dir.join(format!("{STATE_FILE}.tmp"));
    let written = serde_json::to_vec(&state)
        .map_err(std::io::Error::other)
        .and_then(|b| std::fs::write(&tmp, b))
        .and_then(|_| std::fs::rename(&tmp, &path));
    if written.is_err() {
        // Counts not kept: the alerts fired stand, later ones may be late.
        let _ = std::fs::remove_file(&tmp);
    }
    alerts
}

/// What kind of line a log entry is, as forwarded: `decision`, `fetch`,
/// `integrity-violation` or `alert`.
pub fn line_kind(line: &Value) -> String {
    if line.get("decision").is_some() {
        return "decision".into();
    }
    line.get("event")
        .and_then(Value::as_str)
        .unwrap_or("event")
        .to_owned()
}

/// The line a sink receives: the log line as written (its `prev` link
/// included) with `kind` and `repo` added.
fn forwarded(git_dir: &Path, written: &str) -> Option<String> {
    let mut v: Value = serde_json::from_str(written).ok()?;
    let kind = line_kind(&v);
    let obj = v.as_object_mut()?;
    obj.insert("kind".into(), Value::String(kind));
    // git runs hooks with GIT_DIR=. : name the repository absolutely.
    let repo = std::fs::canonicalize(git_dir).unwrap_or_else(|_| git_dir.to_owned());
    obj.insert("repo".into(), Value::String(repo.display().to_string()));
    serde_json::to_string(&v).ok()
}

/// Append `entry` to the server log, then judge and forward it; the
/// SHA-256 of the line written. Only a failure to append is returned: the
/// caller fails closed on it.
pub fn record(git_dir: &Path, entry: Value, now: OffsetDateTime) -> std::io::Result<String> {
    let written = append_chained(git_dir, entry)?;
    let hash = crate::model::manifest::Sha256Digest::of(written.as_bytes()).to_hex();
    let settings = match Store::open(git_dir) {
        Ok(store) => Settings::read(&store),
        Err(_) => return Ok(hash),
    };
    if settings.sinks.is_empty() && settings.thresholds.is_empty() {
        return Ok(hash);
    }
    let mut lines = vec![written.clone()];
    if let Ok(v) = serde_json::from_str::<Value>(&written) {
        let time = crate::vault::rfc3339(now);
        for alert in judge(git_dir, &settings, &v, now.unix_timestamp(), &time) {
            if let Ok(line) = append_chained(git_dir, alert) {
                lines.push(line);
            }
        }
    }
    let out: Vec<String> = lines.iter().filter_map(|l| forwarded(git_dir, l)).collect();
    sink::forward(git_dir, &settings.sinks, &out, Some(sink::EVENT_BUDGET));
    Ok(hash)
}

/// Deliver what waits in the spool, with no time budget (`hook flush`).
pub fn flush(git_dir: &Path) -> Result<sink::Drained, crate::store::StoreError> {
    let store = Store::open(git_dir)?;
    let settings = Settings::read(&store);
    Ok(sink::drain(store.git_dir(), &settings.sinks, None))
}

/// What `hook check` says about forwarding: each sink, each setting it
/// could not read (FAIL), and the lines still queued (warn). Nothing when
/// no sink is configured and nothing waits.
pub fn check_items(store: &Store) -> Vec<super::install::CheckItem> {
    use super::install::{CheckItem, CheckStatus};
    let settings = Settings::read(store);
    let mut items: Vec<CheckItem> = settings
        .problems
        .iter()
        .map(|p| CheckItem {
            status: CheckStatus::Fail,
            what: p.clone(),
        })
        .collect();
    if !settings.sinks.is_empty() {
        items.push(CheckItem {
            status: CheckStatus::Ok,
            what: format!(
                "the server log is forwarded to {}",
                settings
                    .sinks
                    .iter()
                    .map(Sink::url)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    for (url, n) in sink::queued(store.git_dir()) {
        let configured = settings.sinks.iter().any(|s| s.url() == url);
        items.push(CheckItem {
            status: CheckStatus::Warn,
            what: if configured {
                format!(
                    "{n} line(s) queued for {url}: delivery failed; they are retried on the next event, or now with mvault hook flush {}",
                    store.git_dir().display()
                )
            } else {
                format!(
                    "{n} line(s) queued for {url}, which is no longer a {SINK_CONFIG}: add it back to deliver them, or remove them from {}",
                    sink::QUEUE_FILE
                )
            },
        });
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse() {
        assert_eq!(
            Threshold::parse("3/10m"),
            Ok(Some(Threshold {
                count: 3,
                window: Some(600)
            }))
        );
        assert_eq!(
            Threshold::parse("1"),
            Ok(Some(Threshold {
                count: 1,
                window: None
            }))
        );
        assert_eq!(Threshold::parse("off"), Ok(None));
        for bad in ["0", "3/10", "3/m", "x/1m", "3/-1m", ""] {
            assert!(Threshold::parse(bad).is_err(), "{bad}");
        }
    }

    fn refusal(pusher: &str) -> Value {
        json!({"time": "t", "decision": "refuse", "pusher": pusher,
               "refusal": {"rule": "pusher role", "subject": "refs/heads/main"}})
    }

    #[test]
    fn refusals_fire_at_the_threshold_within_the_window_then_count_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Settings::default();
        s.thresholds.insert(
            AlertRule::Refusals,
            Threshold {
                count: 3,
                window: Some(600),
            },
        );
        let fired = |at: i64, who: &str| judge(dir.path(), &s, &refusal(who), at, "t").len();
        assert_eq!(fired(1000, "mallory"), 0);
        assert_eq!(fired(1100, "bob"), 0, "bob's refusals count apart");
        // The first falls out of the window.
        assert_eq!(fired(1700, "mallory"), 0);
        assert_eq!(fired(1800, "mallory"), 0);
        let a = judge(dir.path(), &s, &refusal("mallory"), 1900, "t");
        assert_eq!(a.len(), 1);
        assert_eq!(a[0]["rule"], "refusals");
        assert_eq!(a[0]["subject"], "mallory");
        assert_eq!(a[0]["count"], 3);
        assert_eq!(a[0]["window"], 600);
        assert_eq!(fired(1950, "mallory"), 0, "counting starts again");
    }

    #[test]
    fn keys_grants_and_reports_are_read_from_the_lines() {
        let mut state = State::default();
        let rules = |v: Value, state: &mut State| -> Vec<(AlertRule, String)> {
            occurrences(&v, state)
                .into_iter()
                .map(|o| (o.rule, o.subject))
                .collect()
        };
        let expired = json!({"decision": "refuse", "pusher": "carol",
            "refusal": {"rule": "expired key", "subject": "refs/heads/main"}});
        assert_eq!(
            rules(expired, &mut state),
            [
                (AlertRule::Key, "carol".to_owned()),
                (AlertRule::Refusals, "carol".to_owned())
            ]
        );
        let revoked = json!({"event": "fetch", "user": "dave", "key": "revoked", "versions": []});
        assert_eq!(
            rules(revoked, &mut state),
            [(AlertRule::Key, "dave".to_owned())]
        );
        let grant = json!({"decision": "accept", "pusher": "admin",
            "grants": [{"user": "bob", "role": "ml_admin", "models": "**"}]});
        assert_eq!(
            rules(grant, &mut state),
            [(AlertRule::Grant, "bob ml_admin **".to_owned())]
        );
        let plain = json!({"decision": "accept", "pusher": "alice"});
        assert!(rules(plain, &mut state).is_empty());
        let report = json!({"event": "integrity-violation", "user": "bob",
            "report": {"check": "digest", "model": "nlp/bert", "detail": "x"}});
        let o = occurrences(&report, &mut state);
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].rule, AlertRule::Report);
        assert!(
            o[0].cause.contains("digest check on nlp/bert"),
            "{}",
            o[0].cause
        );
    }

    #[test]
    fn new_grants_are_the_grants_the_change_adds() {
        use crate::rules::fixtures::TestKey;
        let (admin, bob) = (
            TestKey::new("admin", 1).line(),
            TestKey::new("bob", 2).line(),
        );
        let policy = |extra: &str| {
            Policy::parse(&format!(
                "schema = 1\n\n[users.admin]\nkeys = [\"{admin}\"]\n\n[users.bob]\nkeys = [\"{bob}\"]\n\n[[grants]]\nuser = \"admin\"\nrole = \"ml_admin\"\nmodels = \"**\"\n{extra}"
            ))
            .expect("policy")
        };
        let before = policy("");
        let after = policy("\n[[grants]]\nuser = \"bob\"\nrole = \"viewer\"\nmodels = \"nlp/*\"\n");
        assert_eq!(
            new_grants(&before, &after),
            [GrantLine {
                user: "bob".into(),
                role: "viewer".into(),
                models: "nlp/*".into()
            }]
        );
        assert!(
            new_grants(&after, &before).is_empty(),
            "a revocation grants nothing"
        );
        let now = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(key_problem(&after, "bob", now), None);
        assert_eq!(key_problem(&after, "carol", now), Some("revoked"));
    }

    #[test]
    fn first_fetch_fires_once_per_user_and_model() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Settings::default();
        s.thresholds.insert(
            AlertRule::FirstFetch,
            Threshold {
                count: 1,
                window: None,
            },
        );
        let fetch = |user: &str, model: &str| {
            json!({"time": "t", "event": "fetch", "user": user,
                   "versions": [{"model": model, "version": "1.0.0"}]})
        };
        let n = |v: Value| judge(dir.path(), &s, &v, 0, "t").len();
        assert_eq!(n(fetch("bob", "nlp/bert")), 1);
        assert_eq!(n(fetch("bob", "nlp/bert")), 0);
        assert_eq!(n(fetch("alice", "nlp/bert")), 1);
        assert_eq!(n(fetch("bob", "cv/resnet")), 1);
        assert_eq!(n(json!({"event": "alert"})), 0, "alerts are not judged");
    }
}
