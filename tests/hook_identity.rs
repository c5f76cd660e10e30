//! Misattribution (rule "misattributed"): the signer's policy name is the
//! only actor the record ever shows, so an author, committer or tagger
//! (`NAME <NAME@mvault>`) or a manifest's `author_key` that names anyone
//! else is refused, by the hook and by `audit verify` of the same objects
//! forced into a copy without the hook. And a role check that ignores
//! nothing: an admin whose key has expired by the server's clock cannot
//! change the policy, even signing and pushing it themself.

use crate::forged::*;
use crate::hook_server::*;
use crate::unhooked::*;

const MISATTRIBUTED: &str = "misattributed";
const TAG: &str = "nlp/bert@v2.0.0";

/// `NAME <NAME@mvault>` for the git identity variables `prefix`_NAME/_EMAIL.
fn identity(prefix: &str, name: &str) -> Vec<(&'static str, String)> {
    let (n, e) = match prefix {
        "AUTHOR" => ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL"),
        "COMMITTER" => ("GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"),
        other => panic!("no git identity {other}"),
    };
    vec![(n, name.to_owned()), (e, format!("{name}@mvault"))]
}

/// alice signs a commit that names bob as its author: the record would
/// show bob registering a version he never made.
#[test]
fn commit_authored_as_another_user_is_refused() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    amend_head(&s, &clone, &s.alice, &identity("AUTHOR", "bob"));
    let run = refused_main_everywhere(&s, &clone, "alice", MISATTRIBUTED);
    run.mentions(&["the author is bob <bob@mvault>, the signer is alice"]);
}

/// alice signs a commit whose committer is bob.
#[test]
fn commit_committed_as_another_user_is_refused() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    amend_head(&s, &clone, &s.alice, &identity("COMMITTER", "bob"));
    let run = refused_main_everywhere(&s, &clone, "alice", MISATTRIBUTED);
    run.mentions(&["the committer is bob <bob@mvault>, the signer is alice"]);
}

/// alice signs the registration tag with bob as its tagger (stock git
/// takes the tagger from the committer identity); main has landed.
#[test]
fn tag_tagged_as_another_user_is_refused() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    s.push(&clone, Some("alice"), &["origin", "main"]).success();
    let commit = s.git_ok(&clone, &["rev-parse", "HEAD"]);
    let message = tag_message(&s, &clone, TAG);
    retag(
        &s,
        &clone,
        &s.alice,
        TAG,
        &commit,
        &message,
        &identity("COMMITTER", "bob"),
    );
    let refname = format!("refs/tags/{TAG}");
    let run = s.refused(
        &clone,
        Some("alice"),
        &["origin", &refname],
        &refname,
        MISATTRIBUTED,
    );
    run.mentions(&["the tagger is bob <bob@mvault>, the signer is alice"]);
    assert_replay_names(&s, &clone, &[&refname], TAG, MISATTRIBUTED);
}

/// A manifest whose `author_key` is bob's fingerprint, re-signed by alice
/// (whose commit it stays): the manifest would credit the version to a
/// key that never signed it.
#[test]
fn manifest_with_another_author_key_is_refused() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    let (alice_fp, bob_fp) = (s.fingerprint(&s.alice), s.fingerprint(&s.bob));
    reregister(
        &s,
        &clone,
        &s.alice,
        |text| {
            let edited = text.replacen(
                &format!("author_key = \"{alice_fp}\""),
                &format!("author_key = \"{bob_fp}\""),
                1,
            );
            assert_ne!(edited, text, "the manifest's author_key changed");
            edited
        },
        |_| {},
    );
    let run = refused_main_everywhere(&s, &clone, "alice", MISATTRIBUTED);
    run.mentions(&["manifest author is alice", &bob_fp]);
}

/// carol is an ml_admin on `**` whose key expired on 2026-12-01. On
/// 2026-12-15 (the server's clock, and the commit's own date) she signs and
/// pushes a policy change herself. The signer is resolved before any role
/// is looked at, and an expired key resolves to no one: the refusal is
/// "expired key", not "role" nor "policy change not signed by an admin".
/// The replay judges the commit at its own date, after the expiry, and
/// names the same rule.
#[test]
fn policy_change_by_an_admin_whose_key_expired_is_refused_as_expired_key() {
    const DEC_15: u64 = 1_797_328_800; // 2026-12-15T10:00:00Z
    let s = Server::new();
    let carol = s.keygen("carol");
    for args in [
        &[
            "policy",
            "add-user",
            "carol",
            "--key-file",
            &pub_arg(&carol),
            "--expires",
            "2026-12-01",
        ][..],
        &[
            "policy", "grant", "carol", "--role", "ml_admin", "--models", "**",
        ],
    ] {
        s.mvault_as(&s.work, &s.admin, Some("admin"), args)
            .success();
    }
    let clone = s.stock_clone("c");
    const POLICY: &str = ".mvault/policy.toml";
    let policy = String::from_utf8(s.staged(&clone, POLICY)).expect("utf-8 policy");
    let edited =
        format!("{policy}\n[[grants]]\nuser = \"bob\"\nrole = \"developer\"\nmodels = \"nlp/*\"\n");
    s.stage(&clone, POLICY, edited.as_bytes(), "100644");
    let message = policy_message("grant bob developer on nlp/*");
    let mut cmd = s.git_signing_command(
        &clone,
        &carol,
        &["commit", "-q", "--no-verify", "-S", "-m", &message],
    );
    cmd.env("GIT_AUTHOR_DATE", git_date(DEC_15))
        .env("GIT_COMMITTER_DATE", git_date(DEC_15));
    s.run(cmd).success();

    let mut push = s.git_command(&clone, &["push", "origin", "main"]);
    push.env("MVAULT_USER", "carol")
        .env("MVAULT_NOW", DEC_15.to_string());
    let before = s.server_refs();
    let log_before = s.decisions().len();
    let run = s.run(push).failure();
    assert_refusal(&run, "refs/heads/main", "expired key");
    let run = run.mentions(&["carol, whose key expired on 2026-12-01"]);
    assert_eq!(s.server_refs(), before, "a ref moved: {}", run.stderr());
    assert_eq!(
        s.decisions().len(),
        log_before + 1,
        "the decision was logged"
    );

    // The replay reads the clock from the commit itself.
    let tip = s.git_ok(&clone, &["rev-parse", "main"]);
    assert_replay_names(&s, &clone, &["main"], &tip, "expired key");
}
