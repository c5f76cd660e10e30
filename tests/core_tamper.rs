//! A repository altered behind mvault's back is caught, and nothing is
//! written where the consumer would pick it up.
//!
//! Each tampered repository is built with stock git plumbing (cat-file,
//! hash-object, read-tree/update-index/write-tree on a scratch index,
//! commit-tree, update-ref, tag): the registration commit of nlp/bert@1.0.0 is
//! replaced by one whose tree differs in one file, and commit and tag are
//! re-signed with alice's key by stock git (an insider, or a stolen key). So
//! the git-level signatures are good and the only thing wrong is the one
//! under test; pull and verify must find it and name the file and the check.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

const VERSION_DIR: &str = "models/nlp/bert/1.0.0";

fn vault_with_version() -> (Vault, PathBuf) {
    let vault = Vault::new();
    let model = vault.path("model");
    // config.json sorts before model.safetensors: an implementation that
    // writes files as it verifies them would leave config.json behind.
    sample_model(&model, MIB + 333, 5);
    vault
        .add(&model, "nlp/bert", "1.0.0", &["--metric", "f1=0.91"])
        .success();
    (vault, model)
}

/// A stock clone of the vault whose main and tag show nlp/bert@1.0.0 with
/// `edits` (path in the tree → new bytes), signed by alice with stock git.
fn tampered_clone(vault: &Vault, name: &str, edits: &[(String, Vec<u8>)]) -> PathBuf {
    let clone = vault.git_clone(&vault.repo, name);
    let index = vault.path(&format!("{name}.index"));
    // Every object claims alice, as she (or her stolen key) would write it.
    let run = |mut cmd: Command| -> String {
        cmd.env("GIT_INDEX_FILE", &index);
        as_key_owner(&mut cmd, &vault.alice);
        vault.run(cmd).success().stdout().trim().to_owned()
    };
    let git = |args: &[&str]| run(vault.git_command(&clone, args));
    let git_signed = |args: &[&str]| run(vault.git_signing_command(&clone, &vault.alice, args));
    let original = git(&["rev-parse", "main"]);

    git(&["read-tree", "main"]);
    for (path, bytes) in edits {
        let mut cmd = vault.git_command(&clone, &["hash-object", "-w", "--no-filters", "--stdin"]);
        cmd.env("GIT_INDEX_FILE", &index);
        let oid = vault
            .run_with_input(cmd, bytes)
            .success()
            .stdout()
            .trim()
            .to_owned();
        git(&[
            "update-index",
            "--cacheinfo",
            &format!("100644,{oid},{path}"),
        ]);
    }
    let tree = git(&["write-tree"]);

    // Same message, with the trailer updated to the manifest now in the tree,
    // as an attacker would.
    let manifest = vault.git_show_bytes(&clone, &format!("{tree}:{VERSION_DIR}/manifest.toml"));
    let trailer = format!("Mvault-Manifest-Sha256: {}", sha256_hex(&manifest));
    let fix_trailer = |message: &str| -> String {
        message
            .lines()
            .map(|l| {
                if l.starts_with("Mvault-Manifest-Sha256:") {
                    trailer.clone()
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    };
    let message = fix_trailer(&git(&["log", "-1", "--format=%B", "main"]));
    let message_file = vault.path(&format!("{name}.msg"));
    write_file(&message_file, message.as_bytes());
    let commit = git_signed(&[
        "commit-tree",
        "-S",
        "-p",
        "main~1",
        "-F",
        message_file.to_str().unwrap(),
        &tree,
    ]);
    git(&["update-ref", "refs/heads/main", &commit, &original]);

    // The tag object's message: after the header, up to the signature.
    let tag_object = git(&["cat-file", "tag", "nlp/bert@v1.0.0"]);
    let (_, tag_message) = tag_object.split_once("\n\n").expect("tag header");
    let tag_message = tag_message
        .split("-----BEGIN SSH SIGNATURE-----")
        .next()
        .unwrap_or_default();
    let tag_message = fix_trailer(tag_message.trim_end());
    let tag_file = vault.path(&format!("{name}.tagmsg"));
    write_file(&tag_file, tag_message.as_bytes());
    git_signed(&[
        "tag",
        "-s",
        "-f",
        "-F",
        tag_file.to_str().unwrap(),
        "nlp/bert@v1.0.0",
        &commit,
    ]);
    git(&["reset", "-q", "--hard", "main"]);

    // The forgery is good as far as git is concerned.
    let signers = vault.signers_file(&vault.repo, &vault.alice);
    let flag = format!("gpg.ssh.allowedSignersFile={}", signers.display());
    git(&["-c", &flag, "verify-commit", "main"]);
    git(&["-c", &flag, "verify-tag", "nlp/bert@v1.0.0"]);
    clone
}

fn manifest_bytes(vault: &Vault) -> Vec<u8> {
    vault.git_show_bytes(&vault.repo, &format!("main:{VERSION_DIR}/manifest.toml"))
}

/// `manifest.toml` signed with `key` in `namespace`, with stock ssh-keygen.
fn sign(vault: &Vault, key: &Key, namespace: &str, bytes: &[u8]) -> Vec<u8> {
    let file = vault.path(&format!("to-sign-{}-{namespace}", key.name));
    vault.ssh_sign(key, namespace, &file, bytes)
}

/// Pull and verify in `clone` both fail, naming `what` (any of) and the
/// `check` (any of); pull leaves no file in its output directory.
#[track_caller]
fn assert_caught(vault: &Vault, clone: &Path, what: &[&str], check: &[&str]) {
    let out = vault.path(&format!(
        "out-{}",
        clone.file_name().unwrap().to_str().unwrap()
    ));
    vault
        .pull_in(clone, &vault.alice, "nlp/bert@1.0.0", &out)
        .mvault_error()
        .mentions_any(what)
        .mentions_any(check);
    assert_eq!(
        list_files(&out),
        Vec::<String>::new(),
        "a refused pull left files in {}",
        out.display()
    );
    vault
        .mvault(clone, &vault.alice, &["verify", "nlp/bert@1.0.0"])
        .mvault_error()
        .mentions_any(what)
        .mentions_any(check);
}

const SIGNATURE_WORDS: &[&str] = &["signature", "signed", "signer"];

/// A server that serves, under the version's payload ref, a payload tree
/// whose part for `model.safetensors` is `forge(parts)`: a record-only
/// clone of it fetches that payload when it pulls.
fn clone_of_server_serving(
    vault: &Vault,
    name: &str,
    forge: impl FnOnce(&Vault, &Path, &str) -> Vec<u8>,
) -> (PathBuf, String) {
    let evil = vault.path(&format!("{name}.git"));
    vault.git_ok(
        vault.root(),
        &[
            "clone",
            "-q",
            "--mirror",
            path_str(&vault.repo),
            path_str(&evil),
        ],
    );
    let m = vault.manifest(&vault.repo, "nlp/bert", "1.0.0");
    let weights = m
        .files
        .iter()
        .find(|f| f.path == "model.safetensors")
        .expect("weights");
    let sha = weights.parts[0].sha256.clone();
    let bytes = forge(vault, &evil, &sha);
    let cmd = vault.git_command(&evil, &["hash-object", "-w", "--stdin"]);
    let oid = vault
        .run_with_input(cmd, &bytes)
        .success()
        .stdout()
        .trim()
        .to_owned();
    let listing = vault.git_ok(&evil, &["ls-tree", PAYLOAD_REF]);
    let forged: String = listing
        .lines()
        .map(|l| {
            let (meta, n) = l.split_once('\t').expect("ls-tree line");
            if n == sha {
                format!("100644 blob {oid}\t{n}\n")
            } else {
                format!("{meta}\t{n}\n")
            }
        })
        .collect();
    let cmd = vault.git_command(&evil, &["mktree"]);
    let tree = vault
        .run_with_input(cmd, forged.as_bytes())
        .success()
        .stdout()
        .trim()
        .to_owned();
    vault.git_ok(&evil, &["update-ref", PAYLOAD_REF, &tree]);
    // Over the transport, not a local copy of the object directory: the
    // clone gets the record only, as from any server.
    let clone = vault.path(name);
    vault.git_ok(
        vault.root(),
        &[
            "clone",
            "-q",
            "--no-local",
            path_str(&evil),
            path_str(&clone),
        ],
    );
    (clone, sha)
}

const PAYLOAD_REF: &str = "refs/mvault/data/nlp/bert/1.0.0";

/// What catches a forged payload: the tree the server gives is not the
/// tree the signed manifest names.
const PAYLOAD_WORDS: &[&str] = &["payload tree check failed"];

#[test]
fn pull_refuses_a_blob_with_a_flipped_byte() {
    let (vault, _model) = vault_with_version();
    let (clone, _sha) = clone_of_server_serving(&vault, "flipped", |v, evil, sha| {
        let mut blob = v.git_show_bytes(evil, &format!("{PAYLOAD_REF}:{sha}"));
        let middle = blob.len() / 2;
        blob[middle] ^= 0x01;
        blob
    });
    assert_caught(&vault, &clone, &[PAYLOAD_REF], PAYLOAD_WORDS);
}

#[test]
fn pull_refuses_a_blob_swapped_for_another_file_of_the_version() {
    // A well-formed part under the data key, but of another file.
    let (vault, _model) = vault_with_version();
    let m = vault.manifest(&vault.repo, "nlp/bert", "1.0.0");
    let config = m
        .files
        .iter()
        .find(|f| f.path == "config.json")
        .expect("config");
    let other = config.parts[0].sha256.clone();
    let (clone, _sha) = clone_of_server_serving(&vault, "swapped", |v, evil, _| {
        v.git_show_bytes(evil, &format!("{PAYLOAD_REF}:{other}"))
    });
    assert_caught(&vault, &clone, &[PAYLOAD_REF], PAYLOAD_WORDS);
}

#[test]
fn pull_refuses_an_edited_manifest() {
    let (vault, _) = vault_with_version();
    let manifest = String::from_utf8(manifest_bytes(&vault)).unwrap();
    assert!(
        manifest.contains("0.91"),
        "metric not in manifest:\n{manifest}"
    );
    // Inflating a metric after the fact.
    let edited = manifest.replace("0.91", "0.99");
    let clone = tampered_clone(
        &vault,
        "edited",
        &[(format!("{VERSION_DIR}/manifest.toml"), edited.into_bytes())],
    );
    assert_caught(&vault, &clone, &["manifest"], SIGNATURE_WORDS);
}

#[test]
fn pull_refuses_a_manifest_signature_by_a_key_outside_the_policy() {
    let (vault, _) = vault_with_version();
    let mallory = vault.keygen("mallory");
    let sig = sign(&vault, &mallory, "mvault-manifest", &manifest_bytes(&vault));
    let clone = tampered_clone(
        &vault,
        "mallory",
        &[(format!("{VERSION_DIR}/manifest.sig"), sig)],
    );
    assert_caught(&vault, &clone, &["manifest"], SIGNATURE_WORDS);
}

#[test]
fn pull_refuses_a_manifest_signature_over_other_bytes() {
    let (vault, _) = vault_with_version();
    let other = String::from_utf8(manifest_bytes(&vault))
        .unwrap()
        .replace("0.91", "0.99");
    let sig = sign(&vault, &vault.alice, "mvault-manifest", other.as_bytes());
    let clone = tampered_clone(
        &vault,
        "otherbytes",
        &[(format!("{VERSION_DIR}/manifest.sig"), sig)],
    );
    assert_caught(&vault, &clone, &["manifest"], SIGNATURE_WORDS);
}

#[test]
fn pull_refuses_a_manifest_signature_in_the_git_namespace() {
    // A commit signature replayed as a manifest signature.
    let (vault, _) = vault_with_version();
    let sig = sign(&vault, &vault.alice, "git", &manifest_bytes(&vault));
    let clone = tampered_clone(
        &vault,
        "namespace",
        &[(format!("{VERSION_DIR}/manifest.sig"), sig)],
    );
    assert_caught(&vault, &clone, &["manifest"], SIGNATURE_WORDS);
}

#[test]
fn verify_dir_reports_missing_changed_and_unexpected_files_by_name() {
    let (vault, _) = vault_with_version();
    let out = vault.path("out");
    vault
        .pull_in(&vault.repo, &vault.alice, "nlp/bert@1.0.0", &out)
        .success();
    let out_str = out.to_str().unwrap().to_owned();
    let verify = || {
        vault.mvault(
            &vault.repo,
            &vault.alice,
            &["verify", "nlp/bert@1.0.0", "--dir", &out_str],
        )
    };
    verify().success();

    std::fs::remove_file(out.join("tokenizer/vocab.txt")).unwrap();
    // Same size, one bit: only a digest finds it.
    let config = out.join("config.json");
    let mut bytes = std::fs::read(&config).unwrap();
    bytes[3] ^= 0x20;
    write_file(&config, &bytes);
    write_file(&out.join("extra/notes.txt"), b"not part of the version\n");

    let report = verify().failure().output();
    // Each file is named on a line that says what is wrong with it.
    for (name, words) in [
        ("tokenizer/vocab.txt", &["missing"][..]),
        (
            "config.json",
            &["changed", "modified", "mismatch", "differs"][..],
        ),
        (
            "extra/notes.txt",
            &["unexpected", "untracked", "not in the manifest"][..],
        ),
    ] {
        let line = report
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} is not named in:\n{report}"));
        let lower = line.to_lowercase();
        assert!(
            words.iter().any(|w| lower.contains(w)),
            "the line naming {name} does not say one of {words:?}: {line}"
        );
    }
}
