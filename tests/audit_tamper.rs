//! Tamper detection (issue "Audit", acceptance 2): `mvault audit verify`
//! replays the record and names the first thing that breaks. Each attack is
//! made with stock git only (plumbing, `git -c gpg.format=ssh … -S`), never
//! with mvault's own code, on a history that verifies before the attack;
//! where it can, a control makes the same object the honest way and shows
//! that it verifies, so the break is due to the one thing the attack changed.

use std::fs;
use std::path::Path;

use crate::audit_events::History;
use crate::common::*;

/// `History::new` + `two_releases`: main's tip is the commit that
/// registered nlp/bert@1.1.0; promotions #1 to #4; the record verifies.
fn released() -> History {
    let h = History::new();
    h.two_releases();
    verify(&h, h.repo()).success().mentions(&["record intact"]);
    h
}

/// `mvault audit verify` in `dir` (as admin; no key is needed without --decrypt).
fn verify(h: &History, dir: &Path) -> Run {
    h.mvault(dir, &h.admin, &["audit", "verify"])
}

/// `mvault audit verify --json` in `dir`, parsed.
fn verify_json(h: &History, dir: &Path) -> serde_json::Value {
    let run = h.mvault(dir, &h.admin, &["audit", "verify", "--json"]);
    let line = run.stdout();
    serde_json::from_str(line.trim())
        .unwrap_or_else(|e| panic!("audit verify --json is not JSON: {e}: {}", run.output()))
}

/// Asserts that `audit verify` exits non-zero with an integrity error that
/// names `object` and `rule`, and that `--json` says the same.
#[track_caller]
fn assert_break(h: &History, dir: &Path, object: &str, rule: &str) -> Run {
    let run = verify(h, dir).mvault_error();
    assert_eq!(
        run.status.code(),
        Some(4),
        "integrity errors exit with 4: {}",
        run.output()
    );
    assert!(
        run.stderr()
            .contains(&format!("mvault: record broken at {object}: {rule}")),
        "expected `record broken at {object}: {rule}`:\n{}",
        run.output()
    );
    let json = verify_json(h, dir);
    assert_eq!(json["ok"], false, "{json}");
    assert_eq!(json["first_break"]["object"], object, "{json}");
    assert_eq!(json["first_break"]["rule"], rule, "{json}");
    run
}

/// Stock git with SSH signing by `key` (`gpg.format=ssh`, `user.signingkey`).
fn git_signing(h: &History, key: &Key, args: &[&str]) -> Run {
    let mut cmd = h.git_signing_command(h.repo(), key, args);
    // The object claims the key's owner, as a forger would write it.
    as_key_owner(&mut cmd, key);
    h.run(cmd)
}

/// The message of commit `rev`, byte for byte.
fn commit_message(h: &History, rev: &str) -> String {
    let raw = h.git_ok(h.repo(), &["cat-file", "commit", rev]);
    let (_, body) = raw.split_once("\n\n").expect("commit has a message");
    format!("{body}\n")
}

/// A commit with `tree`, `parent` and `message`, signed by `key` (or
/// unsigned), made with `git commit-tree`; returns its id.
fn commit_tree(h: &History, key: Option<&Key>, tree: &str, parent: &str, message: &str) -> String {
    let msg_file = h.path("forged-message.txt");
    write_file(&msg_file, message.as_bytes());
    let msg_path = msg_file.to_str().expect("utf-8 path");
    let args = ["commit-tree", tree, "-p", parent, "-F", msg_path];
    match key {
        Some(k) => {
            let mut signed = vec!["commit-tree", "-S"];
            signed.extend_from_slice(&args[1..]);
            git_signing(h, k, &signed)
                .success()
                .stdout()
                .trim()
                .to_owned()
        }
        None => h.git_ok(h.repo(), &args),
    }
}

/// Replaces main's tip by a commit with the same parent and message and
/// `tree`, signed by `key` (or unsigned); returns the new tip.
fn rewrite_tip(h: &History, key: Option<&Key>, tree: &str) -> String {
    let message = commit_message(h, "main");
    rewrite_tip_with(h, key, tree, &message)
}

/// `rewrite_tip` with another message.
fn rewrite_tip_with(h: &History, key: Option<&Key>, tree: &str, message: &str) -> String {
    let parent = h.git_ok(h.repo(), &["rev-parse", "main^"]);
    let forged = commit_tree(h, key, tree, &parent, message);
    h.git_ok(h.repo(), &["update-ref", "refs/heads/main", &forged]);
    forged
}

#[test]
fn audit_tamper_history_rewritten_with_an_unsigned_commit() {
    let h = released();
    let tree = h.git_ok(h.repo(), &["rev-parse", "main^{tree}"]);
    let forged = rewrite_tip(&h, None, &tree);
    assert_break(&h, h.repo(), &forged, "unsigned commit");
}

#[test]
fn audit_tamper_history_rewritten_with_a_commit_signed_by_a_key_not_in_the_policy() {
    let h = released();
    let mallory = h.keygen("mallory");
    let tree = h.git_ok(h.repo(), &["rev-parse", "main^{tree}"]);

    // Control: the same rewrite signed by alice, who registered 1.1.0: the
    // commit itself verifies (tree, parent and message are legitimate); the
    // first break is only the tags that named the old tip, now off main.
    let honest = rewrite_tip(&h, Some(&h.alice), &tree);
    let control = verify_json(&h, h.repo());
    assert_eq!(control["first_break"]["rule"], "tag target", "{control}");
    assert_ne!(
        control["first_break"]["object"],
        honest.as_str(),
        "{control}"
    );
    h.git_ok(h.repo(), &["update-ref", "refs/heads/main", &honest]);

    let forged = rewrite_tip(&h, Some(&mallory), &tree);
    // Stock git sees a good signature by a key; only the policy says it is nobody's.
    assert!(
        h.git_ok(h.repo(), &["cat-file", "commit", &forged])
            .contains("-----BEGIN SSH SIGNATURE-----"),
        "the forged commit is SSH-signed"
    );
    // The break names the commit, the rule and mallory's key.
    let fingerprint = h.fingerprint(&mallory);
    assert_break(&h, h.repo(), &forged, "unknown signer").mentions(&[&fingerprint]);
}

#[test]
fn audit_tamper_promotion_tag_signed_by_a_key_not_authorised_at_its_time() {
    let h = released();
    // The real promotion #4 (1.1.0 to production), as a template.
    let real = h.git_ok(
        h.repo(),
        &["cat-file", "tag", "refs/tags/nlp/bert#production#4"],
    );
    let (_, body) = real.split_once("\n\n").expect("tag has a message");
    let body = body
        .split("-----BEGIN SSH SIGNATURE-----")
        .next()
        .expect("message");
    assert!(
        body.contains("Mvault-To-Stage: production\n"),
        "template:\n{body}"
    );
    let prev3 = h.git_ok(h.repo(), &["rev-parse", "refs/tags/nlp/bert#staging#3"]);
    let prev4 = h.git_ok(h.repo(), &["rev-parse", "refs/tags/nlp/bert#production#4"]);
    // Promotion #5: 1.1.0 from production to deprecated, linked to #4;
    // deprecation needs no approval, so the approval and ticket lines go.
    let message: String = body
        .replace(
            "promote nlp/bert@1.1.0 to production",
            "promote nlp/bert@1.1.0 to deprecated",
        )
        .replace(
            "Mvault-From-Stage: staging\n",
            "Mvault-From-Stage: production\n",
        )
        .replace(
            "Mvault-To-Stage: production\n",
            "Mvault-To-Stage: deprecated\n",
        )
        .replace(
            &format!("Mvault-Previous-Promotion: {prev3}\n"),
            &format!("Mvault-Previous-Promotion: {prev4}\n"),
        )
        .lines()
        .filter(|l| !l.starts_with("Mvault-Approval:") && !l.starts_with("Mvault-Ticket:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(message.contains(&prev4), "message:\n{message}");
    let name = "nlp/bert#deprecated#5";
    let target = h.git_ok(
        h.repo(),
        &["rev-parse", "refs/tags/nlp/bert@v1.1.0^{commit}"],
    );
    let make = |key: &Key| {
        git_signing(&h, key, &["tag", "-f", "-s", "-m", &message, name, &target]).success();
        let id = h.git_ok(h.repo(), &["rev-parse", &format!("refs/tags/{name}")]);
        h.git_ok(h.repo(), &["update-ref", "refs/mvault/seq/nlp/bert/5", &id]);
    };

    // Control: signed by alice (ml_engineer on nlp/*, the promoter) the
    // hand-made tag is a valid promotion; mvault reads it as one.
    make(&h.alice);
    verify(&h, h.repo()).success().mentions(&["record intact"]);
    let status = h
        .mvault(h.repo(), &h.admin, &["status", "nlp/bert", "--json"])
        .success()
        .stdout();
    let status: serde_json::Value = serde_json::from_str(status.trim()).expect("status --json");
    assert_eq!(status["stages"]["deprecated"], "1.1.0", "{status}");

    // The attack: the same tag signed by bob, an approver, who may not
    // promote. The audit names the rule the hook would have: "role".
    make(&h.bob);
    let run = assert_break(&h, h.repo(), name, "role");
    run.mentions(&["bob", "ml_engineer"]);
}

#[test]
fn audit_tamper_manifest_edited_after_signing() {
    let h = released();
    let path = "models/nlp/bert/1.1.0/manifest.toml";
    let manifest = String::from_utf8(h.git_show_bytes(h.repo(), &format!("main:{path}")))
        .expect("manifest is UTF-8");
    // The attack a manifest signature is there for: a better metric.
    assert!(manifest.contains("f1 = 0.93"), "manifest:\n{manifest}");
    let edited = manifest.replacen("f1 = 0.93", "f1 = 0.99", 1);
    assert_ne!(edited, manifest, "the edit changes the manifest");

    // A tree like main's, with the edited manifest, built with plumbing in
    // a private index.
    let index = h.path("forged-index");
    let plumbing = |args: &[&str], input: Option<&[u8]>| -> String {
        let mut cmd = h.git_command(h.repo(), args);
        cmd.env("GIT_INDEX_FILE", &index);
        let run = match input {
            Some(bytes) => h.run_with_input(cmd, bytes),
            None => h.run(cmd),
        };
        run.success().stdout().trim().to_owned()
    };
    let tree_with = |text: &str| -> String {
        let _ = fs::remove_file(&index);
        plumbing(&["read-tree", "main"], None);
        let blob = plumbing(&["hash-object", "-w", "--stdin"], Some(text.as_bytes()));
        plumbing(
            &[
                "update-index",
                "--cacheinfo",
                &format!("100644,{blob},{path}"),
            ],
            None,
        );
        plumbing(&["write-tree"], None)
    };

    // Control: the same plumbing with the manifest unchanged, signed by
    // alice, verifies.
    let same = tree_with(&manifest);
    assert_eq!(same, h.git_ok(h.repo(), &["rev-parse", "main^{tree}"]));
    let honest = rewrite_tip(&h, Some(&h.alice), &same);
    // The commit verifies; only the tags that named the old tip are off main now.
    let control = verify_json(&h, h.repo());
    assert_eq!(control["first_break"]["rule"], "tag target", "{control}");
    assert_ne!(
        control["first_break"]["object"],
        honest.as_str(),
        "{control}"
    );
    assert_eq!(h.git_ok(h.repo(), &["rev-parse", "main"]), honest);

    // A naive attack: the edited manifest, committed and signed by alice's
    // real key with the original message; the commit's trailer still
    // names the digest of the original manifest.
    let tree = tree_with(&edited);
    let real_tip = honest;
    let forged = rewrite_tip(&h, Some(&h.alice), &tree);
    let run = verify(&h, h.repo()).mvault_error();
    let json = verify_json(&h, h.repo());
    assert_eq!(json["first_break"]["object"], forged.as_str(), "{json}");
    assert!(
        run.stderr()
            .contains(&format!("mvault: record broken at {forged}: ")),
        "{}",
        run.output()
    );
    run.mentions(&["Mvault-Manifest-Sha256", "manifest.toml"]);

    // A careful attack: the trailer fixed to the edited manifest's digest
    // too. Only manifest.sig, which signs the original bytes, is left to
    // give it away.
    h.git_ok(h.repo(), &["update-ref", "refs/heads/main", &real_tip]);
    let message = commit_message(&h, "main").replace(
        &sha256_hex(manifest.as_bytes()),
        &sha256_hex(edited.as_bytes()),
    );
    assert!(
        message.contains(&sha256_hex(edited.as_bytes())),
        "{message}"
    );
    let forged = rewrite_tip_with(&h, Some(&h.alice), &tree, &message);
    assert_break(&h, h.repo(), &forged, "bad manifest signature").mentions(&["manifest.sig"]);
}

/// A bare server with the hook, and alice's clone pushing to it: the
/// decision log gets one line per push.
#[test]
fn audit_tamper_removed_server_log_line_is_named() {
    let v = Vault::with_remote();
    let server = v.remote().to_owned();
    let mut install = v.command(env!("CARGO_BIN_EXE_mvault"));
    install
        .args(["hook", "install"])
        .arg(&server)
        .arg("--root-key")
        .arg(&v.admin.public);
    v.run(install).success();

    let model = v.path("model");
    sample_model(&model, 4096, 7);
    for (i, version) in ["1.0.0", "1.1.0", "1.2.0"].iter().enumerate() {
        let mut cmd = v.mvault_command(
            &v.repo,
            &v.alice,
            &[
                "add",
                model.to_str().expect("utf-8 path"),
                "--model",
                "nlp/bert",
                "--version",
                version,
            ],
        );
        cmd.env("MVAULT_USER", "alice")
            .env("MVAULT_NOW", (NOW + 60 * (i as u64 + 1)).to_string());
        v.run(cmd).success().mentions(&["pushed to origin"]);
    }
    let log_path = server.join("mvault-decisions.jsonl");
    let log = fs::read_to_string(&log_path).expect("the server has a decision log");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "one decision per push:\n{log}");

    let hook_verify = || {
        let mut cmd = v.command(env!("CARGO_BIN_EXE_mvault"));
        cmd.args(["hook", "log", "verify"]).arg(&server);
        v.run(cmd)
    };
    let server_verify = || v.mvault(&server, &v.admin, &["audit", "verify"]);
    hook_verify()
        .success()
        .mentions(&["3 entries", "chain intact"]);
    server_verify().success().mentions(&["record intact"]);

    // Remove the second decision.
    let kept = format!("{}\n{}\n", lines[0], lines[2]);
    fs::write(&log_path, kept).expect("rewrite the log");

    let run = hook_verify().mvault_error();
    assert_eq!(run.status.code(), Some(4), "{}", run.output());
    run.mentions(&["mvault-decisions.jsonl line 2", "chain broken"]);

    let run = server_verify().mvault_error();
    assert_eq!(run.status.code(), Some(4), "{}", run.output());
    assert!(
        run.stderr().contains(
            "mvault: record broken at mvault-decisions.jsonl: server log chain broken: mvault-decisions.jsonl line 2"
        ),
        "{}",
        run.output()
    );
}
