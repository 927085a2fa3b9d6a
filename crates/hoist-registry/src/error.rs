//! The storage layer's errors. The HTTP layer maps each to a distribution-spec
//! error code and status (see `plumbing::ApiError`).

use crate::names::{NameError, RepoName, UploadId};
use hoist_oci::{Digest, DigestError};
use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the registry's storage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A bad repository name, tag or upload id.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A malformed digest.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// The blob is not in this repository.
    #[error("blob unknown to registry: {0}")]
    BlobUnknown(Digest),
    /// The manifest (tag or digest) is not in this repository.
    #[error("manifest unknown: {name}@{reference}")]
    ManifestUnknown {
        /// The repository.
        name: RepoName,
        /// The tag or digest asked for.
        reference: String,
    },
    /// The repository does not exist.
    #[error("repository name not known to registry: {0}")]
    NameUnknown(RepoName),
    /// No such upload session.
    #[error("blob upload unknown to registry: {0}")]
    UploadUnknown(UploadId),
    /// Another request is writing to the same upload session right now.
    #[error("blob upload {0} is busy with another request")]
    UploadBusy(UploadId),
    /// The content's digest is not the one the client declared.
    #[error("digest mismatch: the client declared {expected} but the content is {actual}")]
    DigestMismatch {
        /// What the client said.
        expected: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// A chunk does not start where the upload ends.
    #[error("chunk out of order: the upload has {current} bytes but the chunk starts at {start}")]
    RangeInvalid {
        /// Bytes received so far.
        current: u64,
        /// Where the chunk claimed to start.
        start: u64,
    },
    /// The client sent fewer or more bytes than it announced.
    #[error("size invalid: announced {announced} bytes, received {received}")]
    SizeInvalid {
        /// Content-Length or Content-Range length.
        announced: u64,
        /// What arrived.
        received: u64,
    },
    /// The body stopped before it was complete (client went away).
    #[error("the request body ended early: {0}")]
    BodyAborted(String),
    /// Not a manifest or index this registry accepts.
    #[error("manifest invalid: {0}")]
    ManifestInvalid(String),
    /// A manifest refers to a blob or child manifest the repository lacks.
    #[error("manifest references {0}, which is not in the repository")]
    ManifestBlobUnknown(Digest),
    /// A manifest body larger than the limit.
    #[error("manifest too large: the limit is {0} bytes")]
    ManifestTooLarge(usize),
    /// The storage is misconfigured or unreachable.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Storage work on the blocking pool died (a panic).
    #[error("internal task failed: {0}")]
    Task(String),
}

/// Runs blocking storage work off the async threads.
pub(crate) async fn off_thread<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Error::Task(e.to_string())))
}

/// A storage driver that cannot start: each names the setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// S3 settings without credentials in the environment.
    #[error("S3 storage needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")]
    MissingCredentials,
    /// An S3 prefix that is not a plain relative path.
    #[error("S3 prefix {0:?} is not a plain path: use components separated by single '/', without '.' or '..'")]
    BadPrefix(String),
    /// An S3 endpoint that is not an http(s) URL.
    #[error("S3 endpoint {0:?} is not a URL: write it as http://HOST:PORT or https://HOST")]
    BadEndpoint(String),
    /// The S3 client's own runtime could not start.
    #[error("cannot start the S3 client's runtime: {0}")]
    Runtime(#[source] io::Error),
    /// The S3 client refused the settings.
    #[error("S3 storage {storage}: {source}")]
    Client {
        /// The storage, as `s3://bucket/prefix at endpoint`.
        storage: String,
        /// The client's reason.
        source: object_store::Error,
    },
    /// The bucket does not answer.
    #[error("S3 storage {storage} does not answer: {source} (check the endpoint, the bucket and the credentials)")]
    Unreachable {
        /// The storage, as `s3://bucket/prefix at endpoint`.
        storage: String,
        /// The request's error.
        source: object_store::Error,
    },
}

/// Shorthand for storage results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds path context to an `io::Result`.
pub(crate) trait IoContext<T> {
    /// Wraps the error with the operation and path.
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T> {
        self.map_err(|source| Error::Io {
            op,
            path: path.to_owned(),
            source,
        })
    }
}
