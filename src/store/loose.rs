//! A part written as a loose object whose zlib stream uses "stored"
//! blocks: ciphertext does not compress, so the bytes are framed, not
//! deflated. The writer streams: its size is known up front (the
//! object header names it), the bytes arrive in pieces as they are
//! encrypted, and the object id (SHA-1) and zlib's Adler-32 are taken
//! over each piece while it is still in cache. Parts are at most a few
//! MiB, so git maps them whole without cost, and a push or `git gc` with
//! `pack.compression=0` copies them again without deflating.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use sha1::Digest as _;

use super::{ObjectId, StoreError};

/// The largest stored deflate block.
const BLOCK: u64 = 65535;

/// A blob being written into an object directory (safe to use from many
/// threads at once, each with its own writer).
pub struct LooseBlob {
    dir: PathBuf,
    tmp: tempfile::NamedTempFile,
    out: BufWriter<File>,
    id_hash: sha1::Sha1,
    adler: simd_adler32::Adler32,
    /// Bytes of the zlib stream's content (object header and blob) still
    /// to come, and of them in the current stored block.
    left: u64,
    left_in_block: u64,
}

impl LooseBlob {
    /// A blob of exactly `size` bytes, to be handed over by [`LooseBlob::write`].
    pub fn create(objects_dir: &Path, size: u64) -> Result<Self, StoreError> {
        let header = format!("blob {size}\0");
        let tmp = tempfile::Builder::new()
            .prefix("tmp_obj_mvault_")
            .tempfile_in(objects_dir)?;
        let out = BufWriter::with_capacity(1 << 18, tmp.as_file().try_clone()?);
        let mut blob = LooseBlob {
            dir: objects_dir.to_owned(),
            tmp,
            out,
            id_hash: sha1::Sha1::new(),
            adler: simd_adler32::Adler32::new(),
            left: header.len() as u64 + size,
            left_in_block: 0,
        };
        // zlib header: deflate, 32K window, fastest.
        blob.out.write_all(&[0x78, 0x01])?;
        blob.put(header.as_bytes())?;
        Ok(blob)
    }

    /// The next bytes of the blob.
    pub fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.put(data)
    }

    fn put(&mut self, mut data: &[u8]) -> Result<(), StoreError> {
        if data.len() as u64 > self.left {
            return Err(StoreError::Git(format!(
                "a loose blob was handed {} bytes more than its size",
                data.len() as u64 - self.left
            )));
        }
        self.id_hash.update(data);
        self.adler.write(data);
        while !data.is_empty() {
            if self.left_in_block == 0 {
                // A new stored block: final flag, length, its complement.
                let len = self.left.min(BLOCK);
                let last = len == self.left;
                let len16 = len as u16;
                self.out.write_all(&[u8::from(last)])?;
                self.out.write_all(&len16.to_le_bytes())?;
                self.out.write_all(&(!len16).to_le_bytes())?;
                self.left_in_block = len;
            }
            let take = data.len().min(self.left_in_block as usize);
            self.out.write_all(&data[..take])?;
            data = &data[take..];
            self.left_in_block -= take as u64;
            self.left -= take as u64;
        }
        Ok(())
    }

    /// Close the zlib stream and move the object to where its id says; an
    /// object already there is left as it is.
    pub fn finish(mut self) -> Result<ObjectId, StoreError> {
        if self.left != 0 {
            return Err(StoreError::Git(format!(
                "a loose blob ended {} bytes short of its size",
                self.left
            )));
        }
        self.out.write_all(&self.adler.finish().to_be_bytes())?;
        self.out.flush()?;
        drop(self.out);
        let id = ObjectId::from_bytes_or_panic(&self.id_hash.finalize());
        let hex = id.to_string();
        let dir = self.dir.join(&hex[..2]);
        let path = dir.join(&hex[2..]);
        if path.exists() {
            return Ok(id);
        }
        std::fs::create_dir_all(&dir)?;
        match self.tmp.persist_noclobber(&path) {
            Ok(_) => Ok(id),
            // Another writer stored the same object first.
            Err(_) if path.exists() => Ok(id),
            Err(e) => Err(StoreError::Io(e.error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_written_in_pieces_are_what_git_reads() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .arg("--git-dir")
                .arg(dir.path())
                .args(args)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .output()
                .expect("git runs (apt-get install git)");
            assert!(out.status.success(), "git {args:?}: {out:?}");
            out.stdout
        };
        git(&["init", "-q", "--bare"]);
        let objects = dir.path().join("objects");
        // Around the stored-block boundaries: the header "blob N\0" is 11
        // bytes for these sizes, so 65524 fills the first block exactly.
        for n in [0usize, 1, 65523, 65524, 65525, 131058, 131059, 200_000] {
            let content: Vec<u8> = (0..n).map(|i| (i * 7 + n) as u8).collect();
            let mut blob = LooseBlob::create(&objects, n as u64).unwrap();
            for piece in content.chunks(40_000) {
                blob.write(piece).unwrap();
            }
            let id = blob.finish().unwrap();
            assert_eq!(
                id,
                gix::objs::compute_hash(gix::hash::Kind::Sha1, gix::object::Kind::Blob, &content)
                    .unwrap()
            );
            assert_eq!(
                git(&["cat-file", "blob", &id.to_string()]),
                content,
                "n={n}"
            );
        }
        git(&["fsck", "--strict", "--unreachable"]);
    }

    #[test]
    fn a_blob_of_the_wrong_length_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut blob = LooseBlob::create(dir.path(), 3).unwrap();
        assert!(blob.write(b"four").is_err());
        let mut short = LooseBlob::create(dir.path(), 3).unwrap();
        short.write(b"ab").unwrap();
        assert!(short.finish().is_err());
    }
}
