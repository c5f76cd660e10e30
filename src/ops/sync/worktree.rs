//! Bringing a clone's index and work tree along after mvault moved `main`.

use crate::store::{ObjectId, MAIN_REF};
use crate::vault::Vault;

/// After `main` moved from `old` to `new` in a non-bare clone whose HEAD is
/// `main`, bring the index and work tree along (sparse patterns keep blobs
/// out of the work tree). Failures are left for `git status` to show.
///
/// The usual move adds a few files (a version's manifest and signature, a
/// new key ring): those are staged and checked out alone, at a cost that
/// does not follow the size of the record. Anything else (a file changed
/// or removed, many files, a path already in the work tree) goes through
/// `git read-tree -m -u`, which compares every entry of both trees and
/// refuses to overwrite local changes.
pub fn refresh_worktree(vault: &Vault, old: ObjectId, new: ObjectId) {
    // A clone made with --no-checkout has no index: leave it without a
    // work tree rather than check every blob out.
    let Some(work) = vault.store.work_dir() else {
        return;
    };
    if !vault.store.git_dir().join("index").exists() {
        return;
    }
    let Ok(head) = vault.store.git(&["symbolic-ref", "-q", "HEAD"]) else {
        return;
    };
    if head.trim() != MAIN_REF {
        return;
    }
    if add_files(vault, work, old, new).is_none() {
        let _ = vault
            .store
            .git(&["read-tree", "-m", "-u", &old.to_string(), &new.to_string()]);
    }
}

/// How many added files [`refresh_worktree`] stages one by one.
const FEW_FILES: usize = 64;

/// Stage and check out the files `new` adds to `old`, when that is all it
/// does and none of them is in the work tree already; `None` otherwise
/// (nothing done).
fn add_files(vault: &Vault, work: &std::path::Path, old: ObjectId, new: ObjectId) -> Option<()> {
    use crate::store::EntryKind;
    let (old_tree, new_tree) = (
        vault.store.commit_tree(old).ok()?,
        vault.store.commit_tree(new).ok()?,
    );
    let changes = vault
        .store
        .file_changes(old_tree, new_tree, FEW_FILES)
        .ok()??;
    let mut info = String::new();
    let mut paths = Vec::new();
    for c in &changes {
        let (None, Some((id, kind))) = (c.old, c.new) else {
            return None;
        };
        let mode = match kind {
            EntryKind::Blob => "100644",
            EntryKind::BlobExecutable => "100755",
            _ => return None,
        };
        // Names mvault writes are plain ASCII; anything else is left to
        // read-tree (and to its quoting).
        let plain = |b: u8| b.is_ascii_graphic() && b != b'\\' && b != b'"';
        if !c.path.bytes().all(plain) || std::fs::symlink_metadata(work.join(&c.path)).is_ok() {
            return None;
        }
        info.push_str(&format!("{mode} {id}\t{}\n", c.path));
        paths.push(c.path.as_str());
    }
    if paths.is_empty() {
        return Some(());
    }
    vault
        .store
        .git_with_input(&["update-index", "--add", "--index-info"], info.as_bytes())
        .ok()?;
    // Without -f: an existing file is never overwritten.
    let mut args = vec!["checkout-index", "--"];
    args.extend(paths);
    let _ = vault.store.git(&args);
    Some(())
}
