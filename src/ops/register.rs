//! `add`: register a model version.
//!
//! Every file is read once and cut into parts (see [`crate::ops::parts`]),
//! hashed and encrypted on every core; the parts form the payload tree
//! that the version's payload ref names, and `main` gets only the signed
//! manifest. The version appears only when its commit, registration tag
//! and payload ref move together, after every object is written; a killed
//! `add` leaves unreferenced objects and nothing else.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::store::ObjectId;
use time::OffsetDateTime;

use crate::crypto::{self, DataKey, KeyRing, Signer, SshIdentity};
use crate::model::manifest::{self, FileEntry, Manifest, ModelCard, Sha256Digest};
use crate::model::names::{self, ModelName, Version};
use crate::model::policy::{Ability, Policy};
use crate::ops::parts::{self, Chunking, PartInput, Reusable, Splitter};
use crate::ops::progress::Progress;
use crate::ops::sync::{self, PushOutcome};
use crate::rules::ring as ring_rules;
use crate::store::{Actor, RefUpdate, MAIN_REF};
use crate::vault::{rfc3339, Vault, VaultError};

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
    /// Type, description, schemas, labels, training data, dependencies.
    pub card: ModelCard,
    pub message: Option<String>,
    pub identity: &'a SshIdentity,
    pub push: bool,
    pub now: OffsetDateTime,
    /// The largest part, in bytes; `mvault.partSize` or the default.
    pub part_size: Option<u64>,
    /// Told how encrypting and pushing go.
    pub progress: &'a dyn Progress,
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
    /// Parts whose object an earlier version already stored.
    pub reused: usize,
    /// The payload tree and its ciphertext size.
    pub payload: String,
    pub payload_bytes: u64,
    /// Whether the model's key ring was created by this version.
    pub new_key_ring: bool,
    /// The holders of the model's key ring who were no longer readers at
    /// the version's date (expired): the version gave the ring a new
    /// data-key generation sealed to the readers alone. Empty otherwise.
    pub key_rotated_for: Vec<String>,
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

/// Everything a version adds to the tree, ready to be committed on any tip.
pub(crate) struct PreparedVersion {
    pub model: ModelName,
    pub version: Version,
    pub upserts: Vec<(String, ObjectId)>,
    /// What the version does to the model's key ring.
    pub ring: RingWrite,
    /// The data key the blobs are encrypted to.
    pub data_key: String,
    pub manifest_sha256: Sha256Digest,
    pub message: String,
    pub author: String,
    /// The manifest, for a rebuild that must date it anew.
    pub manifest: Manifest,
    /// The payload tree, published under the version's payload ref.
    pub payload: ObjectId,
}

/// What a version does to its model's key ring.
#[derive(Clone)]
pub(crate) enum RingWrite {
    /// Uses the ring as it is on the tip it was built on.
    Unchanged,
    /// Creates the model's first ring.
    Created(ObjectId),
    /// Replaces the ring (whose sealed bytes were `replaces`) by one with a
    /// new generation sealed to the readers alone: some holder of the old
    /// one was no longer a reader at the version's date.
    Rotated { ring: ObjectId, replaces: Vec<u8> },
}

impl RingWrite {
    /// The ring blob the commit writes, if any.
    pub(crate) fn blob(&self) -> Option<ObjectId> {
        match self {
            RingWrite::Unchanged => None,
            RingWrite::Created(id) | RingWrite::Rotated { ring: id, .. } => Some(*id),
        }
    }
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

/// How many of the model's newest versions `add` looks at for parts to
/// reuse, besides the parent: the cost of `add` stays flat in history.
pub const REUSE_WINDOW: usize = 16;

/// Parts of the parent and of the newest versions, under the current data
/// key and present in this clone, by plaintext digest.
fn reusable_parts(
    vault: &Vault,
    tree: ObjectId,
    model: &ModelName,
    parent: Option<&Version>,
    existing: &[Version],
    key_recipient: &str,
) -> Result<BTreeMap<Sha256Digest, Reusable>, VaultError> {
    let mut candidates: Vec<&Version> = parent.into_iter().collect();
    let mut newest: Vec<&Version> = existing.iter().collect();
    newest.sort();
    candidates.extend(newest.into_iter().rev().take(REUSE_WINDOW));
    let mut out = BTreeMap::new();
    for v in candidates {
        let dir = names::version_dir(model, v);
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
        let Ok(payload) = m.payload.parse::<ObjectId>() else {
            continue;
        };
        if !vault.store.has_object(payload) {
            continue;
        }
        let entries = vault.store.tree_entries(payload)?;
        let ids: BTreeMap<String, ObjectId> = entries
            .into_iter()
            .map(|(name, id, _)| (name, id))
            .collect();
        for (digest, (size, blob_size)) in m.distinct_parts() {
            if let Some(id) = ids.get(&digest.to_hex()) {
                if vault.store.has_object(*id) {
                    out.insert(
                        digest,
                        Reusable {
                            id: *id,
                            size,
                            blob_size,
                        },
                    );
                }
            }
        }
    }
    Ok(out)
}

/// The part splitter: `--part-size`, else `mvault.partSize`, else the
/// default; `MVAULT_CHUNKING=fixed` cuts fixed-size parts (for measuring
/// the two against each other).
fn splitter(vault: &Vault, part_size: Option<u64>) -> Result<Splitter, VaultError> {
    let configured = vault
        .store
        .config_string("mvault.partSize")
        .map(|s| {
            parse_size(&s).ok_or_else(|| VaultError::Input {
                path: "mvault.partSize".into(),
                reason: format!("{s:?} is not a size (bytes, or with K, M or G)"),
            })
        })
        .transpose()?;
    let max = part_size.or(configured).unwrap_or(parts::DEFAULT_PART_SIZE);
    let chunking = match std::env::var("MVAULT_CHUNKING").as_deref() {
        Ok("fixed") => Chunking::Fixed,
        _ => Chunking::Content,
    };
    Splitter::new(max, chunking).map_err(|reason| VaultError::Input {
        path: "--part-size".into(),
        reason,
    })
}

/// A size in bytes, with an optional K, M or G suffix (powers of 1024).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 1u64 << 10),
        (i, 'm' | 'M') => (&s[..i], 1 << 20),
        (i, 'g' | 'G') => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

/// Refuse a version past the model's `max_versions`, as the hook will
/// (rule "too many versions"): the versions on main that the model's
/// believed promotion tags do not place in archived count.
pub(crate) fn check_version_cap(
    vault: &Vault,
    policy: &Policy,
    model: &ModelName,
    version: &Version,
    existing: &[Version],
) -> Result<(), VaultError> {
    let Some(cap) = policy.settings_for(model).max_versions else {
        return Ok(());
    };
    let stages = vault.believed_stages(model)?;
    let names: Vec<String> = existing.iter().map(|v| v.to_string()).collect();
    let counted = stages.counted_versions(names.iter().map(String::as_str));
    if counted < cap as usize {
        return Ok(());
    }
    Err(VaultError::TooManyVersions {
        model: model.to_string(),
        version: version.to_string(),
        cap,
        counted,
        oldest: names
            .iter()
            .find(|v| stages.stage_of(v).stage != crate::model::names::Stage::Archived)
            .cloned(),
    })
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
    check_version_cap(vault, &policy, &req.model, &req.version, &existing)?;
    if let Some(p) = &req.parent {
        if !existing.contains(p) {
            return Err(VaultError::Input {
                path: format!("--parent {p}"),
                reason: format!("parent version {}@{p} is not in this vault", req.model),
            });
        }
    }

    // The data key: the newest generation of the model's ring, or a new
    // ring. Readers are those at the commit's own date (`when`), the time
    // the hook judges the ring at: a holder who is no longer a reader then
    // (expired) is cut off going forward by a new generation.
    let when = not_before_parent(vault, tip, req.now)?;
    let ring_path = req.model.keyring_path();
    let readers: Vec<_> = policy
        .readers(&req.model, when)
        .into_iter()
        .map(|(_, k)| k.clone())
        .collect();
    let seal = |ring: &KeyRing| -> Result<ObjectId, VaultError> {
        let sealed = ring
            .seal(req.model.as_str(), &readers)
            .map_err(|e| VaultError::Decrypt {
                path: ring_path.clone(),
                reason: e.to_string(),
            })?;
        Ok(vault.store.write_blob(&sealed)?)
    };
    let mut key_rotated_for = Vec::new();
    let (ring, ring_write) = match vault.store.read_path(tree, &ring_path)? {
        Some(sealed) => {
            let mut ring =
                KeyRing::open(&sealed, req.identity).map_err(|e| VaultError::NoReadAccess {
                    model: req.model.to_string(),
                    reason: format!("your key does not open {ring_path}: {e}"),
                })?;
            key_rotated_for = ring_rules::former_readers(&sealed, &policy, &req.model, when)
                .map_err(|reason| VaultError::Decrypt {
                    path: ring_path.clone(),
                    reason,
                })?;
            if key_rotated_for.is_empty() {
                (ring, RingWrite::Unchanged)
            } else {
                ring.generations.push(DataKey::generate(&rfc3339(when)));
                let id = seal(&ring)?;
                (
                    ring,
                    RingWrite::Rotated {
                        ring: id,
                        replaces: sealed,
                    },
                )
            }
        }
        None => {
            let ring = KeyRing {
                generations: vec![DataKey::generate(&rfc3339(when))],
            };
            let id = seal(&ring)?;
            (ring, RingWrite::Created(id))
        }
    };
    let key = ring.current().clone();
    let key_recipient = key.recipient().to_string();

    // Parts an earlier version stored under the same data key.
    let reuse = reusable_parts(
        vault,
        tree,
        &req.model,
        req.parent.as_ref(),
        &existing,
        &key_recipient,
    )?;
    let splitter = splitter(vault, req.part_size)?;
    let part_inputs: Vec<PartInput<'_>> = inputs
        .iter()
        .map(|i| PartInput {
            abs: &i.abs,
            rel: &i.rel,
            size: i.size,
        })
        .collect();
    req.progress
        .begin("encrypting", inputs.iter().map(|i| i.size).sum());
    let stored = parts::store_files(
        &vault.store,
        &part_inputs,
        &key,
        &reuse,
        splitter,
        req.progress,
    );
    req.progress.end();
    let stored = stored?;
    let reused: usize = stored.iter().map(|f| f.reused).sum();
    // The payload tree: every distinct part once, named by its digest.
    let mut objects: BTreeMap<String, ObjectId> = BTreeMap::new();
    for f in &stored {
        for (p, id) in &f.parts {
            objects.entry(p.sha256.to_hex()).or_insert(*id);
        }
    }
    let upserts: Vec<(String, ObjectId)> = objects.into_iter().collect();
    let payload = vault.store.edit_tree(None, &upserts)?;
    let files: Vec<FileEntry> = inputs
        .iter()
        .zip(&stored)
        .map(|(i, f)| FileEntry {
            path: i.rel.clone(),
            size: f.size,
            sha256: f.sha256,
            parts: f.parts.iter().map(|(p, _)| *p).collect(),
        })
        .collect();

    // Dates are claims: never before the commit this one builds on (`when`).
    let mut manifest = Manifest {
        model: req.model.clone(),
        version: req.version.clone(),
        parent: req.parent.clone(),
        author: user.clone(),
        author_key: crypto::fingerprint(req.identity.public_key()),
        created: rfc3339(when),
        framework: req.framework.clone(),
        data_key: key_recipient.clone(),
        payload: payload.to_string(),
        part_size: splitter.max,
        metadata: req.metadata.clone(),
        metrics: req.metrics.clone(),
        provenance: req.provenance.clone(),
        card: req.card.clone(),
        files,
    };
    manifest.sort_files();
    let (upserts, manifest_sha256) = write_manifest(vault, &manifest, req.identity)?;
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
    match &ring_write {
        RingWrite::Created(_) => {
            message.push_str(&format!("Mvault-Key-Ring: created {key_recipient}\n"))
        }
        RingWrite::Rotated { .. } => {
            message.push_str(&format!("Mvault-Key-Ring: rotated {key_recipient}\n"))
        }
        RingWrite::Unchanged => {}
    }
    let prepared = PreparedVersion {
        model: req.model.clone(),
        version: req.version.clone(),
        upserts,
        ring: ring_write.clone(),
        data_key: key_recipient,
        manifest_sha256,
        message,
        author: user,
        manifest: manifest.clone(),
        payload,
    };
    let (commit, tag) = commit_version(vault, &prepared, tip, tree, req.identity, req.now)?;

    let pushed = if req.push {
        req.progress.begin("pushing", 0);
        let pushed = sync::push_version(vault, &prepared, tip, commit, tag, req.identity, req.now);
        req.progress.end();
        pushed?
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
        files: manifest.files.len(),
        bytes: manifest.total_size(),
        payload: payload.to_string(),
        payload_bytes: manifest.payload_size(),
        reused,
        new_key_ring: matches!(ring_write, RingWrite::Created(_)),
        key_rotated_for,
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
    if let Some(ring) = p.ring.blob() {
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
    let stale_payload = vault
        .store
        .ref_target(&names::payload_ref(&p.model, &p.version))?;
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
        RefUpdate {
            name: names::payload_ref(&p.model, &p.version),
            expected: stale_payload,
            new: Some(p.payload),
            reason: format!("register {}@{}", p.model, p.version),
        },
    ])?;
    sync::refresh_worktree(vault, tip, commit);
    Ok((commit, tag))
}
