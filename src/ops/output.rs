//! Where a pull may write: never into a repository's metadata, never
//! through a symlink or over a directory under the output directory. Each
//! check refuses before anything is written.

use std::io;
use std::path::{Path, PathBuf};

use crate::vault::VaultError;

pub(crate) fn unsafe_output(path: &Path, reason: &str) -> VaultError {
    VaultError::UnsafeOutput {
        path: path.display().to_string(),
        reason: reason.to_owned(),
    }
}

/// Whether `dir` is a git directory: what git itself looks for.
fn is_git_dir(dir: &Path) -> bool {
    dir.join("HEAD").is_file() && dir.join("objects").is_dir() && dir.join("refs").is_dir()
}

/// Refuse an output directory inside a repository's metadata: a `.git`
/// component (in any case) or a git directory (bare ones too) at or above
/// it, after symlinks are resolved. Writing there would plant hooks or
/// config that git runs later.
pub(crate) fn check_output_dir(out: &Path) -> Result<(), VaultError> {
    let mut existing = out.to_owned();
    let mut rest = Vec::new();
    while std::fs::symlink_metadata(&existing).is_err() {
        let Some(name) = existing.file_name() else {
            break;
        };
        rest.push(name.to_owned());
        existing.pop();
    }
    let mut full = std::fs::canonicalize(if existing.as_os_str().is_empty() {
        Path::new(".")
    } else {
        &existing
    })
    .map_err(|e| VaultError::Io {
        path: existing.display().to_string(),
        source: e,
    })?;
    full.extend(rest.iter().rev());
    for dir in full.ancestors() {
        let named_git = dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(crate::model::manifest::is_dotgit_name);
        if named_git || is_git_dir(dir) {
            return Err(unsafe_output(
                out,
                &format!("is inside the git metadata {} (rule: pull never writes into a repository's .git or a git directory)", dir.display()),
            ));
        }
    }
    Ok(())
}

/// Refuse a destination whose final name is a directory, or whose
/// directories under `out` include a symlink or a file: a symlink there
/// would carry the write outside `out`.
pub(crate) fn check_destination(out: &Path, rel: &str) -> Result<(), VaultError> {
    let mut at = out.to_owned();
    let comps: Vec<&str> = rel.split('/').collect();
    for (i, c) in comps.iter().enumerate() {
        at.push(c);
        let Ok(meta) = std::fs::symlink_metadata(&at) else {
            return Ok(());
        };
        let last = i + 1 == comps.len();
        if meta.file_type().is_symlink() && !last {
            return Err(unsafe_output(
                &at,
                "is a symlink; pull never writes through a symlink in its output directory",
            ));
        }
        if last && meta.is_dir() {
            return Err(unsafe_output(
                &at,
                "is a directory; the version has a file there",
            ));
        }
        if !last && !meta.is_dir() {
            return Err(unsafe_output(
                &at,
                "is not a directory; the version has files under it",
            ));
        }
    }
    Ok(())
}

/// Create the directories of `rel` under `out` one by one, none of them a
/// symlink; returns the destination path.
pub(crate) fn make_parents(out: &Path, rel: &str) -> Result<PathBuf, VaultError> {
    check_destination(out, rel)?;
    let mut at = out.to_owned();
    let comps: Vec<&str> = rel.split('/').collect();
    for c in &comps[..comps.len() - 1] {
        at.push(c);
        match std::fs::create_dir(&at) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let meta = std::fs::symlink_metadata(&at).map_err(|e| VaultError::Io {
                    path: at.display().to_string(),
                    source: e,
                })?;
                if !meta.is_dir() {
                    return Err(unsafe_output(
                        &at,
                        "is not a directory (or is a symlink); pull never writes through it",
                    ));
                }
            }
            Err(e) => {
                return Err(VaultError::Io {
                    path: at.display().to_string(),
                    source: e,
                })
            }
        }
    }
    at.push(comps[comps.len() - 1]);
    Ok(at)
}
