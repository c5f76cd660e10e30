//! The first-parent history of `main` as far as this clone has replayed it
//! from the root keys (`refs/mvault/verified-main`), kept in a file beside
//! the refs so that no command walks all of main again: which commits are
//! on main, the first one, and when the policy changed after a commit are
//! then answered in memory, at a cost that does not follow the length of
//! the history.
//!
//! The file is a cache of what the replay already judged, written by
//! mvault alone (a server writes refs and objects, never files in the git
//! directory). It is believed only when its last commit is the one
//! `refs/mvault/verified-main` names; otherwise, and when it does not
//! parse, it is rebuilt by walking main from that commit.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;

use crate::model::trailers::{trailer, trailers};
use crate::store::objects::{parse_commit, ObjectId};
use crate::store::{Store, StoreError};

/// The local ref that remembers how far this clone has replayed `main`.
pub const VERIFIED_REF: &str = "refs/mvault/verified-main";

/// Where the index lives, inside the git directory.
const INDEX_FILE: &str = "mvault/verified-main.idx";

/// First line of the file: its format.
const HEADER: &str = "mvault verified main v1";

/// One commit of main.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexedCommit {
    pub id: ObjectId,
    /// The committer time, when the commit changes the policy.
    pub policy_time: Option<i64>,
}

/// main's first-parent history, oldest first, up to a replayed tip.
#[derive(Debug, Clone, Default)]
pub struct MainIndex {
    commits: Vec<IndexedCommit>,
    position: HashMap<ObjectId, usize>,
}

impl MainIndex {
    /// The newest commit.
    pub fn tip(&self) -> Option<ObjectId> {
        self.commits.last().map(|c| c.id)
    }

    /// The first commit.
    pub fn root(&self) -> Option<ObjectId> {
        self.commits.first().map(|c| c.id)
    }

    /// Whether `commit` is on main's first-parent history (up to the tip).
    pub fn contains(&self, commit: ObjectId) -> bool {
        self.position.contains_key(&commit)
    }

    /// The commits, newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = ObjectId> + '_ {
        self.commits.iter().rev().map(|c| c.id)
    }

    /// The time of the first policy change after `commit`; `None` when
    /// `commit` is not on this history.
    pub fn policy_change_after(&self, commit: ObjectId) -> Option<Option<i64>> {
        let at = *self.position.get(&commit)?;
        Some(self.commits[at + 1..].iter().find_map(|c| c.policy_time))
    }

    /// Append commits (oldest first), each the child of the tip.
    pub fn extend(&mut self, new: impl IntoIterator<Item = IndexedCommit>) {
        for c in new {
            self.position.insert(c.id, self.commits.len());
            self.commits.push(c);
        }
    }

    /// The index of `tip`, when the file holds exactly main up to it.
    pub fn load(store: &Store, tip: ObjectId) -> Option<MainIndex> {
        let text = std::fs::read_to_string(path(store)).ok()?;
        let mut lines = text.lines();
        if lines.next()? != HEADER {
            return None;
        }
        let mut index = MainIndex::default();
        for line in lines {
            let (id, time) = match line.split_once(' ') {
                Some((id, t)) => (id, Some(t.parse::<i64>().ok()?)),
                None => (line, None),
            };
            let id = ObjectId::from_hex(id.as_bytes()).ok()?;
            if index.position.contains_key(&id) {
                return None;
            }
            index.extend([IndexedCommit {
                id,
                policy_time: time,
            }]);
        }
        (index.tip() == Some(tip)).then_some(index)
    }

    /// The index of `tip` from the file, else rebuilt by walking main's
    /// first parents from `tip` (and saved). `tip` must be a commit the
    /// replay has judged, with all its history.
    pub fn load_or_rebuild(store: &Store, tip: ObjectId) -> Result<MainIndex, StoreError> {
        if let Some(index) = MainIndex::load(store, tip) {
            return Ok(index);
        }
        let mut walked = Vec::new();
        let mut at = Some(tip);
        while let Some(id) = at {
            let (_, data) = store.object(id)?;
            let c = parse_commit(&data)?;
            walked.push(indexed(id, &c.message, c.committer.time));
            at = c.parents.first().copied();
        }
        walked.reverse();
        let mut index = MainIndex::default();
        index.extend(walked);
        // A cache: failing to keep it costs a walk next time.
        let _ = index.save(store);
        Ok(index)
    }

    /// Write the file (a new file renamed over the old one).
    pub fn save(&self, store: &Store) -> std::io::Result<()> {
        let path = path(store);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut text = String::with_capacity(16 + self.commits.len() * 42);
        text.push_str(HEADER);
        text.push('\n');
        for c in &self.commits {
            text.push_str(&c.id.to_string());
            if let Some(t) = c.policy_time {
                text.push_str(&format!(" {t}"));
            }
            text.push('\n');
        }
        let tmp = path.with_extension(format!("idx.{}", std::process::id()));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        drop(f);
        std::fs::rename(&tmp, &path)
    }
}

/// The index of main up to its tip, when this clone has replayed all of
/// it (`verify::replay::verify_main` ran since main last moved).
pub fn verified_index(store: &Store) -> Option<MainIndex> {
    let tip = store.main_tip().ok()??;
    if store.ref_target(VERIFIED_REF).ok()? != Some(tip) {
        return None;
    }
    MainIndex::load_or_rebuild(store, tip).ok()
}

/// A commit of main as the index keeps it, from its message and date.
pub fn indexed(id: ObjectId, message: &str, committer_time: i64) -> IndexedCommit {
    let t = trailers(message);
    IndexedCommit {
        id,
        policy_time: (trailer(&t, "Mvault-Action") == Some("policy")).then_some(committer_time),
    }
}

fn path(store: &Store) -> PathBuf {
    store.git_dir().join(INDEX_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A repository with a linear main of `n` commits (the second a policy
    /// change), and its commits oldest first.
    fn repo(n: usize) -> (tempfile::TempDir, Store, Vec<ObjectId>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = |args: &[&str]| {
            crate::store::run_git(dir.path(), args).expect("git");
        };
        run(&["init", "-q", "-b", "main"]);
        let mut ids = Vec::new();
        for i in 0..n {
            let action = if i == 1 { "policy" } else { "register" };
            let msg = format!("c{i}\n\nMvault-Action: {action}\n");
            let date = format!("@{} +0000", 1_700_000_000 + i);
            let out = std::process::Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@t"])
                .args(["commit", "-q", "--allow-empty", "-m", &msg])
                .env("GIT_COMMITTER_DATE", &date)
                .env("GIT_AUTHOR_DATE", &date)
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .current_dir(dir.path())
                .output()
                .expect("git commit");
            assert!(out.status.success(), "{out:?}");
            let id = crate::store::run_git(dir.path(), &["rev-parse", "HEAD"]).expect("rev-parse");
            ids.push(ObjectId::from_hex(id.trim().as_bytes()).expect("id"));
        }
        let store = Store::open(dir.path()).expect("open");
        (dir, store, ids)
    }

    #[test]
    fn a_rebuilt_index_answers_like_a_walk_and_is_saved() {
        let (_dir, store, ids) = repo(5);
        let index = MainIndex::load_or_rebuild(&store, ids[4]).expect("rebuild");
        assert_eq!(index.root(), Some(ids[0]));
        assert_eq!(index.tip(), Some(ids[4]));
        assert!(ids.iter().all(|c| index.contains(*c)));
        // The policy changed at the second commit: after the first, and
        // never after the second.
        assert_eq!(index.policy_change_after(ids[0]), Some(Some(1_700_000_001)));
        assert_eq!(index.policy_change_after(ids[1]), Some(None));
        let newest: Vec<ObjectId> = index.newest_first().collect();
        assert_eq!(newest, ids.iter().rev().copied().collect::<Vec<_>>());
        let loaded = MainIndex::load(&store, ids[4]).expect("saved");
        assert_eq!(loaded.commits, index.commits);
    }

    /// The file is believed only for the tip it ends at: an index of
    /// another main (a stale one, or lines added by hand) is not.
    #[test]
    fn an_index_that_does_not_end_at_the_tip_is_not_believed() {
        let (_dir, store, ids) = repo(4);
        let mut short = MainIndex::default();
        short.extend(ids[..3].iter().map(|id| IndexedCommit {
            id: *id,
            policy_time: None,
        }));
        short.save(&store).expect("save");
        assert!(MainIndex::load(&store, ids[3]).is_none());
        assert!(MainIndex::load(&store, ids[2]).is_some());
        // Rebuilt from the tip asked for, whatever the file said.
        let index = MainIndex::load_or_rebuild(&store, ids[3]).expect("rebuild");
        assert_eq!(index.tip(), Some(ids[3]));
        assert_eq!(index.policy_change_after(ids[0]), Some(Some(1_700_000_001)));
        // A torn or altered file does not parse.
        let path = store.git_dir().join(INDEX_FILE);
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, &text[..text.len() - 5]).expect("write");
        assert!(MainIndex::load(&store, ids[3]).is_none());
        std::fs::write(&path, format!("{text}{}\n", ids[0])).expect("write");
        assert!(
            MainIndex::load(&store, ids[0]).is_none(),
            "a repeated commit"
        );
    }
}
