//! Paths that some git or file system reads as another path: a version
//! directory with an entry that is `.git` in another letter case (`.GIT`)
//! or with an HFS+ ignorable code point (`.g\u{200c}it`), which a checkout
//! on Windows or macOS would write into the repository's metadata, and
//! names equal under Unicode normalisation (NFC/NFD), which would be one
//! file on macOS. The trees are built with stock git plumbing (`git
//! mktree`), the commit re-signed by alice with `git commit-tree -S`; the
//! hook refuses the push and `audit verify` of the same objects forced into
//! a copy without the hook names the same rule.
//!
//! `hook install` turns on `receive.fsckObjects`, and git's own fsck
//! refuses `.git` disguises before the hook runs (the first test); the
//! others turn it off to show the hook's own check holds without it.

use std::path::Path;

use crate::common::*;
use crate::forged::*;
use crate::hook_server::*;
use crate::unhooked::*;

/// The entries of tree `tree` in `dir`, as `git ls-tree -z` lines
/// (`MODE TYPE ID\tNAME`).
fn tree_lines(s: &Server, dir: &Path, tree: &str) -> Vec<String> {
    let out = s.git(dir, &["ls-tree", "-z", tree]).success().stdout;
    out.split(|b| *b == 0)
        .filter(|l| !l.is_empty())
        .map(|l| String::from_utf8(l.to_vec()).expect("UTF-8 tree entry"))
        .collect()
}

/// `git mktree -z` of `lines`; returns the tree's id.
fn mktree(s: &Server, dir: &Path, lines: &[String]) -> String {
    let mut input = Vec::new();
    for l in lines {
        input.extend_from_slice(l.as_bytes());
        input.push(0);
    }
    let cmd = s.git_command(dir, &["mktree", "-z"]);
    s.run_with_input(cmd, &input)
        .success()
        .stdout()
        .trim()
        .to_owned()
}

/// Tree `tree` with `entries` added to its subtree at `path`, every tree
/// on the way rebuilt with `git mktree`; returns the new root.
fn with_entries(s: &Server, dir: &Path, tree: &str, path: &[&str], entries: &[String]) -> String {
    let mut lines = tree_lines(s, dir, tree);
    match path.split_first() {
        None => lines.extend_from_slice(entries),
        Some((first, rest)) => {
            let line = lines
                .iter_mut()
                .find(|l| l.ends_with(&format!("\t{first}")))
                .unwrap_or_else(|| panic!("no entry {first} in {tree}"));
            let id = line
                .split(['\t', ' '])
                .nth(2)
                .expect("an object id")
                .to_owned();
            let sub = with_entries(s, dir, &id, rest, entries);
            *line = format!("040000 tree {sub}\t{first}");
        }
    }
    mktree(s, dir, &lines)
}

/// A blob with `bytes` in `dir`; returns its id.
fn blob(s: &Server, dir: &Path, bytes: &[u8]) -> String {
    let cmd = s.git_command(dir, &["hash-object", "-w", "--stdin"]);
    s.run_with_input(cmd, bytes)
        .success()
        .stdout()
        .trim()
        .to_owned()
}

/// The prepared version in `clone` re-committed by alice (`commit-tree
/// -S`, HEAD's parent and message) with `entries` added to its version
/// directory; main points at it. Returns the commit.
fn with_version_entries(s: &Server, clone: &Path, entries: &[String]) -> String {
    let root = s.git_ok(clone, &["rev-parse", "HEAD^{tree}"]);
    let path: Vec<&str> = V2.split('/').collect();
    let tree = with_entries(s, clone, &root, &path, entries);
    let message = s.git_ok(clone, &["log", "-1", "--format=%B", "HEAD"]);
    let msg_file = s.path("paths-msg.txt");
    write_file(&msg_file, format!("{message}\n").as_bytes());
    let cmd = s.git_signing_command(
        clone,
        &s.alice,
        &[
            "commit-tree",
            "-S",
            "-p",
            "HEAD~1",
            "-F",
            path_str(&msg_file),
            &tree,
        ],
    );
    let commit = s.run(cmd).success().stdout().trim().to_owned();
    s.git_ok(clone, &["update-ref", "refs/heads/main", &commit]);
    commit
}

/// A `.git` disguise `name` in the version directory: a subtree holding a
/// `config` that would set `core.fsmonitor` to a command.
fn dotgit_entry(s: &Server, clone: &Path, name: &str) -> String {
    let config = blob(s, clone, b"[core]\n\tfsmonitor = \"touch /tmp/owned\"\n");
    let sub = mktree(s, clone, &[format!("100644 blob {config}\tconfig")]);
    format!("040000 tree {sub}\t{name}")
}

/// `hook install` turns on `receive.fsckObjects`, which refuses malformed
/// trees before the hook runs; the hook's own check is shown without it.
fn hook_only(s: &Server) {
    s.git_ok(&s.bare, &["config", "receive.fsckObjects", "false"]);
}

/// As installed, git's own fsck refuses a `.GIT` tree before the hook is
/// asked; no ref moves.
#[test]
fn installed_server_refuses_a_dotgit_tree_in_git_fsck_first() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    let entry = dotgit_entry(&s, &clone, ".GIT");
    with_version_entries(&s, &clone, &[entry]);
    let before = s.server_refs();
    let run = s
        .push(&clone, Some("alice"), &["origin", "main"])
        .failure()
        .mentions(&["hasDotgit"]);
    assert_eq!(s.server_refs(), before, "a ref moved: {}", run.stderr());
}

/// `.GIT`: `.git` on every case-insensitive file system (Windows, macOS).
#[test]
fn dotgit_in_another_letter_case_in_a_version_is_refused_as_a_malformed_tree() {
    let s = Server::with_version();
    hook_only(&s);
    let clone = s.prepared("c", &s.alice, "2.0.0");
    let entry = dotgit_entry(&s, &clone, ".GIT");
    with_version_entries(&s, &clone, &[entry]);
    let run = refused_main_everywhere(&s, &clone, "alice", "malformed tree");
    run.mentions(&[&format!("{V2}/.GIT"), "'.git' component"]);
}

/// `.g\u{200c}it`: HFS+ drops the zero-width non-joiner, so a Mac reads
/// `.git`.
#[test]
fn dotgit_with_an_hfs_ignorable_code_point_in_a_version_is_refused_as_a_malformed_tree() {
    let s = Server::with_version();
    hook_only(&s);
    let clone = s.prepared("c", &s.alice, "2.0.0");
    let entry = dotgit_entry(&s, &clone, ".g\u{200c}it");
    with_version_entries(&s, &clone, &[entry]);
    let run = refused_main_everywhere(&s, &clone, "alice", "malformed tree");
    run.mentions(&[&format!("{V2}/.g\\u{{200c}}it"), "'.git' component"]);
}

/// Two entries of the version directory named `café.json`, one NFC and
/// one NFD: distinct to git, one file on macOS. Each name is well-formed
/// on its own, and neither is a file the manifest names (a version's
/// files are stored as `blobs/<sha256>`), so the hook refuses them as
/// files the manifest does not name.
#[test]
fn names_equal_under_normalisation_in_a_version_tree_are_refused_as_unexpected_files() {
    let s = Server::with_version();
    hook_only(&s);
    let clone = s.prepared("c", &s.alice, "2.0.0");
    let (a, b) = (blob(&s, &clone, b"{}\n"), blob(&s, &clone, b"[]\n"));
    with_version_entries(
        &s,
        &clone,
        &[
            format!("100644 blob {a}\tcaf\u{e9}.json"),
            format!("100644 blob {b}\tcafe\u{301}.json"),
        ],
    );
    refused_main_everywhere(&s, &clone, "alice", "unexpected file");
}

/// The names that a version's files are written under come from its
/// manifest: two of them equal under NFC/NFD (the manifest re-serialised
/// canonically, so its Merkle root is right, re-signed by alice, the
/// digest trailer recomputed) are refused as a bad manifest, before a
/// reader's pull could write one over the other.
#[test]
fn manifest_paths_equal_under_normalisation_are_refused_as_a_bad_manifest() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    reregister(
        &s,
        &clone,
        &s.alice,
        |text| {
            let mut m =
                mvault::model::manifest::Manifest::parse(&text).expect("the real manifest parses");
            m.files[0].path = "caf\u{e9}.json".into();
            m.files[1].path = "cafe\u{301}.json".into();
            m.sort_files();
            m.to_canonical()
        },
        |_| {},
    );
    let run = refused_main_everywhere(&s, &clone, "alice", "bad manifest");
    run.mentions(&["normalisation"]);
}
