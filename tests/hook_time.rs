//! Dates are claims that cannot be backdated (docs/hook.md, "Which policy
//! and which time judge each object"): a commit is not dated before its
//! parent, a manifest's `created` not before the parent commit, a tag not
//! before its commit, and nothing after the server's clock plus the skew.
//! The hook's clock is `MVAULT_NOW` in the pusher's environment (a local
//! push runs the hook with it), `NOW` unless a test sets another. Each
//! forged date is also forced into a copy without the hook, where `audit
//! verify` names the same rule, except "dated in the future": a replay
//! cannot know the server's clock when the object arrived (push only).

use std::path::{Path, PathBuf};

use crate::common::*;
use crate::forged::*;
use crate::hook_server::*;
use crate::unhooked::*;

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;
const TAG: &str = "nlp/bert@v2.0.0";

/// `Server::prepared`, with the client's clock at `now`: a stock clone
/// where alice has built nlp/bert@2.0.0 with `mvault add --no-push`.
fn prepared_at(s: &Server, name: &str, now: u64) -> PathBuf {
    let clone = s.stock_clone(name);
    let model = s.model(2);
    let mut cmd = s.mvault_command(
        &clone,
        &s.alice,
        &[
            "add",
            path_str(&model),
            "--model",
            "nlp/bert",
            "--version",
            "2.0.0",
            "--no-push",
        ],
    );
    as_key_owner(&mut cmd, &s.alice).env("MVAULT_NOW", now.to_string());
    s.run(cmd).success();
    clone
}

/// Stock `git push ARGS…` from `dir` as `pusher`, the server's clock at `now`.
fn push_at(s: &Server, dir: &Path, pusher: &str, args: &[&str], now: u64) -> Run {
    let owned = s.with_payloads(dir, args);
    let mut full = vec!["push", "--atomic"];
    full.extend(owned.iter().map(String::as_str));
    let mut cmd = s.git_command(dir, &full);
    cmd.env("MVAULT_USER", pusher)
        .env("MVAULT_NOW", now.to_string());
    s.run(cmd)
}

/// The committer date of `rev` in `dir`, unix seconds.
fn committed_at(s: &Server, dir: &Path, rev: &str) -> u64 {
    s.git_ok(dir, &["log", "-1", "--format=%ct", rev])
        .parse()
        .expect("a unix date")
}

/// Both dates of a commit at `when`.
fn dated(when: u64) -> Vec<(&'static str, String)> {
    vec![
        ("GIT_AUTHOR_DATE", git_date(when)),
        ("GIT_COMMITTER_DATE", git_date(when)),
    ]
}

/// A client whose clock runs a day behind main still dates its version
/// no earlier than main (the commit and the manifest): the push lands.
#[test]
fn version_made_on_a_clock_behind_main_is_dated_at_main_and_lands() {
    let s = Server::with_version();
    let clone = prepared_at(&s, "c", NOW - DAY);
    let parent = committed_at(&s, &clone, "HEAD~1");
    assert_eq!(committed_at(&s, &clone, "HEAD"), parent);
    let m = s.manifest_at(&clone, "HEAD", "2.0.0");
    assert_eq!(
        m.str("created"),
        Some(NOW_RFC3339),
        "dated at main ({parent})"
    );
    s.push(&clone, Some("alice"), &["origin", "main", TAG])
        .success()
        .mentions(&[
            "accepted refs/heads/main",
            "accepted refs/tags/nlp/bert@v2.0.0",
        ]);
}

/// The same version with its commit re-signed and backdated an hour before
/// its parent, as stock git lets anyone date a commit: a backdated commit
/// could slip under a revocation or out of a report's window.
#[test]
fn commit_backdated_before_its_parent_is_refused() {
    let s = Server::with_version();
    let clone = prepared_at(&s, "c", NOW - DAY);
    let parent = committed_at(&s, &clone, "HEAD~1");
    amend_head(&s, &clone, &s.alice, &dated(parent - HOUR));
    assert_eq!(committed_at(&s, &clone, "HEAD"), parent - HOUR);
    refused_main_everywhere(&s, &clone, "alice", "dated before its parent");
}

/// A manifest that says it was created an hour before the parent commit,
/// re-signed by alice, the commit itself honestly dated.
#[test]
fn manifest_created_before_its_parent_is_refused() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    reregister(
        &s,
        &clone,
        &s.alice,
        |text| {
            let edited = text.replacen(
                &format!("created = \"{NOW_RFC3339}\""),
                "created = \"2026-11-22T09:00:00Z\"",
                1,
            );
            assert_ne!(edited, text, "the manifest's date changed");
            edited
        },
        |_| {},
    );
    refused_main_everywhere(&s, &clone, "alice", "manifest dated before its parent");
}

/// A registration tag re-made with stock `git tag -s`, dated an hour
/// before the commit it names; main itself has landed honestly.
#[test]
fn registration_tag_dated_before_its_commit_is_refused() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    s.push(&clone, Some("alice"), &["origin", "main"]).success();
    let commit = s.git_ok(&clone, &["rev-parse", "HEAD"]);
    let message = tag_message(&s, &clone, TAG);
    let when = committed_at(&s, &clone, "HEAD") - HOUR;
    retag(
        &s,
        &clone,
        &s.alice,
        TAG,
        &commit,
        &message,
        &[("GIT_COMMITTER_DATE", git_date(when))],
    );
    let refname = format!("refs/tags/{TAG}");
    s.refused(
        &clone,
        Some("alice"),
        &["origin", &refname],
        &refname,
        "tag dated before its commit",
    );
    assert_replay_names(&s, &clone, &[&refname], TAG, "tag dated before its commit");
}

/// A commit dated an hour after the server's clock (beyond the 300 s
/// skew): a date from the future would sort after everything made later.
/// Push only: a replay cannot know what the server's clock said.
#[test]
fn commit_dated_an_hour_after_the_server_clock_is_refused() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    amend_head(&s, &clone, &s.alice, &dated(NOW + HOUR));
    let run = s.refused_main(&clone, Some("alice"), "dated in the future");
    run.mentions(&["3600 s after the judge's clock"]);
}

/// The honest case: a version made with `--no-push` and pushed three
/// days later lands, commit and tag; its dates are old, not false.
#[test]
fn version_made_offline_and_pushed_days_later_lands() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    push_at(&s, &clone, "alice", &["origin", "main", TAG], NOW + 3 * DAY)
        .success()
        .mentions(&[
            "accepted refs/heads/main",
            "accepted refs/tags/nlp/bert@v2.0.0",
        ]);
    s.mvault(&s.bare, &s.admin, &["audit", "verify"])
        .success()
        .mentions(&["record intact"]);
}
