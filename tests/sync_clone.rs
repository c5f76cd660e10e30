//! `mvault sync` and the README's clone flow (issue 12, acceptance 5).
//!
//! - A stale clone (the server moved on: a new version and its promotion
//!   to production) is brought up to date by `mvault sync`, after which
//!   `#production` names the new version and `pull` gets its files.
//! - `sync` refuses what `pull`'s refresh refuses: a tag the server offers
//!   that differs from the clone's own.
//! - The README's flow, from `mvault init` to a serving clone made with
//!   `git clone --no-checkout`, end to end with stock git where the README
//!   uses it; `git pull` there and `mvault sync` both bring the record
//!   forward (README, "Clones hold the record only").

use std::path::Path;

use crate::common::*;
use crate::promotion_world::*;

/// `show nlp/bert#production --json` in `dir` as `key`: the version.
fn production(r: &Release, dir: &Path, key: &Key) -> String {
    let run = r
        .run(r.mv_command_in(dir, key, &["show", "nlp/bert#production", "--json"]))
        .success();
    let v: serde_json::Value = serde_json::from_str(run.stdout().trim()).expect("show --json");
    v["summary"]["version"]
        .as_str()
        .unwrap_or_else(|| panic!("show --json has no summary.version: {v}"))
        .to_owned()
}

#[test]
fn sync_brings_a_stale_clone_up_to_date_then_pull_by_stage_works() {
    let r = Release::in_production();
    let stale = r.git_clone(&r.bare, "stale");
    assert_eq!(production(&r, &stale, &r.bob), "1.0.0");

    // The server moves on: 1.1.0 registered and promoted to production.
    let newer = r.register("1.1.0", 2);
    r.promote(&r.carol, "1.1.0", "staging").success();
    r.approve(&r.dave, "1.1.0", "production").success();
    r.promote(&r.carol, "1.1.0", "production").success();
    // The stale clone still says 1.0.0: nothing but sync (or pull) looks.
    assert_eq!(production(&r, &stale, &r.bob), "1.0.0");

    r.run(r.mv_command_in(&stale, &r.bob, &["sync"]))
        .success()
        .mentions(&[
            "main fast-forwarded",
            "new tag nlp/bert@v1.1.0",
            "new tag nlp/bert#production#4",
            "record verified",
        ]);
    assert_eq!(
        r.git_ok(&stale, &["rev-parse", "main"]),
        r.server_rev("refs/heads/main")
    );
    assert_eq!(production(&r, &stale, &r.bob), "1.1.0");
    let out = r.path("serve");
    r.run(r.mv_command_in(
        &stale,
        &r.bob,
        &["pull", "nlp/bert#production", "-o", path_str(&out)],
    ))
    .success();
    assert_same_tree(&newer, &out);

    // Again: nothing new.
    let run = r
        .run(r.mv_command_in(&stale, &r.bob, &["sync", "--json"]))
        .success();
    let o: serde_json::Value = serde_json::from_str(run.stdout().trim()).expect("sync --json");
    assert_eq!(o["commits"], 0, "{o}");
    assert_eq!(o["new_tags"], serde_json::json!([]), "{o}");
    assert_eq!(o["remote"], "origin", "{o}");
}

#[test]
fn sync_refuses_a_tag_the_server_changed_and_moves_nothing() {
    let r = Release::in_production();
    let stale = r.git_clone(&r.bare, "stale");
    r.register("1.1.0", 2);
    // The clone has its own `nlp/bert@v1.1.0` (here on another commit);
    // the server's differs: a published tag never changes.
    let other = r.git_ok(&stale, &["rev-parse", "main"]);
    r.git_ok(&stale, &["tag", "nlp/bert@v1.1.0", &other]);
    let before = r.git_ok(&stale, &["for-each-ref"]);
    let run = r
        .run(r.mv_command_in(&stale, &r.bob, &["sync"]))
        .mvault_error()
        .mentions(&["nlp/bert@v1.1.0", "a published tag never changes"]);
    assert_eq!(run.status.code(), Some(4), "{}", run.stderr());
    assert_eq!(r.git_ok(&stale, &["for-each-ref"]), before, "a ref moved");
}

#[test]
fn sync_without_a_remote_says_how_to_add_one() {
    let r = Release::in_production();
    let clone = r.git_clone(&r.bare, "lonely");
    r.git_ok(&clone, &["remote", "remove", "origin"]);
    let run = r
        .run(r.mv_command_in(&clone, &r.bob, &["sync"]))
        .mvault_error()
        .mentions(&["no remote", "git remote add origin"]);
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr());
}

/// The README, top to bottom, with stock git where it uses stock git: a
/// vault created and pushed to a hooked bare repository, people cloning it
/// with `git clone`, a version registered, approved and promoted, and a
/// serving clone made with `git clone --no-checkout` that pulls by stage;
/// then the server moves on and the serving clone catches up with
/// `git pull` (it works there, see README) and, the mvault way, with
/// `mvault sync`.
#[test]
fn readme_clone_flow_end_to_end() {
    let env = TestEnv::new();
    let admin = env.keygen("admin");
    let alice = env.keygen("alice");
    let bob = env.keygen("bob");
    let mv = |dir: &Path, key: &Key, user: &str, args: &[&str]| -> Run {
        let mut cmd = env.mvault_command(dir, key, args);
        cmd.env("MVAULT_USER", user)
            .env("GIT_COMMITTER_NAME", user)
            .env("GIT_COMMITTER_EMAIL", format!("{user}@mvault"));
        env.run(cmd)
    };
    let git = |dir: &Path, user: &str, args: &[&str]| -> Run {
        let mut cmd = env.git_command(dir, args);
        cmd.env("MVAULT_USER", user);
        env.run(cmd)
    };
    let root = env.root().to_owned();
    let models = env.path("models");
    let server = env.path("server.git");

    // "Create a vault", "Set up the server".
    mv(
        &root,
        &admin,
        "admin",
        &["init", "models", "--admin-key", path_str(&admin.public)],
    )
    .success();
    env.git_ok(&root, &["init", "-q", "--bare", "server.git"]);
    mv(
        &root,
        &admin,
        "admin",
        &[
            "hook",
            "install",
            "server.git",
            "--root-key",
            path_str(&admin.public),
        ],
    )
    .success();
    mv(&root, &admin, "admin", &["hook", "check", "server.git"]).success();
    git(
        &models,
        "admin",
        &["remote", "add", "origin", path_str(&server)],
    )
    .success();
    git(&models, "admin", &["push", "-q", "-u", "origin", "main"]).success();

    // "Users and grants" (pushed at once: the clone has a remote).
    for (user, key) in [("alice", &alice), ("bob", &bob)] {
        mv(
            &models,
            &admin,
            "admin",
            &[
                "policy",
                "add-user",
                user,
                "--key-file",
                path_str(&key.public),
            ],
        )
        .success()
        .mentions(&["origin"]);
    }
    for (user, role) in [
        ("alice", "developer"),
        ("alice", "ml_engineer"),
        ("bob", "approver"),
    ] {
        mv(
            &models,
            &admin,
            "admin",
            &["policy", "grant", user, "--role", role, "--models", "nlp/*"],
        )
        .success();
    }

    // alice works in a plain `git clone`; "Register a version" pushes.
    env.git_ok(&root, &["clone", "-q", "server.git", "alice"]);
    let work = env.path("alice");
    let first = env.path("bert-1");
    sample_model(&first, 50_000, 1);
    mv(
        &work,
        &alice,
        "alice",
        &[
            "add",
            path_str(&first),
            "--model",
            "nlp/bert",
            "--version",
            "1.0.0",
        ],
    )
    .success()
    .mentions(&["pushed to origin"]);
    // "Approve, promote, roll back": bob approves in his own clone.
    env.git_ok(&root, &["clone", "-q", "server.git", "bob"]);
    let bob_dir = env.path("bob");
    mv(
        &work,
        &alice,
        "alice",
        &["promote", "nlp/bert@1.0.0", "--to", "staging"],
    )
    .success();
    mv(
        &bob_dir,
        &bob,
        "bob",
        &["approve", "nlp/bert@1.0.0", "--stage", "production"],
    )
    .success();
    mv(
        &work,
        &alice,
        "alice",
        &["promote", "nlp/bert@1.0.0", "--to", "production"],
    )
    .success();

    // The serving clone: `git clone --no-checkout`, then pull by stage.
    env.git_ok(
        &root,
        &["clone", "-q", "--no-checkout", "server.git", "serving"],
    );
    let serving = env.path("serving");
    let out = env.path("srv-1");
    mv(
        &serving,
        &bob,
        "bob",
        &["pull", "nlp/bert#production", "-o", path_str(&out)],
    )
    .success();
    assert_same_tree(&first, &out);
    mv(&serving, &bob, "bob", &["status", "nlp/bert"])
        .success()
        .mentions(&["production   1.0.0"]);

    // The server moves on: 1.1.0 through production.
    let second = env.path("bert-2");
    sample_model(&second, 50_000, 2);
    mv(
        &work,
        &alice,
        "alice",
        &[
            "add",
            path_str(&second),
            "--model",
            "nlp/bert",
            "--version",
            "1.1.0",
            "--parent",
            "1.0.0",
        ],
    )
    .success();
    mv(
        &work,
        &alice,
        "alice",
        &["promote", "nlp/bert@1.1.0", "--to", "staging"],
    )
    .success();
    mv(&bob_dir, &bob, "bob", &["sync"]).success();
    mv(
        &bob_dir,
        &bob,
        "bob",
        &["approve", "nlp/bert@1.1.0", "--stage", "production"],
    )
    .success();
    mv(
        &work,
        &alice,
        "alice",
        &["promote", "nlp/bert@1.1.0", "--to", "production"],
    )
    .success();

    // `git pull` in the --no-checkout clone: it fast-forwards main and
    // follows the tags on it; the clone has no work tree to keep.
    git(&serving, "bob", &["pull", "-q", "--ff-only"]).success();
    assert_eq!(
        env.git_ok(&serving, &["rev-parse", "main"]),
        env.git_ok(&server, &["rev-parse", "main"])
    );
    mv(&serving, &bob, "bob", &["status", "nlp/bert"])
        .success()
        .mentions(&["production   1.1.0"]);
    // `mvault sync` finds nothing left to do, and says so.
    mv(&serving, &bob, "bob", &["sync"])
        .success()
        .mentions(&["up to date"]);
    let out2 = env.path("srv-2");
    mv(
        &serving,
        &bob,
        "bob",
        &["pull", "nlp/bert#production", "-o", path_str(&out2)],
    )
    .success();
    assert_same_tree(&second, &out2);
    // And the audit commands of the README run there too.
    mv(&serving, &bob, "bob", &["audit", "verify"]).success();
    mv(&serving, &bob, "bob", &["lineage", "nlp/bert"])
        .success()
        .mentions(&["1.1.0 [production]"]);
}
