//! `load`: copy every image of a `docker save` archive or an OCI archive into
//! the store. Everything is verified and staged first; only when the whole
//! archive checks out are blobs renamed into place and the index updated in
//! one transaction, so a bad archive leaves the store exactly as it was.

use crate::archive::{copy_big, ArchiveFiles};
use crate::{Progress, TransportError, MAX_JSON};
use hoist_archive::{compression, HashingReader, LimitedReader};
use hoist_oci::media_type::{self, Compression};
use hoist_oci::{
    chain_ids, Algorithm, Config, Descriptor, Digest, Document, Manifest, Platform, Reference,
};
use hoist_store::{Ingest, LayerRecord, LockMode, NewImage, NewLayer, StagedBlob, Store};
use serde::Deserialize;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;

/// Decompressed layers may be at most this many times their compressed size…
const BOMB_RATIO: u64 = 1000;
/// …or this size, whichever is larger.
const BOMB_FLOOR: u64 = 1 << 30;

/// Where an archive comes from.
pub enum LoadInput {
    /// A file: read in place, members by offset.
    File(File),
    /// A stream (stdin): read once.
    Stream(Box<dyn Read + Send>),
}

/// One image the load added.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    /// The image ID (config digest).
    pub id: Digest,
    /// The references now pointing at it.
    pub tags: Vec<Reference>,
    /// Tags that pointed at another image before, with that image's ID.
    pub moved: Vec<(String, Digest)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

struct PlanLayer {
    member: String,
    declared: Option<Descriptor>,
}

struct Plan {
    config: Vec<u8>,
    config_member: String,
    manifest: Option<(Vec<u8>, String)>,
    layers: Vec<PlanLayer>,
    tags: Vec<Reference>,
}

fn doc_err(what: &str) -> impl FnOnce(hoist_oci::DocumentError) -> TransportError + '_ {
    move |source| TransportError::Document {
        what: what.to_owned(),
        source,
    }
}

fn blob_member(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm().as_str(), d.hex())
}

/// Opens the input and indexes its members, undoing any outer compression.
fn open_input(input: LoadInput, store: &Store) -> Result<ArchiveFiles, TransportError> {
    match input {
        LoadInput::File(f) => {
            let mut head = [0u8; 8];
            let n = f
                .read_at(&mut head, 0)
                .map_err(|e| TransportError::io("reading the archive", e))?;
            match compression::detect(&head[..n]) {
                Compression::None => ArchiveFiles::scan_file(f),
                c => ArchiveFiles::scan_stream(decompress_archive(Box::new(f), c)?, store),
            }
        }
        LoadInput::Stream(r) => {
            // A pipe may hand over fewer bytes than the magic needs: sniff loops until it has them.
            let br = BufReader::with_capacity(1 << 20, r);
            let (comp, sniffed) =
                compression::sniff(br).map_err(|e| TransportError::io("reading the archive", e))?;
            if sniffed.get_ref().0.get_ref().is_empty() {
                return Err(TransportError::Archive(
                    "the input is empty; give an archive with -i FILE or on stdin".into(),
                ));
            }
            match comp {
                Compression::None => ArchiveFiles::scan_stream(sniffed, store),
                c => ArchiveFiles::scan_stream(decompress_archive(Box::new(sniffed), c)?, store),
            }
        }
    }
}

/// Undoes a compressed archive's outer compression, held to the same bound
/// as a layer's: past `BOMB_FLOOR`, at most `BOMB_RATIO` bytes out per byte
/// in so far. Without it a small .tar.gz could fill the disk via `ingest/`.
fn decompress_archive(
    r: Box<dyn Read + Send>,
    c: Compression,
) -> Result<Box<dyn Read + Send>, TransportError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    struct Counted<R>(R, Arc<AtomicU64>);
    impl<R: Read> Read for Counted<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.read(buf)?;
            self.1.fetch_add(n as u64, Ordering::Relaxed);
            Ok(n)
        }
    }
    struct Bounded(Box<dyn Read + Send>, Arc<AtomicU64>, u64);
    impl Read for Bounded {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.read(buf)?;
            self.2 += n as u64;
            let read = self.1.load(Ordering::Relaxed);
            let limit = BOMB_FLOOR.max(read.saturating_mul(BOMB_RATIO));
            if self.2 > limit {
                return Err(std::io::Error::other(format!(
                    "the archive decompresses to more than {limit} bytes ({BOMB_RATIO}x its compressed size): refusing a likely decompression bomb"
                )));
            }
            Ok(n)
        }
    }
    let read = Arc::new(AtomicU64::new(0));
    let inner = decompress(Box::new(Counted(r, read.clone())), c)?;
    Ok(Box::new(Bounded(inner, read, 0)))
}

fn decompress(
    r: Box<dyn Read + Send>,
    c: Compression,
) -> Result<Box<dyn Read + Send>, TransportError> {
    compression::decompress_reader(r, c)
        .map_err(|e| TransportError::Archive(format!("cannot start {c:?} decompression: {e}")))
}

fn parse_ref(s: &str, what: &str) -> Result<Reference, TransportError> {
    Reference::parse(s)
        .map(Reference::with_default_tag)
        .map_err(|e| TransportError::Archive(format!("{what}: {e}")))
}

/// Reads the manifest a descriptor names, descending into indexes for the host platform.
fn resolve_manifest(
    files: &ArchiveFiles,
    desc: &Descriptor,
    depth: usize,
) -> Result<Option<(Vec<u8>, Manifest, String)>, TransportError> {
    let member = blob_member(&desc.digest);
    if depth > 4 || !files.contains(&member) {
        return Ok(None);
    }
    let bytes = files.read_small(&member, MAX_JSON)?;
    let actual = Digest::sha256(&bytes);
    if desc.digest.algorithm() == Algorithm::Sha256 && actual != desc.digest {
        return Err(TransportError::DigestMismatch {
            path: member,
            expected: desc.digest.clone(),
            actual,
        });
    }
    match Document::parse(&bytes, Some(&desc.media_type)).map_err(doc_err(&member))? {
        Document::Manifest(m) => {
            let mt = m
                .media_type
                .clone()
                .unwrap_or_else(|| desc.media_type.clone());
            Ok(Some((bytes, *m, mt)))
        }
        Document::Index(idx) => {
            let host = Platform::host();
            let pick = idx
                .manifests
                .iter()
                .find(|d| d.platform.as_ref().is_some_and(|p| host.matches(p)))
                .or_else(|| idx.manifests.iter().find(|d| d.platform.is_none()));
            match pick {
                Some(d) => resolve_manifest(files, d, depth + 1),
                None => Err(TransportError::Archive(format!(
                    "{member}: the index has no image for this platform ({host})"
                ))),
            }
        }
    }
}

fn plan_docker(files: &ArchiveFiles) -> Result<Vec<Plan>, TransportError> {
    let raw = files.read_small("manifest.json", MAX_JSON)?;
    let entries: Vec<ManifestEntry> = serde_json::from_slice(&raw).map_err(|e| {
        TransportError::Archive(format!(
            "manifest.json is not a valid docker save manifest: {e}"
        ))
    })?;
    if entries.is_empty() {
        return Err(TransportError::Archive(
            "manifest.json lists no images".into(),
        ));
    }
    // Docker 25+ also writes an OCI index whose manifests keep the original bytes.
    let mut originals: HashMap<Digest, (Vec<u8>, Manifest, String)> = HashMap::new();
    if files.contains("index.json") {
        let idx = files.read_small("index.json", MAX_JSON)?;
        if let Ok(Document::Index(idx)) = Document::parse(&idx, None) {
            for d in &idx.manifests {
                if let Some((bytes, m, mt)) = resolve_manifest(files, d, 0)? {
                    originals.insert(m.config.digest.clone(), (bytes, m, mt));
                }
            }
        }
    }
    let mut plans = Vec::new();
    for e in entries {
        let config = files.read_small(&e.config, MAX_JSON)?;
        let id = Digest::sha256(&config);
        let mut layers: Vec<PlanLayer> = e
            .layers
            .iter()
            .map(|l| PlanLayer {
                member: l.clone(),
                declared: None,
            })
            .collect();
        let mut manifest = None;
        if let Some((bytes, m, mt)) = originals.remove(&id) {
            let same = m.layers.len() == layers.len()
                && m.layers.iter().zip(&layers).all(|(d, l)| {
                    files.resolve(&l.member).ok() == files.resolve(&blob_member(&d.digest)).ok()
                });
            if same {
                for (l, d) in layers.iter_mut().zip(m.layers) {
                    l.declared = Some(d);
                }
                manifest = Some((bytes, mt));
            }
        }
        let mut tags = Vec::new();
        for t in e.repo_tags.unwrap_or_default() {
            tags.push(parse_ref(&t, "manifest.json RepoTags")?);
        }
        plans.push(Plan {
            config,
            config_member: e.config,
            manifest,
            layers,
            tags,
        });
    }
    Ok(plans)
}

fn plan_oci(files: &ArchiveFiles) -> Result<Vec<Plan>, TransportError> {
    let raw = files.read_small("index.json", MAX_JSON)?;
    let idx = match Document::parse(&raw, None).map_err(doc_err("index.json"))? {
        Document::Index(i) => i,
        Document::Manifest(_) => {
            return Err(TransportError::Archive(
                "index.json is a manifest, not an image index".into(),
            ))
        }
    };
    let mut plans = Vec::new();
    for d in &idx.manifests {
        let Some((bytes, m, mt)) = resolve_manifest(files, d, 0)? else {
            return Err(TransportError::Archive(format!(
                "index.json names manifest {} but {} is not in the archive",
                d.digest,
                blob_member(&d.digest)
            )));
        };
        let config_member = blob_member(&m.config.digest);
        let config = files.read_small(&config_member, MAX_JSON)?;
        let actual = Digest::sha256(&config);
        if m.config.digest.algorithm() == Algorithm::Sha256 && actual != m.config.digest {
            return Err(TransportError::DigestMismatch {
                path: config_member,
                expected: m.config.digest.clone(),
                actual,
            });
        }
        let mut tags = Vec::new();
        if let Some(name) = d.annotations.get("io.containerd.image.name") {
            tags.push(parse_ref(name, "index.json io.containerd.image.name")?);
        } else if let Some(name) = d.annotations.get("org.opencontainers.image.ref.name") {
            // A bare tag names no repository; only a full reference is a usable name.
            if name.contains('/') || name.contains(':') {
                if let Ok(r) = Reference::parse(name) {
                    tags.push(r.with_default_tag());
                }
            }
        }
        plans.push(Plan {
            config,
            config_member,
            manifest: Some((bytes, mt)),
            layers: m
                .layers
                .into_iter()
                .map(|l| PlanLayer {
                    member: blob_member(&l.digest),
                    declared: Some(l),
                })
                .collect(),
            tags,
        });
    }
    Ok(plans)
}

/// One layer member to stage and verify; several images may share it.
struct Job {
    key: String,
    member: String,
    declared: Option<Descriptor>,
    record: LayerRecord,
    /// Already staged while the stream was read.
    staged: Option<StagedBlob>,
    size: u64,
}

/// Layers verified at once: one per core keeps both busy (hashing a big
/// layer on one while the kernel copies and another layer hashes).
const PARALLEL_LAYERS: usize = 2;

/// Stages and verifies one layer member; returns the staged blob (if new) and its record.
fn verify_job(
    ingest: &Ingest,
    files: &ArchiveFiles,
    job: Job,
    progress: &dyn Progress,
) -> Result<(Option<StagedBlob>, NewLayer), TransportError> {
    let Job {
        key,
        member,
        declared,
        record: chain,
        staged,
        size: total,
    } = job;
    let member = member.as_str();
    let declared = declared.as_ref();
    let diff_id = &chain.diff_id;
    let short = &diff_id.hex()[..12];
    progress.start(short, total);
    if let Some((digest, size, path)) = files.in_store(&key) {
        let layer = check_blob(path, member, &digest, size, declared, diff_id, &chain)?;
        progress.finish(short, true);
        return Ok((None, layer));
    }
    let staged = match staged {
        Some(s) => {
            progress.advance(short, total);
            s
        }
        None => match files.span(&key) {
            Some((file, offset, size)) => {
                ingest.stage_range(file, offset, size, &|n| progress.advance(short, n))?
            }
            None => {
                let mut w = ingest.blob_writer()?;
                let mut r = files.open(&key)?;
                let mut counted = ProgressReader {
                    inner: &mut r,
                    progress,
                    id: short,
                };
                copy_big(&mut counted, &mut w).map_err(|e| TransportError::io(key.clone(), e))?;
                w.finish()?
            }
        },
    };
    let layer = check_blob(
        staged.path(),
        member,
        staged.digest(),
        staged.size(),
        declared,
        diff_id,
        &chain,
    )?;
    progress.finish(short, false);
    Ok((Some(staged), layer))
}

/// Checks a layer blob against its descriptor and the config's diffID
/// (decompressing, bounded, when it is compressed) and makes its record.
fn check_blob(
    path: &std::path::Path,
    member: &str,
    digest: &Digest,
    blob_size: u64,
    declared: Option<&Descriptor>,
    diff_id: &Digest,
    chain: &LayerRecord,
) -> Result<NewLayer, TransportError> {
    if let Some(d) = declared {
        if digest != &d.digest {
            return Err(TransportError::DigestMismatch {
                path: member.to_owned(),
                expected: d.digest.clone(),
                actual: digest.clone(),
            });
        }
        if blob_size != d.size {
            return Err(TransportError::Archive(format!(
                "{member}: size mismatch: the manifest says {} bytes, the archive has {blob_size}",
                d.size
            )));
        }
    }
    let mut head = [0u8; 8];
    let f = File::open(path).map_err(|e| TransportError::io(member.to_owned(), e))?;
    let n = f
        .read_at(&mut head, 0)
        .map_err(|e| TransportError::io(member.to_owned(), e))?;
    let comp = compression::detect(&head[..n]);
    let (actual, size) = match comp {
        Compression::None => (digest.clone(), blob_size),
        c => {
            let limit = BOMB_FLOOR.max(blob_size.saturating_mul(BOMB_RATIO));
            let r = decompress(Box::new(f), c)?;
            let mut h = HashingReader::new(LimitedReader::new(r, limit), Algorithm::Sha256);
            std::io::copy(&mut h, &mut std::io::sink()).map_err(|e| {
                let bomb = e
                    .get_ref()
                    .and_then(|i| i.downcast_ref::<hoist_archive::Error>())
                    .is_some_and(|i| matches!(i, hoist_archive::Error::TooLarge { .. }));
                if bomb {
                    TransportError::Bomb {
                        path: member.to_owned(),
                        limit,
                        ratio: BOMB_RATIO,
                    }
                } else {
                    TransportError::Archive(format!(
                        "layer {member} does not decompress: {e}; the archive is truncated or corrupt"
                    ))
                }
            })?;
            h.finish()
        }
    };
    if &actual != diff_id {
        return Err(TransportError::DiffIdMismatch {
            path: member.to_owned(),
            expected: diff_id.clone(),
            actual,
        });
    }
    let media_type = declared
        .map(|d| d.media_type.clone())
        .unwrap_or_else(|| media_type::oci_layer(comp).to_owned());
    Ok(NewLayer {
        layer: LayerRecord {
            size,
            ..chain.clone()
        },
        blob: digest.clone(),
        media_type,
        blob_size,
    })
}

struct ProgressReader<'a, R> {
    inner: &'a mut R,
    progress: &'a dyn Progress,
    id: &'a str,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(self.id, n as u64);
        Ok(n)
    }
}

/// Builds the OCI manifest for an image that arrived without one.
fn synthesize_manifest(config: &[u8], layers: &[NewLayer]) -> Result<Vec<u8>, TransportError> {
    let m = Manifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.to_owned()),
        artifact_type: None,
        config: Descriptor::new(
            media_type::OCI_CONFIG,
            Digest::sha256(config),
            config.len() as u64,
        ),
        layers: layers
            .iter()
            .map(|l| Descriptor::new(&l.media_type, l.blob.clone(), l.blob_size))
            .collect(),
        subject: None,
        annotations: Default::default(),
    };
    serde_json::to_vec(&m)
        .map_err(|e| TransportError::Archive(format!("cannot serialise the manifest: {e}")))
}

/// Verifies the jobs, [`PARALLEL_LAYERS`] at a time, biggest first; results
/// come back in job order. The first failure stops workers taking new jobs.
fn run_jobs(
    store: &Store,
    files: &ArchiveFiles,
    jobs: Vec<Job>,
    progress: &dyn Progress,
) -> Result<Vec<(Option<StagedBlob>, NewLayer)>, TransportError> {
    let n = jobs.len();
    let mut order: Vec<usize> = (0..n).collect();
    // Ascending, popped from the end: the biggest layer starts first.
    order.sort_by_key(|&i| jobs[i].size);
    let queue = std::sync::Mutex::new((order, jobs.into_iter().map(Some).collect::<Vec<_>>()));
    let results = std::sync::Mutex::new((0..n).map(|_| None).collect::<Vec<_>>());
    let failed = std::sync::atomic::AtomicBool::new(false);
    let ingest = store.ingest();
    std::thread::scope(|s| {
        for _ in 0..PARALLEL_LAYERS.min(n) {
            s.spawn(|| loop {
                if failed.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                let next = {
                    let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                    let (order, jobs) = &mut *q;
                    order.pop().and_then(|i| jobs[i].take().map(|j| (i, j)))
                };
                let Some((i, job)) = next else { return };
                let r = verify_job(&ingest, files, job, progress);
                if r.is_err() {
                    failed.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    // The error that stopped the others, not the first job it kept from running.
    if let Some(i) = results.iter().position(|r| matches!(r, Some(Err(_)))) {
        if let Some(Err(e)) = results.swap_remove(i) {
            return Err(e);
        }
    }
    let mut out = Vec::with_capacity(n);
    for r in results {
        match r {
            Some(r) => out.push(r?),
            None => {
                return Err(TransportError::Archive(
                    "layer verification stopped after an earlier error".into(),
                ))
            }
        }
    }
    Ok(out)
}

/// What to do with a tarball that is not an image archive.
const IMPORT_HINT: &str =
    "to make an image of a root filesystem tarball, use `hoist import FILE [REPOSITORY[:TAG]]`";

/// Loads every image of an archive into the store.
pub fn load(
    store: &mut Store,
    input: LoadInput,
    progress: &dyn Progress,
) -> Result<Vec<LoadedImage>, TransportError> {
    let _lock = store.lock(LockMode::Shared)?;
    let mut files = open_input(input, store)?;
    let plans = if files.contains("manifest.json") {
        plan_docker(&files)?
    } else if files.contains("index.json") {
        plan_oci(&files)?
    } else if files.is_empty() {
        return Err(TransportError::Archive(format!(
            "the input is empty (no file in it): `hoist load` takes a `docker save` or OCI archive; {IMPORT_HINT}"
        )));
    } else {
        return Err(TransportError::Archive(format!(
            "neither manifest.json (docker save) nor index.json (OCI layout) is in the archive; {IMPORT_HINT}"
        )));
    };

    // Decide, image by image, which layers the store already has (by chainID)
    // and which archive members must be staged and verified; a member several
    // images share is one job.
    enum Slot {
        Ready(NewLayer),
        Job(usize, LayerRecord),
    }
    let mut jobs: Vec<Job> = Vec::new();
    let mut job_of: HashMap<String, usize> = HashMap::new();
    let mut planned = Vec::with_capacity(plans.len());
    for plan in plans {
        let config = Config::parse(&plan.config).map_err(doc_err(&plan.config_member))?;
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != plan.layers.len() {
            return Err(TransportError::Archive(format!(
                "{}: the config lists {} layers (rootfs.diff_ids) but the manifest lists {}",
                plan.config_member,
                diff_ids.len(),
                plan.layers.len()
            )));
        }
        let chains = chain_ids(diff_ids);
        let mut slots = Vec::with_capacity(plan.layers.len());
        for (i, pl) in plan.layers.iter().enumerate() {
            let record = LayerRecord {
                chain_id: chains[i].clone(),
                diff_id: diff_ids[i].clone(),
                parent: i.checked_sub(1).map(|p| chains[p].clone()),
                size: 0,
            };
            // Already in the store by chainID: do not read or write it again.
            if let Some(have) = store.index().layer_blob(&record.chain_id)? {
                let wanted = pl.declared.as_ref().map(|d| &d.digest);
                if store.has_blob(&have.blob) && wanted.is_none_or(|w| w == &have.blob) {
                    progress.finish(&record.diff_id.hex()[..12], true);
                    slots.push(Slot::Ready(have));
                    continue;
                }
            }
            let key = files.resolve(&pl.member)?;
            let idx = match job_of.get(&key) {
                Some(&j) => j,
                None => {
                    let size = files.content(&key)?.1.size();
                    jobs.push(Job {
                        staged: files.take_staged(&key),
                        key: key.clone(),
                        member: pl.member.clone(),
                        declared: pl.declared.clone(),
                        record: record.clone(),
                        size,
                    });
                    job_of.insert(key, jobs.len() - 1);
                    jobs.len() - 1
                }
            };
            slots.push(Slot::Job(idx, record));
        }
        planned.push((plan, config, slots));
    }

    let results = run_jobs(store, &files, jobs, progress)?;
    let mut staged: Vec<StagedBlob> = Vec::new();
    let mut verified: Vec<NewLayer> = Vec::with_capacity(results.len());
    for (s, layer) in results {
        staged.extend(s);
        verified.push(layer);
    }

    let mut images: Vec<(NewImage, Vec<Reference>)> = Vec::new();
    for (plan, config, slots) in planned {
        let mut layers = Vec::with_capacity(slots.len());
        for slot in slots {
            match slot {
                Slot::Ready(l) => layers.push(l),
                Slot::Job(j, record) => {
                    let got = &verified[j];
                    // A member shared by two images must be the layer each config names.
                    if got.layer.diff_id != record.diff_id {
                        return Err(TransportError::DiffIdMismatch {
                            path: plan.layers[layers.len()].member.clone(),
                            expected: record.diff_id,
                            actual: got.layer.diff_id.clone(),
                        });
                    }
                    layers.push(NewLayer {
                        layer: LayerRecord {
                            size: got.layer.size,
                            ..record
                        },
                        ..got.clone()
                    });
                }
            }
        }
        let id = Digest::sha256(&plan.config);
        staged.push(store.stage_bytes(&plan.config, None)?);
        let (manifest_bytes, manifest_mt) = match plan.manifest {
            Some(m) => m,
            None => (
                synthesize_manifest(&plan.config, &layers)?,
                media_type::OCI_MANIFEST.to_owned(),
            ),
        };
        let manifest = store.stage_bytes(&manifest_bytes, None)?;
        let manifest_digest = manifest.digest().clone();
        staged.push(manifest);
        images.push((
            NewImage {
                id,
                config_size: plan.config.len() as u64,
                manifest: manifest_digest,
                manifest_media_type: manifest_mt,
                created: config.created.clone(),
                layers,
                tags: plan.tags.iter().map(|t| t.to_string()).collect(),
            },
            plan.tags,
        ));
    }

    for s in staged {
        store.commit_blob(s)?;
    }
    store.sync_blobs()?;
    let mut out = Vec::new();
    for (img, tags) in images {
        let moved = store.index_mut().add_image(&img)?;
        out.push(LoadedImage {
            id: img.id,
            tags,
            moved,
        });
    }
    Ok(out)
}
