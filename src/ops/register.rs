//! `add`: register a model version.
//!
//! Every file is streamed once: one thread reads and encrypts, one hashes,
//! and the caller's thread writes the ciphertext into git as it comes, so
//! memory stays flat and a large file costs about one SHA-256 pass of wall
//! time. Files are spread over the available cores. The version appears only
//! when its commit and registration tag move together, after every object is
//! written; a killed `add` leaves unreferenced objects and nothing else.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use crate::store::ObjectId;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::crypto::{self, DataKey, KeyRing, Signer, SshIdentity};
use crate::model::manifest::{self, FileEntry, Manifest, Sha256Digest};
use crate::model::names::{self, ModelName, Version};
use crate::model::policy::{Ability, Policy};
use crate::ops::sync::{self, PushOutcome};
use crate::store::{Actor, RefUpdate, Store, MAIN_REF};
use crate::vault::{rfc3339, Vault, VaultError};

const CHUNK: usize = 1 << 20;

/// What to register.
pub struct AddRequest<'a> {
    pub path: PathBuf,
    pub model: ModelName,
    pub version: Version,
    pub parent: Option<Version>,
    pub framework: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub metrics: BTreeMap<String, f64>,
    pub provenance: BTreeMap<String, String>,
    pub message: Option<String>,
    pub identity: &'a SshIdentity,
    pub push: bool,
    pub now: OffsetDateTime,
}

/// What `add` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AddOutcome {
    pub model: String,
    pub version: String,
    pub commit: String,
    pub tag: String,
    pub manifest_sha256: String,
    pub files: usize,
    pub bytes: u64,
    /// Files whose blob an earlier version already stored.
    pub reused: usize,
    /// Whether the model's key ring was created by this version.
    pub new_key_ring: bool,
    /// Where it was pushed, if anywhere, and how many rebuilds it took.
    pub pushed: Option<PushOutcome>,
}

/// One input file.
struct Input {
    rel: String,
    abs: PathBuf,
    size: u64,
}

/// Walk `root` into validated relative paths, refusing symlinks that leave it.
fn collect_inputs(root: &Path) -> Result<Vec<Input>, VaultError> {
    let io_err = |p: &Path, e: io::Error| VaultError::Io {
        path: p.display().to_string(),
        source: e,
    };
    let meta = std::fs::metadata(root).map_err(|e| io_err(root, e))?;
    let canon_root = std::fs::canonicalize(root).map_err(|e| io_err(root, e))?;
    let mut out = Vec::new();
    if meta.is_file() {
        let name = root
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| VaultError::Input {
                path: root.display().to_string(),
                reason: "file name is not valid UTF-8".into(),
            })?;
        out.push(Input {
            rel: name.to_owned(),
            abs: root.to_owned(),
            size: meta.len(),
        });
    } else {
        let mut stack = vec![(root.to_owned(), String::new())];
        while let Some((dir, rel_dir)) = stack.pop() {
            for entry in std::fs::read_dir(&dir).map_err(|e| io_err(&dir, e))? {
                let entry = entry.map_err(|e| io_err(&dir, e))?;
                let abs = entry.path();
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    return Err(VaultError::Input {
                        path: abs.display().to_string(),
                        reason: "file name is not valid UTF-8".into(),
                    });
                };
                let rel = if rel_dir.is_empty() {
                    name
                } else {
                    format!("{rel_dir}/{name}")
                };
                let ft = entry.file_type().map_err(|e| io_err(&abs, e))?;
                if ft.is_symlink() {
                    let target = std::fs::canonicalize(&abs).map_err(|e| io_err(&abs, e))?;
                    if !target.starts_with(&canon_root) {
                        return Err(VaultError::Input {
                            path: abs.display().to_string(),
                            reason: format!(
                                "symlink leaves {} (points to {}); copy the file in instead",
                                root.display(),
                                target.display()
                            ),
                        });
                    }
                    let m = std::fs::metadata(&target).map_err(|e| io_err(&abs, e))?;
                    if !m.is_file() {
                        return Err(VaultError::Input {
                            path: abs.display().to_string(),
                            reason: "symlink to a directory; mvault follows only symlinks to files"
                                .into(),
                        });
                    }
                    out.push(Input {
                        rel,
                        abs: target,
                        size: m.len(),
                    });
                } else if ft.is_dir() {
                    stack.push((abs, rel));
                } else if ft.is_file() {
                    let size = entry.metadata().map_err(|e| io_err(&abs, e))?.len();
                    out.push(Input { rel, abs, size });
                } else {
                    return Err(VaultError::Input {
                        path: abs.display().to_string(),
                        reason:
                            "not a regular file (devices, sockets and fifos cannot be registered)"
                                .into(),
                    });
                }
            }
        }
    }
    if out.is_empty() {
        return Err(VaultError::Input {
            path: root.display().to_string(),
            reason: "no files to register (empty input)".into(),
        });
    }
    for i in &out {
        manifest::validate_path(&i.rel).map_err(|why| VaultError::Input {
            path: i.rel.clone(),
            reason: format!("{why}; a path is {}", manifest::PATH_RULE),
        })?;
    }
    manifest::check_path_set(out.iter().map(|i| i.rel.as_str())).map_err(|why| {
        VaultError::Input {
            path: root.display().to_string(),
            reason: why,
        }
    })?;
    out.sort_by_key(|i| std::cmp::Reverse(i.size));
    Ok(out)
}

/// A blob a previous version stored, keyed by plaintext digest.
#[derive(Clone, Copy)]
struct Reusable {
    id: ObjectId,
    blob_size: u64,
}

/// A `Write` that sends its bytes over a channel in large chunks.
struct ChannelWriter {
    tx: SyncSender<Vec<u8>>,
    buf: Vec<u8>,
    written: Arc<AtomicU64>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        self.written.fetch_add(data.len() as u64, Ordering::Relaxed);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK + 65536));
            self.tx
                .send(chunk)
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "git writer stopped"))?;
        }
        Ok(())
    }
}

/// A `Read` over chunks received from a channel.
struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(c) => {
                    self.cur = c;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn hash_file(path: &Path) -> io::Result<(Sha256Digest, u64)> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((Sha256Digest(h.finalize().into()), n))
}

/// Encrypt one file into a git blob while hashing it, in one read.
fn encrypt_into_git(
    store: &Store,
    input: &Input,
    key: &DataKey,
) -> Result<(Sha256Digest, ObjectId, u64), VaultError> {
    let io_err = |e: io::Error| VaultError::Io {
        path: input.abs.display().to_string(),
        source: e,
    };
    let (ct_tx, ct_rx) = sync_channel::<Vec<u8>>(4);
    let written = Arc::new(AtomicU64::new(0));
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&key.recipient() as &dyn age::Recipient))
            .map_err(|e| VaultError::Decrypt {
            path: input.rel.clone(),
            reason: e.to_string(),
        })?;
    let writer = ChannelWriter {
        tx: ct_tx,
        buf: Vec::with_capacity(CHUNK + 65536),
        written: written.clone(),
    };
    let mut stream = encryptor.wrap_output(writer).map_err(io_err)?;
    // age writes its header and nonce before returning: the rest of the
    // ciphertext size follows from the plaintext size.
    let prefix = written.load(Ordering::Relaxed);
    let size = input.size;
    let blob_size = prefix + crypto::age_payload_size(size) - 16;
    let file = File::open(&input.abs).map_err(io_err)?;

    std::thread::scope(|s| {
        let (pt_tx, pt_rx) = sync_channel::<Arc<Vec<u8>>>(4);
        let hasher = s.spawn(move || {
            let mut h = Sha256::new();
            for chunk in pt_rx {
                h.update(&chunk[..]);
            }
            Sha256Digest(h.finalize().into())
        });
        let reader = s.spawn(move || -> io::Result<u64> {
            let mut file = file;
            let mut total = 0u64;
            loop {
                let mut buf = vec![0u8; CHUNK];
                let mut filled = 0;
                while filled < CHUNK {
                    let k = file.read(&mut buf[filled..])?;
                    if k == 0 {
                        break;
                    }
                    filled += k;
                }
                if filled == 0 {
                    break;
                }
                buf.truncate(filled);
                total += filled as u64;
                if total > size {
                    return Err(io::Error::other("file grew while it was being read"));
                }
                let chunk = Arc::new(buf);
                stream.write_all(&chunk)?;
                if pt_tx.send(chunk).is_err() {
                    return Err(io::Error::other("hasher stopped"));
                }
            }
            drop(pt_tx);
            if total != size {
                return Err(io::Error::other(
                    "file changed size while it was being read",
                ));
            }
            let mut inner = stream.finish()?;
            inner.flush()?;
            Ok(total)
        });
        let mut rx = ChannelReader {
            rx: ct_rx,
            cur: Vec::new(),
            pos: 0,
        };
        let id = store.write_blob_stream(blob_size, &mut rx);
        drop(rx);
        let read = reader
            .join()
            .expect("reader thread panicked")
            .map_err(io_err)?;
        let digest = hasher.join().expect("hasher thread panicked");
        let id = id?;
        debug_assert_eq!(read, size);
        Ok((digest, id, blob_size))
    })
}

/// Process every input over the available cores.
fn store_files(
    store: &Store,
    inputs: &[Input],
    key: &DataKey,
    reuse: &BTreeMap<Sha256Digest, Reusable>,
    reuse_sizes: &BTreeSet<u64>,
) -> Result<(Vec<(FileEntry, ObjectId)>, usize), VaultError> {
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(inputs.len())
        .max(1);
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let git_dir = store.git_dir().to_owned();
                let next = &next;
                s.spawn(
                    move || -> Result<Vec<(usize, FileEntry, ObjectId, bool)>, VaultError> {
                        // gix handles are per thread: each worker opens its own.
                        let store = Store::open(&git_dir)?;
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(input) = inputs.get(i) else { break };
                            // A file of an earlier version's size may be the same
                            // file: hash first, and skip encryption when it is.
                            if reuse_sizes.contains(&input.size) {
                                let (digest, n) =
                                    hash_file(&input.abs).map_err(|e| VaultError::Io {
                                        path: input.abs.display().to_string(),
                                        source: e,
                                    })?;
                                if let (Some(r), true) = (reuse.get(&digest), n == input.size) {
                                    let entry = FileEntry {
                                        path: input.rel.clone(),
                                        size: n,
                                        sha256: digest,
                                        blob_size: r.blob_size,
                                    };
                                    done.push((i, entry, r.id, true));
                                    continue;
                                }
                            }
                            let (digest, id, blob_size) = encrypt_into_git(&store, input, key)?;
                            let entry = FileEntry {
                                path: input.rel.clone(),
                                size: input.size,
                                sha256: digest,
                                blob_size,
                            };
                            done.push((i, entry, id, false));
                        }
                        Ok(done)
                    },
                )
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker panicked"))
            .collect::<Vec<_>>()
    });
    let mut all = Vec::new();
    for r in results {
        all.extend(r?);
    }
    all.sort_by_key(|(i, ..)| *i);
    let reused = all.iter().filter(|r| r.3).count();
    Ok((
        all.into_iter().map(|(_, e, id, _)| (e, id)).collect(),
        reused,
    ))
}

/// Everything a version adds to the tree, ready to be committed on any tip.
pub(crate) struct PreparedVersion {
    pub model: ModelName,
    pub version: Version,
    pub upserts: Vec<(String, ObjectId)>,
    /// The key ring blob when this version creates the ring.
    pub new_ring: Option<ObjectId>,
    /// The data key the blobs are encrypted to.
    pub data_key: String,
    pub manifest_sha256: Sha256Digest,
    pub message: String,
    pub author: String,
    /// The manifest, for a rebuild that must date it anew.
    pub manifest: Manifest,
}

/// The time to put on something built on commit `parent`: now, or the
/// parent's own date when this clock is behind it (a date is never before
/// the parent's).
pub(crate) fn not_before_parent(
    vault: &Vault,
    parent: ObjectId,
    now: OffsetDateTime,
) -> Result<OffsetDateTime, VaultError> {
    let (_, data) = vault.store.object(parent)?;
    let dated = crate::store::objects::parse_commit(&data)?.committer.time;
    Ok(if dated > now.unix_timestamp() {
        OffsetDateTime::from_unix_timestamp(dated).unwrap_or(now)
    } else {
        now
    })
}

/// Sign `manifest` and write it and its signature as blobs: the two
/// upserts of its version directory, and its digest.
pub(crate) fn write_manifest(
    vault: &Vault,
    manifest: &Manifest,
    identity: &SshIdentity,
) -> Result<(Vec<(String, ObjectId)>, Sha256Digest), VaultError> {
    let text = manifest.to_canonical();
    let sig = identity
        .sign(crypto::MANIFEST_NAMESPACE, text.as_bytes())
        .map_err(|source| VaultError::Signature {
            what: "manifest".into(),
            source,
        })?;
    let dir = names::version_dir(&manifest.model, &manifest.version);
    let upserts = vec![
        (
            format!("{dir}/manifest.toml"),
            vault.store.write_blob(text.as_bytes())?,
        ),
        (
            format!("{dir}/manifest.sig"),
            vault.store.write_blob(sig.as_bytes())?,
        ),
    ];
    Ok((upserts, Sha256Digest::of(text.as_bytes())))
}

/// Register a version: the whole of `mvault add`.
pub fn add(vault: &Vault, req: AddRequest<'_>) -> Result<AddOutcome, VaultError> {
    vault.store.ensure_config()?;
    if let Some(m) = &req.message {
        // Trailers are mvault's: a free-text line that looks like one would
        // change what the commit says it does.
        if let Some(line) = m.lines().find(|l| l.trim_start().starts_with("Mvault-")) {
            return Err(VaultError::Input {
                path: "--message".into(),
                reason: format!("the line {line:?} looks like an mvault trailer; trailers are written by mvault"),
            });
        }
    }
    let inputs = collect_inputs(&req.path)?;
    let (tip, tree) = vault.main()?;
    let policy = vault.policy_at(tree)?;
    let user = signer_user(&policy, req.identity)?;
    policy.check(&user, &req.model, Ability::Register, req.now)?;

    let existing = vault.versions_of(tree, &req.model)?;
    if existing.contains(&req.version) {
        return Err(VaultError::VersionExists {
            model: req.model.to_string(),
            version: req.version.to_string(),
        });
    }
    if let Some(p) = &req.parent {
        if !existing.contains(p) {
            return Err(VaultError::Input {
                path: format!("--parent {p}"),
                reason: format!("parent version {}@{p} is not in this vault", req.model),
            });
        }
    }

    // The data key: the newest generation of the model's ring, or a new ring.
    let ring_path = req.model.keyring_path();
    let (ring, new_ring) = match vault.store.read_path(tree, &ring_path)? {
        Some(sealed) => (
            KeyRing::open(&sealed, req.identity).map_err(|e| VaultError::NoReadAccess {
                model: req.model.to_string(),
                reason: format!("your key does not open {ring_path}: {e}"),
            })?,
            None,
        ),
        None => {
            let ring = KeyRing {
                generations: vec![DataKey::generate(&rfc3339(req.now))],
            };
            let readers: Vec<_> = policy
                .readers(&req.model, req.now)
                .into_iter()
                .map(|(_, k)| k.clone())
                .collect();
            let sealed =
                ring.seal(req.model.as_str(), &readers)
                    .map_err(|e| VaultError::Decrypt {
                        path: ring_path.clone(),
                        reason: e.to_string(),
                    })?;
            let id = vault.store.write_blob(&sealed)?;
            (ring, Some(id))
        }
    };
    let key = ring.current().clone();
    let key_recipient = key.recipient().to_string();

    // Blobs an earlier version stored under the same data key.
    let mut reuse = BTreeMap::new();
    let mut reuse_sizes = BTreeSet::new();
    for v in &existing {
        let dir = names::version_dir(&req.model, v);
        let Some(bytes) = vault
            .store
            .read_path(tree, &format!("{dir}/manifest.toml"))?
        else {
            continue;
        };
        let Ok(m) = Manifest::parse(&String::from_utf8_lossy(&bytes)) else {
            continue;
        };
        if m.data_key != key_recipient {
            continue;
        }
        for f in &m.files {
            if let Some((id, _)) = vault.store.entry(tree, &format!("{dir}/{}", f.blob()))? {
                reuse.insert(
                    f.sha256,
                    Reusable {
                        id,
                        blob_size: f.blob_size,
                    },
                );
                reuse_sizes.insert(f.size);
            }
        }
    }

    let (mut stored, reused) = store_files(&vault.store, &inputs, &key, &reuse, &reuse_sizes)?;
    // Files with the same content share one blob (named by the digest):
    // every entry takes the first one's object and ciphertext size.
    let mut first: BTreeMap<Sha256Digest, (ObjectId, u64)> = BTreeMap::new();
    for (e, id) in stored.iter_mut() {
        let (fid, fsize) = *first.entry(e.sha256).or_insert((*id, e.blob_size));
        *id = fid;
        e.blob_size = fsize;
    }

    // Dates are claims: never before the commit this one builds on.
    let when = not_before_parent(vault, tip, req.now)?;
    let mut manifest = Manifest {
        model: req.model.clone(),
        version: req.version.clone(),
        parent: req.parent.clone(),
        author: user.clone(),
        author_key: crypto::fingerprint(req.identity.public_key()),
        created: rfc3339(when),
        framework: req.framework.clone(),
        data_key: key_recipient.clone(),
        metadata: req.metadata.clone(),
        metrics: req.metrics.clone(),
        provenance: req.provenance.clone(),
        files: stored.iter().map(|(e, _)| e.clone()).collect(),
    };
    manifest.sort_files();
    let (mut upserts, manifest_sha256) = write_manifest(vault, &manifest, req.identity)?;
    let dir = names::version_dir(&req.model, &req.version);
    let mut seen = BTreeSet::new();
    for (e, id) in &stored {
        if seen.insert(e.blob()) {
            upserts.push((format!("{dir}/{}", e.blob()), *id));
        }
    }
    let mut message = format!("register {}@{}\n\n", req.model, req.version);
    if let Some(m) = &req.message {
        message.push_str(m.trim());
        message.push_str("\n\n");
    }
    message.push_str(&format!(
        "Mvault-Action: register\nMvault-Model: {}\nMvault-Version: {}\nMvault-Manifest-Sha256: {}\n",
        req.model, req.version, manifest_sha256
    ));
    if let Some(p) = &req.parent {
        message.push_str(&format!("Mvault-Parent-Version: {p}\n"));
    }
    if new_ring.is_some() {
        message.push_str(&format!("Mvault-Key-Ring: created {key_recipient}\n"));
    }
    let prepared = PreparedVersion {
        model: req.model.clone(),
        version: req.version.clone(),
        upserts,
        new_ring,
        data_key: key_recipient,
        manifest_sha256,
        message,
        author: user,
        manifest: manifest.clone(),
    };
    let (commit, tag) = commit_version(vault, &prepared, tip, tree, req.identity, req.now)?;

    let pushed = if req.push {
        sync::push_version(vault, &prepared, tip, commit, tag, req.identity, req.now)?
    } else {
        None
    };
    let (commit, tag) = match &pushed {
        Some(p) => (p.commit, p.tag),
        None => (commit, tag),
    };
    let _ = tag;
    Ok(AddOutcome {
        model: req.model.to_string(),
        version: req.version.to_string(),
        commit: commit.to_string(),
        tag: names::registration_tag(&req.model, &req.version),
        manifest_sha256: manifest_sha256.to_hex(),
        files: stored.len(),
        bytes: manifest.total_size(),
        reused,
        new_key_ring: new_ring.is_some(),
        pushed,
    })
}

/// The policy user of the signing key, or why there is none.
pub fn signer_user(policy: &Policy, identity: &SshIdentity) -> Result<String, VaultError> {
    policy
        .user_of_key(identity.public_key())
        .map(|u| u.name.clone())
        .ok_or_else(|| VaultError::UnknownKey {
            fingerprint: crypto::fingerprint(identity.public_key()),
            path: identity.path().display().to_string(),
        })
}

/// Commit a prepared version on `tip` and create its tag; both refs move
/// together or not at all. Returns (commit, tag object).
pub(crate) fn commit_version(
    vault: &Vault,
    p: &PreparedVersion,
    tip: ObjectId,
    tip_tree: ObjectId,
    signer: &SshIdentity,
    now: OffsetDateTime,
) -> Result<(ObjectId, ObjectId), VaultError> {
    let mut upserts = p.upserts.clone();
    if let Some(ring) = p.new_ring {
        upserts.push((p.model.keyring_path(), ring));
    }
    let new_tree = vault.store.edit_tree(Some(tip_tree), &upserts)?;
    let actor = Actor {
        name: p.author.clone(),
        time: not_before_parent(vault, tip, now)?.unix_timestamp(),
    };
    let commit = vault
        .store
        .write_signed_commit(new_tree, &[tip], &actor, &p.message, signer)?;
    let tag_name = names::registration_tag(&p.model, &p.version);
    let tag_msg = format!(
        "register {}@{}\n\nMvault-Manifest-Sha256: {}\n",
        p.model, p.version, p.manifest_sha256
    );
    let tag = vault
        .store
        .write_signed_tag(commit, &tag_name, &actor, &tag_msg, signer)?;
    let tag_ref = format!("refs/tags/{tag_name}");
    // A tag left by an add that was killed before `main` moved points at a
    // commit main never had: replace it.
    let stale = vault.store.ref_target(&tag_ref)?;
    vault.store.update_refs(&[
        RefUpdate {
            name: MAIN_REF.into(),
            expected: Some(tip),
            new: Some(commit),
            reason: format!("register {}@{}", p.model, p.version),
        },
        RefUpdate {
            name: tag_ref,
            expected: stale,
            new: Some(tag),
            reason: format!("register {}@{}", p.model, p.version),
        },
    ])?;
    sync::refresh_worktree(vault, tip, commit);
    Ok((commit, tag))
}
