//! The server's hash-chained log: every hook decision and every fetch,
//! one JSON line each, each carrying the SHA-256 of the line before it, with
//! a head file holding the log's length and last hash.
//!
//! A fetch line says who read which version from where: the user the
//! server vouches for (the same variables as a pusher: `MVAULT_USER`,
//! `GL_USER`, `REMOTE_USER`, …), the client's address (`SSH_CLIENT`, or the
//! web server's `REMOTE_ADDR`), the refs the client wanted and, for each
//! payload ref among them (`refs/mvault/data/<model>/<version>`), the model
//! and version. `read_log` reads the lines back, filtered, for `mvault log
//! --server`.

use std::path::{Path, PathBuf};

use serde::Serialize;
use time::OffsetDateTime;

use crate::model::approval::parse_approval_name;
use crate::model::manifest::Sha256Digest;
use crate::model::names::{parse_payload_ref, ModelName, Version};
use crate::model::promotion::parse_promotion_name;
use crate::model::updates::Update;
use std::collections::BTreeSet;

use super::alerts::GrantLine;
use super::config::{
    client_address_from_env, policy_on_main, pusher_from_env, ServerConfig, ServerIdentity,
};
use crate::rules::{Accepted, Refusal};
use crate::store::Store;

/// The decision log, in the server repository's directory.
pub const LOG_FILE: &str = "mvault-decisions.jsonl";
/// The log's head: its length and the hash of its last line.
pub const HEAD_FILE: &str = "mvault-decisions.head";

/// One line of the decision log.
#[derive(Debug, Serialize)]
struct LogLine<'a> {
    time: String,
    /// The policy user who pushed.
    pusher: Option<&'a str>,
    /// The name the server gave for them (an alias of `pusher`, or the
    /// same name).
    #[serde(skip_serializing_if = "Option::is_none")]
    server_name: Option<&'a str>,
    /// The client's address (`SSH_CLIENT`, `REMOTE_ADDR`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<&'a str>,
    decision: &'a str,
    updates: &'a [Update],
    accepted: &'a [Accepted],
    refusal: Option<&'a Refusal>,
    /// The roles an accepted policy change grants (alerts, docs/alerts.md).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    grants: &'a [GrantLine],
    prev: String,
}

/// Append one decision to the hash-chained log: each line carries the
/// SHA-256 of the line before it (zeros for the first). The line is then
/// judged by the alert rules and forwarded to the sinks (`server::alerts`).
/// Returns the new line's SHA-256, the push's id in the lines that follow
/// it (`landed`, `not-landed`).
pub fn append_log(
    git_dir: &Path,
    pusher: Option<&ServerIdentity>,
    address: Option<&str>,
    updates: &[Update],
    outcome: &Result<Vec<Accepted>, Refusal>,
    grants: &[GrantLine],
    now: OffsetDateTime,
) -> std::io::Result<String> {
    let empty: Vec<Accepted> = Vec::new();
    let line = LogLine {
        time: crate::vault::rfc3339(now),
        pusher: pusher.map(|p| p.user.as_str()),
        server_name: pusher.map(|p| p.server_name.as_str()),
        address,
        decision: if outcome.is_ok() { "accept" } else { "refuse" },
        updates,
        accepted: outcome.as_ref().map(Vec::as_slice).unwrap_or(&empty),
        refusal: outcome.as_ref().err(),
        grants,
        prev: String::new(),
    };
    super::alerts::record(
        git_dir,
        serde_json::to_value(&line).map_err(std::io::Error::other)?,
        now,
    )
}

/// Append `entry` to the server log with its `prev` link set; the line
/// written, without its newline. Only the log's tail is read, so the cost
/// does not grow with the log.
pub fn append_chained(git_dir: &Path, mut entry: serde_json::Value) -> std::io::Result<String> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let path = git_dir.join(LOG_FILE);
    let _guard = lock_log(git_dir)?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(&path)?;
    let len = f.metadata()?.len();
    // An empty live log continues the chain from the last sealed segment.
    let mut prev = super::segments::chain_anchor(git_dir)?;
    if len > 0 {
        // Read backwards in growing windows until the last line is whole.
        let mut window = 64 * 1024u64;
        loop {
            let start = len.saturating_sub(window);
            f.seek(SeekFrom::Start(start))?;
            let mut tail = Vec::new();
            f.read_to_end(&mut tail)?;
            let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
            match body.iter().rposition(|b| *b == b'\n') {
                Some(i) => {
                    prev = Sha256Digest::of(&body[i + 1..]).to_hex();
                    break;
                }
                None if start == 0 => {
                    prev = Sha256Digest::of(body).to_hex();
                    break;
                }
                None => window *= 4,
            }
        }
    }
    entry["prev"] = serde_json::Value::String(prev);
    let mut text = serde_json::to_string(&entry).map_err(std::io::Error::other)?;
    text.push('\n');
    f.write_all(text.as_bytes())?;
    f.sync_data()?;
    // The head: the log's length and its last line's hash, kept beside it,
    // so cutting lines off the end or editing the last one is detected.
    let line_hash = Sha256Digest::of(text.trim_end_matches('\n').as_bytes()).to_hex();
    write_head(git_dir, len + text.len() as u64, &line_hash)?;
    text.pop();
    Ok(text)
}

/// Rewrite the head (by rename): the live log's length and last hash.
pub(super) fn write_head(git_dir: &Path, len: u64, last: &str) -> std::io::Result<()> {
    let head = git_dir.join(HEAD_FILE);
    let tmp = git_dir.join(format!("{HEAD_FILE}.tmp"));
    std::fs::write(&tmp, format!("{len} {last}\n"))?;
    std::fs::rename(&tmp, &head)
}

/// Take the log's lock file, which serialises concurrent hooks (git runs
/// one per push) and rotation; it is removed when the guard drops.
pub(super) fn lock_log(git_dir: &Path) -> std::io::Result<LockGuard> {
    let lock = git_dir.join(format!("{LOG_FILE}.lock"));
    // A lock file serialises concurrent hooks (git runs one per push).
    let mut tries = 0;
    loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(f) => {
                return Ok(LockGuard {
                    path: lock.clone(),
                    _file: f,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 200 => {
                // A lock left by a killed hook: no append takes a minute.
                let stale = std::fs::metadata(&lock)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > std::time::Duration::from_secs(60));
                if stale {
                    let _ = std::fs::remove_file(&lock);
                    continue;
                }
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The access log half of the server log: `git upload-pack` runs this in
/// place of `git pack-objects` (`uploadpack.packObjectsHook`). It records
/// who fetched which refs, then runs the real pack-objects on the same input.
pub fn pack_objects(
    git_dir: &Path,
    args: &[String],
    env: impl Fn(&str) -> Option<String>,
    now: OffsetDateTime,
) -> std::io::Result<i32> {
    use std::io::{Read, Write};
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input)?;
    if let Ok(store) = Store::open(git_dir) {
        let cfg = ServerConfig::read(&store).unwrap_or_default();
        // Only vaults are logged; other repositories of the same user pass through.
        if !cfg.root_keys.is_empty() {
            let wants: BTreeSet<String> = String::from_utf8_lossy(&input)
                .lines()
                .map(str::trim)
                .filter(|l| l.len() == 40 && l.bytes().all(|b| b.is_ascii_hexdigit()))
                .map(str::to_owned)
                .collect();
            let mut refs = Vec::new();
            if let Ok(all) = store.refs_with_prefix("refs/") {
                for (name, id) in all {
                    if wants.contains(&id.to_string()) {
                        refs.push(name);
                    }
                }
            }
            // A payload ref names the version read; a wanted object that
            // two refs share is logged under both.
            let versions: Vec<serde_json::Value> = refs
                .iter()
                .filter_map(|name| {
                    let (model, version) = parse_payload_ref(name)?;
                    Some(serde_json::json!({
                        "model": model.as_str(),
                        "version": version.to_string(),
                    }))
                })
                .collect();
            // The reader as the policy knows them, and as the server named
            // them; a named user whose key no longer counts (alerts,
            // docs/alerts.md).
            let named = pusher_from_env(&env, &cfg);
            let policy = policy_on_main(&store);
            let key = named.as_deref().and_then(|u| {
                let p = policy.as_ref()?;
                let user = p.user_for_server_name(u).unwrap_or(u);
                super::alerts::key_problem(p, user, now)
            });
            let id =
                ServerIdentity::resolve(named.unwrap_or_else(|| "unknown".into()), policy.as_ref());
            let mut entry = serde_json::json!({
                "time": crate::vault::rfc3339(now),
                "event": "fetch",
                "user": id.user,
                "server_name": id.server_name,
                "address": client_address_from_env(&env),
                "versions": versions,
                "refs": refs,
                "wants": wants.len(),
            });
            if let Some(problem) = key {
                entry["key"] = problem.into();
            }
            super::alerts::record(store.git_dir(), entry, now)?;
        }
    }
    let Some((program, rest)) = args.split_first() else {
        return Err(std::io::Error::other("no pack-objects command given"));
    };
    let mut child = std::process::Command::new(program)
        .args(rest)
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(&input)?;
    drop(stdin);
    Ok(child.wait()?.code().unwrap_or(1))
}

/// The held lock on the log.
pub(super) struct LockGuard {
    path: PathBuf,
    _file: std::fs::File,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Check the decision log's chain — the sealed segments present in the
/// repository's directory, the seals, then the live log and its head;
/// `Ok(entries verified)` or the first broken line.
pub fn verify_log(git_dir: &Path) -> Result<usize, String> {
    super::segments::verify_segments(git_dir, &[])
        .map(|v| v.entries())
        .map_err(|e| e.to_string())
}

/// What a line of the server log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerEvent {
    /// The hook accepted a push.
    Accept,
    /// The hook refused a push.
    Refuse,
    /// A client fetched (the pack-objects hook).
    Fetch,
    /// A client's integrity report, accepted by the hook.
    #[serde(rename = "integrity-violation")]
    IntegrityViolation,
    /// An alert rule fired (docs/alerts.md).
    Alert,
    /// An accepted push landed (post-receive), with its receipt.
    Landed,
    /// An accepted push did not land: refused by a hook after mvault's,
    /// or its ref update failed.
    NotLanded,
}

impl ServerEvent {
    /// Every kind, in the order `--action` lists them.
    pub const ALL: [ServerEvent; 7] = [
        ServerEvent::Accept,
        ServerEvent::Refuse,
        ServerEvent::Fetch,
        ServerEvent::IntegrityViolation,
        ServerEvent::Alert,
        ServerEvent::Landed,
        ServerEvent::NotLanded,
    ];

    /// The name the log and `--action` use.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerEvent::Accept => "accept",
            ServerEvent::Refuse => "refuse",
            ServerEvent::Fetch => "fetch",
            ServerEvent::IntegrityViolation => "integrity-violation",
            ServerEvent::Alert => "alert",
            ServerEvent::Landed => "landed",
            ServerEvent::NotLanded => "not-landed",
        }
    }

    /// The kind `name` names, if any.
    pub fn parse(name: &str) -> Option<Self> {
        ServerEvent::ALL.into_iter().find(|e| e.as_str() == name)
    }
}

/// A model, and the version when the ref names one, that a server log line
/// concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub model: ModelName,
    pub version: Option<Version>,
}

/// One line of the server log, read back.
#[derive(Debug, Clone)]
pub struct ServerEntry {
    /// The line as it is stored (what `--json` prints).
    pub line: String,
    /// The time the line records, as written (RFC 3339).
    pub time: String,
    pub event: ServerEvent,
    /// The pusher of a decision, the user of a fetch.
    pub actor: Option<String>,
    /// The client's address (fetches).
    pub address: Option<String>,
    /// The refs a push updated, or a fetch wanted.
    pub refs: Vec<String>,
    /// What the line concerns: for a fetch, the versions whose payload it
    /// read; for a decision, the models and versions its refs name.
    pub subjects: Vec<Subject>,
    /// The rule that refused a push.
    pub rule: Option<String>,
}

/// Which lines `read_log` keeps; every filter given must match.
#[derive(Debug, Clone, Default)]
pub struct ServerFilter {
    /// Lines concerning a model that matches.
    pub model: Option<globset::GlobMatcher>,
    /// Lines concerning this version.
    pub version: Option<String>,
    /// Lines by this user (pusher or fetcher).
    pub actor: Option<String>,
    /// Lines of these kinds (all when empty).
    pub events: Vec<ServerEvent>,
    /// Lines at or after this time (unix seconds).
    pub since: Option<i64>,
    /// Lines at or before this time (unix seconds).
    pub until: Option<i64>,
    /// Only the last N lines kept.
    pub limit: Option<usize>,
}

impl ServerFilter {
    fn keep(&self, e: &ServerEntry, unix: Option<i64>) -> bool {
        if let Some(g) = &self.model {
            if !e.subjects.iter().any(|s| g.is_match(s.model.as_str())) {
                return false;
            }
        }
        if let Some(v) = &self.version {
            let named = e.subjects.iter().any(|s| {
                s.version.as_ref().is_some_and(|sv| sv.to_string() == *v)
                    && self
                        .model
                        .as_ref()
                        .is_none_or(|g| g.is_match(s.model.as_str()))
            });
            if !named {
                return false;
            }
        }
        if self.actor.is_some() && e.actor != self.actor {
            return false;
        }
        if !self.events.is_empty() && !self.events.contains(&e.event) {
            return false;
        }
        // A line whose time cannot be read is outside every period: a
        // filter by time never shows what it cannot place.
        if let Some(since) = self.since {
            if unix.is_none_or(|t| t < since) {
                return false;
            }
        }
        if let Some(until) = self.until {
            if unix.is_none_or(|t| t > until) {
                return false;
            }
        }
        true
    }
}

/// Why the server log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadLogError {
    /// The log file is missing or unreadable.
    #[error("no server log at {path}: {source}")]
    Missing {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A line is not a log entry.
    #[error("{path} line {line}: {reason}")]
    Malformed {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// The server log's lines that `filter` keeps, oldest first: those of the
/// sealed segments still in the repository's directory, then the live
/// log's. It does not check the chain: `verify_log` does.
pub fn read_log(git_dir: &Path, filter: &ServerFilter) -> Result<Vec<ServerEntry>, ReadLogError> {
    let mut files = super::segments::present_segments(git_dir);
    files.push(git_dir.join(LOG_FILE));
    let mut kept = Vec::new();
    for path in files {
        read_file(&path, filter, &mut kept)?;
    }
    if let Some(n) = filter.limit {
        let skip = kept.len().saturating_sub(n);
        kept.drain(..skip);
    }
    Ok(kept)
}

/// Add the lines of one log file that `filter` keeps to `kept`.
fn read_file(
    path: &Path,
    filter: &ServerFilter,
    kept: &mut Vec<ServerEntry>,
) -> Result<(), ReadLogError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReadLogError::Missing {
        path: path.to_owned(),
        source,
    })?;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let malformed = |reason: String| ReadLogError::Malformed {
            path: path.to_owned(),
            line: i + 1,
            reason,
        };
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| malformed(format!("not JSON: {e}")))?;
        let entry = parse_entry(line, &v).ok_or_else(|| {
            malformed("neither a decision (`decision`) nor a fetch (`event`)".into())
        })?;
        let unix = time::OffsetDateTime::parse(
            &entry.time,
            &time::format_description::well_known::Rfc3339,
        )
        .ok()
        .map(|t| t.unix_timestamp());
        if filter.keep(&entry, unix) {
            kept.push(entry);
        }
    }
    Ok(())
}

fn parse_entry(line: &str, v: &serde_json::Value) -> Option<ServerEntry> {
    let text = |k: &str| v.get(k).and_then(|s| s.as_str()).map(str::to_owned);
    let strings = |a: &serde_json::Value| -> Vec<String> {
        a.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (event, actor, refs, subjects) = match (text("decision"), text("event")) {
        (Some(d), _) => {
            let event = match d.as_str() {
                "accept" => ServerEvent::Accept,
                "refuse" => ServerEvent::Refuse,
                _ => return None,
            };
            let refs: Vec<String> = v["updates"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|u| u["refname"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let mut subjects: Vec<Subject> = Vec::new();
            for s in refs.iter().filter_map(|r| ref_subject(r)) {
                if !subjects.contains(&s) {
                    subjects.push(s);
                }
            }
            (event, text("pusher"), refs, subjects)
        }
        (None, Some(e)) if e == "landed" || e == "not-landed" => {
            let event = if e == "landed" {
                ServerEvent::Landed
            } else {
                ServerEvent::NotLanded
            };
            let refs: Vec<String> = v["updates"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|u| u["refname"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let mut subjects: Vec<Subject> = Vec::new();
            for s in refs.iter().filter_map(|r| ref_subject(r)) {
                if !subjects.contains(&s) {
                    subjects.push(s);
                }
            }
            (event, text("pusher"), refs, subjects)
        }
        (None, Some(e)) if e == "fetch" => {
            // The versions read: the payload refs the fetch wanted.
            let subjects = v["versions"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| {
                            Some(Subject {
                                model: ModelName::parse(s["model"].as_str()?).ok()?,
                                version: Some(Version::parse(s["version"].as_str()?).ok()?),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            (
                ServerEvent::Fetch,
                text("user"),
                strings(&v["refs"]),
                subjects,
            )
        }
        (None, Some(e)) if e == "integrity-violation" => {
            let r = &v["report"];
            let subjects = match (r["model"].as_str(), r["version"].as_str()) {
                (Some(m), version) => vec![Subject {
                    model: ModelName::parse(m).ok()?,
                    version: version.and_then(|v| Version::parse(v).ok()),
                }],
                _ => Vec::new(),
            };
            (
                ServerEvent::IntegrityViolation,
                text("user"),
                text("ref").into_iter().collect(),
                subjects,
            )
        }
        (None, Some(e)) if e == "alert" => {
            (ServerEvent::Alert, text("user"), Vec::new(), Vec::new())
        }
        _ => return None,
    };
    Some(ServerEntry {
        line: line.to_owned(),
        time: text("time").unwrap_or_default(),
        event,
        actor,
        address: text("address"),
        refs,
        subjects,
        rule: v["refusal"]["rule"]
            .as_str()
            .or_else(|| v["rule"].as_str())
            .or_else(|| v["report"]["check"].as_str())
            .map(str::to_owned),
    })
}

/// The model (and version) a ref of a push names: a payload ref, a
/// registration, approval or promotion tag.
fn ref_subject(refname: &str) -> Option<Subject> {
    if let Some((model, version)) = parse_payload_ref(refname) {
        return Some(Subject {
            model,
            version: Some(version),
        });
    }
    let tag = refname.strip_prefix("refs/tags/")?;
    if let Some((_, _, model, version)) = parse_approval_name(tag) {
        return Some(Subject {
            model,
            version: Some(version),
        });
    }
    if let Some((model, _, _)) = parse_promotion_name(tag) {
        return Some(Subject {
            model,
            version: None,
        });
    }
    let (model, version) = tag.split_once("@v")?;
    Some(Subject {
        model: ModelName::parse(model).ok()?,
        version: Some(Version::parse(version).ok()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(g: &str) -> globset::GlobMatcher {
        globset::GlobBuilder::new(g)
            .literal_separator(true)
            .build()
            .expect("glob")
            .compile_matcher()
    }

    /// A decision registering nlp/bert 1.0.0, bob's clone, bob's pull of
    /// the payload, a day later alice's pull of cv/resnet 2.0.0.
    fn sample_log() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let lines = [
            serde_json::json!({"time": "2026-11-22T10:00:00Z", "decision": "accept", "pusher": "alice",
                "updates": [{"refname": "refs/heads/main"}, {"refname": "refs/tags/nlp/bert@v1.0.0"},
                            {"refname": "refs/mvault/data/nlp/bert/1.0.0"}]}),
            serde_json::json!({"time": "2026-11-22T10:00:00Z", "event": "fetch", "user": "bob",
                "address": "127.0.0.1", "versions": [], "refs": ["refs/heads/main"], "wants": 1}),
            serde_json::json!({"time": "2026-11-22T11:00:00Z", "event": "fetch", "user": "bob",
                "address": "127.0.0.1", "versions": [{"model": "nlp/bert", "version": "1.0.0"}],
                "refs": ["refs/mvault/data/nlp/bert/1.0.0"], "wants": 1}),
            serde_json::json!({"time": "2026-11-23T10:00:00Z", "event": "fetch", "user": "alice",
                "address": "10.0.0.2", "versions": [{"model": "cv/resnet", "version": "2.0.0"}],
                "refs": ["refs/mvault/data/cv/resnet/2.0.0"], "wants": 1}),
        ];
        for l in lines {
            append_chained(dir.path(), l).expect("append");
        }
        dir
    }

    fn users(dir: &Path, filter: ServerFilter) -> Vec<(ServerEvent, String)> {
        read_log(dir, &filter)
            .expect("reads")
            .into_iter()
            .map(|e| (e.event, e.actor.unwrap_or_default()))
            .collect()
    }

    #[test]
    fn server_log_filters_by_model_version_actor_action_and_time() {
        use ServerEvent::{Accept, Fetch};
        let log = sample_log();
        let dir = log.path();
        let all = read_log(dir, &ServerFilter::default()).expect("reads");
        assert_eq!(all.len(), 4);
        assert_eq!(all[2].address.as_deref(), Some("127.0.0.1"));
        assert_eq!(
            all[0].subjects,
            vec![Subject {
                model: ModelName::parse("nlp/bert").expect("name"),
                version: Some(Version::parse("1.0.0").expect("version")),
            }],
            "the tag and the payload ref name the same version once"
        );
        let by_model = ServerFilter {
            model: Some(glob("nlp/*")),
            ..Default::default()
        };
        assert_eq!(
            users(dir, by_model),
            [(Accept, "alice".into()), (Fetch, "bob".into())],
            "a clone reads no version; cv/resnet is another model"
        );
        let bobs = ServerFilter {
            actor: Some("bob".into()),
            ..Default::default()
        };
        assert_eq!(users(dir, bobs).len(), 2);
        let fetches_since = ServerFilter {
            events: vec![Fetch],
            since: Some(1_795_345_200), // 2026-11-22T11:00:00Z
            ..Default::default()
        };
        assert_eq!(
            users(dir, fetches_since),
            [(Fetch, "bob".into()), (Fetch, "alice".into())]
        );
        let until = ServerFilter {
            until: Some(1_795_341_600),
            limit: Some(1),
            ..Default::default()
        };
        assert_eq!(users(dir, until), [(Fetch, "bob".into())]);
        let other_version = ServerFilter {
            version: Some("1.1.0".into()),
            ..Default::default()
        };
        assert!(users(dir, other_version).is_empty());
    }

    #[test]
    fn a_line_without_a_readable_time_is_outside_every_period() {
        let dir = tempfile::tempdir().expect("tempdir");
        append_chained(
            dir.path(),
            serde_json::json!({"time": "yesterday", "event": "fetch", "user": "bob"}),
        )
        .expect("append");
        let since = ServerFilter {
            since: Some(0),
            ..Default::default()
        };
        assert!(read_log(dir.path(), &since).expect("reads").is_empty());
        assert_eq!(
            read_log(dir.path(), &ServerFilter::default())
                .expect("reads")
                .len(),
            1
        );
    }

    #[test]
    fn a_line_that_is_no_entry_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(LOG_FILE), "{\"time\":\"x\"}\n").expect("write");
        let err = read_log(dir.path(), &ServerFilter::default()).expect_err("malformed");
        assert!(
            matches!(err, ReadLogError::Malformed { line: 1, .. }),
            "{err}"
        );
    }
}
