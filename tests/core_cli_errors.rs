//! The common mistakes get one `mvault: …` line that says what is wrong and
//! the rule, and change nothing.

use crate::common::*;

fn vault_and_model() -> (Vault, std::path::PathBuf) {
    let vault = Vault::new();
    let model = vault.path("model");
    sample_model(&model, 1000, 1);
    (vault, model)
}

#[test]
fn model_name_with_capitals_is_refused_with_the_rule() {
    let (vault, model) = vault_and_model();
    let before = vault.git_ok(&vault.repo, &["rev-parse", "main"]);
    vault
        .add(&model, "NLP/Bert", "1.0.0", &[])
        .mvault_error()
        .mentions(&["NLP/Bert", "[a-z0-9]"]);
    assert_eq!(vault.git_ok(&vault.repo, &["rev-parse", "main"]), before);
}

#[test]
fn version_that_is_not_semver_is_refused() {
    let (vault, model) = vault_and_model();
    for version in ["v1.0.0", "1.0", "01.2.3"] {
        vault
            .add(&model, "nlp/bert", version, &[])
            .mvault_error()
            .mentions(&[version, "semver"]);
    }
    assert_eq!(vault.git_ok(&vault.repo, &["tag", "-l"]), "");
}

#[test]
fn registering_an_existing_version_again_is_refused() {
    let (vault, model) = vault_and_model();
    vault.add(&model, "nlp/bert", "1.0.0", &[]).success();
    let before = vault.git_ok(&vault.repo, &["rev-parse", "main"]);
    vault
        .add(&model, "nlp/bert", "1.0.0", &[])
        .mvault_error()
        .mentions(&["nlp/bert", "1.0.0"])
        .mentions_any(&["exist", "already"]);
    assert_eq!(vault.git_ok(&vault.repo, &["rev-parse", "main"]), before);
}

#[test]
fn pull_of_an_unknown_version_names_it() {
    let (vault, model) = vault_and_model();
    vault.add(&model, "nlp/bert", "1.0.0", &[]).success();
    let out = vault.path("out");
    vault
        .pull_in(&vault.repo, &vault.alice, "nlp/bert@9.9.9", &out)
        .mvault_error()
        .mentions(&["nlp/bert", "9.9.9"]);
    assert_eq!(list_files(&out), Vec::<String>::new());
}

#[test]
fn missing_key_file_is_named() {
    let (vault, model) = vault_and_model();
    let missing = Key {
        name: "ghost".into(),
        private: vault.path("keys/does-not-exist"),
        public: vault.path("keys/does-not-exist.pub"),
    };
    vault
        .add_in(&vault.repo, &missing, &model, "nlp/bert", "1.0.0", &[])
        .mvault_error()
        .mentions(&["does-not-exist"]);
}

#[test]
fn parent_that_does_not_exist_is_refused() {
    let (vault, model) = vault_and_model();
    vault
        .add(&model, "nlp/bert", "1.1.0", &["--parent", "1.0.0"])
        .mvault_error()
        .mentions(&["1.0.0"]);
}

#[test]
fn init_and_add_work_without_a_git_identity() {
    // A fresh CI machine has no user.name / user.email; the vault's
    // identities come from the policy, not from git's configuration.
    let env = TestEnv::new();
    let admin = env.keygen("admin");
    let bare = |mut cmd: std::process::Command| {
        for var in [
            "GIT_AUTHOR_NAME",
            "GIT_AUTHOR_EMAIL",
            "GIT_COMMITTER_NAME",
            "GIT_COMMITTER_EMAIL",
        ] {
            cmd.env_remove(var);
        }
        env.run(cmd)
    };
    let repo = env.path("repo");
    let mut init = env.command(env!("CARGO_BIN_EXE_mvault"));
    init.arg("--key")
        .arg(&admin.private)
        .arg("init")
        .arg(&repo)
        .arg("--admin-key")
        .arg(&admin.public);
    bare(init).success();
    let model = env.path("model");
    sample_model(&model, 1000, 1);
    bare(env.mvault_command(
        &repo,
        &admin,
        &[
            "policy", "grant", "admin", "--role", "ml_admin", "--models", "nlp/*",
        ],
    ))
    .success();
    bare(env.mvault_command(
        &repo,
        &admin,
        &[
            "add",
            model.to_str().unwrap(),
            "--model",
            "nlp/bert",
            "--version",
            "1.0.0",
        ],
    ))
    .success();
}
