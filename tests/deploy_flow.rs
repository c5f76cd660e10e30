//! Environments and deployments through the hook (issue 10, acceptance 2):
//! `mvault deploy` lands a signed record on main that shows in
//! `deployments`, `log --json`, `lineage` and the HTML report (opened in
//! headless Chromium); hand-made records for a disallowed environment, a
//! version not in the required stage, a deployer without the role, and a
//! record whose signature is bad are each refused by the hook with no ref
//! moved (`Server::refused` compares the server's refs before and after,
//! and checks that the pre-push check and `audit verify` name the same
//! rule). Environments are administered with `mvault policy rule env`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::audit_report::{chromium, run_with_deadline};
use crate::common::*;
use crate::hook_server::Server;

/// The record path of nlp/bert in `env`.
fn record_path(env: &str) -> String {
    format!("deployments/{env}/nlp/bert/_deployment.toml")
}

/// A server where nlp/bert@1.0.0 is in production (alice ml_engineer on
/// nlp/*, the admin approved), 1.1.0 is in development, and the policy
/// defines prod-eu (production, nlp/**), vision-prod (production,
/// vision/**) and qa (staging, **, deployed by approvers). bob stays a
/// viewer.
fn deploy_server() -> Server {
    let s = Server::with_version();
    let admin = |args: &[&str]| {
        s.mvault_as(&s.work, &s.admin, Some("admin"), args)
            .success()
            .mentions(&["pushed to"]);
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
    admin(&[
        "policy",
        "rule",
        "env",
        "add",
        "vision-prod",
        "--stage",
        "production",
        "--models",
        "vision/**",
    ]);
    admin(&[
        "policy",
        "rule",
        "env",
        "add",
        "qa",
        "--stage",
        "staging",
        "--models",
        "**",
        "--deploy-role",
        "approver",
    ]);
    let alice = |args: &[&str]| {
        s.mvault_as(&s.work, &s.alice, Some("alice"), args)
            .success();
    };
    alice(&["promote", "nlp/bert@1.0.0", "--to", "staging"]);
    admin(&["approve", "nlp/bert@1.0.0", "--stage", "production"]);
    alice(&["promote", "nlp/bert@1.0.0", "--to", "production"]);
    let model = s.model(7);
    s.add(&s.work, &s.alice, Some("alice"), &model, "1.1.0", &[])
        .success();
    s
}

/// The unix time a commit on `clone`'s HEAD gets from stock git in the
/// tests (`TestEnv::git_command`): NOW, or HEAD's date when later.
fn next_commit_time(s: &Server, clone: &Path) -> i64 {
    let head: i64 = s
        .git_ok(clone, &["log", "-1", "--format=%ct"])
        .parse()
        .expect("a date");
    head.max(NOW as i64)
}

fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .expect("a time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formats")
}

/// A stock clone where `signer` committed (stock `git commit -S`) a
/// deployment record of nlp/bert@`version` to `env`, written by hand in
/// the canonical form of docs/formats.md, at `path` (the env's own record
/// path unless given), with `bend` applied to the record's text.
fn hand_made(
    s: &Server,
    name: &str,
    signer: &Key,
    env: &str,
    version: &str,
    stage: &str,
    bend: impl FnOnce(String) -> String,
) -> PathBuf {
    let clone = s.stock_clone(name);
    let manifest = s.git_show_bytes(
        &clone,
        &format!("HEAD:models/nlp/bert/{version}/manifest.toml"),
    );
    let digest = sha256_hex(&manifest);
    let when = rfc3339(next_commit_time(s, &clone));
    let record = bend(format!(
        "environment = \"{env}\"\nmodel = \"nlp/bert\"\nversion = \"{version}\"\nstage = \"{stage}\"\nmanifest_sha256 = \"{digest}\"\ndeployed_by = \"{}\"\ntime = \"{when}\"\nreason = \"by hand\"\n",
        signer.name
    ));
    s.stage(&clone, &record_path(env), record.as_bytes(), "100644");
    let message = format!(
        "deploy nlp/bert@{version} to {env}\n\nby hand\n\nMvault-Action: deploy\nMvault-Model: nlp/bert\nMvault-Version: {version}\nMvault-Environment: {env}\nMvault-Manifest-Sha256: {digest}\n"
    );
    s.commit_index(&clone, Some(signer), &["-m", &message]);
    clone
}

#[test]
fn a_deployment_lands_and_shows_in_deployments_log_lineage_and_the_html_report() {
    require_program("chromium", "chromium");
    let s = deploy_server();
    let before = s.server_rev("main");
    let run = s
        .mvault_as(
            &s.work,
            &s.alice,
            Some("alice"),
            &[
                "deploy",
                "nlp/bert#production",
                "--env",
                "prod-eu",
                "--reason",
                "CHG-1",
            ],
        )
        .success()
        .mentions(&[
            "deployed nlp/bert@1.0.0 (production) to prod-eu",
            "pushed to origin",
        ]);
    let after = s.server_rev("main");
    assert_ne!(
        before,
        after,
        "the server's main did not move:\n{}",
        run.output()
    );
    // The record on the server, as formats.md says.
    let record =
        String::from_utf8(s.git_show_bytes(&s.bare, &format!("main:{}", record_path("prod-eu"))))
            .expect("UTF-8 record");
    for line in [
        "environment = \"prod-eu\"\n",
        "version = \"1.0.0\"\n",
        "stage = \"production\"\n",
        "deployed_by = \"alice\"\n",
        "reason = \"CHG-1\"\n",
    ] {
        assert!(
            record.contains(line),
            "the record lacks {line:?}:\n{record}"
        );
    }
    // The server replays it, from the root keys.
    s.mvault(&s.bare, &s.admin, &["audit", "verify"])
        .success()
        .mentions(&["record intact"]);
    // deployments, text and JSON, in a fresh clone of the server.
    let clone = s.stock_clone("auditor");
    s.mvault(&clone, &s.bob, &["deployments"])
        .success()
        .mentions(&[
            "prod-eu  nlp/bert@1.0.0  (production)  by alice",
            "alice deployed nlp/bert@1.0.0 to prod-eu: CHG-1",
        ]);
    let json: serde_json::Value = serde_json::from_slice(
        &s.mvault(&clone, &s.bob, &["deployments", "nlp/bert", "--json"])
            .success()
            .stdout,
    )
    .expect("JSON");
    assert_eq!(json["current"].as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!(json["current"][0]["environment"], "prod-eu");
    assert_eq!(json["current"][0]["version"], "1.0.0");
    assert_eq!(json["history"][0]["action"], "deploy");
    // log --json: the deploy event, with its environment and reason.
    let log = s
        .mvault(&clone, &s.bob, &["log", "--json", "--action", "deploy"])
        .success()
        .stdout();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(events.len(), 1, "{log}");
    let e = &events[0];
    assert_eq!(e["actor"], "alice");
    assert_eq!(e["model"], "nlp/bert");
    assert_eq!(e["version"], "1.0.0");
    assert_eq!(e["environment"], "prod-eu");
    assert_eq!(e["reason"], "CHG-1");
    assert_eq!(e["source"], after.as_str());
    // lineage.
    s.mvault(&clone, &s.bob, &["lineage", "nlp/bert"])
        .success()
        .mentions(&["deployed to prod-eu"]);
    // The HTML report, opened in headless Chromium: the deployments table
    // holds the deployment.
    let report = s.path("report.html");
    s.mvault(
        &clone,
        &s.bob,
        &[
            "report",
            "nlp/bert",
            "--format",
            "html",
            "-o",
            path_str(&report),
        ],
    )
    .success();
    let profile = s.path("profile-deploy");
    let cmd = chromium(&s, &profile, &["--dump-dom"], &report);
    let run = run_with_deadline(&s, cmd, Duration::from_secs(120));
    assert!(
        run.status.success(),
        "chromium --dump-dom failed: {}",
        run.output()
    );
    let dom = run.stdout();
    let start = dom
        .find("<table id=\"deployments\">")
        .unwrap_or_else(|| panic!("the DOM has no deployments table:\n{dom}"));
    let table = &dom[start..start + dom[start..].find("</table>").expect("closed")];
    for cell in [
        "<td>1.0.0</td>",
        "<td>prod-eu</td>",
        "<td>alice</td>",
        "<td>CHG-1</td>",
    ] {
        assert!(
            table.contains(cell),
            "the deployments table lacks {cell}:\n{table}"
        );
    }
    // A second deployment of the same version replaces the record.
    s.mvault_as(
        &s.work,
        &s.alice,
        Some("alice"),
        &["deploy", "nlp/bert@1.0.0", "--env", "prod-eu", "--json"],
    )
    .success()
    .mentions(&["\"previous\":\"1.0.0\""]);
}

#[test]
fn the_hook_refuses_a_disallowed_environment_with_no_ref_moved() {
    let s = deploy_server();
    // vision-prod serves vision/** only.
    let clone = hand_made(
        &s,
        "vision",
        &s.alice,
        "vision-prod",
        "1.0.0",
        "production",
        |t| t,
    );
    let run = s.refused_main(&clone, Some("alice"), "environment not allowed");
    assert!(
        run.stderr()
            .contains("serves models vision/**, not nlp/bert"),
        "{}",
        run.stderr()
    );
    // An environment the policy never defined.
    let clone = hand_made(
        &s,
        "nowhere",
        &s.alice,
        "prod-us",
        "1.0.0",
        "production",
        |t| t,
    );
    let run = s.refused_main(&clone, Some("alice"), "unknown environment");
    assert!(
        run.stderr().contains("did you mean prod-eu"),
        "{}",
        run.stderr()
    );
}

#[test]
fn the_hook_refuses_a_version_not_in_the_required_stage_with_no_ref_moved() {
    let s = deploy_server();
    // 1.1.0 is in development; the record claims production.
    let clone = hand_made(
        &s,
        "early",
        &s.alice,
        "prod-eu",
        "1.1.0",
        "production",
        |t| t,
    );
    let run = s.refused_main(&clone, Some("alice"), "not in the environment's stage");
    assert!(
        run.stderr()
            .contains("nlp/bert@1.1.0 is in development; prod-eu takes versions in production"),
        "{}",
        run.stderr()
    );
    // The client says so before writing anything.
    s.mvault_as(
        &s.work,
        &s.alice,
        Some("alice"),
        &["deploy", "nlp/bert@1.1.0", "--env", "prod-eu"],
    )
    .failure()
    .mentions(&["is not deployable to prod-eu", "in development", "hint: "]);
}

#[test]
fn the_hook_refuses_a_deployer_without_the_role_with_no_ref_moved() {
    let s = deploy_server();
    // bob is a viewer; prod-eu is deployed by ml_engineer.
    let clone = hand_made(&s, "bob", &s.bob, "prod-eu", "1.0.0", "production", |t| t);
    let run = s.refused_main(&clone, Some("bob"), "role");
    assert!(
        run.stderr()
            .contains("deploy needs ml_engineer (to prod-eu)"),
        "{}",
        run.stderr()
    );
    // alice's honest record pushed by bob: the pusher lacks the role.
    let clone = hand_made(
        &s,
        "relay",
        &s.alice,
        "prod-eu",
        "1.0.0",
        "production",
        |t| t,
    );
    s.refused_main(&clone, Some("bob"), "pusher role");
    // The client refuses bob too.
    s.mvault_as(
        &s.work,
        &s.bob,
        Some("bob"),
        &["deploy", "nlp/bert#production", "--env", "prod-eu"],
    )
    .failure()
    .mentions(&["deploy needs ml_engineer"]);
}

#[test]
fn the_hook_refuses_a_hand_made_record_with_a_bad_signature_with_no_ref_moved() {
    let s = deploy_server();
    // An honest deployment made locally, then its message edited: the
    // signature no longer covers the commit.
    let clone = s.stock_clone("forger");
    s.mvault_as(
        &clone,
        &s.alice,
        None,
        &[
            "deploy",
            "nlp/bert#production",
            "--env",
            "prod-eu",
            "--reason",
            "CHG-9",
            "--no-push",
        ],
    )
    .success();
    let original = String::from_utf8(s.git(&clone, &["cat-file", "commit", "HEAD"]).stdout)
        .expect("UTF-8 commit");
    assert!(original.contains("gpgsig "), "mvault signs its commits");
    let forged = original.replacen("\nCHG-9\n", "\nCHG-0\n", 1);
    assert_ne!(forged, original);
    let cmd = s.git_command(&clone, &["hash-object", "-t", "commit", "-w", "--stdin"]);
    let id = s
        .run_with_input(cmd, forged.as_bytes())
        .success()
        .stdout()
        .trim()
        .to_owned();
    s.git_ok(&clone, &["update-ref", "refs/heads/main", &id]);
    s.refused_main(&clone, Some("alice"), "bad commit signature");
    // A record signed by a key the policy does not know.
    let clone = hand_made(
        &s,
        "mallory",
        &s.mallory,
        "prod-eu",
        "1.0.0",
        "production",
        |t| t.replace("deployed_by = \"mallory\"", "deployed_by = \"alice\""),
    );
    s.refused_main(&clone, Some("alice"), "unknown signer");
}

#[test]
fn the_hook_refuses_records_that_lie_about_what_they_deploy() {
    let s = deploy_server();
    // Backdated: the record claims an earlier time than its commit.
    let clone = hand_made(
        &s,
        "backdated",
        &s.alice,
        "prod-eu",
        "1.0.0",
        "production",
        |t| {
            let at = t.find("time = \"").expect("time") + 8;
            let end = at + t[at..].find('"').expect("closed");
            format!("{}2020-01-01T00:00:00Z{}", &t[..at], &t[end..])
        },
    );
    s.refused_main(&clone, Some("alice"), "bad deployment");
    // A version that does not exist.
    let clone = s.stock_clone("ghost");
    let message = "deploy nlp/bert@9.9.9 to prod-eu\n\nMvault-Action: deploy\nMvault-Model: nlp/bert\nMvault-Version: 9.9.9\nMvault-Environment: prod-eu\nMvault-Manifest-Sha256: 0000000000000000000000000000000000000000000000000000000000000000\n";
    s.stage(
        &clone,
        &record_path("prod-eu"),
        b"version = \"9.9.9\"\n",
        "100644",
    );
    s.commit_index(&clone, Some(&s.alice), &["-m", message]);
    let run = s.refused_main(&clone, Some("alice"), "bad deployment");
    assert!(
        run.stderr().contains("nlp/bert@9.9.9 is not in the vault"),
        "{}",
        run.stderr()
    );
    // The record mixed with a version in one commit: a prepared
    // registration with a record added to it.
    let clone = s.prepared("mixed", &s.alice, "1.2.0");
    s.rewrite_head(&clone, Some(&s.alice), |c| {
        s.stage(c, &record_path("prod-eu"), b"smuggled\n", "100644");
    });
    s.refused_main(&clone, Some("alice"), "file outside version directory");
}

#[test]
fn pull_for_an_environment_refuses_a_version_that_may_not_go_there() {
    let s = deploy_server();
    let out = s.path("serve");
    s.mvault(
        &s.work,
        &s.alice,
        &[
            "pull",
            "nlp/bert#production",
            "--env",
            "prod-eu",
            "-o",
            path_str(&out),
        ],
    )
    .success();
    assert!(
        std::fs::read_dir(&out).is_ok_and(|mut d| d.next().is_some()),
        "the pull wrote nothing"
    );
    for (reference, env, says) in [
        (
            "nlp/bert@1.1.0",
            "prod-eu",
            "it is in development; prod-eu takes versions in production",
        ),
        (
            "nlp/bert@1.0.0",
            "qa",
            "it is in production; qa takes versions in staging",
        ),
        (
            "nlp/bert#production",
            "vision-prod",
            "serves models vision/**, not nlp/bert",
        ),
        (
            "nlp/bert#production",
            "prod-us",
            "defines no environment \"prod-us\"",
        ),
    ] {
        let dest = s.path(&format!("refused-{env}"));
        let run = s
            .mvault(
                &s.work,
                &s.alice,
                &["pull", reference, "--env", env, "-o", path_str(&dest)],
            )
            .failure()
            .mentions(&[says, "hint: "]);
        assert_eq!(run.status.code(), Some(3), "{}", run.output());
        assert!(!dest.exists(), "a refused pull wrote {}", dest.display());
    }
}

#[test]
fn environments_round_trip_through_policy_rule_and_policy_check() {
    let s = deploy_server();
    let admin = |args: &[&str]| s.mvault_as(&s.work, &s.admin, Some("admin"), args);
    admin(&[
        "policy",
        "rule",
        "env",
        "change",
        "prod-eu",
        "--deploy-role",
        "approver",
    ])
    .success()
    .mentions(&["env-change prod-eu deploy_role approver"]);
    admin(&["policy", "rule", "env", "remove", "vision-prod"]).success();
    admin(&["policy", "rule", "env", "remove", "vision-prod"])
        .failure()
        .mentions(&["vision-prod"]);
    admin(&[
        "policy", "rule", "env", "add", "qa", "--stage", "staging", "--models", "**",
    ])
    .failure()
    .mentions(&["defined once"]);
    // Only an admin changes environments.
    s.mvault_as(
        &s.work,
        &s.alice,
        Some("alice"),
        &[
            "policy",
            "rule",
            "env",
            "add",
            "dev",
            "--stage",
            "development",
            "--models",
            "**",
        ],
    )
    .failure();
    let shown = s
        .mvault(&s.work, &s.admin, &["policy", "show"])
        .success()
        .stdout();
    assert!(
        shown.contains("[[environments]]\nname = \"prod-eu\"\nstage = \"production\"\nmodels = \"nlp/**\"\ndeploy_role = \"approver\"\n"),
        "{shown}"
    );
    assert!(!shown.contains("vision-prod"), "{shown}");
    // What policy rule wrote passes policy check; a misspelt key does not.
    let file = s.path("policy.toml");
    write_file(&file, shown.as_bytes());
    s.mvault(&s.work, &s.admin, &["policy", "check", path_str(&file)])
        .success();
    let bad = shown.replace("deploy_role = \"approver\"", "deploy_rol = \"approver\"");
    write_file(&file, bad.as_bytes());
    let line = bad
        .lines()
        .position(|l| l.starts_with("deploy_rol "))
        .expect("the line")
        + 1;
    let run = s
        .mvault(&s.work, &s.admin, &["policy", "check", path_str(&file)])
        .failure()
        .mentions(&[&format!(
            "line {line}, column 1: unknown field `deploy_rol`"
        )]);
    assert_eq!(run.status.code(), Some(4));
    // The changed deploy role holds at the hook's client: alice may no
    // longer deploy to prod-eu.
    s.mvault_as(
        &s.work,
        &s.alice,
        Some("alice"),
        &["deploy", "nlp/bert#production", "--env", "prod-eu"],
    )
    .failure()
    .mentions(&["deploy needs approver (to prod-eu)"]);
}
