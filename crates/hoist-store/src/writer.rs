//! The store's commit protocol in one place: a [`StoreWriter`] gathers
//! verified blobs and index records, and [`StoreWriter::commit`] makes them
//! visible together.
//!
//! ```text
//! let w = store.begin()?;                         // shared GC lock: no prune can race us
//! w.put_blob(&layer_digest, Some(size), &mut reader, &|n| progress(n))?; // verified into ingest/
//! w.put_file_range(&d, size, &file, offset, &|n| ..)?;  // same, copied in the kernel
//! w.put_bytes(&manifest_bytes, Some(&manifest_digest))?; // manifests, indexes, configs
//! w.add_image(new_image, Some("linux/arm64/v8".into())); // records to index
//! w.add_index(new_index);
//! w.tag("docker.io/library/x:latest", &index_digest);
//! let moved = w.commit()?;                        // renames, one fsync, one transaction
//! ```
//!
//! Every `put_*` hashes and size-checks the bytes as they are written under
//! `ingest/` and refuses a mismatch at once; nothing is renamed into `blobs/`
//! before `commit`. `commit` renames every staged blob, fsyncs the blob
//! directories once, checks that every blob a record names is there, and
//! writes all records and tags in one index transaction. Dropping the
//! writer instead (an error, Ctrl-C unwinding) deletes its staged files and
//! leaves the store as it was. The writer is `Send + Sync`: threads may put
//! blobs side by side.

use crate::index::{Batch, Db};
use crate::{
    GcLock, Ingest, LockMode, NewImage, NewIndex, ResumableBlob, StagedBlob, Store, StoreError,
};
use hoist_oci::Digest;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Writes that become visible together at [`StoreWriter::commit`]; see the module docs.
pub struct StoreWriter {
    root: PathBuf,
    ingest: Ingest,
    staged: Mutex<Vec<StagedBlob>>,
    batch: Mutex<Batch>,
    _lock: GcLock,
}

/// Read buffer for streamed blobs.
const CHUNK: usize = 1 << 20;

impl Store {
    /// Starts a batch of writes; holds the shared GC lock until commit or drop.
    pub fn begin(&self) -> Result<StoreWriter, StoreError> {
        let lock = self.lock(LockMode::Shared)?;
        Ok(StoreWriter {
            root: self.root().to_owned(),
            ingest: self.ingest(),
            staged: Mutex::new(Vec::new()),
            batch: Mutex::new(Batch::default()),
            _lock: lock,
        })
    }
}

fn poisoned() -> StoreError {
    StoreError::Corrupt("a thread writing to the store panicked".into())
}

impl StoreWriter {
    /// The ingest area, for callers that stage blobs themselves (then [`StoreWriter::add_staged`]).
    pub fn ingest(&self) -> &Ingest {
        &self.ingest
    }

    /// True when the blob is committed in the store or staged by this writer.
    pub fn has_blob(&self, digest: &Digest) -> Result<bool, StoreError> {
        let staged = self.staged.lock().map_err(|_| poisoned())?;
        Ok(staged.iter().any(|s| s.digest() == digest) || blob_path(&self.root, digest).is_file())
    }

    /// Queues a staged blob after checking it against the announced digest and size.
    pub fn add_staged(
        &self,
        staged: StagedBlob,
        expected: &Digest,
        size: Option<u64>,
    ) -> Result<(), StoreError> {
        staged.verify(&format!("blob {expected}"), expected, size)?;
        self.staged.lock().map_err(|_| poisoned())?.push(staged);
        Ok(())
    }

    /// Streams a blob into `ingest/`, hashing and counting as it goes, and
    /// queues it when it matches `expected` (and `size`, when given).
    /// `progress` sees the bytes written. Returns the size.
    pub fn put_blob(
        &self,
        expected: &Digest,
        size: Option<u64>,
        body: &mut dyn Read,
        progress: &dyn Fn(u64),
    ) -> Result<u64, StoreError> {
        let mut w = self.ingest.blob_writer_with(expected.algorithm())?;
        loop {
            let mut buf = w.buffer(CHUNK);
            let n = loop {
                match body.read(buf.space()) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(StoreError::io(w.path(), e)),
                }
            };
            if n == 0 {
                break;
            }
            buf.set_len(n);
            w.write_buffer(buf)
                .map_err(|e| StoreError::io(w.path(), e))?;
            progress(n as u64);
            if size.is_some_and(|s| w.size() > s) {
                // More than announced: stop reading an endless stream now.
                return Err(StoreError::SizeMismatch {
                    what: format!("blob {expected}"),
                    expected: size.unwrap_or_default(),
                    actual: w.size(),
                });
            }
        }
        let staged = w.finish()?;
        let n = staged.size();
        self.add_staged(staged, expected, size)?;
        Ok(n)
    }

    /// Copies `size` bytes at `offset` of `file` as a blob (in the kernel,
    /// hashing beside the copy) and queues it when it matches `expected`.
    pub fn put_file_range(
        &self,
        expected: &Digest,
        size: u64,
        file: &File,
        offset: u64,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), StoreError> {
        if expected.algorithm() != hoist_oci::Algorithm::Sha256 {
            // The in-kernel path hashes sha256 only.
            let mut r = FileAt { file, pos: offset }.take(size);
            return self
                .put_blob(expected, Some(size), &mut r, progress)
                .map(drop);
        }
        let staged = self.ingest.stage_range(file, offset, size, progress)?;
        self.add_staged(staged, expected, Some(size))
    }

    /// Opens the resumable partial blob for `expected`; when it is
    /// complete, [`ResumableBlob::finish`] and [`StoreWriter::add_staged`] it.
    pub fn resume_blob(&self, expected: &Digest) -> Result<ResumableBlob, StoreError> {
        self.ingest.resume(expected)
    }

    /// Stages small bytes (a manifest, an index, a config) and queues them;
    /// checked against `expected` when given. Returns their digest.
    pub fn put_bytes(&self, bytes: &[u8], expected: Option<&Digest>) -> Result<Digest, StoreError> {
        let staged = self.ingest.stage_bytes(bytes, expected)?;
        let d = staged.digest().clone();
        self.staged.lock().map_err(|_| poisoned())?.push(staged);
        Ok(d)
    }

    /// Records an image and its manifest (listed by an index for `platform`,
    /// `os/arch[/variant]`, if any). `img.tags` are applied too.
    pub fn add_image(&self, img: NewImage, platform: Option<String>) -> Result<(), StoreError> {
        let mut b = self.batch.lock().map_err(|_| poisoned())?;
        for t in &img.tags {
            b.tags.push((t.clone(), img.manifest.clone()));
        }
        b.images.push((img, platform));
        Ok(())
    }

    /// Records an index whose bytes were put with [`StoreWriter::put_bytes`].
    pub fn add_index(&self, idx: NewIndex) -> Result<(), StoreError> {
        self.batch.lock().map_err(|_| poisoned())?.indexes.push(idx);
        Ok(())
    }

    /// Points `name` (a full reference) at a manifest or an index at commit.
    pub fn tag(&self, name: &str, target: &Digest) -> Result<(), StoreError> {
        self.batch
            .lock()
            .map_err(|_| poisoned())?
            .tags
            .push((name.to_owned(), target.clone()));
        Ok(())
    }

    /// Makes everything visible: renames the staged blobs, fsyncs the blob
    /// directories once, then writes every record and tag in one index
    /// transaction. Returns, for each tag that moved, the reference and the
    /// image it named before.
    pub fn commit(self) -> Result<Vec<(String, Digest)>, StoreError> {
        let staged = self.staged.into_inner().map_err(|_| poisoned())?;
        let batch = self.batch.into_inner().map_err(|_| poisoned())?;
        for s in staged {
            let dest = blob_path(&self.root, s.digest());
            s.commit_to(&dest)?;
        }
        for alg in ["sha256", "sha512"] {
            let d = self.root.join("blobs").join(alg);
            File::open(&d)
                .and_then(|f| f.sync_all())
                .map_err(|e| StoreError::io(&d, e))?;
        }
        // The index never names a blob that is not there.
        let mut needed: BTreeSet<&Digest> = BTreeSet::new();
        for (img, _) in &batch.images {
            needed.insert(&img.id);
            needed.insert(&img.manifest);
            needed.extend(img.layers.iter().map(|l| &l.blob));
        }
        needed.extend(batch.indexes.iter().map(|i| &i.digest));
        if let Some(d) = needed
            .into_iter()
            .find(|d| !blob_path(&self.root, d).is_file())
        {
            return Err(StoreError::MissingBlob(d.clone()));
        }
        if batch.images.is_empty() && batch.indexes.is_empty() && batch.tags.is_empty() {
            return Ok(Vec::new());
        }
        let mut db = Db::open(&self.root.join("index.db"))?;
        db.apply(&batch)
    }
}

fn blob_path(root: &Path, digest: &Digest) -> PathBuf {
    root.join("blobs")
        .join(digest.algorithm().as_str())
        .join(digest.hex())
}

/// Reads a file from an offset with positioned reads, leaving its cursor alone.
struct FileAt<'a> {
    file: &'a File,
    pos: u64,
}

impl Read for FileAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}
