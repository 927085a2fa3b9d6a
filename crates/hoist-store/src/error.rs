use hoist_oci::Digest;
use std::path::{Path, PathBuf};

/// What can go wrong in the store; each names the thing and the fix.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Content did not hash to the digest it was announced with.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}; the source is corrupt or was truncated")]
    DigestMismatch {
        /// What the content is (a path or role).
        what: String,
        /// The announced digest.
        expected: Digest,
        /// The digest of the bytes received.
        actual: Digest,
    },
    /// Content had another size than announced.
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}; the source is corrupt or was truncated")]
    SizeMismatch {
        /// What the content is.
        what: String,
        /// The announced size.
        expected: u64,
        /// The bytes received.
        actual: u64,
    },
    /// A blob the index refers to is not in `blobs/`.
    #[error(
        "blob {0} is missing from the store; run `hoist fsck --repair` and load the image again"
    )]
    MissingBlob(Digest),
    /// No image matches a name or ID.
    #[error("No such image: {0}")]
    NoSuchImage(String),
    /// A short ID matches several images.
    #[error("image ID prefix {0:?} is ambiguous: it matches {1} images; give more characters")]
    Ambiguous(String, usize),
    /// An image is still tagged in several repositories and needs -f to remove by ID.
    #[error("conflict: unable to delete {0} (must be forced) - image is referenced in multiple repositories")]
    MultipleTags(String),
    /// The index database failed.
    #[error("store index {path}: {source}; if it is corrupt, move it away and reload your images")]
    Db {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The index was written by a newer hoist.
    #[error("store index {path} has schema version {found}, newer than this hoist understands ({supported}); upgrade hoist")]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The newest version this program knows.
        supported: u32,
    },
    /// Another live process holds what this one needs.
    #[error("{0}")]
    Busy(String),
    /// The index holds something that is not valid (hand-edited or corrupt).
    #[error("store index is corrupt: {0}; run `hoist fsck --repair`")]
    Corrupt(String),
}

impl StoreError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.to_owned(),
            source,
        }
    }
}
