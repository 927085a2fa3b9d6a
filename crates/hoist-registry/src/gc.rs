//! Mark-and-sweep garbage collection of a registry root, safe to run while
//! `hoist serve` (or `docker-registry`) serves pushes on the same root.
//!
//! Mark: in every repository, the manifests to keep are every revision (or,
//! with `delete_untagged`, the tagged ones, the children of kept indexes,
//! the referrers of kept manifests, and revisions linked after the
//! collection started), and everything they reference.
//!
//! Sweep: a blob that nothing marked is deleted only when its `data` file
//! was last modified before the collection started (minus a grace period).
//! The server sets that mtime to "now" *before* checking that a blob exists
//! whenever it makes the blob newly referenced (upload commit, mount, link,
//! manifest PUT); the collector moves the blob aside, then re-reads the mtime
//! and puts the blob back if it changed. So a blob referenced during a
//! collection is either kept, or the referencing request saw it missing and
//! failed cleanly — it is never referenced and deleted (distribution#3045).
//!
//! The same protocol runs on every storage driver, through
//! [`crate::claims`]: on S3 the "mtime" is the later of the object's and its
//! claim marker's time, and "moving aside" is a copy and a delete.

use crate::claims;
use crate::driver::{Driver, StorageConfig};
use crate::error::Result;
use crate::names::{RepoName, Tag, UploadId};
use crate::store::Store;
use hoist_oci::{Algorithm, Digest, Document};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How far the filesystem's timestamps may lag the system clock (Linux
/// stamps files with a coarse clock, a tick behind `SystemTime::now`).
const CLOCK_SLOP: Duration = Duration::from_secs(2);

/// What a collection does.
#[derive(Clone, Debug)]
pub struct GcOptions {
    /// Also delete manifests no tag reaches (keeping index children and
    /// referrers of kept manifests).
    pub delete_untagged: bool,
    /// Report only; change nothing.
    pub dry_run: bool,
    /// Keep anything modified less than this long before the collection started.
    pub grace: Duration,
    /// Delete upload sessions older than this.
    pub upload_max_age: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            delete_untagged: false,
            dry_run: false,
            grace: Duration::from_secs(0),
            upload_max_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// What a collection found and did.
#[derive(Clone, Debug, Default)]
pub struct GcReport {
    /// Repositories walked.
    pub repositories: usize,
    /// Distinct blobs marked in use (manifests included).
    pub marked: usize,
    /// Manifests deleted (or, in a dry run, that would be).
    pub manifests_deleted: Vec<(String, Digest)>,
    /// Blobs deleted (or that would be), with their sizes.
    pub blobs_deleted: Vec<(Digest, u64)>,
    /// Unreferenced blobs kept because they were modified too recently.
    pub blobs_kept_recent: usize,
    /// Upload sessions deleted for age.
    pub uploads_purged: usize,
}

impl GcReport {
    /// Bytes freed (or that would be).
    pub fn bytes_freed(&self) -> u64 {
        self.blobs_deleted.iter().map(|(_, s)| s).sum()
    }
}

/// Manifests bigger than this are not read (distribution accepts any size;
/// this only bounds the collector's memory).
const MAX_MANIFEST_READ: u64 = 64 << 20;

/// The references of one manifest.
#[derive(Clone, Debug, Default)]
struct Refs {
    /// Blobs it needs (config, layers).
    blobs: Vec<Digest>,
    /// Manifests it lists (an index's children).
    children: Vec<Digest>,
    /// The manifest it refers to.
    subject: Option<Digest>,
}

impl Refs {
    fn of(bytes: &[u8]) -> Refs {
        match Document::parse(bytes, None) {
            Ok(Document::Manifest(m)) => Refs {
                blobs: std::iter::once(&m.config)
                    .chain(&m.layers)
                    .map(|x| x.digest.clone())
                    .collect(),
                children: Vec::new(),
                subject: m.subject.map(|s| s.digest),
            },
            Ok(Document::Index(i)) => Refs {
                blobs: Vec::new(),
                children: i.manifests.into_iter().map(|x| x.digest).collect(),
                subject: i.subject.map(|s| s.digest),
            },
            // Schema 1 (`fsLayers[].blobSum`, still found in old
            // docker-registry directories) or anything else: keep every
            // digest the JSON mentions. Over-marking only keeps more.
            Err(_) => {
                let mut blobs = Vec::new();
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) {
                    collect_digests(&v, &mut blobs);
                }
                Refs {
                    blobs,
                    ..Refs::default()
                }
            }
        }
    }
}

fn collect_digests(v: &serde_json::Value, out: &mut Vec<Digest>) {
    match v {
        serde_json::Value::String(s) => {
            if let Ok(d) = s.parse::<Digest>() {
                out.push(d);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_digests(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| collect_digests(x, out)),
        _ => {}
    }
}

struct Collector<'a> {
    store: &'a Store,
    opts: &'a GcOptions,
    started: SystemTime,
    cutoff: SystemTime,
    docs: HashMap<Digest, Refs>,
    marked: HashSet<Digest>,
    report: GcReport,
}

/// Runs a collection on the registry root `root` (a directory).
pub fn collect(root: &Path, opts: &GcOptions) -> Result<GcReport> {
    collect_storage(&StorageConfig::Filesystem(root.to_owned()), opts)
}

/// Runs a collection on any storage. Inside a tokio runtime, call it from
/// a thread that may block (`spawn_blocking`).
pub fn collect_storage(storage: &StorageConfig, opts: &GcOptions) -> Result<GcReport> {
    let store = Store::open_storage(storage)?;
    // The storage's own clock: the times compared against it are its own.
    let started = store.driver.now()?;
    let cutoff = started
        .checked_sub(opts.grace + CLOCK_SLOP)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut c = Collector {
        store: &store,
        opts,
        started,
        cutoff,
        docs: HashMap::new(),
        marked: HashSet::new(),
        report: GcReport::default(),
    };
    let repos = store.catalog()?;
    c.report.repositories = repos.len();
    for repo in &repos {
        let Ok(name) = RepoName::new(repo) else {
            continue;
        };
        c.mark_repo(&name)?;
    }
    c.report.marked = c.marked.len();
    c.sweep_blobs()?;
    for repo in &repos {
        let Ok(name) = RepoName::new(repo) else {
            continue;
        };
        c.prune_layer_links(&name)?;
    }
    c.purge_uploads()?;
    Ok(c.report)
}

impl Collector<'_> {
    fn driver(&self) -> &dyn Driver {
        &*self.store.driver
    }

    /// Used at or after the cutoff. A storage that cannot say counts as
    /// recent: better keep than delete on a guess.
    fn recent(&self, path: &Path) -> bool {
        match claims::last_used(self.driver(), path) {
            Ok(t) => t.is_some_and(|t| t >= self.cutoff),
            Err(_) => true,
        }
    }

    fn aside_recent(&self, path: &Path, aside: &Path) -> bool {
        match claims::aside_last_used(self.driver(), path, aside) {
            Ok(t) => t.is_some_and(|t| t >= self.cutoff),
            Err(_) => true,
        }
    }

    /// What a manifest references, read once. An unreadable store aborts
    /// the collection (better no sweep than a sweep on partial marks).
    fn refs(&mut self, d: &Digest) -> Result<&Refs> {
        if !self.docs.contains_key(d) {
            let path = self.store.layout().blob_data(d);
            let refs = match self.driver().get(&path, MAX_MANIFEST_READ)? {
                None => Refs::default(),
                Some(bytes) => Refs::of(&bytes),
            };
            self.docs.insert(d.clone(), refs);
        }
        Ok(&self.docs[d])
    }

    /// Marks a kept manifest and everything it references.
    fn mark_manifest(&mut self, d: &Digest) -> Result<()> {
        if !self.marked.insert(d.clone()) {
            return Ok(());
        }
        let Refs {
            blobs, children, ..
        } = self.refs(d)?.clone();
        self.marked.extend(blobs);
        // Children are manifests: marked with their own references.
        for c in &children {
            self.mark_manifest(c)?;
        }
        Ok(())
    }

    fn children(&mut self, d: &Digest) -> Result<Vec<Digest>> {
        Ok(self.refs(d)?.children.clone())
    }

    fn subject(&mut self, d: &Digest) -> Result<Option<Digest>> {
        Ok(self.refs(d)?.subject.clone())
    }

    fn tagged(&self, name: &RepoName) -> Result<HashSet<Digest>> {
        let mut out = HashSet::new();
        let tags = match self.store.tags(name) {
            Ok(t) => t,
            // The repository vanished while we walked: nothing tagged.
            Err(crate::Error::NameUnknown(_)) => Vec::new(),
            Err(e) => return Err(e),
        };
        for t in tags {
            let Ok(t) = Tag::new(&t) else { continue };
            if let Some(d) = self.store.resolve_tag(name, &t)? {
                out.insert(d);
            }
        }
        Ok(out)
    }

    fn mark_repo(&mut self, name: &RepoName) -> Result<()> {
        let revisions = self.store.revisions(name)?;
        if !self.opts.delete_untagged {
            for d in &revisions {
                self.mark_manifest(d)?;
            }
            return Ok(());
        }
        let layout = self.store.layout().clone();
        let mut keep: HashSet<Digest> = HashSet::new();
        let mut todo: Vec<Digest> = self.tagged(name)?.into_iter().collect();
        for d in &revisions {
            // Linked after the collection started: a push in flight.
            if self.recent(&layout.revision_link(name, d)) {
                todo.push(d.clone());
            }
        }
        loop {
            while let Some(d) = todo.pop() {
                if keep.insert(d.clone()) {
                    todo.extend(self.children(&d)?);
                }
            }
            // Referrers (signatures, SBOMs) of kept manifests stay too.
            for d in &revisions {
                if !keep.contains(d) && self.subject(d)?.is_some_and(|s| keep.contains(&s)) {
                    todo.push(d.clone());
                }
            }
            if todo.is_empty() {
                break;
            }
        }
        for d in &revisions {
            if keep.contains(d) {
                self.mark_manifest(d)?;
            } else if self.delete_revision(name, d)? {
                self.report
                    .manifests_deleted
                    .push((name.as_str().to_owned(), d.clone()));
            } else {
                self.mark_manifest(d)?;
            }
        }
        Ok(())
    }

    /// Deletes an untagged revision link, unless it was touched or tagged
    /// meanwhile. Returns whether it is (or, dry, would be) gone.
    fn delete_revision(&mut self, name: &RepoName, d: &Digest) -> Result<bool> {
        if self.opts.dry_run {
            return Ok(true);
        }
        let link = self.store.layout().revision_link(name, d);
        let Some(tomb) = claims::set_aside(self.driver(), &link)? else {
            return Ok(false);
        };
        let retagged = self.tagged(name)?.contains(d);
        if retagged || self.aside_recent(&link, &tomb) {
            claims::restore(self.driver(), &tomb, &link)?;
            return Ok(false);
        }
        claims::drop_aside(self.driver(), &tomb, &link)?;
        if let (Some(dir), Some(stop)) = (link.parent(), link.parent().and_then(Path::parent)) {
            self.driver().prune_empty_dirs(dir, stop);
        }
        Ok(true)
    }

    fn sweep_blobs(&mut self) -> Result<()> {
        let layout = self.store.layout().clone();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let alg_dir = layout.blobs_root().join(alg.as_str());
            for (prefix, is_dir) in self.driver().list(&alg_dir)? {
                if !is_dir {
                    continue;
                }
                for (hex, _) in self.driver().list(&alg_dir.join(&prefix))? {
                    let Ok(d) = Digest::new(alg, &hex) else {
                        continue;
                    };
                    if d.hex()[..2] != prefix || self.marked.contains(&d) {
                        continue;
                    }
                    self.sweep_blob(&d)?;
                }
                self.driver()
                    .prune_empty_dirs(&alg_dir.join(&prefix), &alg_dir);
            }
        }
        Ok(())
    }

    fn sweep_blob(&mut self, d: &Digest) -> Result<()> {
        let data = self.store.layout().blob_data(d);
        let Some(size) = self.driver().stat(&data)?.map(|i| i.size) else {
            return Ok(());
        };
        if self.recent(&data) {
            self.report.blobs_kept_recent += 1;
            return Ok(());
        }
        if self.opts.dry_run {
            self.report.blobs_deleted.push((d.clone(), size));
            return Ok(());
        }
        // Move aside, then look again: a request that claimed the blob
        // before the move changed the mtime of this very inode (on S3, its
        // claim marker).
        let Some(tomb) = claims::set_aside(self.driver(), &data)? else {
            return Ok(());
        };
        if self.aside_recent(&data, &tomb) {
            claims::restore(self.driver(), &tomb, &data)?;
            self.report.blobs_kept_recent += 1;
            return Ok(());
        }
        claims::drop_aside(self.driver(), &tomb, &data)?;
        if let (Some(dir), Some(stop)) = (data.parent(), data.parent().and_then(Path::parent)) {
            self.driver().prune_empty_dirs(dir, stop);
        }
        self.report.blobs_deleted.push((d.clone(), size));
        Ok(())
    }

    /// Removes `_layers` links to blobs that no longer exist (old links only).
    fn prune_layer_links(&mut self, name: &RepoName) -> Result<()> {
        if self.opts.dry_run {
            return Ok(());
        }
        let layout = self.store.layout().clone();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = layout.layers_dir(name).join(alg.as_str());
            for (hex, _) in self.driver().list(&dir)? {
                let Ok(d) = Digest::new(alg, &hex) else {
                    continue;
                };
                let link = dir.join(&hex).join("link");
                if self.store.blob_data_size(&d)?.is_some() || self.recent(&link) {
                    continue;
                }
                claims::delete(self.driver(), &link)?;
                self.driver().prune_empty_dirs(&dir.join(&hex), &dir);
            }
        }
        Ok(())
    }

    fn purge_uploads(&mut self) -> Result<()> {
        let Some(limit) = self.started.checked_sub(self.opts.upload_max_age) else {
            return Ok(());
        };
        let layout = self.store.layout().clone();
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut stack = vec![layout.repos_root()];
        while let Some(dir) = stack.pop() {
            for (entry, is_dir) in self.driver().list(&dir)? {
                if !is_dir {
                    continue;
                }
                if entry == "_uploads" {
                    dirs.push(dir.join(entry));
                } else if !entry.starts_with('_') {
                    stack.push(dir.join(entry));
                }
            }
        }
        for uploads in dirs {
            for (id, _) in self.driver().list(&uploads)? {
                if UploadId::new(&id).is_err() {
                    continue;
                }
                let dir = uploads.join(&id);
                let newest = claims::newest_under(self.driver(), &dir)?;
                if newest.is_none_or(|t| t >= limit) {
                    continue;
                }
                if !self.opts.dry_run {
                    if let Err(e) = self.driver().delete_tree(&dir) {
                        // Reused while we removed it: leave it be.
                        tracing::warn!(upload = %dir.display(), error = %e, "upload not purged");
                        continue;
                    }
                }
                self.report.uploads_purged += 1;
            }
        }
        // Old scratch files (a crash mid-write) can go the same way.
        if !self.opts.dry_run {
            for (f, _) in self.driver().list(&layout.tmp_dir())? {
                let p = layout.tmp_dir().join(f);
                if claims::last_used(self.driver(), &p).is_ok_and(|t| t.is_some_and(|t| t < limit))
                {
                    let _ = self.driver().delete(&p);
                }
            }
        }
        Ok(())
    }
}
