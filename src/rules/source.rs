//! How objects reach the rules: a small trait the store implements, and
//! the tree walks every rule needs, written once on top of it.

use crate::model::policy::{Policy, POLICY_PATH};
use crate::store::objects::{
    self, CommitObject, EntryKind, ObjectId, ObjectKind, TagObject, TreeItem,
};
use crate::store::{Store, StoreError};

/// The objects and refs of a repository, as a driver lets the rules see
/// them (the hook adds the refs a push creates; tests use memory).
pub trait ObjectSource {
    /// An object's kind and bytes.
    fn object(&self, id: ObjectId) -> Result<(ObjectKind, Vec<u8>), StoreError>;
    /// An object's size, from its header.
    fn object_size(&self, id: ObjectId) -> Result<u64, StoreError>;
    /// The first `max` bytes of a blob, without reading the rest.
    fn blob_prefix(&self, id: ObjectId, max: usize) -> Result<Vec<u8>, StoreError>;
    /// Whether the object exists.
    fn has_object(&self, id: ObjectId) -> bool;
    /// What ref `name` points at.
    fn ref_target(&self, name: &str) -> Result<Option<ObjectId>, StoreError>;
}

impl ObjectSource for Store {
    fn object(&self, id: ObjectId) -> Result<(ObjectKind, Vec<u8>), StoreError> {
        Store::object(self, id)
    }
    fn object_size(&self, id: ObjectId) -> Result<u64, StoreError> {
        Store::object_size(self, id)
    }
    fn blob_prefix(&self, id: ObjectId, max: usize) -> Result<Vec<u8>, StoreError> {
        Store::blob_prefix(self, id, max)
    }
    fn has_object(&self, id: ObjectId) -> bool {
        Store::has_object(self, id)
    }
    fn ref_target(&self, name: &str) -> Result<Option<ObjectId>, StoreError> {
        Store::ref_target(self, name)
    }
}

fn expect_kind(
    src: &dyn ObjectSource,
    id: ObjectId,
    want: ObjectKind,
) -> Result<Vec<u8>, StoreError> {
    let (kind, data) = src.object(id)?;
    if kind != want {
        return Err(StoreError::Git(format!("{id} is a {kind}, not a {want}")));
    }
    Ok(data)
}

/// Commit `id`, parsed.
pub fn commit(src: &dyn ObjectSource, id: ObjectId) -> Result<CommitObject, StoreError> {
    objects::parse_commit(&expect_kind(src, id, ObjectKind::Commit)?)
}

/// Tag `id`, parsed, with its kind: `Ok(None)` when `id` is not a tag.
pub fn tag(
    src: &dyn ObjectSource,
    id: ObjectId,
) -> Result<Option<(TagObject, Vec<u8>)>, StoreError> {
    let (kind, data) = src.object(id)?;
    if kind != ObjectKind::Tag {
        return Ok(None);
    }
    Ok(Some((objects::parse_tag(&data)?, data)))
}

/// The entries of tree `id`, as stored.
pub fn tree_items(src: &dyn ObjectSource, id: ObjectId) -> Result<Vec<TreeItem>, StoreError> {
    objects::parse_tree(&expect_kind(src, id, ObjectKind::Tree)?)
}

/// The entry at `path` (`/`-separated) below tree `root`. The first entry
/// of a name wins, as git's lookup does; the tree shape rules refuse
/// duplicates before anything relies on this.
pub fn entry(
    src: &dyn ObjectSource,
    root: ObjectId,
    path: &str,
) -> Result<Option<(ObjectId, EntryKind)>, StoreError> {
    let mut at = (root, EntryKind::Tree);
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        if at.1 != EntryKind::Tree {
            return Ok(None);
        }
        match tree_items(src, at.0)?
            .into_iter()
            .find(|i| i.name == seg.as_bytes())
        {
            Some(i) => at = (i.id, i.kind),
            None => return Ok(None),
        }
    }
    Ok(Some(at))
}

/// The bytes of the blob at `path` below `root`, if there is one.
pub fn read_path(
    src: &dyn ObjectSource,
    root: ObjectId,
    path: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    match entry(src, root, path)? {
        Some((id, EntryKind::Blob)) => Ok(Some(expect_kind(src, id, ObjectKind::Blob)?)),
        _ => Ok(None),
    }
}

/// Why the policy of a commit cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PolicyAtError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The commit has no policy file.
    #[error("commit {0} has no {POLICY_PATH}")]
    Missing(ObjectId),
    /// The policy file does not parse.
    #[error("{POLICY_PATH} at {commit}: {reason}")]
    Invalid { commit: ObjectId, reason: String },
}

/// The policy in commit `id`'s tree.
pub fn policy_at(src: &dyn ObjectSource, id: ObjectId) -> Result<Policy, PolicyAtError> {
    let c = commit(src, id)?;
    let bytes = read_path(src, c.tree, POLICY_PATH)?.ok_or(PolicyAtError::Missing(id))?;
    let text = String::from_utf8(bytes).map_err(|_| PolicyAtError::Invalid {
        commit: id,
        reason: "not UTF-8".into(),
    })?;
    Policy::parse(&text).map_err(|e| PolicyAtError::Invalid {
        commit: id,
        reason: e.to_string(),
    })
}

/// The policy file's blob id in commit `id`'s tree: two commits with the
/// same id have the same policy.
pub fn policy_blob_at(
    src: &dyn ObjectSource,
    id: ObjectId,
) -> Result<Option<ObjectId>, StoreError> {
    let c = commit(src, id)?;
    Ok(entry(src, c.tree, POLICY_PATH)?.map(|(b, _)| b))
}

/// The versions of `model` in tree `root`: the directories under
/// `models/<model>/` named by a version and holding a `manifest.toml`. It
/// reads the model's directory and one entry per version, nothing else.
pub fn versions_in(
    src: &dyn ObjectSource,
    root: ObjectId,
    model: &crate::model::names::ModelName,
) -> Result<Vec<String>, StoreError> {
    let Some((dir, EntryKind::Tree)) = entry(src, root, &model.tree_dir())? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for item in tree_items(src, dir)? {
        if item.kind != EntryKind::Tree {
            continue;
        }
        let Ok(name) = std::str::from_utf8(&item.name) else {
            continue;
        };
        if crate::model::names::Version::parse(name).is_err() {
            continue;
        }
        let has_manifest = tree_items(src, item.id)?
            .iter()
            .any(|i| i.name == b"manifest.toml" && i.kind == EntryKind::Blob);
        if has_manifest {
            out.push(name.to_owned());
        }
    }
    Ok(out)
}
