//! Consistent forgeries of a prepared version (`Server::prepared`,
//! `nlp/bert@2.0.0` built by `mvault add --no-push`): the one thing under
//! test is changed and everything that binds it is re-made with stock
//! tools, so that only the rule under test can fire. The manifest is
//! re-signed with `ssh-keygen -Y sign -n mvault-manifest`, the commit's
//! `Mvault-Manifest-Sha256` trailer is recomputed, and the commit is made
//! again with `git commit -S`.

use std::path::Path;
use std::process::Command;

use crate::common::*;
use crate::hook_server::*;

/// The prepared version's directory.
pub const V2: &str = "models/nlp/bert/2.0.0";

/// The weights' entry in the prepared version's manifest at HEAD.
pub fn weights(s: &Server, clone: &Path) -> ManifestFile {
    s.manifest_at(clone, "HEAD", "2.0.0")
        .files
        .into_iter()
        .find(|f| f.path == "model.safetensors")
        .expect("weights in the manifest")
}

/// The manifest text with the `blob_size` of the file at `path` set to
/// `blob_size` (the first `blob_size` line after that file's `path` line).
pub fn with_blob_size(text: &str, path: &str, blob_size: u64) -> String {
    let at = text
        .find(&format!("path = \"{path}\"\n"))
        .unwrap_or_else(|| panic!("no file {path} in the manifest:\n{text}"));
    let (head, tail) = text.split_at(at);
    let line = tail
        .find("blob_size = ")
        .expect("a blob_size after the path");
    let end = line + tail[line..].find('\n').expect("line end");
    format!(
        "{head}{}blob_size = {blob_size}{}",
        &tail[..line],
        &tail[end..]
    )
}

/// Replaces the HEAD commit of `clone` (the prepared registration) by one
/// whose manifest is `edit`ed, re-signed by `signer`, with `stage` run on
/// the index before committing (to replace blobs), and whose message has
/// the new manifest's digest; signed by `signer`. Returns the new HEAD.
#[track_caller]
pub fn reregister(
    s: &Server,
    clone: &Path,
    signer: &Key,
    edit: impl FnOnce(String) -> String,
    stage: impl FnOnce(&Path),
) -> String {
    let path = format!("{V2}/manifest.toml");
    let text = String::from_utf8(s.git_show_bytes(clone, &format!("HEAD:{path}")))
        .expect("the manifest is UTF-8");
    let edited = edit(text.clone());
    let sig = s.ssh_sign(
        signer,
        "mvault-manifest",
        &s.path("forged-manifest.toml"),
        edited.as_bytes(),
    );
    let message = s
        .git_ok(clone, &["log", "-1", "--format=%B", "HEAD"])
        .replace(&sha256_hex(text.as_bytes()), &sha256_hex(edited.as_bytes()));
    s.git_ok(clone, &["read-tree", "HEAD"]);
    s.git_ok(clone, &["reset", "-q", "--soft", "HEAD~1"]);
    s.stage(clone, &path, edited.as_bytes(), "100644");
    s.stage(clone, &format!("{V2}/manifest.sig"), &sig, "100644");
    stage(clone);
    s.commit_index(clone, Some(signer), &["-m", &message])
}

/// `git commit --amend --no-edit --reset-author -S` of HEAD in `clone`,
/// signed by `signer` and claiming them (as `as_key_owner`), with `env`
/// set on top (other dates or identities). Returns the new HEAD.
#[track_caller]
pub fn amend_head(s: &Server, clone: &Path, signer: &Key, env: &[(&str, String)]) -> String {
    let mut cmd = s.git_signing_command(
        clone,
        signer,
        &[
            "commit",
            "-q",
            "--no-verify",
            "--amend",
            "--no-edit",
            "--reset-author",
            "-S",
        ],
    );
    set_env(&mut cmd, env);
    s.run(cmd).success();
    s.git_ok(clone, &["rev-parse", "HEAD"])
}

/// The message of the annotated tag `name` in `dir`, without its signature.
pub fn tag_message(s: &Server, dir: &Path, name: &str) -> String {
    let raw = s.git_ok(dir, &["cat-file", "tag", &format!("refs/tags/{name}")]);
    let (_, body) = raw.split_once("\n\n").expect("the tag has a message");
    body.split("-----BEGIN SSH SIGNATURE-----")
        .next()
        .expect("message")
        .to_owned()
}

/// Re-makes tag `name` in `dir` on `target` with `message`, signed by
/// `signer` with stock `git tag -s -f`, with `env` set on top (another
/// date, another tagger). Returns the tag's object id.
#[track_caller]
pub fn retag(
    s: &Server,
    dir: &Path,
    signer: &Key,
    name: &str,
    target: &str,
    message: &str,
    env: &[(&str, String)],
) -> String {
    let mut cmd = s.git_signing_command(
        dir,
        signer,
        &["tag", "-f", "-s", "-m", message, name, target],
    );
    set_env(&mut cmd, env);
    s.run(cmd).success();
    s.git_ok(dir, &["rev-parse", &format!("refs/tags/{name}")])
}

/// A git date: unix seconds in UTC.
pub fn git_date(unix: u64) -> String {
    format!("{unix} +0000")
}

fn set_env(cmd: &mut Command, env: &[(&str, String)]) {
    for (k, v) in env {
        cmd.env(k, v);
    }
}
