//! `pull` and `verify`: get a version back, verified before anything lands.
//!
//! Order of checks, each stopping a different attack:
//! 1. the manifest parses, is canonical and its Merkle root matches its
//!    file list (an edited manifest);
//! 2. the manifest signature verifies and its key belonged to a user who
//!    could register the model (a forged or replayed manifest);
//! 3. the commit that added the version is signed by a known user (a commit
//!    slipped into history);
//! 4. the payload tree is the one the manifest names (fetched from the
//!    remote by its payload ref when this clone lacks it), and every part
//!    is in it with the recorded size (a swapped or truncated part, caught
//!    before decrypting);
//! 5. every part decrypts (age authenticates each 64 KiB chunk) to its
//!    size and SHA-256, and every file's size and SHA-256 match the
//!    manifest (a part from another file, parts out of order).
//!
//! Files are written under a staging directory inside the destination and
//! renamed into place only after every file passed: a failed or killed pull
//! leaves no partial file under a final name.

use crate::ops::sync::freshness::MaxAge;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::sync_channel;

use crate::store::ObjectId;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::crypto::{self, DataKey, KeyRing, SshIdentity};
use crate::model::manifest::{FileEntry, Part, Sha256Digest};
use crate::model::names::{self, VersionRef};
use crate::model::purge::PurgeRecord;
use crate::ops::output::{check_destination, check_output_dir, make_parents};
use crate::ops::parts::{PartBuf, PartPool};
use crate::ops::progress::Progress;
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

/// The part objects of every file, in manifest order, after checking the
/// payload tree against the manifest (fetching it first when missing).
fn payload_parts(
    vault: &Vault,
    rec: &VersionRecord,
    progress: &dyn Progress,
) -> Result<Vec<Vec<ObjectId>>, VaultError> {
    let (model, version) = (&rec.model, &rec.version);
    let payload: ObjectId = rec
        .manifest
        .payload
        .parse()
        .map_err(|_| VaultError::Mismatch {
            path: names::version_dir(model, version),
            check: "payload id",
            expected: "a git tree id".into(),
            found: rec.manifest.payload.clone(),
        })?;
    if !vault.store.has_object(payload) {
        let (_, main_tree) = vault.main()?;
        if let Some(bytes) = vault
            .store
            .read_path(main_tree, &names::purge_path(model, version))?
        {
            let p = PurgeRecord::parse(&String::from_utf8_lossy(&bytes)).map_err(|e| {
                VaultError::Input {
                    path: names::purge_path(model, version),
                    reason: e.to_string(),
                }
            })?;
            return Err(VaultError::Purged {
                model: model.to_string(),
                version: version.to_string(),
                date: p.time,
                by: p.purged_by,
                reason: p.reason,
            });
        }
        progress.begin("fetching", 0);
        let fetched = crate::ops::sync::fetch_payload(vault, model, version, payload);
        progress.end();
        fetched?;
    }
    let entries: std::collections::BTreeMap<String, ObjectId> = vault
        .store
        .tree_entries(payload)?
        .into_iter()
        .map(|(name, id, _)| (name, id))
        .collect();
    let mut out = Vec::with_capacity(rec.manifest.files.len());
    for f in &rec.manifest.files {
        let mut ids = Vec::with_capacity(f.parts.len());
        for part in &f.parts {
            let Some(id) = entries.get(&part.sha256.to_hex()).copied() else {
                return Err(VaultError::Mismatch {
                    path: f.path.clone(),
                    check: "part presence",
                    expected: part.sha256.to_hex(),
                    found: format!("no such part in payload tree {payload}"),
                });
            };
            if !vault.store.has_object(id) {
                return Err(VaultError::NotFetched {
                    model: model.to_string(),
                    version: version.to_string(),
                    reason: format!(
                        "part {} ({id}) of {} is missing from this clone",
                        part.sha256, f.path
                    ),
                });
            }
            let size = vault.store.object_size(id)?;
            if size != part.blob_size {
                return Err(VaultError::Mismatch {
                    path: f.path.clone(),
                    check: "part size",
                    expected: part.blob_size.to_string(),
                    found: size.to_string(),
                });
            }
            ids.push(id);
        }
        out.push(ids);
    }
    Ok(out)
}

/// A record that passed checks 1 to 4: the part ids per file, the data key
/// and the author.
type CheckedRecord = (VersionRecord, Vec<Vec<ObjectId>>, DataKey, String);

/// Checks 1 to 4, and the data key; returns the part ids per file.
fn check_record(
    vault: &Vault,
    r: &VersionRef,
    who: &SshIdentity,
    progress: &dyn Progress,
) -> Result<CheckedRecord, VaultError> {
    let (model, version) = crate::ops::resolve::resolve(vault, r)?;
    // 1. parse, canonical form and Merkle root (inside `record`).
    let rec = vault.record(&model, &version)?;
    // 2. manifest signature by someone who could register the model.
    let author = vault.verify_manifest_signature(&rec)?;
    // 3. the commit that added it is signed by a known user.
    if let Some(c) = rec.commit {
        vault.verify_commit_signature(c)?;
    }
    // 4. the payload: fetched if this clone lacks it (never when purged),
    // the tree the manifest names, every part present with its size.
    let ids = payload_parts(vault, &rec, progress)?;
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

/// Decrypt one part into `out` (empty, from the part pool), checking its
/// size and digest. The ciphertext streams from the object store through
/// the cipher straight into `out`: it is never held whole.
fn decrypt_part(
    store: &Store,
    id: ObjectId,
    key: &DataKey,
    entry: &FileEntry,
    part: &Part,
    out: &mut Vec<u8>,
) -> Result<(), VaultError> {
    let dec_err = |e: String| VaultError::Decrypt {
        path: entry.path.clone(),
        reason: e,
    };
    debug_assert!(out.is_empty(), "a part buffer comes empty from the pool");
    let mut reader = store.blob_reader(id)?;
    crypto::stream::open(key.identity(), &mut reader, part.size, out)
        .map_err(|e| dec_err(e.to_string()))?;
    let digest = Sha256Digest(Sha256::digest(&out[..]).into());
    if digest != part.sha256 {
        return Err(VaultError::Mismatch {
            path: entry.path.clone(),
            check: "part sha256",
            expected: part.sha256.to_hex(),
            found: digest.to_hex(),
        });
    }
    Ok(())
}

/// Decrypt one file's parts on every core into `out` (or nowhere),
/// checking each part, then the whole file's size and digest. Workers
/// decrypt and check parts; one thread hashes the whole file in order, and
/// one writes each part at its offset (one writer: concurrent writes to a
/// file wait on each other in the kernel). At most a window of parts is in
/// memory at once.
fn decrypt_checked(
    store: &Store,
    ids: &[ObjectId],
    key: &DataKey,
    entry: &FileEntry,
    out: Option<&mut File>,
    progress: &dyn Progress,
) -> Result<(), VaultError> {
    use std::os::unix::fs::FileExt;
    use std::sync::{Arc, Condvar, Mutex};
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(ids.len())
        .max(1);
    let window = workers + 1;
    // At most a window of parts is alive at once; one more buffer because
    // the hasher lets go of a part only after it has told the workers to
    // go on, so a worker may take a buffer before the last one is back.
    let pool = PartPool::new(window + 1);
    let next = AtomicUsize::new(0);
    // How many parts the hasher has taken, in order.
    let hashed = (Mutex::new(0usize), Condvar::new());
    let failed = std::sync::atomic::AtomicBool::new(false);
    let first_error: Mutex<Option<VaultError>> = Mutex::new(None);
    let git_dir = store.git_dir().to_owned();
    let offsets: Vec<u64> = entry
        .parts
        .iter()
        .scan(0u64, |at, p| {
            let o = *at;
            *at += p.size;
            Some(o)
        })
        .collect();
    let out: Option<&File> = out.map(|f| &*f);
    let fail = |e: VaultError| {
        failed.store(true, Ordering::Relaxed);
        hashed.1.notify_all();
        let mut slot = first_error.lock().expect("error slot");
        if slot.is_none() {
            *slot = Some(e);
        }
    };
    let (n, digest) = std::thread::scope(|s| {
        // The writer: its queue is bounded by the pool; on an error it
        // goes on draining, so that every buffer goes back.
        let (wtx, wrx) = std::sync::mpsc::channel::<(usize, Arc<PartBuf>)>();
        if let Some(f) = out {
            let (fail, offsets) = (&fail, &offsets);
            s.spawn(move || {
                let mut ok = true;
                for (i, part) in wrx {
                    if ok {
                        if let Err(e) = f.write_all_at(&part.data, offsets[i]) {
                            ok = false;
                            fail(VaultError::Io {
                                path: entry.path.clone(),
                                source: e,
                            });
                        }
                    }
                }
            });
        } else {
            drop(wrx);
        }
        let (tx, rx) = sync_channel::<(usize, Arc<PartBuf>)>(window);
        let hasher = s.spawn(|| {
            let mut h = Sha256::new();
            let mut n = 0u64;
            let mut pending = std::collections::BTreeMap::new();
            let mut expect = 0usize;
            for (i, data) in rx {
                pending.insert(i, data);
                while let Some(part) = pending.remove(&expect) {
                    h.update(&part.data[..]);
                    n += part.data.len() as u64;
                    expect += 1;
                    *hashed.0.lock().expect("window") = expect;
                    hashed.1.notify_all();
                }
            }
            (n, Sha256Digest(h.finalize().into()))
        });
        for _ in 0..workers {
            let (tx, wtx) = (tx.clone(), wtx.clone());
            let (next, hashed, failed, git_dir, fail, pool) =
                (&next, &hashed, &failed, &git_dir, &fail, &pool);
            s.spawn(move || {
                let store = match Store::open(git_dir) {
                    Ok(s) => s,
                    Err(e) => return fail(e.into()),
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= ids.len() || failed.load(Ordering::Relaxed) {
                        return;
                    }
                    // Stay within the window ahead of the hasher.
                    let mut h = hashed.0.lock().expect("window");
                    while i >= *h + window && !failed.load(Ordering::Relaxed) {
                        h = hashed.1.wait(h).expect("window");
                    }
                    drop(h);
                    if failed.load(Ordering::Relaxed) {
                        return;
                    }
                    let mut data = pool.take();
                    if let Err(e) =
                        decrypt_part(&store, ids[i], key, entry, &entry.parts[i], &mut data.data)
                    {
                        return fail(e);
                    }
                    let data = Arc::new(data);
                    if out.is_some() && wtx.send((i, data.clone())).is_err() {
                        return;
                    }
                    progress.advance(entry.parts[i].size);
                    if tx.send((i, data)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        drop(wtx);
        hasher.join().expect("hasher panicked")
    });
    if let Some(e) = first_error.into_inner().expect("error slot") {
        return Err(e);
    }
    if n != entry.size {
        return Err(VaultError::Mismatch {
            path: entry.path.clone(),
            check: "size",
            expected: entry.size.to_string(),
            found: n.to_string(),
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
    // A file of several parts already decrypts on every core: files go one
    // at a time then, so memory holds one file's window of parts.
    let parallel_files = files.iter().all(|f| f.parts.len() <= 1);
    let workers = if parallel_files {
        std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .min(files.len())
            .max(1)
    } else {
        1
    };
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
pub fn verify(
    vault: &Vault,
    r: &VersionRef,
    who: &SshIdentity,
    progress: &dyn Progress,
) -> Result<Verified, VaultError> {
    let (rec, ids, key, author) = check_record(vault, r, who, progress)?;
    let files = &rec.manifest.files;
    progress.begin("verifying", rec.manifest.total_size());
    let checked = for_each_file(vault, files, |store, i| {
        progress.file(&files[i].path);
        decrypt_checked(store, &ids[i], &key, &files[i], None, progress)
    });
    progress.end();
    checked?;
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

/// Before `#stage` or the newest version is resolved, bring the record up
/// to date with the remote, when there is one. An unreachable remote is a
/// warning (the pull goes on with what the clone has); a server that
/// rewrites history or re-points a tag is an error.
///
/// With `max_age` (`--max-age`), the record is refreshed even for an exact
/// version, and a server whose signed timestamp is older is refused, as is
/// an unreachable one: freshness cannot be shown without asking.
pub fn refresh_for(
    vault: &Vault,
    r: &VersionRef,
    max_age: Option<MaxAge>,
) -> Result<Option<String>, VaultError> {
    if matches!(r, VersionRef::Exact(..)) && max_age.is_none() {
        return Ok(None);
    }
    let Some(remote) = crate::ops::sync::remote(vault) else {
        if max_age.is_some() {
            return Err(VaultError::NoRemote);
        }
        return Ok(None);
    };
    match crate::ops::sync::fetch_checked_fresh(
        vault,
        &remote,
        &crate::ops::sync::TagScope::model(r.model()),
        max_age,
    ) {
        Err(VaultError::Store(e)) if max_age.is_some() => Err(VaultError::RemoteUnreachable {
            remote,
            detail: e.to_string().lines().next().unwrap_or("").to_owned(),
        }),
        Ok(()) => Ok(None),
        Err(VaultError::Store(e)) => Ok(Some(format!(
            "could not refresh the record from {remote} ({}); using this clone's record",
            e.to_string().lines().next().unwrap_or("")
        ))),
        Err(e) => Err(e),
    }
}

/// The default cache directory of `pull --from URL`.
pub fn default_cache(url: &str) -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    let digest = Sha256Digest::of(url.as_bytes()).to_hex();
    base.join("mvault").join(&digest[..16])
}

/// Where `pull --from` reads: the server's URL, the cache directory (its
/// default when `None`), and how old the server's timestamp may be.
#[derive(Debug, Clone)]
pub struct FromServer<'a> {
    pub url: &'a str,
    pub cache: Option<&'a Path>,
    pub max_age: MaxAge,
}

/// `mvault pull --from URL REF -o DIR`: no clone. The record (main, tags)
/// is kept in a bare cache repository and refreshed on every call; only
/// the named version's payload is fetched. Trust is the same as in a
/// clone: the record replays from the root keys its first commit records
/// (pinned in the cache on first use, like an SSH host key), and every
/// byte is checked before it is written. When the vault pins a server
/// key, the server's signed timestamp must be no older than `max_age`
/// (`pull --from`'s default: 24 hours) and its receipts no older than
/// the cache has seen.
pub fn pull_from(
    server: &FromServer<'_>,
    r: &VersionRef,
    env: Option<&str>,
    out: &Path,
    who: &SshIdentity,
    progress: &dyn Progress,
) -> Result<Verified, VaultError> {
    let (url, cache, max_age) = (server.url, server.cache, server.max_age);
    let cache = cache
        .map(Path::to_owned)
        .unwrap_or_else(|| default_cache(url));
    if !cache.join("HEAD").exists() {
        std::fs::create_dir_all(&cache).map_err(|e| VaultError::Io {
            path: cache.display().to_string(),
            source: e,
        })?;
        crate::store::run_git(&cache, &["init", "-q", "--bare", "-b", "main"])?;
        crate::store::run_git(&cache, &["remote", "add", "origin", url])?;
        crate::store::run_git(&cache, &["config", "branch.main.remote", "origin"])?;
    }
    let configured =
        crate::store::run_git(&cache, &["remote", "get-url", "origin"]).unwrap_or_default();
    if configured.trim() != url {
        return Err(VaultError::Input {
            path: cache.display().to_string(),
            reason: format!(
                "this cache belongs to {}, not {url}; pass another --cache",
                configured.trim()
            ),
        });
    }
    let vault = Vault::open(&cache)?;
    vault.store.ensure_config()?;
    crate::ops::sync::fetch_checked_fresh(
        &vault,
        "origin",
        &crate::ops::sync::TagScope::model(r.model()),
        Some(max_age),
    )
    .map_err(|e| match e {
        VaultError::Store(s) => VaultError::NotFetched {
            model: match r {
                VersionRef::Exact(m, _) | VersionRef::Latest(m) | VersionRef::Stage(m, _) => {
                    m.to_string()
                }
            },
            version: "(record)".into(),
            reason: format!("cannot fetch the record from {url}: {s}"),
        },
        other => other,
    })?;
    pull(&vault, r, env, out, who, progress)
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
    env: Option<&str>,
    out: &Path,
    who: &SshIdentity,
    progress: &dyn Progress,
) -> Result<Verified, VaultError> {
    check_output_dir(out)?;
    // For an environment (`--env`), the version must be deployable there
    // (ops::deploy::check_deployable), before anything is fetched.
    if let Some(env) = env {
        let (model, version) = crate::ops::resolve::resolve(vault, r)?;
        let now = crate::vault::now().unix_timestamp();
        crate::ops::deploy::check_deployable(vault, &vault.policy()?, &model, &version, env, now)?;
    }
    let (rec, ids, key, author) = check_record(vault, r, who, progress)?;
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
    progress.begin("decrypting", rec.manifest.total_size());
    let written = for_each_file(vault, files, |store, i| {
        progress.file(&files[i].path);
        let tmp = staging_dir.join(i.to_string());
        let mut f = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
        decrypt_checked(store, &ids[i], &key, &files[i], Some(&mut f), progress)?;
        f.flush().map_err(|e| io_err(&tmp, e))
    });
    progress.end();
    written?;
    // Every file passed: move them into place.
    for (i, f) in files.iter().enumerate() {
        let dest = make_parents(out, &f.path)?;
        std::fs::rename(staging_dir.join(i.to_string()), &dest).map_err(|e| io_err(&dest, e))?;
    }
    staging.done = true;
    Ok(verified(&rec, author))
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
