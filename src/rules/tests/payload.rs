//! Payload trees (`rules::payload::judge_payload`): exactly the manifest's
//! distinct parts, each a regular file named by its plaintext SHA-256, of
//! the ciphertext size the manifest declares, age ciphertext to the data
//! key. The driver calls this for each payload ref a push creates, and the
//! replay for each payload the repository holds.

use std::io::Write;

use super::{accepted, refused};
use crate::model::manifest::{Manifest, Sha256Digest};
use crate::rules::fixtures::{age_blob, item, payload_items, VersionDraft, World, T0};
use crate::rules::payload::judge_payload;
use crate::rules::{source, Refusal, Rule};
use crate::store::objects::{object_id, EntryKind, ObjectId, ObjectKind, TreeItem};

const REF: &str = "refs/mvault/data/nlp/bert/1.1.0";

/// A draft of nlp/bert@1.1.0 by alice.
fn draft(w: &World) -> VersionDraft {
    let alice = w.alice.clone();
    w.version_draft(&alice, "1.1.0", T0 + 600)
}

/// The draft's payload tree, its blobs stored, bent by `bend` (which may
/// change the manifest and the tree's entries, and store blobs), judged
/// against the (bent) manifest.
fn payload_bent(
    w: &mut World,
    bend: impl FnOnce(&mut World, &mut Manifest, &mut Vec<TreeItem>),
) -> Result<(), Refusal> {
    let mut d = draft(w);
    w.src.payload_tree(&d.parts);
    let mut items = payload_items(&d.parts);
    bend(w, &mut d.manifest, &mut items);
    let tree = w.src.raw_tree(&items);
    judge_payload(&w.src, REF, &d.manifest, tree)
}

/// The name of `m`'s only part of `path`'s file at `index`.
fn part_name(m: &Manifest, path: &str, index: usize) -> String {
    let f = m.files.iter().find(|f| f.path == path).expect("a file");
    f.parts[index].sha256.to_hex()
}

/// The entry named `name` replaced by a blob of `bytes`.
fn replace_blob(w: &mut World, items: &mut [TreeItem], name: &str, bytes: &[u8]) {
    let id = w.src.blob(bytes);
    let at = items
        .iter_mut()
        .find(|i| i.name == name.as_bytes())
        .expect("an entry");
    at.id = id;
}

/// Every part named `name` in `m` declared `blob_size` bytes of ciphertext.
fn declare_blob_size(m: &mut Manifest, name: &str, blob_size: u64) {
    for f in &mut m.files {
        for p in &mut f.parts {
            if p.sha256.to_hex() == name {
                p.blob_size = blob_size;
            }
        }
    }
}

#[test]
fn the_payload_a_manifest_names_is_accepted() {
    let mut w = World::new();
    accepted(payload_bent(&mut w, |_, _, _| {}));
    // Three parts in the manifest, two distinct: one entry each.
    let d = draft(&w);
    assert_eq!(
        d.manifest
            .files
            .iter()
            .map(|f| f.parts.len())
            .sum::<usize>(),
        3
    );
    assert_eq!(d.parts.len(), 2);
    let tree = w.src.payload_tree(&d.parts);
    assert_eq!(tree.to_string(), d.manifest.payload);
    accepted(judge_payload(&w.src, REF, &d.manifest, tree));
    // The world's own 1.0.0, as it is on main and under its ref.
    let files = &w.files[&w.bert.commit];
    let (id, _) = files["models/nlp/bert/1.0.0/manifest.toml"];
    let m = Manifest::parse(&String::from_utf8(w.src.bytes(id)).expect("utf-8")).expect("parses");
    assert_eq!(m.payload, w.bert.payload.to_string());
    let r = crate::rules::ObjectSource::ref_target(&w.src, "refs/mvault/data/nlp/bert/1.0.0");
    assert_eq!(r.expect("reads"), Some(w.bert.payload));
    accepted(judge_payload(
        &w.src,
        "refs/mvault/data/nlp/bert/1.0.0",
        &m,
        w.bert.payload,
    ));
}

#[test]
fn an_entry_the_manifest_does_not_name_is_unexpected() {
    let mut w = World::new();
    // A file beside the parts.
    let r = payload_bent(&mut w, |w, _, items| {
        let b = w.src.blob(b"notes");
        items.push(item("notes.txt", b, EntryKind::Blob));
    });
    refused(r, Rule::UnexpectedFile);
    // Ciphertext under the digest of a part no manifest file has.
    let r = payload_bent(&mut w, |w, _, items| {
        let cipher = age_blob(&w.data_key, b"smuggled");
        let b = w.src.blob(&cipher);
        let name = Sha256Digest::of(b"smuggled").to_hex();
        items.push(item(&name, b, EntryKind::Blob));
    });
    refused(r, Rule::UnexpectedFile);
    // A real part under its digest in upper case: not the name mvault gives.
    let r = payload_bent(&mut w, |_, m, items| {
        let name = part_name(m, "model.bin", 0);
        let at = items
            .iter_mut()
            .find(|i| i.name == name.as_bytes())
            .expect("an entry");
        at.name = name.to_ascii_uppercase().into_bytes();
    });
    refused(r, Rule::UnexpectedFile);
    // A layout-1 `blobs/` directory.
    let r = payload_bent(&mut w, |w, _, items| {
        let inner = items.clone();
        let sub = w.src.raw_tree(&inner);
        items.push(item("blobs", sub, EntryKind::Tree));
    });
    refused(r, Rule::UnexpectedFile);
}

#[test]
fn a_part_the_manifest_names_must_be_there() {
    let mut w = World::new();
    let r = payload_bent(&mut w, |_, m, items| {
        let name = part_name(m, "model.bin", 0);
        items.retain(|i| i.name != name.as_bytes());
    });
    refused(r, Rule::MissingBlob);
    // The part two files share, gone: both lack it, one refusal.
    let r = payload_bent(&mut w, |_, m, items| {
        let name = part_name(m, "config.json", 0);
        items.retain(|i| i.name != name.as_bytes());
    });
    refused(r, Rule::MissingBlob);
    // The empty tree.
    let r = payload_bent(&mut w, |_, _, items| items.clear());
    refused(r, Rule::MissingBlob);
}

#[test]
fn a_part_of_another_size_than_the_manifest_says_is_refused() {
    let mut w = World::new();
    // The manifest declares 16 bytes more than the blob has.
    let r = payload_bent(&mut w, |_, m, _| {
        let name = part_name(m, "model.bin", 0);
        let size = m.distinct_parts()[&Sha256Digest::from_hex(&name).expect("hex")].1;
        declare_blob_size(m, &name, size + 16);
    });
    refused(r, Rule::BlobSize);
    // The blob has one byte more than the manifest declares.
    let r = payload_bent(&mut w, |w, m, items| {
        let name = part_name(m, "model.bin", 1);
        let (_, old) = items
            .iter()
            .map(|i| (i.name.clone(), i.id))
            .find(|(n, _)| *n == name.as_bytes())
            .expect("an entry");
        let mut bytes = w.src.bytes(old);
        bytes.push(0);
        replace_blob(w, items, &name, &bytes);
    });
    refused(r, Rule::BlobSize);
}

#[test]
fn a_part_that_is_not_ciphertext_to_the_data_key_is_refused() {
    let mut w = World::new();
    // Plaintext of exactly the size the manifest declares.
    let r = payload_bent(&mut w, |w, m, items| {
        let name = part_name(m, "model.bin", 0);
        let size = m.distinct_parts()[&Sha256Digest::from_hex(&name).expect("hex")].1;
        replace_blob(w, items, &name, &vec![b'P'; size as usize]);
    });
    refused(r, Rule::NotCiphertext);
    // Encrypted to a passphrase, its size declared as it is.
    let r = payload_bent(&mut w, |w, m, items| {
        let name = part_name(m, "model.bin", 0);
        let plaintext = format!("weights of {}", m.version);
        let mut scrypt =
            age::scrypt::Recipient::new(age::secrecy::SecretString::from("hunter2".to_owned()));
        scrypt.set_work_factor(2);
        let enc = age::Encryptor::with_recipients(std::iter::once(&scrypt as &dyn age::Recipient))
            .expect("one recipient");
        let mut out = Vec::new();
        let mut wr = enc.wrap_output(&mut out).expect("wraps");
        wr.write_all(plaintext.as_bytes()).expect("writes");
        wr.finish().expect("finishes");
        declare_blob_size(m, &name, out.len() as u64);
        replace_blob(w, items, &name, &out);
    });
    let e = refused(r, Rule::NotCiphertext);
    assert!(e.line().contains("passphrase"), "{}", e.line());
    // Encrypted to SSH recipients (a key ring is), its size declared.
    let r = payload_bent(&mut w, |w, m, items| {
        let name = part_name(m, "model.bin", 0);
        let ring = w.ring_for(&w.policy);
        declare_blob_size(m, &name, ring.len() as u64);
        replace_blob(w, items, &name, &ring);
    });
    let e = refused(r, Rule::NotCiphertext);
    assert!(e.line().contains("ssh-ed25519"), "{}", e.line());
}

#[test]
fn a_part_that_is_not_a_regular_file_is_refused() {
    let mut w = World::new();
    for kind in [
        EntryKind::BlobExecutable,
        EntryKind::Link,
        EntryKind::Tree,
        EntryKind::Commit,
    ] {
        let r = payload_bent(&mut w, |w, m, items| {
            let name = part_name(m, "model.bin", 0);
            let at = items
                .iter()
                .position(|i| i.name == name.as_bytes())
                .expect("an entry");
            if kind == EntryKind::Tree {
                items[at].id = w.src.raw_tree(&[]);
            }
            items[at].kind = kind;
        });
        let e = refused(r, Rule::BadFileMode);
        assert!(e.line().contains(&format!("{kind:?}")), "{}", e.line());
    }
}

#[test]
fn a_part_named_twice_is_a_malformed_tree() {
    let mut w = World::new();
    let r = payload_bent(&mut w, |_, _, items| {
        let first = items[0].clone();
        items.insert(1, first);
    });
    refused(r, Rule::MalformedTree);
}

#[test]
fn a_payload_whose_objects_are_not_there_fails_closed() {
    let mut w = World::new();
    // A part whose blob the repository does not hold.
    let r = payload_bent(&mut w, |_, m, items| {
        let name = part_name(m, "model.bin", 0);
        let at = items
            .iter_mut()
            .find(|i| i.name == name.as_bytes())
            .expect("an entry");
        at.id = object_id(ObjectKind::Blob, b"absent");
    });
    refused(r, Rule::Internal);
    // A payload id that is a blob, or nothing at all.
    let d = draft(&w);
    let blob = w.src.blob(b"not a tree");
    refused(
        judge_payload(&w.src, REF, &d.manifest, blob),
        Rule::Internal,
    );
    let absent: ObjectId = super::absent_id();
    refused(
        judge_payload(&w.src, REF, &d.manifest, absent),
        Rule::Internal,
    );
    assert!(source::tree_items(&w.src, absent).is_err());
}
