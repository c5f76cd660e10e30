//! The shape of a tree change: which paths a commit adds, changes or
//! removes, read only where subtree ids differ (the cost follows the
//! change, not the tree), and every new tree well-formed.

use std::collections::{BTreeMap, BTreeSet};

use super::source::{self, ObjectSource};
use super::{escape, Refusal, Rule};
use crate::store::objects::{EntryKind, ObjectId};
use crate::store::StoreError;

/// A changed path between two trees.
#[derive(Debug, Clone)]
pub struct Change {
    pub path: String,
    pub old: Option<(ObjectId, EntryKind)>,
    pub new: Option<(ObjectId, EntryKind)>,
}

/// Why a tree change cannot be judged.
#[derive(Debug)]
pub enum DiffError {
    Store(StoreError),
    /// A tree git would refuse or read differently from mvault.
    BadTree(String),
    /// An entry that is not a regular file or a directory.
    BadMode(String),
}

impl From<StoreError> for DiffError {
    fn from(e: StoreError) -> Self {
        DiffError::Store(e)
    }
}

impl DiffError {
    /// The refusal this error stands for, about `subject`.
    pub fn refusal(self, subject: &str, commit: ObjectId) -> Refusal {
        match self {
            DiffError::Store(e) => Refusal::internal(subject, e),
            DiffError::BadTree(why) => Refusal::new(
                Rule::MalformedTree,
                subject,
                format!("commit {commit}: {why}"),
                "build trees with mvault or stock git, which never write such entries",
            ),
            DiffError::BadMode(why) => Refusal::new(
                Rule::BadFileMode,
                subject,
                format!("commit {commit}: {why}"),
                "register versions with mvault add; a version directory is written once",
            ),
        }
    }
}

/// Why a tree entry name is not one every git and file system reads the
/// same way, if it is not.
pub fn bad_entry_name(name: &[u8]) -> Option<String> {
    let Ok(text) = std::str::from_utf8(name) else {
        return Some("a name that is not UTF-8".into());
    };
    if text.is_empty() || text == "." || text == ".." {
        return Some("an empty, '.' or '..' name".into());
    }
    if text.contains('/') || text.contains('\0') {
        return Some("a name containing '/' or NUL".into());
    }
    crate::model::manifest::validate_component(text)
        .err()
        .map(str::to_owned)
}

type Entries = BTreeMap<String, (ObjectId, EntryKind)>;

fn read_new_tree(src: &dyn ObjectSource, t: ObjectId, prefix: &str) -> Result<Entries, DiffError> {
    let mut b = Entries::new();
    for item in source::tree_items(src, t)? {
        let shown = escape(&String::from_utf8_lossy(&item.name));
        let at = if prefix.is_empty() {
            shown.clone()
        } else {
            format!("{prefix}/{shown}")
        };
        if let Some(why) = bad_entry_name(&item.name) {
            return Err(DiffError::BadTree(format!("{at}: {why}")));
        }
        if item.kind != EntryKind::Blob && item.kind != EntryKind::Tree {
            return Err(DiffError::BadMode(format!(
                "{at} is a {:?}; only regular files and directories are stored",
                item.kind
            )));
        }
        let name = String::from_utf8(item.name).expect("checked UTF-8");
        if b.insert(name, (item.id, item.kind)).is_some() {
            return Err(DiffError::BadTree(format!(
                "{at}: the name appears twice in one tree"
            )));
        }
    }
    Ok(b)
}

/// The paths that differ between two trees, descending only into subtrees
/// whose ids differ. Every new tree it reads must be well-formed: no
/// duplicate or reserved names, only regular files and directories (a
/// duplicate entry would let git and mvault see different contents under
/// one path).
pub fn diff_trees(
    src: &dyn ObjectSource,
    old: Option<ObjectId>,
    new: Option<ObjectId>,
    prefix: &str,
    out: &mut Vec<Change>,
) -> Result<(), DiffError> {
    if old == new {
        return Ok(());
    }
    let a: Entries = match old {
        None => Entries::new(),
        Some(t) => source::tree_items(src, t)?
            .into_iter()
            .map(|i| {
                (
                    String::from_utf8_lossy(&i.name).into_owned(),
                    (i.id, i.kind),
                )
            })
            .collect(),
    };
    let b = match new {
        None => Entries::new(),
        Some(t) => read_new_tree(src, t, prefix)?,
    };
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for name in names {
        let (oa, ob) = (a.get(name).copied(), b.get(name).copied());
        if oa == ob {
            continue;
        }
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let is_tree =
            |e: Option<(ObjectId, EntryKind)>| e.is_some_and(|(_, k)| k == EntryKind::Tree);
        if is_tree(oa) || is_tree(ob) {
            let ta = oa.filter(|(_, k)| *k == EntryKind::Tree).map(|(id, _)| id);
            let tb = ob.filter(|(_, k)| *k == EntryKind::Tree).map(|(id, _)| id);
            // A file replaced by a directory or the reverse: report the file side too.
            if oa.is_some() && !is_tree(oa) {
                out.push(Change {
                    path: path.clone(),
                    old: oa,
                    new: None,
                });
            }
            if ob.is_some() && !is_tree(ob) {
                out.push(Change {
                    path: path.clone(),
                    old: None,
                    new: ob,
                });
            }
            diff_trees(src, ta, tb, &path, out)?;
        } else {
            out.push(Change {
                path,
                old: oa,
                new: ob,
            });
        }
    }
    Ok(())
}

/// Every tree below `root` well-formed (for a first commit, which has no
/// parent to diff against).
pub fn check_whole_tree(src: &dyn ObjectSource, root: ObjectId) -> Result<(), DiffError> {
    let mut sink = Vec::new();
    diff_trees(src, None, Some(root), "", &mut sink)
}
