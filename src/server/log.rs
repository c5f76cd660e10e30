//! The server's hash-chained log: every hook decision and every fetch,
//! one JSON line each, each carrying the SHA-256 of the line before it, with
//! a head file holding the log's length and last hash.

use std::path::{Path, PathBuf};

use serde::Serialize;
use time::OffsetDateTime;

use crate::model::manifest::Sha256Digest;
use crate::model::updates::Update;
use std::collections::BTreeSet;

use super::config::{pusher_from_env, ServerConfig};
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
    pusher: Option<&'a str>,
    decision: &'a str,
    updates: &'a [Update],
    accepted: &'a [Accepted],
    refusal: Option<&'a Refusal>,
    prev: String,
}

/// Append one decision to the hash-chained log: each line carries the
/// SHA-256 of the line before it (zeros for the first).
pub fn append_log(
    git_dir: &Path,
    pusher: Option<&str>,
    updates: &[Update],
    outcome: &Result<Vec<Accepted>, Refusal>,
    now: OffsetDateTime,
) -> std::io::Result<()> {
    let empty: Vec<Accepted> = Vec::new();
    let line = LogLine {
        time: crate::vault::rfc3339(now),
        pusher,
        decision: if outcome.is_ok() { "accept" } else { "refuse" },
        updates,
        accepted: outcome.as_ref().map(Vec::as_slice).unwrap_or(&empty),
        refusal: outcome.as_ref().err(),
        prev: String::new(),
    };
    append_chained(
        git_dir,
        serde_json::to_value(&line).map_err(std::io::Error::other)?,
    )
}

/// Append `entry` to the server log with its `prev` link set. Only the
/// log's tail is read, so the cost does not grow with the log.
pub fn append_chained(git_dir: &Path, mut entry: serde_json::Value) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let path = git_dir.join(LOG_FILE);
    let lock = git_dir.join(format!("{LOG_FILE}.lock"));
    // A lock file serialises concurrent hooks (git runs one per push).
    let mut tries = 0;
    let _guard = loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(f) => {
                break LockGuard {
                    path: lock.clone(),
                    _file: f,
                }
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
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(&path)?;
    let len = f.metadata()?.len();
    let mut prev = "0".repeat(64);
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
    let head = git_dir.join(HEAD_FILE);
    let tmp = git_dir.join(format!("{HEAD_FILE}.tmp"));
    std::fs::write(&tmp, format!("{} {line_hash}\n", len + text.len() as u64))?;
    std::fs::rename(&tmp, &head)?;
    Ok(())
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
            let user = pusher_from_env(&env, &cfg).unwrap_or_else(|| "unknown".into());
            let entry = serde_json::json!({
                "time": crate::vault::rfc3339(now),
                "event": "fetch",
                "user": user,
                "refs": refs,
                "wants": wants.len(),
            });
            append_chained(store.git_dir(), entry)?;
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

struct LockGuard {
    path: PathBuf,
    _file: std::fs::File,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Check the decision log's chain; `Ok(lines)` or the first broken line.
pub fn verify_log(git_dir: &Path) -> Result<usize, String> {
    let path = git_dir.join(LOG_FILE);
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut prev = "0".repeat(64);
    let mut n = 0;
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(line)
            .map_err(|e| format!("{LOG_FILE} line {}: not JSON: {e}", i + 1))?;
        let got = v.get("prev").and_then(|p| p.as_str()).unwrap_or("");
        if got != prev {
            return Err(format!(
                "{LOG_FILE} line {}: chain broken: prev is {got}, the line before hashes to {prev} (a line was edited, removed or inserted)",
                i + 1
            ));
        }
        prev = Sha256Digest::of(line).to_hex();
        n += 1;
    }
    let head = std::fs::read_to_string(git_dir.join(HEAD_FILE))
        .map_err(|e| format!("{HEAD_FILE}: {e} (the log's head is missing)"))?;
    let (len, hash) = head.trim().split_once(' ').unwrap_or(("", ""));
    if len != bytes.len().to_string() || hash != prev {
        return Err(format!(
            "{LOG_FILE}: the log ends at line {n} with hash {prev} and {} bytes, but its head records {len} bytes and hash {hash} (lines were cut off the end or the last line was edited)",
            bytes.len()
        ));
    }
    Ok(n)
}
