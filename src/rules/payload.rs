//! Ciphertext only: a payload blob must be exactly what mvault writes, an
//! age file to one X25519 recipient (the model's data key; age's grease
//! stanza allowed) whose length is exactly what age produces for the
//! manifest's plaintext size. Plaintext, a passphrase file, a file
//! encrypted straight to an SSH key, and truncated or padded ciphertext are
//! refused. Only the header is read, never the payload.

use crate::crypto;
use crate::model::manifest::{Manifest, Sha256Digest};
use crate::rules::{escape, source, ObjectSource, Refusal, Rule};
use crate::store::objects::{EntryKind, ObjectId};

/// How many bytes of a blob's head the rule reads: more than any header
/// mvault writes (one X25519 stanza and one grease stanza, under 1 KiB).
pub const HEAD_BYTES: usize = 8192;

/// Why a blob is not mvault ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadProblem {
    /// Not an age file at all (plaintext, say).
    #[error("not an age file ({0})")]
    NotAge(String),
    /// Encrypted to a passphrase.
    #[error("encrypted to a passphrase (scrypt), not to the model's data key")]
    Passphrase,
    /// Encrypted to a recipient mvault never uses for blobs.
    #[error("encrypted to a {0} recipient, not to the model's data key")]
    Recipient(String),
    /// Not exactly one X25519 recipient.
    #[error("has {0} X25519 recipients; a blob has exactly one, the model's data key")]
    X25519Count(usize),
    /// More than one grease stanza.
    #[error("has {0} grease stanzas; age writes one")]
    Grease(usize),
    /// What follows the header does not look like ciphertext.
    #[error("carries bytes after its age header that are not ciphertext ({0}): plaintext behind a header")]
    NotRandom(String),
    /// The length does not match the plaintext size.
    #[error("is {actual} bytes; age ciphertext of {plaintext} plaintext bytes with this header is {expected}")]
    Size {
        plaintext: u64,
        expected: u64,
        actual: u64,
    },
}

/// Check the head of a blob of `blob_size` bytes that the manifest says
/// holds `plaintext` bytes.
pub fn check_ciphertext(head: &[u8], blob_size: u64, plaintext: u64) -> Result<(), PayloadProblem> {
    let header = crypto::age_header(head).map_err(|e| PayloadProblem::NotAge(e.to_string()))?;
    // 1. No passphrase file: its key is whatever the pusher typed.
    if header.scrypt {
        return Err(PayloadProblem::Passphrase);
    }
    // 2. Exactly one X25519 stanza and at most one grease stanza; an SSH
    //    recipient would let that key's owner read the blob without the
    //    key ring, so it is refused like any other type.
    let mut x25519 = 0;
    let mut grease = 0;
    for s in &header.stanzas {
        if s.tag == "X25519" {
            x25519 += 1;
        } else if s.tag.ends_with("-grease") {
            grease += 1;
        } else {
            return Err(PayloadProblem::Recipient(crate::rules::escape(&s.tag)));
        }
    }
    if x25519 != 1 {
        return Err(PayloadProblem::X25519Count(x25519));
    }
    if grease > 1 {
        return Err(PayloadProblem::Grease(grease));
    }
    // 3. The exact length: header, nonce, then 64 KiB chunks with a tag each.
    let expected = header.payload_offset + crypto::age_payload_size(plaintext) - 16;
    if blob_size != expected {
        return Err(PayloadProblem::Size {
            plaintext,
            expected,
            actual: blob_size,
        });
    }
    // 4. What follows the nonce, as far as the head goes, must look like
    //    ciphertext: a real header in front of plaintext would pass 1-3.
    let start = usize::try_from(header.payload_offset).unwrap_or(usize::MAX);
    if let Some(body) = head.get(start..) {
        looks_random(body).map_err(PayloadProblem::NotRandom)?;
    }
    Ok(())
}

/// Whether `bytes` could be ciphertext, by cheap statistics that honest
/// ciphertext fails with negligible probability: a chi-square test of the
/// byte counts from 512 bytes on (255 degrees of freedom: mean 255,
/// standard deviation 22.6; refused above 450), and for shorter runs of 32
/// bytes or more the share of printable ASCII (0.37 expected; refused above
/// 0.8) and of zero bytes (refused above 0.25). Shorter runs are not judged.
fn looks_random(bytes: &[u8]) -> Result<(), String> {
    let n = bytes.len();
    if n < 32 {
        return Ok(());
    }
    if n >= 512 {
        let mut counts = [0u64; 256];
        for b in bytes {
            counts[usize::from(*b)] += 1;
        }
        let e = n as f64 / 256.0;
        let chi2: f64 = counts
            .iter()
            .map(|c| {
                let d = *c as f64 - e;
                d * d / e
            })
            .sum();
        if chi2 > 450.0 {
            return Err(format!(
                "chi-square {chi2:.0} over {n} bytes, ciphertext stays near 255"
            ));
        }
        return Ok(());
    }
    let printable = bytes.iter().filter(|b| (0x20..0x7f).contains(*b)).count();
    let zeros = bytes.iter().filter(|b| **b == 0).count();
    if printable * 5 > n * 4 || zeros * 4 > n {
        return Err(format!(
            "{printable} printable and {zeros} zero bytes of {n}"
        ));
    }
    Ok(())
}

/// The payload tree of a version: exactly the manifest's distinct parts,
/// each a blob named by its plaintext SHA-256 in lower-case hex, of the
/// ciphertext size the manifest declares, well-formed age ciphertext to
/// one X25519 recipient. Headers only are read.
pub fn judge_payload(
    src: &dyn ObjectSource,
    subject: &str,
    manifest: &Manifest,
    tree: ObjectId,
) -> Result<(), Refusal> {
    const HINT: &str =
        "register versions with mvault add, which writes the payload the manifest names";
    let internal = |e: crate::store::StoreError| Refusal::internal(subject, e);
    let what = format!("payload of {}@{}", manifest.model, manifest.version);
    let expected = manifest.distinct_parts();
    let items = source::tree_items(src, tree).map_err(internal)?;
    let mut seen = std::collections::BTreeSet::new();
    for item in &items {
        let name = String::from_utf8_lossy(&item.name);
        let Some(digest) = Sha256Digest::from_hex(&name).filter(|d| expected.contains_key(d))
        else {
            return Err(Refusal::new(
                Rule::UnexpectedFile,
                subject,
                format!(
                    "{what}: tree {tree} has {}, which is no part of the manifest",
                    escape(&name)
                ),
                HINT,
            ));
        };
        if !seen.insert(digest) {
            return Err(Refusal::new(
                Rule::MalformedTree,
                subject,
                format!("{what}: tree {tree} names part {digest} twice"),
                HINT,
            ));
        }
        if item.kind != EntryKind::Blob {
            return Err(Refusal::new(
                Rule::BadFileMode,
                subject,
                format!(
                    "{what}: part {digest} is a {:?}; parts are regular files",
                    item.kind
                ),
                HINT,
            ));
        }
        let (plaintext, size) = expected[&digest];
        let actual = src.object_size(item.id).map_err(internal)?;
        if actual != size {
            return Err(Refusal::new(
                Rule::BlobSize,
                subject,
                format!("{what}: part {digest}: manifest says {size} bytes, blob has {actual}"),
                HINT,
            ));
        }
        let head = src.blob_prefix(item.id, HEAD_BYTES).map_err(internal)?;
        check_ciphertext(&head, actual, plaintext).map_err(|p| {
            Refusal::new(
                Rule::NotCiphertext,
                subject,
                format!("{what}: part {digest} {p}"),
                HINT,
            )
        })?;
    }
    if let Some(missing) = expected.keys().find(|d| !seen.contains(d)) {
        return Err(Refusal::new(
            Rule::MissingBlob,
            subject,
            format!("{what}: part {missing} is named by the manifest but not in tree {tree}"),
            HINT,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn encrypt(recipient: &dyn age::Recipient, plaintext: &[u8]) -> Vec<u8> {
        let enc = age::Encryptor::with_recipients(std::iter::once(recipient)).unwrap();
        let mut out = Vec::new();
        let mut w = enc.wrap_output(&mut out).unwrap();
        w.write_all(plaintext).unwrap();
        w.finish().unwrap();
        out
    }

    fn x25519_blob(plaintext: &[u8]) -> Vec<u8> {
        let id = age::x25519::Identity::generate();
        encrypt(&id.to_public(), plaintext)
    }

    /// What mvault writes: crypto::stream's sealer, no grease stanza.
    fn sealed_blob(plaintext: &[u8]) -> Vec<u8> {
        let id = age::x25519::Identity::generate();
        let sealer = crypto::stream::Sealer::new(&id.to_public()).unwrap();
        let mut out = Vec::new();
        sealer
            .seal(plaintext, &mut Vec::new(), |c| {
                out.extend_from_slice(c);
                Ok(())
            })
            .unwrap();
        out
    }

    #[test]
    fn mvault_ciphertext_is_accepted_at_every_chunk_boundary() {
        for n in [0usize, 1, 65535, 65536, 65537, 200_000] {
            // mvault's sealer, and the age crate's (with its grease stanza).
            for blob in [sealed_blob(&vec![7u8; n]), x25519_blob(&vec![7u8; n])] {
                let head = &blob[..blob.len().min(HEAD_BYTES)];
                assert_eq!(
                    check_ciphertext(head, blob.len() as u64, n as u64),
                    Ok(()),
                    "n={n}"
                );
            }
        }
    }

    #[test]
    fn plaintext_is_refused() {
        let r = check_ciphertext(b"PK\x03\x04 weights", 14, 14);
        assert!(matches!(r, Err(PayloadProblem::NotAge(_))), "{r:?}");
    }

    #[test]
    fn passphrase_file_is_refused() {
        let enc = age::Encryptor::with_user_passphrase(age::secrecy::SecretString::from(
            "hunter2".to_owned(),
        ));
        let mut out = Vec::new();
        let mut w = enc.wrap_output(&mut out).unwrap();
        w.write_all(b"weights").unwrap();
        w.finish().unwrap();
        assert_eq!(
            check_ciphertext(&out, out.len() as u64, 7),
            Err(PayloadProblem::Passphrase)
        );
    }

    #[test]
    fn blob_encrypted_straight_to_an_ssh_key_is_refused() {
        let key = ssh_key::PrivateKey::random(&mut rand::rngs::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
        let line = key.public_key().to_openssh().unwrap();
        let recipient: age::ssh::Recipient = line.parse().unwrap();
        let out = encrypt(&recipient, b"weights");
        assert_eq!(
            check_ciphertext(&out, out.len() as u64, 7),
            Err(PayloadProblem::Recipient("ssh-ed25519".into()))
        );
    }

    #[test]
    fn truncated_and_padded_ciphertext_are_refused() {
        let blob = x25519_blob(&[1u8; 1000]);
        let n = blob.len() as u64;
        for actual in [n - 1, n - 16, n + 1, n + 4096] {
            let r = check_ciphertext(&blob, actual, 1000);
            assert!(
                matches!(r, Err(PayloadProblem::Size { .. })),
                "{actual}: {r:?}"
            );
        }
        // A claim of another plaintext size is the same mismatch.
        assert!(check_ciphertext(&blob, n, 999).is_err());
    }

    #[test]
    fn plaintext_behind_a_real_age_header_is_refused() {
        for n in [40usize, 300, 40_000] {
            let real = x25519_blob(&vec![0u8; n]);
            let header = crate::crypto::age_header(&real).unwrap();
            let at = header.payload_offset as usize;
            let mut forged = real[..at].to_vec();
            let text = b"weights weights weights ".repeat(n / 24 + 2);
            forged.extend_from_slice(&text[..real.len() - at]);
            let r = check_ciphertext(
                &forged[..forged.len().min(HEAD_BYTES)],
                forged.len() as u64,
                n as u64,
            );
            assert!(
                matches!(r, Err(PayloadProblem::NotRandom(_))),
                "n={n}: {r:?}"
            );
            // Zeros, as an unencrypted tensor of zeros would be.
            let mut zeros = real[..at].to_vec();
            zeros.resize(real.len(), 0);
            let r = check_ciphertext(
                &zeros[..zeros.len().min(HEAD_BYTES)],
                zeros.len() as u64,
                n as u64,
            );
            assert!(
                matches!(r, Err(PayloadProblem::NotRandom(_))),
                "n={n}: {r:?}"
            );
        }
    }

    #[test]
    fn real_ciphertext_looks_random_at_every_length() {
        for n in 0..600usize {
            let blob = x25519_blob(&vec![0u8; n]);
            let head = &blob[..blob.len().min(HEAD_BYTES)];
            assert_eq!(
                check_ciphertext(head, blob.len() as u64, n as u64),
                Ok(()),
                "n={n}"
            );
        }
    }

    #[test]
    fn header_cut_short_is_not_age() {
        let blob = x25519_blob(b"abc");
        let r = check_ciphertext(&blob[..40], blob.len() as u64, 3);
        assert!(matches!(r, Err(PayloadProblem::NotAge(_))), "{r:?}");
    }
}
