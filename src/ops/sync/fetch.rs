//! Fetching from the server: the narrowed fetch into a scratch git
//! directory, the checks before the clone takes the server's main and tags
//! (fast-forward only, no changed tag), and one version's payload.

use crate::model::approval::APPROVAL_PREFIX;
use crate::model::names::{self, ModelName};
use crate::store::{ObjectId, RefUpdate, StoreError, MAIN_REF};
use crate::vault::{Vault, VaultError};

use super::freshness::{self, MaxAge, Served};
use super::worktree::refresh_worktree;
use super::{remote, REMOTE_TAGS};
use crate::model::receipt::{RECEIPTS_REF, TIMESTAMP_REF};

/// Where the server's receipts and timestamp land in the scratch fetch.
const SERVED: &str = "refs/mvault/served/";

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
pub(super) fn fetch_narrow(
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
pub(super) fn keep_tracking(
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
    fetch_checked_fresh(vault, remote, scope, None)
}

/// [`fetch_checked`], and the server's freshness (see `freshness`): its
/// receipt chain and timestamp are not older than what this clone has
/// seen, belong together and match `main`, and, with `max_age`, the
/// timestamp is recent enough. Refused, nothing moves.
pub fn fetch_checked_fresh(
    vault: &Vault,
    remote: &str,
    scope: &TagScope,
    max_age: Option<MaxAge>,
) -> Result<(), VaultError> {
    let scratch = RemoteTags { vault };
    scratch.clear()?;
    let tracking = format!("refs/remotes/{remote}/main");
    // 0. One fetch: main, and the tags in scope into the scratch space (the
    //    server lists only those; the ones the clone has arrive as names
    //    alone, their objects are not sent again), and the server's
    //    receipts and timestamp (patterns, so that a server without them
    //    is no error).
    let mut refspecs = vec![format!("+{MAIN_REF}:{tracking}")];
    for p in &scope.prefixes {
        refspecs.push(format!("refs/tags/{p}*:{REMOTE_TAGS}{p}*"));
    }
    refspecs.push(format!("+{RECEIPTS_REF}*:{SERVED}receipts*"));
    refspecs.push(format!("+{TIMESTAMP_REF}*:{SERVED}timestamp*"));
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
    // Freshness, before anything moves.
    let served = Served {
        main: theirs,
        receipts: fetched.get(&format!("{SERVED}receipts")).copied(),
        timestamp: fetched.get(&format!("{SERVED}timestamp")).copied(),
    };
    let now = crate::vault::now().unix_timestamp();
    edits.extend(freshness::check(vault, remote, &served, max_age, now)?);
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
