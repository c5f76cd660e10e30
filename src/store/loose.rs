//! A part written as a loose object whose zlib stream uses "stored"
//! blocks: ciphertext does not compress, so the bytes are framed, not
//! deflated, and the object id is the only hash taken. Parts are at most a
//! few MiB, so git maps them whole without cost, and a push or `git gc`
//! with `pack.compression=0` copies them again without deflating.

use std::io::Write;
use std::path::Path;

use sha1::Digest as _;

use super::{ObjectId, StoreError};

/// Write `content` as a blob into `objects_dir` (safe to call from many
/// threads at once); an object already present is left as it is.
pub fn write_loose_blob(objects_dir: &Path, content: &[u8]) -> Result<ObjectId, StoreError> {
    let header = format!("blob {}\0", content.len());
    let mut id_hash = sha1::Sha1::new();
    id_hash.update(header.as_bytes());
    id_hash.update(content);
    let id = ObjectId::from_bytes_or_panic(&id_hash.finalize());
    let hex = id.to_string();
    let dir = objects_dir.join(&hex[..2]);
    let path = dir.join(&hex[2..]);
    if path.exists() {
        return Ok(id);
    }
    std::fs::create_dir_all(&dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix("tmp_obj_mvault_")
        .tempfile_in(&dir)?;
    {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        // zlib header: deflate, 32K window, fastest.
        out.write_all(&[0x78, 0x01])?;
        let mut adler = simd_adler32::Adler32::new();
        let mut rest: &[u8] = header.as_bytes();
        let mut body = content;
        // Stored blocks of up to 65535 bytes over header ‖ content.
        let mut block = Vec::with_capacity(65535);
        loop {
            block.clear();
            let take_h = rest.len().min(65535);
            block.extend_from_slice(&rest[..take_h]);
            rest = &rest[take_h..];
            let take_b = body.len().min(65535 - block.len());
            block.extend_from_slice(&body[..take_b]);
            body = &body[take_b..];
            let last = rest.is_empty() && body.is_empty();
            let len = block.len() as u16;
            out.write_all(&[u8::from(last)])?;
            out.write_all(&len.to_le_bytes())?;
            out.write_all(&(!len).to_le_bytes())?;
            out.write_all(&block)?;
            adler.write(&block);
            if last {
                break;
            }
        }
        out.write_all(&adler.finish().to_be_bytes())?;
        out.flush()?;
    }
    match tmp.persist_noclobber(&path) {
        Ok(_) => Ok(id),
        // Another writer stored the same object first.
        Err(_) if path.exists() => Ok(id),
        Err(e) => Err(StoreError::Io(e.error)),
    }
}
