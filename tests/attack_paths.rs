//! Attack: a version writes into the reader's `.git`.
//!
//! A file path that git or a file system reads as `.git` (any letter case,
//! the 8.3 short name `GIT~1`, NTFS trailing dots and spaces and `:`
//! streams, HFS+ ignorable code points), or two paths that are one file
//! under case folding or Unicode normalisation, would let a version plant
//! hooks or config in a repository the reader later runs git in. `add`
//! refuses them; a manifest forged by hand with one (canonical, its Merkle
//! root right, signed by a registered author) is refused by `pull` before
//! anything is written; and `pull` never writes into git metadata or
//! through a symlink in its output directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

const VERSION_DIR: &str = "models/nlp/bert/1.0.0";

/// Names each of which some git or file system reads as `.git`.
const DOTGIT_NAMES: &[&str] = &[
    ".git/config",
    ".GIT/hooks/post-checkout",
    "sub/.Git/config",
    "git~1/config",
    "GIT~2/HEAD",
    ".git./config",
    ".git /config",
    ".git::$INDEX_ALLOCATION/config",
    ".gi\u{200c}t/config",
    "\u{feff}.git/config",
    ".g\u{200e}it/config",
    ".git\u{202e}/config",
    ".\u{206f}GIT/config",
];

/// `name` as mvault prints it: invisible code points escaped.
fn shown(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii() {
                c.to_string()
            } else {
                c.escape_default().to_string()
            }
        })
        .collect()
}

#[test]
fn attack_paths_add_refuses_every_name_that_is_dot_git_somewhere() {
    let vault = Vault::new();
    for (i, name) in DOTGIT_NAMES.iter().enumerate() {
        let model = vault.path(&format!("hostile-{i}"));
        sample_model(&model, 1000, i as u64);
        write_file(&model.join(name), b"#!/bin/sh\necho owned\n");
        vault
            .add(&model, "nlp/bert", &format!("1.0.{i}"), &[])
            .mvault_error()
            .mentions(&[&shown(name), ".git"]);
    }
    let alternate_stream = vault.path("hostile-stream");
    sample_model(&alternate_stream, 1000, 99);
    write_file(&alternate_stream.join("model.safetensors:evil"), b"x");
    vault
        .add(&alternate_stream, "nlp/bert", "1.1.0", &[])
        .mvault_error()
        .mentions(&["model.safetensors:evil", "':'"]);
    assert_eq!(
        vault.git_ok(&vault.repo, &["tag", "-l", "nlp/bert@*"]),
        "",
        "a hostile version was registered"
    );
}

#[test]
fn attack_paths_add_refuses_names_equal_under_normalisation_or_case() {
    let vault = Vault::new();
    let nfc = vault.path("nfc");
    sample_model(&nfc, 1000, 1);
    write_file(&nfc.join("caf\u{e9}.json"), b"{}");
    write_file(&nfc.join("cafe\u{301}.json"), b"[]");
    vault
        .add(&nfc, "nlp/bert", "1.0.0", &[])
        .mvault_error()
        .mentions(&["normalisation"]);
    let case = vault.path("case");
    sample_model(&case, 1000, 2);
    write_file(&case.join("Config.json"), b"{}");
    vault
        .add(&case, "nlp/bert", "1.0.0", &[])
        .mvault_error()
        .mentions(&["config.json", "case"]);
    let nested = vault.path("nested");
    sample_model(&nested, 1000, 3);
    write_file(&nested.join("Tokenizer"), b"a file where a directory is");
    vault
        .add(&nested, "nlp/bert", "1.0.0", &[])
        .mvault_error()
        .mentions(&["tokenizer"]);
}

/// A stock clone of `vault` in which nlp/bert@1.0.0's manifest is `edit`ed,
/// re-serialised canonically (so its Merkle root is right) and re-signed by
/// alice; the registration commit and tag are rebuilt and signed by alice
/// with stock git: everything verifies except the path rule under test.
fn forged_clone(
    vault: &Vault,
    name: &str,
    edit: impl Fn(&mut mvault::model::manifest::Manifest),
) -> PathBuf {
    let clone = vault.git_clone(&vault.repo, name);
    let index = vault.path(&format!("{name}.index"));
    let run = |mut cmd: Command| -> String {
        cmd.env("GIT_INDEX_FILE", &index);
        as_key_owner(&mut cmd, &vault.alice);
        vault.run(cmd).success().stdout().trim().to_owned()
    };
    let git = |args: &[&str]| run(vault.git_command(&clone, args));
    let text = String::from_utf8(
        vault.git_show_bytes(&clone, &format!("main:{VERSION_DIR}/manifest.toml")),
    )
    .unwrap();
    let mut manifest = mvault::model::manifest::Manifest::parse(&text).expect("the real manifest parses");
    edit(&mut manifest);
    manifest.sort_files();
    let forged = manifest.to_canonical();
    let sig = vault.ssh_sign(
        &vault.alice,
        "mvault-manifest",
        &vault.path(&format!("{name}.manifest")),
        forged.as_bytes(),
    );
    git(&["read-tree", "main"]);
    for (file, bytes) in [
        ("manifest.toml", forged.as_bytes()),
        ("manifest.sig", &sig[..]),
    ] {
        let mut cmd = vault.git_command(&clone, &["hash-object", "-w", "--stdin"]);
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
            &format!("100644,{oid},{VERSION_DIR}/{file}"),
        ]);
    }
    let tree = git(&["write-tree"]);
    let message = git(&["log", "-1", "--format=%B", "main"]);
    let msg_file = vault.path(&format!("{name}.msg"));
    write_file(&msg_file, message.as_bytes());
    let signed = |args: &[&str]| run(vault.git_signing_command(&clone, &vault.alice, args));
    let commit = signed(&[
        "commit-tree",
        "-S",
        "-p",
        "main~1",
        "-F",
        path_str(&msg_file),
        &tree,
    ]);
    git(&["update-ref", "refs/heads/main", &commit]);
    signed(&[
        "tag",
        "-s",
        "-f",
        "-m",
        "register nlp/bert@1.0.0",
        "nlp/bert@v1.0.0",
        &commit,
    ]);
    git(&["reset", "-q", "--hard", "main"]);
    clone
}

fn registered() -> Vault {
    let vault = Vault::new();
    let model = vault.path("model");
    sample_model(&model, 50_000, 7);
    vault.add(&model, "nlp/bert", "1.0.0", &[]).success();
    vault
}

/// `pull` in `clone` refuses, naming `fragments`, and writes nothing:
/// not in the output directory, not in a `.git` anywhere under it.
#[track_caller]
fn pull_refuses(vault: &Vault, clone: &Path, out: &Path, fragments: &[&str]) {
    vault
        .pull_in(clone, &vault.alice, "nlp/bert@1.0.0", out)
        .mvault_error()
        .mentions(fragments);
    assert!(
        list_files(out).is_empty(),
        "a refused pull wrote into {}",
        out.display()
    );
}

#[test]
fn attack_paths_pull_refuses_a_signed_manifest_with_a_dot_git_path() {
    let vault = registered();
    for (i, hostile) in [
        ".git/hooks/post-checkout",
        "GIT~1/config",
        ".gi\u{200c}t/config",
        "a/.git./x",
    ]
    .into_iter()
    .enumerate()
    {
        let clone = forged_clone(&vault, &format!("forged-{i}"), |m| {
            m.files[0].path = hostile.to_owned();
        });
        let out = vault.path(&format!("out-{i}"));
        pull_refuses(&vault, &clone, &out, &["files", &shown(hostile), ".git"]);
        vault
            .mvault(&clone, &vault.alice, &["verify", "nlp/bert@1.0.0"])
            .mvault_error()
            .mentions(&[&shown(hostile)]);
    }
}

#[test]
fn attack_paths_pull_refuses_a_signed_manifest_with_names_equal_under_normalisation() {
    let vault = registered();
    let clone = forged_clone(&vault, "forged-nfd", |m| {
        m.files[0].path = "caf\u{e9}.json".into();
        m.files[1].path = "cafe\u{301}.json".into();
    });
    pull_refuses(&vault, &clone, &vault.path("out"), &["normalisation"]);
}

#[test]
fn attack_paths_pull_never_writes_into_git_metadata() {
    let vault = registered();
    let run = |out: &Path| vault.pull_in(&vault.repo, &vault.alice, "nlp/bert@1.0.0", out);
    // Into the repository's own .git, or a subdirectory of it.
    for out in [
        vault.repo.join(".git"),
        vault.repo.join(".git/hooks"),
        vault.repo.join(".GIT/x"),
    ] {
        run(&out).mvault_error().mentions(&["git metadata", "rule"]);
    }
    assert!(!vault.repo.join(".git/hooks/config.json").exists());
    // Into a bare repository (a git directory by another name).
    let bare = vault.bare_remote("other.git");
    run(&bare).mvault_error().mentions(&["git metadata"]);
    run(&bare.join("hooks"))
        .mvault_error()
        .mentions(&["git metadata"]);
    assert!(!bare.join("config.json").exists());
    assert!(!bare.join("hooks/config.json").exists());
    // A plain directory inside a work tree is fine.
    run(&vault.repo.join("deploy")).success();
}

#[test]
fn attack_paths_pull_never_writes_through_a_symlink_in_the_output_directory() {
    let vault = registered();
    let out = vault.path("out");
    let elsewhere = vault.path("elsewhere");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out.join("tokenizer")).unwrap();
    vault
        .pull_in(&vault.repo, &vault.alice, "nlp/bert@1.0.0", &out)
        .mvault_error()
        .mentions(&["tokenizer", "symlink"]);
    assert!(
        list_files(&elsewhere).is_empty(),
        "pull wrote through the symlink"
    );
    assert!(
        !out.join("config.json").exists(),
        "pull wrote part of the version"
    );
}
