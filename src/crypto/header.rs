//! An age file's header, read without decrypting, with the age crates' own
//! parsers: which recipient stanzas it carries and where the payload starts.

use std::io::Cursor;

/// One recipient stanza of an age header: its type and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StanzaHead {
    pub tag: String,
    pub args: Vec<String>,
}

/// What the header of an age file says.
#[derive(Debug, Clone)]
pub struct AgeHeader {
    pub stanzas: Vec<StanzaHead>,
    /// Whether it is encrypted to a passphrase.
    pub scrypt: bool,
    /// Bytes before the payload: the header and the 16-byte payload nonce.
    pub payload_offset: u64,
}

/// Why bytes are not a readable age header.
#[derive(Debug, thiserror::Error)]
#[error("not an age v1 file: {0}")]
pub struct HeaderError(String);

/// Parse the header at the start of `file` (the whole file, or its first
/// few KiB: nothing after the nonce is read).
pub fn age_header(file: &[u8]) -> Result<AgeHeader, HeaderError> {
    let mut cursor = Cursor::new(file);
    let decryptor = age::Decryptor::new(&mut cursor).map_err(|e| HeaderError(e.to_string()))?;
    let scrypt = decryptor.is_scrypt();
    drop(decryptor);
    let payload_offset = cursor.position();
    // The stanzas, with age-core's stanza parser, after the version line.
    const VERSION: &[u8] = b"age-encryption.org/v1\n";
    let mut rest = file
        .strip_prefix(VERSION)
        .ok_or_else(|| HeaderError("no age-encryption.org/v1 line".into()))?;
    let mut stanzas = Vec::new();
    while rest.starts_with(b"-> ") {
        let (next, s) = age_core::format::read::age_stanza(rest)
            .map_err(|e| HeaderError(format!("stanza: {e:?}")))?;
        stanzas.push(StanzaHead {
            tag: s.tag.to_owned(),
            args: s.args.iter().map(|a| (*a).to_owned()).collect(),
        });
        rest = next;
    }
    Ok(AgeHeader {
        stanzas,
        scrypt,
        payload_offset,
    })
}
