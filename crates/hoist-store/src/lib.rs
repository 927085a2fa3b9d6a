//! The local content-addressed image store: verified blobs under
//! `blobs/<alg>/<hex>`, partial writes under `ingest/`, and the transactional
//! index (`index.db`) of images, tags and layers by chainID.

mod blobs;
mod error;
mod index;
mod lock;

pub use blobs::{BlobWriter, StagedBlob};
pub use error::StoreError;
pub use index::{ImageRecord, LayerRecord, NewImage, NewLayer, RemovedImage, TagRecord};
pub use lock::{GcLock, LockMode};

use std::path::{Path, PathBuf};

/// An open store rooted at one directory.
pub struct Store {
    root: PathBuf,
    db: index::Db,
}

impl Store {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        for d in ["blobs/sha256", "blobs/sha512", "ingest"] {
            let p = root.join(d);
            std::fs::create_dir_all(&p).map_err(|e| StoreError::io(&p, e))?;
        }
        let db = index::Db::open(&root.join("index.db"))?;
        Ok(Store { root, db })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Access to the index.
    pub fn index(&self) -> &index::Db {
        &self.db
    }

    /// Takes the store-wide lock that keeps deletions away from writers.
    pub fn lock(&self, mode: LockMode) -> Result<GcLock, StoreError> {
        GcLock::acquire(&self.root.join("gc.lock"), mode)
    }
}

pub use index::Db;
