//! Commit-level refusals: every commit on main is signed by a key the
//! policy in force names, does one thing, and a registration adds exactly
//! one well-formed version directory. Each hostile commit starts from a
//! valid `mvault add --no-push` and is rebuilt with stock git.

use crate::common::*;
use crate::forged::{forge_payload, hash_blob, weights_part, PayloadEntry, P2};
use crate::hook_server::*;

const MAIN: &str = "refs/heads/main";
const V2: &str = "models/nlp/bert/2.0.0";

/// Replaces the first `from` by `to` in the prepared version's manifest
/// in the index of `clone`; the edit must change it.
fn replace_in_manifest(s: &Server, clone: &std::path::Path, from: &str, to: &str) {
    let path = format!("{V2}/manifest.toml");
    let text = String::from_utf8(s.staged(clone, &path)).expect("utf-8");
    let edited = text.replacen(from, to, 1);
    assert_ne!(edited, text);
    s.stage(clone, &path, edited.as_bytes(), "100644");
}

/// An unsigned commit could be made by anyone who can reach the server.
#[test]
fn unsigned_commit_is_refused() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    s.rewrite_head(&clone, None, |_| {});
    s.refused_main(&clone, Some("alice"), "unsigned commit");
}

/// A commit signed by a key no policy names is a forgery.
#[test]
fn commit_signed_by_an_unknown_key_is_refused() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    s.rewrite_head(&clone, Some(&s.mallory), |_| {});
    s.refused_main(&clone, Some("alice"), "unknown signer");
}

/// A key past its expiry (by the server's clock) no longer counts, even
/// for a commit made while it was valid.
#[test]
fn commit_by_an_expired_user_is_refused() {
    let s = Server::with_version();
    let carol = s.keygen("carol");
    s.mvault_as(
        &s.work,
        &s.admin,
        Some("admin"),
        &[
            "policy",
            "add-user",
            "carol",
            "--key-file",
            &pub_arg(&carol),
            "--expires",
            "2026-12-01",
        ],
    )
    .success();
    s.mvault_as(
        &s.work,
        &s.admin,
        Some("admin"),
        &[
            "policy",
            "grant",
            "carol",
            "--role",
            "developer",
            "--models",
            "nlp/*",
        ],
    )
    .success();
    let clone = s.prepared("c", &carol, "2.0.0");
    let before = s.server_refs();
    // Pushed on 2026-12-15, after the key expired.
    let mut cmd = s.git_command(&clone, &["push", "origin", "main"]);
    cmd.env("MVAULT_USER", "carol")
        .env("MVAULT_NOW", "1797328800");
    let run = s.run(cmd).failure();
    assert_refusal(&run, MAIN, "expired key");
    assert_eq!(s.server_refs(), before, "a ref moved: {}", run.stderr());
}

/// A published version is never modified: editing its manifest in place
/// would change what everyone already pulled and verified.
#[test]
fn commit_touching_an_existing_version_is_refused() {
    let s = Server::with_version();
    let clone = s.stock_clone("c");
    let path = "models/nlp/bert/1.0.0/manifest.toml";
    let mut manifest = s.staged(&clone, path);
    manifest.extend_from_slice(b"[metadata]\nnote = \"rewritten\"\n");
    s.stage(&clone, path, &manifest, "100644");
    s.commit_index(
        &clone,
        Some(&s.alice),
        &["-m", &register_message("1.0.0", &sha256_hex(&manifest))],
    );
    s.refused_main(&clone, Some("alice"), "existing content changed");
}

/// Deleting a published signature would make a version unverifiable.
#[test]
fn commit_deleting_a_published_signature_is_refused() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    let sig = "models/nlp/bert/1.0.0/manifest.sig";
    s.rewrite_head(&clone, Some(&s.alice), |c| s.unstage(c, sig));
    s.refused_main(&clone, Some("alice"), "existing content changed");
}

/// A registration may not drop files elsewhere in the tree (a hook
/// script, a README that misleads, another model's files).
#[test]
fn file_outside_the_version_directory_is_refused() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    s.rewrite_head(&clone, Some(&s.alice), |c| {
        s.stage(c, "README.md", b"trust me\n", "100644")
    });
    s.refused_main(&clone, Some("alice"), "file outside version directory");
}

/// A commit that says "policy" but also registers a version would slip a
/// version past the registration checks.
#[test]
fn policy_change_mixed_with_a_registration_is_refused() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    let carol = s.keygen("carol");
    s.mvault_as(
        &clone,
        &s.admin,
        None,
        &[
            "policy",
            "add-user",
            "carol",
            "--key-file",
            &pub_arg(&carol),
            "--no-push",
        ],
    )
    .success();
    let policy_commit = s.git_ok(&clone, &["rev-parse", "HEAD"]);
    s.git_ok(&clone, &["read-tree", "HEAD"]);
    s.git_ok(&clone, &["reset", "-q", "--soft", "HEAD~2"]);
    s.commit_index(&clone, Some(&s.admin), &["-C", &policy_commit]);
    s.refused_main(&clone, Some("admin"), "mixed actions");
}

/// A manifest that is not canonical could say one thing to one parser and
/// another to the next.
#[test]
fn non_canonical_manifest_is_refused() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    s.rewrite_head(&clone, Some(&s.alice), |c| {
        replace_in_manifest(&s, c, "schema = 2", "schema = 2 ")
    });
    let run = s.refused_main(&clone, Some("alice"), "bad manifest");
    assert!(run.stderr().contains("canonical"), "{}", run.stderr());
}

/// A model card field that breaks its rule (an input schema that is no
/// JSON Schema: `"strin"` is no type) is refused with the field and its
/// line, whoever signed it: readers trust the card as much as the files.
#[test]
fn manifest_with_a_malformed_card_is_refused() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    // Re-signed by alice, the digest trailer recomputed: only the card is
    // wrong.
    crate::forged::reregister(
        &s,
        &clone,
        &s.alice,
        |text| {
            // After the last top-level key, before the first table.
            let at = text.find("total_size = ").expect("total_size");
            let end = at + text[at..].find('\n').expect("a line") + 1;
            let mut edited = text.clone();
            edited.insert_str(end, "input_schema = '{\"type\":\"strin\"}'\n");
            assert_ne!(edited, text);
            edited
        },
        |_| {},
    );
    let run = s.refused_main(&clone, Some("alice"), "bad manifest");
    assert!(
        run.stderr().contains("input_schema") && run.stderr().contains("not a valid JSON Schema"),
        "{}",
        run.stderr()
    );
}

/// A manifest path with `..` would write outside the output directory on
/// pull (path traversal).
#[test]
fn manifest_path_with_dot_dot_is_refused() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    s.rewrite_head(&clone, Some(&s.alice), |c| {
        replace_in_manifest(&s, c, "path = \"config.json\"", "path = \"../config.json\"")
    });
    let run = s.refused_main(&clone, Some("alice"), "bad manifest");
    assert!(run.stderr().contains(".."), "{}", run.stderr());
}

/// A part whose size differs from the manifest's is not the ciphertext
/// that was signed for (a truncated or swapped part).
#[test]
fn blob_size_mismatch_is_refused() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    let part = weights_part(&s, &clone);
    let mut bytes = s.git_show_bytes(&clone, &format!("{P2}:{}", part.sha256));
    bytes.truncate(bytes.len() / 2);
    let id = hash_blob(&s, &clone, &bytes);
    forge_payload(
        &s,
        &clone,
        |es| {
            es.iter_mut()
                .filter(|e| e.name == part.sha256)
                .for_each(|e| e.id = id.clone())
        },
        |t| t,
    );
    s.refused(&clone, Some("alice"), &["origin", "main"], P2, "blob size");
}

/// A version whose manifest names a part that is not there can never be
/// pulled.
#[test]
fn missing_blob_is_refused() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    let part = weights_part(&s, &clone);
    forge_payload(&s, &clone, |es| es.retain(|e| e.name != part.sha256), |t| t);
    s.refused(
        &clone,
        Some("alice"),
        &["origin", "main"],
        P2,
        "missing blob",
    );
}

/// A file the manifest does not name would ride along unsigned: in the
/// version directory on main, or in the payload tree.
#[test]
fn unexpected_extra_file_in_the_version_directory_is_refused() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    s.rewrite_head(&clone, Some(&s.alice), |c| {
        s.stage(
            c,
            &format!("{V2}/blobs/{}", "0".repeat(64)),
            b"payload",
            "100644",
        )
    });
    s.refused_main(&clone, Some("alice"), "unexpected file");
}

#[test]
fn unexpected_extra_part_in_the_payload_is_refused() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    let id = hash_blob(&s, &clone, b"payload");
    forge_payload(
        &s,
        &clone,
        |es| {
            es.push(PayloadEntry {
                mode: "100644".into(),
                kind: "blob".into(),
                id: id.clone(),
                name: "f".repeat(64),
            })
        },
        |t| t,
    );
    s.refused(
        &clone,
        Some("alice"),
        &["origin", "main"],
        P2,
        "unexpected file",
    );
}

/// A symlink in a payload would point a checkout at files outside it.
#[test]
fn symlink_in_the_version_directory_is_refused() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    let part = weights_part(&s, &clone);
    let id = hash_blob(&s, &clone, b"../../../../../etc/passwd");
    forge_payload(
        &s,
        &clone,
        |es| {
            es.iter_mut()
                .filter(|e| e.name == part.sha256)
                .for_each(|e| {
                    e.mode = "120000".into();
                    e.id = id.clone();
                })
        },
        |t| t,
    );
    s.refused(
        &clone,
        Some("alice"),
        &["origin", "main"],
        P2,
        "bad file mode",
    );
}

/// A manifest signed by someone other than the commit's signer (even a
/// known admin) breaks the binding between author and content.
#[test]
fn manifest_signed_by_another_key_is_refused() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    let sig = s.ssh_sign(
        &s.admin,
        "mvault-manifest",
        &s.path("manifest.toml"),
        &s.git_show_bytes(&clone, &format!("HEAD:{V2}/manifest.toml")),
    );
    s.rewrite_head(&clone, Some(&s.alice), |c| {
        s.stage(c, &format!("{V2}/manifest.sig"), &sig, "100644")
    });
    s.refused_main(&clone, Some("alice"), "bad manifest signature");
}
