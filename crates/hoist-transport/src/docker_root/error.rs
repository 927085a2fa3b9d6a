use hoist_oci::Digest;
use std::path::PathBuf;

/// Why reading a Docker data-root failed; each names the file, layer or entry.
#[derive(Debug, thiserror::Error)]
pub enum DockerRootError {
    /// A file of the data-root could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The directory has no `image/` database: not a Docker data-root.
    #[error("{}: not a Docker data-root (no image/ directory); give the directory dockerd's --data-root names (default /var/lib/docker)", root.display())]
    NotADataRoot {
        /// The directory given.
        root: PathBuf,
    },
    /// The data-root's images live in a storage driver other than overlay2.
    #[error("{}: images are stored by the {driver} storage driver; hoist reads only overlay2 data-roots", root.display())]
    UnsupportedDriver {
        /// The data-root.
        root: PathBuf,
        /// The storage driver(s) found under `image/`.
        driver: String,
    },
    /// A metadata file is malformed.
    #[error("{}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An image config's bytes do not hash to the image ID naming them.
    #[error("image {id}: its config hashes to {actual}: the image database was changed since Docker wrote it")]
    ConfigMismatch {
        /// The image ID (the file name).
        id: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// No image matches the reference or ID.
    #[error("No such image: {0}")]
    NoSuchImage(String),
    /// An ID prefix matches several images.
    #[error("image ID prefix {prefix} is ambiguous: it matches {count} images; give more digits")]
    Ambiguous {
        /// The prefix given.
        prefix: String,
        /// How many images it matches.
        count: usize,
    },
    /// A layer's chainID has no entry in the layer database.
    #[error("layer {chain_id} (diffID {diff_id}) is missing from the layer database")]
    MissingLayer {
        /// The chainID looked up.
        chain_id: Digest,
        /// The diffID it stacks.
        diff_id: Digest,
    },
    /// A file of a layer differs from what the layer's tar-split recorded.
    #[error(
        "layer {chain_id}: entry {entry:?}: {reason}; the layer was changed since Docker stored it"
    )]
    Tampered {
        /// The layer's chainID.
        chain_id: Digest,
        /// The tar entry's name.
        entry: String,
        /// What differs.
        reason: String,
    },
    /// A layer's tar-split metadata is malformed.
    #[error("layer {chain_id}: tar-split.json.gz: {reason}")]
    TarSplit {
        /// The layer's chainID.
        chain_id: Digest,
        /// What is wrong.
        reason: String,
    },
    /// The rebuilt layer tar does not hash to the layer's diffID.
    #[error("layer {chain_id}: the rebuilt tar hashes to {actual} ({size} bytes), not to its diffID {expected}; its tar-split or files were changed since Docker stored it")]
    DiffIdMismatch {
        /// The layer's chainID.
        chain_id: Digest,
        /// The diffID recorded.
        expected: Digest,
        /// What the rebuilt stream hashed to.
        actual: Digest,
        /// How many bytes were rebuilt.
        size: u64,
    },
}

impl DockerRootError {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DockerRootError::Io {
            path: path.into(),
            source,
        }
    }

    /// A malformed metadata file.
    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        DockerRootError::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// The same error again, for a stream that must give it on every read
    /// after the first failure (of layer `chain_id`).
    pub(crate) fn again(&self, chain_id: &Digest) -> DockerRootError {
        match self {
            DockerRootError::Tampered {
                chain_id,
                entry,
                reason,
            } => DockerRootError::Tampered {
                chain_id: chain_id.clone(),
                entry: entry.clone(),
                reason: reason.clone(),
            },
            DockerRootError::DiffIdMismatch {
                chain_id,
                expected,
                actual,
                size,
            } => DockerRootError::DiffIdMismatch {
                chain_id: chain_id.clone(),
                expected: expected.clone(),
                actual: actual.clone(),
                size: *size,
            },
            DockerRootError::TarSplit { chain_id, reason } => DockerRootError::TarSplit {
                chain_id: chain_id.clone(),
                reason: reason.clone(),
            },
            other => DockerRootError::TarSplit {
                chain_id: chain_id.clone(),
                reason: other.to_string(),
            },
        }
    }

    /// The error a [`LayerTar`](super::LayerTar) read failed with, if it was one of ours.
    pub fn from_io(e: &std::io::Error) -> Option<&DockerRootError> {
        e.get_ref().and_then(|inner| inner.downcast_ref())
    }
}
