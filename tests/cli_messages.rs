//! The messages issue 12 found wrong, each pinned as the user now sees it
//! (stderr and exit code, temporary paths shown as `[ROOT]`): a public key
//! passed as `--key`, a stage typo, a promotion out of archived, an unknown
//! `log --action`, and the hint after a refused self-grant, which must be a
//! command an admin can paste as it is.

use std::path::Path;

use crate::common::*;

/// What the user sees of a failed run: its exit code and stderr.
fn seen(env: &TestEnv, run: &Run) -> String {
    let code = run
        .status
        .code()
        .map_or_else(|| "signal".into(), |c| c.to_string());
    let root = env.root().to_str().expect("utf-8 root");
    format!("exit {code}\n{}", run.stderr().replace(root, "[ROOT]"))
}

fn registered() -> Vault {
    let vault = Vault::new();
    let model = vault.path("model");
    sample_model(&model, 1000, 1);
    vault.add(&model, "nlp/bert", "1.0.0", &[]).success();
    vault
}

/// Was: "…/alice.pub is not an OpenSSH private key: PEM preamble contains
/// invalid data (NUL byte)".
#[test]
fn public_key_passed_as_key_says_so_and_names_the_private_key_file() {
    let vault = Vault::new();
    let model = vault.path("model");
    sample_model(&model, 1000, 1);
    let before = vault.git_ok(&vault.repo, &["rev-parse", "main"]);
    let public_as_private = Key {
        private: vault.alice.public.clone(),
        ..vault.alice.clone()
    };
    let run = vault.add_in(
        &vault.repo,
        &public_as_private,
        &model,
        "nlp/bert",
        "1.0.0",
        &[],
    );
    insta::assert_snapshot!(seen(&vault, &run), @r"
    exit 2
    mvault: [ROOT]/keys/alice.pub is an SSH public key; mvault signs and decrypts with the private key
    hint: pass the private key file instead: --key [ROOT]/keys/alice (the same path without .pub)
    ");

    // A .pub with no private key beside it: the hint cannot name one.
    let lone = vault.path("elsewhere/alice.pub");
    write_file(
        &lone,
        &std::fs::read(&vault.alice.public).expect("read .pub"),
    );
    let lone_key = Key {
        private: lone.clone(),
        ..vault.alice.clone()
    };
    let run = vault.add_in(&vault.repo, &lone_key, &model, "nlp/bert", "1.0.0", &[]);
    insta::assert_snapshot!(seen(&vault, &run), @r"
    exit 2
    mvault: [ROOT]/elsewhere/alice.pub is an SSH public key; mvault signs and decrypts with the private key
    hint: pass the private key file instead (ssh-keygen writes it next to [ROOT]/elsewhere/alice.pub, without .pub)
    ");
    assert_eq!(vault.git_ok(&vault.repo, &["rev-parse", "main"]), before);
}

/// Was: "unknown stage \"prodution\": stages are development, staging,
/// production, deprecated, archived", and no suggestion.
#[test]
fn stage_typo_suggests_the_stage_it_most_likely_meant() {
    let vault = registered();
    // A flag: typed by clap, which lists the stages and suggests one.
    let run = vault.mvault(
        &vault.repo,
        &vault.alice,
        &["promote", "nlp/bert@1.0.0", "--to", "prodution"],
    );
    insta::assert_snapshot!(seen(&vault, &run), @r"
    exit 2
    error: invalid value 'prodution' for '--to <STAGE>'
      [possible values: development, staging, production, deprecated, archived]

      tip: a similar value exists: 'production'

    For more information, try '--help'.
    ");
    let run = vault.mvault(
        &vault.repo,
        &vault.alice,
        &["approve", "nlp/bert@1.0.0", "--stage", "stagng"],
    );
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr());
    assert!(
        run.stderr()
            .contains("tip: a similar value exists: 'staging'"),
        "{}",
        run.stderr()
    );
    // A reference (`model#stage`): parsed by mvault, which suggests too.
    let out = vault.path("out");
    let run = vault.pull_in(&vault.repo, &vault.alice, "nlp/bert#prodution", &out);
    insta::assert_snapshot!(seen(&vault, &run), @r#"
    exit 2
    mvault: unknown stage "prodution": stages are development, staging, production, deprecated, archived
    hint: did you mean 'production'?
    "#);
    assert!(!out.exists());
}

/// Was: "nlp/bert@1.0.0: is in archived; from archived it can go to  (the
/// stage machine: …)".
#[test]
fn archived_version_says_nothing_can_follow_archived_and_what_to_do() {
    let vault = registered();
    let promote = |to: &str| {
        vault.mvault(
            &vault.repo,
            &vault.alice,
            &["promote", "nlp/bert@1.0.0", "--to", to, "--no-push"],
        )
    };
    promote("staging").success();
    // The default policy wants one approval for production, not by the
    // author: the admin (ml_admin holds every role) gives it.
    vault
        .mvault(
            &vault.repo,
            &vault.admin,
            &[
                "approve",
                "nlp/bert@1.0.0",
                "--stage",
                "production",
                "--no-push",
            ],
        )
        .success();
    for to in ["production", "deprecated", "archived"] {
        promote(to).success();
    }
    let tags = vault.git_ok(&vault.repo, &["tag", "-l"]);
    let run = promote("production");
    insta::assert_snapshot!(seen(&vault, &run), @r"
    exit 2
    mvault: nlp/bert@1.0.0 is in archived; archived is the last stage: nothing can follow it
    hint: an archived version stays archived. To serve its files again, register them as a new version: mvault pull nlp/bert@1.0.0 -o DIR, then mvault add DIR --model nlp/bert --version NEW --parent 1.0.0
    ");
    // Any other refused move says where the version can go.
    let run = vault.mvault(
        &vault.repo,
        &vault.alice,
        &["promote", "nlp/bert@1.0.0", "--to", "staging", "--no-push"],
    );
    assert!(
        run.stderr()
            .contains("archived is the last stage: nothing can follow it"),
        "{}",
        run.stderr()
    );
    assert_eq!(vault.git_ok(&vault.repo, &["tag", "-l"]), tags);
}

/// Was: `log --action bogus` printed nothing and exited 0.
#[test]
fn log_action_that_is_no_action_is_refused_with_the_list() {
    let vault = registered();
    let run = vault.mvault(&vault.repo, &vault.alice, &["log", "--action", "bogus"]);
    insta::assert_snapshot!(seen(&vault, &run), @r"
    exit 2
    error: invalid value 'bogus' for '--action <ACTION>'
      [possible values: register, approve, promote, rollback, deprecate, archive, deploy, purge, policy, add-user, remove-user, grant, revoke, env-add, env-change, env-remove, key-rewrap, key-rotation, init, accept, refuse, fetch, integrity-violation, alert]

    For more information, try '--help'.
    ");
    assert!(run.stdout.is_empty());
    let run = vault.mvault(&vault.repo, &vault.alice, &["log", "--action", "rolback"]);
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr());
    assert!(
        run.stderr()
            .contains("tip: a similar value exists: 'rollback'"),
        "{}",
        run.stderr()
    );
    // The server log's events, asked of the record: refused, not empty.
    let run = vault.mvault(&vault.repo, &vault.alice, &["log", "--action", "fetch"]);
    insta::assert_snapshot!(seen(&vault, &run), @r"
    exit 2
    mvault: --action fetch: that is an event of the server's log, not of the record
    hint: read the server's log on its repository: mvault log --server --action fetch
    ");
    // Control: a real action still filters.
    let run = vault
        .mvault(&vault.repo, &vault.alice, &["log", "--action", "register"])
        .success();
    assert_eq!(run.stdout().lines().count(), 1, "{}", run.stdout());
}

/// Runs the command a hint ends with (after "…: "), as `key`'s owner would
/// paste it into a shell in `repo`, with this build's mvault on PATH.
fn paste_hint(vault: &Vault, repo: &Path, key: &Key, run: &Run) -> Run {
    let stderr = run.stderr();
    let hint = stderr
        .lines()
        .find_map(|l| l.strip_prefix("hint: "))
        .unwrap_or_else(|| panic!("no hint: {stderr}"));
    let at = hint
        .find(": mvault ")
        .unwrap_or_else(|| panic!("the hint gives no command: {hint}"));
    let command = &hint[at + 2..];
    let sh = require_program("sh", "dash");
    let bin = Path::new(env!("CARGO_BIN_EXE_mvault"))
        .parent()
        .expect("bin dir")
        .to_owned();
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH");
    let mut cmd = vault.command(sh);
    cmd.arg("-c")
        .arg(command)
        .env("PATH", path)
        .env("MVAULT_KEY", &key.private)
        .current_dir(repo);
    vault.run(cmd)
}

/// Was: "hint: ask an ml_admin to grant ml_admin on ** on any (mvault policy
/// grant alice --role ml_admin on ** --models 'any'), …".
#[test]
fn self_grant_hint_is_a_command_an_admin_can_paste() {
    let vault = registered();
    let run = vault.mvault(
        &vault.repo,
        &vault.alice,
        &[
            "policy", "grant", "alice", "--role", "ml_admin", "--models", "**",
        ],
    );
    insta::assert_snapshot!(seen(&vault, &run), @r"
    exit 3
    mvault: alice has no role on **; admin needs ml_admin on **
    hint: have an ml_admin do it, or ask one to grant it: mvault policy grant alice --role ml_admin --models '**'
    ");
    paste_hint(&vault, &vault.repo, &vault.admin, &run).success();
    let policy = vault
        .mvault(&vault.repo, &vault.alice, &["policy", "show"])
        .success()
        .stdout();
    assert!(
        policy.contains("user = \"alice\"\nrole = \"ml_admin\"\nmodels = \"**\""),
        "{policy}"
    );

    // The same shape for a role on one model: bob may not register.
    let bob = vault.add_user("bob");
    let model = vault.path("model");
    let run = vault.add_in(&vault.repo, &bob, &model, "cv/resnet", "1.0.0", &[]);
    insta::assert_snapshot!(seen(&vault, &run), @r"
    exit 3
    mvault: bob has no role on cv/resnet; register needs developer
    hint: have someone who holds developer do it, or ask an ml_admin to grant it: mvault policy grant bob --role developer --models 'cv/resnet'
    ");
    paste_hint(&vault, &vault.repo, &vault.admin, &run).success();
    vault
        .add_in(&vault.repo, &bob, &model, "cv/resnet", "1.0.0", &[])
        .success();
}

/// Was: "unknown role \"ml_admn\": roles are viewer, …", and no
/// suggestion; `report --format` took any string until the report was
/// built. Both are typed by clap now: the values listed, one suggested.
#[test]
fn role_and_report_format_typos_list_the_values_and_suggest_one() {
    let vault = registered();
    let before = vault.git_ok(&vault.repo, &["rev-parse", "main"]);
    let run = vault.mvault(
        &vault.repo,
        &vault.admin,
        &[
            "policy", "grant", "alice", "--role", "ml_admn", "--models", "**",
        ],
    );
    insta::assert_snapshot!(seen(&vault, &run), @r"
    exit 2
    error: invalid value 'ml_admn' for '--role <ROLE>'
      [possible values: viewer, developer, ml_engineer, ml_admin, approver, auditor]

      tip: a similar value exists: 'ml_admin'

    For more information, try '--help'.
    ");
    assert_eq!(vault.git_ok(&vault.repo, &["rev-parse", "main"]), before);

    let run = vault.mvault(
        &vault.repo,
        &vault.alice,
        &["report", "nlp/bert", "--format", "htm"],
    );
    insta::assert_snapshot!(seen(&vault, &run), @r"
    exit 2
    error: invalid value 'htm' for '--format <FORMAT>'
      [possible values: json, md, html]

      tip: a similar value exists: 'html'

    For more information, try '--help'.
    ");
    assert!(run.stdout.is_empty());
    // Control: `markdown` is still taken for md.
    let md = vault
        .mvault(
            &vault.repo,
            &vault.alice,
            &["report", "nlp/bert", "--format", "markdown"],
        )
        .success()
        .stdout();
    let default = vault
        .mvault(&vault.repo, &vault.alice, &["report", "nlp/bert"])
        .success()
        .stdout();
    assert_eq!(md, default);
}

/// Names and references are checked while clap parses, yet the refusal is
/// mvault's own (the rule, the hint), and comes before anything is opened.
#[test]
fn a_name_refused_while_parsing_keeps_mvaults_message_and_hint() {
    let vault = registered();
    let run = vault.mvault(&vault.repo, &vault.alice, &["status", "NLP/bert"]);
    insta::assert_snapshot!(seen(&vault, &run), @r#"
    exit 2
    mvault: invalid model name "NLP/bert": it has capital letters; a model name is 1 to 4 segments separated by '/', each [a-z0-9][a-z0-9._-]{0,63}
    "#);
    let run = vault.mvault(
        &vault.repo,
        &vault.alice,
        &["purge", "nlp/bert", "--reason", "gone"],
    );
    insta::assert_snapshot!(seen(&vault, &run), @r"
    exit 2
    mvault: nlp/bert: name one version, as MODEL@VERSION
    ");
    // Outside any repository: the argument's error, not "not a git
    // repository".
    let mut cmd = vault.command(env!("CARGO_BIN_EXE_mvault"));
    cmd.current_dir(vault.root())
        .args(["approve", "nlp/bert#prod", "--stage", "production"]);
    let run = vault.run(cmd);
    insta::assert_snapshot!(seen(&vault, &run), @r#"
    exit 2
    mvault: unknown stage "prod": stages are development, staging, production, deprecated, archived
    hint: did you mean 'production'?
    "#);
}
