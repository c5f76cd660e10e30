//! age v1 files for payload parts, sealed and opened with ring's
//! ChaCha20-Poly1305.
//!
//! Every byte of a model passes through here twice (add and pull), so the
//! payload cipher is the hot path. The age crate's writer allocates a new
//! vector for every 64 KiB chunk and runs RustCrypto's ChaCha20-Poly1305;
//! ring's is about twice as fast on the same CPU and works in place
//! (bench/README.md, "Why ring for the payload"). Everything else is age's
//! own: the file key is wrapped by the age crate's X25519 recipient and
//! unwrapped by its identity, stanzas are written and parsed by age-core,
//! and the header key and payload key come from age-core's HKDF, exactly as
//! the age v1 specification lays the file out:
//!
//! ```text
//! age-encryption.org/v1
//! -> X25519 <ephemeral share>
//! <wrapped file key>
//! --- <HMAC-SHA256 of the header up to "---", keyed by HKDF(file key, "header")>
//! <16-byte nonce><STREAM: 64 KiB chunks, each sealed with a 16-byte tag>
//! ```
//!
//! STREAM nonces are an 11-byte big-endian chunk counter and a last-chunk
//! flag. What [`Sealer`] writes, stock `age -d` and the age crate read, and
//! [`open`] reads what either of them writes for one recipient, grease
//! stanza included, with a header of at most [`MAX_HEADER`] bytes (tests
//! below and in tests/core_stock_tools.rs).

use std::io::{self, Read};

use age::secrecy::ExposeSecret;
use age_core::format::{FileKey, Stanza, FILE_KEY_BYTES};
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use super::{age_payload_size, CryptoError};

/// Plaintext bytes per STREAM chunk.
pub const CHUNK: usize = 64 * 1024;
/// The Poly1305 tag after each chunk.
const TAG: usize = 16;
/// The payload nonce between the header and the first chunk.
const NONCE: usize = 16;
/// The largest header [`open`] reads: mvault writes one X25519 stanza
/// (about 150 bytes); age adds one grease stanza of at most a few hundred.
/// A longer header (an age file to dozens of recipients) is refused.
pub const MAX_HEADER: usize = 8192;

const VERSION_LINE: &[u8] = b"age-encryption.org/v1\n";
const MAC_PREFIX: &[u8] = b"---";

fn age_err(what: impl Into<String>) -> CryptoError {
    CryptoError::Age(what.into())
}

fn header_mac_key(file_key: &FileKey) -> hmac::Key {
    let k = age_core::primitives::hkdf(&[], b"header", file_key.expose_secret());
    hmac::Key::new(hmac::HMAC_SHA256, &k)
}

fn payload_key(file_key: &FileKey, nonce: &[u8]) -> LessSafeKey {
    let k = age_core::primitives::hkdf(nonce, b"payload", file_key.expose_secret());
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &k).expect("a 32-byte ChaCha20 key"))
}

/// The STREAM nonce of chunk `counter`.
fn chunk_nonce(counter: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

/// How many STREAM chunks hold `plain` bytes: at least one, so that an
/// empty file still carries its last-chunk tag.
fn chunks_of(plain: u64) -> u64 {
    plain.div_ceil(CHUNK as u64).max(1)
}

/// One age file being written: a fresh file key wrapped to the recipient,
/// its header and payload nonce, and the payload key.
pub struct Sealer {
    head: Vec<u8>,
    key: LessSafeKey,
}

impl Sealer {
    /// A new file to `recipient`, with a fresh random file key and nonce.
    pub fn new(recipient: &age::x25519::Recipient) -> Result<Self, CryptoError> {
        let rng = SystemRandom::new();
        let file_key = FileKey::try_init_with_mut(|k: &mut [u8; FILE_KEY_BYTES]| {
            rng.fill(k)
                .map_err(|_| age_err("the system's random source failed"))
        })?;
        let (stanzas, _) = age::Recipient::wrap_file_key(recipient, &file_key)
            .map_err(|e| age_err(e.to_string()))?;
        let mut head = VERSION_LINE.to_vec();
        for s in &stanzas {
            head = cookie_factory::gen_simple(
                age_core::format::write::age_stanza(&s.tag, &s.args, &s.body),
                head,
            )
            .map_err(|e| age_err(format!("writing the age header: {e:?}")))?;
        }
        head.extend_from_slice(MAC_PREFIX);
        let mac = hmac::sign(&header_mac_key(&file_key), &head);
        head.push(b' ');
        head.extend_from_slice(
            base64::engine::general_purpose::STANDARD_NO_PAD
                .encode(mac.as_ref())
                .as_bytes(),
        );
        head.push(b'\n');
        let mut nonce = [0u8; NONCE];
        rng.fill(&mut nonce)
            .map_err(|_| age_err("the system's random source failed"))?;
        head.extend_from_slice(&nonce);
        let key = payload_key(&file_key, &nonce);
        Ok(Sealer { head, key })
    }

    /// The size of the whole age file for `plain` bytes of plaintext.
    pub fn sealed_len(&self, plain: u64) -> u64 {
        self.head.len() as u64 + age_payload_size(plain) - NONCE as u64
    }

    /// Seal `plain` and hand the file to `sink` in pieces, in order: the
    /// header with the nonce, then each chunk with its tag, sealed in
    /// `scratch` (kept by the caller, so that no chunk allocates). The
    /// sealer is used up: its payload key and nonces never seal twice.
    pub fn seal(
        self,
        plain: &[u8],
        scratch: &mut Vec<u8>,
        mut sink: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        sink(&self.head)?;
        let chunks = chunks_of(plain.len() as u64);
        for (i, start) in (0..chunks).zip((0..).step_by(CHUNK)) {
            let piece = &plain[start..plain.len().min(start + CHUNK)];
            scratch.clear();
            scratch.extend_from_slice(piece);
            let tag = self
                .key
                .seal_in_place_separate_tag(chunk_nonce(i, i + 1 == chunks), Aad::empty(), scratch)
                .map_err(|_| io::Error::other("ChaCha20-Poly1305 refused to seal a chunk"))?;
            scratch.extend_from_slice(tag.as_ref());
            sink(scratch)?;
        }
        Ok(())
    }
}

/// The parts of an age v1 header that decryption needs.
struct Header {
    stanzas: Vec<Stanza>,
    /// The header bytes the MAC covers: up to and including "---".
    mac_input_len: usize,
    mac: Vec<u8>,
    /// Where the payload nonce starts.
    nonce_at: usize,
}

/// Parse the header at the start of `bytes`, with age-core's stanza parser.
fn parse_header(bytes: &[u8]) -> Result<Header, CryptoError> {
    let not_age = |why: &str| age_err(format!("not an age v1 file: {why}"));
    let mut rest = bytes
        .strip_prefix(VERSION_LINE)
        .ok_or_else(|| not_age("no age-encryption.org/v1 line"))?;
    let mut stanzas = Vec::new();
    while rest.starts_with(b"-> ") {
        let (next, s) = age_core::format::read::age_stanza(rest)
            .map_err(|_| not_age("a recipient stanza does not parse"))?;
        stanzas.push(Stanza::from(s));
        rest = next;
    }
    if stanzas.is_empty() {
        return Err(not_age("no recipient stanza"));
    }
    let mac_input_len = bytes.len() - rest.len() + MAC_PREFIX.len();
    let line = rest
        .strip_prefix(b"--- ")
        .ok_or_else(|| not_age("no header MAC line"))?;
    let end = line
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| not_age("the header MAC line does not end"))?;
    let mac = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(&line[..end])
        .ok()
        .filter(|m| m.len() == 32)
        .ok_or_else(|| not_age("the header MAC is not 32 bytes of base64"))?;
    Ok(Header {
        stanzas,
        mac_input_len,
        mac,
        nonce_at: bytes.len() - line.len() + end + 1,
    })
}

/// Decrypt the age file in `input` with `identity`, appending its
/// plaintext to `out`. The file must hold exactly `plain` bytes: the chunk
/// that carries the last-chunk flag is the one `plain` implies, and any
/// byte after it is an error. Nothing unauthenticated is left in `out`: on
/// error it is truncated to where it was.
pub fn open(
    identity: &age::x25519::Identity,
    input: &mut impl Read,
    plain: u64,
    out: &mut Vec<u8>,
) -> Result<(), CryptoError> {
    let start = out.len();
    let result = open_into(identity, input, plain, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn open_into(
    identity: &age::x25519::Identity,
    input: &mut impl Read,
    plain: u64,
    out: &mut Vec<u8>,
) -> Result<(), CryptoError> {
    // 1. The header, from a bounded prefix: a huge "header" is refused,
    //    never buffered.
    let mut head = Vec::with_capacity(MAX_HEADER);
    input
        .by_ref()
        .take(MAX_HEADER as u64)
        .read_to_end(&mut head)?;
    let header = parse_header(&head).map_err(|e| {
        if head.len() == MAX_HEADER && !head.windows(4).any(|w| w == b"\n---") {
            age_err(format!(
                "the age header is longer than {MAX_HEADER} bytes; a part's header is one recipient"
            ))
        } else {
            e
        }
    })?;
    // 2. The file key, unwrapped by the age crate's own identity.
    let file_key = age::Identity::unwrap_stanzas(identity, &header.stanzas)
        .ok_or_else(|| age_err("no identity matched any of the recipients"))?
        .map_err(|e| age_err(e.to_string()))?;
    // 3. The header MAC, before anything in the header is believed (a
    //    swapped or altered stanza is caught here; a changed payload nonce
    //    gives another payload key, caught by the first chunk's tag).
    hmac::verify(
        &header_mac_key(&file_key),
        &head[..header.mac_input_len],
        &header.mac,
    )
    .map_err(|_| age_err("the header MAC does not verify: the header was altered"))?;
    let nonce = head
        .get(header.nonce_at..header.nonce_at + NONCE)
        .ok_or_else(|| age_err("the file ends before its payload nonce"))?;
    let key = payload_key(&file_key, nonce);
    // 4. Exactly the chunks `plain` implies, each authenticated before
    //    its bytes count; the last one with the last-chunk flag.
    let mut rest = io::Read::chain(&head[header.nonce_at + NONCE..], input);
    let chunks = chunks_of(plain);
    let total = usize::try_from(plain).map_err(|_| age_err("plaintext too large"))?;
    // Room for the plaintext and one chunk's tag (each tag is cut off
    // before the next chunk is read): no reallocation on the way. A size
    // that cannot be held is refused, not an abort.
    out.try_reserve(total + TAG)
        .map_err(|_| age_err(format!("cannot hold {plain} bytes of plaintext")))?;
    let mut left = total;
    for i in 0..chunks {
        let n = left.min(CHUNK);
        let at = out.len();
        // Into `out`'s spare room, which is never zeroed first.
        let got = rest.by_ref().take((n + TAG) as u64).read_to_end(out)?;
        if got != n + TAG {
            return Err(age_err("the ciphertext is truncated"));
        }
        key.open_in_place(
            chunk_nonce(i, i + 1 == chunks),
            Aad::empty(),
            &mut out[at..],
        )
        .map_err(|_| age_err("decryption error: a chunk does not authenticate"))?;
        out.truncate(at + n);
        left -= n;
    }
    let mut extra = [0u8; 1];
    if rest.read(&mut extra)? != 0 {
        return Err(age_err(
            "bytes follow the last chunk: the file is longer than its plaintext",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sealed(r: &age::x25519::Recipient, plain: &[u8]) -> Vec<u8> {
        let s = Sealer::new(r).unwrap();
        let len = s.sealed_len(plain.len() as u64);
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        s.seal(plain, &mut scratch, |c| {
            out.extend_from_slice(c);
            Ok(())
        })
        .unwrap();
        assert_eq!(out.len() as u64, len);
        out
    }

    fn by_age_crate(r: &age::x25519::Recipient, plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let enc =
            age::Encryptor::with_recipients(std::iter::once(r as &dyn age::Recipient)).unwrap();
        let mut w = enc.wrap_output(&mut out).unwrap();
        w.write_all(plain).unwrap();
        w.finish().unwrap();
        out
    }

    fn noise(n: usize, seed: u32) -> Vec<u8> {
        (0..n)
            .map(|i| ((i as u32 ^ seed).wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect()
    }

    const SIZES: [usize; 8] = [
        0,
        1,
        100,
        CHUNK - 1,
        CHUNK,
        CHUNK + 1,
        2 * CHUNK,
        3 * CHUNK + 7,
    ];

    #[test]
    fn what_it_seals_the_age_crate_opens() {
        let id = age::x25519::Identity::generate();
        for n in SIZES {
            let plain = noise(n, n as u32);
            let ct = sealed(&id.to_public(), &plain);
            let mut back = Vec::new();
            age::Decryptor::new(&ct[..])
                .unwrap()
                .decrypt(std::iter::once(&id as &dyn age::Identity))
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, plain, "size {n}");
        }
    }

    #[test]
    fn it_opens_what_the_age_crate_seals() {
        let id = age::x25519::Identity::generate();
        for n in SIZES {
            let plain = noise(n, 7 + n as u32);
            let ct = by_age_crate(&id.to_public(), &plain);
            let mut back = b"kept".to_vec();
            open(&id, &mut &ct[..], n as u64, &mut back).unwrap();
            assert_eq!(&back[..4], b"kept");
            assert_eq!(&back[4..], &plain[..], "size {n}");
        }
    }

    #[test]
    fn every_alteration_is_refused_and_leaves_nothing() {
        let id = age::x25519::Identity::generate();
        let plain = noise(CHUNK + 300, 3);
        let ct = sealed(&id.to_public(), &plain);
        // Flip one bit at a spread of offsets: header, MAC, nonce, each
        // chunk and each tag.
        for at in (0..ct.len()).step_by(997).chain([ct.len() - 1]) {
            let mut bad = ct.clone();
            bad[at] ^= 0x10;
            let mut out = b"x".to_vec();
            assert!(
                open(&id, &mut &bad[..], plain.len() as u64, &mut out).is_err(),
                "bit flip at {at} of {} was accepted",
                ct.len()
            );
            assert_eq!(out, b"x", "bit flip at {at} left plaintext behind");
        }
    }

    #[test]
    fn truncation_extension_and_a_wrong_size_are_refused() {
        let id = age::x25519::Identity::generate();
        let plain = noise(2 * CHUNK, 4);
        let ct = sealed(&id.to_public(), &plain);
        let n = plain.len() as u64;
        let mut out = Vec::new();
        // Dropping the whole last chunk leaves a file whose new last
        // chunk lacks the flag.
        assert!(open(
            &id,
            &mut &ct[..ct.len() - CHUNK - TAG],
            n - CHUNK as u64,
            &mut out
        )
        .is_err());
        assert!(open(&id, &mut &ct[..ct.len() - 1], n, &mut out).is_err());
        let mut longer = ct.clone();
        longer.push(0);
        assert!(open(&id, &mut &longer[..], n, &mut out).is_err());
        assert!(open(&id, &mut &ct[..], n + 1, &mut out).is_err());
        assert!(open(&id, &mut &ct[..], n - 1, &mut out).is_err());
        assert!(out.is_empty());
        open(&id, &mut &ct[..], n, &mut out).unwrap();
        assert_eq!(out, plain);
    }

    #[test]
    fn opening_a_part_does_not_reallocate_and_an_impossible_size_is_refused() {
        let id = age::x25519::Identity::generate();
        for n in [CHUNK, 3 * CHUNK + 5] {
            let ct = sealed(&id.to_public(), &noise(n, 5));
            let mut out = Vec::new();
            open(&id, &mut &ct[..], n as u64, &mut out).unwrap();
            assert!(out.capacity() <= n + TAG, "{} for {n}", out.capacity());
        }
        let ct = sealed(&id.to_public(), b"x");
        let e = open(&id, &mut &ct[..], 1 << 62, &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("cannot hold"), "{e}");
    }

    #[test]
    fn a_header_longer_than_the_limit_is_named() {
        let id = age::x25519::Identity::generate();
        let mut long = b"age-encryption.org/v1\n".to_vec();
        while long.len() < MAX_HEADER + 100 {
            long.extend_from_slice(b"-> X25519 AAAA\nAAAA\n");
        }
        let e = open(&id, &mut &long[..], 1, &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("longer than 8192"), "{e}");
    }

    #[test]
    fn another_key_is_told_apart() {
        let id = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let ct = sealed(&id.to_public(), b"weights");
        let e = open(&other, &mut &ct[..], 7, &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("no identity matched"), "{e}");
    }
}
