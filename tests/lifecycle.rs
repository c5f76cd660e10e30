//! The lifecycle settings of issue 10, pushed with stock `git push` through
//! the hook: each new policy key set with `mvault policy rule` and read
//! back by `policy show` and `policy check` (a misspelt one refused with
//! its line and column); `max_versions` refused past the cap by the client
//! and by the hook; `mvault retention` listing exactly the due versions; a
//! purge by the policy's `purge_role` refused before the retention is due
//! and landing after; grant globs that match nothing warned about.
//! (Rollback rights: tests/promotion_flow.rs.)

use std::path::Path;

use crate::common::*;
use crate::hook_server::*;

const DAY: u64 = 86_400;

/// `mvault ARGS…` in `dir` as `key`, pushing as `pusher`, with the clock
/// (client and hook alike) `days` after `NOW`.
fn at_day(s: &Server, days: u64, dir: &Path, key: &Key, pusher: &str, args: &[&str]) -> Run {
    let mut cmd = s.mvault_command(dir, key, args);
    cmd.env("MVAULT_NOW", (NOW + days * DAY).to_string())
        .env("MVAULT_USER", pusher)
        .env("GIT_COMMITTER_NAME", &key.name)
        .env("GIT_COMMITTER_EMAIL", format!("{}@mvault", key.name));
    s.run(cmd)
}

/// The admin's `mvault policy rule ARGS…`, pushed.
#[track_caller]
fn rule(s: &Server, args: &[&str]) -> Run {
    let mut all = vec!["policy", "rule"];
    all.extend_from_slice(args);
    s.mvault_as(&s.work, &s.admin, Some("admin"), &all)
        .success()
        .mentions(&["pushed to origin"])
}

/// The admin takes nlp/bert@VERSION from development to archived on day
/// `days` (production needs no approval in these tests' policy).
fn archive(s: &Server, days: u64, version: &str) {
    let r = format!("nlp/bert@{version}");
    for stage in ["staging", "production", "deprecated", "archived"] {
        at_day(
            s,
            days,
            &s.work,
            &s.admin,
            "admin",
            &["promote", &r, "--to", stage],
        )
        .success();
    }
}

#[test]
fn each_lifecycle_key_round_trips_through_policy_rule_and_policy_check() {
    let s = Server::with_version();
    rule(
        &s,
        &[
            "model",
            "set",
            "--models",
            "nlp/**",
            "--retention-days",
            "30",
            "--purge-role",
            "ml_engineer",
            "--max-versions",
            "5",
            "--allowed-environments",
            "prod-eu,staging",
        ],
    );
    rule(
        &s,
        &[
            "stage",
            "set",
            "--stage",
            "production",
            "--models",
            "**",
            "--rollback-role",
            "ml_engineer",
        ],
    );
    // A fresh stock clone of the server reads them back.
    let clone = s.stock_clone("reader");
    let show = s
        .mvault_as(&clone, &s.bob, None, &["policy", "show", "--json"])
        .success()
        .stdout();
    let v: serde_json::Value = serde_json::from_str(&show).expect("policy show --json");
    assert_eq!(
        v["models"],
        serde_json::json!([{
            "models": "nlp/**",
            "retention_days": 30,
            "purge_role": "ml_engineer",
            "max_versions": 5,
            "allowed_environments": ["prod-eu", "staging"],
        }]),
        "{v}"
    );
    assert_eq!(v["stages"][0]["rollback_role"], "ml_engineer", "{v}");
    // The file on main passes policy check.
    let file = s.path("policy.toml");
    write_file(
        &file,
        s.git_ok(&clone, &["show", "main:.mvault/policy.toml"])
            .as_bytes(),
    );
    s.mvault_as(&clone, &s.bob, None, &["policy", "check", path_str(&file)])
        .success()
        .mentions(&["1 stage rules, 1 model settings"]);
    // Each key misspelt: refused with its line and column, exit 4.
    let text = std::fs::read_to_string(&file).expect("policy file");
    for key in [
        "retention_days",
        "purge_role",
        "max_versions",
        "allowed_environments",
        "rollback_role",
    ] {
        let line = text
            .lines()
            .position(|l| l.starts_with(&format!("{key} =")))
            .expect("the key is in the file")
            + 1;
        let bad = s.path(&format!("bad-{key}.toml"));
        write_file(
            &bad,
            text.replace(&format!("{key} ="), &format!("{key}s ="))
                .as_bytes(),
        );
        let run = s
            .mvault_as(&clone, &s.bob, None, &["policy", "check", path_str(&bad)])
            .failure();
        assert_eq!(run.status.code(), Some(4), "{}", run.output());
        run.mentions(&[
            &format!("policy line {line}, column 1: unknown field `{key}s`"),
            &format!("`{key}`"),
        ]);
    }
    // A value out of its range names line and column as well.
    let bad = s.path("bad-value.toml");
    write_file(
        &bad,
        text.replace("max_versions = 5", "max_versions = 0")
            .as_bytes(),
    );
    s.mvault_as(&clone, &s.bob, None, &["policy", "check", path_str(&bad)])
        .failure()
        .mentions(&["column 16: models[0].max_versions: an integer from 1"]);
    // Changed and removed through policy rule, read back again.
    rule(
        &s,
        &[
            "model",
            "set",
            "--models",
            "nlp/**",
            "--unset",
            "max_versions",
        ],
    );
    rule(
        &s,
        &["stage", "remove", "--stage", "production", "--models", "**"],
    );
    let show = s
        .mvault_as(&s.work, &s.admin, None, &["policy", "show"])
        .success()
        .stdout();
    assert!(
        !show.contains("max_versions")
            && !show.contains("[[stages]]")
            && show.contains("retention_days = 30"),
        "{show}"
    );
    // A rollback_role on another stage than production is refused.
    s.mvault_as(
        &s.work,
        &s.admin,
        Some("admin"),
        &[
            "policy",
            "rule",
            "stage",
            "set",
            "--stage",
            "staging",
            "--models",
            "**",
            "--rollback-role",
            "ml_engineer",
        ],
    )
    .failure()
    .mentions(&["rollback_role belongs to a production rule"]);
}

#[test]
fn a_grant_glob_that_matches_no_model_is_warned_about_with_the_one_that_would() {
    let s = Server::with_version();
    let run = s
        .mvault_as(
            &s.work,
            &s.admin,
            Some("admin"),
            &[
                "policy", "grant", "bob", "--role", "approver", "--models", "*",
            ],
        )
        .success();
    assert!(
        run.stderr()
            .contains("mvault: warning: --models: '*' matches none of the models in the vault; '**' would match"),
        "{}",
        run.output()
    );
    // policy check in the vault warns too, on stderr, and exits 0.
    let file = s.path("policy.toml");
    write_file(
        &file,
        s.git_ok(&s.work, &["show", "main:.mvault/policy.toml"])
            .as_bytes(),
    );
    let run = s
        .mvault_as(
            &s.work,
            &s.admin,
            None,
            &["policy", "check", path_str(&file)],
        )
        .success();
    assert!(
        run.stderr().contains("'*' matches none") && run.stdout().contains(": ok: "),
        "{}",
        run.output()
    );
    // A glob that matches says nothing.
    let run = s
        .mvault_as(
            &s.work,
            &s.admin,
            Some("admin"),
            &[
                "policy", "grant", "bob", "--role", "approver", "--models", "**",
            ],
        )
        .success();
    assert!(!run.stderr().contains("warning"), "{}", run.output());
}

#[test]
fn max_versions_is_refused_past_the_cap_by_the_client_and_by_the_hook() {
    let s = Server::with_version();
    // alice builds 1.1.0 before the cap exists, and keeps it local.
    let early = s.prepared("early", &s.alice, "1.1.0");
    rule(
        &s,
        &[
            "stage",
            "set",
            "--stage",
            "production",
            "--models",
            "**",
            "--approvals",
            "0",
        ],
    );
    rule(
        &s,
        &["model", "set", "--models", "nlp/*", "--max-versions", "1"],
    );
    // The client refuses before it writes anything.
    let before = s.server_refs();
    let model = s.model(3);
    let run = s
        .add(&s.work, &s.alice, Some("alice"), &model, "1.2.0", &[])
        .failure();
    run.mentions(&[
        "nlp/bert has 1 version(s) not archived",
        "max_versions for it is 1",
        "hint: archive a version first: mvault promote nlp/bert@1.0.0 --to archived",
    ]);
    assert_eq!(s.server_refs(), before);
    // The hook refuses the version built before the cap, replayed onto
    // the new main with stock git.
    s.git_ok(&early, &["fetch", "-q", "origin"]);
    s.git_signing(&early, &s.alice, &["rebase", "-q", "-S", "origin/main"])
        .success();
    s.refused_main(&early, Some("alice"), "too many versions")
        .mentions(&[
            "max_versions = 1",
            "hint: archive a version of nlp/bert first",
        ]);
    // Archived versions do not count: archive 1.0.0 and the same push lands.
    archive(&s, 0, "1.0.0");
    s.git_ok(&early, &["fetch", "-q", "origin"]);
    s.git_signing(&early, &s.alice, &["rebase", "-q", "-S", "origin/main"])
        .success();
    let owned = s.with_payloads(&early, &["--atomic", "origin", "main"]);
    let args: Vec<&str> = owned.iter().map(String::as_str).collect();
    s.push(&early, Some("alice"), &args).success();
    assert!(s.server_refs().contains("refs/mvault/data/nlp/bert/1.1.0"));
    // And now the cap is reached again.
    s.mvault_as(&s.work, &s.admin, None, &["sync"]).success();
    s.add(&s.work, &s.alice, Some("alice"), &model, "1.2.0", &[])
        .failure()
        .mentions(&["max_versions for it is 1", "nlp/bert@1.1.0 --to archived"]);
}

/// The purge record `mvault purge` writes, by hand.
fn purge_record(by: &str, time: &str) -> String {
    format!(
        "model = \"nlp/bert\"\nversion = \"1.0.0\"\npurged_by = \"{by}\"\ntime = \"{time}\"\nreason = \"retention\"\n"
    )
}

#[test]
fn retention_lists_exactly_the_due_versions_and_the_purge_role_purges_them() {
    let s = Server::with_version();
    let model = s.model(2);
    s.add(&s.work, &s.alice, Some("alice"), &model, "1.1.0", &[])
        .success();
    rule(
        &s,
        &[
            "stage",
            "set",
            "--stage",
            "production",
            "--models",
            "**",
            "--approvals",
            "0",
        ],
    );
    // alice is a developer on nlp/*: the role the policy names for purges.
    rule(
        &s,
        &[
            "model",
            "set",
            "--models",
            "nlp/*",
            "--retention-days",
            "30",
            "--purge-role",
            "developer",
        ],
    );
    archive(&s, 0, "1.0.0");
    let alices = s.stock_clone("alice-work");
    // retention reads what the clone knows: sync it first.
    let retention = |days: u64| -> Vec<String> {
        at_day(&s, days, &alices, &s.alice, "alice", &["sync"]).success();
        at_day(
            &s,
            days,
            &alices,
            &s.alice,
            "alice",
            &["retention", "--json"],
        )
        .success()
        .stdout()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
            format!(
                "{}@{} due {}",
                v["model"].as_str().unwrap(),
                v["version"].as_str().unwrap(),
                v["due_at"].as_str().unwrap()
            )
        })
        .collect()
    };
    assert!(retention(0).is_empty());
    assert!(retention(29).is_empty());
    // The client refuses a purge before the retention is due.
    at_day(
        &s,
        0,
        &alices,
        &s.alice,
        "alice",
        &["purge", "nlp/bert@1.0.0", "--reason", "retention"],
    )
    .failure()
    .mentions(&["retention of 30 day(s) is due at 2026-12-22T10:00:00Z"]);
    // The hook refuses the same purge made by hand with stock git.
    let path = "models/nlp/bert/1.0.0/purge.toml";
    s.git_ok(&alices, &["pull", "-q", "origin", "main"]);
    s.git_ok(&alices, &["fetch", "-q", "--tags", "origin"]);
    write_file(
        &alices.join(path),
        purge_record("alice", NOW_RFC3339).as_bytes(),
    );
    s.git_ok(&alices, &["add", path]);
    let mut commit = s.git_signing_command(
        &alices,
        &s.alice,
        &[
            "commit",
            "-q",
            "-S",
            "-m",
            "purge nlp/bert@1.0.0\n\nretention\n\nMvault-Action: purge\nMvault-Model: nlp/bert\nMvault-Version: 1.0.0\n",
        ],
    );
    commit
        .env("GIT_AUTHOR_DATE", format!("{NOW} +0000"))
        .env("GIT_COMMITTER_DATE", format!("{NOW} +0000"));
    s.run(commit).success();
    s.refused(
        &alices,
        Some("alice"),
        &[
            "--atomic",
            "origin",
            "main",
            ":refs/mvault/data/nlp/bert/1.0.0",
        ],
        "refs/heads/main",
        "retention not due",
    )
    .mentions(&[
        "retention_days = 30",
        "hint: wait until the retention is due",
    ]);
    s.git_ok(&alices, &["reset", "-q", "--hard", "origin/main"]);
    // bob, a viewer, may not purge even when it is due.
    let bobs = s.stock_clone("bob-work");
    at_day(
        &s,
        31,
        &bobs,
        &s.bob,
        "bob",
        &["purge", "nlp/bert@1.0.0", "--reason", "retention"],
    )
    .failure()
    .mentions(&["purge needs ml_admin, or developer once the retention of 30 day(s) is due"]);
    // 1.1.0 archived on day 20: due on day 50.
    archive(&s, 20, "1.1.0");
    assert_eq!(
        retention(31),
        vec!["nlp/bert@1.0.0 due 2026-12-22T10:00:00Z"]
    );
    assert_eq!(
        retention(50),
        vec![
            "nlp/bert@1.0.0 due 2026-12-22T10:00:00Z",
            "nlp/bert@1.1.0 due 2027-01-11T10:00:00Z"
        ]
    );
    // On day 31 alice's purge of 1.0.0 lands through the hook.
    at_day(
        &s,
        31,
        &alices,
        &s.alice,
        "alice",
        &["purge", "nlp/bert@1.0.0", "--reason", "retention"],
    )
    .success()
    .mentions(&["purged nlp/bert@1.0.0", "pushed to origin"]);
    let refs = s.server_refs();
    assert!(
        !refs.contains("refs/mvault/data/nlp/bert/1.0.0 ")
            && refs.contains("refs/mvault/data/nlp/bert/1.1.0"),
        "{refs}"
    );
    assert!(retention(31).is_empty());
    assert_eq!(
        retention(50),
        vec!["nlp/bert@1.1.0 due 2027-01-11T10:00:00Z"]
    );
    // The server's record replays, the purge judged at its own date.
    s.mvault(&s.bare, &s.admin, &["audit", "verify"])
        .success()
        .mentions(&["record intact"]);
    // log names the purge, who made it and why (it once showed "unknown").
    s.mvault(&s.bare, &s.admin, &["log", "--json", "--action", "purge"])
        .success()
        .mentions(&[
            r#""action":"purge","actor":"alice""#,
            r#""model":"nlp/bert","version":"1.0.0""#,
            r#""reason":"retention""#,
        ]);
}
