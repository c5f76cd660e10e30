//! Ciphertext only (rule "not ciphertext"): every part of a payload is age
//! ciphertext to the model's one X25519 data key, exactly as long as its
//! plaintext implies. Each test replaces the weights' part in the payload
//! tree of a prepared version and keeps everything else consistent (the
//! manifest's `blob_size` and `payload`, its signature, the digest
//! trailer), so that neither "blob size" nor "payload does not match"
//! fires first; the hook refuses the push on the payload ref, and the
//! same refs forced into a copy without the hook break `audit verify`
//! under the same rule.

use std::io::Write;
use std::path::Path;

use crate::common::*;
use crate::forged::*;
use crate::hook_server::*;

const RULE: &str = "not ciphertext";

/// The prepared version with its weights' part replaced by `bytes`, the
/// manifest's `blob_size` and `payload` set to match and everything
/// re-signed by alice.
fn with_weights_blob(s: &Server, clone: &Path, bytes: &[u8]) -> String {
    with_weights_part(s, clone, bytes)
}

/// The plaintext of the prepared version's weights (`Server::prepared`
/// registers `model(2)`).
fn weights_plaintext(s: &Server) -> Vec<u8> {
    std::fs::read(s.model(2).join("model.safetensors")).expect("read the weights")
}

/// The weights' part as mvault wrote it.
fn real_ciphertext(s: &Server, clone: &Path) -> Vec<u8> {
    let part = weights_part(s, clone);
    let bytes = s.git_show_bytes(clone, &format!("{P2}:{}", part.sha256));
    assert_eq!(bytes.len() as u64, part.blob_size);
    bytes
}

/// Pushes and asserts the hook refuses under "not ciphertext" with
/// `detail` in its line, and that the replay names the same rule.
#[track_caller]
fn refused_as_not_ciphertext(s: &Server, clone: &Path, detail: &str) {
    let run = s.refused(clone, Some("alice"), &["origin", "main"], P2, RULE);
    let line = run
        .stderr()
        .lines()
        .find(|l| l.contains("mvault: refused"))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(line.contains(detail), "expected {detail:?} in {line:?}");
}

/// Plaintext weights, padded to the ciphertext's length so that the size
/// says nothing: anyone who can clone reads the model.
#[test]
fn plaintext_blob_is_refused_as_not_ciphertext() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    let mut plain = weights_plaintext(&s);
    plain.resize(real_ciphertext(&s, &clone).len(), 0);
    with_weights_blob(&s, &clone, &plain);
    refused_as_not_ciphertext(&s, &clone, "not an age file");
}

/// A passphrase file (age's scrypt recipient, made with the age crate: the
/// stock CLI reads a passphrase only from a terminal): its key is whatever
/// the pusher typed, not the model's data key, so no reader can open it
/// and whoever knows the passphrase can.
#[test]
fn passphrase_encrypted_blob_is_refused_as_not_ciphertext() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    let mut recipient =
        age::scrypt::Recipient::new(age::secrecy::SecretString::from("hunter2".to_owned()));
    // Cheap: the work factor is not what the test is about.
    recipient.set_work_factor(10);
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
            .expect("an encryptor");
    let mut sealed = Vec::new();
    let mut writer = encryptor.wrap_output(&mut sealed).expect("wrap output");
    writer
        .write_all(&weights_plaintext(&s))
        .expect("encrypt the weights");
    writer.finish().expect("finish the age file");
    with_weights_blob(&s, &clone, &sealed);
    refused_as_not_ciphertext(&s, &clone, "passphrase");
}

/// A blob encrypted straight to alice's SSH key with stock `age -R`: alice
/// could read it without the key ring, and no other reader could.
#[test]
fn blob_encrypted_to_an_ssh_key_is_refused_as_not_ciphertext() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    let mut age_cmd = s.command("age");
    age_cmd.arg("-R").arg(&s.alice.public);
    let sealed = s
        .run_with_input(age_cmd, &weights_plaintext(&s))
        .success()
        .stdout;
    assert!(contains_bytes(&sealed, b"-> ssh-ed25519 "), "an SSH stanza");
    with_weights_blob(&s, &clone, &sealed);
    refused_as_not_ciphertext(&s, &clone, "ssh-ed25519 recipient");
}

/// The real ciphertext cut short by `cut` bytes (the manifest's
/// `blob_size` says so too): the last chunk and its tag are gone.
fn truncated_ciphertext_is_refused(cut: usize) {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    let mut bytes = real_ciphertext(&s, &clone);
    bytes.truncate(bytes.len() - cut);
    with_weights_blob(&s, &clone, &bytes);
    refused_as_not_ciphertext(&s, &clone, &format!("is {} bytes", bytes.len()));
}

/// The real ciphertext with `pad` bytes appended (and `blob_size` to
/// match): room for a payload that no reader's decryption would notice.
fn padded_ciphertext_is_refused(pad: usize) {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    let mut bytes = real_ciphertext(&s, &clone);
    bytes.resize(bytes.len() + pad, 0x5a);
    with_weights_blob(&s, &clone, &bytes);
    refused_as_not_ciphertext(&s, &clone, &format!("is {} bytes", bytes.len()));
}

#[test]
fn ciphertext_truncated_by_one_byte_is_refused_as_not_ciphertext() {
    truncated_ciphertext_is_refused(1);
}

#[test]
fn ciphertext_truncated_by_a_tag_length_is_refused_as_not_ciphertext() {
    truncated_ciphertext_is_refused(16);
}

#[test]
fn ciphertext_padded_by_one_byte_is_refused_as_not_ciphertext() {
    padded_ciphertext_is_refused(1);
}

#[test]
fn ciphertext_padded_by_a_tag_length_is_refused_as_not_ciphertext() {
    padded_ciphertext_is_refused(16);
}

/// Control: the same forgery with the real ciphertext unchanged (manifest
/// re-signed, trailer recomputed, commit re-made) lands, so each refusal
/// above is due to the blob alone.
#[test]
fn reregistered_version_with_the_real_ciphertext_lands() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    let bytes = real_ciphertext(&s, &clone);
    with_weights_blob(&s, &clone, &bytes);
    s.push(&clone, Some("alice"), &["origin", "main"])
        .success()
        .mentions(&[
            "mvault: accepted refs/heads/main: register nlp/bert@2.0.0",
            "mvault: accepted refs/mvault/data/nlp/bert/2.0.0: payload",
        ]);
}
