//! Inputs `add` must refuse before writing anything, and the order in which
//! mvault finds the user's key (--key, MVAULT_KEY, git's user.signingkey,
//! ~/.ssh/id_ed25519), including a passphrase-protected key.

use std::path::Path;

use crate::common::*;

fn main_and_tags(vault: &Vault) -> (String, String) {
    (
        vault.git_ok(&vault.repo, &["rev-parse", "main"]),
        vault.git_ok(&vault.repo, &["tag", "-l"]),
    )
}

/// A symlink that points outside the model directory would register a file
/// the user did not mean to publish (a key, /etc/passwd).
#[test]
fn symlink_leaving_the_input_is_refused_and_nothing_is_written() {
    let vault = Vault::new();
    let model = vault.path("model");
    sample_model(&model, 1000, 1);
    let secret = vault.path("secret.txt");
    write_file(&secret, b"not part of the model\n");
    std::os::unix::fs::symlink(&secret, model.join("leak.txt")).expect("symlink");
    let before = main_and_tags(&vault);
    vault
        .add(&model, "nlp/bert", "1.0.0", &[])
        .mvault_error()
        .mentions(&["leak.txt", "symlink leaves"]);
    assert_eq!(main_and_tags(&vault), before);
}

/// A symlink that stays inside the directory is followed: the file is
/// stored once per path, with the target's bytes.
#[test]
fn symlink_inside_the_input_is_followed() {
    let vault = Vault::new();
    let model = vault.path("model");
    sample_model(&model, 1000, 1);
    std::os::unix::fs::symlink("config.json", model.join("alias.json")).expect("symlink");
    vault.add(&model, "nlp/bert", "1.0.0", &[]).success();
    let out = vault.path("out");
    vault
        .pull_in(&vault.repo, &vault.alice, "nlp/bert@1.0.0", &out)
        .success();
    assert_eq!(
        std::fs::read(out.join("alias.json")).expect("alias"),
        std::fs::read(model.join("config.json")).expect("config")
    );
}

/// An empty directory is almost always a wrong path; registering nothing
/// would make a version that cannot be served.
#[test]
fn empty_input_is_refused() {
    let vault = Vault::new();
    let empty = vault.path("empty");
    std::fs::create_dir_all(empty.join("sub")).expect("mkdir");
    let before = main_and_tags(&vault);
    vault
        .add(&empty, "nlp/bert", "1.0.0", &[])
        .mvault_error()
        .mentions(&["empty input"]);
    assert_eq!(main_and_tags(&vault), before);
}

/// Free text that looks like a trailer would change what the commit says it does.
#[test]
fn message_with_a_trailer_line_is_refused() {
    let vault = Vault::new();
    let model = vault.path("model");
    sample_model(&model, 100, 1);
    let before = main_and_tags(&vault);
    vault
        .add(
            &model,
            "nlp/bert",
            "1.0.0",
            &["-m", "fine-tune\nMvault-Action: policy"],
        )
        .mvault_error()
        .mentions(&["Mvault-Action: policy", "trailer"]);
    assert_eq!(main_and_tags(&vault), before);
}

/// `mvault list` in the vault, with the key chosen by the environment only.
fn run_without_key_flag(vault: &Vault, dir: &Path, env: &[(&str, &Path)], args: &[&str]) -> Run {
    let mut cmd = vault.command(env!("CARGO_BIN_EXE_mvault"));
    cmd.arg("-C").arg(dir).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    vault.run(cmd)
}

/// Without --key, MVAULT_KEY names the key; else git's user.signingkey
/// (the .pub path git users set is mapped to its private key); else
/// ~/.ssh/id_ed25519.
#[test]
fn key_is_found_in_the_documented_order() {
    let vault = Vault::new();
    let model = vault.path("model");
    sample_model(&model, 100, 1);
    let m = model.to_str().expect("utf-8");
    // MVAULT_KEY.
    run_without_key_flag(
        &vault,
        &vault.repo,
        &[("MVAULT_KEY", &vault.alice.private)],
        &["add", m, "--model", "nlp/bert", "--version", "1.0.0"],
    )
    .success()
    .mentions(&["registered nlp/bert@1.0.0"]);
    // git's user.signingkey, as its .pub path.
    let pubkey = vault.alice.public.to_str().expect("utf-8").to_owned();
    vault.git_ok(&vault.repo, &["config", "user.signingkey", &pubkey]);
    run_without_key_flag(
        &vault,
        &vault.repo,
        &[],
        &["add", m, "--model", "nlp/bert", "--version", "1.0.1"],
    )
    .success()
    .mentions(&["registered nlp/bert@1.0.1"]);
    vault.git_ok(&vault.repo, &["config", "--unset", "user.signingkey"]);
    // ~/.ssh/id_ed25519.
    let ssh = vault.home().join(".ssh");
    std::fs::create_dir_all(&ssh).expect("mkdir .ssh");
    std::fs::copy(&vault.alice.private, ssh.join("id_ed25519")).expect("copy key");
    run_without_key_flag(
        &vault,
        &vault.repo,
        &[],
        &["add", m, "--model", "nlp/bert", "--version", "1.0.2"],
    )
    .success()
    .mentions(&["registered nlp/bert@1.0.2"]);
    // MVAULT_KEY wins over ~/.ssh: the admin's key signs this one.
    run_without_key_flag(
        &vault,
        &vault.repo,
        &[("MVAULT_KEY", &vault.admin.private)],
        &["add", m, "--model", "nlp/bert", "--version", "1.0.3"],
    )
    .success();
    let author = vault.git_ok(&vault.repo, &["log", "-1", "--format=%an", "main"]);
    assert_eq!(author.trim(), "admin");
}

/// A passphrase-protected key is named and explained when no passphrase is
/// given, and works with MVAULT_PASSPHRASE.
#[test]
fn passphrase_protected_key_is_explained_and_supported() {
    let vault = Vault::new();
    let protected = vault.path("keys/carol");
    let mut cmd = vault.command("ssh-keygen");
    cmd.args([
        "-q",
        "-t",
        "ed25519",
        "-N",
        "correct horse",
        "-C",
        "carol",
        "-f",
    ])
    .arg(&protected);
    vault.run(cmd).success();
    let pub_path = format!("{}.pub", protected.display());
    vault
        .mvault(
            &vault.repo,
            &vault.admin,
            &["policy", "add-user", "carol", "--key-file", &pub_path],
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
    let model = vault.path("model");
    sample_model(&model, 100, 1);
    let m = model.to_str().expect("utf-8");
    let args = ["add", m, "--model", "nlp/bert", "--version", "1.0.0"];
    run_without_key_flag(&vault, &vault.repo, &[("MVAULT_KEY", &protected)], &args)
        .mvault_error()
        .mentions(&["carol", "passphrase", "MVAULT_PASSPHRASE"]);
    let mut cmd = vault.command(env!("CARGO_BIN_EXE_mvault"));
    cmd.arg("-C")
        .arg(&vault.repo)
        .args(args)
        .env("MVAULT_KEY", &protected)
        .env("MVAULT_PASSPHRASE", "wrong");
    vault.run(cmd).mvault_error().mentions(&["does not open"]);
    let mut cmd = vault.command(env!("CARGO_BIN_EXE_mvault"));
    cmd.arg("-C")
        .arg(&vault.repo)
        .args(args)
        .env("MVAULT_KEY", &protected)
        .env("MVAULT_PASSPHRASE", "correct horse");
    vault
        .run(cmd)
        .success()
        .mentions(&["registered nlp/bert@1.0.0"]);
    let out = vault.path("out");
    let mut cmd = vault.command(env!("CARGO_BIN_EXE_mvault"));
    cmd.arg("-C")
        .arg(&vault.repo)
        .args(["pull", "nlp/bert@1.0.0", "-o"])
        .arg(&out)
        .env("MVAULT_KEY", &protected)
        .env("MVAULT_PASSPHRASE", "correct horse");
    vault.run(cmd).success();
    assert_same_tree(&model, &out);
}
