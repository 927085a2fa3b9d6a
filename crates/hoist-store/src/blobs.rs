//! Blob writing: every blob is written under `ingest/`, hashed while it
//! flows, fsync'd, and renamed to `blobs/<alg>/<hex>` only once its digest is
//! known and (when announced) matched.

use crate::resume::{PartialBlob, ResumableBlob};
use crate::{Store, StoreError};
use hoist_oci::{Algorithm, Digest, Digester};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A blob being written to `ingest/`; hashing as bytes arrive.
pub struct BlobWriter {
    file: Option<File>,
    path: PathBuf,
    hasher: Hasher,
    size: u64,
    direct: Direct,
}

/// A second descriptor on the blob, opened with `O_DIRECT`: streamed chunks
/// go straight to the disk instead of through freshly allocated page cache,
/// which on some machines costs more CPU than the copy itself.
enum Direct {
    Untried,
    Open(File),
    Unavailable,
}

/// Writes at or above this size are hashed on a second thread, overlapping
/// hashing with the write; smaller ones are not worth the hand-off.
const OFFLOAD_MIN: usize = 256 << 10;
/// Bytes between writeback hints.
const WRITEBACK_STEP: u64 = 32 << 20;
/// Buffers in flight to the hashing thread (bounds memory to this × chunk size).
const OFFLOAD_DEPTH: usize = 16;

/// Bytes per page: the alignment `O_DIRECT` asks of buffers, offsets and lengths.
const PAGE: usize = 4096;

#[repr(C, align(4096))]
#[derive(Clone, Copy)]
struct Page([u8; PAGE]);

/// A page-aligned chunk of a blob: what `O_DIRECT` writes need, and what
/// circulates between a blob writer and its hashing thread.
pub struct ChunkBuf {
    pages: Vec<Page>,
    len: usize,
}

impl ChunkBuf {
    fn with_capacity(bytes: usize) -> Self {
        ChunkBuf {
            pages: vec![Page([0; PAGE]); bytes.div_ceil(PAGE)],
            len: 0,
        }
    }

    fn capacity(&self) -> usize {
        self.pages.len() * PAGE
    }

    /// The whole buffer, to read the next chunk into.
    pub fn space(&mut self) -> &mut [u8] {
        // SAFETY: `Page` is a plain byte array whose size equals its
        // alignment, so the pages are one contiguous run of initialised bytes.
        unsafe {
            std::slice::from_raw_parts_mut(self.pages.as_mut_ptr().cast::<u8>(), self.capacity())
        }
    }

    /// Marks the first `n` bytes as the chunk's content.
    pub fn set_len(&mut self, n: usize) {
        self.len = n.min(self.capacity());
    }

    /// The chunk's content.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: as in `space`; `len` never exceeds the capacity.
        unsafe { std::slice::from_raw_parts(self.pages.as_ptr().cast::<u8>(), self.len) }
    }
}

/// Hashes inline, or on a helper thread once big writes arrive.
enum Hasher {
    Inline(Digester),
    Thread {
        tx: std::sync::mpsc::SyncSender<ChunkBuf>,
        back: std::sync::mpsc::Receiver<ChunkBuf>,
        handle: std::thread::JoinHandle<Digester>,
        spare: usize,
    },
    Done,
}

impl Hasher {
    /// Moves hashing to a helper thread (once).
    fn offload(&mut self) {
        if let Hasher::Inline(d) = self {
            let d = std::mem::replace(d, Digester::new(Algorithm::Sha256));
            let (tx, rx) = std::sync::mpsc::sync_channel::<ChunkBuf>(OFFLOAD_DEPTH);
            let (back_tx, back) = std::sync::mpsc::channel::<ChunkBuf>();
            let handle = std::thread::spawn(move || {
                let mut d = d;
                for chunk in rx {
                    d.update(chunk.as_slice());
                    let _ = back_tx.send(chunk);
                }
                d
            });
            *self = Hasher::Thread {
                tx,
                back,
                handle,
                spare: 0,
            };
        }
    }

    /// A buffer of at least `len` bytes the hashing thread is done with, or a
    /// new one while few are in flight.
    fn buffer(&mut self, len: usize) -> ChunkBuf {
        let reused = match self {
            Hasher::Thread { back, spare, .. } => match back.try_recv() {
                Ok(c) => Some(c),
                Err(_) if *spare < OFFLOAD_DEPTH + 2 => {
                    *spare += 1;
                    None
                }
                Err(_) => back.recv().ok(),
            },
            _ => None,
        };
        match reused {
            Some(c) if c.capacity() >= len => c,
            _ => ChunkBuf::with_capacity(len),
        }
    }

    /// Hands a filled buffer over without copying it.
    fn send(&mut self, chunk: ChunkBuf) {
        match self {
            // A send fails only if the thread died; finish() then reports it.
            Hasher::Thread { tx, .. } => {
                let _ = tx.send(chunk);
            }
            Hasher::Inline(d) => d.update(chunk.as_slice()),
            Hasher::Done => {}
        }
    }

    fn update(&mut self, buf: &[u8]) {
        if let Hasher::Inline(d) = self {
            if buf.len() < OFFLOAD_MIN {
                d.update(buf);
                return;
            }
        }
        self.offload();
        let mut chunk = self.buffer(buf.len());
        chunk.space()[..buf.len()].copy_from_slice(buf);
        chunk.set_len(buf.len());
        self.send(chunk);
    }

    fn finish(self) -> Result<Digest, StoreError> {
        match self {
            Hasher::Inline(d) => Ok(d.finish()),
            Hasher::Thread { tx, handle, .. } => {
                drop(tx);
                handle
                    .join()
                    .map(Digester::finish)
                    .map_err(|_| StoreError::Corrupt("hashing thread panicked".into()))
            }
            Hasher::Done => Err(StoreError::Corrupt("blob writer finished twice".into())),
        }
    }
}

/// A fully written, fsync'd blob waiting in `ingest/` to be committed.
#[derive(Debug)]
pub struct StagedBlob {
    path: PathBuf,
    digest: Digest,
    size: u64,
    /// The writer's locked descriptor: the file is live until committed or dropped.
    _lock: Option<File>,
}

impl StagedBlob {
    pub(crate) fn new(path: PathBuf, digest: Digest, size: u64, lock: Option<File>) -> Self {
        crate::live::register(&path);
        StagedBlob {
            path,
            digest,
            size,
            _lock: lock,
        }
    }

    /// The digest of the staged bytes.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The staged size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Where the staged bytes are.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the staged bytes to `dest` unless a blob is already there.
    pub(crate) fn commit_to(self, dest: &Path) -> Result<(), StoreError> {
        if !dest.exists() {
            std::fs::rename(&self.path, dest).map_err(|e| StoreError::io(dest, e))?;
            crate::live::unregister(&self.path);
        }
        Ok(())
    }

    /// Checks the staged bytes against an announced digest and size.
    pub fn verify(
        &self,
        what: &str,
        expected: &Digest,
        size: Option<u64>,
    ) -> Result<(), StoreError> {
        if &self.digest != expected {
            return Err(StoreError::DigestMismatch {
                what: what.to_owned(),
                expected: expected.clone(),
                actual: self.digest.clone(),
            });
        }
        match size {
            Some(s) if s != self.size => Err(StoreError::SizeMismatch {
                what: what.to_owned(),
                expected: s,
                actual: self.size,
            }),
            _ => Ok(()),
        }
    }
}

impl Drop for StagedBlob {
    fn drop(&mut self) {
        // An uncommitted staged blob is garbage; committing renames it away first.
        let _ = std::fs::remove_file(&self.path);
        crate::live::unregister(&self.path);
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_file(buf)?;
        self.hasher.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl BlobWriter {
    fn write_file(&mut self, buf: &[u8]) -> io::Result<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("blob writer already finished"))?;
        // Positioned: chunks may also arrive through the O_DIRECT descriptor.
        file.write_all_at(buf, self.size)?;
        let before = self.size;
        self.size += buf.len() as u64;
        // Start writeback of each full step behind us, so finish()'s fsync
        // waits for little more than the tail.
        if before / WRITEBACK_STEP != self.size / WRITEBACK_STEP {
            let start = (self.size / WRITEBACK_STEP - 1) * WRITEBACK_STEP;
            use std::os::fd::AsRawFd;
            // SAFETY: a writeback hint on a file we own; errors only cost speed.
            unsafe {
                libc::sync_file_range(
                    file.as_raw_fd(),
                    start as libc::off64_t,
                    WRITEBACK_STEP as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
        }
        Ok(())
    }

    /// A page-aligned buffer of `len` bytes to read the next chunk into; give
    /// it back with [`BlobWriter::write_buffer`]. Buffers circulate between
    /// the writer and the hashing thread, so a streamed blob is never copied
    /// for hashing.
    pub fn buffer(&mut self, len: usize) -> ChunkBuf {
        self.hasher.offload();
        self.hasher.buffer(len)
    }

    /// Writes the chunk and hands it to the hashing thread. Whole pages at a
    /// page-aligned offset bypass the page cache (`O_DIRECT`) where the
    /// filesystem allows it.
    pub fn write_buffer(&mut self, buf: ChunkBuf) -> io::Result<()> {
        let data = buf.as_slice();
        let aligned = self.size.is_multiple_of(PAGE as u64)
            && data.len().is_multiple_of(PAGE)
            && !data.is_empty();
        if aligned {
            let at = self.size;
            if let Some(d) = self.direct_fd() {
                match d.write_all_at(data, at) {
                    Ok(()) => {
                        self.size += data.len() as u64;
                        self.hasher.send(buf);
                        return Ok(());
                    }
                    // Refused at write time (some filesystems): buffered from here on.
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                        self.direct = Direct::Unavailable;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        self.write_file(data)?;
        self.hasher.send(buf);
        Ok(())
    }

    fn direct_fd(&mut self) -> Option<&File> {
        if let Direct::Untried = self.direct {
            use std::os::unix::fs::OpenOptionsExt;
            self.direct = match File::options()
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open(&self.path)
            {
                Ok(f) => Direct::Open(f),
                Err(_) => Direct::Unavailable,
            };
        }
        match &self.direct {
            Direct::Open(f) => Some(f),
            _ => None,
        }
    }

    /// Where the bytes are being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Ends the write: fsyncs and returns the staged blob with its digest.
    pub fn finish(mut self) -> Result<StagedBlob, StoreError> {
        let file = self
            .file
            .take()
            .ok_or_else(|| StoreError::Corrupt("blob writer finished twice".into()))?;
        // fdatasync is per inode: it covers what the O_DIRECT descriptor wrote too.
        file.sync_data()
            .map_err(|e| StoreError::io(&self.path, e))?;
        self.direct = Direct::Unavailable;
        let digest = std::mem::replace(&mut self.hasher, Hasher::Done).finish()?;
        Ok(StagedBlob::new(
            std::mem::take(&mut self.path),
            digest,
            self.size,
            Some(file),
        ))
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
            crate::live::unregister(&self.path);
        }
    }
}

/// Bytes hashed per read; large enough to amortise syscalls, small enough for cache.
const HASH_CHUNK: usize = 4 << 20;
pub(crate) fn random_name() -> String {
    format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

impl Store {
    /// The path where a committed blob lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join(digest.layout_path())
    }

    /// True when the blob is committed.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Opens a committed blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, StoreError> {
        let p = self.blob_path(digest);
        File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::MissingBlob(digest.clone())
            } else {
                StoreError::io(&p, e)
            }
        })
    }

    /// Reads a whole committed blob that is known to be small (manifests, configs).
    pub fn read_blob(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, StoreError> {
        use std::io::Read;
        let p = self.blob_path(digest);
        let mut buf = Vec::new();
        self.open_blob(digest)?
            .take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(|e| StoreError::io(&p, e))?;
        if buf.len() as u64 > limit {
            return Err(StoreError::Corrupt(format!(
                "blob {digest} is larger than {limit} bytes but should be a small JSON document"
            )));
        }
        Ok(buf)
    }

    /// The ingest area, a handle that threads can share.
    pub fn ingest(&self) -> Ingest {
        Ingest {
            dir: self.root.join("ingest"),
        }
    }

    /// Starts a new blob in `ingest/`, hashed with sha256.
    pub fn blob_writer(&self) -> Result<BlobWriter, StoreError> {
        self.ingest().blob_writer()
    }

    /// Writes small bytes as a staged blob, checking them against `expected` if given.
    pub fn stage_bytes(
        &self,
        bytes: &[u8],
        expected: Option<&Digest>,
    ) -> Result<StagedBlob, StoreError> {
        self.ingest().stage_bytes(bytes, expected)
    }

    /// Stages a byte range of a file; see [`Ingest::stage_range`].
    pub fn stage_range(
        &self,
        src: &File,
        offset: u64,
        len: u64,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<StagedBlob, StoreError> {
        self.ingest().stage_range(src, offset, len, progress)
    }

    /// Makes a staged blob visible under its digest. Idempotent: if the blob
    /// is already there, the staged copy is dropped. Call [`Store::sync_blobs`]
    /// once after a batch so the renames are durable.
    pub fn commit_blob(&self, staged: StagedBlob) -> Result<Digest, StoreError> {
        let dest = self.blob_path(&staged.digest);
        let digest = staged.digest.clone();
        staged.commit_to(&dest)?;
        Ok(digest)
    }

    /// fsyncs the blob directories so committed renames survive a crash.
    pub fn sync_blobs(&self) -> Result<(), StoreError> {
        for alg in ["sha256", "sha512"] {
            let d = self.root.join("blobs").join(alg);
            File::open(&d)
                .and_then(|f| f.sync_all())
                .map_err(|e| StoreError::io(&d, e))?;
        }
        Ok(())
    }

    /// Deletes a committed blob (the caller holds the exclusive lock).
    pub fn remove_blob(&self, digest: &Digest) -> Result<bool, StoreError> {
        let p = self.blob_path(digest);
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::io(&p, e)),
        }
    }

    /// Lists every committed blob by digest; files with invalid names are returned separately.
    pub fn list_blobs(&self) -> Result<(Vec<Digest>, Vec<PathBuf>), StoreError> {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = self.root.join("blobs").join(alg.as_str());
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                // A store that was never written (read-only open) has none.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io(&dir, e)),
            };
            for ent in rd {
                let ent = ent.map_err(|e| StoreError::io(&dir, e))?;
                let name = ent.file_name();
                match name.to_str().and_then(|n| Digest::new(alg, n).ok()) {
                    Some(d) => good.push(d),
                    None => bad.push(ent.path()),
                }
            }
        }
        good.sort();
        Ok((good, bad))
    }

    /// Removes leftovers in `ingest/` older than `min_age`: files no live
    /// writer holds (from killed processes) and partial pulls kept to resume.
    pub fn clean_ingest(&self, min_age: std::time::Duration) -> Result<usize, StoreError> {
        let dir = self.root.join("ingest");
        let mut n = 0;
        let rd = std::fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))?;
        for ent in rd.flatten() {
            let old = ent
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= min_age);
            if !old {
                continue;
            }
            // A file a live writer holds is never garbage, whatever its age;
            // the lock is held while it goes.
            let held = File::open(ent.path()).ok();
            let free = held
                .as_ref()
                .is_none_or(|f| crate::live::try_lock(f).unwrap_or(true));
            if free && std::fs::remove_file(ent.path()).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }
}

/// The store's `ingest/` directory, where blobs are written before they are
/// verified and committed. Unlike [`Store`] it holds no database handle, so
/// threads can stage blobs side by side.
#[derive(Clone, Debug)]
pub struct Ingest {
    dir: PathBuf,
}

impl Ingest {
    /// Starts a new blob in `ingest/`, hashed with sha256.
    pub fn blob_writer(&self) -> Result<BlobWriter, StoreError> {
        self.blob_writer_with(Algorithm::Sha256)
    }

    /// Starts a new blob in `ingest/`, hashed with `algorithm`.
    pub fn blob_writer_with(&self, algorithm: Algorithm) -> Result<BlobWriter, StoreError> {
        let path = self.dir.join(random_name());
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        crate::live::register(&path);
        // A new file: nobody else can hold its lock.
        crate::live::try_lock(&file).map_err(|e| StoreError::io(&path, e))?;
        Ok(BlobWriter {
            file: Some(file),
            path,
            hasher: Hasher::Inline(Digester::new(algorithm)),
            size: 0,
            direct: Direct::Untried,
        })
    }

    /// Opens the resumable partial blob for `expected` (sha256), starting
    /// where an earlier attempt checkpointed; see [`ResumableBlob`].
    pub fn resume(&self, expected: &Digest) -> Result<ResumableBlob, StoreError> {
        ResumableBlob::open(&self.dir, expected)
    }

    /// Partial blobs kept to resume, with how far each got.
    pub fn partials(&self) -> Result<Vec<PartialBlob>, StoreError> {
        crate::resume::list(&self.dir)
    }

    /// Removes files whose writer died (not partial blobs kept to resume).
    pub fn clean_dead(&self) -> usize {
        crate::live::clean_dead(&self.dir)
    }

    /// Writes small bytes as a staged blob, checking them against `expected` if given.
    pub fn stage_bytes(
        &self,
        bytes: &[u8],
        expected: Option<&Digest>,
    ) -> Result<StagedBlob, StoreError> {
        let alg = expected.map_or(Algorithm::Sha256, Digest::algorithm);
        let mut w = self.blob_writer_with(alg)?;
        w.write_all(bytes).map_err(|e| StoreError::io(&w.path, e))?;
        let staged = w.finish()?;
        if let Some(d) = expected {
            staged.verify("content", d, Some(bytes.len() as u64))?;
        }
        Ok(staged)
    }

    /// Stages `len` bytes at `offset` of `src` as a new blob. The kernel copies
    /// (`copy_file_range`, with writeback started as it goes) while a second
    /// thread hashes the same range from the page cache, so the copy costs
    /// max(hash, write) rather than their sum. `progress` sees hashed bytes.
    pub fn stage_range(
        &self,
        src: &File,
        offset: u64,
        len: u64,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<StagedBlob, StoreError> {
        use std::os::unix::fs::FileExt;
        let mut w = self.blob_writer()?;
        let path = w.path.clone();
        let dst = w
            .file
            .take()
            .ok_or_else(|| StoreError::Corrupt("blob writer without a file".into()))?;
        let (copied, hashed) = std::thread::scope(|s| {
            let hasher = s.spawn(|| -> io::Result<Digest> {
                let mut d = Digester::new(Algorithm::Sha256);
                let mut buf = vec![0u8; HASH_CHUNK];
                let mut pos = offset;
                let end = offset + len;
                while pos < end {
                    let want = buf.len().min((end - pos) as usize);
                    let n = src.read_at(&mut buf[..want], pos)?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "source ended early",
                        ));
                    }
                    d.update(&buf[..n]);
                    progress(n as u64);
                    pos += n as u64;
                }
                Ok(d.finish())
            });
            let copied = hoist_archive::kcopy::copy_range(src, offset, &dst, len);
            let hashed = hasher
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("hashing thread panicked")));
            (copied, hashed)
        });
        copied.map_err(|e| StoreError::io(&path, e))?;
        let digest = hashed.map_err(|e| StoreError::io(&path, e))?;
        dst.sync_data().map_err(|e| StoreError::io(&path, e))?;
        w.path = PathBuf::new();
        Ok(StagedBlob::new(path, digest, len, Some(dst)))
    }
}
