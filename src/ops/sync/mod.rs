//! The clone and the shared server: moving a new version to the server
//! with stock `git push`, rebuilding it on the server's tip when someone
//! else pushed first, and bringing the clone's record up to date from the
//! server (`mvault sync`, and the refresh before other commands).
//!
//! Pushes are atomic (`git push --atomic`): the commit and its tag land
//! together or not at all. A push git refuses as non-fast-forward is rebuilt
//! on the fetched tip (same version directory and blobs, a new signed commit
//! and tag) and retried a bounded number of times; a push the server's hook
//! refuses is reported with the hook's own line and the local refs are put
//! back, so the clone does not claim what the server refused.
//!
//! Fetching is in `fetch` (a narrowed `git fetch` into a scratch
//! directory, then the checks before the clone believes anything), pushing
//! in `push`, and the work tree refresh after `main` moved in `worktree`;
//! `mvault sync` itself is here.

mod fetch;
pub mod freshness;
mod push;
mod worktree;

use serde::Serialize;

use crate::vault::{Vault, VaultError};

pub use fetch::{fetch_checked, fetch_checked_fresh, fetch_payload, TagScope};
pub use push::PushOutcome;
pub(crate) use push::{push_main, push_purge, push_refs_atomic, push_version};
pub use worktree::refresh_worktree;

/// Where the server's tags land before they are compared with the clone's.
pub const REMOTE_TAGS: &str = "refs/mvault/remote-tags/";

/// How many times `add` rebuilds on a moved tip before giving up.
pub const MAX_REBUILDS: u32 = 5;

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
pub fn sync(
    vault: &Vault,
    now: i64,
    max_age: Option<freshness::MaxAge>,
) -> Result<SyncOutcome, VaultError> {
    let remote = remote(vault).ok_or(VaultError::NoRemote)?;
    let tags_before: std::collections::BTreeSet<String> = vault
        .store
        .refs_with_prefix("refs/tags/")?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let before = vault.store.main_tip()?;
    fetch_checked_fresh(vault, &remote, &TagScope::all(), max_age).map_err(|e| match e {
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
