//! Register commits (`rules::commit::register`): one new version
//! directory holding its record only (manifest and signature), and its key
//! ring. The payload tree the manifest names is judged apart, with its ref
//! (`tests/payload.rs`).

use super::{accepted, refused};
use crate::crypto::Signer;
use crate::model::manifest::Sha256Digest;
use crate::model::names::Version;
use crate::rules::commit::{judge_commit, Action, CommitVerdict};
use crate::rules::context::Context;
use crate::rules::fixtures::{age_blob, register_message, Files, TestKey, VersionDraft, World, T0};
use crate::rules::ObjectSource;
use crate::rules::{Refusal, Rule};
use crate::store::objects::{object_id, EntryKind, ObjectId, ObjectKind};

const DIR: &str = "models/nlp/bert/1.1.0";

fn judge(w: &World, id: ObjectId) -> Result<CommitVerdict, Refusal> {
    judge_commit(&w.src, &w.server(), "refs/heads/main", id)
}

/// The pieces of a registration of 1.1.0 on main's tip, for a test to bend.
struct Parts {
    files: Files,
    digest: String,
}

fn parts(w: &mut World, who: &TestKey, draft: &VersionDraft, new_ring: bool) -> Parts {
    let tip = w.main.tip;
    let (files, digest) = w.version_files(tip, draft, who, new_ring);
    Parts { files, digest }
}

fn commit(w: &mut World, who: &TestKey, files: &Files, message: &str) -> ObjectId {
    let tip = w.main.tip;
    w.commit_files(who, tip, files, message, T0 + 600)
}

fn draft(w: &World, who: &TestKey) -> VersionDraft {
    w.version_draft(who, "1.1.0", T0 + 600)
}

/// A valid registration of 1.1.0 by alice, bent by `bend`.
fn register_bent(
    w: &mut World,
    bend: impl FnOnce(&mut World, &mut Files, &mut String),
) -> ObjectId {
    let alice = w.alice.clone();
    let d = draft(w, &alice);
    let mut p = parts(w, &alice, &d, false);
    let mut msg = register_message("nlp/bert", "1.1.0", &p.digest, None);
    bend(w, &mut p.files, &mut msg);
    commit(w, &alice, &p.files, &msg)
}

#[test]
fn a_second_version_is_accepted() {
    let mut w = World::new();
    let alice = w.alice.clone();
    let d = draft(&w, &alice);
    let p = parts(&mut w, &alice, &d, false);
    let id = commit(
        &mut w,
        &alice,
        &p.files,
        &register_message("nlp/bert", "1.1.0", &p.digest, None),
    );
    let v = accepted(judge(&w, id));
    assert!(v.accepted.what.contains("nlp/bert@1.1.0 by alice"));
    // The verdict carries the payload the signed manifest names, for the
    // driver to hold the payload ref to.
    let expected = d.manifest.payload.clone();
    match &v.action {
        Action::Register {
            model,
            version,
            payload,
            manifest,
        } => {
            assert_eq!((model.as_str(), version.as_str()), ("nlp/bert", "1.1.0"));
            assert_eq!(payload.to_string(), expected);
            assert_eq!(manifest.payload, expected);
            assert_eq!(manifest.files.len(), 2);
        }
        other => panic!("not a registration: {other:?}"),
    }
    accepted(judge_commit(&w.src, &w.replay(), "main", id));
}

#[test]
fn a_registration_is_judged_without_its_payload() {
    // A record-only clone never fetched the payload: the commit is judged
    // on its record alone, the payload with its ref.
    let mut w = World::new();
    let alice = w.alice.clone();
    let d = draft(&w, &alice);
    let p = parts(&mut w, &alice, &d, false);
    let id = commit(
        &mut w,
        &alice,
        &p.files,
        &register_message("nlp/bert", "1.1.0", &p.digest, None),
    );
    let tree: ObjectId = d.manifest.payload.parse().expect("a tree id");
    assert!(w.src.has_object(tree));
    w.src.forget(tree);
    for bytes in d.parts.values() {
        w.src.forget(object_id(ObjectKind::Blob, bytes));
    }
    accepted(judge(&w, id));
    accepted(judge_commit(&w.src, &w.replay(), "main", id));
}

#[test]
fn missing_or_wrong_trailers_are_refused() {
    let mut w = World::new();
    let id = register_bent(&mut w, |_, _, m| {
        *m = m.replace("Mvault-Model: nlp/bert\n", "")
    });
    refused(judge(&w, id), Rule::BadTrailers);
    let id = register_bent(&mut w, |_, _, m| {
        *m = m.replace("Mvault-Version: 1.1.0\n", "")
    });
    refused(judge(&w, id), Rule::BadTrailers);
    // The digest trailer must be the manifest's.
    let other = Sha256Digest::of(b"other").to_hex();
    let id = register_bent(&mut w, |_, _, m| {
        *m = register_message("nlp/bert", "1.1.0", &other, None)
    });
    refused(judge(&w, id), Rule::BadTrailers);
}

#[test]
fn a_model_or_version_name_outside_the_rules_is_refused() {
    let mut w = World::new();
    let id = register_bent(&mut w, |_, _, m| {
        *m = m.replace("Mvault-Model: nlp/bert", "Mvault-Model: NLP/Bert")
    });
    refused(judge(&w, id), Rule::BadName);
    let id = register_bent(&mut w, |_, _, m| {
        *m = m.replace("Mvault-Version: 1.1.0", "Mvault-Version: v1.1")
    });
    refused(judge(&w, id), Rule::BadName);
}

#[test]
fn a_signer_or_pusher_without_register_is_refused() {
    let mut w = World::new();
    // bob is an approver: he may not register.
    let bob = w.bob.clone();
    let d = draft(&w, &bob);
    let p = parts(&mut w, &bob, &d, false);
    let id = commit(
        &mut w,
        &bob,
        &p.files,
        &register_message("nlp/bert", "1.1.0", &p.digest, None),
    );
    refused(judge(&w, id), Rule::Role);
    // alice may, but the push is bob's.
    let id = register_bent(&mut w, |_, _, _| {});
    let ctx = Context {
        pusher: Some("bob"),
        ..w.server()
    };
    refused(judge_commit(&w.src, &ctx, "main", id), Rule::PusherRole);
    let ctx = Context {
        pusher: Some("alice"),
        ..w.server()
    };
    accepted(judge_commit(&w.src, &ctx, "main", id));
}

#[test]
fn changing_a_published_file_is_refused() {
    let mut w = World::new();
    let id = register_bent(&mut w, |w, f, _| {
        let b = w.src.blob(b"rewritten");
        f.insert(
            "models/nlp/bert/1.0.0/manifest.toml".into(),
            (b, EntryKind::Blob),
        );
    });
    refused(judge(&w, id), Rule::ExistingContentChanged);
    // Deleting one is a change too.
    let id = register_bent(&mut w, |_, f, _| {
        f.remove(".gitattributes");
    });
    refused(judge(&w, id), Rule::ExistingContentChanged);
}

#[test]
fn a_file_outside_the_version_directory_is_refused() {
    let mut w = World::new();
    let id = register_bent(&mut w, |w, f, _| {
        let b = w.src.blob(b"hi");
        f.insert("README.md".into(), (b, EntryKind::Blob));
    });
    refused(judge(&w, id), Rule::FileOutsideVersion);
}

#[test]
fn adding_to_an_existing_version_is_refused() {
    let mut w = World::new();
    let alice = w.alice.clone();
    let mut files = w.files[&w.main.tip].clone();
    files.insert(
        "models/nlp/bert/1.0.0/extra".into(),
        (w.src.blob(b"more"), EntryKind::Blob),
    );
    let msg = register_message("nlp/bert", "1.0.0", &w.bert.digest.clone(), None);
    let id = commit(&mut w, &alice, &files, &msg);
    refused(judge(&w, id), Rule::VersionExists);
}

#[test]
fn a_model_nested_inside_a_published_version_is_refused() {
    let mut w = World::new();
    // The admin may register any model: only the collision refuses it.
    let admin = w.admin.clone();
    let mut d = draft(&w, &admin);
    d.manifest.model = crate::model::names::ModelName::parse("nlp/bert/1.0.0/x").expect("valid");
    d.manifest.version = Version::parse("1.0.0").expect("valid");
    let p = parts(&mut w, &admin, &d, false);
    let mut files = p.files;
    let ring = w.ring_for(&w.policy);
    files.insert(
        ".mvault/keys/nlp/bert/1.0.0/x.age".into(),
        (w.src.blob(&ring), EntryKind::Blob),
    );
    let msg = register_message("nlp/bert/1.0.0/x", "1.0.0", &p.digest, None);
    let id = commit(&mut w, &admin, &files, &msg);
    refused(judge(&w, id), Rule::NameCollision);
}

#[test]
fn a_missing_unparsable_or_mismatched_manifest_is_refused() {
    let mut w = World::new();
    let id = register_bent(&mut w, |_, f, _| {
        f.remove(&format!("{DIR}/manifest.toml"));
    });
    refused(judge(&w, id), Rule::BadManifest);
    let id = register_bent(&mut w, |_, f, _| {
        f.remove(&format!("{DIR}/manifest.sig"));
    });
    refused(judge(&w, id), Rule::BadManifest);
    // Not canonical: a comment appended.
    let id = register_bent(&mut w, |w, f, _| {
        let (old, _) = f[&format!("{DIR}/manifest.toml")];
        let mut text = w.src.bytes(old);
        text.extend_from_slice(b"# hi\n");
        let b = w.src.blob(&text);
        f.insert(format!("{DIR}/manifest.toml"), (b, EntryKind::Blob));
    });
    refused(judge(&w, id), Rule::BadManifest);
    // A manifest of another version.
    let alice = w.alice.clone();
    let mut d = draft(&w, &alice);
    d.manifest.version = Version::parse("1.2.0").expect("valid");
    let p = parts(&mut w, &alice, &d, false);
    let mut files = Files::new();
    for (path, e) in p.files {
        files.insert(path.replace("/1.2.0/", "/1.1.0/"), e);
    }
    let id = commit(
        &mut w,
        &alice,
        &files,
        &register_message("nlp/bert", "1.1.0", &p.digest, None),
    );
    refused(judge(&w, id), Rule::BadManifest);
    // A parent version that does not exist.
    let mut d = draft(&w, &alice);
    d.manifest.parent = Some(Version::parse("0.9.0").expect("valid"));
    let p = parts(&mut w, &alice, &d, false);
    let id = commit(
        &mut w,
        &alice,
        &p.files,
        &register_message("nlp/bert", "1.1.0", &p.digest, None),
    );
    refused(judge(&w, id), Rule::BadManifest);
}

#[test]
fn a_manifest_naming_another_author_is_misattributed() {
    let mut w = World::new();
    let alice = w.alice.clone();
    let mut d = draft(&w, &alice);
    d.manifest.author = "bob".into();
    let p = parts(&mut w, &alice, &d, false);
    let id = commit(
        &mut w,
        &alice,
        &p.files,
        &register_message("nlp/bert", "1.1.0", &p.digest, None),
    );
    refused(judge(&w, id), Rule::Misattributed);
    let mut d = draft(&w, &alice);
    d.manifest.author_key = w.bob.fingerprint();
    let p = parts(&mut w, &alice, &d, false);
    let id = commit(
        &mut w,
        &alice,
        &p.files,
        &register_message("nlp/bert", "1.1.0", &p.digest, None),
    );
    refused(judge(&w, id), Rule::Misattributed);
}

#[test]
fn a_manifest_dated_before_the_parent_commit_is_refused() {
    let mut w = World::new();
    let alice = w.alice.clone();
    let d = w.version_draft(&alice, "1.1.0", T0 + 199);
    let p = parts(&mut w, &alice, &d, false);
    let id = commit(
        &mut w,
        &alice,
        &p.files,
        &register_message("nlp/bert", "1.1.0", &p.digest, None),
    );
    refused(judge(&w, id), Rule::ManifestDatedBeforeParent);
    refused(
        judge_commit(&w.src, &w.replay(), "main", id),
        Rule::ManifestDatedBeforeParent,
    );
}

#[test]
fn a_manifest_dated_in_the_future_is_refused_at_push_time() {
    let mut w = World::new();
    let alice = w.alice.clone();
    let d = w.version_draft(&alice, "1.1.0", crate::rules::fixtures::NOW + 3600);
    let p = parts(&mut w, &alice, &d, false);
    let id = commit(
        &mut w,
        &alice,
        &p.files,
        &register_message("nlp/bert", "1.1.0", &p.digest, None),
    );
    refused(judge(&w, id), Rule::DatedInFuture);
    accepted(judge_commit(&w.src, &w.replay(), "main", id));
}

#[test]
fn a_manifest_signature_by_another_key_or_namespace_is_refused() {
    let mut w = World::new();
    let (alice, bob) = (w.alice.clone(), w.bob.clone());
    let d = draft(&w, &alice);
    // Signed by bob, committed by alice.
    let p = parts(&mut w, &bob, &d, false);
    let id = commit(
        &mut w,
        &alice,
        &p.files,
        &register_message("nlp/bert", "1.1.0", &p.digest, None),
    );
    refused(judge(&w, id), Rule::BadManifestSignature);
    // Signed by alice in the git namespace.
    let id = register_bent(&mut w, |w, f, _| {
        let (m, _) = f[&format!("{DIR}/manifest.toml")];
        let text = w.src.bytes(m);
        let sig = alice
            .sign(crate::crypto::GIT_NAMESPACE, &text)
            .expect("signs");
        let b = w.src.blob(sig.as_bytes());
        f.insert(format!("{DIR}/manifest.sig"), (b, EntryKind::Blob));
    });
    refused(judge(&w, id), Rule::BadManifestSignature);
}

#[test]
fn a_file_other_than_the_record_in_the_version_directory_is_unexpected() {
    let mut w = World::new();
    let id = register_bent(&mut w, |w, f, _| {
        let b = w.src.blob(b"smuggled");
        f.insert(format!("{DIR}/notes.txt"), (b, EntryKind::Blob));
    });
    refused(judge(&w, id), Rule::UnexpectedFile);
    // A layout-1 blob, real ciphertext under the name the manifest's
    // digest would have given it: the payload is no longer on main.
    let id = register_bent(&mut w, |w, f, _| {
        let cipher = age_blob(&w.data_key, b"weights");
        let name = format!("{DIR}/blobs/{}", Sha256Digest::of(b"weights"));
        let b = w.src.blob(&cipher);
        f.insert(name, (b, EntryKind::Blob));
    });
    refused(judge(&w, id), Rule::UnexpectedFile);
    // The payload tree itself, grafted into the version directory.
    let id = register_bent(&mut w, |w, f, _| {
        let alice = w.alice.clone();
        let d = draft(w, &alice);
        let tree = w.src.payload_tree(&d.parts);
        f.insert(format!("{DIR}/payload"), (tree, EntryKind::Tree));
    });
    let e = refused(judge(&w, id), Rule::UnexpectedFile);
    assert!(
        e.line().contains("refs/mvault/data/nlp/bert/1.1.0"),
        "{}",
        e.line()
    );
}

#[test]
fn a_manifest_whose_payload_is_no_tree_id_is_refused() {
    // The parser refuses it: the signed manifest must name a 40-hex tree.
    let mut w = World::new();
    let alice = w.alice.clone();
    let mut d = draft(&w, &alice);
    d.manifest.payload = "HEAD".into();
    let p = parts(&mut w, &alice, &d, false);
    let id = commit(
        &mut w,
        &alice,
        &p.files,
        &register_message("nlp/bert", "1.1.0", &p.digest, None),
    );
    refused(judge(&w, id), Rule::BadManifest);
}

/// A first version of nlp/gpt by alice, with the ring `ring` if any.
fn first_of_gpt(w: &mut World, ring: Option<Vec<u8>>) -> ObjectId {
    let alice = w.alice.clone();
    let mut d = draft(w, &alice);
    d.manifest.model = crate::model::names::ModelName::parse("nlp/gpt").expect("valid");
    let p = parts(w, &alice, &d, false);
    let mut files = p.files;
    if let Some(ring) = ring {
        files.insert(
            ".mvault/keys/nlp/gpt.age".into(),
            (w.src.blob(&ring), EntryKind::Blob),
        );
    }
    let msg = register_message("nlp/gpt", "1.1.0", &p.digest, Some("age1"));
    commit(w, &alice, &files, &msg)
}

#[test]
fn a_new_model_needs_its_key_ring() {
    let mut w = World::new();
    let id = first_of_gpt(&mut w, None);
    refused(judge(&w, id), Rule::MissingKeyRing);
    let ring = w.ring_for(&w.policy);
    let id = first_of_gpt(&mut w, Some(ring));
    accepted(judge(&w, id));
}

#[test]
fn a_new_key_ring_wrapped_to_other_than_the_readers_is_refused() {
    let mut w = World::new();
    // Missing bob and the admin.
    let ring = w.ring_to(&[w.alice.public_key().clone()]);
    let id = first_of_gpt(&mut w, Some(ring));
    refused(judge(&w, id), Rule::KeyRingRecipients);
    // One outsider more.
    let mut readers: Vec<_> = [&w.admin, &w.alice, &w.bob, &w.mallory]
        .iter()
        .map(|k| k.public_key().clone())
        .collect();
    readers.sort_by_key(crate::crypto::fingerprint);
    let ring = w.ring_to(&readers);
    let id = first_of_gpt(&mut w, Some(ring));
    refused(judge(&w, id), Rule::KeyRingRecipients);
    // Not an age file at all.
    let id = first_of_gpt(&mut w, Some(b"plaintext key".to_vec()));
    refused(judge(&w, id), Rule::KeyRingRecipients);
}

/// main's tip with nlp/bert's ring re-sealed to carol as well, whose key
/// expired in 2020: a ring that still holds a former reader.
fn ring_with_a_former_reader(w: &mut World) {
    let admin = w.admin.clone();
    let tip = w.main.tip;
    let mut files = w.files[&tip].clone();
    let keys: Vec<_> = [&w.admin, &w.alice, &w.bob, &w.carol]
        .iter()
        .map(|k| k.public_key().clone())
        .collect();
    let ring = w.ring_to(&keys);
    files.insert(w.model.keyring_path(), (w.src.blob(&ring), EntryKind::Blob));
    let msg = "policy: test\n\nMvault-Action: policy\nMvault-Key-Rewrap: nlp/bert\n";
    let id = w.commit_files(&admin, tip, &files, msg, T0 + 550);
    w.advance_main(id);
}

/// 1.1.0 with nlp/bert's ring replaced by `ring`.
fn register_with_ring(w: &mut World, ring: Vec<u8>) -> ObjectId {
    register_bent(w, |w, f, m| {
        f.insert(w.model.keyring_path(), (w.src.blob(&ring), EntryKind::Blob));
        m.push_str("Mvault-Key-Ring: rotated age1\n");
    })
}

#[test]
fn a_version_after_a_readers_expiry_that_keeps_the_key_is_refused() {
    let mut w = World::new();
    ring_with_a_former_reader(&mut w);
    let id = register_bent(&mut w, |_, _, _| {});
    let r = refused(judge(&w, id), Rule::KeyRingRecipients);
    assert!(r.detail.contains("carol (expired 2020-01-01)"), "{r:?}");
    refused(
        judge_commit(&w.src, &w.replay(), "main", id),
        Rule::KeyRingRecipients,
    );
}

#[test]
fn a_version_that_rotates_the_key_after_a_readers_expiry_is_accepted() {
    let mut w = World::new();
    ring_with_a_former_reader(&mut w);
    let ring = w.ring_for(&w.policy);
    let id = register_with_ring(&mut w, ring);
    accepted(judge(&w, id));
    accepted(judge_commit(&w.src, &w.replay(), "main", id));
}

#[test]
fn a_rotation_to_other_than_the_readers_is_refused() {
    let mut w = World::new();
    ring_with_a_former_reader(&mut w);
    // Still carol's, and without bob.
    let keys: Vec<_> = [&w.admin, &w.alice, &w.carol]
        .iter()
        .map(|k| k.public_key().clone())
        .collect();
    let ring = w.ring_to(&keys);
    let id = register_with_ring(&mut w, ring);
    refused(judge(&w, id), Rule::KeyRingRecipients);
}

#[test]
fn a_key_ring_replaced_while_every_holder_is_a_reader_is_refused() {
    let mut w = World::new();
    let ring = w.ring_for(&w.policy);
    let id = register_with_ring(&mut w, ring);
    refused(judge(&w, id), Rule::ExistingContentChanged);
}
