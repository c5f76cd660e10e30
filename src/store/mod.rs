//! The git repository as mvault's database: objects, trees, signed commits
//! and tags, and compare-and-swap ref updates, through gix.
//!
//! Transport (push, fetch) and streaming reads of large blobs go through the
//! stock `git` program, which streams blobs larger than
//! `core.bigFileThreshold` instead of loading them; everything else is gix.
//! Nothing here knows what a model is.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use gix::bstr::{BString, ByteSlice};

mod blobs;
mod diff;
mod loose;
pub mod objects;
mod pack;
mod refs;

pub use blobs::BlobReader;
pub use diff::FileChange;
pub use loose::LooseBlob;
pub use objects::{EntryKind, ObjectId, ObjectKind};
use pack::write_blob_pack;
pub use pack::PACK_THRESHOLD;
pub use refs::RefUpdate;

/// The branch that holds the record.
pub const MAIN_REF: &str = "refs/heads/main";

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Not a git repository.
    #[error("{path} is not a git repository: {reason}")]
    NotARepository { path: PathBuf, reason: String },
    /// gix failed.
    #[error("git: {0}")]
    Git(String),
    /// A ref moved under us or already exists.
    #[error(
        "{name} changed while mvault was writing (expected {expected}); run the command again"
    )]
    RefRace { name: String, expected: String },
    /// A stock git command failed.
    #[error("`git {args}` failed: {stderr}")]
    Command { args: String, stderr: String },
    /// The `git` program could not be started.
    #[error("cannot run git: {0} (install git)")]
    NoGit(io::Error),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
    /// I/O.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// What signs commits and tags as git does (an SSH key, in `crypto`):
/// the store needs nothing else of a key.
pub trait GitSigner {
    /// An armored SSH signature over `payload` in git's namespace.
    fn sign_git(&self, payload: &[u8]) -> Result<String, StoreError>;
}

fn git_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Git(e.to_string())
}

/// Who did something, when: the identity in commits and tags.
#[derive(Debug, Clone)]
pub struct Actor {
    /// Policy user name.
    pub name: String,
    /// Unix seconds.
    pub time: i64,
}

impl Actor {
    fn signature(&self) -> gix::actor::Signature {
        gix::actor::Signature {
            name: self.name.as_str().into(),
            email: format!("{}@mvault", self.name).into(),
            time: gix::date::Time::new(self.time, 0),
        }
    }
}

/// An entry of a tree directory.
#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: String,
    pub id: ObjectId,
    pub is_tree: bool,
    pub is_blob: bool,
}

/// An opened repository; open one per thread.
pub struct Store {
    repo: gix::Repository,
}

/// The git config mvault puts in every repository it writes: ciphertext does
/// not compress, and delta search over large random blobs is what makes
/// stock git slow and memory-hungry on them.
pub const REPO_CONFIG: &[(&str, &str)] = &[
    ("core.looseCompression", "0"),
    ("pack.compression", "0"),
    ("core.packedGitWindowSize", "16777216"),
    ("core.packedGitLimit", "67108864"),
    ("core.bigFileThreshold", "1048576"),
    // Fetched payloads stay the packs they arrive as, not loose objects
    // deflated again.
    ("fetch.unpackLimit", "1"),
    ("transfer.unpackLimit", "1"),
];

impl Store {
    /// Open the repository at or above `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let path = &std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        let repo = gix::discover(path).map_err(|e| StoreError::NotARepository {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Store { repo })
    }

    /// Open a server repository inside a pre-receive hook. git keeps the
    /// pushed objects in a quarantine directory (`GIT_OBJECT_DIRECTORY`)
    /// until the hook accepts; gix does not read that variable, so the
    /// object store is opened on a scratch directory whose
    /// `info/alternates` names the quarantine and the repository's own
    /// objects. Nothing is ever written into the quarantine.
    pub fn open_quarantined(git_dir: &Path, scratch: &Path) -> Result<Self, StoreError> {
        let mut repo = gix::open(git_dir).map_err(|e| StoreError::NotARepository {
            path: git_dir.to_owned(),
            reason: e.to_string(),
        })?;
        let mut dirs: Vec<PathBuf> = Vec::new();
        if let Some(q) = std::env::var_os("GIT_OBJECT_DIRECTORY") {
            dirs.push(absolute(git_dir, Path::new(&q)));
        }
        if let Some(alts) = std::env::var_os("GIT_ALTERNATE_OBJECT_DIRECTORIES") {
            for a in std::env::split_paths(&alts) {
                dirs.push(absolute(git_dir, &a));
            }
        }
        // Absolute: alternates are read relative to the scratch directory.
        // (A push that only deletes refs has no quarantine, and git names
        // the repository's own objects relatively.)
        let own = repo.objects.store_ref().path().to_owned();
        let own = std::fs::canonicalize(&own).unwrap_or(own);
        let dirs: Vec<PathBuf> = dirs
            .into_iter()
            .map(|d| std::fs::canonicalize(&d).unwrap_or(d))
            .collect();
        let mut dirs = dirs;
        if !dirs.contains(&own) {
            dirs.push(own);
        }
        let objects = scratch.join("objects");
        std::fs::create_dir_all(objects.join("info"))?;
        std::fs::create_dir_all(objects.join("pack"))?;
        let list: String = dirs.iter().map(|d| format!("{}\n", d.display())).collect();
        std::fs::write(objects.join("info/alternates"), list)?;
        let handle = gix::odb::at(&objects, gix::hash::Kind::Sha1)?;
        repo.objects = gix::odb::memory::Proxy::new(handle, gix::hash::Kind::Sha1);
        Ok(Store { repo })
    }

    /// The entries of a tree with their kinds.
    pub fn tree_entries(
        &self,
        tree: ObjectId,
    ) -> Result<Vec<(String, ObjectId, EntryKind)>, StoreError> {
        let t = self.repo.find_tree(tree).map_err(git_err)?;
        let mut out = Vec::new();
        for e in t.iter() {
            let e = e.map_err(git_err)?;
            out.push((
                e.filename().to_str_lossy().into_owned(),
                e.oid().to_owned(),
                e.mode().kind(),
            ));
        }
        Ok(out)
    }

    /// The entries of a tree as stored: raw name bytes and kind, duplicates
    /// and odd names included (for the hook's shape checks).
    pub fn tree_entries_raw(
        &self,
        tree: ObjectId,
    ) -> Result<Vec<(Vec<u8>, ObjectId, EntryKind)>, StoreError> {
        let t = self.repo.find_tree(tree).map_err(git_err)?;
        let mut out = Vec::new();
        for e in t.iter() {
            let e = e.map_err(git_err)?;
            out.push((e.filename().to_vec(), e.oid().to_owned(), e.mode().kind()));
        }
        Ok(out)
    }

    /// Whether `ancestor` is `descendant` or one of its ancestors (stock
    /// `git merge-base --is-ancestor`, which uses the commit-graph when
    /// there is one).
    pub fn is_ancestor(
        &self,
        ancestor: ObjectId,
        descendant: ObjectId,
    ) -> Result<bool, StoreError> {
        if ancestor == descendant {
            return Ok(true);
        }
        let status = Command::new("git")
            .args([
                "merge-base",
                "--is-ancestor",
                &ancestor.to_string(),
                &descendant.to_string(),
            ])
            .current_dir(self.command_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(StoreError::NoGit)?;
        match status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(StoreError::Git(format!(
                "git merge-base --is-ancestor {ancestor} {descendant} failed"
            ))),
        }
    }

    /// The first commit of `tip`'s history (stock `git rev-list
    /// --max-parents=0`); a history with several roots is refused.
    pub fn root_commit(&self, tip: ObjectId) -> Result<ObjectId, StoreError> {
        let out = run_git(
            self.command_dir(),
            &["rev-list", "--max-parents=0", &tip.to_string()],
        )?;
        let roots: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
        match roots.as_slice() {
            [one] => ObjectId::from_hex(one.as_bytes()).map_err(git_err),
            _ => Err(StoreError::Git(format!(
                "{tip} has {} root commits; a vault has one",
                roots.len()
            ))),
        }
    }

    /// Create a new non-bare repository with branch `main`.
    pub fn init(path: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(path)?;
        run_git(path, &["init", "-q", "-b", "main"])?;
        let store = Store::open(path)?;
        store.ensure_config()?;
        Store::open(path)
    }

    /// Put [`REPO_CONFIG`] into the repository's own config where it is missing.
    pub fn ensure_config(&self) -> Result<(), StoreError> {
        let cfg = self.repo.config_snapshot();
        for (k, v) in REPO_CONFIG {
            if cfg
                .string(*k)
                .map(|s| s.to_str_lossy().into_owned())
                .as_deref()
                != Some(*v)
            {
                self.git(&["config", "--local", k, v])?;
            }
        }
        Ok(())
    }

    /// The git directory.
    pub fn git_dir(&self) -> &Path {
        self.repo.git_dir()
    }

    /// The work tree, if any.
    pub fn work_dir(&self) -> Option<&Path> {
        self.repo.workdir()
    }

    /// The directory git commands run in.
    pub fn command_dir(&self) -> &Path {
        self.work_dir().unwrap_or_else(|| self.git_dir())
    }

    /// Run a stock git command in the repository; returns stdout.
    pub fn git(&self, args: &[&str]) -> Result<String, StoreError> {
        run_git(self.command_dir(), args)
    }

    /// Run a stock git command with `input` on its stdin; returns stdout.
    pub fn git_with_input(&self, args: &[&str], input: &[u8]) -> Result<String, StoreError> {
        use std::io::Write as _;
        let mut child = Command::new("git")
            .args(args)
            .current_dir(self.command_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(StoreError::NoGit)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input)?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(StoreError::Command {
                args: args.join(" "),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Resolve a full ref name to the object it points at.
    pub fn ref_target(&self, name: &str) -> Result<Option<ObjectId>, StoreError> {
        match self.repo.try_find_reference(name).map_err(git_err)? {
            None => Ok(None),
            Some(r) => Ok(r.target().try_id().map(|id| id.to_owned())),
        }
    }

    /// The tip of `main`.
    pub fn main_tip(&self) -> Result<Option<ObjectId>, StoreError> {
        self.ref_target(MAIN_REF)
    }

    /// All refs under `prefix` (`refs/tags/`), with their targets.
    pub fn refs_with_prefix(&self, prefix: &str) -> Result<Vec<(String, ObjectId)>, StoreError> {
        let platform = self.repo.references().map_err(git_err)?;
        let mut out = Vec::new();
        for r in platform.prefixed(prefix).map_err(git_err)? {
            let r = r.map_err(git_err)?;
            if let Some(id) = r.target().try_id() {
                out.push((r.name().as_bstr().to_string(), id.to_owned()));
            }
        }
        Ok(out)
    }

    /// The raw bytes of any object and its kind.
    pub fn object(&self, id: ObjectId) -> Result<(gix::object::Kind, Vec<u8>), StoreError> {
        let o = self.repo.find_object(id).map_err(git_err)?;
        Ok((o.kind, o.data.clone()))
    }

    /// The tree of a commit.
    pub fn commit_tree(&self, commit: ObjectId) -> Result<ObjectId, StoreError> {
        let c = self.repo.find_commit(commit).map_err(git_err)?;
        c.tree_id().map(|id| id.detach()).map_err(git_err)
    }

    /// The parents of a commit.
    pub fn commit_parents(&self, commit: ObjectId) -> Result<Vec<ObjectId>, StoreError> {
        let c = self.repo.find_commit(commit).map_err(git_err)?;
        Ok(c.parent_ids().map(|id| id.detach()).collect())
    }

    /// The entry at `path` in `tree`.
    pub fn entry(
        &self,
        tree: ObjectId,
        path: &str,
    ) -> Result<Option<(ObjectId, EntryKind)>, StoreError> {
        let t = self.repo.find_tree(tree).map_err(git_err)?;
        let e = t.lookup_entry_by_path(path).map_err(git_err)?;
        Ok(e.map(|e| (e.object_id(), e.mode().kind())))
    }

    /// The bytes of the blob at `path` in `tree` (small files only).
    pub fn read_path(&self, tree: ObjectId, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.entry(tree, path)? {
            Some((id, EntryKind::Blob)) => {
                Ok(Some(self.repo.find_blob(id).map_err(git_err)?.data.clone()))
            }
            _ => Ok(None),
        }
    }

    /// The entries of the directory at `path` (empty path: the root).
    pub fn list_dir(&self, tree: ObjectId, path: &str) -> Result<Vec<DirEntry>, StoreError> {
        let dir = if path.is_empty() {
            tree
        } else {
            match self.entry(tree, path)? {
                Some((id, EntryKind::Tree)) => id,
                _ => return Ok(Vec::new()),
            }
        };
        let t = self.repo.find_tree(dir).map_err(git_err)?;
        let mut out = Vec::new();
        for e in t.iter() {
            let e = e.map_err(git_err)?;
            let kind = e.mode().kind();
            out.push(DirEntry {
                name: e.filename().to_str_lossy().into_owned(),
                id: e.oid().to_owned(),
                is_tree: kind == EntryKind::Tree,
                is_blob: kind == EntryKind::Blob,
            });
        }
        Ok(out)
    }

    /// The size of an object, read from its header only.
    pub fn object_size(&self, id: ObjectId) -> Result<u64, StoreError> {
        Ok(self.repo.find_header(id).map_err(git_err)?.size())
    }

    /// Whether the object exists.
    pub fn has_object(&self, id: ObjectId) -> bool {
        self.repo.has_object(id)
    }

    /// Write a small blob.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<ObjectId, StoreError> {
        Ok(self.repo.write_blob(bytes).map_err(git_err)?.detach())
    }

    /// Stream a blob of exactly `size` bytes into the object store. Blobs
    /// of [`PACK_THRESHOLD`] or more go into a pack of their own: git maps
    /// a loose object whole, so pushing a large loose blob costs its size
    /// in resident memory, while packs are read through bounded windows.
    pub fn write_blob_stream(
        &self,
        size: u64,
        reader: &mut dyn Read,
    ) -> Result<ObjectId, StoreError> {
        let mut counted = CountingReader {
            inner: reader,
            n: 0,
        };
        let id = if size >= PACK_THRESHOLD {
            write_blob_pack(self.repo.objects.store_ref().path(), size, &mut counted)?
        } else {
            gix::objs::Write::write_stream(
                &self.repo.objects,
                gix::object::Kind::Blob,
                size,
                &mut counted,
            )
            .map_err(git_err)?
        };
        if counted.n != size {
            return Err(StoreError::Git(format!(
                "blob stream gave {} bytes, {} declared",
                counted.n, size
            )));
        }
        Ok(id)
    }

    /// The object directory, for [`LooseBlob`] (many threads may write
    /// parts there at once).
    pub fn objects_dir(&self) -> PathBuf {
        self.repo.objects.store_ref().path().to_owned()
    }

    /// A new tree: `base` (or empty) with `upserts` applied.
    pub fn edit_tree(
        &self,
        base: Option<ObjectId>,
        upserts: &[(String, ObjectId)],
    ) -> Result<ObjectId, StoreError> {
        let base = base.unwrap_or_else(|| ObjectId::empty_tree(gix::hash::Kind::Sha1));
        let mut ed = self.repo.edit_tree(base).map_err(git_err)?;
        for (path, id) in upserts {
            ed.upsert(path.as_str(), EntryKind::Blob, *id)
                .map_err(git_err)?;
        }
        Ok(ed.write().map_err(git_err)?.detach())
    }

    /// Write a commit signed by `signer` (SSH signature in `gpgsig`, as git does).
    pub fn write_signed_commit(
        &self,
        tree: ObjectId,
        parents: &[ObjectId],
        actor: &Actor,
        message: &str,
        signer: &dyn GitSigner,
    ) -> Result<ObjectId, StoreError> {
        let mut commit = gix::objs::Commit {
            tree,
            parents: parents.iter().copied().collect(),
            author: actor.signature(),
            committer: actor.signature(),
            encoding: None,
            message: message.into(),
            extra_headers: Vec::new(),
        };
        let mut payload = Vec::new();
        gix::objs::WriteTo::write_to(&commit, &mut payload)?;
        let sig = signer.sign_git(&payload)?;
        commit
            .extra_headers
            .push(("gpgsig".into(), BString::from(sig.trim_end_matches('\n'))));
        Ok(self.repo.write_object(&commit).map_err(git_err)?.detach())
    }

    /// Write an annotated tag of `target` (a commit) signed by `signer`; the
    /// signature is appended to the message, as `git tag -s` does.
    pub fn write_signed_tag(
        &self,
        target: ObjectId,
        name: &str,
        actor: &Actor,
        message: &str,
        signer: &dyn GitSigner,
    ) -> Result<ObjectId, StoreError> {
        let mut message = message.to_owned();
        if !message.ends_with('\n') {
            message.push('\n');
        }
        let tag = gix::objs::Tag {
            target,
            target_kind: gix::object::Kind::Commit,
            name: name.into(),
            tagger: Some(actor.signature()),
            message: message.into(),
            signature: None,
        };
        let mut bytes = Vec::new();
        gix::objs::WriteTo::write_to(&tag, &mut bytes)?;
        let sig = signer.sign_git(&bytes)?;
        bytes.extend_from_slice(sig.as_bytes());
        gix::objs::Write::write_buf(&self.repo.objects, gix::object::Kind::Tag, &bytes)
            .map_err(git_err)
    }

    /// Every value of multi-valued config `key` (`section.name`).
    pub fn config_strings(&self, key: &str) -> Vec<String> {
        self.repo
            .config_snapshot()
            .strings(key)
            .unwrap_or_default()
            .into_iter()
            .map(|v| String::from_utf8_lossy(v.as_ref()).into_owned())
            .collect()
    }

    /// The value of config `key` (`section.name`), if set.
    pub fn config_string(&self, key: &str) -> Option<String> {
        self.repo
            .config_snapshot()
            .string(key)
            .map(|v| String::from_utf8_lossy(v.as_ref()).into_owned())
    }

    /// The underlying gix repository.
    pub fn repo(&self) -> &gix::Repository {
        &self.repo
    }
}

struct CountingReader<'a> {
    inner: &'a mut dyn Read,
    n: u64,
}

impl Read for CountingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

fn absolute(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_owned()
    } else {
        base.join(p)
    }
}

/// Run `git args` in `dir`; stdout on success.
pub fn run_git(dir: &Path, args: &[&str]) -> Result<String, StoreError> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(StoreError::NoGit)?;
    if !out.status.success() {
        return Err(StoreError::Command {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
