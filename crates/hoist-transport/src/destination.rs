//! The destination half of the seam: what the copy engine writes into.

use crate::source::{BlobBody, RawManifest};
use crate::TransportError;
use hoist_oci::{Descriptor, Digest};

/// Where images go: a registry, a directory, an archive, the store.
///
/// Nothing a destination writes is visible under its final name until it is
/// verified; `commit` makes the whole copy visible (tags, index files).
pub trait ImageDestination: Send + Sync {
    /// True when the destination already holds this blob (the engine then skips it).
    fn has_blob(&self, d: &Descriptor) -> Result<bool, TransportError>;

    /// Makes the blob present without sending it (a registry's cross-repository
    /// mount); false when the destination cannot.
    fn mount_blob(&self, _d: &Descriptor) -> Result<bool, TransportError> {
        Ok(false)
    }

    /// True when the destination checks layers' diffIDs (the engine then
    /// passes them to `put_blob`); a store does, a plain copy need not.
    fn wants_diff_ids(&self) -> bool {
        false
    }

    /// False when the destination holds images only, not the artifacts
    /// (signatures, SBOMs) that referrers are.
    fn holds_artifacts(&self) -> bool {
        true
    }

    /// Writes a blob, verifying digest and size while writing (and the
    /// diffID in the same pass when `diff_id` is Some). `progress` gets byte
    /// counts as they are written. May be called from several threads at once.
    fn put_blob(
        &self,
        d: &Descriptor,
        diff_id: Option<&Digest>,
        body: BlobBody,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), TransportError>;

    /// Stores a manifest or index as its exact bytes, after every blob it names.
    fn put_manifest(&self, m: &RawManifest) -> Result<(), TransportError>;

    /// Records `top` (a manifest or index already put) as one image of the
    /// copy, named by `tags` (none: kept by digest only).
    fn tag(&self, top: &RawManifest, tags: &[String]) -> Result<(), TransportError>;

    /// Makes everything put so far visible at once.
    fn commit(self: Box<Self>) -> Result<(), TransportError>;
}
