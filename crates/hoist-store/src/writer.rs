//! The store's commit protocol in one place: a [`StoreWriter`] gathers
//! verified blobs and index records, and [`StoreWriter::commit`] makes them
//! visible together.
//!
//! ```text
//! let w = store.begin()?;                           // shared GC lock: no prune can race us
//! if !w.has_blob(&d)? {
//!     w.put_blob(&d, Some(size), &mut reader, &|n| progress(n))?; // verified into ingest/
//!     // or w.put_file_range(&d, size, &file, offset, &|n| ..)?   // copied in the kernel
//!     // or w.resume_blob(&d)? … finish() → w.add_staged(…)       // resumable pull
//!     w.set_layer(&d, &diff_id, uncompressed_size)?;               // if hashed on the way
//! }
//! w.put_bytes(&config_bytes, Some(&config_digest))?;
//! w.put_manifest(&bytes, media_type, Some(&digest), Some("linux/arm64/v8".into()))?;
//! w.put_manifest(&index_bytes, index_media_type, Some(&index_digest), None)?;
//! w.tag("docker.io/library/x:latest", &index_digest)?;
//! let moved = w.commit()?;                          // renames, one fsync, one transaction
//! ```
//!
//! `put_manifest` keeps the bytes as received and, at commit, indexes an
//! image manifest as an image from its config (diffIDs checked against what
//! `set_layer` told, else taken from the index's layers, else measured by
//! decompressing the blob once). [`StoreWriter::add_image`] and
//! [`StoreWriter::add_index`] take ready-made records instead.
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
    GcLock, IndexChild, Ingest, LayerRecord, LockMode, NewImage, NewIndex, NewLayer, ResumableBlob,
    StagedBlob, Store, StoreError,
};
use hoist_oci::{chain_ids, Algorithm, Config, Digest, Digester, Document, Manifest};
use std::collections::{BTreeMap, BTreeSet};
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
    /// Image manifests put as bytes, indexed at commit from their config.
    manifests: Mutex<Vec<PendingManifest>>,
    /// Layer blob → (diffID, uncompressed size), as learnt while copying.
    layers: Mutex<BTreeMap<Digest, (Digest, u64)>>,
    _lock: GcLock,
}

/// An image manifest to index at commit.
struct PendingManifest {
    digest: Digest,
    media_type: String,
    manifest: Manifest,
    platform: Option<String>,
}

/// Largest config a manifest may name (as fsck's limit).
const MAX_CONFIG: u64 = 16 << 20;

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
            manifests: Mutex::new(Vec::new()),
            layers: Mutex::new(BTreeMap::new()),
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

    /// Stages a manifest or an index exactly as received (checked against
    /// `expected` when given) and indexes it at commit: an image manifest
    /// becomes an image (its config must be put too, or be in the store),
    /// listed for `platform` when an index named one; an index keeps its
    /// entries and their platforms. Returns the digest.
    pub fn put_manifest(
        &self,
        bytes: &[u8],
        media_type: &str,
        expected: Option<&Digest>,
        platform: Option<String>,
    ) -> Result<Digest, StoreError> {
        let doc = Document::parse(bytes, Some(media_type))
            .map_err(|e| StoreError::Corrupt(format!("manifest: {e}")))?;
        let digest = self.put_bytes(bytes, expected)?;
        match doc {
            Document::Manifest(m) => {
                self.manifests
                    .lock()
                    .map_err(|_| poisoned())?
                    .push(PendingManifest {
                        digest: digest.clone(),
                        media_type: media_type.to_owned(),
                        manifest: *m,
                        platform,
                    })
            }
            Document::Index(i) => self.add_index(NewIndex {
                digest: digest.clone(),
                media_type: media_type.to_owned(),
                children: i
                    .manifests
                    .iter()
                    .map(|d| IndexChild {
                        digest: d.digest.clone(),
                        media_type: d.media_type.clone(),
                        size: d.size,
                        platform: d.platform.as_ref().map(|p| p.to_string()),
                    })
                    .collect(),
            })?,
        }
        Ok(digest)
    }

    /// Tells the writer a layer blob's diffID and uncompressed size (learnt
    /// while copying it), so [`StoreWriter::put_manifest`] need not
    /// decompress it again.
    pub fn set_layer(&self, blob: &Digest, diff_id: &Digest, size: u64) -> Result<(), StoreError> {
        self.layers
            .lock()
            .map_err(|_| poisoned())?
            .insert(blob.clone(), (diff_id.clone(), size));
        Ok(())
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
        let mut batch = self.batch.into_inner().map_err(|_| poisoned())?;
        let manifests = self.manifests.into_inner().map_err(|_| poisoned())?;
        let facts = self.layers.into_inner().map_err(|_| poisoned())?;
        let mut db = Db::open(&self.root.join("index.db"))?;
        for m in manifests {
            let img = image_of(&self.root, &staged, &db, &facts, &m)?;
            batch.images.push((img, m.platform));
        }
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
        let moved = db.apply(&batch)?;
        record_plain_content_sizes(&self.root, &mut db, &batch);
        Ok(moved)
    }
}

/// Records the content size (Docker's SIZE) of the new uncompressed layers,
/// as `docker load` measures its layers: walking an uncompressed tar's
/// headers costs a few reads, while a compressed layer would be decompressed
/// again, so those are measured when first listed ([`Store::content_sizes`]).
/// A cache after the commit: a failure leaves the size to be measured then.
fn record_plain_content_sizes(root: &Path, db: &mut Db, batch: &Batch) {
    let mut sizes: Vec<(Digest, u64)> = Vec::new();
    for l in batch.images.iter().flat_map(|(img, _)| &img.layers) {
        let plain = hoist_oci::media_type::layer_compression(&l.media_type)
            == Some(hoist_oci::media_type::Compression::None);
        if !plain
            || sizes.iter().any(|(c, _)| c == &l.layer.chain_id)
            || !matches!(db.content_size(&l.layer.chain_id), Ok(None))
        {
            continue;
        }
        let Ok(file) = File::open(blob_path(root, &l.blob)) else {
            continue;
        };
        if let Ok(n) = hoist_archive::layer_file_content_size(file) {
            sizes.push((l.layer.chain_id.clone(), n));
        }
    }
    if !sizes.is_empty() {
        let _ = db.set_content_sizes(&sizes);
    }
}

/// Opens a blob staged by this writer or already in the store.
fn open_blob(root: &Path, staged: &[StagedBlob], d: &Digest) -> Result<File, StoreError> {
    let path = staged
        .iter()
        .find(|s| s.digest() == d)
        .map_or_else(|| blob_path(root, d), |s| s.path().to_owned());
    File::open(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            StoreError::MissingBlob(d.clone())
        } else {
            StoreError::io(&path, e)
        }
    })
}

/// The diffID and uncompressed size of a layer blob, by reading it.
fn measure_layer(
    root: &Path,
    staged: &[StagedBlob],
    blob: &Digest,
) -> Result<(Digest, u64), StoreError> {
    let file = open_blob(root, staged, blob)?;
    let what = |e| StoreError::io(&blob_path(root, blob), e);
    let (_, mut plain) =
        hoist_archive::decompress_auto(std::io::BufReader::new(file)).map_err(what)?;
    let mut d = Digester::new(Algorithm::Sha256);
    let mut buf = vec![0u8; CHUNK];
    let mut n = 0u64;
    loop {
        let k = match plain.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(what(e)),
        };
        d.update(&buf[..k]);
        n += k as u64;
    }
    Ok((d.finish(), n))
}

/// The image record an image manifest describes, from its config and what
/// is known of its layers (told, indexed, or measured).
fn image_of(
    root: &Path,
    staged: &[StagedBlob],
    db: &Db,
    facts: &BTreeMap<Digest, (Digest, u64)>,
    m: &PendingManifest,
) -> Result<NewImage, StoreError> {
    let cfg = &m.manifest.config;
    let mut bytes = Vec::new();
    open_blob(root, staged, &cfg.digest)?
        .take(MAX_CONFIG + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| StoreError::io(&blob_path(root, &cfg.digest), e))?;
    let config = Config::parse(&bytes).map_err(|e| {
        StoreError::Corrupt(format!(
            "config {} of manifest {}: {e}",
            cfg.digest, m.digest
        ))
    })?;
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != m.manifest.layers.len() {
        return Err(StoreError::Corrupt(format!(
            "manifest {} lists {} layers but its config {} has {} diffIDs",
            m.digest,
            m.manifest.layers.len(),
            cfg.digest,
            diff_ids.len()
        )));
    }
    let chains = chain_ids(diff_ids);
    let mut layers = Vec::with_capacity(diff_ids.len());
    for (i, desc) in m.manifest.layers.iter().enumerate() {
        let (diff_id, size) = match facts.get(&desc.digest) {
            Some(f) => f.clone(),
            None => match db.layer(&chains[i])? {
                Some(l) => (l.diff_id, l.size),
                None => measure_layer(root, staged, &desc.digest)?,
            },
        };
        if diff_id != diff_ids[i] {
            return Err(StoreError::DigestMismatch {
                what: format!("the uncompressed content (diffID) of layer {}", desc.digest),
                expected: diff_ids[i].clone(),
                actual: diff_id,
            });
        }
        layers.push(NewLayer {
            layer: LayerRecord {
                chain_id: chains[i].clone(),
                diff_id,
                parent: i.checked_sub(1).map(|p| chains[p].clone()),
                size,
            },
            blob: desc.digest.clone(),
            media_type: desc.media_type.clone(),
            blob_size: desc.size,
        });
    }
    Ok(NewImage {
        id: cfg.digest.clone(),
        config_size: cfg.size,
        manifest: m.digest.clone(),
        manifest_media_type: m.media_type.clone(),
        created: config.created.clone(),
        layers,
        tags: Vec::new(),
    })
}

fn blob_path(root: &Path, digest: &Digest) -> PathBuf {
    root.join(digest.layout_path())
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
