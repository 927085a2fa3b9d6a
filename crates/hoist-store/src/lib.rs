//! The local content-addressed image store: verified blobs under
//! `blobs/<alg>/<hex>`, partial writes under `ingest/`, and the transactional
//! index (`index.db`, schema-versioned and migrated on open) of images, their
//! manifests, indexes, tags (naming a manifest or an index) and layers by
//! chainID.
//!
//! Writers go through [`Store::begin`] ([`StoreWriter`]), which owns the
//! commit protocol; readers that must work on a store they cannot write, or
//! one that does not exist, use [`Store::open_read_only`].

mod blobs;
mod content;
mod error;
mod fsck;
mod index;
mod live;
mod lock;
mod resume;
mod schema;
mod usage;
mod writer;

pub use blobs::{BlobWriter, ChunkBuf, Ingest, StagedBlob};
pub use error::StoreError;
pub use fsck::{FsckReport, Problem, ProblemKind, RepairReport};
pub use index::{
    ImageRecord, IndexChild, IndexRecord, LayerRecord, ManifestRecord, NewImage, NewIndex,
    NewLayer, RemovedImage, TagRecord, TagTarget,
};
pub use live::remove_own_temporary_files;
pub use lock::{GcLock, LockMode};
pub use resume::{PartialBlob, ResumableBlob};
pub use schema::SCHEMA_VERSION;
pub use usage::{ImageUsage, LayerUsage, Usage, UsageSummary};
pub use writer::StoreWriter;

use std::path::{Path, PathBuf};

/// An open store rooted at one directory.
pub struct Store {
    root: PathBuf,
    db: index::Db,
    read_only: bool,
}

/// Refuses a directory holding a registry's storage (`docker/registry/v2`).
fn refuse_registry_layout(root: &Path) -> Result<(), StoreError> {
    if root.join("docker/registry/v2").is_dir() {
        return Err(StoreError::RegistryLayout {
            path: root.to_owned(),
        });
    }
    Ok(())
}

/// True when this user may write `path` (an existing file or directory).
fn writable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access(2) on a NUL-terminated path we own.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

impl Store {
    /// Opens (creating if needed) the store at `root` for reading and
    /// writing, upgrading its index schema if it is older. A store this
    /// user cannot write gives [`StoreError::ReadOnly`].
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        refuse_registry_layout(&root)?;
        let read_only = |e: &StoreError| e.is_read_only();
        for d in ["blobs/sha256", "blobs/sha512", "ingest"] {
            let p = root.join(d);
            if let Err(e) = std::fs::create_dir_all(&p).map_err(|e| StoreError::io(&p, e)) {
                return Err(if read_only(&e) {
                    StoreError::ReadOnly { path: root }
                } else {
                    e
                });
            }
        }
        let index = root.join("index.db");
        if !writable(&root) || (index.exists() && !writable(&index)) {
            return Err(StoreError::ReadOnly { path: root });
        }
        let db = index::Db::open(&index)?;
        Ok(Store {
            root,
            db,
            read_only: false,
        })
    }

    /// Opens the store at `root` for reading only: nothing is created or
    /// written, so it works on a store this user cannot write. A store that
    /// does not exist reads as empty; an index with an older schema is read
    /// through an upgraded copy in memory.
    pub fn open_read_only(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        refuse_registry_layout(&root)?;
        let index = root.join("index.db");
        let db = if index.exists() {
            index::Db::open_read_only(&index)?
        } else {
            index::Db::empty()?
        };
        Ok(Store {
            root,
            db,
            read_only: true,
        })
    }

    /// True when opened with [`Store::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Access to the index.
    pub fn index(&self) -> &index::Db {
        &self.db
    }

    /// Mutable access to the index, for transactions.
    pub fn index_mut(&mut self) -> &mut index::Db {
        &mut self.db
    }

    /// Takes the store-wide lock that keeps deletions away from writers. A
    /// writer (shared) first removes what dead writers left in `ingest/`.
    pub fn lock(&self, mode: LockMode) -> Result<GcLock, StoreError> {
        if self.read_only && mode == LockMode::Exclusive {
            return Err(StoreError::ReadOnly {
                path: self.root.clone(),
            });
        }
        let lock = GcLock::acquire(&self.root.join("gc.lock"), mode)?;
        if mode == LockMode::Shared && !self.read_only {
            self.ingest().clean_dead();
        }
        Ok(lock)
    }
}

pub use index::Db;

use hoist_oci::Digest;

impl Store {
    /// Untags `tags` from `image`; once it has no tags left (and
    /// `delete_if_untagged`), deletes the image, its unused layers and every
    /// blob nothing else refers to. A tag naming an index untags the index;
    /// its last tag gone, the index, its fetched manifests, their images and
    /// unused layers go too. Holds the exclusive lock throughout.
    pub fn remove_image(
        &mut self,
        image: &Digest,
        tags: &[String],
        delete_if_untagged: bool,
    ) -> Result<RemovedImage, StoreError> {
        let _lock = self.lock(LockMode::Exclusive)?;
        // What the images that may go refer to: this one and, through the
        // indexes its tags name, their other platforms.
        let mut candidates = vec![image.clone()];
        for t in self.db.tags()?.iter().filter(|t| tags.contains(&t.name)) {
            if let Some(idx) = self.db.index(&t.target)? {
                for m in idx.fetched {
                    if let Some(m) = self.db.manifest(&m)? {
                        candidates.push(m.image);
                    }
                }
            }
        }
        let mut blobs = Vec::new();
        for id in &candidates {
            if let Some(img) = self.db.image(id)? {
                blobs.push(img.id.clone());
                blobs.push(img.manifest.clone());
                blobs.extend(img.layers.iter().map(|l| l.blob.clone()));
                for m in img.manifests {
                    blobs.push(m.digest);
                    blobs.extend(m.layers.into_iter().map(|l| l.blob));
                }
            }
        }
        let removed = self.db.remove(image, tags, delete_if_untagged)?;
        blobs.extend(removed.deleted_indexes.iter().cloned());
        if removed.deleted_image.is_some()
            || !removed.deleted_images.is_empty()
            || !removed.deleted_indexes.is_empty()
        {
            let referenced = self.db.referenced_blobs()?;
            for b in blobs {
                if !referenced.contains(&b) {
                    self.remove_blob(&b)?;
                }
            }
        }
        Ok(removed)
    }

    /// Deletes every blob the index does not refer to and every leftover in
    /// `ingest/`; returns the blobs removed and the bytes freed.
    pub fn sweep(&mut self) -> Result<(Vec<Digest>, u64), StoreError> {
        let _lock = self.lock(LockMode::Exclusive)?;
        self.db.drop_unused_layers()?;
        let referenced = self.db.referenced_blobs()?;
        let (all, _) = self.list_blobs()?;
        let mut removed = Vec::new();
        let mut freed = 0;
        for d in all {
            if !referenced.contains(&d) {
                freed += std::fs::metadata(self.blob_path(&d)).map_or(0, |m| m.len());
                if self.remove_blob(&d)? {
                    removed.push(d);
                }
            }
        }
        // Under the exclusive lock no writer that takes it is running; files a
        // writer still holds (one that did not take it) stay.
        self.clean_ingest(std::time::Duration::ZERO)?;
        Ok((removed, freed))
    }
}
