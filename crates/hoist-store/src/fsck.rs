//! `fsck`: re-hash every blob, check the index against the blobs it names,
//! and, when asked, repair by deleting what is corrupt and dropping the images
//! that can no longer be read.
//!
//! Unreferenced blobs and `ingest/` leftovers are *not* problems: a process
//! killed between committing blobs and indexing them leaves exactly that, and
//! the store is still valid. They are reported as reclaimable.

use crate::{ImageRecord, LockMode, Store, StoreError};
use hoist_archive::{compression, HashingReader};
use hoist_oci::{chain_ids, Config, Digest, Document, Reference};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Largest config or manifest fsck reads (as `hoist-transport`'s `MAX_JSON`).
const MAX_JSON: u64 = 16 * 1024 * 1024;
/// The read buffer for hashing; large reads keep the hash loop busy.
const BUF: usize = 1 << 20;
/// Blobs are hashed on at most this many threads.
const MAX_THREADS: usize = 4;

/// What kind of problem fsck found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum ProblemKind {
    /// A blob whose bytes do not hash to its name.
    CorruptBlob,
    /// A file under `blobs/` whose name is not a digest.
    StrayFile,
    /// SQLite's own integrity check failed, or the index holds invalid data.
    Index,
    /// An image whose blobs are missing, corrupt or disagree with the index.
    BrokenImage,
    /// A tag pointing to an image the index does not have.
    DanglingTag,
}

/// What `--repair` does about a problem.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    DeleteBlob(Digest),
    DeleteFile(PathBuf),
    DropImage(Digest),
    DropTag(String),
}

/// One problem, worded to name the thing and the fix.
#[derive(Clone, Debug)]
pub struct Problem {
    /// The kind of problem.
    pub kind: ProblemKind,
    /// What is broken: `blob sha256:…`, `image sha256:… (name:tag)`, `index.db`, a path.
    pub subject: String,
    /// What is wrong with it.
    pub detail: String,
    /// How to fix it.
    pub fix: String,
    actions: Vec<Action>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}; fix: {}", self.subject, self.detail, self.fix)
    }
}

/// What fsck found.
#[derive(Clone, Debug, Default)]
pub struct FsckReport {
    /// Every problem; empty when the store is clean.
    pub problems: Vec<Problem>,
    /// Blobs re-hashed.
    pub blobs_checked: usize,
    /// Bytes re-hashed.
    pub bytes_checked: u64,
    /// Images checked.
    pub images_checked: usize,
    /// Intact blobs no image refers to, with their sizes (reclaimable, not errors).
    pub unreferenced_blobs: Vec<(Digest, u64)>,
    /// Files in `ingest/` (partial or uncommitted writes), with their sizes.
    pub ingest_leftovers: Vec<(PathBuf, u64)>,
}

impl FsckReport {
    /// True when there is no problem (reclaimable leftovers do not count).
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// Bytes `--repair` or `hoist image prune` would reclaim from leftovers.
    pub fn reclaimable_bytes(&self) -> u64 {
        self.unreferenced_blobs.iter().map(|b| b.1).sum::<u64>()
            + self.ingest_leftovers.iter().map(|b| b.1).sum::<u64>()
    }
}

/// What `--repair` did.
#[derive(Clone, Debug, Default)]
pub struct RepairReport {
    /// Corrupt blobs deleted.
    pub deleted_blobs: Vec<Digest>,
    /// Stray files deleted from `blobs/`.
    pub deleted_files: Vec<PathBuf>,
    /// Images dropped from the index, with the tags they had.
    pub dropped_images: Vec<(Digest, Vec<String>)>,
    /// Tags dropped because their image was gone.
    pub dropped_tags: Vec<String>,
    /// Unreferenced blobs swept afterwards.
    pub swept_blobs: Vec<Digest>,
    /// Bytes the sweep freed (blobs; `ingest/` is emptied too).
    pub swept_bytes: u64,
}

/// The result of re-hashing one blob.
struct BlobCheck {
    size: u64,
    /// The digest of the bytes, or why they could not be read.
    actual: Result<Digest, String>,
    /// For layer blobs: the uncompressed content's sha256 and size, or why it does not decompress.
    diff: Option<Result<(Digest, u64), String>>,
}

/// Reads everything from `r` into a sink, with a large buffer.
fn drain(r: &mut impl Read, buf: &mut [u8]) -> io::Result<u64> {
    let mut n = 0;
    loop {
        match r.read(buf) {
            Ok(0) => return Ok(n),
            Ok(k) => n += k as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Hashes a blob file in one pass; for a layer, also decompresses and hashes its diffID.
fn check_blob(path: &Path, digest: &Digest, is_layer: bool, buf: &mut [u8]) -> BlobCheck {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            return BlobCheck {
                size: 0,
                actual: Err(format!("cannot open it: {e}")),
                diff: None,
            }
        }
    };
    // A plain tar's diffID is its digest: decompress (and hash twice) only compressed layers.
    let mut head = [0u8; compression::MAGIC_LEN];
    let n = file.read_at(&mut head, 0).unwrap_or(0);
    let compressed = compression::detect(&head[..n]) != hoist_oci::media_type::Compression::None;
    let mut hr = HashingReader::new(BufReader::with_capacity(BUF, file), digest.algorithm());
    let mut diff = None;
    if is_layer && compressed {
        let mut dhash = hoist_oci::Digester::new(hoist_oci::Algorithm::Sha256);
        let result = compression::sniff(&mut hr)
            .and_then(|(c, sniffed)| compression::decompress_reader(sniffed, c))
            .and_then(|mut plain| {
                let mut n = 0u64;
                loop {
                    match plain.read(buf) {
                        Ok(0) => return Ok(n),
                        Ok(k) => {
                            dhash.update(&buf[..k]);
                            n += k as u64;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
            });
        diff = Some(
            result
                .map(|n| (dhash.finish(), n))
                .map_err(|e| format!("it does not decompress: {e}")),
        );
    }
    // The decompressor may stop at its end marker: hash the rest too.
    if let Err(e) = drain(&mut hr, buf) {
        return BlobCheck {
            size: hr.count(),
            actual: Err(format!("cannot read it: {e}")),
            diff: None,
        };
    }
    let (actual, size) = hr.finish();
    if is_layer && !compressed {
        let plain = if digest.algorithm() == hoist_oci::Algorithm::Sha256 {
            Ok((actual.clone(), size))
        } else {
            Err(
                "a plain layer stored under a sha512 name cannot be checked against its diffID"
                    .into(),
            )
        };
        diff = Some(plain);
    }
    BlobCheck {
        size,
        actual: Ok(actual),
        diff,
    }
}

/// Names an image with its tags for problem lines.
fn image_subject(img: &ImageRecord) -> String {
    if img.tags.is_empty() {
        return format!("image {}", img.id);
    }
    let names: Vec<String> = img
        .tags
        .iter()
        .map(|t| Reference::parse(t).map_or_else(|_| t.clone(), |r| r.familiar()))
        .collect();
    format!("image {} ({})", img.id, names.join(", "))
}

const FIX_IMAGE: &str = "`hoist fsck --repair` drops the image; load or pull it again afterwards";

fn broken(img: &ImageRecord, detail: String) -> Problem {
    Problem {
        kind: ProblemKind::BrokenImage,
        subject: image_subject(img),
        detail,
        fix: FIX_IMAGE.into(),
        actions: vec![Action::DropImage(img.id.clone())],
    }
}

/// Checks an image's manifest and config against the index; `ok` tells which blobs are intact.
fn check_image(
    store: &Store,
    img: &ImageRecord,
    ok: &BTreeMap<Digest, u64>,
    problems: &mut Vec<Problem>,
) {
    let mut missing = false;
    let mut blobs = vec![("config", &img.id), ("manifest", &img.manifest)];
    blobs.extend(img.layers.iter().map(|l| ("layer", &l.blob)));
    for (role, d) in &blobs {
        if !ok.contains_key(*d) && !store.has_blob(d) {
            problems.push(broken(img, format!("its {role} blob {d} is missing")));
            missing = true;
        }
    }
    for (i, l) in img.layers.iter().enumerate() {
        if let Some(&size) = ok.get(&l.blob) {
            if size != l.blob_size {
                problems.push(broken(
                    img,
                    format!(
                        "layer {i} blob {} is {size} bytes but the index records {}",
                        l.blob, l.blob_size
                    ),
                ));
            }
        }
        let parent = i.checked_sub(1).map(|p| &img.layers[p].layer.chain_id);
        if l.layer.parent.as_ref() != parent {
            problems.push(broken(
                img,
                format!(
                    "layer {i} ({}) has parent {:?} in the index but sits on {:?}",
                    l.layer.chain_id, l.layer.parent, parent
                ),
            ));
        }
    }
    if missing {
        return;
    }
    // Corrupt config or manifest blobs are reported on their own; parse only intact ones.
    if let Some(&size) = ok.get(&img.id) {
        if size != img.config_size {
            problems.push(broken(
                img,
                format!(
                    "its config is {size} bytes but the index records {}",
                    img.config_size
                ),
            ));
        }
        match store
            .read_blob(&img.id, MAX_JSON)
            .map_err(|e| e.to_string())
            .and_then(|b| Config::parse(&b).map_err(|e| e.to_string()))
        {
            Err(e) => problems.push(broken(img, format!("its config is not valid: {e}"))),
            Ok(config) => {
                let want: Vec<&Digest> = img.layers.iter().map(|l| &l.layer.diff_id).collect();
                let have: Vec<&Digest> = config.rootfs.diff_ids.iter().collect();
                if want != have {
                    problems.push(broken(
                        img,
                        format!(
                            "its config lists {} diffIDs that differ from the {} layers in the index",
                            have.len(),
                            want.len()
                        ),
                    ));
                } else {
                    let chains = chain_ids(&config.rootfs.diff_ids);
                    for (i, (c, l)) in chains.iter().zip(&img.layers).enumerate() {
                        if c != &l.layer.chain_id {
                            problems.push(broken(
                                img,
                                format!(
                                    "layer {i}: the index records chainID {} but the config's diffIDs give {c}",
                                    l.layer.chain_id
                                ),
                            ));
                        }
                    }
                }
            }
        }
    }
    if ok.contains_key(&img.manifest) {
        let manifest = store
            .read_blob(&img.manifest, MAX_JSON)
            .map_err(|e| e.to_string())
            .and_then(|b| Document::parse(&b, None).map_err(|e| e.to_string()));
        match manifest {
            Err(e) => problems.push(broken(img, format!("its manifest is not valid: {e}"))),
            Ok(Document::Index(_)) => problems.push(broken(
                img,
                format!(
                    "its manifest {} is an index, not an image manifest",
                    img.manifest
                ),
            )),
            Ok(Document::Manifest(m)) => {
                if m.config.digest != img.id || m.config.size != img.config_size {
                    problems.push(broken(
                        img,
                        format!(
                            "its manifest {} names config {} ({} bytes), not this image's config",
                            img.manifest, m.config.digest, m.config.size
                        ),
                    ));
                }
                let same = m.layers.len() == img.layers.len()
                    && m.layers
                        .iter()
                        .zip(&img.layers)
                        .all(|(d, l)| d.digest == l.blob && d.size == l.blob_size);
                if !same {
                    problems.push(broken(
                        img,
                        format!(
                            "its manifest {} lists layers other than the index's",
                            img.manifest
                        ),
                    ));
                }
            }
        }
    }
}

impl Store {
    /// Checks the whole store under the shared lock (writers may go on;
    /// deleters wait). Read-only.
    pub fn fsck(&self) -> Result<FsckReport, StoreError> {
        let _lock = self.lock(LockMode::Shared)?;
        self.fsck_unlocked()
    }

    /// Checks the store and repairs it: deletes corrupt blobs and stray
    /// files, drops images that reference missing or corrupt blobs or
    /// disagree with the index, then sweeps unreferenced blobs and `ingest/`.
    /// Returns what the check found (before repairing) and what was done.
    pub fn fsck_repair(&mut self) -> Result<(FsckReport, RepairReport), StoreError> {
        let mut done = RepairReport::default();
        let report = {
            // Check and act under one exclusive hold so nothing changes in between.
            let _lock = self.lock(LockMode::Exclusive)?;
            let report = self.fsck_unlocked()?;
            let actions: BTreeSet<&Action> =
                report.problems.iter().flat_map(|p| &p.actions).collect();
            for a in actions {
                match a {
                    Action::DeleteBlob(d) => {
                        if self.remove_blob(d)? {
                            done.deleted_blobs.push(d.clone());
                        }
                    }
                    Action::DeleteFile(p) => match std::fs::remove_file(p) {
                        Ok(()) => done.deleted_files.push(p.clone()),
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(StoreError::io(p, e)),
                    },
                    Action::DropImage(id) => {
                        let removed = self.index_mut().purge_image(id)?;
                        if removed.deleted_image.is_some() {
                            done.dropped_images.push((id.clone(), removed.untagged));
                        }
                    }
                    Action::DropTag(name) => {
                        if self.index_mut().drop_tag(name)? {
                            done.dropped_tags.push(name.clone());
                        }
                    }
                }
            }
            report
        };
        // `sweep` takes the exclusive lock itself, and two flocks from one
        // process conflict, so it runs after the hold above is released.
        let (swept, freed) = self.sweep()?;
        done.swept_blobs = swept;
        done.swept_bytes = freed;
        Ok((report, done))
    }

    fn fsck_unlocked(&self) -> Result<FsckReport, StoreError> {
        let mut report = FsckReport::default();
        match self.index().integrity_check() {
            Ok(complaints) => {
                for c in complaints {
                    report.problems.push(Problem {
                        kind: ProblemKind::Index,
                        subject: "index.db".into(),
                        detail: format!("SQLite integrity check: {c}"),
                        fix: "move index.db (and index.db-wal) away and load your images again"
                            .into(),
                        actions: vec![],
                    });
                }
            }
            Err(e) => report.problems.push(Problem {
                kind: ProblemKind::Index,
                subject: "index.db".into(),
                detail: format!("the integrity check could not run: {e}"),
                fix: "move index.db (and index.db-wal) away and load your images again".into(),
                actions: vec![],
            }),
        }
        let images = match self.index().images() {
            Ok(i) => i,
            Err(e) => {
                report.problems.push(Problem {
                    kind: ProblemKind::Index,
                    subject: "index.db".into(),
                    detail: format!("the image list cannot be read: {e}"),
                    fix: "move index.db (and index.db-wal) away and load your images again".into(),
                    actions: vec![],
                });
                Vec::new()
            }
        };
        report.images_checked = images.len();

        // Which images use each blob, and which blobs are layers (to check diffIDs).
        let mut users: BTreeMap<&Digest, Vec<&ImageRecord>> = BTreeMap::new();
        let mut diff_ids: BTreeMap<&Digest, BTreeSet<&Digest>> = BTreeMap::new();
        for img in &images {
            users.entry(&img.id).or_default().push(img);
            users.entry(&img.manifest).or_default().push(img);
            for l in &img.layers {
                users.entry(&l.blob).or_default().push(img);
                diff_ids
                    .entry(&l.blob)
                    .or_default()
                    .insert(&l.layer.diff_id);
            }
        }

        let (blobs, stray) = self.list_blobs()?;
        for p in stray {
            let is_file = p.symlink_metadata().is_ok_and(|m| m.is_file());
            report.problems.push(Problem {
                kind: ProblemKind::StrayFile,
                subject: p.display().to_string(),
                detail: "not a blob: its name is not a digest".into(),
                fix: if is_file {
                    "`hoist fsck --repair` deletes it".into()
                } else {
                    "remove it by hand; nothing but blob files belongs there".into()
                },
                actions: if is_file {
                    vec![Action::DeleteFile(p)]
                } else {
                    vec![]
                },
            });
        }

        let checks = self.check_blobs(&blobs, &diff_ids);
        let mut intact: BTreeMap<Digest, u64> = BTreeMap::new();
        for (d, c) in blobs.iter().zip(checks) {
            report.blobs_checked += 1;
            report.bytes_checked += c.size;
            let used_by = users.get(d).map(Vec::as_slice).unwrap_or_default();
            let drop_users = || {
                used_by
                    .iter()
                    .map(|i| Action::DropImage(i.id.clone()))
                    .collect::<Vec<_>>()
            };
            let users_text = if used_by.is_empty() {
                "no image uses it".to_owned()
            } else {
                let names: Vec<String> = used_by.iter().map(|i| image_subject(i)).collect();
                format!("used by {}", names.join(", "))
            };
            let fix = if used_by.is_empty() {
                "`hoist fsck --repair` deletes it".to_owned()
            } else {
                "`hoist fsck --repair` deletes it and drops the images that use it; load or pull them again".to_owned()
            };
            match c.actual {
                Err(e) => {
                    report.problems.push(Problem {
                        kind: ProblemKind::CorruptBlob,
                        subject: format!("blob {d}"),
                        detail: format!("{e}; {users_text}"),
                        fix,
                        actions: [Action::DeleteBlob(d.clone())]
                            .into_iter()
                            .chain(drop_users())
                            .collect(),
                    });
                    continue;
                }
                Ok(actual) if &actual != d => {
                    report.problems.push(Problem {
                        kind: ProblemKind::CorruptBlob,
                        subject: format!("blob {d}"),
                        detail: format!("corrupt: its content hashes to {actual}; {users_text}"),
                        fix,
                        actions: [Action::DeleteBlob(d.clone())]
                            .into_iter()
                            .chain(drop_users())
                            .collect(),
                    });
                    continue;
                }
                Ok(_) => {}
            }
            intact.insert(d.clone(), c.size);
            if used_by.is_empty() {
                report.unreferenced_blobs.push((d.clone(), c.size));
            }
            let expected = diff_ids.get(d);
            match (c.diff, expected) {
                (Some(Err(e)), Some(_)) => report.problems.push(Problem {
                    kind: ProblemKind::BrokenImage,
                    subject: format!("layer blob {d}"),
                    detail: format!("{e}; {users_text}"),
                    fix: FIX_IMAGE.into(),
                    actions: drop_users(),
                }),
                (Some(Ok((diff, size))), Some(want)) => {
                    if want.len() != 1 || !want.contains(&diff) {
                        let listed: Vec<String> = want.iter().map(|w| w.to_string()).collect();
                        report.problems.push(Problem {
                            kind: ProblemKind::BrokenImage,
                            subject: format!("layer blob {d}"),
                            detail: format!(
                                "its uncompressed content hashes to {diff} but the index lists diffID {}; {users_text}",
                                listed.join(" and ")
                            ),
                            fix: FIX_IMAGE.into(),
                            actions: drop_users(),
                        });
                    }
                    for img in used_by {
                        for l in img.layers.iter().filter(|l| &l.blob == d) {
                            if l.layer.size != size {
                                report.problems.push(broken(
                                    img,
                                    format!(
                                        "layer {} uncompresses to {size} bytes but the index records {}",
                                        l.layer.chain_id, l.layer.size
                                    ),
                                ));
                            }
                        }
                    }
                }
                _ => {}
            }
        }

        for img in &images {
            check_image(self, img, &intact, &mut report.problems);
        }

        let ids: BTreeSet<&Digest> = images.iter().map(|i| &i.id).collect();
        let indexes: BTreeSet<Digest> = self.index().index_digests()?.into_iter().collect();
        if let Ok(tags) = self.index().tags() {
            let dangling = tags
                .iter()
                .filter(|t| !ids.contains(&t.image) && !indexes.contains(&t.target));
            for t in dangling {
                report.problems.push(Problem {
                    kind: ProblemKind::DanglingTag,
                    subject: format!("tag {}", t.name),
                    detail: format!("it points to {}, which the index does not have", t.target),
                    fix: "`hoist fsck --repair` removes the tag".into(),
                    actions: vec![Action::DropTag(t.name.clone())],
                });
            }
        }

        let ingest = self.root().join("ingest");
        let rd = std::fs::read_dir(&ingest).map_err(|e| StoreError::io(&ingest, e))?;
        for ent in rd.flatten() {
            let size = ent.metadata().map_or(0, |m| m.len());
            report.ingest_leftovers.push((ent.path(), size));
        }
        report.ingest_leftovers.sort();
        Ok(report)
    }

    /// Re-hashes `blobs` on a few threads; results come back in the same order.
    fn check_blobs(
        &self,
        blobs: &[Digest],
        diff_ids: &BTreeMap<&Digest, BTreeSet<&Digest>>,
    ) -> Vec<BlobCheck> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_THREADS)
            .min(blobs.len().max(1));
        // The index connection is not Sync, so workers get paths, not the store.
        let paths: Vec<PathBuf> = blobs.iter().map(|d| self.blob_path(d)).collect();
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<BlobCheck>>> =
            Mutex::new((0..blobs.len()).map(|_| None).collect());
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    let mut buf = vec![0u8; BUF];
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(d) = blobs.get(i) else { break };
                        let c = check_blob(&paths[i], d, diff_ids.contains_key(d), &mut buf);
                        if let Ok(mut r) = results.lock() {
                            r[i] = Some(c);
                        }
                    }
                });
            }
        });
        results
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into_iter()
            .map(|c| {
                // Only a panicking worker leaves a slot empty; report it rather than abort.
                c.unwrap_or(BlobCheck {
                    size: 0,
                    actual: Err("it could not be checked (internal error)".into()),
                    diff: None,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LayerRecord, NewImage, NewLayer};

    /// A one-layer image (plain tar layer) committed and indexed; returns (store, layer, config).
    fn store_with_image() -> (tempfile::TempDir, Store, Digest, Digest) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let layer = vec![0u8; 1024];
        let diff = Digest::sha256(&layer);
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff}"]}}}}"#
        );
        let config_d = Digest::sha256(config.as_bytes());
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_d}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{diff}","size":1024}}]}}"#,
            config.len()
        );
        let mut manifest_d = None;
        for bytes in [&layer[..], config.as_bytes(), manifest.as_bytes()] {
            let staged = store.stage_bytes(bytes, None).unwrap();
            manifest_d = Some(store.commit_blob(staged).unwrap());
        }
        store
            .index_mut()
            .add_image(&NewImage {
                id: config_d.clone(),
                config_size: config.len() as u64,
                manifest: manifest_d.unwrap(),
                manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                created: None,
                layers: vec![NewLayer {
                    layer: LayerRecord {
                        chain_id: diff.clone(),
                        diff_id: diff.clone(),
                        parent: None,
                        size: 1024,
                    },
                    blob: diff.clone(),
                    media_type: "application/vnd.oci.image.layer.v1.tar".into(),
                    blob_size: 1024,
                }],
                tags: vec!["docker.io/library/t:latest".into()],
            })
            .unwrap();
        (dir, store, diff, config_d)
    }

    #[test]
    fn a_fresh_image_is_clean_and_leftovers_are_only_reclaimable() {
        let (_dir, store, _, _) = store_with_image();
        let r = store.fsck().unwrap();
        assert!(r.is_clean(), "{:?}", r.problems);
        assert_eq!((r.blobs_checked, r.images_checked), (3, 1));
        let orphan = store.stage_bytes(b"orphan", None).unwrap();
        store.commit_blob(orphan).unwrap();
        std::fs::write(store.root().join("ingest/partial"), b"x").unwrap();
        let r = store.fsck().unwrap();
        assert!(r.is_clean());
        assert_eq!(r.unreferenced_blobs.len(), 1);
        assert_eq!(r.ingest_leftovers.len(), 1);
    }

    #[test]
    fn a_missing_layer_breaks_the_image_and_repair_drops_it() {
        let (_dir, mut store, layer, config) = store_with_image();
        std::fs::remove_file(store.blob_path(&layer)).unwrap();
        let r = store.fsck().unwrap();
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert_eq!(r.problems[0].kind, ProblemKind::BrokenImage);
        assert!(r.problems[0].to_string().contains(&layer.to_string()));
        let (_, done) = store.fsck_repair().unwrap();
        assert_eq!(done.dropped_images.len(), 1);
        assert_eq!(done.dropped_images[0].0, config);
        assert!(store.fsck().unwrap().is_clean());
        assert!(store.index().images().unwrap().is_empty());
        assert!(
            store.list_blobs().unwrap().0.is_empty(),
            "config and manifest swept"
        );
    }

    #[test]
    fn a_corrupt_layer_is_named_with_its_image() {
        let (_dir, mut store, layer, _) = store_with_image();
        std::fs::write(store.blob_path(&layer), vec![1u8; 1024]).unwrap();
        let r = store.fsck().unwrap();
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        let p = &r.problems[0];
        assert_eq!(p.kind, ProblemKind::CorruptBlob);
        assert!(p.detail.contains("t:latest"), "{p}");
        let (_, done) = store.fsck_repair().unwrap();
        assert_eq!(done.deleted_blobs, vec![layer]);
        assert!(store.fsck().unwrap().is_clean());
    }
}
