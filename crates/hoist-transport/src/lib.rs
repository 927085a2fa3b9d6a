//! Image transports and the copy between them: `docker-archive:` (both the
//! classic `docker save` layout and Docker 25+'s OCI-based one), `oci-archive:`
//! and the local store. `load` copies an archive into the store, `save` the
//! other way round.

mod archive;
pub mod docker_daemon;
pub mod docker_root;
mod error;
mod import;
mod load;
mod progress;
mod save;

pub use error::TransportError;
pub use import::{apply_change, import, ImportError, ImportOptions, ImportedImage};
pub use load::{load, LoadInput, LoadedImage};
pub use progress::{NoProgress, Progress};
pub use save::{save, SaveFormat, SaveItem, SaveOutput};

/// Largest JSON document (manifest.json, index.json, manifest, config) hoist reads.
pub const MAX_JSON: u64 = 16 * 1024 * 1024;
