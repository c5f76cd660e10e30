//! Ref-level refusals: the record is append-only, main is linear and
//! fast-forward only, tags are immutable, annotated and name themselves.
//! Each push is a stock `git push`; the pusher sees the hook's line and no
//! ref of the server moves.

use crate::hook_server::*;

const MAIN: &str = "refs/heads/main";
const TAG: &str = "refs/tags/nlp/bert@v1.0.0";

/// A branch outside main cannot smuggle unjudged history onto the server.
#[test]
fn branch_outside_main_is_refused() {
    let s = Server::with_version();
    s.refused(
        &s.work,
        Some("admin"),
        &["origin", "main:refs/heads/other"],
        "refs/heads/other",
        "unknown ref namespace",
    );
}

/// Notes (or any other namespace) cannot carry unjudged objects either.
#[test]
fn notes_ref_is_refused() {
    let s = Server::with_version();
    s.git_ok(&s.work, &["notes", "--ref=x", "add", "-m", "hello", "HEAD"]);
    s.refused(
        &s.work,
        Some("admin"),
        &["origin", "refs/notes/x"],
        "refs/notes/x",
        "unknown ref namespace",
    );
}

/// Deleting main would erase the record.
#[test]
fn deleting_main_is_refused() {
    let s = Server::with_version();
    s.refused(
        &s.work,
        Some("admin"),
        &["origin", ":refs/heads/main"],
        MAIN,
        "deletion",
    );
}

/// Deleting a registration tag would erase a version's registration.
#[test]
fn deleting_a_tag_is_refused() {
    let s = Server::with_version();
    s.refused(
        &s.work,
        Some("admin"),
        &["origin", &format!(":{TAG}")],
        TAG,
        "deletion",
    );
}

/// A force push of an older main would rewrite history.
#[test]
fn force_push_of_an_older_main_is_refused() {
    let s = Server::with_version();
    let older = s.git_ok(&s.work, &["rev-parse", "main~1"]);
    s.refused(
        &s.work,
        Some("admin"),
        &["-f", "origin", &format!("{older}:refs/heads/main")],
        MAIN,
        "non-fast-forward",
    );
}

/// A merge commit would bring in a second, unjudged line of history.
#[test]
fn merge_commit_is_refused() {
    let s = Server::with_version();
    let merge = s.git_ok(
        &s.work,
        &[
            "commit-tree",
            "HEAD^{tree}",
            "-p",
            "HEAD",
            "-p",
            "HEAD~1",
            "-m",
            "merge",
        ],
    );
    s.refused(
        &s.work,
        Some("admin"),
        &["origin", &format!("{merge}:refs/heads/main")],
        MAIN,
        "merge commit",
    );
}

/// Re-pointing an existing registration tag would swap the version a
/// name stands for.
#[test]
fn moving_a_registration_tag_is_refused() {
    let s = Server::with_version();
    let clone = s.stock_clone("alice-clone");
    s.sign_tag(
        &clone,
        &s.alice,
        "nlp/bert@v1.0.0",
        "HEAD~1",
        "register nlp/bert@1.0.0",
    );
    s.refused(
        &clone,
        Some("alice"),
        &["-f", "origin", TAG],
        TAG,
        "tag moved",
    );
}

/// A lightweight tag carries no signature and no name of its own.
#[test]
fn lightweight_tag_is_refused() {
    let s = Server::with_version();
    s.git_ok(&s.work, &["tag", "nlp/bert@v1.0.1", "HEAD"]);
    s.refused(
        &s.work,
        Some("alice"),
        &["origin", "refs/tags/nlp/bert@v1.0.1"],
        "refs/tags/nlp/bert@v1.0.1",
        "lightweight tag",
    );
}

/// A genuine signed tag object replayed under another name would register
/// a version nobody signed for.
#[test]
fn tag_replayed_under_another_name_is_refused() {
    let s = Server::with_version();
    s.refused(
        &s.work,
        Some("alice"),
        &["origin", &format!("{TAG}:refs/tags/nlp/bert@v2.0.0")],
        "refs/tags/nlp/bert@v2.0.0",
        "tag name mismatch",
    );
}

/// A signed registration tag on a later commit than the one that added the
/// version would misstate the version's registration.
#[test]
fn tag_not_on_the_registering_commit_is_refused() {
    let s = Server::with_version();
    let clone = s.prepared("alice-clone", &s.alice, "1.1.0");
    let model = s.model(3);
    s.add(&clone, &s.alice, None, &model, "1.2.0", &["--no-push"])
        .success();
    s.push(&clone, Some("alice"), &["origin", "main"]).success();
    let digest = crate::common::sha256_hex(
        &s.git_show_bytes(&clone, "HEAD~1:models/nlp/bert/1.1.0/manifest.toml"),
    );
    let message = format!("register nlp/bert@1.1.0\n\nMvault-Manifest-Sha256: {digest}\n");
    s.sign_tag(&clone, &s.alice, "nlp/bert@v1.1.0", "HEAD", &message);
    s.refused(
        &clone,
        Some("alice"),
        &["origin", "refs/tags/nlp/bert@v1.1.0"],
        "refs/tags/nlp/bert@v1.1.0",
        "tag target",
    );
}
