//! The copy engine: drives any [`ImageSource`] into any [`ImageDestination`].
//!
//! It resolves the source's top manifest, chooses the platforms of an index,
//! skips (or mounts) blobs the destination already has, moves the others
//! several at once on bounded scoped threads, biggest first, and reports one
//! [`Progress`]. Layers carry their diffID from the config to the
//! destination, which checks it in the same pass as the digest; manifests and
//! indexes travel as their exact bytes, after the blobs they name, unless
//! layers were compressed on the way ([`CopyOptions::compress`]): then the
//! manifests naming them, and the indexes naming those, are rewritten. With
//! [`CopyOptions::referrers`] the manifests naming a copied one as their
//! subject (signatures, SBOMs) follow it.

use crate::blobio::read_small;
use crate::compress::{compress_layer, rewrite, Compress, CompressFormat, Encoding};
use crate::destination::ImageDestination;
use crate::source::{BlobBody, ImageSource, RawManifest};
use crate::{Progress, TransportError, MAX_JSON};
use hoist_oci::{media_type, Config, Descriptor, Digest, Document, Manifest, Platform};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Which images of an index to copy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Platforms {
    /// The one for the machine hoist runs on.
    #[default]
    Host,
    /// The one for this platform.
    Only(Platform),
    /// Every image, and the index itself.
    All,
}

/// How to copy.
#[derive(Clone, Debug)]
pub struct CopyOptions {
    /// Which images of an index to copy.
    pub platforms: Platforms,
    /// Blobs moved at once.
    pub parallel: usize,
    /// Which layers to compress on the way (their manifests then change).
    pub compress: Compress,
    /// Threads each compressed layer uses; the output does not depend on it.
    pub compress_threads: usize,
    /// The compression level (gzip 0–9, zstd 1–22); None: the format's default.
    pub compress_level: Option<i32>,
    /// Copy the referrers (signatures, SBOMs…) of every manifest copied, and theirs.
    pub referrers: bool,
}

/// Blobs moved at once by default: one per core of a small machine keeps
/// both busy (one hashing a big layer while the kernel copies another).
pub const PARALLEL_BLOBS: usize = 2;

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            platforms: Platforms::Host,
            parallel: PARALLEL_BLOBS,
            compress: Compress::Keep,
            compress_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            compress_level: None,
            referrers: false,
        }
    }
}

/// One image manifest a copy moved.
#[derive(Clone, Debug)]
pub struct CopiedImage {
    /// The manifest's bytes.
    pub manifest: RawManifest,
    /// Its config's digest (the image ID).
    pub config: Digest,
}

/// What a copy moved.
#[derive(Clone, Debug)]
pub struct Copied {
    /// What the destination now names: the index with [`Platforms::All`],
    /// else the chosen image manifest.
    pub top: RawManifest,
    /// Every image manifest copied.
    pub images: Vec<CopiedImage>,
}

/// Copies the image `src` names into `dst`, names it by `tags` and commits.
pub fn copy(
    src: &dyn ImageSource,
    dst: Box<dyn ImageDestination + '_>,
    tags: &[String],
    opts: &CopyOptions,
    progress: &dyn Progress,
) -> Result<Copied, TransportError> {
    let copied = copy_image(src, dst.as_ref(), opts, progress)?;
    dst.tag(&copied.top, tags)?;
    dst.commit()?;
    Ok(copied)
}

/// Copies the image `src` names into `dst` without tagging or committing,
/// so that several images can go into one destination (an archive).
pub fn copy_image(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    opts: &CopyOptions,
    progress: &dyn Progress,
) -> Result<Copied, TransportError> {
    let top = src.top()?;
    let mut plan = Plan {
        compress: opts.compress,
        ..Plan::default()
    };
    let mut top = plan.walk(src, top, &opts.platforms, dst.wants_diff_ids(), 0)?;
    if opts.referrers {
        // Referrers travel along but are not images of the copy.
        let images = plan.images.len();
        plan.referrers(src)?;
        plan.images.truncate(images);
    }
    let how = How {
        threads: opts.compress_threads.max(1),
        level: opts.compress_level,
        diff_ids: dst.wants_diff_ids(),
    };
    // Old digest to new descriptor, for every layer compressed and every
    // manifest rewritten because of it.
    let mut new = run_blobs(src, dst, plan.blobs, opts.parallel.max(1), &how, progress)?;
    let mut images = plan.images;
    // Children come before the indexes naming them, so each index sees its
    // children's new digests.
    for m in &plan.manifests {
        let m = match rewrite(m, &new)? {
            Some(changed) => {
                for image in images.iter_mut().filter(|i| i.manifest.digest == m.digest) {
                    image.manifest = changed.clone();
                }
                if top.digest == m.digest {
                    top = changed.clone();
                }
                new.insert(m.digest.clone(), changed.descriptor());
                changed
            }
            None => m.clone(),
        };
        dst.put_manifest(&m)?;
    }
    Ok(Copied { top, images })
}

/// How blobs are moved, the same for every job of a copy.
struct How {
    /// Threads compressing one layer.
    threads: usize,
    /// The compression level, when not the default.
    level: Option<i32>,
    /// True when the destination checks diffIDs.
    diff_ids: bool,
}

/// One blob to move.
struct Job {
    desc: Descriptor,
    diff_id: Option<Digest>,
    /// The format to compress the layer into, when it must be.
    compress: Option<CompressFormat>,
}

/// What a copy must move, in order: blobs, then manifests children first.
#[derive(Default)]
struct Plan {
    blobs: Vec<Job>,
    seen: HashSet<Digest>,
    manifests: Vec<RawManifest>,
    images: Vec<CopiedImage>,
    compress: Compress,
}

/// Indexes nest at most this deep.
const MAX_DEPTH: usize = 4;

fn doc_err(what: &str) -> impl FnOnce(hoist_oci::DocumentError) -> TransportError + '_ {
    move |source| TransportError::Document {
        what: what.to_owned(),
        source,
    }
}

impl Plan {
    fn add_blob(&mut self, desc: Descriptor, diff_id: Option<Digest>) {
        if self.seen.insert(desc.digest.clone()) {
            let compress = self.compress.target(&desc);
            self.blobs.push(Job {
                desc,
                diff_id,
                compress,
            });
        }
    }

    /// Plans the referrers of every manifest planned, theirs too, each
    /// after its subject.
    fn referrers(&mut self, src: &dyn ImageSource) -> Result<(), TransportError> {
        let mut planned: HashSet<Digest> =
            self.manifests.iter().map(|m| m.digest.clone()).collect();
        let mut i = 0;
        while i < self.manifests.len() {
            let subject = self.manifests[i].descriptor();
            for r in src.referrers(&subject)? {
                if planned.insert(r.digest.clone()) {
                    let raw = src.manifest(&r)?;
                    self.walk(src, raw, &Platforms::All, false, 0)?;
                }
            }
            i += 1;
        }
        Ok(())
    }

    /// Plans one manifest or index; returns what the destination will name.
    fn walk(
        &mut self,
        src: &dyn ImageSource,
        raw: RawManifest,
        platforms: &Platforms,
        diff_ids: bool,
        depth: usize,
    ) -> Result<RawManifest, TransportError> {
        let what = format!("manifest {}", raw.digest);
        match Document::parse(&raw.bytes, Some(&raw.media_type)).map_err(doc_err(&what))? {
            Document::Manifest(m) => {
                self.image(src, &raw, *m, diff_ids)?;
                self.manifests.push(raw.clone());
                Ok(raw)
            }
            Document::Index(idx) => {
                if depth >= MAX_DEPTH {
                    return Err(TransportError::Archive(format!(
                        "{what}: indexes nest more than {MAX_DEPTH} deep"
                    )));
                }
                match platforms {
                    Platforms::All => {
                        for d in &idx.manifests {
                            let child = src.manifest(d)?;
                            self.walk(src, child, platforms, diff_ids, depth + 1)?;
                        }
                        self.manifests.push(raw.clone());
                        Ok(raw)
                    }
                    Platforms::Host | Platforms::Only(_) => {
                        let want = match platforms {
                            Platforms::Only(p) => p.clone(),
                            _ => Platform::host(),
                        };
                        let pick = choose(&idx.manifests, &want).ok_or_else(|| {
                            TransportError::NoSuchImage(format!(
                                "{what} (an index) has no image for {want}; choose one with --platform or copy them all with --all"
                            ))
                        })?;
                        let child = src.manifest(pick)?;
                        self.walk(src, child, platforms, diff_ids, depth + 1)
                    }
                }
            }
        }
    }

    /// Plans the blobs of one image manifest.
    fn image(
        &mut self,
        src: &dyn ImageSource,
        raw: &RawManifest,
        m: Manifest,
        diff_ids: bool,
    ) -> Result<(), TransportError> {
        let is_image = media_type::is_config(&m.config.media_type);
        let mut ids: Vec<Option<Digest>> = vec![None; m.layers.len()];
        // A layer compressed here gets its diffID checked too: the config
        // keeps naming it.
        let compresses = m.layers.iter().any(|l| self.compress.target(l).is_some());
        if (diff_ids || compresses) && is_image {
            // The config is read here to pair each layer with its diffID; it
            // then travels from memory.
            let what = m.config.digest.to_string();
            let blame = |e| src.blame(&m.config, e);
            let bytes = read_small(src.blob(&m.config, 0)?, MAX_JSON, &what).map_err(blame)?;
            RawManifest::verified(bytes.clone(), &m.config, &what).map_err(blame)?;
            let config = Config::parse(&bytes)
                .map_err(doc_err(&what))
                .map_err(blame)?;
            let diff = config.rootfs.diff_ids;
            if diff.len() != m.layers.len() {
                return Err(blame(TransportError::Archive(format!(
                    "{what}: the config lists {} layers (rootfs.diff_ids) but manifest {} lists {}",
                    diff.len(),
                    raw.digest,
                    m.layers.len()
                ))));
            }
            ids = diff.into_iter().map(Some).collect();
        }
        self.add_blob(m.config.clone(), None);
        for (l, id) in m.layers.iter().zip(ids) {
            self.add_blob(l.clone(), id);
        }
        self.images.push(CopiedImage {
            manifest: raw.clone(),
            config: m.config.digest.clone(),
        });
        Ok(())
    }
}

/// The index entry for `want`: an exact platform match first, else one without a platform.
pub fn choose<'a>(entries: &'a [Descriptor], want: &Platform) -> Option<&'a Descriptor> {
    entries
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(|p| want.matches(p)))
        .or_else(|| entries.iter().find(|d| d.platform.is_none()))
}

/// The short name progress shows for a blob: its diffID's for a layer.
fn short(job: &Job) -> String {
    let d = job.diff_id.as_ref().unwrap_or(&job.desc.digest);
    d.hex()[..12].to_owned()
}

/// Moves one blob; returns the new descriptor of a layer it compressed.
fn move_blob(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    job: &Job,
    how: &How,
    progress: &dyn Progress,
) -> Result<Option<Descriptor>, TransportError> {
    if let Some(format) = job.compress {
        return compress_blob(src, dst, job, format, how, progress).map(Some);
    }
    let id = short(job);
    let diff_id = job.diff_id.as_ref().filter(|_| how.diff_ids);
    // Progress is about layers, as Docker shows it; configs move silently.
    let shown = !media_type::is_config(&job.desc.media_type);
    if dst.has_blob(&job.desc)? || dst.mount_blob(&job.desc)? {
        if shown {
            progress.finish(&id, true);
        }
        return Ok(None);
    }
    let blame = |e| src.blame(&job.desc, e);
    let body = src.blob(&job.desc, 0).map_err(blame)?;
    // A staged body was reported while it streamed in.
    let shown = shown && !matches!(body, BlobBody::Staged { .. });
    if shown {
        progress.start(&id, job.desc.size);
    }
    let advance = |n: u64| {
        if shown {
            progress.advance(&id, n)
        }
    };
    dst.put_blob(&job.desc, diff_id, body, &advance)
        .map_err(blame)?;
    if shown {
        progress.finish(&id, false);
    }
    Ok(None)
}

/// Compresses a layer, then puts it unless the destination has the result.
fn compress_blob(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    job: &Job,
    format: CompressFormat,
    how: &How,
    progress: &dyn Progress,
) -> Result<Descriptor, TransportError> {
    let id = short(job);
    let blame = |e| src.blame(&job.desc, e);
    let body = src.blob(&job.desc, 0).map_err(blame)?;
    progress.start(&id, job.desc.size);
    let advance = |n: u64| progress.advance(&id, n);
    let what = format!("layer {}", job.desc.digest);
    let layer = compress_layer(
        &what,
        body,
        &job.desc,
        job.diff_id.as_ref(),
        &Encoding {
            format,
            level: how.level,
            threads: how.threads,
        },
        &advance,
    )
    .map_err(blame)?;
    let desc = layer.desc.clone();
    // Compression is deterministic: a layer sent before compresses to the same digest.
    if !(dst.has_blob(&desc)? || dst.mount_blob(&desc)?) {
        let diff_id = job.diff_id.as_ref().filter(|_| how.diff_ids);
        dst.put_blob(&desc, diff_id, layer.body(), &|_| {})?;
    }
    progress.finish(&id, false);
    Ok(desc)
}

/// Moves the jobs, `parallel` at a time, biggest first. The first failure
/// stops the workers taking new jobs and is the error returned.
fn run_blobs(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    mut jobs: Vec<Job>,
    parallel: usize,
    how: &How,
    progress: &dyn Progress,
) -> Result<HashMap<Digest, Descriptor>, TransportError> {
    // Ascending, popped from the end: the biggest blob starts first.
    jobs.sort_by_key(|j| j.desc.size);
    let queue = Mutex::new(jobs);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<TransportError>> = Mutex::new(None);
    let new = Mutex::new(HashMap::new());
    let workers = parallel.min(queue.lock().map(|q| q.len()).unwrap_or(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                if failed.load(Ordering::Relaxed) {
                    return;
                }
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
                let Some(job) = next else { return };
                match move_blob(src, dst, &job, how, progress) {
                    Ok(None) => {}
                    Ok(Some(d)) => {
                        new.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(job.desc.digest.clone(), d);
                    }
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        first_error
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(new.into_inner().unwrap_or_else(|e| e.into_inner())),
    }
}
