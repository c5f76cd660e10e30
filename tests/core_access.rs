//! Read access is cryptographic: the data key is wrapped to the readers the
//! policy names, so a user without a grant cannot pull (and stock age agrees),
//! and a grant re-wraps the key ring so that the new reader can.

use std::path::Path;

use crate::common::*;

fn stock_age_opens_ring(vault: &Vault, repo: &Path, key: &Key, model: &str) -> bool {
    let ring = vault.path(&format!("ring-{}.age", key.name));
    vault.git_show_to(repo, &format!("main:.mvault/keys/{model}.age"), &ring);
    let mut cmd = vault.command("age");
    cmd.arg("-d").arg("-i").arg(&key.private).arg(&ring);
    vault.run(cmd).status.success()
}

#[test]
fn user_without_a_grant_cannot_pull_until_granted_viewer() {
    let vault = Vault::with_remote();
    let bob = vault.add_user("bob");
    vault.git_ok(&vault.repo, &["push", "-q", "origin", "main"]);

    let model = vault.path("model");
    sample_model(&model, 300_000, 11);
    vault.add(&model, "nlp/secret", "1.0.0", &[]).success();

    // Bob works from his own stock clone.
    let bobs = vault.git_clone(vault.remote(), "bob-clone");
    let denied = vault.path("out-denied");
    vault
        .pull_in(&bobs, &bob, "nlp/secret@1.0.0", &denied)
        .mvault_error()
        .mentions(&["nlp/secret"]);
    assert_eq!(list_files(&denied), Vec::<String>::new());
    assert!(
        !stock_age_opens_ring(&vault, &bobs, &bob, "nlp/secret"),
        "the key ring is wrapped to bob although he has no grant"
    );

    vault.grant("bob", "viewer", "nlp/*");
    vault
        .mvault(&vault.repo, &vault.admin, &["policy", "show"])
        .success()
        .mentions(&["bob", "viewer", "nlp/*"]);
    // The grant travels with stock git too.
    vault.git_ok(&vault.repo, &["push", "-q", "origin", "main"]);
    vault.git_ok(&bobs, &["pull", "-q", "--ff-only"]);

    assert!(
        stock_age_opens_ring(&vault, &bobs, &bob, "nlp/secret"),
        "the grant did not re-wrap the key ring to bob"
    );
    let out = vault.path("out");
    vault
        .pull_in(&bobs, &bob, "nlp/secret@1.0.0", &out)
        .success();
    assert_same_tree(&model, &out);
}

#[test]
fn key_outside_the_policy_cannot_pull() {
    let vault = Vault::new();
    let model = vault.path("model");
    sample_model(&model, 1000, 12);
    vault.add(&model, "nlp/bert", "1.0.0", &[]).success();
    let mallory = vault.keygen("mallory");
    let out = vault.path("out");
    vault
        .pull_in(&vault.repo, &mallory, "nlp/bert@1.0.0", &out)
        .mvault_error();
    assert_eq!(list_files(&out), Vec::<String>::new());
}

#[test]
fn grant_on_another_model_glob_gives_no_read() {
    let vault = Vault::new();
    let bob = vault.add_user("bob");
    vault.grant("bob", "viewer", "cv/*");
    let model = vault.path("model");
    sample_model(&model, 1000, 13);
    vault.add(&model, "nlp/bert", "1.0.0", &[]).success();
    let out = vault.path("out");
    vault
        .pull_in(&vault.repo, &bob, "nlp/bert@1.0.0", &out)
        .mvault_error()
        .mentions(&["nlp/bert"]);
    assert!(!stock_age_opens_ring(&vault, &vault.repo, &bob, "nlp/bert"));
}

#[test]
fn viewer_cannot_register_a_version() {
    let vault = Vault::new();
    let bob = vault.add_user("bob");
    vault.grant("bob", "viewer", "nlp/*");
    let model = vault.path("model");
    sample_model(&model, 1000, 14);
    let before = vault.git_ok(&vault.repo, &["rev-parse", "main"]);
    vault
        .add_in(&vault.repo, &bob, &model, "nlp/bert", "1.0.0", &[])
        .mvault_error()
        .mentions(&["bob", "viewer"]);
    assert_eq!(vault.git_ok(&vault.repo, &["rev-parse", "main"]), before);
    vault
        .git(
            &vault.repo,
            &["rev-parse", "--verify", "-q", "refs/tags/nlp/bert@v1.0.0"],
        )
        .failure();
}

#[test]
fn only_an_admin_changes_the_policy() {
    let vault = Vault::new();
    let before = vault.git_ok(&vault.repo, &["rev-parse", "main"]);
    vault
        .mvault(
            &vault.repo,
            &vault.alice,
            &[
                "policy", "grant", "alice", "--role", "ml_admin", "--models", "*",
            ],
        )
        .mvault_error()
        .mentions(&["admin"]);
    assert_eq!(vault.git_ok(&vault.repo, &["rev-parse", "main"]), before);
}

#[test]
fn key_past_its_expiry_date_can_no_longer_register() {
    let vault = Vault::new();
    let carol = vault.keygen("carol");
    let carol_pub = carol.public.to_str().unwrap().to_owned();
    vault
        .mvault(
            &vault.repo,
            &vault.admin,
            &[
                "policy",
                "add-user",
                "carol",
                "--key-file",
                &carol_pub,
                "--expires",
                "2026-12-31",
            ],
        )
        .success();
    vault
        .mvault(
            &vault.repo,
            &vault.admin,
            &[
                "policy",
                "grant",
                "carol",
                "--role",
                "developer",
                "--models",
                "nlp/*",
            ],
        )
        .success();
    let signers = vault
        .mvault(&vault.repo, &vault.admin, &["signers"])
        .success()
        .stdout();
    let line = signers
        .lines()
        .find(|l| l.starts_with("carol "))
        .unwrap_or_else(|| panic!("no carol in signers:\n{signers}"));
    assert!(line.contains("valid-before=\"2026"), "{line}");

    let model = vault.path("model");
    sample_model(&model, 1000, 15);
    let add = |version: &str, now: u64| {
        let mut cmd = vault.mvault_command(
            &vault.repo,
            &carol,
            &[
                "add",
                model.to_str().unwrap(),
                "--model",
                "nlp/bert",
                "--version",
                version,
            ],
        );
        cmd.env("MVAULT_NOW", now.to_string());
        vault.run(cmd)
    };
    // Before the date (NOW is 2026-11-22) carol registers; on 2027-01-15 she
    // cannot.
    add("1.0.0", NOW).success();
    add("1.1.0", 1_800_000_000)
        .mvault_error()
        .mentions(&["carol"])
        .mentions_any(&["expire"]);
}
