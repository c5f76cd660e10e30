//! Two people registering at the same moment both land on the remote: the
//! loser of the push race rebases its one-version commit and pushes again,
//! and main stays linear.

use std::process::Stdio;

use crate::common::*;

#[test]
fn two_clones_adding_different_models_at_once_both_land_on_the_remote() {
    let vault = Vault::with_remote();
    let clone_a = vault.git_clone(vault.remote(), "clone-a");
    let clone_b = vault.git_clone(vault.remote(), "clone-b");
    let model_a = vault.path("model-a");
    let model_b = vault.path("model-b");
    // Equal sizes, so that both pushes come at about the same time.
    sample_model(&model_a, 8 * MIB, 21);
    sample_model(&model_b, 8 * MIB, 22);

    // Several rounds, to give the race a chance to go either way.
    let rounds = ["1.0.0", "1.1.0", "1.2.0"];
    for version in rounds {
        let spawn = |clone: &std::path::Path, model: &std::path::Path, name: &str| {
            let mut cmd = vault.mvault_command(
                clone,
                &vault.alice,
                &[
                    "add",
                    model.to_str().unwrap(),
                    "--model",
                    name,
                    "--version",
                    version,
                ],
            );
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            cmd.spawn().expect("spawn mvault add")
        };
        let a = spawn(&clone_a, &model_a, "nlp/a");
        let b = spawn(&clone_b, &model_b, "nlp/b");
        for (name, child) in [("nlp/a", a), ("nlp/b", b)] {
            let out = child.wait_with_output().expect("wait for mvault add");
            assert!(
                out.status.success(),
                "concurrent `mvault add --model {name} --version {version}` failed ({})\n\
                 --- stdout ---\n{}\n--- stderr ---\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    let remote = vault.remote();
    let tree = vault.git_ok(remote, &["ls-tree", "-r", "--name-only", "main"]);
    let tags = vault.git_ok(remote, &["tag", "-l"]);
    for model in ["nlp/a", "nlp/b"] {
        for version in rounds {
            let manifest = format!("models/{model}/{version}/manifest.toml");
            assert!(
                tree.lines().any(|l| l == manifest),
                "{manifest} is not on the remote main:\n{tree}"
            );
            let tag = format!("{model}@v{version}");
            assert!(tags.lines().any(|l| l == tag), "tag {tag} missing: {tags}");
            // The tag points at a commit of main that holds its version.
            let commit = vault.git_ok(remote, &["rev-parse", &format!("{tag}^{{commit}}")]);
            vault
                .git(remote, &["merge-base", "--is-ancestor", &commit, "main"])
                .success();
            vault.git_ok(remote, &["cat-file", "-e", &format!("{commit}:{manifest}")]);
        }
    }
    // Linear, one version per commit.
    assert_eq!(
        vault.git_ok(remote, &["rev-list", "--merges", "main"]),
        "",
        "main has merge commits"
    );
    let registrations = vault.git_ok(remote, &["log", "--format=%s", "main"]);
    assert_eq!(
        registrations
            .lines()
            .filter(|l| l.starts_with("register "))
            .count(),
        rounds.len() * 2,
        "{registrations}"
    );
    // Every commit still carries a good signature after the rebase.
    let signers = vault.signers_file(&vault.repo, &vault.alice);
    let flag = format!("gpg.ssh.allowedSignersFile={}", signers.display());
    for commit in vault.git_ok(remote, &["rev-list", "main"]).lines() {
        vault
            .git(remote, &["-c", &flag, "verify-commit", commit])
            .success();
    }
}
