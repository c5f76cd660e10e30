//! The access review (issue 10, acceptance 6): on a scripted vault served
//! through the hook, `mvault access review` gives exactly the expected
//! table, as JSON and as text (insta snapshots), with an expired key
//! (carol), a key expiring within 30 days (erin), stale users, activity
//! from the record and from the server's log (bob's refused push), and carol's old data key
//! after the rotation that cut her off; the HTML renders in headless
//! Chromium.

use std::path::Path;
use std::time::Duration;

use crate::audit_report::{chromium, run_with_deadline, screenshot};
use crate::common::*;
use crate::hook_server::*;

/// 2026-12-15T10:00:00Z, the review's clock: after carol's expiry.
const AFTER: &str = "1797328800";

/// The scripted vault, on a hooked server:
/// - at NOW (2026-11-22): carol (viewer on nlp/*, expires 2026-12-01),
///   dave (approver on nlp/*), erin (ml_engineer on nlp/**, expires
///   2027-01-10) join; alice registers nlp/bert@1.0.0, the admin
///   vision/resnet@1.0.0; dave approves nlp/bert@1.0.0 for production;
/// - on 2026-12-10: bob pushes a commit the hook refuses;
/// - at AFTER: alice registers nlp/bert@1.1.0, which rotates the data key
///   (carol expired).
struct Scripted {
    s: Server,
    keys: Vec<Key>,
}

fn mvault_at(s: &Server, dir: &Path, key: &Key, user: &str, now: &str, args: &[&str]) -> Run {
    let mut cmd = s.mvault_command(dir, key, args);
    cmd.env("GIT_COMMITTER_NAME", user)
        .env("GIT_COMMITTER_EMAIL", format!("{user}@mvault"))
        .env("MVAULT_USER", user)
        .env("MVAULT_NOW", now);
    s.run(cmd)
}

fn scripted() -> Scripted {
    let s = Server::new();
    let now = NOW.to_string();
    let (carol, dave, erin) = (s.keygen("carol"), s.keygen("dave"), s.keygen("erin"));
    for (key, role, models, expires) in [
        (&carol, "viewer", "nlp/*", Some("2026-12-01")),
        (&dave, "approver", "nlp/*", None),
        (&erin, "ml_engineer", "nlp/**", Some("2027-01-10")),
    ] {
        let mut add = vec!["policy", "add-user", &key.name, "--key-file"];
        let public = pub_arg(key);
        add.push(&public);
        if let Some(d) = expires {
            add.extend(["--expires", d]);
        }
        mvault_at(&s, &s.work, &s.admin, "admin", &now, &add).success();
        mvault_at(
            &s,
            &s.work,
            &s.admin,
            "admin",
            &now,
            &[
                "policy", "grant", &key.name, "--role", role, "--models", models,
            ],
        )
        .success();
    }
    let add = |key: &Key, user: &str, at: &str, model: &str, version: &str, seed: u64| {
        let dir = s.model(seed);
        mvault_at(
            &s,
            &s.work,
            key,
            user,
            at,
            &[
                "add",
                path_str(&dir),
                "--model",
                model,
                "--version",
                version,
            ],
        )
        .success()
    };
    add(&s.alice, "alice", &now, "nlp/bert", "1.0.0", 1);
    add(&s.admin, "admin", &now, "vision/resnet", "1.0.0", 2);
    mvault_at(
        &s,
        &s.work,
        &dave,
        "dave",
        &now,
        &["approve", "nlp/bert@1.0.0", "--stage", "production"],
    )
    .success();
    // On 2026-12-10 bob, a viewer, pushes a commit of his own: the hook
    // refuses it, and only the server's log has him.
    let clone = s.stock_clone("bob");
    s.git_ok(&clone, &["commit", "-q", "--allow-empty", "-m", "bob's"]);
    let mut push = s.git_command(&clone, &["push", "origin", "main"]);
    push.env("MVAULT_USER", "bob")
        .env("MVAULT_NOW", "1796896800");
    s.run(push).failure();
    add(&s.alice, "alice", AFTER, "nlp/bert", "1.1.0", 3)
        .mentions(&["rotated the data key of nlp/bert: carol (expired 2026-12-01)"]);
    let keys = vec![
        s.admin.clone(),
        s.alice.clone(),
        s.bob.clone(),
        carol,
        dave,
        erin,
    ];
    Scripted { s, keys }
}

impl Scripted {
    /// `mvault access review ARGS…` on the server's repository at AFTER.
    fn review(&self, args: &[&str]) -> String {
        let mut all = vec!["access", "review"];
        all.extend_from_slice(args);
        let out = mvault_at(&self.s, &self.s.bare, &self.s.admin, "admin", AFTER, &all)
            .success()
            .stdout();
        self.redact(&out)
    }

    /// Fingerprints (new keys every run) as `<fp NAME>`.
    fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for k in &self.keys {
            out = out.replace(&self.s.fingerprint(k), &format!("<fp {}>", k.name));
        }
        out
    }
}

#[test]
fn access_review_gives_the_expected_table_as_json_and_text() {
    let v = scripted();
    let json = v.review(&["--json"]);
    let value: serde_json::Value = serde_json::from_str(&json).expect("one JSON value");
    insta::assert_snapshot!(
        "access_review_json",
        serde_json::to_string_pretty(&value).expect("pretty")
    );
    insta::assert_snapshot!("access_review_text", v.review(&[]));

    // The filter keeps the matching models only; the rest is the same.
    let only: serde_json::Value =
        serde_json::from_str(&v.review(&["--model", "vision/*", "--json"])).expect("JSON");
    let models: Vec<&str> = only["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| m["model"].as_str().expect("name"))
        .collect();
    assert_eq!(models, ["vision/resnet"]);
    assert_eq!(only["users"], value["users"]);
    // A shorter window makes the admin, last seen on 2026-11-22, stale too.
    let short: serde_json::Value =
        serde_json::from_str(&v.review(&["--stale-days", "7", "--json"])).expect("JSON");
    assert_eq!(
        short["stale_users"],
        serde_json::json!(["admin", "carol", "dave", "erin"])
    );
}

#[test]
fn access_review_html_renders_in_headless_chromium() {
    let v = scripted();
    let page = v.s.path("review.html");
    let out = v.review(&["--format", "html", "-o", path_str(&page)]);
    assert!(out.starts_with("wrote "), "{out}");
    let html = std::fs::read_to_string(&page).expect("the page");
    assert!(
        !html.contains("<script") && !html.contains("http"),
        "{html}"
    );
    let png = screenshot(&v.s, &page, "review");
    assert!(png.len() > 5_000, "the screenshot looks blank");
    let profile = v.s.path("profile-review-dom");
    let run = run_with_deadline(
        &v.s,
        chromium(&v.s, &profile, &["--dump-dom"], &page),
        Duration::from_secs(120),
    );
    assert!(
        run.status.success(),
        "chromium --dump-dom: {}",
        run.output()
    );
    let dom = run.stdout();
    for text in [
        "<h1>Access review at 2026-12-15T10:00:00Z</h1>",
        "<h2>nlp/bert</h2>",
        "<h2>vision/resnet</h2>",
        "<td class=\"expired\">expired</td>",
        "<td class=\"expiring\">expiring</td>",
        "<td class=\"stale\">stale</td>",
        "<td>expired 2026-12-01</td>",
    ] {
        assert!(dom.contains(text), "the DOM lacks {text:?}:\n{dom}");
    }
}

#[test]
fn access_review_fills_deploy_and_rollback_from_the_policy() {
    let v = scripted();
    let cell = |review: &serde_json::Value, model: &str, user: &str, ability: &str| {
        let m = review["models"]
            .as_array()
            .expect("models")
            .iter()
            .find(|m| m["model"] == model)
            .expect("the model")
            .clone();
        let row = m["access"]
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r["user"] == user)
            .expect("the user's row")
            .clone();
        (m["deploy"].clone(), row[ability].clone())
    };
    // Before: no environment, and rollback is ml_admin's only.
    let before: serde_json::Value = serde_json::from_str(&v.review(&["--json"])).expect("JSON");
    let (deploy, erin) = cell(&before, "nlp/bert", "erin", "deploy");
    assert_eq!(deploy, "not configured");
    assert!(erin.is_null(), "{erin}");
    assert!(cell(&before, "nlp/bert", "erin", "rollback").1.is_null());
    assert!(!cell(&before, "nlp/bert", "admin", "rollback").1.is_null());

    // An environment for nlp/** (deployed by ml_engineer, the default) and
    // a production rule that lets engineers roll back.
    for args in [
        &[
            "policy",
            "rule",
            "env",
            "add",
            "prod-eu",
            "--stage",
            "production",
            "--models",
            "nlp/**",
        ][..],
        &[
            "policy",
            "rule",
            "stage",
            "set",
            "--stage",
            "production",
            "--models",
            "nlp/**",
            "--rollback-role",
            "ml_engineer",
            "--first",
        ][..],
    ] {
        mvault_at(&v.s, &v.s.work, &v.s.admin, "admin", AFTER, args).success();
    }
    let after: serde_json::Value = serde_json::from_str(&v.review(&["--json"])).expect("JSON");
    let (deploy, erin) = cell(&after, "nlp/bert", "erin", "deploy");
    assert_eq!(deploy, "prod-eu");
    assert_eq!(
        erin["environments"],
        serde_json::json!(["prod-eu"]),
        "{erin}"
    );
    assert_eq!(
        erin["via"],
        serde_json::json!(["ml_engineer on nlp/**"]),
        "{erin}"
    );
    // dave approves, and deploys nowhere; vision/resnet has no environment.
    assert!(cell(&after, "nlp/bert", "dave", "deploy").1.is_null());
    assert_eq!(
        cell(&after, "vision/resnet", "admin", "deploy").0,
        "not configured"
    );
    // erin may now roll back nlp/bert; dave still may not.
    assert!(!cell(&after, "nlp/bert", "erin", "rollback").1.is_null());
    assert!(cell(&after, "nlp/bert", "dave", "rollback").1.is_null());
    // The text shows the environment in erin's deploy cell.
    let text = v.review(&[]);
    assert!(text.contains("prod-eu"), "{text}");
}
