//! The files that differ between two trees, found by descending only into
//! subtrees whose ids differ: the cost follows the change and the depth of
//! its paths, not the size of the trees.

use std::collections::BTreeMap;

use super::{EntryKind, ObjectId, Store, StoreError};

/// A file (a non-tree entry) on one side of a change.
pub type Side = Option<(ObjectId, EntryKind)>;

/// One path that differs: its entry before and after (`None`: absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub path: String,
    pub old: Side,
    pub new: Side,
}

impl Store {
    /// The files that differ between trees `old` and `new`, in path order;
    /// `None` when there are more than `limit`.
    pub fn file_changes(
        &self,
        old: ObjectId,
        new: ObjectId,
        limit: usize,
    ) -> Result<Option<Vec<FileChange>>, StoreError> {
        let mut out = Vec::new();
        if self.diff_into(Some(old), Some(new), "", limit, &mut out)? {
            Ok(Some(out))
        } else {
            Ok(None)
        }
    }

    /// Adds the changes under `prefix`; false once past `limit`.
    fn diff_into(
        &self,
        old: Option<ObjectId>,
        new: Option<ObjectId>,
        prefix: &str,
        limit: usize,
        out: &mut Vec<FileChange>,
    ) -> Result<bool, StoreError> {
        if old == new {
            return Ok(true);
        }
        let entries =
            |t: Option<ObjectId>| -> Result<BTreeMap<String, (ObjectId, EntryKind)>, StoreError> {
                Ok(match t {
                    Some(t) => self
                        .tree_entries(t)?
                        .into_iter()
                        .map(|(name, id, kind)| (name, (id, kind)))
                        .collect(),
                    None => BTreeMap::new(),
                })
            };
        let (a, b) = (entries(old)?, entries(new)?);
        let mut names: Vec<&String> = a.keys().chain(b.keys()).collect();
        names.sort();
        names.dedup();
        for name in names {
            let (x, y) = (a.get(name).copied(), b.get(name).copied());
            if x == y {
                continue;
            }
            let path = format!("{prefix}{name}");
            let tree = |s: Option<(ObjectId, EntryKind)>| s.filter(|(_, k)| *k == EntryKind::Tree);
            let file = |s: Option<(ObjectId, EntryKind)>| s.filter(|(_, k)| *k != EntryKind::Tree);
            let (tx, ty) = (tree(x), tree(y));
            if tx.is_some() || ty.is_some() {
                let sub = format!("{path}/");
                if !self.diff_into(tx.map(|t| t.0), ty.map(|t| t.0), &sub, limit, out)? {
                    return Ok(false);
                }
            }
            let (fx, fy) = (file(x), file(y));
            if fx.is_some() || fy.is_some() {
                out.push(FileChange {
                    path,
                    old: fx,
                    new: fy,
                });
            }
            if out.len() > limit {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
