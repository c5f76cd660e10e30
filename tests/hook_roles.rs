//! Roles and escalation (acceptance 3): the pusher and the signer each
//! need the role, judged by the policy in force before the push; only an
//! admin changes the policy; a push cannot grant itself what it then uses;
//! key rings are wrapped to exactly the policy's readers.

use crate::common::*;
use crate::hook_server::*;

/// `ssh-ed25519 AAAA…` without the comment, as the policy writes keys.
fn key_literal(key: &Key) -> String {
    key.public_line()
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A viewer who can reach the server cannot publish someone else's valid
/// registration: the pusher needs the role too.
#[test]
fn pusher_without_the_role_is_refused() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    let run = s.refused_main(&clone, Some("bob"), "pusher role");
    assert!(run.stderr().contains("pusher bob"), "{}", run.stderr());
}

/// A viewer's signature does not register a version, whoever pushes it.
#[test]
fn signer_without_the_role_is_refused() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    s.rewrite_head(&clone, Some(&s.bob), |_| {});
    let run = s.refused_main(&clone, Some("alice"), "role");
    assert!(run.stderr().contains("signer bob"), "{}", run.stderr());
}

/// A developer cannot change the policy, even harmlessly.
#[test]
fn policy_change_signed_by_a_non_admin_is_refused() {
    let s = Server::with_version();
    let clone = s.policy_commit("c", &s.alice, "grant bob developer nlp/*", |t| {
        t.replace("role = \"viewer\"", "role = \"developer\"")
    });
    s.refused_main(
        &clone,
        Some("alice"),
        "policy change not signed by an admin",
    );
}

/// Escalation: a commit that makes its own signer admin is judged by the
/// policy before it, in which the signer is not admin — even when an admin
/// pushes it.
#[test]
fn commit_granting_its_own_signer_admin_is_refused() {
    let s = Server::with_version();
    let clone = s.policy_commit("c", &s.alice, "grant alice ml_admin **", |t| {
        format!("{t}\n[[grants]]\nuser = \"alice\"\nrole = \"ml_admin\"\nmodels = \"**\"\n")
    });
    s.refused_main(
        &clone,
        Some("admin"),
        "policy change not signed by an admin",
    );
}

/// Escalation: an outsider's policy commit that adds their own key as
/// admin is signed by a key the policy in force does not know.
#[test]
fn outsider_adding_their_own_key_as_admin_is_refused() {
    let s = Server::with_version();
    let literal = key_literal(&s.mallory);
    let clone = s.policy_commit("c", &s.mallory, "add-user mallory", |t| {
        format!(
            "{t}\n[users.mallory]\nkeys = [\"{literal}\"]\n\n[[grants]]\nuser = \"mallory\"\nrole = \"ml_admin\"\nmodels = \"**\"\n"
        )
    });
    s.refused_main(&clone, Some("admin"), "unknown signer");
}

/// Escalation: a push that adds a key and, in a later commit of the same
/// push, registers a version signed with it. Signers are judged by the
/// policy in force before the push (DESIGN.md, "The server hook"), which
/// does not know the new key.
#[test]
fn new_key_and_a_version_signed_with_it_in_one_push_is_refused() {
    let s = Server::with_version();
    let clone = s.stock_clone("c");
    let dave = s.keygen("dave");
    s.mvault_as(
        &clone,
        &s.admin,
        None,
        &[
            "policy",
            "add-user",
            "dave",
            "--key-file",
            &pub_arg(&dave),
            "--no-push",
        ],
    )
    .success();
    s.mvault_as(
        &clone,
        &s.admin,
        None,
        &[
            "policy",
            "grant",
            "dave",
            "--role",
            "developer",
            "--models",
            "nlp/*",
            "--no-push",
        ],
    )
    .success();
    let model = s.model(2);
    s.add(&clone, &dave, None, &model, "2.0.0", &["--no-push"])
        .success();
    // A policy change ends its push: the version signed with the new key
    // would be judged by a policy the server has not yet accepted.
    s.refused_main(&clone, Some("admin"), "policy change not last in its push");
}

/// A key ring wrapped to someone the policy does not make a reader would
/// hand them the data key (checked from the age header, without
/// decrypting).
#[test]
fn key_ring_wrapped_to_a_non_reader_is_refused() {
    let s = Server::with_version();
    let clone = s.stock_clone("c");
    s.mvault_as(
        &clone,
        &s.admin,
        None,
        &[
            "policy",
            "add-user",
            "mallory",
            "--key-file",
            &pub_arg(&s.mallory),
            "--no-push",
        ],
    )
    .success();
    let ring_path = ".mvault/keys/nlp/bert.age";
    let sealed = s.path("ring.age");
    write_file(
        &sealed,
        &s.git_show_bytes(&clone, &format!("HEAD:{ring_path}")),
    );
    let plain = s.path("ring.txt");
    let mut decrypt = s.command("age");
    decrypt
        .arg("-d")
        .arg("-i")
        .arg(&s.admin.private)
        .arg("-o")
        .arg(&plain)
        .arg(&sealed);
    s.run(decrypt).success();
    let resealed = s.path("ring-mallory.age");
    let mut encrypt = s.command("age");
    for k in [&s.admin, &s.alice, &s.bob, &s.mallory] {
        encrypt.arg("-R").arg(&k.public);
    }
    encrypt.arg("-o").arg(&resealed).arg(&plain);
    s.run(encrypt).success();
    let bytes = std::fs::read(&resealed).expect("resealed ring");
    s.rewrite_head(&clone, Some(&s.admin), |c| {
        s.stage(c, ring_path, &bytes, "100644")
    });
    s.refused_main(&clone, Some("admin"), "key ring recipients");
}

/// A policy with no admin left would lock everyone out of the policy for
/// good.
#[test]
fn policy_change_leaving_no_admin_is_refused() {
    let s = Server::with_version();
    let clone = s.policy_commit("c", &s.admin, "revoke admin ml_admin **", |t| {
        t.replace("role = \"ml_admin\"", "role = \"viewer\"")
    });
    s.refused_main(&clone, Some("admin"), "no admin left");
}

/// A push the server cannot attribute to anyone is refused: no identity,
/// no role.
#[test]
fn push_without_a_pusher_identity_is_refused() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    s.refused_main(&clone, None, "unknown pusher");
}
