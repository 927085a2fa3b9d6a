//! Image transports and the one copy engine between them.
//!
//! The seam: an [`ImageSource`] hands out raw manifests (exact bytes, media
//! type, digest) and blob bodies; an [`ImageDestination`] says which blobs it
//! has and takes new ones, verifying each as it writes. [`copy`] drives any
//! source into any destination. Transports: `oci:` (an OCI image layout
//! directory), `oci-archive:`, `docker-archive:` (the classic `docker save`
//! layout and Docker 25+'s OCI-based one) and the local store. `load` is a
//! copy from an archive into the store, `save` one from the store into an
//! archive.
//!
//! # I/O model: blocking traits, threads for parallelism
//!
//! Sources and destinations are blocking, and the engine moves several blobs
//! at once on a bounded set of scoped threads. Almost everything a copy does
//! is a blocking system call: the store's SQLite index, `O_DIRECT` writes,
//! fsync and rename, tar streaming and unpacking, and the in-kernel copies
//! (`copy_file_range`, `sendfile`) that keep file-to-file copies out of user
//! space. Async throughout would wrap each of these in `spawn_blocking` and
//! pay for a runtime where none is needed. The one network transport
//! (`docker://`) sits on the registry client, which is async at its core
//! (the registry server's pull-through cache shares it) and offers a blocking
//! facade owning its own tokio runtime; that facade is what implements these
//! traits.

mod archive;
mod archive_dest;
mod archive_source;
mod blobio;
mod compress;
mod destination;
pub mod docker_daemon;
pub mod docker_root;
mod engine;
mod error;
mod import;
mod load;
mod oci_dir;
mod progress;
mod referrers;
mod registry;
mod save;
mod source;
mod store_dest;
mod store_source;

pub use archive_dest::{ArchiveDestination, ArchiveKind, SaveOutput};
pub use archive_source::{ArchiveImage, ArchiveImageSource, ArchiveSource, LoadInput};
pub use compress::{Compress, CompressFormat};
pub use destination::ImageDestination;
pub use engine::{
    choose, copy, copy_image, Copied, CopiedImage, CopyOptions, Platforms, PARALLEL_BLOBS,
};
pub use error::TransportError;
pub use import::{apply_change, import, ImportError, ImportOptions, ImportedImage};
pub use load::load;
pub use oci_dir::{OciDirDestination, OciDirSource, REF_NAME};
pub use progress::{NoProgress, Progress};
pub use registry::{FetchProgress, MountReport, RegistryDestination, RegistrySource};
pub use save::{save, SaveFormat, SaveItem};
pub use source::{digest_of, BlobBody, ImageSource, RawManifest};
pub use store_dest::{LoadedImage, StoreDestination};
pub use store_source::StoreSource;

/// Largest JSON document (manifest.json, index.json, manifest, config) hoist reads.
pub const MAX_JSON: u64 = 16 * 1024 * 1024;
