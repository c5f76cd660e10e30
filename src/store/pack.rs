//! One blob written as a one-object pack with its index, so that git
//! reads it through bounded pack windows instead of mapping a loose file
//! whole.

use std::io::{self, Read};
use std::path::Path;

use gix::ObjectId;

use super::StoreError;

/// Blobs this large or larger are written as packs.
pub const PACK_THRESHOLD: u64 = 1 << 20;

/// Write one blob as a pack with its index, streaming: the pack holds one
/// object, zlib "stored" blocks (ciphertext does not compress), so the
/// bytes are copied once while the object id, the pack checksum, the
/// entry's CRC-32 and the zlib Adler-32 are computed on the way.
pub(super) fn write_blob_pack(
    objects_dir: &Path,
    size: u64,
    reader: &mut dyn Read,
) -> Result<ObjectId, StoreError> {
    use std::io::Write;
    let pack_dir = objects_dir.join("pack");
    std::fs::create_dir_all(&pack_dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix("tmp_pack_mvault_")
        .tempfile_in(&pack_dir)?;
    // Plain SHA-1 (as git's own "unsafe" hash for pack checksums): the
    // bytes are ciphertext mvault produced, not attacker-chosen input.
    use sha1::Digest as _;
    let mut pack_hash = sha1::Sha1::new();
    let mut id_hash = sha1::Sha1::new();
    id_hash.update(format!("blob {size}\0").as_bytes());
    let mut crc = crc32fast::Hasher::new();
    let mut out = io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
    let mut emit = |bytes: &[u8],
                    in_entry: bool,
                    out: &mut io::BufWriter<&mut std::fs::File>|
     -> io::Result<()> {
        pack_hash.update(bytes);
        if in_entry {
            crc.update(bytes);
        }
        out.write_all(bytes)
    };
    // Pack header: signature, version 2, one object.
    let mut header = Vec::with_capacity(12);
    header.extend_from_slice(b"PACK");
    header.extend_from_slice(&2u32.to_be_bytes());
    header.extend_from_slice(&1u32.to_be_bytes());
    emit(&header, false, &mut out)?;
    // Entry header: type 3 (blob) and the size, little-endian base-128.
    let mut entry = Vec::with_capacity(10);
    let mut n = size;
    let mut first = 0x30 | (n & 0x0f) as u8;
    n >>= 4;
    if n > 0 {
        first |= 0x80;
    }
    entry.push(first);
    while n > 0 {
        let mut b = (n & 0x7f) as u8;
        n >>= 7;
        if n > 0 {
            b |= 0x80;
        }
        entry.push(b);
    }
    // zlib header: deflate, 32K window, no compression level hint.
    entry.extend_from_slice(&[0x78, 0x01]);
    emit(&entry, true, &mut out)?;
    let mut adler = simd_adler32::Adler32::new();

    let mut buf = vec![0u8; 65535];
    let mut left = size;
    loop {
        let want = usize::try_from(left.min(65535)).unwrap_or(65535);
        let mut filled = 0;
        while filled < want {
            let k = reader.read(&mut buf[filled..want])?;
            if k == 0 {
                break;
            }
            filled += k;
        }
        if filled < want {
            return Err(StoreError::Git(format!(
                "blob stream ended after {} of {size} bytes",
                size - left + filled as u64
            )));
        }
        left -= filled as u64;
        // A stored block: final flag, LEN and its complement.
        let len = filled as u16;
        let mut block = [0u8; 5];
        block[0] = u8::from(left == 0);
        block[1..3].copy_from_slice(&len.to_le_bytes());
        block[3..5].copy_from_slice(&(!len).to_le_bytes());
        emit(&block, true, &mut out)?;
        emit(&buf[..filled], true, &mut out)?;
        id_hash.update(&buf[..filled]);
        adler.write(&buf[..filled]);
        if left == 0 {
            break;
        }
    }
    emit(&adler.finish().to_be_bytes(), true, &mut out)?;
    let entry_crc = crc.finalize();
    let pack_sum = ObjectId::from_bytes_or_panic(&pack_hash.finalize());
    out.write_all(pack_sum.as_bytes())?;
    out.flush()?;
    drop(out);
    let id = ObjectId::from_bytes_or_panic(&id_hash.finalize());
    // Index v2 for one object at offset 12.
    let mut idx = Vec::with_capacity(1100);
    idx.extend_from_slice(&[0xff, b't', b'O', b'c']);
    idx.extend_from_slice(&2u32.to_be_bytes());
    let first_byte = id.as_bytes()[0] as usize;
    for i in 0..256 {
        idx.extend_from_slice(&u32::from(i >= first_byte).to_be_bytes());
    }
    idx.extend_from_slice(id.as_bytes());
    idx.extend_from_slice(&entry_crc.to_be_bytes());
    idx.extend_from_slice(&12u32.to_be_bytes());
    idx.extend_from_slice(pack_sum.as_bytes());
    let idx_sum = sha1::Sha1::digest(&idx);
    idx.extend_from_slice(&idx_sum);
    let base = pack_dir.join(format!("pack-{pack_sum}"));
    let idx_tmp = tempfile::Builder::new()
        .prefix("tmp_idx_mvault_")
        .tempfile_in(&pack_dir)?;
    std::fs::write(idx_tmp.path(), &idx)?;
    // git sees a pack once its index exists: the pack goes in place first.
    tmp.persist(base.with_extension("pack"))
        .map_err(|e| StoreError::Io(e.error))?;
    idx_tmp
        .persist(base.with_extension("idx"))
        .map_err(|e| StoreError::Io(e.error))?;
    Ok(id)
}

