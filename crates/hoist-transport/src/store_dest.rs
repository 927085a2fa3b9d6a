//! The local store as a copy destination. It owns the store's commit
//! protocol: every blob and manifest is staged in `ingest/` and verified as
//! it arrives (layers against the config's diffID in the same pass); only
//! `commit` renames them into `blobs/`, syncs, and adds the images and tags
//! to the index in one transaction each, so a failed copy leaves the store
//! as it was.
//!
//! Written against today's store API (images by config digest, one
//! manifest each, tags naming images): an index is resolved to its images.

use crate::blobio::{bomb_limit, check, measure_diff, pump, DiffResult, OwnedSpan, SpanReader};
use crate::destination::ImageDestination;
use crate::source::{BlobBody, RawManifest};
use crate::{choose, TransportError, MAX_JSON};
use hoist_archive::compression;
use hoist_oci::media_type::{self, Compression};
use hoist_oci::{chain_ids, Algorithm, Config, Descriptor, Digest, Document, Platform, Reference};
use hoist_store::{GcLock, Ingest, LayerRecord, LockMode, NewImage, NewLayer, StagedBlob, Store};
use std::collections::{HashMap, HashSet};
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
    /// Staged blobs and manifests by digest, committed together.
    staged: HashMap<Digest, StagedBlob>,
    /// Layers measured on the way in: diffID and uncompressed size.
    layers: HashMap<Digest, (Digest, u64)>,
    /// Manifests and indexes put, in order.
    manifests: Vec<RawManifest>,
    /// Tops with their tags, in order.
    tops: Vec<(RawManifest, Vec<Reference>)>,
}

/// Copies into the local store.
pub struct StoreDestination<'s> {
    store: Mutex<&'s mut Store>,
    ingest: Ingest,
    state: Mutex<State>,
    _lock: GcLock,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<'s> StoreDestination<'s> {
    /// A destination writing into `store`; holds the store's shared lock
    /// (deletions wait) until it is committed or dropped.
    pub fn new(store: &'s mut Store) -> Result<Self, TransportError> {
        let lock = store.lock(LockMode::Shared)?;
        Ok(StoreDestination {
            ingest: store.ingest(),
            store: Mutex::new(store),
            state: Mutex::new(State::default()),
            _lock: lock,
        })
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
                    let staged = self.ingest.stage_range(&file, offset, len, progress);
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
        let mut w = self.ingest.blob_writer_with(d.digest.algorithm())?;
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

    /// Commits everything and returns the images added, with their tags.
    pub fn finish(self) -> Result<Vec<LoadedImage>, TransportError> {
        let state = self.state.into_inner().unwrap_or_else(|e| e.into_inner());
        let store = self.store.into_inner().unwrap_or_else(|e| e.into_inner());
        let read = |d: &Digest| -> Result<Vec<u8>, TransportError> {
            match state.staged.get(d) {
                Some(s) => {
                    std::fs::read(s.path()).map_err(|e| TransportError::io(d.to_string(), e))
                }
                None => Ok(store.read_blob(d, MAX_JSON)?),
            }
        };
        // Every image manifest put becomes an image; a tag goes to the
        // image its top names (an index: the host's image among those copied).
        let mut images: Vec<(RawManifest, Vec<Reference>)> = Vec::new();
        let mut index_children: HashSet<Digest> = HashSet::new();
        let parse = |m: &RawManifest| {
            Document::parse(&m.bytes, Some(&m.media_type)).map_err(|source| {
                TransportError::Document {
                    what: format!("manifest {}", m.digest),
                    source,
                }
            })
        };
        let by_digest: HashMap<&Digest, &RawManifest> =
            state.manifests.iter().map(|m| (&m.digest, m)).collect();
        for m in &state.manifests {
            if let Document::Index(idx) = parse(m)? {
                index_children.extend(idx.manifests.iter().map(|d| d.digest.clone()));
            }
        }
        for (top, tags) in &state.tops {
            let target = match parse(top)? {
                Document::Manifest(_) => top.clone(),
                Document::Index(idx) => {
                    let put: Vec<Descriptor> = idx
                        .manifests
                        .into_iter()
                        .filter(|d| by_digest.contains_key(&d.digest))
                        .collect();
                    let pick =
                        choose(&put, &Platform::host())
                            .or(put.first())
                            .ok_or_else(|| {
                                TransportError::NoSuchImage(format!(
                                    "index {} names no image that was copied",
                                    top.digest
                                ))
                            })?;
                    by_digest[&pick.digest].clone()
                }
            };
            match images.iter_mut().find(|(m, _)| m.digest == target.digest) {
                Some((_, t)) => t.extend(tags.iter().cloned()),
                None => images.push((target, tags.clone())),
            }
        }
        for m in &state.manifests {
            let is_manifest = matches!(parse(m)?, Document::Manifest(_));
            if is_manifest && !images.iter().any(|(i, _)| i.digest == m.digest) {
                images.push((m.clone(), Vec::new()));
            }
        }
        let mut records = Vec::new();
        for (m, tags) in &images {
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
            let config_bytes = read(&man.config.digest)?;
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
                    None => known_size(store, &state, &chains[i], l, &diff_ids[i])?,
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
            records.push((
                NewImage {
                    id: man.config.digest.clone(),
                    config_size: man.config.size,
                    manifest: m.digest.clone(),
                    manifest_media_type: m.media_type.clone(),
                    created: config.created.clone(),
                    layers,
                    tags: tags.iter().map(|t| t.to_string()).collect(),
                },
                tags.clone(),
            ));
        }
        for (_, s) in state.staged {
            store.commit_blob(s)?;
        }
        store.sync_blobs()?;
        let mut out = Vec::new();
        for (img, tags) in records {
            let moved = store.index_mut().add_image(&img)?;
            out.push(LoadedImage {
                id: img.id,
                tags,
                moved,
            });
        }
        Ok(out)
    }
}

/// The uncompressed size of a layer the store already had: from its chain's
/// record, else measured (and its diffID checked) from the blob itself.
fn known_size(
    store: &Store,
    state: &State,
    chain: &Digest,
    l: &Descriptor,
    diff_id: &Digest,
) -> Result<u64, TransportError> {
    if let Some(rec) = store.index().layer(chain)? {
        return Ok(rec.size);
    }
    let path: PathBuf = match state.staged.get(&l.digest) {
        Some(s) => s.path().to_owned(),
        None => store.blob_path(&l.digest),
    };
    let f = File::open(&path).map_err(|e| TransportError::io(l.digest.to_string(), e))?;
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

impl ImageDestination for StoreDestination<'_> {
    fn has_blob(&self, d: &Descriptor) -> Result<bool, TransportError> {
        if lock(&self.state).staged.contains_key(&d.digest) {
            return Ok(true);
        }
        Ok(lock(&self.store).has_blob(&d.digest))
    }

    fn wants_diff_ids(&self) -> bool {
        true
    }

    fn put_blob(
        &self,
        d: &Descriptor,
        diff_id: Option<&Digest>,
        body: BlobBody,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), TransportError> {
        let (staged, diff) = self.stage(d, diff_id.is_some(), body, progress)?;
        let size = check(
            &d.digest.to_string(),
            d,
            staged.digest(),
            staged.size(),
            diff_id,
            diff,
        )?;
        let mut st = lock(&self.state);
        if let (Some(id), Some(size)) = (diff_id, size) {
            st.layers.insert(d.digest.clone(), (id.clone(), size));
        }
        st.staged.insert(d.digest.clone(), staged);
        Ok(())
    }

    fn put_manifest(&self, m: &RawManifest) -> Result<(), TransportError> {
        let staged = self.ingest.stage_bytes(&m.bytes, Some(&m.digest))?;
        let mut st = lock(&self.state);
        st.staged.insert(m.digest.clone(), staged);
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
