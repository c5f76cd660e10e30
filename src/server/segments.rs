//! Log retention: the server log (decisions and fetches) rotated into
//! sealed segments, so old lines can be archived or moved away without
//! breaking verification.
//!
//! `rotate` renames the live log to `mvault-decisions.NNNNNN.jsonl` and
//! appends a seal to `mvault-decisions.seals`: the segment's number, its
//! entries and bytes, the hash its first line chains from, the hashes of
//! its first and last lines, and the hash of the previous seal's line. The
//! chain of lines runs on unbroken: the next live line's `prev` is the
//! sealed segment's last hash. The seals are small and stay; a segment
//! file may leave. `verify_segments` checks the seals' own chain, every
//! segment file it can find against its seal, and the live log from the
//! last seal, and says from which seal on the chain was checked when a
//! segment is away.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::log::{lock_log, write_head, HEAD_FILE, LOG_FILE};
use crate::model::manifest::Sha256Digest;

/// The seals of the rotated segments, one JSON line each, hash-chained.
pub const SEALS_FILE: &str = "mvault-decisions.seals";

/// The file name of sealed segment `n` (from 1).
pub fn segment_file(n: u64) -> String {
    format!("mvault-decisions.{n:06}.jsonl")
}

fn zeros() -> String {
    "0".repeat(64)
}

/// One sealed segment, as its line in the seals file records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seal {
    /// The segment's number: 1 for the first rotation, then one more each.
    pub segment: u64,
    /// How many lines the segment holds.
    pub entries: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// The hash its first line chains from (its `prev`): the previous
    /// seal's `last`, 64 zeros for the first segment.
    pub from: String,
    /// SHA-256 of its first line.
    pub first: String,
    /// SHA-256 of its last line: the next segment (or the live log) chains
    /// from it.
    pub last: String,
    /// When it was sealed (the server's clock, RFC 3339).
    pub sealed: String,
    /// SHA-256 of the previous seal's line, 64 zeros for the first.
    pub prev: String,
}

/// Where the log's chain breaks.
#[derive(Debug, thiserror::Error)]
pub enum LogBreak {
    /// A file of the log cannot be read.
    #[error("{file}: {source}")]
    Unreadable {
        file: String,
        source: std::io::Error,
    },
    /// A line is not what the chain requires.
    #[error("{file} line {line}: {detail}")]
    Line {
        file: String,
        line: usize,
        detail: String,
    },
    /// A file as a whole disagrees with its seal or head.
    #[error("{file}: {detail}")]
    File { file: String, detail: String },
}

/// One sealed segment as `verify_segments` found it.
#[derive(Debug, Clone)]
pub struct SegmentCheck {
    pub seal: Seal,
    /// Where its file was found and verified; `None`: not present (archived).
    pub location: Option<PathBuf>,
}

/// What `verify_segments` checked.
#[derive(Debug, Clone)]
pub struct LogVerification {
    /// Every sealed segment, oldest first.
    pub segments: Vec<SegmentCheck>,
    /// The live log's lines.
    pub live_entries: u64,
    /// The newest seal whose segment was not present: the chain was
    /// verified from that seal's last hash on. `None`: from the first line.
    pub verified_from: Option<u64>,
}

impl LogVerification {
    /// The lines verified: the live log's and those of the segments present.
    pub fn entries(&self) -> usize {
        let sealed: u64 = self
            .segments
            .iter()
            .filter(|s| s.location.is_some())
            .map(|s| s.seal.entries)
            .sum();
        (sealed + self.live_entries) as usize
    }
}

/// What `rotate` did.
#[derive(Debug, Clone)]
pub enum Rotation {
    /// The live log became this sealed segment.
    Sealed(Seal),
    /// The live log was kept: empty, or smaller than asked.
    Kept { bytes: u64 },
}

/// Why the log could not be rotated.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// The live log or the seals do not verify: sealing would bless them.
    #[error("not rotated, the log does not verify: {0}")]
    Broken(#[from] LogBreak),
    /// A file could not be written or renamed.
    #[error("cannot rotate the decision log: {0}")]
    Io(#[from] std::io::Error),
}

/// The lines of one file, checked as a chain from `from`.
struct Checked {
    entries: u64,
    first: Option<String>,
    last: String,
}

/// Check that every line is JSON and chains from the one before (the first
/// from `from`).
fn check_lines(bytes: &[u8], from: &str, file: &str) -> Result<Checked, LogBreak> {
    let mut prev = from.to_owned();
    let mut first = None;
    let mut entries = 0;
    let mut prev_line = 0;
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let broken = |detail: String| LogBreak::Line {
            file: file.to_owned(),
            line: i + 1,
            detail,
        };
        let v: serde_json::Value =
            serde_json::from_slice(line).map_err(|e| broken(format!("not JSON: {e}")))?;
        let got = v.get("prev").and_then(|p| p.as_str()).unwrap_or("");
        if got != prev {
            let detail = if entries == 0 {
                format!("chain broken: prev is {got}, but the chain before it ends with {prev} (this line was edited, or what comes before it was rewritten)")
            } else {
                format!("chain broken: prev is {got}, but line {prev_line} hashes to {prev} (line {prev_line} was edited, or lines were removed or inserted)")
            };
            return Err(broken(detail));
        }
        prev = Sha256Digest::of(line).to_hex();
        first.get_or_insert_with(|| prev.clone());
        entries += 1;
        prev_line = i + 1;
    }
    Ok(Checked {
        entries,
        first,
        last: prev,
    })
}

/// The seals, oldest first, each with the hash of its line; their own chain
/// checked.
fn read_seals(git_dir: &Path) -> Result<Vec<(Seal, String)>, LogBreak> {
    let path = git_dir.join(SEALS_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(LogBreak::Unreadable {
                file: SEALS_FILE.into(),
                source,
            })
        }
    };
    let mut seals: Vec<(Seal, String)> = Vec::new();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let broken = |detail: String| LogBreak::Line {
            file: SEALS_FILE.into(),
            line: i + 1,
            detail,
        };
        let seal: Seal =
            serde_json::from_slice(line).map_err(|e| broken(format!("not a seal: {e}")))?;
        let (want_prev, want_from) = seals
            .last()
            .map(|(s, h)| (h.clone(), s.last.clone()))
            .unwrap_or_else(|| (zeros(), zeros()));
        let want_segment = seals.len() as u64 + 1;
        if seal.prev != want_prev {
            return Err(broken(format!(
                "seal chain broken: prev is {}, the seal before hashes to {want_prev} (a seal was edited, removed or inserted)",
                seal.prev
            )));
        }
        if seal.segment != want_segment || seal.from != want_from || seal.entries == 0 {
            return Err(broken(format!(
                "seal of segment {} does not follow segment {}: it chains from {}, which ends with {want_from}",
                seal.segment,
                want_segment - 1,
                seal.from
            )));
        }
        seals.push((seal, Sha256Digest::of(line).to_hex()));
    }
    Ok(seals)
}

/// The hash the live log's first line chains from: the last seal's `last`,
/// or 64 zeros when the log was never rotated.
pub fn chain_anchor(git_dir: &Path) -> std::io::Result<String> {
    let seals = read_seals(git_dir).map_err(std::io::Error::other)?;
    Ok(seals
        .last()
        .map(|(s, _)| s.last.clone())
        .unwrap_or_else(zeros))
}

/// The sealed segment files in the repository's directory, oldest first
/// (by their number), for reading; `verify_segments` checks them.
pub fn present_segments(git_dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(git_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = name
                .strip_prefix("mvault-decisions.")?
                .strip_suffix(".jsonl")?;
            let n: u64 = n.parse().ok().filter(|_| n.len() == 6)?;
            Some((n, e.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

fn segment_label(n: u64) -> String {
    format!("sealed segment {n} ({})", segment_file(n))
}

/// Check the whole log: the seals' chain; each sealed segment found in
/// `git_dir` or one of `archives` against its seal; the live log from the
/// last seal, and its head.
pub fn verify_segments(git_dir: &Path, archives: &[PathBuf]) -> Result<LogVerification, LogBreak> {
    let seals = read_seals(git_dir)?;
    let mut segments = Vec::new();
    let mut verified_from = None;
    for (seal, _) in &seals {
        let name = segment_file(seal.segment);
        let found = std::iter::once(git_dir)
            .chain(archives.iter().map(PathBuf::as_path))
            .map(|d| d.join(&name))
            .find(|p| p.is_file());
        let Some(path) = found else {
            verified_from = Some(seal.segment);
            segments.push(SegmentCheck {
                seal: seal.clone(),
                location: None,
            });
            continue;
        };
        let label = segment_label(seal.segment);
        let bytes = std::fs::read(&path).map_err(|source| LogBreak::Unreadable {
            file: label.clone(),
            source,
        })?;
        let got = check_lines(&bytes, &seal.from, &label)?;
        if got.entries != seal.entries
            || bytes.len() as u64 != seal.bytes
            || got.first.as_deref() != Some(seal.first.as_str())
            || got.last != seal.last
        {
            return Err(LogBreak::File {
                file: label,
                detail: format!(
                    "its seal records {} entries, {} bytes, last hash {}; the file has {} entries, {} bytes, last hash {} (its last line was edited, or lines were cut off or added)",
                    seal.entries, seal.bytes, seal.last, got.entries, bytes.len(), got.last
                ),
            });
        }
        segments.push(SegmentCheck {
            seal: seal.clone(),
            location: Some(path),
        });
    }
    let anchor = seals
        .last()
        .map(|(s, _)| s.last.clone())
        .unwrap_or_else(zeros);
    let live = check_live(git_dir, &anchor)?;
    Ok(LogVerification {
        segments,
        live_entries: live.entries,
        verified_from,
    })
}

/// The live log checked from `anchor`, and against its head.
fn check_live(git_dir: &Path, anchor: &str) -> Result<Checked, LogBreak> {
    let path = git_dir.join(LOG_FILE);
    let bytes = std::fs::read(&path).map_err(|source| LogBreak::Unreadable {
        file: path.display().to_string(),
        source,
    })?;
    let got = check_lines(&bytes, anchor, LOG_FILE)?;
    let head = std::fs::read_to_string(git_dir.join(HEAD_FILE)).map_err(|e| LogBreak::File {
        file: HEAD_FILE.into(),
        detail: format!("{e} (the log's head is missing)"),
    })?;
    let (len, hash) = head.trim().split_once(' ').unwrap_or(("", ""));
    if len != bytes.len().to_string() || hash != got.last {
        return Err(LogBreak::File {
            file: LOG_FILE.into(),
            detail: format!(
                "the log ends at line {} with hash {} and {} bytes, but its head records {len} bytes and hash {hash} (lines were cut off the end or the last line was edited)",
                got.entries,
                got.last,
                bytes.len()
            ),
        });
    }
    Ok(got)
}

/// Seal the live log as the next segment when it holds at least
/// `min_bytes` (and at least one line); the live log starts again empty,
/// chaining from the seal. Takes the log's lock, so it is safe while
/// pushes and fetches append.
pub fn rotate(
    git_dir: &Path,
    now: OffsetDateTime,
    min_bytes: u64,
) -> Result<Rotation, RotateError> {
    use std::io::Write;
    let _guard = lock_log(git_dir)?;
    let seals = read_seals(git_dir)?;
    let (anchor, prev_seal) = seals
        .last()
        .map(|(s, h)| (s.last.clone(), h.clone()))
        .unwrap_or_else(|| (zeros(), zeros()));
    let live = git_dir.join(LOG_FILE);
    let size = std::fs::metadata(&live)?.len();
    if size == 0 || size < min_bytes {
        return Ok(Rotation::Kept { bytes: size });
    }
    // 1. The live log must verify, head included: a seal vouches for it.
    let got = check_live(git_dir, &anchor)?;
    let segment = seals.len() as u64 + 1;
    let target = git_dir.join(segment_file(segment));
    if target.exists() {
        return Err(RotateError::Io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} exists but has no seal; move it away", target.display()),
        )));
    }
    let seal = Seal {
        segment,
        entries: got.entries,
        bytes: size,
        from: anchor,
        first: got.first.unwrap_or_default(),
        last: got.last.clone(),
        sealed: crate::vault::rfc3339(now),
        prev: prev_seal,
    };
    // 2. The seal first: a crash before the rename leaves a seal whose
    // segment is missing and a live log that no longer chains from the
    // last seal, which verification names, never a silent gap.
    let mut line = serde_json::to_string(&seal).map_err(std::io::Error::other)?;
    line.push('\n');
    let mut seals_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(git_dir.join(SEALS_FILE))?;
    seals_file.write_all(line.as_bytes())?;
    seals_file.sync_data()?;
    // 3. The segment, then an empty live log whose head is the seal's last.
    std::fs::rename(&live, &target)?;
    std::fs::File::create(&live)?.sync_all()?;
    write_head(git_dir, 0, &got.last)?;
    Ok(Rotation::Sealed(seal))
}

/// The decision-log lines a receipt carries: those written after the
/// previous receipt's head, up to the head now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSince {
    /// The live log's length at the head.
    pub bytes: u64,
    /// The head: the SHA-256 of the last line.
    pub head: String,
    /// The lines, each ending in a newline; empty for the first receipt.
    pub lines: Vec<u8>,
}

/// The log's head and the lines after `after` (the previous receipt's
/// head, `None` for the first receipt; `after_bytes` the live log's length
/// it recorded). Usually those lines start at `after_bytes` in the live
/// log, and only they are read. After a rotation they are looked for by
/// hash through the live log and the segments present. When `after` is in
/// no file (the log was rewritten, or its segment archived), the lines
/// from `after_bytes` (else the whole live log) are returned as they are:
/// a witness then finds where the chain breaks.
pub fn log_since(
    git_dir: &Path,
    after: Option<&str>,
    after_bytes: u64,
) -> std::io::Result<LogSince> {
    use std::io::{Read, Seek, SeekFrom};
    let _guard = lock_log(git_dir)?;
    let head = std::fs::read_to_string(git_dir.join(HEAD_FILE)).unwrap_or_default();
    let (bytes, head) = head
        .trim()
        .split_once(' ')
        .and_then(|(l, h)| Some((l.parse::<u64>().ok()?, h.to_owned())))
        .unwrap_or((0, zeros()));
    let done = |lines: Vec<u8>| {
        Ok(LogSince {
            bytes,
            head: head.clone(),
            lines,
        })
    };
    let Some(after) = after.filter(|a| *a != head) else {
        return done(Vec::new());
    };
    let mut live = std::fs::File::open(git_dir.join(LOG_FILE))?;
    let read_from = |f: &mut std::fs::File, start: u64| -> std::io::Result<Vec<u8>> {
        f.seek(SeekFrom::Start(start))?;
        let mut out = Vec::new();
        f.take(bytes - start).read_to_end(&mut out)?;
        Ok(out)
    };
    let first_prev = |lines: &[u8]| -> Option<String> {
        let line = lines.split(|b| *b == b'\n').next()?;
        let v: serde_json::Value = serde_json::from_slice(line).ok()?;
        v.get("prev")?.as_str().map(str::to_owned)
    };
    // 1. The usual case: the new lines start where the last receipt ended.
    let mut tail = None;
    if after_bytes <= bytes {
        let at_boundary = after_bytes == 0 || {
            let mut b = [0u8];
            live.seek(SeekFrom::Start(after_bytes - 1))?;
            live.read_exact(&mut b)?;
            b[0] == b'\n'
        };
        if at_boundary {
            let lines = read_from(&mut live, after_bytes)?;
            if first_prev(&lines).as_deref() == Some(after) {
                return done(lines);
            }
            tail = Some(lines);
        }
    }
    // 2. After a rotation: look for `after` by hash, newest file first.
    let mut files = present_segments(git_dir);
    let live_bytes = read_from(&mut live, 0)?;
    let mut collected: Vec<u8> = Vec::new();
    let mut texts: Vec<Vec<u8>> = files
        .drain(..)
        .filter_map(|p| std::fs::read(p).ok())
        .collect();
    texts.push(live_bytes.clone());
    for text in texts.iter().rev() {
        let lines: Vec<&[u8]> = text
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        if let Some(i) = lines
            .iter()
            .rposition(|l| Sha256Digest::of(l).to_hex() == after)
        {
            let mut found: Vec<u8> = Vec::new();
            for l in &lines[i + 1..] {
                found.extend_from_slice(l);
                found.push(b'\n');
            }
            found.extend_from_slice(&collected);
            return done(found);
        }
        let mut all = text.clone();
        if !all.is_empty() && !all.ends_with(b"\n") {
            all.push(b'\n');
        }
        all.extend_from_slice(&collected);
        collected = all;
    }
    // 3. Not found: the log was rewritten (or archived too soon).
    done(tail.unwrap_or(live_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::log::{append_chained, read_log, verify_log, ServerFilter};

    fn append(dir: &Path, user: &str) {
        append_chained(
            dir,
            serde_json::json!({"time": "2026-11-22T10:00:00Z", "event": "fetch", "user": user}),
        )
        .expect("append");
    }

    #[test]
    fn rotated_logs_chain_across_segments_and_read_as_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        append(d, "a");
        append(d, "b");
        let now = OffsetDateTime::UNIX_EPOCH;
        let Rotation::Sealed(one) = rotate(d, now, 0).expect("rotates") else {
            panic!("not sealed");
        };
        assert_eq!((one.segment, one.entries), (1, 2));
        assert!(matches!(
            rotate(d, now, 0).expect("nothing to seal"),
            Rotation::Kept { bytes: 0 }
        ));
        append(d, "c");
        assert!(matches!(
            rotate(d, now, 1 << 20).expect("too small"),
            Rotation::Kept { .. }
        ));
        rotate(d, now, 0).expect("rotates again");
        append(d, "d");
        assert_eq!(verify_log(d), Ok(4));
        // The lines since a head, across both rotations.
        let since = log_since(d, Some(&one.last), 0).expect("since");
        let users = String::from_utf8(since.lines).expect("utf-8");
        assert_eq!(users.lines().count(), 2, "{users}");
        assert!(
            users.contains("\"c\"") && users.contains("\"d\""),
            "{users}"
        );
        let users: Vec<String> = read_log(d, &ServerFilter::default())
            .expect("reads")
            .into_iter()
            .filter_map(|e| e.actor)
            .collect();
        assert_eq!(users, ["a", "b", "c", "d"]);
        // The live log's first line chains from the second seal.
        let live = std::fs::read_to_string(d.join(LOG_FILE)).expect("live");
        let v: serde_json::Value = serde_json::from_str(live.trim()).expect("json");
        let seals = read_seals(d).expect("seals");
        assert_eq!(v["prev"], seals[1].0.last.as_str());
        assert_eq!(seals[1].0.from, one.last);
    }

    #[test]
    fn a_rewritten_seal_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        append(d, "a");
        rotate(d, OffsetDateTime::UNIX_EPOCH, 0).expect("rotates");
        append(d, "b");
        rotate(d, OffsetDateTime::UNIX_EPOCH, 0).expect("rotates");
        let path = d.join(SEALS_FILE);
        let text = std::fs::read_to_string(&path).expect("seals");
        std::fs::write(&path, text.replacen("\"entries\":1", "\"entries\":2", 1)).expect("write");
        let err = verify_log(d).expect_err("edited seal");
        assert!(err.contains(SEALS_FILE), "{err}");
    }
}
