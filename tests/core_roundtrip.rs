//! A version goes in with `mvault add`, travels with stock git, and comes
//! back out of `mvault pull` byte for byte; no git object holds plaintext.

use crate::common::*;

#[test]
fn add_pushes_and_pull_from_a_stock_clone_is_byte_identical() {
    let vault = Vault::with_remote();
    let model = vault.path("model");
    // One file well above 64 MiB (and not a multiple of any chunk size), a
    // nested directory, small and medium files.
    write_pseudo_random(&model.join("weights/model-00001.bin"), 64 * MIB + 4099, 1);
    write_pseudo_random(&model.join("weights/model-00002.bin"), 3 * MIB + 1, 2);
    write_pseudo_random(&model.join("optimizer.pt"), 1_234_567, 3);
    write_file(&model.join("config.json"), b"{\"hidden_size\": 768}\n");
    write_file(
        &model.join("tokenizer/nested/deeper/vocab.txt"),
        b"[PAD]\n[UNK]\nhello\nworld\n",
    );
    vault
        .add(
            &model,
            "nlp/bert",
            "1.0.0",
            &[
                "--framework",
                "pytorch",
                "--meta",
                "task=ner",
                "--metric",
                "f1=0.91",
                "--provenance",
                "code_revision=abc123",
                "--message",
                "first fine-tune",
            ],
        )
        .success();

    // `add` pushed commit and tag to origin.
    let remote = vault.remote();
    assert_eq!(
        vault.git_ok(&vault.repo, &["rev-parse", "main"]),
        vault.git_ok(remote, &["rev-parse", "main"]),
        "remote main is not the local main after add"
    );
    vault.git_ok(
        remote,
        &[
            "rev-parse",
            "--verify",
            "refs/tags/nlp/bert@v1.0.0^{commit}",
        ],
    );

    // A stock clone of the remote is all a consumer needs.
    let clone = vault.git_clone(remote, "clone");
    let out = vault.path("out");
    vault
        .pull_in(&clone, &vault.alice, "nlp/bert@1.0.0", &out)
        .success();
    assert_same_tree(&model, &out);

    vault
        .mvault(&clone, &vault.alice, &["verify", "nlp/bert@1.0.0"])
        .success();
    vault
        .mvault(
            &clone,
            &vault.alice,
            &["verify", "nlp/bert@1.0.0", "--dir", out.to_str().unwrap()],
        )
        .success();
}

#[test]
fn empty_file_and_non_ascii_names_round_trip() {
    let vault = Vault::new();
    let model = vault.path("model");
    write_file(&model.join("empty.txt"), b"");
    write_file(&model.join("données/modèle €.txt"), "éléphant\n".as_bytes());
    write_pseudo_random(&model.join("w.bin"), 70_000, 9);
    vault.add(&model, "nlp/edge", "0.1.0", &[]).success();
    let out = vault.path("out");
    vault
        .pull_in(&vault.repo, &vault.alice, "nlp/edge@0.1.0", &out)
        .success();
    assert_same_tree(&model, &out);
}

#[test]
fn pull_without_version_takes_the_newest_by_semver_precedence() {
    let vault = Vault::new();
    // Registered out of order; 1.10.0 is newest by SemVer, not by string
    // order or by time.
    for version in ["1.2.0", "1.10.0", "1.9.0"] {
        let model = vault.path(&format!("model-{version}"));
        write_file(&model.join("VERSION"), version.as_bytes());
        vault.add(&model, "nlp/bert", version, &[]).success();
    }
    let out = vault.path("out");
    vault
        .pull_in(&vault.repo, &vault.alice, "nlp/bert", &out)
        .success();
    assert_eq!(
        std::fs::read_to_string(out.join("VERSION")).unwrap(),
        "1.10.0"
    );
}

#[test]
fn no_git_object_contains_model_plaintext() {
    const MARKER: &[u8] = b"MVAULT-PLAINTEXT-CANARY-5f0c2b9e71";
    let vault = Vault::with_remote();
    let model = vault.path("model");
    // Below and above core.bigFileThreshold (1 MiB), so that both of git's
    // object paths are covered.
    write_file(
        &model.join("README.md"),
        &[b"# model card\n".as_slice(), MARKER, b"\n"].concat(),
    );
    let weights = model.join("weights.bin");
    write_pseudo_random(&weights, 3 * MIB, 7);
    write_at(&weights, 0, MARKER);
    write_at(&weights, 2 * MIB + 5, MARKER);
    vault.add(&model, "nlp/canary", "1.0.0", &[]).success();

    for repo in [vault.repo.as_path(), vault.remote()] {
        let objects = vault
            .git(repo, &["cat-file", "--batch-all-objects", "--batch"])
            .success()
            .stdout;
        assert!(
            objects.len() as u64 > 3 * MIB,
            "{}: the encrypted weights are missing from the object store ({} bytes)",
            repo.display(),
            objects.len()
        );
        assert!(
            !contains_bytes(&objects, MARKER),
            "{}: a git object contains the plaintext marker",
            repo.display()
        );
    }
}

#[test]
fn list_and_show_report_the_version_as_text_and_json() {
    let vault = Vault::new();
    let model = vault.path("model");
    sample_model(&model, 10_000, 4);
    vault
        .add(&model, "nlp/bert", "1.0.0", &["--framework", "pytorch"])
        .success();
    let weights_sha = sha256_file(&model.join("model.safetensors"));

    vault
        .mvault(&vault.repo, &vault.alice, &["list"])
        .success()
        .mentions(&["nlp/bert", "1.0.0"]);
    let list = vault
        .mvault(&vault.repo, &vault.alice, &["list", "--json"])
        .success();
    assert_json(&list.stdout());
    list.mentions(&["\"nlp/bert\"", "1.0.0"]);

    vault
        .mvault(&vault.repo, &vault.alice, &["show", "nlp/bert@1.0.0"])
        .success()
        .mentions(&["nlp/bert", "1.0.0", "model.safetensors"]);
    let show = vault
        .mvault(
            &vault.repo,
            &vault.alice,
            &["show", "nlp/bert@1.0.0", "--json"],
        )
        .success();
    assert_json(&show.stdout());
    show.mentions(&["model.safetensors", &weights_sha, "pytorch"]);
}

/// JSON as one document or as JSON lines.
#[track_caller]
fn assert_json(text: &str) {
    if serde_json::from_str::<serde_json::Value>(text).is_ok() {
        return;
    }
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not JSON nor JSON lines ({e}): {line}\n{text}"));
    }
    assert!(!text.trim().is_empty(), "empty JSON output");
}

#[test]
fn demo_runs_in_a_fresh_directory() {
    let env = TestEnv::new();
    let mut cmd = env.command(env!("CARGO_BIN_EXE_mvault"));
    cmd.arg("demo").arg(env.path("demo"));
    // The chain of custody reaches production: the deploy step lands and
    // the serving job's pull is checked against the environment.
    env.run(cmd).success().mentions(&[
        "deployed nlp/bert@1.0.0 (production) to prod-eu",
        "prod-eu  nlp/bert@1.0.0  (production)  by alice",
        "--env prod-eu -o",
        "demo complete",
    ]);
}

/// `add` in a checked-out clone brings its index and work tree along (the
/// new version's manifest and signature, staged and checked out alone):
/// `git status` stays clean, and a file of the user's where a new version
/// goes is never overwritten.
#[test]
fn add_keeps_a_checked_out_clone_clean_and_never_overwrites_a_file() {
    let vault = Vault::with_remote();
    let clone = vault.git_clone(vault.remote(), "clone");
    let (first, second) = (vault.path("model-1"), vault.path("model-2"));
    sample_model(&first, 1024, 1);
    sample_model(&second, 1024, 2);
    vault
        .add_in(&clone, &vault.alice, &first, "nlp/bert", "1.0.0", &[])
        .success();
    let dir = clone.join("models/nlp/bert/1.0.0");
    for file in ["manifest.toml", "manifest.sig"] {
        assert_eq!(
            std::fs::read(dir.join(file)).expect("checked out"),
            vault.git_show_bytes(&clone, &format!("main:models/nlp/bert/1.0.0/{file}")),
            "{file} in the work tree is not main's"
        );
    }
    assert_eq!(vault.git_ok(&clone, &["status", "--porcelain"]), "");
    let mine = clone.join("models/nlp/bert/1.1.0/manifest.toml");
    write_file(&mine, b"mine\n");
    vault
        .add_in(&clone, &vault.alice, &second, "nlp/bert", "1.1.0", &[])
        .success();
    assert_eq!(std::fs::read(&mine).expect("still there"), b"mine\n");
}
