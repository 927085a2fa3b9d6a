//! Why the pull-through cache could not answer, as values the HTTP layer
//! turns into distribution-spec errors.

use hoist_registry_client::Error as UpstreamError;

/// What a mirrored repository lacks when the upstream says it does not
/// have it either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// A manifest.
    Manifest,
    /// A blob.
    Blob,
    /// The repository.
    Name,
}

/// Why the pull-through cache could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The local store failed, or lacks what the upstream does not confirm.
    #[error(transparent)]
    Store(#[from] crate::Error),
    /// The upstream failed or refused while the cache fetched `what`.
    #[error("{what}: {source}")]
    Upstream {
        /// What was being fetched.
        what: String,
        /// What the upstream's "not found" means.
        missing: Missing,
        /// The upstream's error.
        source: UpstreamError,
    },
    /// A HEAD the unavailable upstream could not confirm: unknown to us.
    #[error("{what}: {source}")]
    Unconfirmed {
        /// What was being fetched.
        what: String,
        /// Why the upstream could not say.
        source: UpstreamError,
    },
    /// Concurrent fetches of one blob failed round after round.
    #[error("{what}: concurrent fetches of this blob kept failing; try again")]
    FillsFailed {
        /// What was being fetched.
        what: String,
    },
}
