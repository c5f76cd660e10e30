//! Moving a new version to the shared server with stock `git push`, and
//! rebuilding it on the server's tip when someone else pushed first.
//!
//! Pushes are atomic (`git push --atomic`): the commit and its tag land
//! together or not at all. A push git refuses as non-fast-forward is rebuilt
//! on the fetched tip (same version directory and blobs, a new signed commit
//! and tag) and retried a bounded number of times; a push the server's hook
//! refuses is reported with the hook's own line and the local refs are put
//! back, so the clone does not claim what the server refused.

use crate::store::ObjectId;
use serde::Serialize;
use time::OffsetDateTime;

use crate::crypto::{KeyRing, SshIdentity};
use crate::model::approval::APPROVAL_PREFIX;
use crate::model::names::{self, ModelName};
use crate::ops::register::{commit_version, PreparedVersion, RingWrite};
use crate::store::{RefUpdate, StoreError, MAIN_REF};
use crate::vault::{Vault, VaultError};

/// Where the server's tags land before they are compared with the clone's.
pub const REMOTE_TAGS: &str = "refs/mvault/remote-tags/";

/// How many times `add` rebuilds on a moved tip before giving up.
pub const MAX_REBUILDS: u32 = 5;

/// Where a version was pushed.
#[derive(Debug, Clone, Serialize)]
pub struct PushOutcome {
    pub remote: String,
    /// How many times the version was rebuilt on a newer server tip.
    pub rebuilds: u32,
    #[serde(skip)]
    pub commit: ObjectId,
    #[serde(skip)]
    pub tag: ObjectId,
}

/// The remote `main` is pushed to: `branch.main.remote`, else `origin`, else
/// the only remote. `None`: the clone has no remote.
pub fn remote(vault: &Vault) -> Option<String> {
    if let Ok(r) = vault.store.git(&["config", "--get", "branch.main.remote"]) {
        let r = r.trim();
        if !r.is_empty() && r != "." {
            return Some(r.to_owned());
        }
    }
    let remotes = vault.store.git(&["remote"]).ok()?;
    let list: Vec<&str> = remotes
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if list.contains(&"origin") {
        return Some("origin".into());
    }
    match list.as_slice() {
        [one] => Some((*one).to_owned()),
        _ => None,
    }
}

enum PushResult {
    Ok,
    NonFastForward,
    Refused(String),
}

fn push_refs(vault: &Vault, remote: &str, refs: &[String]) -> Result<PushResult, VaultError> {
    let mut args = vec![
        "push".to_owned(),
        "--atomic".into(),
        "--porcelain".into(),
        remote.to_owned(),
    ];
    // A spec with a colon is given as it is (`:REF` deletes REF).
    args.extend(refs.iter().map(|r| {
        if r.contains(':') {
            r.clone()
        } else {
            format!("{r}:{r}")
        }
    }));
    let out = std::process::Command::new("git")
        .args(&args)
        .current_dir(vault.store.command_dir())
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| VaultError::Store(StoreError::NoGit(e)))?;
    if out.status.success() {
        return Ok(PushResult::Ok);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // git's porcelain verdicts: the ref moved or exists on the server.
    if [
        "(fetch first)",
        "(non-fast-forward)",
        "(already exists)",
        "(stale info)",
    ]
    .iter()
    .any(|v| stdout.contains(v))
    {
        return Ok(PushResult::NonFastForward);
    }
    // Two pushes that pass their hooks at once: git's locked ref update
    // lets one through and fails the other's whole atomic transaction.
    let hook_refused = stdout.contains("hook declined") || stderr.contains("mvault: refused");
    if !hook_refused
        && (stdout.contains("(atomic transaction failed)")
            || stdout.contains("(failed to update ref)")
            || stderr.contains("cannot lock ref")
            || stderr.contains("failed to lock"))
    {
        return Ok(PushResult::NonFastForward);
    }
    // The hook's lines arrive prefixed with "remote: ".
    // Only the refusal and git's own per-ref verdicts matter to the user.
    let mut lines: Vec<String> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("remote: "))
        .map(|l| l.trim_end().to_owned())
        .filter(|l| l.starts_with("mvault: refused") || l.starts_with("hint:"))
        .collect();
    lines.extend(
        stdout
            .lines()
            .filter(|l| l.starts_with('!'))
            .map(|l| l.replace('\t', " ")),
    );
    if lines.is_empty() {
        lines = stderr
            .lines()
            .chain(stdout.lines())
            .map(str::to_owned)
            .filter(|l| !l.trim().is_empty())
            .collect();
    }
    Ok(PushResult::Refused(lines.join("\n")))
}

/// Push a freshly committed version; rebuild on the server's tip when it
/// moved. `base` is the tip the version was first built on.
pub(crate) fn push_version(
    vault: &Vault,
    p: &PreparedVersion,
    base: ObjectId,
    mut commit: ObjectId,
    mut tag: ObjectId,
    signer: &SshIdentity,
    now: OffsetDateTime,
) -> Result<Option<PushOutcome>, VaultError> {
    let Some(remote) = remote(vault) else {
        return Ok(None);
    };
    let tag_ref = format!(
        "refs/tags/{}",
        names::registration_tag(&p.model, &p.version)
    );
    let payload_ref = names::payload_ref(&p.model, &p.version);
    let mut rebuilds = 0;
    loop {
        match push_refs(
            vault,
            &remote,
            &[MAIN_REF.to_owned(), tag_ref.clone(), payload_ref.clone()],
        )? {
            PushResult::Ok => {
                return Ok(Some(PushOutcome {
                    remote,
                    rebuilds,
                    commit,
                    tag,
                }))
            }
            PushResult::Refused(why) => {
                // Put the clone back as it was: the server did not take it.
                let _ = vault.store.update_refs(&[
                    RefUpdate {
                        name: MAIN_REF.into(),
                        expected: Some(commit),
                        new: Some(
                            vault
                                .store
                                .commit_parents(commit)?
                                .first()
                                .copied()
                                .unwrap_or(base),
                        ),
                        reason: "push refused; undo".into(),
                    },
                    RefUpdate {
                        name: tag_ref.clone(),
                        expected: Some(tag),
                        new: None,
                        reason: "push refused; undo".into(),
                    },
                    RefUpdate {
                        name: payload_ref.clone(),
                        expected: Some(p.payload),
                        new: None,
                        reason: "push refused; undo".into(),
                    },
                ]);
                return Err(VaultError::Push {
                    remote,
                    detail: format!("the server refused it; nothing was published and the local commit was undone\n{why}"),
                });
            }
            PushResult::NonFastForward => {
                if rebuilds >= MAX_REBUILDS {
                    let detail = format!(
                        "main moved on the server {MAX_REBUILDS} times while pushing; the version is committed locally. Run `git push --atomic {remote} main {tag_ref}` later, or run add again after `git fetch`"
                    );
                    return Err(VaultError::Push { remote, detail });
                }
                rebuilds += 1;
                let (c, t) = rebuild(vault, p, &remote, commit, signer, now)?;
                commit = c;
                tag = t;
            }
        }
    }
}

/// A `git fetch` narrowed to what mvault asks of it, so that git's own work
/// does not follow the number of refs (one tag and one payload ref per
/// version): before it fetches, git marks every local ref's object as
/// complete (reading each tag and payload tree, 120 ms at 10,000 versions),
/// offers ref tips to negotiate, and after it checks connectivity against
/// every ref. The fetch runs in a scratch git directory inside the clone's
/// that shares its object store (`GIT_OBJECT_DIRECTORY`) and its config
/// (an include), and holds one ref, `main` at the clone's tip: every tag
/// points into main and payload refs point at trees, which negotiation
/// cannot use, so main's history is all the clone and the server have in
/// common, and git's connectivity check walks from the new objects to main
/// (further than with every ref as a boundary, never less far).
///
/// The scratch directory never runs gc or maintenance (its refs are not
/// the clone's: a prune there would drop the payloads) and is removed
/// afterwards. Returns the refs the fetch wrote (`refspecs`' destinations);
/// the caller decides what the clone keeps.
fn fetch_narrow(
    vault: &Vault,
    remote: &str,
    refspecs: &[String],
    boundary: &[(String, ObjectId)],
    config: &[&str],
) -> Result<std::collections::BTreeMap<String, ObjectId>, VaultError> {
    let git_dir = vault.store.git_dir();
    let dir = ScratchGitDir {
        path: git_dir
            .join("mvault")
            .join(format!("fetch.{}", std::process::id())),
    };
    let io = |e: std::io::Error| VaultError::Io {
        path: dir.path.display().to_string(),
        source: e,
    };
    let _ = std::fs::remove_dir_all(&dir.path);
    std::fs::create_dir_all(dir.path.join("refs/heads")).map_err(io)?;
    std::fs::write(dir.path.join("HEAD"), "ref: refs/heads/main\n").map_err(io)?;
    // The clone's config first, then what the scratch directory must not
    // do (later values win).
    // A linked worktree keeps its config in the common directory.
    let common = std::fs::read_to_string(git_dir.join("commondir"))
        .map(|c| git_dir.join(c.trim()))
        .unwrap_or_else(|_| git_dir.to_owned());
    let own = common.join("config");
    let own = std::fs::canonicalize(&own).unwrap_or(own);
    // Quoted as git's config syntax wants: a path with '#', ';' or a space
    // would otherwise be cut short, and git ignores a missing include.
    let own = own.display().to_string();
    if own.contains('\n') {
        return Err(VaultError::Io {
            path: own,
            source: std::io::Error::other("a newline in the clone's path"),
        });
    }
    let quoted = own.replace('\\', "\\\\").replace('"', "\\\"");
    std::fs::write(
        dir.path.join("config"),
        format!(
            "[include]\n\tpath = \"{quoted}\"\n[core]\n\tbare = true\n[gc]\n\tauto = 0\n[maintenance]\n\tauto = false\n[fetch]\n\twriteCommitGraph = false\n"
        ),
    )
    .map_err(io)?;
    let tip = vault.store.main_tip()?;
    if let Some(tip) = tip {
        std::fs::write(dir.path.join("refs/heads/main"), format!("{tip}\n")).map_err(io)?;
    }
    // The clone's own refs among those fetched (its tags of the model), as
    // boundaries of the connectivity check: a tag the server offers that
    // the clone has then costs nothing to check.
    let mut packed = String::from("# pack-refs with: sorted \n");
    let mut boundary = boundary.to_vec();
    boundary.sort();
    for (name, id) in &boundary {
        packed.push_str(&format!("{id} {name}\n"));
    }
    std::fs::write(dir.path.join("packed-refs"), packed).map_err(io)?;
    let objects = vault.store.objects_dir();
    let objects = std::fs::canonicalize(&objects).unwrap_or(objects);
    let mut args: Vec<String> = vec![format!("--git-dir={}", dir.path.display())];
    for c in config {
        args.push("-c".into());
        args.push((*c).to_owned());
    }
    args.extend(
        [
            "fetch",
            "-q",
            "--no-tags",
            "--no-write-fetch-head",
            "--no-auto-maintenance",
        ]
        .map(String::from),
    );
    if tip.is_some() {
        args.push("--negotiation-tip=refs/heads/main".into());
    }
    args.push("--stdin".into());
    args.push(remote.to_owned());
    let input: String = refspecs.iter().map(|r| format!("{r}\n")).collect();
    run_in(vault, &args, &objects, input.as_bytes())?;
    let listed = run_in(
        vault,
        &[
            format!("--git-dir={}", dir.path.display()),
            "for-each-ref".into(),
            "--format=%(objectname) %(refname)".into(),
        ],
        &objects,
        b"",
    )?;
    let mut out = std::collections::BTreeMap::new();
    for line in listed.lines() {
        let Some((id, name)) = line.split_once(' ') else {
            continue;
        };
        if name == MAIN_REF || name.starts_with("refs/tags/") {
            continue;
        }
        if let Ok(id) = id.parse::<ObjectId>() {
            out.insert(name.to_owned(), id);
        }
    }
    Ok(out)
}

/// Removes the scratch git directory of [`fetch_narrow`] when dropped.
struct ScratchGitDir {
    path: std::path::PathBuf,
}

impl Drop for ScratchGitDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Run git with `args` in the clone's directory, objects in `objects`.
fn run_in(
    vault: &Vault,
    args: &[String],
    objects: &std::path::Path,
    input: &[u8],
) -> Result<String, VaultError> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("git")
        .args(args)
        .env("GIT_OBJECT_DIRECTORY", objects)
        .env_remove("GIT_DIR")
        .current_dir(vault.store.command_dir())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| VaultError::Store(StoreError::NoGit(e)))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).map_err(StoreError::from)?;
    }
    let out = child.wait_with_output().map_err(StoreError::from)?;
    if !out.status.success() {
        return Err(VaultError::Store(StoreError::Command {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        }));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Point the clone's `refs/remotes/REMOTE/main` where a fetch found the
/// server's main, as `git fetch` would have.
fn keep_tracking(
    vault: &Vault,
    tracking: &str,
    theirs: Option<ObjectId>,
) -> Result<(), VaultError> {
    let current = vault.store.ref_target(tracking)?;
    if let Some(t) = theirs.filter(|t| current != Some(*t)) {
        vault.store.update_refs(&[RefUpdate {
            name: tracking.to_owned(),
            expected: current,
            new: Some(t),
            reason: "fetched the server's main".into(),
        }])?;
    }
    Ok(())
}

/// Rebuild the version on the remote's current `main`.
fn rebuild(
    vault: &Vault,
    p: &PreparedVersion,
    remote: &str,
    ours: ObjectId,
    signer: &SshIdentity,
    now: OffsetDateTime,
) -> Result<(ObjectId, ObjectId), VaultError> {
    let tracking = format!("refs/remotes/{remote}/main");
    let fetched = fetch_narrow(
        vault,
        remote,
        &[format!("+{MAIN_REF}:{tracking}")],
        &[],
        &[],
    )?;
    keep_tracking(vault, &tracking, fetched.get(&tracking).copied())?;
    let theirs = fetched
        .get(&tracking)
        .copied()
        .ok_or_else(|| VaultError::Push {
            remote: remote.to_owned(),
            detail: "the remote has no main branch".into(),
        })?;
    let base = vault
        .store
        .commit_parents(ours)?
        .first()
        .copied()
        .ok_or_else(|| VaultError::Push {
            remote: remote.to_owned(),
            detail: "cannot rebuild the first commit".into(),
        })?;
    if !vault.store.is_ancestor(base, theirs)? {
        return Err(VaultError::Push {
            remote: remote.to_owned(),
            detail: "local main has commits the server does not have; push or drop them first"
                .into(),
        });
    }
    let their_tree = vault.store.commit_tree(theirs)?;
    if vault
        .versions_of(their_tree, &p.model)?
        .contains(&p.version)
    {
        return Err(VaultError::VersionExists {
            model: p.model.to_string(),
            version: p.version.to_string(),
        });
    }
    let policy = vault.policy_at(their_tree)?;
    policy.check(
        &p.author,
        &p.model,
        crate::model::policy::Ability::Register,
        now,
    )?;
    // The blobs are encrypted to one data key: the server's ring must still
    // have it as its newest generation.
    let mut prepared = PreparedVersion {
        model: p.model.clone(),
        version: p.version.clone(),
        upserts: p.upserts.clone(),
        ring: p.ring.clone(),
        data_key: p.data_key.clone(),
        manifest_sha256: p.manifest_sha256,
        message: p.message.clone(),
        author: p.author.clone(),
        manifest: p.manifest.clone(),
        payload: p.payload,
    };
    // A manifest is never dated before the commit it is registered on: one
    // made before the server's main moved is dated and signed anew.
    let when = crate::ops::register::not_before_parent(vault, theirs, now)?;
    let created = time::OffsetDateTime::parse(
        &p.manifest.created,
        &time::format_description::well_known::Rfc3339,
    )
    .map(|t| t.unix_timestamp())
    .unwrap_or(i64::MIN);
    let their_date = crate::store::objects::parse_commit(&vault.store.object(theirs)?.1)?
        .committer
        .time;
    if created < their_date {
        prepared.manifest.created = crate::vault::rfc3339(when);
        let (manifest_upserts, digest) =
            crate::ops::register::write_manifest(vault, &prepared.manifest, signer)?;
        for (path, id) in manifest_upserts {
            if let Some(u) = prepared.upserts.iter_mut().find(|(p, _)| *p == path) {
                u.1 = id;
            }
        }
        prepared.message = prepared
            .message
            .replace(&p.manifest_sha256.to_hex(), &digest.to_hex());
        prepared.manifest_sha256 = digest;
    }
    if let Some(sealed) = vault.store.read_path(their_tree, &p.model.keyring_path())? {
        let changed = || {
            VaultError::Push {
            remote: remote.to_owned(),
            detail: format!(
                "the key ring of {} changed on the server (created, re-wrapped or rotated concurrently); run add again to encrypt to the new data key",
                p.model
            ),
        }
        };
        match &p.ring {
            // Our rotation still applies to the ring it replaced.
            RingWrite::Rotated { replaces, .. } if *replaces == sealed => {}
            RingWrite::Rotated { .. } => return Err(changed()),
            RingWrite::Created(_) | RingWrite::Unchanged => {
                let ring =
                    KeyRing::open(&sealed, signer).map_err(|e| VaultError::NoReadAccess {
                        model: p.model.to_string(),
                        reason: e.to_string(),
                    })?;
                if ring.current().recipient().to_string() != p.data_key {
                    return Err(changed());
                }
                // A reader who expired before the rebuilt commit's date
                // must be cut off: the version is encrypted to the old key.
                let former = crate::rules::ring::former_readers(&sealed, &policy, &p.model, when)
                    .unwrap_or_else(|e| vec![e]);
                if !former.is_empty() {
                    return Err(VaultError::Push {
                        remote: remote.to_owned(),
                        detail: format!(
                            "the key ring of {} holds {} who are no longer readers on {}; run add again to rotate the data key",
                            p.model,
                            former.join(", "),
                            when.date()
                        ),
                    });
                }
                prepared.ring = RingWrite::Unchanged;
                prepared.message = prepared
                    .message
                    .lines()
                    .filter(|l| !l.starts_with("Mvault-Key-Ring:"))
                    .map(|l| format!("{l}\n"))
                    .collect();
            }
        }
    }
    // Move local main back to our base so the commit is rebuilt on theirs.
    let tag_ref = format!(
        "refs/tags/{}",
        names::registration_tag(&p.model, &p.version)
    );
    let our_tag = vault.store.ref_target(&tag_ref)?;
    vault.store.update_refs(&[
        RefUpdate {
            name: MAIN_REF.into(),
            expected: Some(ours),
            new: Some(theirs),
            reason: "rebuild on the server's main".into(),
        },
        RefUpdate {
            name: tag_ref,
            expected: our_tag,
            new: None,
            reason: "rebuild on the server's main".into(),
        },
    ])?;
    commit_version(vault, &prepared, theirs, their_tree, signer, now)
}

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

/// Push `main` alone (a policy change). A moved server tip is not rebuilt:
/// the local commit is undone and the user runs the change again.
pub(crate) fn push_main(
    vault: &Vault,
    base: ObjectId,
    commit: ObjectId,
) -> Result<Option<String>, VaultError> {
    let Some(remote) = remote(vault) else {
        return Ok(None);
    };
    let undo = |why: String| -> VaultError {
        let _ = vault.store.update_refs(&[RefUpdate {
            name: MAIN_REF.into(),
            expected: Some(commit),
            new: Some(base),
            reason: "push failed; undo".into(),
        }]);
        VaultError::Push {
            remote: remote.clone(),
            detail: why,
        }
    };
    match push_refs(vault, &remote, &[MAIN_REF.to_owned()])? {
        PushResult::Ok => Ok(Some(remote.clone())),
        PushResult::NonFastForward => Err(undo(format!(
            "main moved on the server; the local commit was undone. Run `git fetch {remote} main:main` (or `git pull`) and repeat the command"
        ))),
        PushResult::Refused(why) => Err(undo(format!("the server refused it; the local commit was undone\n{why}"))),
    }
}

/// Push a purge: `main` and the deletion of the payload ref, atomically.
/// Refused or raced, the local commit is undone and the payload ref put
/// back.
pub(crate) fn push_purge(
    vault: &Vault,
    base: ObjectId,
    commit: ObjectId,
    payload_ref: &str,
    payload: Option<ObjectId>,
) -> Result<Option<String>, VaultError> {
    let Some(remote) = remote(vault) else {
        return Ok(None);
    };
    let undo = |why: String| -> VaultError {
        let mut edits = vec![RefUpdate {
            name: MAIN_REF.into(),
            expected: Some(commit),
            new: Some(base),
            reason: "push failed; undo".into(),
        }];
        if let Some(p) = payload {
            edits.push(RefUpdate {
                name: payload_ref.to_owned(),
                expected: None,
                new: Some(p),
                reason: "push failed; undo".into(),
            });
        }
        let _ = vault.store.update_refs(&edits);
        VaultError::Push {
            remote: remote.clone(),
            detail: why,
        }
    };
    let specs = [MAIN_REF.to_owned(), format!(":{payload_ref}")];
    match push_refs(vault, &remote, &specs)? {
        PushResult::Ok => Ok(Some(remote.clone())),
        PushResult::NonFastForward => Err(undo(
            "main moved on the server; the local commit was undone. Run the purge again".into(),
        )),
        PushResult::Refused(why) => Err(undo(format!(
            "the server refused it; the local commit was undone\n{why}"
        ))),
    }
}

/// Push `refs` (tags, seq refs) atomically to the remote, if there is one.
pub(crate) fn push_refs_atomic(
    vault: &Vault,
    refs: &[String],
) -> Result<Option<String>, VaultError> {
    let Some(remote) = remote(vault) else {
        return Ok(None);
    };
    match push_refs(vault, &remote, refs)? {
        PushResult::Ok => Ok(Some(remote)),
        PushResult::NonFastForward => Err(VaultError::PushRace { remote }),
        PushResult::Refused(why) => Err(VaultError::Push {
            remote,
            detail: why,
        }),
    }
}

/// Deletes the scratch copies of the server's tags when dropped.
struct RemoteTags<'a> {
    vault: &'a Vault,
}

impl RemoteTags<'_> {
    fn list(&self) -> Result<Vec<(String, ObjectId)>, VaultError> {
        Ok(self.vault.store.refs_with_prefix(REMOTE_TAGS)?)
    }

    fn clear(&self) -> Result<(), VaultError> {
        let edits: Vec<RefUpdate> = self
            .list()?
            .into_iter()
            .map(|(name, id)| RefUpdate {
                name,
                expected: Some(id),
                new: None,
                reason: "drop the server's tags after comparing".into(),
            })
            .collect();
        if !edits.is_empty() {
            self.vault.store.update_refs(&edits)?;
        }
        Ok(())
    }
}

impl Drop for RemoteTags<'_> {
    fn drop(&mut self) {
        let _ = self.clear();
    }
}

/// The server's tags a refresh brings and checks: those a command reads.
/// Each is a tag-name prefix the server lists by itself (protocol v2
/// `ref-prefix`), so a refresh costs what the command is about, not every
/// tag of the vault.
#[derive(Debug, Clone)]
pub struct TagScope {
    prefixes: Vec<String>,
}

impl TagScope {
    /// Every tag the server has: what `mvault sync` brings, a whole
    /// record's worth (it costs what the server lists).
    pub fn all() -> Self {
        TagScope {
            prefixes: vec![String::new()],
        }
    }

    /// One model's registration and promotion tags (`MODEL@v…`, `MODEL#…`),
    /// and every approval: a promotion names the approvals it relies on,
    /// and an approval's name puts its stage and approver before the model,
    /// so the server cannot list one model's alone. They grow with the
    /// approvals given, not with the versions.
    pub fn model(model: &ModelName) -> Self {
        TagScope {
            prefixes: vec![
                format!("{model}@"),
                format!("{model}#"),
                APPROVAL_PREFIX.to_owned(),
            ],
        }
    }
}

/// Bring the clone up to date with `remote` without believing it more than
/// the clone already does: `main`, and the tags in `scope`.
/// 1. tags are fetched without `+` into [`REMOTE_TAGS`], never over the
///    clone's own: a tag the server offers that differs from the local one
///    is refused, naming both ids (a server re-pointing a published tag);
/// 2. `main` moves only by fast-forward; a server main that does not descend
///    from the local one is refused (a server rewriting history);
/// 3. new tags and the fast-forward land in one ref transaction, or nothing
///    changes.
pub fn fetch_checked(vault: &Vault, remote: &str, scope: &TagScope) -> Result<(), VaultError> {
    let scratch = RemoteTags { vault };
    scratch.clear()?;
    let tracking = format!("refs/remotes/{remote}/main");
    // 0. One fetch: main, and the tags in scope into the scratch space (the
    //    server lists only those; the ones the clone has arrive as names
    //    alone, their objects are not sent again).
    let mut refspecs = vec![format!("+{MAIN_REF}:{tracking}")];
    for p in &scope.prefixes {
        refspecs.push(format!("refs/tags/{p}*:{REMOTE_TAGS}{p}*"));
    }
    let mut own = Vec::new();
    for p in &scope.prefixes {
        own.extend(vault.store.refs_with_prefix(&format!("refs/tags/{p}"))?);
    }
    let fetched = fetch_narrow(vault, remote, &refspecs, &own, &[])?;
    let theirs = fetched.get(&tracking).copied();
    // 1.
    let offered: Vec<(String, ObjectId)> = fetched
        .iter()
        .filter(|(name, _)| name.starts_with(REMOTE_TAGS))
        .map(|(name, id)| (name.clone(), *id))
        .collect();
    let mut edits = new_tags(vault, &offered)?;
    // 2.
    let (Some(theirs), Some(ours)) = (theirs, vault.store.main_tip()?) else {
        // A new cache (pull --from) takes the server's main as its start;
        // what it believes is still decided by the replay from the root keys.
        if let (Some(theirs), None) = (theirs, vault.store.main_tip()?) {
            edits.push(RefUpdate {
                name: MAIN_REF.into(),
                expected: None,
                new: Some(theirs),
                reason: "first fetch of the server's main".into(),
            });
        }
        keep_tracking(vault, &tracking, theirs)?;
        return apply(vault, &edits);
    };
    let forward = fast_forward(vault, remote, ours, theirs)?;
    if forward {
        edits.push(RefUpdate {
            name: MAIN_REF.into(),
            expected: Some(ours),
            new: Some(theirs),
            reason: "fast-forward to the server's main".into(),
        });
    }
    // 3. (the tracking ref too: a refused refresh moves no ref at all)
    keep_tracking(vault, &tracking, Some(theirs))?;
    apply(vault, &edits)?;
    if forward {
        refresh_worktree(vault, ours, theirs);
    }
    Ok(())
}

/// The server's tags the clone lacks, as creations; a differing one is refused.
fn new_tags(vault: &Vault, fetched: &[(String, ObjectId)]) -> Result<Vec<RefUpdate>, VaultError> {
    let mut out = Vec::new();
    for (scratch_name, remote_id) in fetched {
        let short = scratch_name.trim_start_matches(REMOTE_TAGS);
        let local_name = format!("refs/tags/{short}");
        match vault.store.ref_target(&local_name)? {
            Some(local) if local == *remote_id => {}
            Some(local) => {
                return Err(VaultError::TagReplaced {
                    tag: short.to_owned(),
                    local: local.to_string(),
                    remote: remote_id.to_string(),
                })
            }
            None => out.push(RefUpdate {
                name: local_name,
                expected: None,
                new: Some(*remote_id),
                reason: "tag fetched from the server".into(),
            }),
        }
    }
    Ok(out)
}

/// Whether the local main should move to `theirs`; refused when the two
/// histories diverged. A local main ahead of the server's stays.
fn fast_forward(
    vault: &Vault,
    remote: &str,
    ours: ObjectId,
    theirs: ObjectId,
) -> Result<bool, VaultError> {
    if theirs == ours || vault.store.is_ancestor(theirs, ours)? {
        return Ok(false);
    }
    if vault.store.is_ancestor(ours, theirs)? {
        return Ok(true);
    }
    Err(VaultError::MainRewritten {
        remote: remote.to_owned(),
        ours: ours.to_string(),
        theirs: theirs.to_string(),
    })
}

fn apply(vault: &Vault, edits: &[RefUpdate]) -> Result<(), VaultError> {
    if !edits.is_empty() {
        vault.store.update_refs(edits)?;
    }
    Ok(())
}

/// Fetch one version's payload from the remote with stock git, and keep it
/// under the version's payload ref only if it is the tree the signed
/// manifest names: the server says where the payload is, the record says
/// what it must be.
pub fn fetch_payload(
    vault: &Vault,
    model: &crate::model::names::ModelName,
    version: &crate::model::names::Version,
    expected: ObjectId,
) -> Result<(), VaultError> {
    let not_fetched = |reason: String| VaultError::NotFetched {
        model: model.to_string(),
        version: version.to_string(),
        reason,
    };
    let Some(remote) = remote(vault) else {
        return Err(not_fetched(
            "this clone has no remote to fetch it from".into(),
        ));
    };
    let name = names::payload_ref(model, version);
    let scratch = format!("refs/mvault/fetch/{}", std::process::id());
    // Keep what arrives as the pack it is: below git's default unpack
    // limit a payload would be exploded into loose objects and deflated.
    let fetched = fetch_narrow(
        vault,
        &remote,
        &[format!("+{name}:{scratch}")],
        &[],
        &["fetch.unpackLimit=1", "core.looseCompression=0"],
    );
    let got = fetched.as_ref().ok().and_then(|f| f.get(&scratch).copied());
    if let Err(e) = fetched {
        return Err(not_fetched(format!(
            "git fetch {remote} {name} failed: {e}"
        )));
    }
    match got {
        Some(g) if g == expected => {}
        Some(g) => {
            return Err(VaultError::Mismatch {
                path: name,
                check: "payload tree",
                expected: format!("{expected} (named by the signed manifest)"),
                found: format!("{g} (served by {remote})"),
            })
        }
        None => return Err(not_fetched(format!("{remote} has no {name}"))),
    }
    let current = vault.store.ref_target(&name)?;
    if current != Some(expected) {
        vault.store.update_refs(&[RefUpdate {
            name,
            expected: current,
            new: Some(expected),
            reason: "payload fetched".into(),
        }])?;
    }
    Ok(())
}

/// What `mvault sync` did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncOutcome {
    pub remote: String,
    /// main before and after (`None` before: the clone had no main).
    pub main_before: Option<String>,
    pub main_after: String,
    /// The commits main moved forward by.
    pub commits: usize,
    /// The tags the clone got from the server, by name.
    pub new_tags: Vec<String>,
}

/// `mvault sync`: bring the clone's record up to date with its remote by
/// the refresh `pull` uses ([`fetch_checked`]: main fast-forward only, a
/// published tag never replaced), then replay what is new of main from the
/// root keys. Unlike `pull`, an unreachable remote is an error: bringing
/// the record up to date is all this command does.
pub fn sync(vault: &Vault, now: i64) -> Result<SyncOutcome, VaultError> {
    let remote = remote(vault).ok_or(VaultError::NoRemote)?;
    let tags_before: std::collections::BTreeSet<String> = vault
        .store
        .refs_with_prefix("refs/tags/")?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let before = vault.store.main_tip()?;
    fetch_checked(vault, &remote, &TagScope::all()).map_err(|e| match e {
        VaultError::Store(s) => VaultError::RemoteUnreachable {
            remote: remote.clone(),
            detail: s.to_string().lines().next().unwrap_or("").to_owned(),
        },
        other => other,
    })?;
    let after = crate::verify::replay::verify_main(&vault.store, now).map_err(|b| {
        VaultError::RecordBroken {
            object: b.object,
            rule: b.rule,
            detail: b.detail,
        }
    })?;
    let mut commits = 0;
    let mut at = Some(after);
    while let Some(id) = at.filter(|id| Some(*id) != before) {
        commits += 1;
        at = vault.store.commit_parents(id)?.first().copied();
    }
    let new_tags = vault
        .store
        .refs_with_prefix("refs/tags/")?
        .into_iter()
        .filter(|(name, _)| !tags_before.contains(name))
        .map(|(name, _)| name.trim_start_matches("refs/tags/").to_owned())
        .collect();
    Ok(SyncOutcome {
        remote,
        main_before: before.map(|b| b.to_string()),
        main_after: after.to_string(),
        commits,
        new_tags,
    })
}
