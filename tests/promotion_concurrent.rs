//! Concurrent promotions (issue "Promotion", acceptance 3): two clones
//! promote the same model at the same moment and both claim counter `n`.
//! git creates a ref once, so exactly one lands; the other publishes
//! nothing and tells its user to run the command again.
//!
//! Two processes started together may still run one after the other (the
//! second fetching after the first landed, and then rightly taking `n+1`).
//! To make the collision certain, the server gets a `reference-transaction`
//! hook that holds a promotion's ref locks for a few seconds once they are
//! prepared: both clients have then fetched and pushed before either
//! lands. It delays, it judges nothing; the judging is the pre-receive
//! hook's and git's own.

use std::path::Path;
use std::process::{Output, Stdio};

use crate::common::*;
use crate::promotion_world::*;

/// Seconds a promotion's prepared ref transaction is held on the server.
const HOLD_SECONDS: u32 = 4;

/// Installs the delaying `reference-transaction` hook on the server.
fn hold_promotions(r: &Release) {
    let hooks = r.git_ok(&r.bare, &["rev-parse", "--git-path", "hooks"]);
    let hooks = r.bare.join(hooks);
    let script = format!(
        "#!/bin/sh\n# Test scaffolding: hold a promotion's prepared ref locks.\nlines=$(cat)\nif [ \"$1\" = prepared ]; then\n  case \"$lines\" in\n    *refs/mvault/seq/*) sleep {HOLD_SECONDS} ;;\n  esac\nfi\nexit 0\n"
    );
    let path = hooks.join("reference-transaction");
    write_file(&path, script.as_bytes());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .expect("chmod reference-transaction hook");
}

/// Starts `mvault ARGS…` as carol in clones `a` and `b` at the same time
/// and waits for both.
fn race(r: &Release, a: (&Path, &[&str]), b: (&Path, &[&str])) -> [Output; 2] {
    let spawn = |(dir, args): (&Path, &[&str])| {
        let mut cmd = r.mv_command_in(dir, &r.carol, args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.spawn().expect("spawn mvault")
    };
    let (ca, cb) = (spawn(a), spawn(b));
    [
        ca.wait_with_output().expect("wait for mvault"),
        cb.wait_with_output().expect("wait for mvault"),
    ]
}

/// Asserts exactly one of the two runs succeeded; returns the indices of
/// (winner, loser).
#[track_caller]
fn exactly_one_landed(runs: &[Output; 2]) -> (usize, usize) {
    let describe = |o: &Output| {
        format!(
            "exit {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let ok: Vec<bool> = runs.iter().map(|o| o.status.success()).collect();
    assert!(
        ok[0] != ok[1],
        "expected exactly one promotion to land:\nA: {}\nB: {}",
        describe(&runs[0]),
        describe(&runs[1])
    );
    if ok[0] {
        (0, 1)
    } else {
        (1, 0)
    }
}

/// Asserts the losing run failed with mvault's error telling its user to
/// run the same command again.
#[track_caller]
fn told_to_run_again(loser: &Output) {
    let stderr = String::from_utf8_lossy(&loser.stderr);
    assert!(
        stderr.starts_with("mvault: ")
            && stderr.to_lowercase().contains("run the same command again"),
        "the loser is not told to run the command again; stderr:\n{stderr}"
    );
}

/// Two clones promote two different versions to staging at once: both
/// claim `nlp/bert#staging#1` and seq ref 1. One lands; the other, run
/// again, takes #2.
#[test]
fn racing_promotions_of_two_versions_land_exactly_one() {
    let r = Release::new();
    r.register("1.0.0", 1);
    r.register("1.1.0", 2);
    let a = r.dir(&r.carol);
    let b = r.stock_clone("carol-2");
    hold_promotions(&r);
    let args_a: &[&str] = &["promote", "nlp/bert@1.0.0", "--to", "staging"];
    let args_b: &[&str] = &["promote", "nlp/bert@1.1.0", "--to", "staging"];
    let runs = race(&r, (&a, args_a), (&b, args_b));
    let (winner, loser) = exactly_one_landed(&runs);

    assert_eq!(
        r.server_promotion_refs(),
        vec!["refs/mvault/seq/nlp/bert/1", "refs/tags/nlp/bert#staging#1"],
        "the server must hold exactly one promotion for counter 1"
    );
    let won = ["1.0.0", "1.1.0"][winner];
    let tag = r.server_rev("refs/tags/nlp/bert#staging#1");
    assert_eq!(r.server_rev(&seq_ref(1)), tag);
    let message = r.git_ok(&r.bare, &["cat-file", "tag", &tag]);
    assert!(
        message.contains(&format!("Mvault-Version: {won}\n")),
        "the tag that landed is not the winner's ({won}):\n{message}"
    );
    // The loser's clone kept nothing of its own attempt.
    let loser_dir = [&a, &b][loser];
    let local = r.git(
        loser_dir,
        &[
            "rev-parse",
            "-q",
            "--verify",
            "refs/tags/nlp/bert#staging#1",
        ],
    );
    if local.status.success() {
        assert_eq!(local.stdout().trim(), tag, "the loser kept its own tag #1");
    }

    // Run again: it numbers the next one.
    let again = [args_a, args_b][loser];
    r.run(r.mv_command_in(loser_dir, &r.carol, again))
        .success()
        .mentions(&["nlp/bert#staging#2"]);
    assert_eq!(
        r.server_rev(&seq_ref(2)),
        r.server_rev("refs/tags/nlp/bert#staging#2")
    );
    told_to_run_again(&runs[loser]);
}

/// Two clones move the same version to two different stages at once
/// (staging → production and staging → development): the tag names
/// differ, only the seq ref of counter 2 collides — and it alone lets
/// exactly one through.
#[test]
fn racing_promotions_to_two_stages_land_exactly_one() {
    let r = Release::in_staging();
    r.approve(&r.bob, "1.0.0", "production").success();
    let a = r.dir(&r.carol);
    let b = r.stock_clone("carol-2");
    hold_promotions(&r);
    let runs = race(
        &r,
        (&a, &["promote", "nlp/bert@1.0.0", "--to", "production"]),
        (&b, &["promote", "nlp/bert@1.0.0", "--to", "development"]),
    );
    let (winner, loser) = exactly_one_landed(&runs);

    let won = ["production", "development"][winner];
    let lost = ["development", "production"][winner];
    let refs = r.server_promotion_refs();
    assert_eq!(
        refs,
        vec![
            "refs/mvault/seq/nlp/bert/1".to_owned(),
            "refs/mvault/seq/nlp/bert/2".to_owned(),
            format!("refs/tags/nlp/bert#{won}#2"),
            "refs/tags/nlp/bert#staging#1".to_owned(),
        ],
        "exactly one promotion with counter 2 (no nlp/bert#{lost}#2)"
    );
    assert_eq!(
        r.server_rev(&seq_ref(2)),
        r.server_rev(&format!("refs/tags/nlp/bert#{won}#2"))
    );
    assert_eq!(r.status(&r.carol)["versions"][0]["stage"], won);
    told_to_run_again(&runs[loser]);
}
