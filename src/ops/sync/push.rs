//! Pushing with stock `git push`: a new version, a policy change, a purge,
//! release tags; and rebuilding a version on the server's tip when someone
//! else pushed first.

use serde::Serialize;
use time::OffsetDateTime;

use crate::crypto::{KeyRing, SshIdentity};
use crate::model::names;
use crate::ops::register::{commit_version, PreparedVersion, RingWrite};
use crate::store::{ObjectId, RefUpdate, StoreError, MAIN_REF};
use crate::vault::{Vault, VaultError};

use super::fetch::{fetch_narrow, keep_tracking};
use super::{remote, MAX_REBUILDS};

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
    Ok(PushResult::Refused(refusal_lines(&stdout, &stderr)))
}

/// What the pusher is shown of a refused push. When mvault's hook refused
/// it, its one-line rule and hint (the server's other chatter left out)
/// and git's per-ref verdicts. When another hook refused it (a forge's
/// own hook, gitolite's ACL, a site hook chained before or after
/// mvault's), every line the server sent, verbatim, and git's per-ref
/// verdicts, under a line that says mvault's rules did not refuse it.
fn refusal_lines(stdout: &str, stderr: &str) -> String {
    // A progress line is rewritten in place with '\r': its last state.
    let remote: Vec<&str> = stderr
        .lines()
        .map(|l| l.trim_end_matches('\r').rsplit('\r').next().unwrap_or(l))
        .filter_map(|l| {
            l.strip_prefix("remote: ")
                .or_else(|| (l == "remote:").then_some(""))
        })
        .map(str::trim_end)
        .collect();
    let verdicts = stdout
        .lines()
        .filter(|l| l.starts_with('!'))
        .map(|l| l.replace('\t', " "));
    let mvault_refused = remote.iter().any(|l| l.starts_with("mvault: refused"));
    let mut lines: Vec<String> = if mvault_refused {
        remote
            .iter()
            .filter(|l| l.starts_with("mvault: refused") || l.starts_with("hint:"))
            .map(|l| (*l).to_owned())
            .collect()
    } else if !remote.is_empty() {
        let mut lines = vec![
            "another hook on the server refused it, not mvault's rules; the server said:"
                .to_owned(),
        ];
        lines.extend(remote.iter().map(|l| format!("remote: {l}")));
        lines
    } else {
        Vec::new()
    };
    lines.extend(verdicts);
    if lines.is_empty() {
        lines = stderr
            .lines()
            .chain(stdout.lines())
            .map(str::to_owned)
            .filter(|l| !l.trim().is_empty())
            .collect();
    }
    lines.join("\n")
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

#[cfg(test)]
mod tests {
    use super::refusal_lines;

    const VERDICT: &str =
        "!\trefs/heads/main:refs/heads/main\t[remote rejected] (pre-receive hook declined)\nDone\n";

    #[test]
    fn mvaults_refusal_keeps_its_rule_line_and_hint_only() {
        let stderr = "remote: mvault: refused refs/heads/main: pusher role: bob has no role\nremote: hint: ask an admin\nremote: some chatter\nTo /srv/vault.git\n";
        assert_eq!(
            refusal_lines(VERDICT, stderr),
            "mvault: refused refs/heads/main: pusher role: bob has no role\nhint: ask an admin\n! refs/heads/main:refs/heads/main [remote rejected] (pre-receive hook declined)"
        );
    }

    #[test]
    fn another_hooks_refusal_is_shown_verbatim_with_the_ref_verdict() {
        let stderr = "remote: mvault: accepted refs/heads/main: register nlp/bert@1.0.0\nremote: GL-HOOK-ERR: pushes are frozen until Monday\nremote:\nremote: Resolving deltas:  50% (1/2)\rremote: Resolving deltas: 100% (2/2), done.\nTo /srv/vault.git\n";
        assert_eq!(
            refusal_lines(VERDICT, stderr),
            "another hook on the server refused it, not mvault's rules; the server said:\nremote: mvault: accepted refs/heads/main: register nlp/bert@1.0.0\nremote: GL-HOOK-ERR: pushes are frozen until Monday\nremote: \nremote: Resolving deltas: 100% (2/2), done.\n! refs/heads/main:refs/heads/main [remote rejected] (pre-receive hook declined)"
        );
    }
}
