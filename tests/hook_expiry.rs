//! Expiry cuts readers off going forward (issue 10, acceptance 7): the
//! first version registered after one of a model's readers has expired
//! gives the model a new data key that the expired reader's key cannot
//! open, and the hook refuses a version dated after the expiry that keeps
//! the old key. Checked with the stock `age` CLI, pushed with stock git.

use std::path::Path;

use crate::common::*;
use crate::hook_server::*;

/// 2026-12-15T10:00:00Z: after carol's expiry.
const AFTER: &str = "1797328800";
const EXPIRES: &str = "2026-12-01";
const RING: &str = ".mvault/keys/nlp/bert.age";

/// A server where carol, a viewer on `nlp/*` whose key expires on
/// 2026-12-01, was a reader when alice registered `nlp/bert@1.0.0`.
fn with_expiring_reader() -> (Server, Key) {
    let s = Server::new();
    let carol = s.keygen("carol");
    for args in [
        vec![
            "policy",
            "add-user",
            "carol",
            "--key-file",
            carol.public.to_str().expect("utf-8"),
            "--expires",
            EXPIRES,
        ],
        vec![
            "policy", "grant", "carol", "--role", "viewer", "--models", "nlp/*",
        ],
    ] {
        s.mvault_as(&s.work, &s.admin, Some("admin"), &args)
            .success();
    }
    let model = s.model(1);
    s.add(&s.work, &s.alice, Some("alice"), &model, "1.0.0", &[])
        .success();
    (s, carol)
}

/// `age -d -i IDENTITY FILE`.
fn age_decrypt(s: &Server, identity: &Path, file: &Path) -> Run {
    let mut cmd = s.command("age");
    cmd.arg("-d").arg("-i").arg(identity).arg(file);
    s.run(cmd)
}

/// The first part of the first file of `nlp/bert@VERSION` on the server,
/// written to a file.
fn first_part(s: &Server, version: &str) -> std::path::PathBuf {
    let m = s.manifest_at(&s.bare, "main", version);
    let part = &m.files[0].parts[0].sha256;
    let out = s.path(&format!("part-{version}.age"));
    s.git_show_to(&s.bare, &part_rev("nlp/bert", version, part), &out);
    out
}

#[test]
fn the_first_version_after_a_readers_expiry_rotates_the_data_key() {
    let (s, carol) = with_expiring_reader();
    // Before: carol opens the ring, and keeps what it held.
    let old_ring = s.path("ring-1.0.0.age");
    s.git_show_to(&s.bare, &format!("main:{RING}"), &old_ring);
    let old_keys = s.path("old-keys.txt");
    write_file(
        &old_keys,
        &age_decrypt(&s, &carol.private, &old_ring).success().stdout,
    );

    // alice registers 1.1.0 after carol's expiry, and it is pushed.
    let model = s.model(3);
    let mut cmd = s.mvault_command(
        &s.work,
        &s.alice,
        &[
            "add",
            path_str(&model),
            "--model",
            "nlp/bert",
            "--version",
            "1.1.0",
            "--json",
        ],
    );
    cmd.env("GIT_COMMITTER_NAME", "alice")
        .env("GIT_COMMITTER_EMAIL", "alice@mvault")
        .env("MVAULT_USER", "alice")
        .env("MVAULT_NOW", AFTER);
    let out: serde_json::Value =
        serde_json::from_slice(&s.run(cmd).success().stdout).expect("add --json");
    assert_eq!(
        out["key_rotated_for"],
        serde_json::json!(["carol (expired 2026-12-01)"])
    );
    assert_eq!(out["pushed"]["remote"], "origin", "{out}");

    // The server's ring: bob (an active reader) opens it, carol no longer.
    let new_ring = s.path("ring-1.1.0.age");
    s.git_show_to(&s.bare, &format!("main:{RING}"), &new_ring);
    age_decrypt(&s, &carol.private, &new_ring).failure();
    let bob_keys = s.path("bob-keys.txt");
    let opened = age_decrypt(&s, &s.bob.private, &new_ring).success();
    assert_eq!(opened.stdout().matches("AGE-SECRET-KEY-").count(), 2);
    write_file(&bob_keys, &opened.stdout);

    // The new version uses a new data key: the old one does not open its
    // payload, the new ring does. 1.0.0 stays readable with the old key.
    let (m0, m1) = (
        s.manifest_at(&s.bare, "main", "1.0.0"),
        s.manifest_at(&s.bare, "main", "1.1.0"),
    );
    assert_ne!(m0.str("data_key"), m1.str("data_key"));
    let part = first_part(&s, "1.1.0");
    age_decrypt(&s, &old_keys, &part).failure();
    age_decrypt(&s, &bob_keys, &part).success();
    age_decrypt(&s, &old_keys, &first_part(&s, "1.0.0")).success();

    // The record says so, and replays.
    let log = s
        .mvault(
            &s.bare,
            &s.admin,
            &["log", "--json", "--action", "key-rotation"],
        )
        .success()
        .stdout();
    assert!(log.contains("\"version\":\"1.1.0\""), "{log}");
    s.mvault(&s.bare, &s.admin, &["audit", "verify"])
        .success()
        .mentions(&["record intact"]);
}

/// A version made before the expiry keeps the old key and lands when it
/// is pushed after it (its dates are honest: the ring is judged at the
/// commit's date); the same version re-dated after the expiry, still on
/// the old key, is refused.
#[test]
fn a_version_dated_after_a_readers_expiry_must_rotate_the_data_key() {
    let (s, _carol) = with_expiring_reader();
    let payload = "refs/mvault/data/nlp/bert/1.1.0";
    let push = |clone: &Path| {
        let mut cmd = s.git_command(clone, &["push", "--atomic", "origin", "main", payload]);
        cmd.env("MVAULT_USER", "alice").env("MVAULT_NOW", AFTER);
        s.run(cmd)
    };

    let redated = s.prepared("redated", &s.alice, "1.1.0");
    let orig = s.git_ok(&redated, &["rev-parse", "HEAD"]);
    s.git_ok(&redated, &["reset", "-q", "--soft", "HEAD~1"]);
    let mut cmd = s.git_signing_command(
        &redated,
        &s.alice,
        &[
            "commit",
            "-q",
            "--no-verify",
            "-S",
            "-C",
            &orig,
            "--reset-author",
        ],
    );
    let date = format!("{AFTER} +0000");
    cmd.env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_DATE", &date);
    s.run(cmd).success();
    let before = s.server_refs();
    let run = push(&redated).failure();
    assert_refusal(&run, "refs/heads/main", "key ring recipients");
    let run = run.mentions(&["carol (expired 2026-12-01)", "rotate"]);
    assert_eq!(s.server_refs(), before, "a ref moved: {}", run.stderr());

    let honest = s.prepared("honest", &s.alice, "1.1.0");
    push(&honest).success();
    s.mvault(&s.bare, &s.admin, &["audit", "verify"])
        .success()
        .mentions(&["record intact"]);
}
