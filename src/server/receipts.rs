//! Receipts: the server's signed word that a push landed, and its signed
//! timestamp.
//!
//! The pre-receive hook decides, but only git knows whether the refs then
//! moved: another hook chained after mvault's may refuse, or a ref update
//! may fail. So the hook's accept is recorded as *pending*
//! (`mvault-pending/<push>.json`, the push named by the SHA-256 of its
//! accept line in the decision log, with the pid of the `git receive-pack`
//! that ran it), and git's `post-receive` hook, which git runs only for the
//! updates that landed, writes the receipt: one commit on
//! `refs/mvault/receipts` whose tree holds the canonical receipt and its
//! SSH signature by the server key (`mvault.serverKey`). A pending accept
//! whose receive-pack has exited without a post-receive claiming it did not
//! land; the next hook run (or `mvault hook heartbeat`) settles it with a
//! `not-landed` line in the decision log.
//!
//! The receipts ref is moved by compare-and-swap (`git update-ref REF NEW
//! OLD`) under an advisory lock, retried when it moved: concurrent pushes
//! neither fork nor lose the chain. Every receipt, and every heartbeat,
//! rewrites `refs/mvault/timestamp`: the server's time and the newest
//! receipt, signed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::crypto::{self, Signer, SshIdentity};
use crate::model::receipt::{
    format_time, zero_hash, Receipt, ReceiptUpdate, Timestamp, RECEIPTS_REF, RECEIPT_FILE,
    RECEIPT_FORMAT, RECEIPT_NAMESPACE, TIMESTAMP_FILE, TIMESTAMP_FORMAT, TIMESTAMP_NAMESPACE,
    TIMESTAMP_REF,
};
use crate::model::updates::{parse_updates, Update};
use crate::model::witness::RECEIPT_LOG_FILE;
use crate::rules::receipts::{read_receipt, read_timestamp, ReceiptBreak};
use crate::store::objects::ObjectId;
use crate::store::{Actor, Store, StoreError};

use super::config::{pusher_from_env, ServerConfig};
use super::log::append_chained;

/// git config key: the path of the server's ed25519 private key, which
/// signs receipts and timestamps. Unset: no receipts.
pub const SERVER_KEY_CONFIG: &str = "mvault.serverKey";
/// Pending accepts, in the repository's git directory.
pub const PENDING_DIR: &str = "mvault-pending";
/// The lock receipt and timestamp writers take.
pub const RECEIPTS_LOCK: &str = "mvault-receipts.lock";
/// The name receipt commits are authored under.
pub const SERVER_ACTOR: &str = "mvault-server";
/// A pending accept older than this is settled even if the process that
/// ran its hook cannot be seen (no /proc).
pub const PENDING_TIMEOUT_SECONDS: i64 = 3600;
/// How often a receipt writer retries when the ref moved under it.
const CAS_ATTEMPTS: u32 = 8;

/// Why a receipt or timestamp was not written.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptWriteError {
    /// The server key is missing or unusable.
    #[error("{SERVER_KEY_CONFIG}: {0}")]
    Key(String),
    /// git or the object store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The newest receipt on the server does not read back.
    #[error("the receipt chain's head is unreadable: {0}")]
    Chain(ReceiptBreak),
    /// The ref kept moving.
    #[error("{RECEIPTS_REF} kept moving: gave up after {CAS_ATTEMPTS} attempts")]
    Contended,
    /// Signing failed.
    #[error("cannot sign: {0}")]
    Sign(String),
}

/// Whether receipts are on: a server key is configured. Without one the
/// hook writes no pending entries and post-receive does nothing, so the
/// decision log holds one line per decision, as before receipts.
pub fn receipts_enabled(store: &Store) -> bool {
    store
        .config_string(SERVER_KEY_CONFIG)
        .is_some_and(|p| !p.trim().is_empty())
}

/// The server key, if one is configured.
pub fn server_key(store: &Store) -> Result<Option<SshIdentity>, String> {
    let Some(path) = store
        .config_string(SERVER_KEY_CONFIG)
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
    else {
        return Ok(None);
    };
    let path = PathBuf::from(path);
    let path = if path.is_absolute() {
        path
    } else {
        store.git_dir().join(path)
    };
    SshIdentity::open(&path, None)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// A receipt written: its number, hash and commit.
#[derive(Debug, Clone, Serialize)]
pub struct Written {
    pub seq: u64,
    pub sha256: String,
    pub commit: String,
    pub time: String,
}

/// A push mvault's hook accepted, waiting for git to say whether it landed.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    /// SHA-256 of the accept line in the decision log.
    push: String,
    /// The `git receive-pack` (or whatever ran the hook) process.
    pid: u32,
    /// Unix seconds of the accept.
    time: i64,
    pusher: Option<String>,
    updates: Vec<ReceiptUpdate>,
}

fn receipt_updates(updates: &[Update]) -> Vec<ReceiptUpdate> {
    updates
        .iter()
        .map(|u| ReceiptUpdate {
            refname: u.refname.clone(),
            old: u.old.clone(),
            new: u.new.clone(),
        })
        .collect()
}

/// Record an accepted push as pending (pre-receive, after the accept line).
pub fn record_pending(
    git_dir: &Path,
    push: &str,
    pusher: Option<&str>,
    updates: &[Update],
    now: OffsetDateTime,
) -> std::io::Result<()> {
    let dir = git_dir.join(PENDING_DIR);
    std::fs::create_dir_all(&dir)?;
    let p = Pending {
        push: push.to_owned(),
        pid: receive_pack_pid(),
        time: now.unix_timestamp(),
        pusher: pusher.map(str::to_owned),
        updates: receipt_updates(updates),
    };
    let tmp = dir.join(format!(".{push}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec(&p).map_err(std::io::Error::other)?)?;
    std::fs::rename(&tmp, dir.join(format!("{push}.json")))
}

/// The process that runs the server's hooks for this push: the nearest
/// ancestor running `receive-pack` (git runs each hook as its child; a
/// chaining driver may sit between), else the parent.
fn receive_pack_pid() -> u32 {
    let parent = std::os::unix::process::parent_id();
    let mut pid = parent;
    for _ in 0..4 {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline
            .split(|b| *b == 0)
            .any(|a| a.ends_with(b"receive-pack"))
        {
            return pid;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            break;
        };
        if ppid <= 1 {
            break;
        }
        pid = ppid;
    }
    parent
}

/// Whether the process that ran a pending push's hooks may still be at work.
fn still_running(p: &Pending, now: i64) -> bool {
    if now - p.time > PENDING_TIMEOUT_SECONDS {
        return false;
    }
    if Path::new("/proc/self").exists() {
        Path::new(&format!("/proc/{}", p.pid)).exists()
    } else {
        true
    }
}

/// The pending pushes, each claimed (renamed) for this process before it
/// is read, so two settlers never both log one push.
fn claim(dir: &Path, name: &str) -> Option<(PathBuf, Pending)> {
    let from = dir.join(name);
    let to = dir.join(format!("{name}.claimed-{}", std::process::id()));
    std::fs::rename(&from, &to).ok()?;
    let p = std::fs::read(&to)
        .ok()
        .and_then(|b| serde_json::from_slice::<Pending>(&b).ok());
    match p {
        Some(p) => Some((to, p)),
        None => {
            let _ = std::fs::remove_file(&to);
            None
        }
    }
}

fn pending_names(dir: &Path) -> Vec<(String, Option<Pending>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".json") || name.starts_with('.') {
            continue;
        }
        let p = std::fs::read(e.path())
            .ok()
            .and_then(|b| serde_json::from_slice::<Pending>(&b).ok());
        out.push((name, p));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn ref_now(store: &Store, name: &str) -> Option<String> {
    store
        .git(&["rev-parse", "-q", "--verify", name])
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Settle the pending pushes whose hooks have finished without a
/// post-receive claiming them: each gets a `not-landed` line (or, when its
/// refs did move, a `landed` line saying no receipt was written). Returns
/// how many were settled.
pub fn settle_pending(store: &Store, now: OffsetDateTime) -> std::io::Result<usize> {
    let git_dir = store.git_dir();
    let dir = git_dir.join(PENDING_DIR);
    let mut n = 0;
    for (name, p) in pending_names(&dir) {
        if p.as_ref()
            .is_some_and(|p| still_running(p, now.unix_timestamp()))
        {
            continue;
        }
        let Some((path, p)) = claim(&dir, &name) else {
            continue;
        };
        let landed: Vec<&ReceiptUpdate> = p
            .updates
            .iter()
            .filter(|u| {
                let deleted = u.new.bytes().all(|b| b == b'0');
                match ref_now(store, &u.refname) {
                    Some(at) => at == u.new,
                    None => deleted,
                }
            })
            .collect();
        let entry = if landed.len() == p.updates.len() {
            serde_json::json!({
                "time": crate::vault::rfc3339(now),
                "event": "landed",
                "pusher": p.pusher,
                "push": p.push,
                "updates": updates_json(&p.updates),
                "missing": [],
                "receipt": null,
                "note": "the refs moved but no post-receive claimed the push: no receipt was written (is hooks/post-receive mvault's?)",
            })
        } else {
            let missing: Vec<&str> = p
                .updates
                .iter()
                .filter(|u| !landed.contains(u))
                .map(|u| u.refname.as_str())
                .collect();
            serde_json::json!({
                "time": crate::vault::rfc3339(now),
                "event": "not-landed",
                "pusher": p.pusher,
                "push": p.push,
                "updates": updates_json(&p.updates),
                "missing": missing,
                "receipt": null,
                "note": "mvault's hook accepted the push but it did not land: refused by a hook that runs after mvault's, or git's ref update failed; no receipt",
            })
        };
        append_chained(git_dir, entry)?;
        let _ = std::fs::remove_file(&path);
        n += 1;
    }
    Ok(n)
}

fn updates_json(updates: &[ReceiptUpdate]) -> serde_json::Value {
    serde_json::Value::Array(
        updates
            .iter()
            .map(|u| serde_json::json!({"refname": u.refname, "old": u.old, "new": u.new}))
            .collect(),
    )
}

/// git's post-receive hook: the updates in `input` landed. Claims the
/// push's pending accept, writes its receipt (when a server key is
/// configured), logs a `landed` line, settles finished pushes. Returns the
/// lines for the pusher; never fails the push (it has landed).
pub fn post_receive(
    git_dir: &Path,
    input: &str,
    env: impl Fn(&str) -> Option<String>,
    now: OffsetDateTime,
) -> Vec<String> {
    let mut lines = Vec::new();
    let updates = match parse_updates(input) {
        Ok(u) => u,
        Err(e) => {
            lines.push(format!("mvault: warning: no receipt: {e}"));
            return lines;
        }
    };
    if updates.is_empty() {
        return lines;
    }
    let store = match Store::open(git_dir) {
        Ok(s) => s,
        Err(e) => {
            lines.push(format!("mvault: warning: no receipt: {e}"));
            return lines;
        }
    };
    if !receipts_enabled(&store) {
        return lines;
    }
    let landed = receipt_updates(&updates);
    // The pending accept this push left: same refs and new values.
    let dir = git_dir.join(PENDING_DIR);
    let mine = pending_names(&dir).into_iter().find_map(|(name, p)| {
        let p = p?;
        let covers = landed.iter().all(|l| {
            p.updates
                .iter()
                .any(|u| u.refname == l.refname && u.new == l.new)
        });
        covers.then_some(name)
    });
    let pending = mine.and_then(|name| claim(&dir, &name));
    let cfg = ServerConfig::read(&store).unwrap_or_default();
    let pusher = pusher_from_env(&env, &cfg)
        .or_else(|| pending.as_ref().and_then(|(_, p)| p.pusher.clone()))
        .unwrap_or_else(|| "unknown".into());
    if let Err(e) = settle_pending(&store, now) {
        lines.push(format!(
            "mvault: warning: cannot settle pending pushes: {e}"
        ));
    }
    let (receipt, error) = match server_key(&store) {
        Ok(None) => (None, Some(format!("{SERVER_KEY_CONFIG} is not set"))),
        Ok(Some(key)) => match write_receipt(&store, &key, &pusher, &landed, now) {
            Ok(w) => (Some(w), None),
            Err(e) => (None, Some(e.to_string())),
        },
        Err(e) => (None, Some(format!("{SERVER_KEY_CONFIG}: {e}"))),
    };
    let missing: Vec<&str> = pending
        .as_ref()
        .map(|(_, p)| {
            p.updates
                .iter()
                .filter(|u| !landed.iter().any(|l| l.refname == u.refname))
                .map(|u| u.refname.as_str())
                .collect()
        })
        .unwrap_or_default();
    let mut entry = serde_json::json!({
        "time": crate::vault::rfc3339(now),
        "event": "landed",
        "pusher": pusher,
        "push": pending.as_ref().map(|(_, p)| p.push.clone()),
        "updates": updates_json(&landed),
        "missing": missing,
        "receipt": receipt,
    });
    if let Some(e) = &error {
        entry["note"] = serde_json::Value::String(format!("no receipt: {e}"));
    }
    if let Err(e) = append_chained(git_dir, entry) {
        lines.push(format!(
            "mvault: warning: cannot write the decision log: {e}"
        ));
    }
    if let Some((path, _)) = pending {
        let _ = std::fs::remove_file(path);
    }
    match (receipt, error) {
        (Some(w), _) => lines.push(format!(
            "mvault: receipt {} (sha256 {}) signed by the server at {}",
            w.seq, w.sha256, w.time
        )),
        (None, Some(e)) => lines.push(format!(
            "mvault: warning: the push landed but no receipt was written: {e}"
        )),
        (None, None) => {}
    }
    lines
}

/// The receipt lock, held while the chain and timestamp move.
struct ChainLock(#[allow(dead_code)] std::fs::File);

fn lock_chain(git_dir: &Path) -> std::io::Result<ChainLock> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(git_dir.join(RECEIPTS_LOCK))?;
    f.lock()?;
    Ok(ChainLock(f))
}

/// A file the server signs: its name in the commit's tree, the signature
/// namespace, the bytes.
struct SignedFile<'a> {
    name: &'a str,
    namespace: &'a str,
    bytes: &'a [u8],
}

/// Write a signed file and its signature as a commit.
fn signed_commit(
    store: &Store,
    key: &SshIdentity,
    f: SignedFile<'_>,
    parent: Option<ObjectId>,
    time: i64,
    message: &str,
    unsigned: Option<(&str, &[u8])>,
) -> Result<ObjectId, ReceiptWriteError> {
    let (file, namespace, bytes) = (f.name, f.namespace, f.bytes);
    let sig = key
        .sign(namespace, bytes)
        .map_err(|e| ReceiptWriteError::Sign(e.to_string()))?;
    let body = store.write_blob(bytes)?;
    let sig = store.write_blob(sig.as_bytes())?;
    let mut files = vec![(file.to_owned(), body), (format!("{file}.sig"), sig)];
    // A file beside the signed one, pinned by what it signs (the
    // decision-log lines whose last hash the receipt names).
    if let Some((name, content)) = unsigned {
        files.push((name.to_owned(), store.write_blob(content)?));
    }
    let tree = store.edit_tree(None, &files)?;
    let actor = Actor {
        name: SERVER_ACTOR.into(),
        time,
    };
    let parents: Vec<ObjectId> = parent.into_iter().collect();
    Ok(store.write_signed_commit(tree, &parents, &actor, message, key)?)
}

/// Append one receipt for `updates` to the chain, then refresh the timestamp.
pub fn write_receipt(
    store: &Store,
    key: &SshIdentity,
    pusher: &str,
    updates: &[ReceiptUpdate],
    now: OffsetDateTime,
) -> Result<Written, ReceiptWriteError> {
    let git_dir = store.git_dir();
    let _lock = lock_chain(git_dir)?;
    for _ in 0..CAS_ATTEMPTS {
        let head = ref_now(store, RECEIPTS_REF).and_then(|s| s.parse::<ObjectId>().ok());
        let (seq, prev, prev_time, prev_log) = match head {
            None => (1, zero_hash(), i64::MIN, None),
            Some(h) => {
                let r = read_receipt(store, h).map_err(ReceiptWriteError::Chain)?;
                let log = (r.receipt.decision_log.clone(), r.receipt.decision_log_bytes);
                (r.receipt.seq + 1, r.hash, r.receipt.unix_time(), Some(log))
            }
        };
        // Server time never runs backwards along the chain.
        let time = now.unix_timestamp().max(prev_time);
        // The log's head, and the lines since the previous receipt's head:
        // what a witness recomputes the log's chain from (ops::witness).
        let since = crate::server::segments::log_since(
            git_dir,
            prev_log.as_ref().map(|(h, _)| h.as_str()),
            prev_log.as_ref().map(|(_, b)| *b).unwrap_or(0),
        )?;
        let (log_bytes, log_hash) = (since.bytes, since.head.clone());
        let receipt = Receipt {
            format: RECEIPT_FORMAT.into(),
            seq,
            time: format_time(time),
            pusher: pusher.to_owned(),
            prev,
            decision_log: log_hash,
            decision_log_bytes: log_bytes,
            updates: updates.to_vec(),
        };
        let bytes = receipt.render();
        let commit = signed_commit(
            store,
            key,
            SignedFile {
                name: RECEIPT_FILE,
                namespace: RECEIPT_NAMESPACE,
                bytes: bytes.as_bytes(),
            },
            head,
            time,
            &format!("mvault receipt {seq}\n"),
            Some((RECEIPT_LOG_FILE, &since.lines)),
        )?;
        let old = head
            .map(|h| h.to_string())
            .unwrap_or_else(|| "0".repeat(40));
        let moved = store.git(&[
            "update-ref",
            "-m",
            "mvault: receipt",
            RECEIPTS_REF,
            &commit.to_string(),
            &old,
        ]);
        if moved.is_err() {
            continue;
        }
        let hash = receipt.hash();
        write_timestamp_locked(store, key, time, seq, &hash)?;
        return Ok(Written {
            seq,
            sha256: hash,
            commit: commit.to_string(),
            time: receipt.time,
        });
    }
    Err(ReceiptWriteError::Contended)
}

fn write_timestamp_locked(
    store: &Store,
    key: &SshIdentity,
    time: i64,
    seq: u64,
    receipt: &str,
) -> Result<Timestamp, ReceiptWriteError> {
    let t = Timestamp {
        format: TIMESTAMP_FORMAT.into(),
        time: format_time(time),
        seq,
        receipt: receipt.to_owned(),
    };
    let commit = signed_commit(
        store,
        key,
        SignedFile {
            name: TIMESTAMP_FILE,
            namespace: TIMESTAMP_NAMESPACE,
            bytes: t.render().as_bytes(),
        },
        None,
        time,
        "mvault timestamp\n",
        None,
    )?;
    store.git(&[
        "update-ref",
        "-m",
        "mvault: timestamp",
        TIMESTAMP_REF,
        &commit.to_string(),
    ])?;
    Ok(t)
}

/// `mvault hook heartbeat`: settle finished pushes, then sign a fresh
/// timestamp naming the newest receipt.
pub fn heartbeat(git_dir: &Path, now: OffsetDateTime) -> Result<Timestamp, ReceiptWriteError> {
    let store = Store::open(git_dir)?;
    let key = server_key(&store)
        .map_err(ReceiptWriteError::Key)?
        .ok_or_else(|| {
            ReceiptWriteError::Key(
                "not set: run mvault hook install REPO --root-key KEY.pub --server-key FILE".into(),
            )
        })?;
    settle_pending(&store, now)?;
    let _lock = lock_chain(git_dir)?;
    let (seq, hash, prev_time) =
        match ref_now(&store, RECEIPTS_REF).and_then(|s| s.parse::<ObjectId>().ok()) {
            None => (0, zero_hash(), i64::MIN),
            Some(h) => {
                let r = read_receipt(&store, h).map_err(ReceiptWriteError::Chain)?;
                (r.receipt.seq, r.hash, r.receipt.unix_time())
            }
        };
    let last = ref_now(&store, TIMESTAMP_REF)
        .and_then(|s| s.parse::<ObjectId>().ok())
        .and_then(|t| read_timestamp(&store, t).ok())
        .map(|(t, _)| t.unix_time())
        .unwrap_or(i64::MIN);
    let time = now.unix_timestamp().max(prev_time).max(last);
    write_timestamp_locked(&store, &key, time, seq, &hash)
}

/// Create the server key at `path` (when absent) and return its public
/// key; an existing file must be an unencrypted ed25519 key.
pub fn ensure_server_key(path: &Path) -> Result<ssh_key::PublicKey, String> {
    if path.exists() {
        return SshIdentity::open(path, None)
            .map(|k| k.public_key().clone())
            .map_err(|e| e.to_string());
    }
    let (pem, public) = crypto::generate_machine_key(SERVER_ACTOR).map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    write_private(path, pem.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
    let pub_path = PathBuf::from(format!("{}.pub", path.display()));
    std::fs::write(
        &pub_path,
        format!("{} {SERVER_ACTOR}\n", crypto::public_key_line(&public)),
    )
    .map_err(|e| format!("{}: {e}", pub_path.display()))?;
    Ok(public)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}
