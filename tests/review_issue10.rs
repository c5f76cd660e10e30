//! Review of issue 10 as a hostile pusher and a malicious server
//! (docs/review-issue10.md lists every case tried). Here what needs the
//! real hook, stock `git push` and a real replay; the rest is unit tests in
//! src/rules/tests (deploy, lifecycle, promotions) and src/model/deps.
//!
//! One server: nlp/bert@1.0.0 in production, alice ml_engineer on nlp/*,
//! environment prod-eu (production, nlp/**).

use std::path::Path;

use crate::common::*;
use crate::hook_server::*;

const RULE_87: &str = "record behind a deployment";

fn production_server() -> Server {
    let s = Server::with_version();
    let admin = |args: &[&str]| {
        s.mvault_as(&s.work, &s.admin, Some("admin"), args)
            .success();
    };
    admin(&[
        "policy",
        "grant",
        "alice",
        "--role",
        "ml_engineer",
        "--models",
        "nlp/*",
    ]);
    admin(&[
        "policy",
        "rule",
        "env",
        "add",
        "prod-eu",
        "--stage",
        "production",
        "--models",
        "nlp/**",
    ]);
    let alice = |args: &[&str]| {
        s.mvault_as(&s.work, &s.alice, Some("alice"), args)
            .success();
    };
    alice(&["promote", "nlp/bert@1.0.0", "--to", "staging"]);
    admin(&["approve", "nlp/bert@1.0.0", "--stage", "production"]);
    alice(&["promote", "nlp/bert@1.0.0", "--to", "production"]);
    s
}

/// The promotion tag and seq ref `clone` holds for nlp/bert in `stage`
/// that the server lacks.
fn new_promotion_refs(s: &Server, clone: &Path, stage: &str) -> (String, String) {
    let tag = s.git_ok(clone, &["tag", "-l", &format!("nlp/bert#{stage}#*")]);
    let tag = tag.lines().last().expect("a promotion tag").to_owned();
    let n = tag.rsplit('#').next().expect("a counter");
    (
        format!("refs/tags/{tag}"),
        format!("refs/mvault/seq/nlp/bert/{n}"),
    )
}

/// Family 1 and 4: a deployment, then a promotion made against the record
/// before it (a stale clone demotes the deployed version). Before the fix
/// the hook let the tag in and every later `audit verify` broke on the
/// deployment ("not in the environment's stage"): the replay reads the
/// tag at the deploy commit's parent, the hook had not seen it. Now rule
/// 87 refuses the tag, no ref moves, and a fresh promotion lands. Then the
/// environment is removed while the deployment stands (the record stays,
/// the replay stays intact, `pull --env` refuses it), and a malicious
/// server that serves a forged environment is refused by `pull --env`.
#[test]
fn review_issue10_deployments_against_stale_promotions_and_forged_environments() {
    let s = production_server();
    let stale = s.stock_clone("stale");
    s.mvault_as(
        &s.work,
        &s.alice,
        Some("alice"),
        &["deploy", "nlp/bert#production", "--env", "prod-eu"],
    )
    .success()
    .mentions(&["pushed to origin"]);
    // The stale clone's admin deprecates 1.0.0 against the old record.
    s.mvault_as(
        &stale,
        &s.admin,
        None,
        &[
            "promote",
            "nlp/bert@1.0.0",
            "--to",
            "deprecated",
            "--no-push",
        ],
    )
    .success();
    let (tag, seq) = new_promotion_refs(&s, &stale, "deprecated");
    let run = s.refused(
        &stale,
        Some("admin"),
        &["origin", &tag, &seq],
        &tag,
        RULE_87,
    );
    assert!(
        run.stderr().contains("(a deployment of nlp/bert) after it"),
        "{}",
        run.stderr()
    );
    // What the hook prevents: the same tag forced into a hook-less copy
    // breaks the replay at the deployment the hook let in.
    let copy = s.path("no-hook.git");
    let mut cp = s.command("cp");
    cp.arg("-a").arg(&s.bare).arg(&copy);
    s.run(cp).success();
    std::fs::remove_file(copy.join("hooks/pre-receive")).expect("remove the copy's hook");
    s.git_ok(&stale, &["push", "-q", path_str(&copy), &tag, &seq]);
    let audit = s
        .mvault(&copy, &s.admin, &["audit", "verify", "--json"])
        .failure();
    let report: serde_json::Value = serde_json::from_slice(&audit.stdout).expect("JSON");
    assert_eq!(
        report["first_break"]["rule"], "not in the environment's stage",
        "{report}"
    );
    // Made again against the new tip, the demotion lands.
    s.mvault_as(
        &s.work,
        &s.admin,
        Some("admin"),
        &["promote", "nlp/bert@1.0.0", "--to", "deprecated"],
    )
    .success()
    .mentions(&["pushed to origin"]);
    // The environment is removed while the deployment stands: the record
    // stays on main, the history replays, and pull --env refuses it.
    s.mvault_as(
        &s.work,
        &s.admin,
        Some("admin"),
        &["policy", "rule", "env", "remove", "prod-eu"],
    )
    .success()
    .mentions(&["pushed to origin"]);
    s.mvault(&s.bare, &s.admin, &["audit", "verify"])
        .success()
        .mentions(&["record intact"]);
    let reader = s.stock_clone("reader");
    s.mvault(&reader, &s.bob, &["deployments"])
        .success()
        .mentions(&["prod-eu  nlp/bert@1.0.0  (production)  by alice"]);
    let out = s.path("served");
    let run = s
        .mvault(
            &reader,
            &s.bob,
            &[
                "pull",
                "nlp/bert@1.0.0",
                "--env",
                "prod-eu",
                "-o",
                path_str(&out),
            ],
        )
        .failure();
    assert!(run.stderr().contains("prod-eu"), "{}", run.output());
    assert!(!out.exists(), "a refused pull wrote {}", out.display());
    // A malicious server: alice (no admin) signs a policy commit that
    // defines "anything" (development versions of every model), forced
    // into a hook-less copy; a fresh clone of it pulls with --env.
    let forged = s.policy_commit("forged-env", &s.alice, "env add anything", |p| {
        format!("{p}\n[[environments]]\nname = \"anything\"\nstage = \"development\"\nmodels = \"**\"\n")
    });
    let evil = s.path("evil.git");
    let mut cp = s.command("cp");
    cp.arg("-a").arg(&s.bare).arg(&evil);
    s.run(cp).success();
    std::fs::remove_file(evil.join("hooks/pre-receive")).expect("remove the copy's hook");
    s.git_ok(
        &forged,
        &["push", "-q", path_str(&evil), "HEAD:refs/heads/main"],
    );
    let victim = s.git_clone(&evil, "victim");
    let out = s.path("victim-out");
    let run = s
        .mvault(
            &victim,
            &s.bob,
            &[
                "pull",
                "nlp/bert@1.0.0",
                "--env",
                "anything",
                "-o",
                path_str(&out),
            ],
        )
        .failure();
    assert_eq!(run.status.code(), Some(4), "{}", run.output());
    assert!(
        run.stderr()
            .contains("policy change not signed by an admin"),
        "{}",
        run.output()
    );
    assert!(!out.exists(), "a refused pull wrote {}", out.display());
}
