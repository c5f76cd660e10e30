//! Everything mvault writes is checkable with stock git, ssh-keygen and age
//! alone, in the formats of docs/formats.md: a vault outlives its tool.

use std::fs;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::common::*;

/// A vault holding nlp/bert 1.0.0 and its child 1.1.0; returns the model dir
/// of 1.1.0.
fn vault_with_two_versions() -> (Vault, std::path::PathBuf) {
    let vault = Vault::new();
    let v1 = vault.path("model-1.0.0");
    sample_model(&v1, 2 * MIB + 17, 1);
    vault.add(&v1, "nlp/bert", "1.0.0", &[]).success();

    let v2 = vault.path("model-1.1.0");
    sample_model(&v2, 3 * MIB + 5, 2);
    write_file(&v2.join("b/z.txt"), b"z\n");
    write_file(&v2.join("a.txt"), b"a\n");
    vault
        .add(
            &v2,
            "nlp/bert",
            "1.1.0",
            &[
                "--parent",
                "1.0.0",
                "--framework",
                "pytorch",
                "--meta",
                "task=ner",
                "--metric",
                "f1=0.93",
                "--provenance",
                "training_data=s3://bucket/ner-2026",
                "--message",
                "longer training",
            ],
        )
        .success();
    (vault, v2)
}

fn allowed_signers_flag(signers: &Path) -> String {
    format!("gpg.ssh.allowedSignersFile={}", signers.display())
}

#[test]
fn git_verify_commit_and_verify_tag_accept_every_mvault_signature() {
    let (vault, _) = vault_with_two_versions();
    let signers = vault.signers_file(&vault.repo, &vault.alice);
    let flag = allowed_signers_flag(&signers);

    // One line per policy user, principal first, both namespaces.
    let text = fs::read_to_string(&signers).unwrap();
    for key in [&vault.admin, &vault.alice] {
        let blob = key
            .public_line()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned();
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{} ", key.name)))
            .unwrap_or_else(|| panic!("no allowed_signers line for {}:\n{text}", key.name));
        assert!(
            line.contains(&blob),
            "{} line has another key: {line}",
            key.name
        );
        assert!(
            line.contains("namespaces=\"git,mvault-manifest\""),
            "namespaces missing: {line}"
        );
    }

    // Every commit of main: init and policy changes by admin, registrations
    // by alice.
    let commits = vault.git_ok(&vault.repo, &["rev-list", "main"]);
    let commits: Vec<&str> = commits.lines().collect();
    assert_eq!(commits.len(), 5, "init, add-user, grant, two registrations");
    for commit in &commits {
        vault
            .git(&vault.repo, &["-c", &flag, "verify-commit", commit])
            .success();
    }
    vault
        .git(&vault.repo, &["-c", &flag, "verify-commit", "main"])
        .success()
        .mentions(&["good \"git\" signature for alice"]);
    let root = commits.last().unwrap();
    vault
        .git(&vault.repo, &["-c", &flag, "verify-commit", root])
        .success()
        .mentions(&["good \"git\" signature for admin"]);

    // Registration tags: annotated, signed, on the commit that added the version.
    let tags = vault.git_ok(&vault.repo, &["tag", "-l", "nlp/bert@*"]);
    insta::assert_snapshot!(tags, @r"
    nlp/bert@v1.0.0
    nlp/bert@v1.1.0
    ");
    assert_eq!(
        vault.git_ok(&vault.repo, &["cat-file", "-t", "nlp/bert@v1.1.0"]),
        "tag"
    );
    assert_eq!(
        vault.git_ok(&vault.repo, &["rev-parse", "nlp/bert@v1.1.0^{commit}"]),
        vault.git_ok(&vault.repo, &["rev-parse", "main"])
    );
    assert_eq!(
        vault.git_ok(&vault.repo, &["rev-parse", "nlp/bert@v1.0.0^{commit}"]),
        vault.git_ok(&vault.repo, &["rev-parse", "main~1"])
    );
    for tag in ["nlp/bert@v1.0.0", "nlp/bert@v1.1.0"] {
        vault
            .git(&vault.repo, &["-c", &flag, "verify-tag", tag])
            .success()
            .mentions(&["good \"git\" signature for alice"]);
    }
}

#[test]
fn ssh_keygen_verifies_the_manifest_signature() {
    let (vault, _) = vault_with_two_versions();
    let signers = vault.signers_file(&vault.repo, &vault.alice);
    let manifest = vault.git_show_bytes(&vault.repo, "main:models/nlp/bert/1.1.0/manifest.toml");
    let sig = vault.path("manifest.sig");
    vault.git_show_to(&vault.repo, "main:models/nlp/bert/1.1.0/manifest.sig", &sig);
    assert!(
        fs::read(&sig)
            .unwrap()
            .starts_with(b"-----BEGIN SSH SIGNATURE-----"),
        "manifest.sig is not an armored SSH signature"
    );

    let verify = |principal: &str| {
        let mut cmd = vault.command("ssh-keygen");
        cmd.args(["-Y", "verify", "-f"])
            .arg(&signers)
            .args(["-I", principal, "-n", "mvault-manifest", "-s"])
            .arg(&sig);
        vault.run_with_input(cmd, &manifest)
    };
    verify("alice")
        .success()
        .mentions(&["good \"mvault-manifest\" signature for alice"]);
    // The principal matters: the signature is alice's, not admin's.
    verify("admin").failure();

    // And it covers the bytes as stored.
    let mut edited = manifest.clone();
    edited.extend_from_slice(b"\n");
    let mut cmd = vault.command("ssh-keygen");
    cmd.args(["-Y", "verify", "-f"])
        .arg(&signers)
        .args(["-I", "alice", "-n", "mvault-manifest", "-s"])
        .arg(&sig);
    vault.run_with_input(cmd, &edited).failure();
}

#[test]
fn stock_age_decrypts_the_key_ring_and_then_a_blob() {
    let (vault, model) = vault_with_two_versions();
    let manifest = vault.manifest(&vault.repo, "nlp/bert", "1.1.0");

    let ring_age = vault.path("ring.age");
    vault.git_show_to(&vault.repo, "main:.mvault/keys/nlp/bert.age", &ring_age);
    assert!(
        fs::read(&ring_age)
            .unwrap()
            .starts_with(b"age-encryption.org/v1\n"),
        "key ring is not in binary age format"
    );
    let ring = vault.path("ring.txt");
    let mut cmd = vault.command("age");
    cmd.arg("-d")
        .arg("-i")
        .arg(&vault.alice.private)
        .arg("-o")
        .arg(&ring)
        .arg(&ring_age);
    vault.run(cmd).success();
    let ring_text = fs::read_to_string(&ring).unwrap();
    assert!(
        ring_text.contains("# mvault key ring: nlp/bert"),
        "{ring_text}"
    );
    assert!(
        ring_text.contains("AGE-SECRET-KEY-1"),
        "no identity in ring"
    );
    let data_key = manifest.str("data_key").expect("data_key");
    assert!(data_key.starts_with("age1"), "data_key {data_key}");
    assert!(
        ring_text.contains(data_key),
        "ring does not name the manifest's data key {data_key}"
    );

    // A small file and one of several age chunks (64 KiB each): each part
    // is an age file under the version's payload ref; the file is its
    // parts' plaintexts in order.
    for path in ["config.json", "model.safetensors"] {
        let entry = manifest
            .files
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("{path} not in manifest"));
        assert!(!entry.parts.is_empty(), "{path} has no parts");
        let mut joined = Vec::new();
        for (k, part) in entry.parts.iter().enumerate() {
            let blob = vault.path(&format!("{path}.{k}.age"));
            vault.git_show_to(
                &vault.repo,
                &part_rev("nlp/bert", "1.1.0", &part.sha256),
                &blob,
            );
            let plain = vault.path(&format!("{path}.{k}.plain"));
            let mut cmd = vault.command("age");
            cmd.arg("-d")
                .arg("-i")
                .arg(&ring)
                .arg("-o")
                .arg(&plain)
                .arg(&blob);
            vault.run(cmd).success();
            let bytes = fs::read(&plain).unwrap();
            assert_eq!(sha256_hex(&bytes), part.sha256, "part {k} of {path}");
            joined.extend(bytes);
        }
        let whole = vault.path(&format!("{path}.plain"));
        fs::write(&whole, &joined).unwrap();
        assert_same_file(&model.join(path), &whole);
    }
}

#[test]
fn manifest_commit_and_tag_follow_docs_formats_md() {
    let (vault, model) = vault_with_two_versions();
    let manifest_bytes =
        vault.git_show_bytes(&vault.repo, "main:models/nlp/bert/1.1.0/manifest.toml");
    let manifest_sha = sha256_hex(&manifest_bytes);
    let text = String::from_utf8(manifest_bytes).unwrap();
    let m = Manifest::parse(&text);

    // Scalars, in the documented order.
    let order = [
        "schema",
        "model",
        "version",
        "parent",
        "author",
        "author_key",
        "created",
        "framework",
        "data_key",
        "payload",
        "part_size",
        "merkle_root",
        "file_count",
        "total_size",
    ];
    let seen: Vec<&str> = text
        .lines()
        .take_while(|l| !l.starts_with('['))
        .filter_map(|l| l.split_once(" = ").map(|(k, _)| k))
        .collect();
    assert_eq!(seen, order, "top-level keys or their order:\n{text}");
    assert_eq!(m.int("schema"), Some(2));
    assert_eq!(m.str("model"), Some("nlp/bert"));
    assert_eq!(m.str("version"), Some("1.1.0"));
    assert_eq!(m.str("parent"), Some("1.0.0"));
    assert_eq!(m.str("author"), Some("alice"));
    assert_eq!(
        m.str("author_key"),
        Some(vault.fingerprint(&vault.alice).as_str())
    );
    assert_eq!(m.str("created"), Some(NOW_RFC3339));
    assert_eq!(m.str("framework"), Some("pytorch"));
    let table = |name: &str| m.table.get(name).and_then(|t| t.as_table()).cloned();
    assert_eq!(
        table("metadata").and_then(|t| t.get("task").cloned()),
        Some(toml::Value::String("ner".into()))
    );
    assert_eq!(
        table("metrics")
            .and_then(|t| t.get("f1").cloned())
            .and_then(|v| v.as_float()),
        Some(0.93)
    );
    assert_eq!(
        table("provenance").and_then(|t| t.get("training_data").cloned()),
        Some(toml::Value::String("s3://bucket/ner-2026".into()))
    );

    // Files: sorted by path, digests and sizes of the plaintext, blobs named
    // by the plaintext digest and as large as the git blob.
    let on_disk = digests(&model);
    let paths: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    let want: Vec<&str> = on_disk.keys().map(String::as_str).collect();
    assert_eq!(paths, want, "manifest files, in byte order of path");
    assert_eq!(m.int("file_count"), Some(on_disk.len() as i64));
    let total: u64 = m.files.iter().map(|f| f.size).sum();
    assert_eq!(m.int("total_size"), Some(total as i64));
    for f in &m.files {
        assert_eq!(f.sha256, on_disk[&f.path], "sha256 of {}", f.path);
        assert_eq!(
            f.size,
            fs::metadata(model.join(&f.path)).unwrap().len(),
            "size of {}",
            f.path
        );
        // Parts: sizes add up; each is in the payload tree under its
        // digest, as large as the manifest says.
        assert_eq!(
            f.parts.iter().map(|p| p.size).sum::<u64>(),
            f.size,
            "parts of {}",
            f.path
        );
        for p in &f.parts {
            let git_size = vault.git_ok(
                &vault.repo,
                &["cat-file", "-s", &part_rev("nlp/bert", "1.1.0", &p.sha256)],
            );
            assert_eq!(p.blob_size.to_string(), git_size, "blob_size of {}", f.path);
        }
    }
    // The payload ref names the tree the manifest names.
    assert_eq!(
        vault.git_ok(
            &vault.repo,
            &["rev-parse", "refs/mvault/data/nlp/bert/1.1.0"]
        ),
        m.payload()
    );
    assert_eq!(
        m.str("merkle_root"),
        Some(merkle_root(&m.files).as_str()),
        "merkle_root per docs/formats.md"
    );

    // The version directory holds the manifest and its signature only: the
    // record. The payload lives under the version's own ref.
    let listed = vault.git_ok(
        &vault.repo,
        &[
            "ls-tree",
            "-r",
            "--name-only",
            "main",
            "models/nlp/bert/1.1.0/",
        ],
    );
    let got: Vec<&str> = listed.lines().collect();
    assert_eq!(
        got,
        [
            "models/nlp/bert/1.1.0/manifest.sig",
            "models/nlp/bert/1.1.0/manifest.toml"
        ]
    );

    // The commit: one version, trailers, author, fixed clock.
    let message = vault.git_ok(&vault.repo, &["log", "-1", "--format=%B", "main"]);
    assert!(
        message.starts_with("register nlp/bert@1.1.0\n"),
        "{message}"
    );
    for trailer in [
        "Mvault-Action: register".to_owned(),
        "Mvault-Model: nlp/bert".to_owned(),
        "Mvault-Version: 1.1.0".to_owned(),
        format!("Mvault-Manifest-Sha256: {manifest_sha}"),
        "Mvault-Parent-Version: 1.0.0".to_owned(),
    ] {
        assert!(message.contains(&trailer), "no `{trailer}` in:\n{message}");
    }
    assert!(message.contains("longer training"), "{message}");
    assert_eq!(
        vault.git_ok(
            &vault.repo,
            &["log", "-1", "--format=%an <%ae>|%cn <%ce>|%ct", "main"]
        ),
        format!("alice <alice@mvault>|alice <alice@mvault>|{NOW}")
    );
    let diff = vault.git_ok(
        &vault.repo,
        &[
            "diff-tree",
            "--no-commit-id",
            "--name-only",
            "-r",
            "main~1",
            "main",
        ],
    );
    assert!(
        diff.lines()
            .all(|p| p.starts_with("models/nlp/bert/1.1.0/")),
        "the register commit touches more than its version:\n{diff}"
    );

    // The tag message.
    let tag = vault.git_ok(&vault.repo, &["cat-file", "tag", "nlp/bert@v1.1.0"]);
    assert!(tag.contains("\nregister nlp/bert@1.1.0\n"), "{tag}");
    assert!(
        tag.contains(&format!("Mvault-Manifest-Sha256: {manifest_sha}")),
        "{tag}"
    );
}

#[test]
fn manifest_is_canonical_same_inputs_give_the_same_bytes() {
    let vault = Vault::with_remote();
    let first = vault.path("model-0.1.0");
    sample_model(&first, 1000, 1);
    vault.add(&first, "nlp/bert", "0.1.0", &[]).success();

    // Two clones, same key ring, same signer, same clock, same input.
    let model = vault.path("model");
    sample_model(&model, 200_000, 2);
    write_file(&model.join("z/last.txt"), b"last\n");
    let mut manifests = Vec::new();
    for name in ["clone-a", "clone-b"] {
        let clone = vault.git_clone(vault.remote(), name);
        vault
            .add_in(
                &clone,
                &vault.alice,
                &model,
                "nlp/bert",
                "1.0.0",
                &[
                    "--framework",
                    "onnx",
                    "--meta",
                    "b=2",
                    "--meta",
                    "a=1",
                    "--no-push",
                ],
            )
            .success();
        manifests.push(vault.git_show_bytes(&clone, "main:models/nlp/bert/1.0.0/manifest.toml"));
    }
    // blob_size and payload are the fields that depend on the ciphertext
    // rather than on the inputs: the age crate adds a random-length "grease" stanza to
    // every header, so two encryptions of one file differ in size.
    let mask = |bytes: &[u8]| -> String {
        String::from_utf8_lossy(bytes)
            .lines()
            .map(|l| {
                if l.starts_with("blob_size = ") {
                    "blob_size = <ciphertext size>"
                } else if l.starts_with("payload = ") {
                    // The payload tree's id follows from the ciphertexts.
                    "payload = <tree of the ciphertexts>"
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(mask(&manifests[0]), mask(&manifests[1]));
    // --no-push kept it local.
    vault
        .git(
            vault.remote(),
            &["rev-parse", "--verify", "-q", "refs/tags/nlp/bert@v1.0.0"],
        )
        .failure();
}

#[test]
fn gitattributes_and_repository_settings_keep_git_fast_on_ciphertext() {
    let vault = Vault::with_remote();
    // In a stock clone once mvault wrote to it, and in the repository init made.
    let clone = vault.git_clone(vault.remote(), "clone");
    let model = vault.path("model");
    sample_model(&model, 2 * MIB, 1);
    vault
        .add_in(
            &clone,
            &vault.alice,
            &model,
            "nlp/bert",
            "1.0.0",
            &["--no-push"],
        )
        .success();

    // What formats.md asks of the key rings (`-delta -diff -merge -text`),
    // as git itself resolves the committed .gitattributes (`binary` is the
    // same). Parts live outside main's tree, under payload refs.
    let attrs = vault.git_ok(
        &clone,
        &[
            "check-attr",
            "delta",
            "diff",
            "merge",
            "text",
            "--",
            ".mvault/keys/nlp/bert.age",
        ],
    );
    insta::assert_snapshot!(attrs, @r"
    .mvault/keys/nlp/bert.age: delta: unset
    .mvault/keys/nlp/bert.age: diff: unset
    .mvault/keys/nlp/bert.age: merge: unset
    .mvault/keys/nlp/bert.age: text: unset
    ");

    for repo in [&vault.repo, &clone] {
        for (key, value) in [
            ("core.looseCompression", "0"),
            ("pack.compression", "0"),
            ("core.bigFileThreshold", "1048576"), // 1m
        ] {
            assert_eq!(
                vault.git_ok(repo, &["config", "--local", "--int", key]),
                value,
                "{key} in {}",
                repo.display()
            );
        }
    }
}

/// The Merkle root of docs/formats.md, computed independently.
fn merkle_root(files: &[ManifestFile]) -> String {
    let mut level: Vec<[u8; 32]> = files
        .iter()
        .map(|f| {
            let mut h = Sha256::new();
            h.update([0u8]);
            h.update(f.path.as_bytes());
            h.update([0u8]);
            h.update(hex::decode(&f.sha256).expect("hex digest"));
            h.finalize().into()
        })
        .collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => {
                    let mut h = Sha256::new();
                    h.update([1u8]);
                    h.update(l);
                    h.update(r);
                    h.finalize().into()
                }
                [last] => *last,
                _ => unreachable!(),
            })
            .collect();
    }
    hex::encode(level.first().expect("at least one file"))
}
