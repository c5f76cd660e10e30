//! Files into parts, parts into ciphertext, on every core.
//!
//! One reader walks the files in order and cuts them into parts
//! (content-defined by default, so an edit that shifts bytes moves only the
//! parts around it; fixed-size for measurement). A hasher thread takes the
//! whole file's SHA-256 in order, what `sha256sum` prints, while workers
//! hash each part, encrypt it to the model's data key and write it as one
//! git object. A part whose plaintext an earlier version already stored
//! under the same key is not encrypted again: it is that version's object.
//! Memory stays bounded by a few parts, whatever the file's size.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::crypto::stream::{Sealer, CHUNK};
use crate::crypto::DataKey;
use crate::model::manifest::{Part, Sha256Digest, PART_SIZE_RANGE};
use crate::ops::progress::Progress;
use crate::store::{LooseBlob, ObjectId, Store};
use crate::vault::VaultError;

/// The default largest part: 16 MiB of plaintext, a sixth of the 100 MB
/// per-object limit common git hosts set, and the largest cut the
/// content-defined chunker makes.
pub const DEFAULT_PART_SIZE: u64 = 16 << 20;

/// The largest part content-defined chunking can make.
pub const MAX_CDC_PART: u64 = fastcdc::v2020::MAXIMUM_MAX as u64;

/// How parts are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunking {
    /// Content-defined (FastCDC): cut points follow the bytes, so an
    /// insertion shifts only the parts around it. The default.
    Content,
    /// Every part `max` bytes but the last.
    Fixed,
}

/// Where to cut.
#[derive(Debug, Clone, Copy)]
pub struct Splitter {
    pub max: u64,
    pub chunking: Chunking,
}

impl Splitter {
    /// A splitter with parts of at most `max` bytes.
    pub fn new(max: u64, chunking: Chunking) -> Result<Self, String> {
        let limit = match chunking {
            Chunking::Content => MAX_CDC_PART,
            Chunking::Fixed => *PART_SIZE_RANGE.end(),
        };
        if max < *PART_SIZE_RANGE.start() || max > limit || !max.is_multiple_of(2) {
            return Err(format!(
                "part size {max} is out of range: an even number of bytes from {} to {limit}",
                PART_SIZE_RANGE.start()
            ));
        }
        Ok(Splitter { max, chunking })
    }

    /// The length of the next part at the start of `data`, or `None` when
    /// more bytes are needed to decide (`eof` says none will come).
    fn next_cut(&self, data: &[u8], eof: bool) -> Option<usize> {
        let max = self.max as usize;
        if data.is_empty() || (data.len() < max && !eof) {
            return None;
        }
        let window = &data[..data.len().min(max)];
        Some(match self.chunking {
            Chunking::Fixed => window.len(),
            Chunking::Content => {
                let avg = max / 4;
                let min = max / 16;
                let cdc = fastcdc::v2020::FastCDC::new(window, min, avg, max);
                cdc.cut(0, window.len()).1
            }
        })
    }
}

/// A part object an earlier version stored.
#[derive(Debug, Clone, Copy)]
pub struct Reusable {
    pub id: ObjectId,
    pub size: u64,
    pub blob_size: u64,
}

/// One input file.
pub struct PartInput<'a> {
    pub abs: &'a Path,
    /// Its path in the version, for progress.
    pub rel: &'a str,
    pub size: u64,
}

/// One stored file: its digest and its parts with their objects.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub sha256: Sha256Digest,
    pub size: u64,
    pub parts: Vec<(Part, ObjectId)>,
    /// Parts that reused an earlier version's object.
    pub reused: usize,
}

/// Buffers for parts' plaintext, lent out and given back, so that no part
/// allocates and the number of parts in flight (so memory) is bounded by
/// the pool's size: a borrower waits until a buffer comes back.
pub(crate) struct PartPool {
    home: SyncSender<Vec<u8>>,
    free: Mutex<Receiver<Vec<u8>>>,
}

impl PartPool {
    /// A pool of `n` buffers (grown to a part's size on first use).
    pub(crate) fn new(n: usize) -> Self {
        let (home, free) = sync_channel(n);
        for _ in 0..n {
            home.send(Vec::new()).expect("the pool has room");
        }
        PartPool {
            home,
            free: Mutex::new(free),
        }
    }

    /// An empty buffer, once one is free.
    pub(crate) fn take(&self) -> PartBuf {
        let data = self
            .free
            .lock()
            .expect("part pool")
            .recv()
            .expect("the pool holds its own sender");
        PartBuf {
            data,
            home: self.home.clone(),
        }
    }
}

/// One part's plaintext, lent from a [`PartPool`]; it goes back when it is
/// dropped (shared through an `Arc`: when its last holder lets go).
pub(crate) struct PartBuf {
    pub(crate) data: Vec<u8>,
    home: SyncSender<Vec<u8>>,
}

impl Drop for PartBuf {
    fn drop(&mut self) {
        let mut data = std::mem::take(&mut self.data);
        data.clear();
        let _ = self.home.try_send(data);
    }
}

struct Job {
    file: usize,
    index: usize,
    data: Arc<PartBuf>,
}

struct Done {
    file: usize,
    index: usize,
    part: Part,
    id: ObjectId,
    reused: bool,
}

fn io_err(path: &Path, e: io::Error) -> VaultError {
    VaultError::Io {
        path: path.display().to_string(),
        source: e,
    }
}

/// Encrypt one part to `recipient` and write it as a git object, each 64
/// KiB chunk sealed in `scratch` and hashed into the object id while it is
/// in cache: the ciphertext is never held whole.
fn store_part(
    objects: &Path,
    recipient: &age::x25519::Recipient,
    data: &[u8],
    digest: Sha256Digest,
    scratch: &mut Vec<u8>,
) -> Result<(Part, ObjectId), VaultError> {
    let sealer = Sealer::new(recipient).map_err(|e| VaultError::Decrypt {
        path: format!("part {digest}"),
        reason: e.to_string(),
    })?;
    let blob_size = sealer.sealed_len(data.len() as u64);
    // (`seal` uses the sealer up, so the size is taken first.)
    let mut blob = LooseBlob::create(objects, blob_size)?;
    sealer
        .seal(data, scratch, |c| blob.write(c).map_err(io::Error::other))
        .map_err(|e| io_err(Path::new("(ciphertext)"), e))?;
    let id = blob.finish()?;
    Ok((
        Part {
            sha256: digest,
            size: data.len() as u64,
            blob_size,
        },
        id,
    ))
}

/// Read `inputs` in order, cut them, and store every part; the result is
/// in input order.
pub fn store_files(
    store: &Store,
    inputs: &[PartInput<'_>],
    key: &DataKey,
    reuse: &BTreeMap<Sha256Digest, Reusable>,
    splitter: Splitter,
    progress: &dyn Progress,
) -> Result<Vec<StoredFile>, VaultError> {
    let objects = store.objects_dir();
    let recipient = key.recipient();
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(1);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<VaultError>> = Mutex::new(None);
    let fail = |e: VaultError| {
        failed.store(true, Ordering::Relaxed);
        let mut slot = first_error.lock().expect("error slot");
        if slot.is_none() {
            *slot = Some(e);
        }
    };
    let mut digests: Vec<Option<Sha256Digest>> = vec![None; inputs.len()];
    let mut done: Vec<Done> = Vec::new();
    // The parts in flight: one with each worker, one being hashed whole,
    // one being filled. Memory is that many parts, whatever the file size.
    let pool = PartPool::new(workers + 2);
    std::thread::scope(|s| {
        let (job_tx, job_rx) = channel::<Job>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (done_tx, done_rx) = channel::<Done>();
        for _ in 0..workers {
            let job_rx = job_rx.clone();
            let done_tx = done_tx.clone();
            let (objects, recipient, failed, fail) = (&objects, &recipient, &failed, &fail);
            s.spawn(move || {
                let mut scratch = Vec::with_capacity(CHUNK + 16);
                loop {
                    let job = {
                        let rx = job_rx.lock().expect("job queue");
                        rx.recv()
                    };
                    let Ok(job) = job else { break };
                    if failed.load(Ordering::Relaxed) {
                        continue;
                    }
                    let data = &job.data.data[..];
                    let digest = Sha256Digest(Sha256::digest(data).into());
                    let size = data.len() as u64;
                    let result = match reuse.get(&digest) {
                        Some(r) if r.size == size => Ok((
                            Part {
                                sha256: digest,
                                size,
                                blob_size: r.blob_size,
                            },
                            r.id,
                            true,
                        )),
                        _ => store_part(objects, recipient, data, digest, &mut scratch)
                            .map(|(p, id)| (p, id, false)),
                    };
                    match result {
                        Ok((part, id, reused)) => {
                            progress.advance(size);
                            let _ = done_tx.send(Done {
                                file: job.file,
                                index: job.index,
                                part,
                                id,
                                reused,
                            });
                        }
                        Err(e) => fail(e),
                    }
                }
            });
        }
        drop(done_tx);
        // The whole-file digests, in order, beside the workers.
        let (hash_tx, hash_rx) = channel::<Option<Arc<PartBuf>>>();
        let hasher = s.spawn(move || whole_file_digests(hash_rx));
        let read = read_and_cut(
            inputs,
            splitter,
            &failed,
            |file, index, bytes| {
                if index == 0 {
                    progress.file(inputs[file].rel);
                }
                let mut buf = pool.take();
                buf.data.extend_from_slice(bytes);
                let data = Arc::new(buf);
                hash_tx
                    .send(Some(data.clone()))
                    .map_err(|_| io::Error::other("hasher stopped"))?;
                job_tx
                    .send(Job { file, index, data })
                    .map_err(|_| io::Error::other("workers stopped"))
            },
            || {
                hash_tx
                    .send(None)
                    .map_err(|_| io::Error::other("hasher stopped"))
            },
        );
        drop(job_tx);
        drop(hash_tx);
        if let Err(e) = read {
            fail(e);
        }
        let whole = hasher.join().expect("hasher panicked");
        for (slot, d) in digests.iter_mut().zip(whole) {
            *slot = Some(d);
        }
        done.extend(done_rx);
    });
    if let Some(e) = first_error.into_inner().expect("error slot") {
        return Err(e);
    }
    let mut files: Vec<StoredFile> = inputs
        .iter()
        .zip(&digests)
        .map(|(i, d)| StoredFile {
            sha256: d.expect("every file was hashed"),
            size: i.size,
            parts: Vec::new(),
            reused: 0,
        })
        .collect();
    done.sort_by_key(|d| (d.file, d.index));
    // One digest, one object: a part that repeats takes its first object.
    let mut first: BTreeMap<Sha256Digest, (ObjectId, u64)> = BTreeMap::new();
    for d in done {
        let (id, blob_size) = *first
            .entry(d.part.sha256)
            .or_insert((d.id, d.part.blob_size));
        let f = &mut files[d.file];
        debug_assert_eq!(f.parts.len(), d.index);
        f.reused += usize::from(d.reused);
        f.parts.push((
            Part {
                blob_size,
                ..d.part
            },
            id,
        ));
    }
    Ok(files)
}

/// Digest each file from its parts, in order; `None` ends a file.
fn whole_file_digests(rx: Receiver<Option<Arc<PartBuf>>>) -> Vec<Sha256Digest> {
    let mut out = Vec::new();
    let mut h = Sha256::new();
    for msg in rx {
        match msg {
            Some(part) => h.update(&part.data[..]),
            None => out.push(Sha256Digest(std::mem::take(&mut h).finalize().into())),
        }
    }
    out
}

/// Read every input in order and hand each part to `emit`; `end_file`
/// after each file.
fn read_and_cut(
    inputs: &[PartInput<'_>],
    splitter: Splitter,
    failed: &AtomicBool,
    mut emit: impl FnMut(usize, usize, &[u8]) -> io::Result<()>,
    mut end_file: impl FnMut() -> io::Result<()>,
) -> Result<(), VaultError> {
    let max = splitter.max as usize;
    let mut buf: Vec<u8> = Vec::new();
    for (fi, input) in inputs.iter().enumerate() {
        let mut file = File::open(input.abs).map_err(|e| io_err(input.abs, e))?;
        // Two parts' worth, or the whole file and one byte to see its end:
        // a small file does not pay for zeroing a large buffer.
        let cap =
            (2 * max).min(usize::try_from(input.size).map_or(usize::MAX, |n| n.saturating_add(1)));
        buf.clear();
        let mut pos = 0usize;
        let mut eof = false;
        let mut total = 0u64;
        let mut index = 0usize;
        loop {
            if failed.load(Ordering::Relaxed) {
                return Ok(());
            }
            if !eof && buf.len() - pos < max {
                buf.drain(..pos);
                pos = 0;
                // Into the buffer's spare room, which is never zeroed.
                let want = cap - buf.len();
                buf.reserve_exact(want);
                let k = (&mut file)
                    .take(want as u64)
                    .read_to_end(&mut buf)
                    .map_err(|e| io_err(input.abs, e))?;
                eof = k < want;
                total += k as u64;
                if total > input.size {
                    return Err(changed(input.abs, "grew"));
                }
            }
            let Some(n) = splitter.next_cut(&buf[pos..], eof) else {
                break;
            };
            emit(fi, index, &buf[pos..pos + n]).map_err(|e| io_err(input.abs, e))?;
            index += 1;
            pos += n;
        }
        if total != input.size {
            return Err(changed(input.abs, "changed size"));
        }
        end_file().map_err(|e| io_err(input.abs, e))?;
    }
    Ok(())
}

fn changed(path: &Path, how: &str) -> VaultError {
    VaultError::Input {
        path: path.display().to_string(),
        reason: format!("the file {how} while it was being read; register it again when it is no longer being written"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cuts(s: Splitter, data: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut pos = 0;
        while let Some(n) = s.next_cut(&data[pos..], true) {
            out.push(n);
            pos += n;
        }
        out
    }

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn parts_cover_the_input_and_respect_the_maximum() {
        let data = noise(3 << 20, 1);
        for chunking in [Chunking::Content, Chunking::Fixed] {
            let s = Splitter::new(1 << 20, chunking).unwrap();
            let c = cuts(s, &data);
            assert_eq!(c.iter().sum::<usize>(), data.len());
            assert!(c.iter().all(|n| *n <= 1 << 20 && *n > 0), "{c:?}");
        }
    }

    #[test]
    fn an_insertion_moves_only_nearby_content_defined_parts() {
        let data = noise(8 << 20, 2);
        let mut edited = data[..3 << 20].to_vec();
        edited.extend_from_slice(b"a few inserted bytes");
        edited.extend_from_slice(&data[3 << 20..]);
        let s = Splitter::new(1 << 20, Chunking::Content).unwrap();
        let parts = |d: &[u8]| {
            let mut pos = 0;
            cuts(s, d)
                .into_iter()
                .map(|n| {
                    let p = Sha256Digest::of(&d[pos..pos + n]);
                    pos += n;
                    p
                })
                .collect::<std::collections::BTreeSet<_>>()
        };
        let (a, b) = (parts(&data), parts(&edited));
        let new = b.difference(&a).count();
        assert!(new <= 2, "{new} of {} parts changed", b.len());
        // Fixed-size parts all change after the insertion point.
        let f = Splitter::new(1 << 20, Chunking::Fixed).unwrap();
        let fixed = |d: &[u8]| {
            let mut pos = 0;
            cuts(f, d)
                .into_iter()
                .map(|n| {
                    let p = Sha256Digest::of(&d[pos..pos + n]);
                    pos += n;
                    p
                })
                .collect::<std::collections::BTreeSet<_>>()
        };
        assert!(fixed(&edited).difference(&fixed(&data)).count() >= 5);
    }

    #[test]
    fn part_sizes_out_of_range_are_refused() {
        assert!(Splitter::new(1000, Chunking::Content).is_err());
        assert!(Splitter::new(32 << 20, Chunking::Content).is_err());
        Splitter::new(32 << 20, Chunking::Fixed).unwrap();
    }
}
