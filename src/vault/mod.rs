//! The vault: a git repository laid out as docs/formats.md says, and the
//! read-side questions every command asks of it (which policy is in force,
//! where a version lives, what versions exist).
//!
//! Writes live in their own modules: [`crate::ops::register`] (add),
//! [`crate::ops::admin`] (init and policy changes); reads that decrypt live in
//! [`crate::ops::retrieve`].

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::store::ObjectId;
use serde::Serialize;
use time::OffsetDateTime;

use crate::crypto::{self, SignatureError};
use crate::model::manifest::{Manifest, ManifestError};
use crate::model::names::{self, ModelName, Version};
use crate::model::policy::{Policy, PolicyError, POLICY_PATH};
use crate::store::{Store, StoreError};

pub use error::VaultError;

/// What kind of failure an error is, for exit codes and hints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The user asked for something malformed or absent.
    User,
    /// The policy forbids it.
    Policy,
    /// Something does not verify: tampering or corruption.
    Integrity,
    /// A bug or an environment failure.
    Internal,
}

/// Why a tag is not believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagDistrust {
    /// Its target is not on main's first-parent history.
    NotOnMain,
    /// The version directory at its target is not the one on main's tip.
    OtherVersionDir,
    /// Its target is on main but is not the commit that added the version.
    NotTheAddingCommit,
    /// It names a version that main does not have.
    NoSuchVersionOnMain,
}

impl std::fmt::Display for TagDistrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TagDistrust::NotOnMain => "its target is not on main's first-parent history (a commit only the server vouches for)",
            TagDistrust::OtherVersionDir => "the version directory at its target is not the one on main",
            TagDistrust::NotTheAddingCommit => "its target is not the commit on main that added the version",
            TagDistrust::NoSuchVersionOnMain => "main has no such version",
        })
    }
}

/// Main's first-parent history: the only commits a client believes.
#[derive(Debug, Clone)]
pub struct MainHistory {
    /// The tip the history was read from.
    pub tip: ObjectId,
    /// Newest first.
    pub commits: Vec<ObjectId>,
    set: HashSet<ObjectId>,
}

impl MainHistory {
    /// Whether `commit` is on main's first-parent history.
    pub fn contains(&self, commit: ObjectId) -> bool {
        self.set.contains(&commit)
    }
}

/// The current time, or `MVAULT_NOW` (unix seconds) when set, so tests and
/// reproducible builds control the clock.
pub fn now() -> OffsetDateTime {
    if let Ok(s) = std::env::var("MVAULT_NOW") {
        if let Ok(secs) = s.trim().parse::<i64>() {
            if let Ok(t) = OffsetDateTime::from_unix_timestamp(secs) {
                return t;
            }
        }
    }
    OffsetDateTime::now_utc()
}

/// RFC 3339, seconds, UTC (`2026-11-22T10:00:00Z`).
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// A version as found in the repository, signatures not yet checked.
#[derive(Debug, Clone)]
pub struct VersionRecord {
    pub model: ModelName,
    pub version: Version,
    /// The commit that added the version, when its registration tag is known.
    pub commit: Option<ObjectId>,
    /// The tree the version was read from (that commit's, else main's).
    pub tree: ObjectId,
    pub manifest_text: String,
    pub manifest_sig: Vec<u8>,
    pub manifest: Manifest,
}

/// A summary of a version, for `list` and `show`.
#[derive(Debug, Clone, Serialize)]
pub struct VersionSummary {
    pub model: String,
    pub version: String,
    pub parent: Option<String>,
    pub author: String,
    pub created: String,
    pub framework: Option<String>,
    pub files: usize,
    pub size: u64,
    pub manifest_sha256: String,
    pub merkle_root: String,
    /// The card's model type, if any.
    pub model_type: Option<&'static str>,
    /// The card's labels, sorted.
    pub labels: Vec<String>,
}

/// An opened vault.
pub struct Vault {
    pub store: Store,
    /// Main's history, read once per tip.
    history: Mutex<Option<Arc<MainHistory>>>,
}

impl Vault {
    /// Open the vault at or above `path`.
    pub fn open(path: &Path) -> Result<Self, VaultError> {
        Ok(Vault {
            store: Store::open(path)?,
            history: Mutex::new(None),
        })
    }

    /// Main's first-parent history at its current tip.
    pub fn main_history(&self) -> Result<Arc<MainHistory>, VaultError> {
        let (tip, _) = self.main()?;
        let mut cache = self.history.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = cache.as_ref().filter(|h| h.tip == tip) {
            return Ok(h.clone());
        }
        // The replayed main's index, when main has not moved since: no walk.
        if let Some(index) = main_index::verified_index(&self.store) {
            let commits: Vec<ObjectId> = index.newest_first().collect();
            let set = commits.iter().copied().collect();
            let h = Arc::new(MainHistory { tip, commits, set });
            *cache = Some(h.clone());
            return Ok(h);
        }
        let mut commits = Vec::new();
        let mut at = Some(tip);
        while let Some(c) = at {
            commits.push(c);
            at = self.store.commit_parents(c)?.first().copied();
        }
        let set = commits.iter().copied().collect();
        let h = Arc::new(MainHistory { tip, commits, set });
        *cache = Some(h.clone());
        Ok(h)
    }

    /// The tip and tree of `main`.
    pub fn main(&self) -> Result<(ObjectId, ObjectId), VaultError> {
        let tip = self.store.main_tip()?.ok_or(VaultError::NotAVault)?;
        Ok((tip, self.store.commit_tree(tip)?))
    }

    /// The policy in `tree`.
    pub fn policy_at(&self, tree: ObjectId) -> Result<Policy, VaultError> {
        let bytes = self
            .store
            .read_path(tree, POLICY_PATH)?
            .ok_or(VaultError::NotAVault)?;
        let text = String::from_utf8(bytes).map_err(|_| VaultError::Policy {
            path: POLICY_PATH.into(),
            source: PolicyError::Syntax {
                line: 0,
                column: 0,
                message: "not UTF-8".into(),
            },
        })?;
        Policy::parse(&text).map_err(|source| VaultError::Policy {
            path: POLICY_PATH.into(),
            source,
        })
    }

    /// The policy on `main`.
    pub fn policy(&self) -> Result<Policy, VaultError> {
        let (_, tree) = self.main()?;
        self.policy_at(tree)
    }

    /// The versions of `model` on `main`, oldest first.
    pub fn versions_of(
        &self,
        tree: ObjectId,
        model: &ModelName,
    ) -> Result<Vec<Version>, VaultError> {
        let mut out = Vec::new();
        for e in self.store.list_dir(tree, &model.tree_dir())? {
            if !e.is_tree {
                continue;
            }
            if let Ok(v) = Version::parse(&e.name) {
                let dir = names::version_dir(model, &v);
                if self
                    .store
                    .entry(tree, &format!("{dir}/manifest.toml"))?
                    .is_some()
                {
                    out.push(v);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Every model on `main` with its versions.
    pub fn models(&self, tree: ObjectId) -> Result<BTreeMap<ModelName, Vec<Version>>, VaultError> {
        let mut out = BTreeMap::new();
        let mut stack = vec![String::new()];
        while let Some(prefix) = stack.pop() {
            let dir = if prefix.is_empty() {
                "models".to_owned()
            } else {
                format!("models/{prefix}")
            };
            for e in self.store.list_dir(tree, &dir)? {
                if !e.is_tree {
                    continue;
                }
                let name = if prefix.is_empty() {
                    e.name.clone()
                } else {
                    format!("{prefix}/{}", e.name)
                };
                let Ok(model) = ModelName::parse(&name) else {
                    continue;
                };
                let versions = self.versions_of(tree, &model)?;
                if !versions.is_empty() {
                    out.insert(model.clone(), versions);
                }
                if name.matches('/').count() < 3 {
                    stack.push(name);
                }
            }
        }
        Ok(out)
    }

    /// The commit on main that added `model@version`, checked against its
    /// registration tag when the clone has one. Stops a server that hands
    /// out a tag on a history it wrote (its own root policy and keys):
    /// 1. the version is on main's tip;
    /// 2. the tag's target is on main's first-parent history;
    /// 3. the version directory there is the same tree entry as on the tip;
    /// 4. the target's parent does not have it (the target added it).
    ///
    /// Without a tag, the commit is found by walking main back.
    pub fn registering_commit(
        &self,
        model: &ModelName,
        version: &Version,
    ) -> Result<ObjectId, VaultError> {
        let history = self.main_history()?;
        // A version is its manifest, written once (a purge adds a file
        // beside it): the commit that added the manifest registered it.
        let dir = format!("{}/manifest.toml", names::version_dir(model, version));
        let tag = names::registration_tag(model, version);
        let tag_target = self.store.ref_target(&format!("refs/tags/{tag}"))?;
        let on_tip = self
            .store
            .entry(self.store.commit_tree(history.tip)?, &dir)?;
        match (tag_target, on_tip) {
            (None, None) => Err(VaultError::NoSuchVersion {
                model: model.to_string(),
                version: version.to_string(),
            }),
            (None, Some(on_tip)) => self.adding_commit(&history, &dir, on_tip),
            (Some(t), on_tip) => self.check_registration_tag(&history, &tag, t, &dir, on_tip),
        }
    }

    /// Steps 1 to 4 of [`Vault::registering_commit`] for a tag the clone has.
    fn check_registration_tag(
        &self,
        history: &MainHistory,
        tag: &str,
        tag_id: ObjectId,
        dir: &str,
        on_tip: Option<(ObjectId, crate::store::EntryKind)>,
    ) -> Result<ObjectId, VaultError> {
        let target = self.peel_to_commit(tag_id)?;
        let distrust = |reason| VaultError::UntrustedTag {
            tag: tag.to_owned(),
            target: target.to_string(),
            reason,
        };
        // 2.
        if !history.contains(target) {
            return Err(distrust(TagDistrust::NotOnMain));
        }
        // 1.
        let Some(on_tip) = on_tip else {
            return Err(distrust(TagDistrust::NoSuchVersionOnMain));
        };
        // 3.
        if self.store.entry(self.store.commit_tree(target)?, dir)? != Some(on_tip) {
            return Err(distrust(TagDistrust::OtherVersionDir));
        }
        // 4.
        if let Some(parent) = self.store.commit_parents(target)?.first() {
            if self.store.entry(self.store.commit_tree(*parent)?, dir)? == Some(on_tip) {
                return Err(distrust(TagDistrust::NotTheAddingCommit));
            }
        }
        Ok(target)
    }

    /// The oldest commit of the run, from the tip back, whose `dir` is the
    /// tip's entry: the one that added it (a version is never modified).
    fn adding_commit(
        &self,
        history: &MainHistory,
        dir: &str,
        on_tip: (ObjectId, crate::store::EntryKind),
    ) -> Result<ObjectId, VaultError> {
        let mut adding = history.tip;
        for c in history.commits.iter().skip(1) {
            if self.store.entry(self.store.commit_tree(*c)?, dir)? != Some(on_tip) {
                break;
            }
            adding = *c;
        }
        Ok(adding)
    }

    /// The promotions of `model`, refused when one points off main's
    /// first-parent history: a stage only the server vouches for.
    pub fn believed_stages(
        &self,
        model: &ModelName,
    ) -> Result<crate::rules::stages::ModelStages, VaultError> {
        let history = self.main_history()?;
        use crate::model::promotion::PromotionError;
        use stages::ReadPromotionError;
        let stages = stages::read_stages(&self.store, model).map_err(|e| match e {
            ReadPromotionError::Store(s) => VaultError::Store(s),
            ReadPromotionError::Invalid(PromotionError::Malformed { name, reason }) => {
                VaultError::Input { path: name, reason }
            }
        })?;
        for p in &stages.promotions {
            let target = self.peel_to_commit(p.target)?;
            if !history.contains(target) {
                return Err(VaultError::UntrustedTag {
                    tag: p.name.clone(),
                    target: target.to_string(),
                    reason: TagDistrust::NotOnMain,
                });
            }
        }
        Ok(stages)
    }

    /// Read a version's record from the commit on main that added it (see
    /// [`Vault::registering_commit`]).
    pub fn record(
        &self,
        model: &ModelName,
        version: &Version,
    ) -> Result<VersionRecord, VaultError> {
        let commit = self.registering_commit(model, version)?;
        let tree = self.store.commit_tree(commit)?;
        let dir = names::version_dir(model, version);
        let not_found = || VaultError::NoSuchVersion {
            model: model.to_string(),
            version: version.to_string(),
        };
        let manifest_bytes = self
            .store
            .read_path(tree, &format!("{dir}/manifest.toml"))?
            .ok_or_else(not_found)?;
        let manifest_sig = self
            .store
            .read_path(tree, &format!("{dir}/manifest.sig"))?
            .ok_or_else(|| VaultError::Input {
                path: format!("{dir}/manifest.sig"),
                reason: "missing: every manifest is signed".into(),
            })?;
        let manifest_path = format!("{dir}/manifest.toml");
        let manifest_text =
            String::from_utf8(manifest_bytes).map_err(|_| VaultError::Manifest {
                path: manifest_path.clone(),
                source: ManifestError::NotCanonical,
            })?;
        let manifest = Manifest::parse(&manifest_text).map_err(|source| VaultError::Manifest {
            path: manifest_path.clone(),
            source,
        })?;
        if &manifest.model != model || &manifest.version != version {
            return Err(VaultError::Mismatch {
                path: manifest_path,
                check: "model and version",
                expected: format!("{model}@{version}"),
                found: format!("{}@{}", manifest.model, manifest.version),
            });
        }
        Ok(VersionRecord {
            model: model.clone(),
            version: version.clone(),
            commit: Some(commit),
            tree,
            manifest_text,
            manifest_sig,
            manifest,
        })
    }

    /// Peel a tag object (or commit) id to a commit id.
    pub fn peel_to_commit(&self, mut id: ObjectId) -> Result<ObjectId, VaultError> {
        for _ in 0..8 {
            let (kind, data) = self.store.object(id)?;
            match kind {
                crate::store::ObjectKind::Commit => return Ok(id),
                crate::store::ObjectKind::Tag => {
                    id = crate::store::objects::parse_tag(&data)?.target;
                }
                _ => break,
            }
        }
        Err(StoreError::Git(format!("{id} does not lead to a commit")).into())
    }

    /// Check a record's manifest signature: valid, and made by a user who
    /// could register the model under the policy of the record's tree.
    pub fn verify_manifest_signature(&self, rec: &VersionRecord) -> Result<String, VaultError> {
        let what = format!(
            "{}/manifest.sig",
            names::version_dir(&rec.model, &rec.version)
        );
        let key = crypto::verify_signature(
            &rec.manifest_sig,
            crypto::MANIFEST_NAMESPACE,
            rec.manifest_text.as_bytes(),
        )
        .map_err(|source| VaultError::Signature {
            what: what.clone(),
            source,
        })?;
        // The policy in force before the version was added: the parent's.
        let policy_tree = match rec.commit {
            Some(c) => match self.store.commit_parents(c)?.first() {
                Some(p) => self.store.commit_tree(*p)?,
                None => rec.tree,
            },
            None => rec.tree,
        };
        let policy = self.policy_at(policy_tree)?;
        let signer = crypto::fingerprint(&key);
        let Some(user) = policy.user_of_key(&key) else {
            return Err(VaultError::Signer {
                what,
                signer,
                reason: "is not in the policy".into(),
            });
        };
        if user.name != rec.manifest.author {
            return Err(VaultError::Signer {
                what,
                signer: user.name.clone(),
                reason: format!("is not the manifest's author {}", rec.manifest.author),
            });
        }
        let at = time::OffsetDateTime::parse(
            &rec.manifest.created,
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap_or_else(|_| now());
        policy
            .check(
                &user.name,
                &rec.model,
                crate::model::policy::Ability::Register,
                at,
            )
            .map_err(|d| VaultError::Signer {
                what,
                signer: user.name.clone(),
                reason: format!("could not register it: {d}"),
            })?;
        Ok(user.name.clone())
    }

    /// A summary of a record.
    pub fn summary(rec: &VersionRecord) -> VersionSummary {
        let m = &rec.manifest;
        VersionSummary {
            model: m.model.to_string(),
            version: m.version.to_string(),
            parent: m.parent.as_ref().map(|p| p.to_string()),
            author: m.author.clone(),
            created: m.created.clone(),
            framework: m.framework.clone(),
            files: m.files.len(),
            size: m.total_size(),
            manifest_sha256: crate::model::manifest::Sha256Digest::of(rec.manifest_text.as_bytes())
                .to_hex(),
            merkle_root: crate::model::manifest::merkle_root(&m.files).to_hex(),
            model_type: m.card.model_type.map(|t| t.as_str()),
            labels: m.card.labels.iter().cloned().collect(),
        }
    }

    /// Every version on `main`, summarised.
    pub fn list(&self) -> Result<Vec<VersionSummary>, VaultError> {
        let (_, tree) = self.main()?;
        let mut out = Vec::new();
        for (model, versions) in self.models(tree)? {
            for v in versions {
                out.push(Self::summary(&self.record(&model, &v)?));
            }
        }
        Ok(out)
    }
}

pub use crate::store::objects::split_tag_signature;

impl Vault {
    /// Check a commit's SSH signature and return the policy user who made
    /// it, judged by the policy in force before the commit (its parent's;
    /// the first commit's own).
    pub fn verify_commit_signature(&self, commit: ObjectId) -> Result<String, VaultError> {
        let what = format!("commit {commit}");
        let (_, data) = self.store.object(commit)?;
        let (sig, payload) = crate::store::objects::parse_commit(&data)?
            .signature
            .ok_or_else(|| VaultError::Signature {
                what: what.clone(),
                source: SignatureError::Malformed("the commit is not signed".into()),
            })?;
        let key =
            crypto::verify_signature(&sig, crypto::GIT_NAMESPACE, &payload).map_err(|source| {
                VaultError::Signature {
                    what: what.clone(),
                    source,
                }
            })?;
        let parents = self.store.commit_parents(commit)?;
        let policy_tree = match parents.first() {
            Some(p) => self.store.commit_tree(*p)?,
            None => self.store.commit_tree(commit)?,
        };
        let policy = self.policy_at(policy_tree)?;
        policy
            .user_of_key(&key)
            .map(|u| u.name.clone())
            .ok_or_else(|| VaultError::Signer {
                what,
                signer: crypto::fingerprint(&key),
                reason: "is not in the policy in force".into(),
            })
    }
}

pub mod approvals;
mod deployments;
mod error;
pub mod main_index;
pub mod stages;
