//! Keys, signatures and envelope encryption.
//!
//! Every person is one ed25519 SSH key. The same key signs (SSHSIG, the
//! format `git verify-commit`, `git verify-tag` and `ssh-keygen -Y verify`
//! check) and decrypts (age's `ssh-ed25519` recipient type). Each model has a
//! data key, an age X25519 identity; its blobs are encrypted to it, and the
//! data key itself is kept in a key ring encrypted to the model's readers.
//! Nothing here touches git.

use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};

mod header;
pub mod stream;

pub use header::{age_header, AgeHeader, HeaderError, StanzaHead};

use age::secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};

/// Namespace of manifest signatures.
pub const MANIFEST_NAMESPACE: &str = "mvault-manifest";
/// Namespace git uses for commit and tag signatures.
pub const GIT_NAMESPACE: &str = "git";

/// A key problem.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read.
    #[error("cannot read key {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    /// Not an OpenSSH private key.
    #[error("{path} is not an OpenSSH private key: {reason}")]
    Parse { path: PathBuf, reason: String },
    /// A public key where the private key belongs (`--key id_ed25519.pub`).
    #[error("{path} is an SSH public key; mvault signs and decrypts with the private key")]
    PublicGiven {
        path: PathBuf,
        /// The same path without `.pub`, when that file exists.
        private: Option<PathBuf>,
    },
    /// Not ed25519.
    #[error("{path} is a {algorithm} key; mvault uses ed25519 keys (ssh-keygen -t ed25519)")]
    NotEd25519 { path: PathBuf, algorithm: String },
    /// Passphrase-protected and no passphrase given, or the wrong one.
    #[error("{path} is protected by a passphrase{detail}")]
    Passphrase { path: PathBuf, detail: &'static str },
    /// A public key line that does not parse.
    #[error("invalid SSH public key {text:?}: {reason}")]
    PublicKey { text: String, reason: String },
}

/// A signature that does not check out.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// Not an armored SSH signature.
    #[error("not an SSH signature: {0}")]
    Malformed(String),
    /// The signature is for another namespace (a signature replayed from elsewhere).
    #[error("signature namespace is {found:?}, expected {expected:?}")]
    Namespace { expected: String, found: String },
    /// The bytes were changed after signing, or the signature was made by another key.
    #[error("signature does not verify over the signed bytes")]
    Invalid,
}

/// An encryption or decryption failure.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// age refused the data (wrong key, truncated or altered ciphertext).
    #[error("{0}")]
    Age(String),
    /// I/O while streaming.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The key ring does not hold what it should.
    #[error("key ring: {0}")]
    KeyRing(String),
}

/// The signing half of an identity: what commits, tags and manifests need.
pub trait Signer {
    /// The public key that verifies this signer's signatures.
    fn public_key(&self) -> &PublicKey;
    /// An armored SSHSIG over `msg` in `namespace`.
    fn sign(&self, namespace: &str, msg: &[u8]) -> Result<String, SignatureError>;
}

impl<T: Signer> crate::store::GitSigner for T {
    fn sign_git(&self, payload: &[u8]) -> Result<String, crate::store::StoreError> {
        self.sign(GIT_NAMESPACE, payload)
            .map_err(|e| crate::store::StoreError::Sign(e.to_string()))
    }
}

/// A person's SSH key, opened.
pub struct SshIdentity {
    key: PrivateKey,
    path: PathBuf,
}

impl std::fmt::Debug for SshIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshIdentity")
            .field("path", &self.path)
            .field("fingerprint", &fingerprint(self.key.public_key()))
            .finish()
    }
}

impl SshIdentity {
    /// Open an OpenSSH ed25519 private key; a protected key is opened with
    /// `passphrase`.
    pub fn open(path: &Path, passphrase: Option<&str>) -> Result<Self, KeyError> {
        let text = std::fs::read(path).map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        let key = PrivateKey::from_openssh(&text).map_err(|e| {
            // The usual mistake: the .pub file of the pair.
            let public =
                std::str::from_utf8(&text).is_ok_and(|t| PublicKey::from_openssh(t.trim()).is_ok());
            if public {
                let private = path
                    .to_str()
                    .and_then(|p| p.strip_suffix(".pub"))
                    .map(PathBuf::from)
                    .filter(|p| p.is_file());
                KeyError::PublicGiven {
                    path: path.to_owned(),
                    private,
                }
            } else {
                KeyError::Parse {
                    path: path.to_owned(),
                    reason: e.to_string(),
                }
            }
        })?;
        let key = if key.is_encrypted() {
            let Some(pass) = passphrase else {
                return Err(KeyError::Passphrase {
                    path: path.to_owned(),
                    detail: "; set MVAULT_PASSPHRASE, or use a key without one",
                });
            };
            key.decrypt(pass).map_err(|_| KeyError::Passphrase {
                path: path.to_owned(),
                detail: " and MVAULT_PASSPHRASE does not open it",
            })?
        } else {
            key
        };
        if key.algorithm() != ssh_key::Algorithm::Ed25519 {
            return Err(KeyError::NotEd25519 {
                path: path.to_owned(),
                algorithm: key.algorithm().to_string(),
            });
        }
        Ok(SshIdentity {
            key,
            path: path.to_owned(),
        })
    }

    /// Where the key was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The age identity of the same key, for unwrapping key rings.
    pub fn age_identity(&self) -> Result<age::ssh::Identity, CryptoError> {
        let pem = self
            .key
            .to_openssh(LineEnding::LF)
            .map_err(|e| CryptoError::Age(e.to_string()))?;
        age::ssh::Identity::from_buffer(pem.as_bytes(), None)
            .map_err(|e| CryptoError::Age(e.to_string()))
    }
}

impl Signer for SshIdentity {
    fn public_key(&self) -> &PublicKey {
        self.key.public_key()
    }
    fn sign(&self, namespace: &str, msg: &[u8]) -> Result<String, SignatureError> {
        let sig = self
            .key
            .sign(namespace, HashAlg::Sha512, msg)
            .map_err(|e| SignatureError::Malformed(e.to_string()))?;
        sig.to_pem(LineEnding::LF)
            .map_err(|e| SignatureError::Malformed(e.to_string()))
    }
}

/// Parse one `ssh-ed25519 AAAA… [comment]` line.
pub fn parse_public_key(text: &str) -> Result<PublicKey, KeyError> {
    let key = PublicKey::from_openssh(text.trim()).map_err(|e| KeyError::PublicKey {
        text: text.trim().to_owned(),
        reason: e.to_string(),
    })?;
    if key.algorithm() != ssh_key::Algorithm::Ed25519 {
        return Err(KeyError::PublicKey {
            text: text.trim().to_owned(),
            reason: format!("{} keys are not supported; use ed25519", key.algorithm()),
        });
    }
    Ok(key)
}

/// `ssh-ed25519 AAAA…` without the comment: the form policies store.
pub fn public_key_line(key: &PublicKey) -> String {
    let mut k = key.clone();
    k.set_comment("");
    k.to_openssh()
        .expect("an ed25519 key always encodes")
        .trim()
        .to_owned()
}

/// `SHA256:…`, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Check an armored SSHSIG over `msg` in `namespace` and return the key that
/// made it. The caller decides whether that key was allowed to.
pub fn verify_signature(
    armored: &[u8],
    namespace: &str,
    msg: &[u8],
) -> Result<PublicKey, SignatureError> {
    let sig = SshSig::from_pem(armored).map_err(|e| SignatureError::Malformed(e.to_string()))?;
    if sig.namespace() != namespace {
        return Err(SignatureError::Namespace {
            expected: namespace.to_owned(),
            found: sig.namespace().to_owned(),
        });
    }
    let key = PublicKey::new(sig.public_key().clone(), "");
    key.verify(namespace, msg, &sig)
        .map_err(|_| SignatureError::Invalid)?;
    Ok(key)
}

/// The 4-byte tag age writes in an `ssh-ed25519` stanza for this key (base64,
/// unpadded): lets the hook check a key ring's recipients without decrypting.
pub fn ssh_stanza_tag(key: &PublicKey) -> String {
    let wire = key.to_bytes().expect("an ed25519 key always encodes");
    let digest = Sha256::digest(&wire);
    base64_nopad(&digest[..4])
}

fn base64_nopad(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}

/// The age recipient of a reader's SSH key.
pub fn ssh_recipient(key: &PublicKey) -> Result<age::ssh::Recipient, CryptoError> {
    public_key_line(key)
        .parse::<age::ssh::Recipient>()
        .map_err(|e| CryptoError::Age(format!("{e:?}")))
}

/// The size of the age payload for `n` plaintext bytes, without the header.
pub fn age_payload_size(n: u64) -> u64 {
    let chunks = n.div_ceil(65536).max(1);
    16 + n + 16 * chunks
}

/// The smallest and largest ciphertext size a plaintext of `n` bytes can
/// have: age headers vary in length (a random grease stanza).
pub fn ciphertext_size_bounds(n: u64) -> (u64, u64) {
    (age_payload_size(n) + 64, age_payload_size(n) + 2048)
}

/// Whether `blob_size` can be the ciphertext of `n` plaintext bytes.
pub fn plausible_ciphertext_size(n: u64, blob_size: u64) -> bool {
    let (lo, hi) = ciphertext_size_bounds(n);
    (lo..=hi).contains(&blob_size)
}

/// A model's data key: an age X25519 identity.
#[derive(Clone)]
pub struct DataKey {
    identity: age::x25519::Identity,
    /// The comment line of its generation in the key ring.
    pub created: String,
}

impl DataKey {
    /// A fresh data key.
    pub fn generate(created: &str) -> Self {
        DataKey {
            identity: age::x25519::Identity::generate(),
            created: created.to_owned(),
        }
    }
    /// Its public recipient, `age1…`: what manifests name.
    pub fn recipient(&self) -> age::x25519::Recipient {
        self.identity.to_public()
    }
    /// The identity, to decrypt blobs.
    pub fn identity(&self) -> &age::x25519::Identity {
        &self.identity
    }
}

/// All generations of a model's data key, oldest first.
#[derive(Clone)]
pub struct KeyRing {
    pub generations: Vec<DataKey>,
}

impl KeyRing {
    /// The newest generation, which new versions use.
    pub fn current(&self) -> &DataKey {
        self.generations.last().expect("a key ring is never empty")
    }

    /// The generation whose recipient is `recipient`.
    pub fn find(&self, recipient: &str) -> Option<&DataKey> {
        self.generations
            .iter()
            .find(|g| g.recipient().to_string() == recipient)
    }

    /// The plaintext: an age identity file (see docs/formats.md).
    pub fn render(&self, model: &str) -> String {
        let mut out = format!("# mvault key ring: {model}\n");
        for (i, g) in self.generations.iter().enumerate() {
            out.push_str(&format!(
                "# generation {} created {} recipient {}\n{}\n",
                i + 1,
                g.created,
                g.recipient(),
                g.identity.to_string().expose_secret()
            ));
        }
        out
    }

    /// Parse the plaintext written by [`KeyRing::render`].
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        let mut generations = Vec::new();
        let mut created = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# generation ") {
                created = rest
                    .split_once(" created ")
                    .and_then(|(_, r)| r.split_once(' '))
                    .map(|(c, _)| c.to_owned())
                    .unwrap_or_default();
            } else if line.starts_with("AGE-SECRET-KEY-") {
                let identity = line
                    .parse::<age::x25519::Identity>()
                    .map_err(|e| CryptoError::KeyRing(e.to_string()))?;
                generations.push(DataKey {
                    identity,
                    created: std::mem::take(&mut created),
                });
            } else if !(line.is_empty() || line.starts_with('#')) {
                return Err(CryptoError::KeyRing("unexpected line in key ring".into()));
            }
        }
        if generations.is_empty() {
            return Err(CryptoError::KeyRing("no data key in key ring".into()));
        }
        Ok(KeyRing { generations })
    }

    /// Encrypt the ring to `readers` (binary age format).
    pub fn seal(&self, model: &str, readers: &[PublicKey]) -> Result<Vec<u8>, CryptoError> {
        let recipients = readers
            .iter()
            .map(ssh_recipient)
            .collect::<Result<Vec<_>, _>>()?;
        let enc =
            age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
                .map_err(|e| CryptoError::Age(e.to_string()))?;
        let mut out = Vec::new();
        let mut w = enc.wrap_output(&mut out)?;
        w.write_all(self.render(model).as_bytes())?;
        w.finish()?;
        Ok(out)
    }

    /// Decrypt a sealed ring with a reader's key.
    pub fn open(sealed: &[u8], who: &SshIdentity) -> Result<Self, CryptoError> {
        let identity = who.age_identity()?;
        let dec =
            age::Decryptor::new_buffered(sealed).map_err(|e| CryptoError::Age(e.to_string()))?;
        let mut r = dec
            .decrypt(std::iter::once(&identity as &dyn age::Identity))
            .map_err(|e| CryptoError::Age(e.to_string()))?;
        let mut text = String::new();
        r.read_to_string(&mut text)?;
        KeyRing::parse(&text)
    }
}

/// The stanzas of an age header: `(type, args)`, read without decrypting.
/// Returns `None` when the bytes do not start with an age v1 header.
pub fn age_header_stanzas(file: &[u8]) -> Option<Vec<(String, Vec<String>)>> {
    age_header(file)
        .ok()
        .map(|h| h.stanzas.into_iter().map(|s| (s.tag, s.args)).collect())
}

/// Encrypt `input` to `recipient`, writing age ciphertext to `output`.
/// Returns the number of plaintext bytes.
pub fn encrypt_stream(
    recipient: &age::x25519::Recipient,
    mut input: impl Read,
    output: impl Write,
) -> Result<u64, CryptoError> {
    let enc = age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))
        .map_err(|e| CryptoError::Age(e.to_string()))?;
    let mut w = enc.wrap_output(output)?;
    let n = io::copy(&mut input, &mut w)?;
    w.finish()?;
    Ok(n)
}

/// Open an age stream for reading with a data key.
pub fn decrypt_reader<R: BufRead>(key: &DataKey, input: R) -> Result<impl Read, CryptoError> {
    let dec = age::Decryptor::new_buffered(input).map_err(|e| CryptoError::Age(e.to_string()))?;
    dec.decrypt(std::iter::once(key.identity() as &dyn age::Identity))
        .map_err(|e| CryptoError::Age(e.to_string()))
}

/// A new ed25519 key pair for a machine (the server's receipt key): the
/// private key in OpenSSH form, unencrypted, and its public key.
pub fn generate_machine_key(comment: &str) -> Result<(String, PublicKey), KeyError> {
    use rand::RngCore;
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let pair = ssh_key::private::Ed25519Keypair::from_seed(&seed);
    let mut key = PrivateKey::from(pair);
    key.set_comment(comment);
    let pem = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| KeyError::Parse {
            path: PathBuf::from("(new key)"),
            reason: e.to_string(),
        })?
        .to_string();
    Ok((pem, key.public_key().clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_values() {
        assert_eq!(base64_nopad(b"\x00\x01\x02\x03"), "AAECAw");
        assert_eq!(base64_nopad(b"abc"), "YWJj");
    }

    #[test]
    fn payload_size_formula() {
        assert_eq!(age_payload_size(0), 32);
        assert_eq!(age_payload_size(65536), 16 + 65536 + 16);
        assert_eq!(age_payload_size(65537), 16 + 65537 + 32);
    }

    #[test]
    fn keyring_round_trips_through_text() {
        let ring = KeyRing {
            generations: vec![DataKey::generate("t1"), DataKey::generate("t2")],
        };
        let text = ring.render("nlp/bert");
        let back = KeyRing::parse(&text).unwrap();
        assert_eq!(back.generations.len(), 2);
        assert_eq!(
            back.current().recipient().to_string(),
            ring.current().recipient().to_string()
        );
        assert_eq!(back.generations[0].created, "t1");
    }

    #[test]
    fn ciphertext_size_is_within_bounds() {
        let key = DataKey::generate("t");
        for n in [0usize, 1, 65536, 200_000] {
            let mut out = Vec::new();
            encrypt_stream(&key.recipient(), &vec![7u8; n][..], &mut out).unwrap();
            assert!(
                plausible_ciphertext_size(n as u64, out.len() as u64),
                "n={n} len={}",
                out.len()
            );
            let mut back = Vec::new();
            decrypt_reader(&key, &out[..])
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back.len(), n);
        }
    }
}
