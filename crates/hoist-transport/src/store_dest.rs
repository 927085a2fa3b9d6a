//! The local store as a copy destination, over the store's own commit
//! protocol ([`StoreWriter`]): every blob and manifest is staged in
//! `ingest/` and verified as it arrives (layers against the config's diffID
//! in the same pass); only `commit` renames them into `blobs/`, syncs once,
//! and records images, indexes and tags in one index transaction, so a
//! failed copy leaves the store as it was. Manifests and indexes are kept
//! as themselves: a tag names what the copy's top is, an index included.

use crate::blobio::{bomb_limit, check, measure_diff, pump, DiffResult, SpanReader};
use crate::destination::ImageDestination;
use crate::source::{BlobBody, OwnedSpan, RawManifest};
use crate::{choose, TransportError, MAX_JSON};
use hoist_archive::compression;
use hoist_oci::media_type::{self, Compression};
use hoist_oci::{chain_ids, Algorithm, Config, Descriptor, Digest, Document, Platform, Reference};
use hoist_store::{
    Db, IndexChild, LayerRecord, NewImage, NewIndex, NewLayer, StagedBlob, Store, StoreWriter,
};
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Mutex;

/// One image the copy added to the store.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    /// The image ID (config digest).
    pub id: Digest,
    /// The references now pointing at it.
    pub tags: Vec<Reference>,
    /// Tags that pointed at another image before, with that image's ID.
    pub moved: Vec<(String, Digest)>,
}

#[derive(Default)]
struct State {
    /// Layers measured on the way in: diffID and uncompressed size.
    layers: HashMap<Digest, (Digest, u64)>,
    /// Configs put, kept to describe their images at commit.
    configs: HashMap<Digest, Vec<u8>>,
    /// Manifests and indexes put, in order.
    manifests: Vec<RawManifest>,
    /// Tops with their tags, in order.
    tops: Vec<(RawManifest, Vec<Reference>)>,
}

/// Copies into the local store.
pub struct StoreDestination {
    root: PathBuf,
    writer: StoreWriter,
    state: Mutex<State>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn parse(m: &RawManifest) -> Result<Document, TransportError> {
    Document::parse(&m.bytes, Some(&m.media_type)).map_err(|source| TransportError::Document {
        what: format!("manifest {}", m.digest),
        source,
    })
}

impl StoreDestination {
    /// A destination writing into `store`; holds the store's shared lock
    /// (deletions wait) until it is committed or dropped.
    pub fn new(store: &Store) -> Result<Self, TransportError> {
        Ok(StoreDestination {
            root: store.root().to_owned(),
            writer: store.begin()?,
            state: Mutex::new(State::default()),
        })
    }

    fn ingest(&self) -> &hoist_store::Ingest {
        self.writer.ingest()
    }

    /// Stages a blob body, measuring what `put_blob` checks.
    fn stage(
        &self,
        d: &Descriptor,
        want_diff: bool,
        body: BlobBody,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(StagedBlob, Option<DiffResult>), TransportError> {
        let what = d.digest.to_string();
        let io_err = |e| TransportError::io(format!("copying {what}"), e);
        let sha256 = d.digest.algorithm() == Algorithm::Sha256;
        match body {
            BlobBody::Staged { blob, diff_id } if sha256 => {
                let diff =
                    want_diff.then(|| Ok(diff_id.unwrap_or((blob.digest().clone(), blob.size()))));
                Ok((blob, diff))
            }
            BlobBody::Staged { blob, .. } => {
                let file = File::open(blob.path()).map_err(io_err)?;
                let len = blob.size();
                self.stage_stream(
                    d,
                    want_diff,
                    Box::new(OwnedSpan::new(file, 0, len)),
                    progress,
                )
            }
            BlobBody::File { file, offset, len } if sha256 => {
                let mut head = [0u8; 8];
                let n = file
                    .read_at(&mut head[..len.min(8) as usize], offset)
                    .map_err(io_err)?;
                let compressed = compression::detect(&head[..n]) != Compression::None;
                // The kernel copies and hashes; a compressed layer is
                // decompressed for its diffID beside it, from the page cache.
                let (staged, diff) = std::thread::scope(|s| {
                    let diff = (want_diff && compressed).then(|| {
                        s.spawn(|| {
                            measure_diff(
                                SpanReader {
                                    file: &file,
                                    pos: offset,
                                    end: offset + len,
                                },
                                bomb_limit(len),
                            )
                        })
                    });
                    let staged = self.ingest().stage_range(&file, offset, len, progress);
                    let diff = diff.map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(crate::blobio::DiffFail::Corrupt(
                                "hashing thread panicked".into(),
                            ))
                        })
                    });
                    (staged, diff)
                });
                let staged = staged?;
                let diff = match diff {
                    Some(d) => Some(d),
                    None if want_diff => Some(Ok((staged.digest().clone(), staged.size()))),
                    None => None,
                };
                Ok((staged, diff))
            }
            BlobBody::File { file, offset, len } => self.stage_stream(
                d,
                want_diff,
                Box::new(OwnedSpan::new(file, offset, len)),
                progress,
            ),
            BlobBody::Stream(r) => self.stage_stream(d, want_diff, r, progress),
        }
    }

    fn stage_stream(
        &self,
        d: &Descriptor,
        want_diff: bool,
        r: Box<dyn std::io::Read + Send>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(StagedBlob, Option<DiffResult>), TransportError> {
        let mut w = self.ingest().blob_writer_with(d.digest.algorithm())?;
        let (_, _, diff) = pump(
            r,
            &mut w,
            None,
            want_diff.then(|| bomb_limit(d.size)),
            progress,
        )
        .map_err(|e| TransportError::io(format!("copying {}", d.digest), e))?;
        Ok((w.finish()?, diff))
    }

    /// Commits everything and returns the images the tops name, with their tags.
    pub fn finish(self) -> Result<Vec<LoadedImage>, TransportError> {
        let state = self.state.into_inner().unwrap_or_else(|e| e.into_inner());
        let db = Db::open(&self.root.join("index.db"))?;
        let root = self.root.clone();
        let blob_path = |d: &Digest| root.join(d.layout_path());
        // The platform an index put in this copy lists each child for.
        let mut platform_of: HashMap<Digest, String> = HashMap::new();
        for m in &state.manifests {
            if let Document::Index(idx) = parse(m)? {
                let children = idx
                    .manifests
                    .iter()
                    .map(|d| IndexChild {
                        digest: d.digest.clone(),
                        media_type: d.media_type.clone(),
                        size: d.size,
                        platform: d.platform.as_ref().map(|p| p.to_string()),
                    })
                    .collect();
                for d in &idx.manifests {
                    if let Some(p) = &d.platform {
                        platform_of.insert(d.digest.clone(), p.to_string());
                    }
                }
                self.writer.add_index(NewIndex {
                    digest: m.digest.clone(),
                    media_type: m.media_type.clone(),
                    children,
                })?;
            }
        }
        let mut image_of: HashMap<Digest, Digest> = HashMap::new();
        for m in &state.manifests {
            let Document::Manifest(man) = parse(m)? else {
                continue;
            };
            let what = format!("config {}", man.config.digest);
            if !media_type::is_config(&man.config.media_type) {
                return Err(TransportError::Archive(format!(
                    "manifest {} is not an image (config media type {:?}); the store holds images only",
                    m.digest, man.config.media_type
                )));
            }
            let config_bytes = match state.configs.get(&man.config.digest) {
                Some(b) => b.clone(),
                None => std::fs::read(blob_path(&man.config.digest))
                    .map_err(|e| TransportError::io(what.clone(), e))?,
            };
            let config =
                Config::parse(&config_bytes).map_err(|source| TransportError::Document {
                    what: what.clone(),
                    source,
                })?;
            let diff_ids = &config.rootfs.diff_ids;
            if diff_ids.len() != man.layers.len() {
                return Err(TransportError::Archive(format!(
                    "{what}: the config lists {} layers (rootfs.diff_ids) but manifest {} lists {}",
                    diff_ids.len(),
                    m.digest,
                    man.layers.len()
                )));
            }
            let chains = chain_ids(diff_ids);
            let mut layers = Vec::with_capacity(man.layers.len());
            for (i, l) in man.layers.iter().enumerate() {
                let size = match state.layers.get(&l.digest) {
                    Some((id, size)) if id == &diff_ids[i] => *size,
                    Some((id, _)) => {
                        return Err(TransportError::DiffIdMismatch {
                            path: l.digest.to_string(),
                            expected: diff_ids[i].clone(),
                            actual: id.clone(),
                        })
                    }
                    None => known_size(&db, &blob_path(&l.digest), &chains[i], l, &diff_ids[i])?,
                };
                layers.push(NewLayer {
                    layer: LayerRecord {
                        chain_id: chains[i].clone(),
                        diff_id: diff_ids[i].clone(),
                        parent: i.checked_sub(1).map(|p| chains[p].clone()),
                        size,
                    },
                    blob: l.digest.clone(),
                    media_type: l.media_type.clone(),
                    blob_size: l.size,
                });
            }
            image_of.insert(m.digest.clone(), man.config.digest.clone());
            self.writer.add_image(
                NewImage {
                    id: man.config.digest.clone(),
                    config_size: man.config.size,
                    manifest: m.digest.clone(),
                    manifest_media_type: m.media_type.clone(),
                    created: config.created.clone(),
                    layers,
                    tags: Vec::new(),
                },
                platform_of.get(&m.digest).cloned(),
            )?;
        }
        // Each top stands for one image: an index for the host's (or its first copied).
        let mut out = Vec::new();
        for (top, tags) in &state.tops {
            let id = match parse(top)? {
                Document::Manifest(m) => m.config.digest,
                Document::Index(idx) => {
                    let copied: Vec<Descriptor> = idx
                        .manifests
                        .into_iter()
                        .filter(|d| image_of.contains_key(&d.digest))
                        .collect();
                    let pick = choose(&copied, &Platform::host())
                        .or(copied.first())
                        .ok_or_else(|| {
                            TransportError::NoSuchImage(format!(
                                "index {} names no image that was copied",
                                top.digest
                            ))
                        })?;
                    image_of[&pick.digest].clone()
                }
            };
            for t in tags {
                self.writer.tag(&t.to_string(), &top.digest)?;
            }
            out.push(LoadedImage {
                id,
                tags: tags.clone(),
                moved: Vec::new(),
            });
        }
        let moved = self.writer.commit()?;
        for (name, old) in moved {
            if let Some(img) = out
                .iter_mut()
                .find(|l| l.tags.iter().any(|t| t.to_string() == name) && l.id != old)
            {
                img.moved.push((name, old));
            }
        }
        Ok(out)
    }
}

/// The uncompressed size of a layer the store already had: from its chain's
/// record, else measured (and its diffID checked) from the blob itself.
fn known_size(
    db: &Db,
    path: &std::path::Path,
    chain: &Digest,
    l: &Descriptor,
    diff_id: &Digest,
) -> Result<u64, TransportError> {
    if let Some(rec) = db.layer(chain)? {
        return Ok(rec.size);
    }
    let f = File::open(path).map_err(|e| TransportError::io(l.digest.to_string(), e))?;
    let len = f
        .metadata()
        .map_err(|e| TransportError::io(l.digest.to_string(), e))?
        .len();
    let (actual, size) =
        measure_diff(f, bomb_limit(len)).map_err(|f| f.into_error(&l.digest.to_string()))?;
    if &actual != diff_id {
        return Err(TransportError::DiffIdMismatch {
            path: l.digest.to_string(),
            expected: diff_id.clone(),
            actual,
        });
    }
    Ok(size)
}

impl ImageDestination for StoreDestination {
    fn has_blob(&self, d: &Descriptor) -> Result<bool, TransportError> {
        Ok(self.writer.has_blob(&d.digest)?)
    }

    fn wants_diff_ids(&self) -> bool {
        true
    }

    fn holds_artifacts(&self) -> bool {
        false
    }

    fn put_blob(
        &self,
        d: &Descriptor,
        diff_id: Option<&Digest>,
        body: BlobBody,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), TransportError> {
        if media_type::is_config(&d.media_type) && d.size <= MAX_JSON {
            // Kept in memory too: commit describes the image from it.
            let bytes = crate::blobio::read_small(body, MAX_JSON, &d.digest.to_string())?;
            RawManifest::verified(bytes.clone(), d, &d.digest.to_string())?;
            progress(bytes.len() as u64);
            self.writer.put_bytes(&bytes, Some(&d.digest))?;
            lock(&self.state).configs.insert(d.digest.clone(), bytes);
            return Ok(());
        }
        let (staged, diff) = self.stage(d, diff_id.is_some(), body, progress)?;
        let size = check(
            &d.digest.to_string(),
            d,
            staged.digest(),
            staged.size(),
            diff_id,
            diff,
        )?;
        if let (Some(id), Some(size)) = (diff_id, size) {
            lock(&self.state)
                .layers
                .insert(d.digest.clone(), (id.clone(), size));
        }
        self.writer.add_staged(staged, &d.digest, Some(d.size))?;
        Ok(())
    }

    fn put_manifest(&self, m: &RawManifest) -> Result<(), TransportError> {
        self.writer.put_bytes(&m.bytes, Some(&m.digest))?;
        let mut st = lock(&self.state);
        if !st.manifests.iter().any(|x| x.digest == m.digest) {
            st.manifests.push(m.clone());
        }
        Ok(())
    }

    fn tag(&self, top: &RawManifest, tags: &[String]) -> Result<(), TransportError> {
        let mut refs = Vec::with_capacity(tags.len());
        for t in tags {
            refs.push(
                Reference::parse(t)
                    .map(Reference::with_default_tag)
                    .map_err(|e| TransportError::BadReference(format!("{t}: {e}")))?,
            );
        }
        lock(&self.state).tops.push((top.clone(), refs));
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<(), TransportError> {
        self.finish().map(drop)
    }
}
