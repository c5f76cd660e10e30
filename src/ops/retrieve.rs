//! `pull` and `verify`: get a version back, verified before anything lands.
//!
//! Order of checks, each stopping a different attack:
//! 1. the manifest parses, is canonical and its Merkle root matches its
//!    file list (an edited manifest);
//! 2. the manifest signature verifies and its key belonged to a user who
//!    could register the model (a forged or replayed manifest);
//! 3. the commit that added the version is signed by a known user (a commit
//!    slipped into history);
//! 4. every blob the manifest names is in the tree with the recorded size
//!    (a swapped or truncated blob, caught before decrypting);
//! 5. every file decrypts (age authenticates each 64 KiB chunk) and its
//!    size and SHA-256 match the manifest (a blob from another file).
//!
//! Files are written under a staging directory inside the destination and
//! renamed into place only after every file passed: a failed or killed pull
//! leaves no partial file under a final name.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::sync_channel;

use crate::store::ObjectId;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::crypto::{self, DataKey, KeyRing, SshIdentity};
use crate::model::manifest::{FileEntry, Sha256Digest};
use crate::model::names::{self, VersionRef};
use crate::store::Store;
use crate::vault::{Vault, VaultError, VersionRecord};

const CHUNK: usize = 1 << 20;
/// Prefix of the staging directory a pull writes into.
pub const STAGING_PREFIX: &str = ".mvault-pull-";

/// What a pull or verify checked.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub model: String,
    pub version: String,
    pub author: String,
    pub files: usize,
    pub bytes: u64,
    pub manifest_sha256: String,
}

/// Checks 1 to 4, and the data key; returns the blob ids in manifest order.
fn check_record(
    vault: &Vault,
    r: &VersionRef,
    who: &SshIdentity,
) -> Result<(VersionRecord, Vec<ObjectId>, DataKey, String), VaultError> {
    let (model, version) = crate::ops::resolve::resolve(vault, r)?;
    // 1. parse, canonical form and Merkle root (inside `record`).
    let rec = vault.record(&model, &version)?;
    // 2. manifest signature by someone who could register the model.
    let author = vault.verify_manifest_signature(&rec)?;
    // 3. the commit that added it is signed by a known user.
    if let Some(c) = rec.commit {
        vault.verify_commit_signature(c)?;
    }
    // 4. every blob present, with the size the manifest records.
    let dir = names::version_dir(&model, &version);
    let mut ids = Vec::with_capacity(rec.manifest.files.len());
    for f in &rec.manifest.files {
        let path = format!("{dir}/{}", f.blob());
        let Some((id, _)) = vault.store.entry(rec.tree, &path)? else {
            return Err(VaultError::Mismatch {
                path: f.path.clone(),
                check: "blob presence",
                expected: path,
                found: "no such blob in the tree".into(),
            });
        };
        let size = vault.store.object_size(id)?;
        if size != f.blob_size {
            return Err(VaultError::Mismatch {
                path: f.path.clone(),
                check: "blob size",
                expected: f.blob_size.to_string(),
                found: size.to_string(),
            });
        }
        ids.push(id);
    }
    // The data key, from the newest key ring: rotations keep old generations
    // for current readers.
    let (_, main_tree) = vault.main()?;
    let ring_path = model.keyring_path();
    let sealed = vault
        .store
        .read_path(main_tree, &ring_path)?
        .ok_or_else(|| VaultError::NoReadAccess {
            model: model.to_string(),
            reason: format!("{ring_path} is missing"),
        })?;
    let ring = KeyRing::open(&sealed, who).map_err(|e| VaultError::NoReadAccess {
        model: model.to_string(),
        reason: format!(
            "key {} is not among the readers of {ring_path} ({e})",
            crypto::fingerprint(crypto::Signer::public_key(who))
        ),
    })?;
    let key =
        ring.find(&rec.manifest.data_key)
            .cloned()
            .ok_or_else(|| VaultError::NoReadAccess {
                model: model.to_string(),
                reason: format!(
                    "the key ring has no generation {} (the data key of this version)",
                    rec.manifest.data_key
                ),
            })?;
    Ok((rec, ids, key, author))
}

/// Decrypt one blob into `out` (or nowhere), checking size and digest.
/// Decryption and hashing run on two threads.
fn decrypt_checked(
    store: &Store,
    id: ObjectId,
    key: &DataKey,
    entry: &FileEntry,
    mut out: Option<&mut File>,
) -> Result<(), VaultError> {
    let reader = store.blob_reader(id)?;
    let dec_err = |e: String| VaultError::Decrypt {
        path: entry.path.clone(),
        reason: e,
    };
    let mut plain = crypto::decrypt_reader(key, BufReader::with_capacity(CHUNK, reader))
        .map_err(|e| dec_err(e.to_string()))?;
    let (tx, rx) = sync_channel::<Vec<u8>>(4);
    let (size, digest) = std::thread::scope(|s| -> Result<(u64, Sha256Digest), VaultError> {
        let decryptor = s.spawn(move || -> io::Result<()> {
            loop {
                let mut buf = vec![0u8; CHUNK];
                let mut filled = 0;
                while filled < CHUNK {
                    let k = plain.read(&mut buf[filled..])?;
                    if k == 0 {
                        break;
                    }
                    filled += k;
                }
                if filled == 0 {
                    return Ok(());
                }
                buf.truncate(filled);
                if tx.send(buf).is_err() {
                    return Ok(());
                }
            }
        });
        let mut h = Sha256::new();
        let mut n = 0u64;
        let mut write_err = None;
        for chunk in rx {
            h.update(&chunk);
            n += chunk.len() as u64;
            if n > entry.size {
                break;
            }
            if let Some(f) = out.as_deref_mut() {
                if let Err(e) = f.write_all(&chunk) {
                    write_err = Some(e);
                    break;
                }
            }
        }
        let dec = decryptor.join().expect("decryptor thread panicked");
        if let Some(e) = write_err {
            return Err(VaultError::Io {
                path: entry.path.clone(),
                source: e,
            });
        }
        if n <= entry.size {
            dec.map_err(|e| dec_err(e.to_string()))?;
        }
        Ok((n, Sha256Digest(h.finalize().into())))
    })?;
    if size != entry.size {
        return Err(VaultError::Mismatch {
            path: entry.path.clone(),
            check: "size",
            expected: entry.size.to_string(),
            found: if size > entry.size {
                format!("more than {}", entry.size)
            } else {
                size.to_string()
            },
        });
    }
    if digest != entry.sha256 {
        return Err(VaultError::Mismatch {
            path: entry.path.clone(),
            check: "sha256",
            expected: entry.sha256.to_hex(),
            found: digest.to_hex(),
        });
    }
    Ok(())
}

/// Run `job` over every file on the available cores; first error wins.
fn for_each_file<F>(vault: &Vault, files: &[FileEntry], job: F) -> Result<(), VaultError>
where
    F: Fn(&Store, usize) -> Result<(), VaultError> + Sync,
{
    let next = AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(files.len())
        .max(1);
    let git_dir = vault.store.git_dir().to_owned();
    let results: Vec<Result<(), VaultError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let (next, failed, job, git_dir) = (&next, &failed, &job, &git_dir);
                s.spawn(move || -> Result<(), VaultError> {
                    let store = Store::open(git_dir)?;
                    loop {
                        if failed.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= files.len() {
                            return Ok(());
                        }
                        if let Err(e) = job(&store, i) {
                            failed.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker panicked"))
            .collect()
    });
    results.into_iter().collect()
}

/// `mvault verify REF`: every signature and every blob, decrypted and hashed.
pub fn verify(vault: &Vault, r: &VersionRef, who: &SshIdentity) -> Result<Verified, VaultError> {
    let (rec, ids, key, author) = check_record(vault, r, who)?;
    let files = &rec.manifest.files;
    for_each_file(vault, files, |store, i| {
        decrypt_checked(store, ids[i], &key, &files[i], None)
    })?;
    Ok(verified(&rec, author))
}

fn verified(rec: &VersionRecord, author: String) -> Verified {
    Verified {
        model: rec.model.to_string(),
        version: rec.version.to_string(),
        author,
        files: rec.manifest.files.len(),
        bytes: rec.manifest.total_size(),
        manifest_sha256: Sha256Digest::of(rec.manifest_text.as_bytes()).to_hex(),
    }
}

/// Removes the staging directory (and a destination it created) unless
/// the pull completed.
struct Staging {
    dir: PathBuf,
    created_out: Option<PathBuf>,
    done: bool,
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if !self.done {
            if let Some(out) = &self.created_out {
                let _ = std::fs::remove_dir(out);
            }
        }
    }
}

/// `mvault pull REF -o DIR`.
pub fn pull(
    vault: &Vault,
    r: &VersionRef,
    out: &Path,
    who: &SshIdentity,
) -> Result<Verified, VaultError> {
    check_output_dir(out)?;
    let (rec, ids, key, author) = check_record(vault, r, who)?;
    let io_err = |p: &Path, e: io::Error| VaultError::Io {
        path: p.display().to_string(),
        source: e,
    };
    let files = &rec.manifest.files;
    // Refuse before writing anything if a final name is taken by a
    // directory, or a directory on the way is a symlink.
    for f in files {
        check_destination(out, &f.path)?;
    }
    let created_out = if out.exists() {
        None
    } else {
        std::fs::create_dir_all(out).map_err(|e| io_err(out, e))?;
        Some(out.to_owned())
    };
    let staging_dir = out.join(format!("{STAGING_PREFIX}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging_dir);
    std::fs::create_dir(&staging_dir).map_err(|e| io_err(&staging_dir, e))?;
    let mut staging = Staging {
        dir: staging_dir.clone(),
        created_out,
        done: false,
    };
    for_each_file(vault, files, |store, i| {
        let tmp = staging_dir.join(i.to_string());
        let mut f = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
        decrypt_checked(store, ids[i], &key, &files[i], Some(&mut f))?;
        f.flush().map_err(|e| io_err(&tmp, e))
    })?;
    // Every file passed: move them into place.
    for (i, f) in files.iter().enumerate() {
        let dest = make_parents(out, &f.path)?;
        std::fs::rename(staging_dir.join(i.to_string()), &dest).map_err(|e| io_err(&dest, e))?;
    }
    staging.done = true;
    Ok(verified(&rec, author))
}

fn unsafe_output(path: &Path, reason: &str) -> VaultError {
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
fn check_output_dir(out: &Path) -> Result<(), VaultError> {
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
fn check_destination(out: &Path, rel: &str) -> Result<(), VaultError> {
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
fn make_parents(out: &Path, rel: &str) -> Result<PathBuf, VaultError> {
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

/// One difference between a directory and a manifest.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum DirProblem {
    /// In the manifest, not on disk.
    Missing { path: String },
    /// On disk with another size or digest.
    Changed {
        path: String,
        check: String,
        expected: String,
        found: String,
    },
    /// On disk, not in the manifest.
    Unexpected { path: String },
}

/// `mvault verify REF --dir DIR`: compare a deployed directory with the
/// manifest, without decrypting anything.
pub fn verify_dir(
    vault: &Vault,
    r: &VersionRef,
    dir: &Path,
) -> Result<(Verified, Vec<DirProblem>), VaultError> {
    let (model, version) = crate::ops::resolve::resolve(vault, r)?;
    let rec = vault.record(&model, &version)?;
    let author = vault.verify_manifest_signature(&rec)?;
    let mut problems = Vec::new();
    let mut expected = std::collections::BTreeSet::new();
    for f in &rec.manifest.files {
        expected.insert(f.path.clone());
        let p = dir.join(&f.path);
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            problems.push(DirProblem::Missing {
                path: f.path.clone(),
            });
            continue;
        };
        if !meta.is_file() {
            problems.push(DirProblem::Changed {
                path: f.path.clone(),
                check: "type".into(),
                expected: "regular file".into(),
                found: if meta.is_dir() {
                    "directory".into()
                } else {
                    "symlink or special file".into()
                },
            });
            continue;
        }
        if meta.len() != f.size {
            problems.push(DirProblem::Changed {
                path: f.path.clone(),
                check: "size".into(),
                expected: f.size.to_string(),
                found: meta.len().to_string(),
            });
            continue;
        }
        let mut h = Sha256::new();
        let mut file = File::open(&p).map_err(|e| VaultError::Io {
            path: p.display().to_string(),
            source: e,
        })?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let k = file.read(&mut buf).map_err(|e| VaultError::Io {
                path: p.display().to_string(),
                source: e,
            })?;
            if k == 0 {
                break;
            }
            h.update(&buf[..k]);
        }
        let d = Sha256Digest(h.finalize().into());
        if d != f.sha256 {
            problems.push(DirProblem::Changed {
                path: f.path.clone(),
                check: "sha256".into(),
                expected: f.sha256.to_hex(),
                found: d.to_hex(),
            });
        }
    }
    let mut stack = vec![(dir.to_owned(), String::new())];
    while let Some((d, rel)) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| VaultError::Io {
            path: d.display().to_string(),
            source: e,
        })?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let r = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir && !expected.contains(&r) {
                stack.push((e.path(), r));
            } else if !expected.contains(&r) {
                problems.push(DirProblem::Unexpected { path: r });
            }
        }
    }
    Ok((verified(&rec, author), problems))
}
