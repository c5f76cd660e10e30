//! Streaming reads of blobs with flat memory: loose objects and whole pack
//! entries are inflated as they are read, anything else comes through
//! `git cat-file --batch`.

use std::io::{self, Read};
use std::process::{Child, ChildStdout, Command, Stdio};

use super::{git_err, ObjectId, Store, StoreError};

impl Store {
    /// The first `max` bytes of a blob (all of it when shorter), read
    /// without inflating the rest: a loose object or a pack entry stored
    /// whole is inflated only as far as needed, so the cost does not grow
    /// with the blob. A deltified entry is read whole (git never deltifies
    /// mvault's blobs; a pusher who does pays for it).
    pub fn blob_prefix(&self, id: ObjectId, max: usize) -> Result<Vec<u8>, StoreError> {
        let mut reader = match self.loose_reader(id)? {
            Some(r) => r,
            None => match self.packed_reader(id)? {
                Some(r) => r,
                None => {
                    let (kind, mut data) = self.object(id)?;
                    if kind != gix::object::Kind::Blob {
                        return Err(StoreError::Git(format!("{id} is a {kind}, not a blob")));
                    }
                    data.truncate(max);
                    return Ok(data);
                }
            },
        };
        let mut out = Vec::with_capacity(max.min(1 << 16));
        (&mut reader).take(max as u64).read_to_end(&mut out)?;
        Ok(out)
    }

    /// A reader of loose object `id` when it is one and a blob.
    fn loose_reader(&self, id: ObjectId) -> Result<Option<BlobReader>, StoreError> {
        let hex = id.to_string();
        let loose = self
            .repo
            .objects
            .store_ref()
            .path()
            .join(&hex[..2])
            .join(&hex[2..]);
        let Ok(file) = std::fs::File::open(&loose) else {
            return Ok(None);
        };
        let mut file = io::BufReader::with_capacity(1 << 16, file);
        let mut state = gix::zlib::Decompress::new();
        let mut header = [0u8; 32];
        let mut filled = 0;
        // Inflate byte by byte up to the NUL that ends "blob <size>".
        while filled < header.len() {
            let n = gix::zlib::stream::inflate::read(
                &mut file,
                &mut state,
                &mut header[filled..filled + 1],
            )?;
            if n == 0 {
                break;
            }
            filled += 1;
            if header[filled - 1] == 0 {
                break;
            }
        }
        let text = String::from_utf8_lossy(&header[..filled.saturating_sub(1)]).into_owned();
        let size = text
            .strip_prefix("blob ")
            .and_then(|n| n.parse::<u64>().ok());
        let Some(remaining) = size.filter(|_| header[filled.saturating_sub(1)] == 0) else {
            return Err(StoreError::Git(format!(
                "loose object {id} is not a blob (header {text:?})"
            )));
        };
        Ok(Some(BlobReader::Inflate {
            file,
            state,
            remaining,
        }))
    }

    /// A reader of `id` inflated from the pack that holds it, when a pack
    /// index names it and the entry is a whole (not deltified) blob.
    fn packed_reader(&self, id: ObjectId) -> Result<Option<BlobReader>, StoreError> {
        use gix::odb::pack;
        use gix::odb::store::structure::Record;
        use std::io::{Seek, SeekFrom};
        let records = self.repo.objects.store_ref().structure().map_err(git_err)?;
        for record in records {
            let Record::Index { path, .. } = record else {
                continue;
            };
            let Ok(index) = pack::index::File::at(&path, gix::hash::Kind::Sha1) else {
                continue;
            };
            let Some(at) = index.lookup(id) else {
                continue;
            };
            let offset = index.pack_offset_at_index(at);
            let mut file = std::fs::File::open(path.with_extension("pack"))?;
            file.seek(SeekFrom::Start(offset))?;
            let mut head = [0u8; 32];
            let mut n = 0;
            while n < head.len() {
                match file.read(&mut head[n..])? {
                    0 => break,
                    k => n += k,
                }
            }
            let entry = pack::data::Entry::from_bytes(&head[..n], offset, gix::hash::Kind::Sha1)
                .map_err(git_err)?;
            if entry.header != pack::data::entry::Header::Blob {
                return Ok(None);
            }
            file.seek(SeekFrom::Start(entry.data_offset))?;
            return Ok(Some(BlobReader::Inflate {
                file: io::BufReader::with_capacity(1 << 16, file),
                state: gix::zlib::Decompress::new(),
                remaining: entry.decompressed_size,
            }));
        }
        Ok(None)
    }

    /// Stream a blob's bytes with flat memory. A loose object is inflated
    /// from its file as it is read; anything else comes through
    /// `git cat-file --batch` with small pack windows (plain
    /// `git cat-file blob` loads the whole object, and git maps whole loose
    /// files, which counts a large blob into its resident memory).
    pub fn blob_reader(&self, id: ObjectId) -> Result<BlobReader, StoreError> {
        if let Some(r) = self.loose_reader(id)? {
            return Ok(r);
        }
        if let Some(r) = self.packed_reader(id)? {
            return Ok(r);
        }
        let mut child = Command::new("git")
            .args([
                "-c",
                "core.packedGitWindowSize=8m",
                "-c",
                "core.packedGitLimit=32m",
                "cat-file",
                "--batch",
            ])
            .current_dir(self.command_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(StoreError::NoGit)?;
        {
            let mut stdin = child.stdin.take().expect("piped");
            io::Write::write_all(&mut stdin, format!("{id}\n").as_bytes())?;
        }
        let mut stdout = child.stdout.take().expect("piped");
        let mut header = Vec::new();
        let mut byte = [0u8; 1];
        while header.len() < 256 {
            if stdout.read(&mut byte)? == 0 || byte[0] == b'\n' {
                break;
            }
            header.push(byte[0]);
        }
        let header = String::from_utf8_lossy(&header).into_owned();
        let mut parts = header.split(' ');
        let size = match (parts.next(), parts.next(), parts.next()) {
            (Some(_), Some("blob"), Some(size)) => size.trim().parse().ok(),
            _ => None,
        };
        let Some(remaining) = size else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(StoreError::Git(format!(
                "blob {id}: git cat-file answered {header:?}"
            )));
        };
        Ok(BlobReader::Batch {
            child,
            stdout,
            remaining,
        })
    }
}

/// A streaming reader of one blob.
pub enum BlobReader {
    /// Inflating a loose object file or a whole pack entry.
    Inflate {
        file: io::BufReader<std::fs::File>,
        state: gix::zlib::Decompress,
        remaining: u64,
    },
    /// Reading from `git cat-file --batch`.
    Batch {
        child: Child,
        stdout: ChildStdout,
        remaining: u64,
    },
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let remaining = match self {
            BlobReader::Inflate { remaining, .. } | BlobReader::Batch { remaining, .. } => {
                *remaining
            }
        };
        if remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        let n = match self {
            BlobReader::Inflate { file, state, .. } => {
                gix::zlib::stream::inflate::read(file, state, &mut buf[..want])?
            }
            BlobReader::Batch { stdout, .. } => stdout.read(&mut buf[..want])?,
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the object ended before its declared size",
            ));
        }
        match self {
            BlobReader::Inflate { remaining, .. } | BlobReader::Batch { remaining, .. } => {
                *remaining -= n as u64
            }
        }
        Ok(n)
    }
}

impl Drop for BlobReader {
    fn drop(&mut self) {
        if let BlobReader::Batch { child, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
