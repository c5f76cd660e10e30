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

/// The prepared version's payload ref.
pub const P2: &str = "refs/mvault/data/nlp/bert/2.0.0";

/// One entry of a payload tree, as `git ls-tree` prints it.
#[derive(Clone)]
pub struct PayloadEntry {
    pub mode: String,
    pub kind: String,
    pub id: String,
    pub name: String,
}

/// The weights' single part (the prepared weights fit in one part).
pub fn weights_part(s: &Server, clone: &Path) -> ManifestPart {
    let f = weights(s, clone);
    assert_eq!(f.parts.len(), 1, "the prepared weights are one part");
    f.parts.into_iter().next().expect("one part")
}

/// Writes `bytes` as a blob in `clone`; returns its id.
pub fn hash_blob(s: &Server, clone: &Path, bytes: &[u8]) -> String {
    let cmd = s.git_command(clone, &["hash-object", "-w", "--stdin"]);
    s.run_with_input(cmd, bytes)
        .success()
        .stdout()
        .trim()
        .to_owned()
}

/// Replaces the prepared version's payload by the tree `edit` makes of
/// its entries, points the local payload ref at it, and re-registers the
/// version with a manifest naming that tree (and edited by `manifest`),
/// re-signed by alice, so that only the payload rule under test can fire.
#[track_caller]
pub fn forge_payload(
    s: &Server,
    clone: &Path,
    edit: impl FnOnce(&mut Vec<PayloadEntry>),
    manifest: impl FnOnce(String) -> String,
) -> String {
    let listing = s.git_ok(clone, &["ls-tree", P2]);
    let mut entries: Vec<PayloadEntry> = listing
        .lines()
        .map(|l| {
            let (meta, name) = l.split_once('\t').expect("ls-tree line");
            let mut it = meta.split(' ');
            PayloadEntry {
                mode: it.next().expect("mode").to_owned(),
                kind: it.next().expect("type").to_owned(),
                id: it.next().expect("id").to_owned(),
                name: name.to_owned(),
            }
        })
        .collect();
    edit(&mut entries);
    let text: String = entries
        .iter()
        .map(|e| format!("{} {} {}\t{}\n", e.mode, e.kind, e.id, e.name))
        .collect();
    let cmd = s.git_command(clone, &["mktree", "--missing"]);
    let tree = s
        .run_with_input(cmd, text.as_bytes())
        .success()
        .stdout()
        .trim()
        .to_owned();
    let old = s.git_ok(clone, &["rev-parse", P2]);
    s.git_ok(clone, &["update-ref", P2, &tree]);
    reregister(
        s,
        clone,
        &s.alice,
        |t| {
            manifest(t.replace(
                &format!("payload = \"{old}\""),
                &format!("payload = \"{tree}\""),
            ))
        },
        |_| {},
    )
}

/// The manifest text with the `blob_size` of the part named `sha256`.
pub fn with_part_blob_size(text: &str, sha256: &str, blob_size: u64) -> String {
    let at = text
        .find(&format!("sha256 = \"{sha256}\"\nsize = "))
        .unwrap_or_else(|| panic!("no part {sha256} in the manifest:\n{text}"));
    let (head, tail) = text.split_at(at);
    let line = tail
        .find("blob_size = ")
        .expect("a blob_size after the part");
    let end = line + tail[line..].find('\n').expect("line end");
    format!(
        "{head}{}blob_size = {blob_size}{}",
        &tail[..line],
        &tail[end..]
    )
}

/// Replaces the weights' part by `bytes` (same name), the manifest's
/// `blob_size` for it set to their length; returns the new HEAD.
pub fn with_weights_part(s: &Server, clone: &Path, bytes: &[u8]) -> String {
    let part = weights_part(s, clone);
    let id = hash_blob(s, clone, bytes);
    let size = bytes.len() as u64;
    let sha = part.sha256.clone();
    forge_payload(
        s,
        clone,
        |entries| {
            for e in entries.iter_mut().filter(|e| e.name == sha) {
                e.id = id.clone();
            }
        },
        |t| with_part_blob_size(&t, &part.sha256, size),
    )
}
