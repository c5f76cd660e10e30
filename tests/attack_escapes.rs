//! Attack: attacker text reaches the terminal raw.
//!
//! Metadata, approval comments, promotion reasons and tagger names are
//! written by whoever can write the repository, or by the server. Printed
//! raw, `ESC [ 2 J` clears the reader's screen, `ESC ] 0 ;` retitles the
//! terminal, and a colour code hides a line. `show` and `log` print every
//! such byte escaped (`\u{1b}`); their JSON is escaped by serde.

use crate::common::*;

const RED: &str = "\u{1b}[31mred";

/// A version whose metadata carries an escape sequence, and an approval and
/// a promotion whose comment, reason and tagger carry more, hand-made with
/// stock git as a hostile approver (or server) would write them.
fn hostile_vault() -> Vault {
    let vault = Vault::new();
    let model = vault.path("model");
    sample_model(&model, 1000, 3);
    let meta = format!("note={RED}");
    vault
        .add(
            &model,
            "nlp/bert",
            "1.0.0",
            &["--meta", &meta, "--framework", "torch\u{1b}[8m"],
        )
        .success();
    let commit = vault.git_ok(
        &vault.repo,
        &["rev-parse", "refs/tags/nlp/bert@v1.0.0^{commit}"],
    );
    let digest =
        sha256_hex(&vault.git_show_bytes(&vault.repo, "main:models/nlp/bert/1.0.0/manifest.toml"));
    let approval = format!(
        "approve nlp/bert@1.0.0 for production\n\nMvault-Action: approve\nMvault-Model: nlp/bert\nMvault-Version: 1.0.0\nMvault-Stage: production\nMvault-Approver: alice\nMvault-Manifest-Sha256: {digest}\nMvault-Comment: \u{1b}[2J\u{1b}[31mlooks good\n"
    );
    let mut tag = vault.git_signing_command(
        &vault.repo,
        &vault.alice,
        &[
            "tag",
            "-s",
            "-m",
            &approval,
            "mvault-approval/production/alice/nlp/bert/1.0.0",
            &commit,
        ],
    );
    tag.env("GIT_COMMITTER_NAME", "alice\u{1b}]0;pwned\u{7}")
        .env("GIT_COMMITTER_EMAIL", "alice@mvault");
    vault.run(tag).success();
    let promotion = format!(
        "promote nlp/bert@1.0.0 to staging\n\nMvault-Action: promote\nMvault-Model: nlp/bert\nMvault-Version: 1.0.0\nMvault-Manifest-Sha256: {digest}\nMvault-From-Stage: development\nMvault-To-Stage: staging\nMvault-Previous-Promotion: none\nMvault-Ticket: OPS-1\u{1b}[1A\nMvault-Reason: \u{1b}[31mbecause\u{9b}2J\n"
    );
    vault.sign_tag(
        &vault.repo,
        &vault.alice,
        "nlp/bert#staging#1",
        &commit,
        &promotion,
    );
    vault
}

#[track_caller]
fn assert_no_raw_controls(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    assert!(
        !text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "{what} printed a raw control character:\n{}",
        text.escape_debug()
    );
}

#[test]
fn attack_escapes_show_prints_metadata_escaped() {
    let vault = hostile_vault();
    let run = vault
        .mvault(&vault.repo, &vault.alice, &["show", "nlp/bert@1.0.0"])
        .success();
    assert_no_raw_controls("show", &run.stdout);
    let stdout = run.stdout();
    let meta = stdout.lines().find(|l| l.starts_with("meta")).unwrap();
    insta::assert_snapshot!(meta, @r"meta        note = \u{1b}[31mred");
    let framework = stdout.lines().find(|l| l.starts_with("framework")).unwrap();
    insta::assert_snapshot!(framework, @r"framework   torch\u{1b}[8m");
    // JSON carries the text itself, escaped by JSON's own rules.
    let json = vault
        .mvault(
            &vault.repo,
            &vault.alice,
            &["show", "nlp/bert@1.0.0", "--json"],
        )
        .success();
    assert_no_raw_controls("show --json", &json.stdout);
    let v: serde_json::Value = serde_json::from_str(json.stdout().trim()).unwrap();
    assert_eq!(v["metadata"]["note"], RED);
}

#[test]
fn attack_escapes_log_prints_comments_reasons_and_taggers_escaped() {
    let vault = hostile_vault();
    let run = vault
        .mvault(&vault.repo, &vault.alice, &["log", "--model", "nlp/bert"])
        .success();
    assert_no_raw_controls("log", &run.stdout);
    let stdout = run.stdout();
    for shown in [
        r"\u{1b}[2J\u{1b}[31mlooks good",
        // git drops the trailing BEL from a name itself.
        r"alice\u{1b}]0;pwned",
        r"\u{1b}[31mbecause\u{9b}2J",
        r"OPS-1\u{1b}[1A",
    ] {
        assert!(
            stdout.contains(shown),
            "log does not show {shown}:\n{stdout}"
        );
    }
    let json = vault
        .mvault(
            &vault.repo,
            &vault.alice,
            &["log", "--model", "nlp/bert", "--json"],
        )
        .success();
    assert_no_raw_controls("log --json", &json.stdout);
}
