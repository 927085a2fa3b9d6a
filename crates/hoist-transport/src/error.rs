use hoist_oci::Digest;
use hoist_store::StoreError;

/// Why a load or save failed; each names the thing and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading the input or writing the output failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being read or written.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The archive is malformed (bad tar, hostile paths, missing files, bad JSON…).
    #[error("invalid archive: {0}")]
    Archive(String),
    /// A document in the archive is invalid.
    #[error("invalid archive: {what}: {source}")]
    Document {
        /// Which file.
        what: String,
        /// Why.
        source: hoist_oci::DocumentError,
    },
    /// A layer's uncompressed content does not match the config's diffID.
    #[error("layer {path}: diffID mismatch: the image config lists {expected} but the layer's content hashes to {actual}; the archive is corrupt")]
    DiffIdMismatch {
        /// The layer's path in the archive.
        path: String,
        /// From the config.
        expected: Digest,
        /// What the content hashed to.
        actual: Digest,
    },
    /// A blob's bytes do not match the digest naming it.
    #[error("{path}: digest mismatch: expected {expected}, got {actual}; the archive is corrupt")]
    DigestMismatch {
        /// The blob's path in the archive.
        path: String,
        /// The digest it is named or described by.
        expected: Digest,
        /// What it hashed to.
        actual: Digest,
    },
    /// A layer decompresses to implausibly many bytes.
    #[error("layer {path} decompresses to more than {limit} bytes ({ratio}x its compressed size): refusing a likely decompression bomb")]
    Bomb {
        /// The layer's path in the archive.
        path: String,
        /// The limit that was crossed.
        limit: u64,
        /// The ratio allowed.
        ratio: u64,
    },
    /// A blob or document does not have the size its descriptor gives.
    #[error("{what}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// What was checked.
        what: String,
        /// The size the descriptor gives.
        expected: u64,
        /// The size found.
        actual: u64,
    },
    /// A blob in the local store no longer matches its digest.
    #[error("blob {digest} in the store is damaged: {actual}; run `hoist fsck` (then `hoist fsck --repair` and load or pull the image again)")]
    StoreCorrupt {
        /// The blob.
        digest: Digest,
        /// What was found instead.
        actual: String,
    },
    /// A compression level the format does not have.
    #[error(
        "{format} has no level {level}: give {range} (or leave the level out for the default)"
    )]
    BadLevel {
        /// gzip or zstd.
        format: &'static str,
        /// The level asked for.
        level: i32,
        /// The levels there are.
        range: &'static str,
    },
    /// A transport name or reference given by the user is not understood.
    #[error("{0}")]
    BadReference(String),
    /// A name or ID given on the command line does not resolve.
    #[error("No such image: {0}")]
    NoSuchImage(String),
}

impl TransportError {
    /// The same error with the thing it names (`from`) called `to` instead.
    pub fn renamed(self, from: &str, to: &str) -> Self {
        let swap = |s: String| if s == from { to.to_owned() } else { s };
        match self {
            TransportError::DigestMismatch {
                path,
                expected,
                actual,
            } => TransportError::DigestMismatch {
                path: swap(path),
                expected,
                actual,
            },
            TransportError::DiffIdMismatch {
                path,
                expected,
                actual,
            } => TransportError::DiffIdMismatch {
                path: swap(path),
                expected,
                actual,
            },
            TransportError::SizeMismatch {
                what,
                expected,
                actual,
            } => TransportError::SizeMismatch {
                what: swap(what),
                expected,
                actual,
            },
            TransportError::Bomb { path, limit, ratio } => TransportError::Bomb {
                path: swap(path),
                limit,
                ratio,
            },
            TransportError::Archive(m) => TransportError::Archive(m.replace(from, to)),
            TransportError::Document { what, source } => TransportError::Document {
                what: swap(what),
                source,
            },
            TransportError::Io { what, source } => TransportError::Io {
                what: what.replace(from, to),
                source,
            },
            e => e,
        }
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        TransportError::Io {
            what: what.into(),
            source,
        }
    }
}
