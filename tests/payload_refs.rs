//! Layout 2, end to end through the hook: the record on main, each
//! version's payload under its own ref. A plain clone fetches the record
//! only; `pull` fetches exactly the version it needs (from a clone, or
//! with `--from` and no clone); a stale clone is told it is behind; a
//! purge deletes one archived version's payload and nothing else, while
//! the record stays verifiable; no object exceeds the part size.

use std::path::Path;

use crate::common::*;
use crate::hook_server::*;

const MIB: u64 = 1 << 20;

/// The payload refs of `dir`.
fn payload_refs(s: &Server, dir: &Path) -> Vec<String> {
    s.git_ok(
        dir,
        &["for-each-ref", "--format=%(refname)", "refs/mvault/data/"],
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

/// Whether `dir` holds object `id`.
fn has_object(s: &Server, dir: &Path, id: &str) -> bool {
    s.git(dir, &["cat-file", "-e", id]).status.success()
}

/// The object ids of every part of `version`, read on the server.
fn part_ids(s: &Server, version: &str) -> Vec<String> {
    s.git_ok(
        &s.bare,
        &[
            "ls-tree",
            "--format=%(objectname)",
            &format!("refs/mvault/data/nlp/bert/{version}"),
        ],
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

/// A server with nlp/bert 1.0.0 and 1.1.0, each with its own weights.
fn two_versions() -> Server {
    let s = Server::with_version();
    let model = s.path("model-b");
    sample_model(&model, 3 * MIB, 7);
    s.add(&s.work, &s.alice, Some("alice"), &model, "1.1.0", &[])
        .success();
    s
}

/// A clone over the transport (`--no-local`), as from any server: git
/// sends what the refs it fetches reach, and nothing else.
fn transport_clone(s: &Server, name: &str) -> std::path::PathBuf {
    let dir = s.path(name);
    s.git_ok(
        s.root(),
        &[
            "clone",
            "-q",
            "--no-local",
            path_str(&s.bare),
            path_str(&dir),
        ],
    );
    dir
}

/// The admin takes `version` through `stages`, pushing each step; bob,
/// made an approver, approves production.
fn promote_to(s: &Server, version: &str, stages: &[&str]) {
    let r = format!("nlp/bert@{version}");
    for stage in stages {
        if *stage == "production" {
            // Granting twice changes nothing and is refused: fine.
            let _ = s.mvault_as(
                &s.work,
                &s.admin,
                Some("admin"),
                &[
                    "policy", "grant", "bob", "--role", "approver", "--models", "nlp/*",
                ],
            );
            let bobs = transport_clone(s, &format!("bob-approves-{version}"));
            s.mvault_as(
                &bobs,
                &s.bob,
                Some("bob"),
                &["approve", &r, "--stage", "production"],
            )
            .success();
        }
        s.mvault_as(
            &s.work,
            &s.admin,
            Some("admin"),
            &["promote", &r, "--to", stage],
        )
        .success();
    }
}

#[test]
fn a_plain_clone_holds_the_record_and_pull_fetches_one_version() {
    let s = two_versions();
    let clone = transport_clone(&s, "reader");
    assert!(
        payload_refs(&s, &clone).is_empty(),
        "a plain clone fetched payload refs"
    );
    for id in part_ids(&s, "1.0.0").iter().chain(&part_ids(&s, "1.1.0")) {
        assert!(!has_object(&s, &clone, id), "a plain clone has part {id}");
    }
    let out = s.path("out");
    s.mvault_as(
        &clone,
        &s.alice,
        None,
        &["pull", "nlp/bert@1.1.0", "-o", path_str(&out)],
    )
    .success();
    assert_same_tree(&s.path("model-b"), &out);
    // Exactly that version's payload came, with its ref.
    assert_eq!(
        payload_refs(&s, &clone),
        ["refs/mvault/data/nlp/bert/1.1.0"]
    );
    let wanted = part_ids(&s, "1.1.0");
    for id in part_ids(&s, "1.0.0")
        .iter()
        .filter(|id| !wanted.contains(id))
    {
        assert!(!has_object(&s, &clone, id), "1.0.0's part {id} came too");
    }
    // The fetch ran in a scratch git directory sharing the clone's
    // objects: it is gone, and everything the clone's refs name is there.
    let scratch: Vec<_> = std::fs::read_dir(clone.join(".git/mvault"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        scratch
            .iter()
            .all(|n| !n.to_string_lossy().starts_with("fetch.")),
        "a scratch fetch directory was left behind: {scratch:?}"
    );
    s.git_ok(&clone, &["fsck", "--connectivity-only", "--no-dangling"]);
}

#[test]
fn a_missing_payload_without_a_remote_is_not_fetched_with_a_hint() {
    let s = Server::with_version();
    let clone = transport_clone(&s, "offline");
    s.git_ok(&clone, &["remote", "remove", "origin"]);
    let out = s.path("out");
    let run = s
        .mvault_as(
            &clone,
            &s.alice,
            None,
            &["pull", "nlp/bert@1.0.0", "-o", path_str(&out)],
        )
        .failure();
    assert_eq!(run.status.code(), Some(2), "{}", run.output());
    run.mentions(&["payload not fetched", "hint:"]);
    assert!(list_files(&out).is_empty());
}

#[test]
fn pull_from_a_url_needs_no_clone_and_fetches_one_version() {
    let s = two_versions();
    promote_to(&s, "1.0.0", &["staging", "production"]);
    let cache = s.path("cache");
    let out = s.path("serving");
    let run = s
        .mvault_as(
            s.root(),
            &s.bob,
            None,
            &[
                "pull",
                "--from",
                path_str(&s.bare),
                "--cache",
                path_str(&cache),
                "nlp/bert#production",
                "-o",
                path_str(&out),
            ],
        )
        .success();
    run.mentions(&["pulled nlp/bert@1.0.0"]);
    assert_same_tree(&s.model(1), &out);
    assert_eq!(
        payload_refs(&s, &cache),
        ["refs/mvault/data/nlp/bert/1.0.0"]
    );
    let wanted = part_ids(&s, "1.0.0");
    for id in part_ids(&s, "1.1.0")
        .iter()
        .filter(|id| !wanted.contains(id))
    {
        assert!(!has_object(&s, &cache, id), "1.1.0's part {id} came too");
    }
    // Again, with the cache: the record is refreshed, nothing refetched.
    let again = s.path("serving-2");
    s.mvault_as(
        s.root(),
        &s.bob,
        None,
        &[
            "pull",
            "--from",
            path_str(&s.bare),
            "--cache",
            path_str(&cache),
            "nlp/bert@1.1.0",
            "-o",
            path_str(&again),
        ],
    )
    .success();
    assert_same_tree(&s.path("model-b"), &again);
}

#[test]
fn a_stale_clone_with_fresh_tags_refreshes_or_says_it_is_behind() {
    let s = two_versions();
    let clone = transport_clone(&s, "stale");
    promote_to(&s, "1.1.0", &["staging", "production"]);
    // Tags fetched, main left behind.
    s.git_ok(&clone, &["fetch", "-q", "--tags", "origin"]);
    // Offline: a clear "behind" message, not an integrity error.
    let url = s.git_ok(&clone, &["remote", "get-url", "origin"]);
    s.git_ok(
        &clone,
        &["remote", "set-url", "origin", path_str(&s.path("gone.git"))],
    );
    let out = s.path("out-offline");
    let run = s
        .mvault_as(
            &clone,
            &s.bob,
            None,
            &["pull", "nlp/bert#production", "-o", path_str(&out)],
        )
        .failure();
    assert_ne!(run.status.code(), Some(4), "{}", run.output());
    run.mentions(&["behind"]);
    assert!(list_files(&out).is_empty());
    // Online: pull refreshes the record and succeeds.
    s.git_ok(&clone, &["remote", "set-url", "origin", &url]);
    let out = s.path("out-online");
    s.mvault_as(
        &clone,
        &s.bob,
        None,
        &["pull", "nlp/bert#production", "-o", path_str(&out)],
    )
    .success()
    .mentions(&["pulled nlp/bert@1.1.0"]);
    assert_same_tree(&s.path("model-b"), &out);
}

#[test]
fn purge_is_refused_unless_archived_by_an_admin_and_deletes_only_its_ref() {
    let s = two_versions();
    // Not archived.
    s.mvault_as(
        &s.work,
        &s.admin,
        Some("admin"),
        &["purge", "nlp/bert@1.0.0", "--reason", "too early"],
    )
    .failure()
    .mentions(&["only an archived version"]);
    promote_to(
        &s,
        "1.0.0",
        &["staging", "production", "deprecated", "archived"],
    );
    // Without the role (alice is a developer).
    let alices = s.stock_clone("alice-purge");
    s.mvault_as(
        &alices,
        &s.alice,
        Some("alice"),
        &["purge", "nlp/bert@1.0.0", "--reason", "mine"],
    )
    .failure()
    .mentions(&["ml_admin"]);
    // The hook: a purge record pushed with the deletion of another
    // version's payload is refused, and nothing moves.
    let rogue = s.stock_clone("rogue");
    s.mvault_as(
        &rogue,
        &s.admin,
        None,
        &[
            "purge",
            "nlp/bert@1.0.0",
            "--reason",
            "retention",
            "--no-push",
        ],
    )
    .success();
    s.refused(
        &rogue,
        Some("admin"),
        &[
            "--atomic",
            "origin",
            "main",
            ":refs/mvault/data/nlp/bert/1.1.0",
        ],
        "refs/mvault/data/nlp/bert/1.1.0",
        "deletion",
    );
    // A deletion with no purge record at all.
    s.refused(
        &s.stock_clone("plain"),
        Some("admin"),
        &["origin", ":refs/mvault/data/nlp/bert/1.0.0"],
        "refs/mvault/data/nlp/bert/1.0.0",
        "deletion",
    );
    // Accepted: the admin's purge.
    let gone = part_ids(&s, "1.0.0");
    s.mvault_as(
        &s.work,
        &s.admin,
        Some("admin"),
        &["purge", "nlp/bert@1.0.0", "--reason", "retention: 400 days"],
    )
    .success()
    .mentions(&["purged nlp/bert@1.0.0", "pushed to origin"]);
    assert!(payload_refs(&s, &s.bare)
        .iter()
        .all(|r| r != "refs/mvault/data/nlp/bert/1.0.0"));
    // After the server's gc, the ciphertext is gone (no part shared).
    s.git_ok(&s.bare, &["reflog", "expire", "--expire=now", "--all"]);
    s.git_ok(&s.bare, &["gc", "-q", "--prune=now"]);
    let kept = part_ids(&s, "1.1.0");
    for id in gone.iter().filter(|id| !kept.contains(id)) {
        assert!(
            !has_object(&s, &s.bare, id),
            "part {id} of the purged version survived gc"
        );
    }
    // The record stays and verifies; pull explains.
    s.mvault(&s.bare, &s.admin, &["audit", "verify"])
        .success()
        .mentions(&["record intact"]);
    let reader = transport_clone(&s, "after-purge");
    s.mvault(&reader, &s.admin, &["audit", "verify"]).success();
    s.mvault(&reader, &s.bob, &["show", "nlp/bert@1.0.0"])
        .success();
    let out = s.path("out-purged");
    s.mvault_as(
        &reader,
        &s.bob,
        None,
        &["pull", "nlp/bert@1.0.0", "-o", path_str(&out)],
    )
    .failure()
    .mentions(&["purged on", "by admin", "retention: 400 days"]);
    assert!(list_files(&out).is_empty());
    // The other version is whole.
    let out = s.path("out-kept");
    s.mvault_as(
        &reader,
        &s.bob,
        None,
        &["pull", "nlp/bert@1.1.0", "-o", path_str(&out)],
    )
    .success();
}

/// A host that caps objects at 100 MB (as GitHub does) in front of the
/// hook: a 300 MiB file is split into parts below the cap, and the push
/// lands.
#[test]
fn a_300_mib_file_lands_on_a_host_that_caps_objects_at_100_mb() {
    let s = Server::new();
    let hooks = s.bare.join("hooks");
    std::fs::rename(hooks.join("pre-receive"), hooks.join("pre-receive.mvault")).unwrap();
    let cap = r#"#!/bin/sh
# A per-object size cap, as git hosts enforce, then mvault's hook.
input=$(cat)
echo "$input" | while read old new ref; do
  [ "$new" = 0000000000000000000000000000000000000000 ] && continue
  git rev-list --objects "$new" --not --all |
    cut -d' ' -f1 |
    git cat-file --batch-check='%(objectsize) %(objectname)' |
    while read size id; do
      if [ "$size" -gt 100000000 ]; then
        echo "object $id is $size bytes, over the 100 MB limit" >&2
        exit 1
      fi
    done || exit 1
done || exit 1
echo "$input" | exec "$(dirname "$0")/pre-receive.mvault"
"#;
    write_file(&hooks.join("pre-receive"), cap.as_bytes());
    let mut chmod = s.command("chmod");
    chmod.arg("+x").arg(hooks.join("pre-receive"));
    s.run(chmod).success();
    let model = s.path("big");
    write_pseudo_random(&model.join("weights.bin"), 300 * MIB, 3);
    s.add(&s.work, &s.alice, Some("alice"), &model, "1.0.0", &[])
        .success()
        .mentions(&["pushed to origin"]);
    let largest: u64 = s
        .git_ok(
            &s.bare,
            &[
                "ls-tree",
                "--format=%(objectsize)",
                "refs/mvault/data/nlp/bert/1.0.0",
            ],
        )
        .lines()
        .map(|l| l.trim().parse::<u64>().unwrap())
        .max()
        .unwrap();
    assert!(largest <= 17 * MIB, "a part of {largest} bytes");
    // And the cap is real: a blob over it is refused by the host.
    let clone = s.stock_clone("over-cap");
    write_pseudo_random(&clone.join("huge.bin"), 101_000_000, 4);
    s.git_ok(&clone, &["add", "huge.bin"]);
    s.git_ok(&clone, &["commit", "-qm", "huge"]);
    let run = s.git(&clone, &["push", "origin", "HEAD:refs/heads/main"]);
    assert!(!run.status.success());
    assert!(
        run.stderr().contains("over the 100 MB limit"),
        "{}",
        run.stderr()
    );
}
