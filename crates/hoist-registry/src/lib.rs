//! The registry server: the OCI distribution-spec over HTTP, upload sessions,
//! storage drivers (the filesystem and S3) in the CNCF distribution
//! registry's exact layout, and garbage collection.

pub mod driver;
pub mod error;
pub(crate) mod fsutil;
pub mod gc;
pub mod hashstate;
pub mod layout;
pub mod names;
pub mod server;
pub mod store;
pub mod upload;

pub use driver::{S3Config, StorageConfig};
pub use error::{Error, Result};
pub use names::{ManifestRef, NameError, RepoName, Tag, UploadId};
pub use server::{router, serve, shutdown_signal, ServerConfig};
pub use store::Store;
