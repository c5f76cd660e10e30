//! Python dependency pins: what `mvault add --deps FILE` reads from a lock
//! or requirements file, and what the signed manifest records.
//!
//! A model is only reproducible with the environment it ran in, so a
//! version can carry the packages it was trained and served with: each
//! package's PEP 503 name, its PEP 440 version (normalised) and the
//! SHA-256 of every artifact (wheel or sdist) the lock file allows.
//! `mvault verify REF --deps` compares an installed environment with them.
//!
//! Four inputs, told apart by content, not by file name: requirements
//! files (`pip freeze`, `pip-compile --generate-hashes`), `uv.lock` and
//! `poetry.lock`. Every refusal names the file, the line and the problem.

pub mod marker;
mod poetry;
mod requirements;
mod uv;

use std::collections::BTreeSet;

use crate::model::manifest::Sha256Digest;

/// The largest lock file read (uv.lock files of large projects run to a
/// few MB).
pub const MAX_FILE_BYTES: u64 = 16 << 20;
/// The most packages one version may pin.
pub const MAX_PINS: usize = 10_000;
/// The most artifact digests one pin may list.
pub const MAX_DIGESTS: usize = 1_024;

/// One pinned package: a name, a version and the artifacts allowed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pin {
    /// PEP 503 normalised: lower case, runs of `-_.` as one `-`.
    pub name: String,
    /// PEP 440, normalised (`1.0.0rc1`, not `1.0.0-RC1`).
    pub version: String,
    /// SHA-256 of each artifact the lock allows; empty when the input
    /// carries none (`pip freeze`).
    pub sha256: BTreeSet<Sha256Digest>,
    /// The PEP 508 environment marker under which the lock installs the
    /// package (`sys_platform == "win32"`); `None`: everywhere.
    pub marker: Option<String>,
}

/// The formats `--deps` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockFormat {
    /// `pip freeze` or `pip-compile [--generate-hashes]` output.
    Requirements,
    /// uv's `uv.lock`.
    UvLock,
    /// Poetry's `poetry.lock`.
    PoetryLock,
}

impl LockFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LockFormat::Requirements => "requirements",
            LockFormat::UvLock => "uv.lock",
            LockFormat::PoetryLock => "poetry.lock",
        }
    }
}

/// Why a lock file, or a pin in a manifest, was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {problem}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
pub struct LockError {
    /// The file as the user named it.
    pub file: String,
    /// 1-based; none for a problem of the whole file.
    pub line: Option<usize>,
    pub problem: String,
}

/// The pins a lock file gives, and which format it was read as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockFile {
    pub format: LockFormat,
    pub pins: Vec<Pin>,
}

/// PEP 503: the normalised form of a distribution name, or `None` if it is
/// not a valid name (PEP 508: ASCII letters and digits, with `.`, `_`, `-`
/// inside).
pub fn normalise_name(name: &str) -> Option<String> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    if !ok {
        return None;
    }
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '.' | '_' | '-') {
            sep = true;
        } else {
            if sep {
                out.push('-');
                sep = false;
            }
            out.push(c.to_ascii_lowercase());
        }
    }
    Some(out)
}

/// Whether `name` is already in PEP 503 normal form.
pub fn is_normalised_name(name: &str) -> bool {
    normalise_name(name).is_some_and(|n| n == name)
}

/// PEP 440: the normalised form of a version, or `None`.
pub fn normalise_version(version: &str) -> Option<String> {
    if version.len() > 128 {
        return None;
    }
    version
        .parse::<pep440_rs::Version>()
        .ok()
        .map(|v| v.to_string())
}

/// Whether two versions are equal under PEP 440 (`1.0` equals `1.0.0`).
pub fn same_version(a: &str, b: &str) -> bool {
    match (
        a.parse::<pep440_rs::Version>(),
        b.parse::<pep440_rs::Version>(),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Read a lock or requirements file's text. `file` names it in errors.
pub fn parse_lock(file: &str, text: &str) -> Result<LockFile, LockError> {
    let err = |line: Option<usize>, problem: String| LockError {
        file: file.to_owned(),
        line,
        problem,
    };
    if let Some((i, _)) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.chars().any(|c| c.is_control() && c != '\t' && c != '\r'))
    {
        return Err(err(Some(i + 1), "a control character".into()));
    }
    let (format, pins) = match detect(text) {
        LockFormat::Requirements => (LockFormat::Requirements, requirements::parse(text)),
        f @ LockFormat::UvLock => (f, uv::parse(text)),
        f @ LockFormat::PoetryLock => (f, poetry::parse(text)),
    };
    let mut pins = pins.map_err(|(line, problem)| err(line, problem))?;
    if pins.is_empty() {
        return Err(err(None, "no package pinned".into()));
    }
    if pins.len() > MAX_PINS {
        return Err(err(
            None,
            format!("{} packages; at most {MAX_PINS} are recorded", pins.len()),
        ));
    }
    pins.sort();
    // The same package and version twice (two platform forks of one
    // requirements file) is one pin with both artifact sets.
    let mut merged: Vec<Pin> = Vec::with_capacity(pins.len());
    for p in pins {
        match merged.last_mut() {
            Some(last) if last.name == p.name && last.version == p.version => {
                last.sha256.extend(p.sha256);
                last.marker = either_marker(last.marker.take(), p.marker);
            }
            _ => merged.push(p),
        }
    }
    if let Some(p) = merged.iter().find(|p| p.sha256.len() > MAX_DIGESTS) {
        return Err(err(
            None,
            format!(
                "{} {} lists {} artifact digests; at most {MAX_DIGESTS} are recorded",
                p.name,
                p.version,
                p.sha256.len()
            ),
        ));
    }
    Ok(LockFile {
        format,
        pins: merged,
    })
}

/// The marker of a pin listed twice: everywhere if either is, else
/// either marker.
fn either_marker(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) if a == b => Some(a),
        (Some(a), Some(b)) => Some(format!("({a}) or ({b})")),
        _ => None,
    }
}

/// A marker read from a lock file, checked (so `verify --deps` can
/// evaluate it), trimmed.
fn checked_marker(text: &str) -> Result<Option<String>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    marker::check(t).map_err(|e| format!("environment marker {t:?}: {e}"))?;
    Ok(Some(t.to_owned()))
}

/// Tell the format by content: uv.lock and poetry.lock are TOML with
/// `[[package]]` tables (poetry's with `[metadata]`), anything else is
/// read as a requirements file.
fn detect(text: &str) -> LockFormat {
    let tables: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('['))
        .collect();
    if !tables.contains(&"[[package]]") {
        return LockFormat::Requirements;
    }
    if tables.contains(&"[metadata]")
        || text
            .lines()
            .any(|l| l.starts_with("# This file is automatically @generated by Poetry"))
    {
        LockFormat::PoetryLock
    } else {
        LockFormat::UvLock
    }
}

/// One `sha256:HEX` artifact hash (uv and poetry write them so). Another
/// algorithm is refused: only SHA-256 is recorded.
fn sha256_of_hash(hash: &str) -> Result<Sha256Digest, String> {
    let Some((algo, hex)) = hash.split_once(':') else {
        return Err(format!("hash {hash:?}: expected sha256:<64 hex digits>"));
    };
    if algo != "sha256" {
        return Err(format!(
            "hash {hash:?}: only sha256 artifact digests are recorded, not {algo}"
        ));
    }
    Sha256Digest::from_hex(&hex.to_ascii_lowercase())
        .ok_or_else(|| format!("hash {hash:?}: expected 64 hex digits after sha256:"))
}

/// A name and version from a lock, checked and normalised.
fn checked_pin(name: &str, version: &str) -> Result<Pin, String> {
    let n = normalise_name(name).ok_or_else(|| {
        format!("package name {name:?} is not a valid Python distribution name (PEP 508)")
    })?;
    let v = normalise_version(version)
        .ok_or_else(|| format!("{n}: version {version:?} is not a PEP 440 version"))?;
    Ok(Pin {
        name: n,
        version: v,
        sha256: BTreeSet::new(),
        marker: None,
    })
}

/// The line (1-based) of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The line of a TOML error.
fn toml_error(text: &str, e: &toml::de::Error) -> (Option<usize>, String) {
    (
        e.span().map(|s| line_at(text, s.start)),
        e.message().trim().to_owned(),
    )
}

#[cfg(test)]
mod tests;
