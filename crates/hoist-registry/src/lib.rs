//! The registry server: the OCI distribution-spec over HTTP, upload sessions,
//! storage drivers (the filesystem and S3) in the CNCF distribution
//! registry's exact layout, garbage collection, auth (htpasswd, tokens,
//! per-repository rights), the pull-through cache, TLS, `/metrics`, the web
//! page and distribution's config file. [`RegistryBuilder`] composes a
//! server from these in a few lines (what `hoist serve` runs).

pub mod auth;
pub mod builder;
pub(crate) mod claims;
pub mod config;
pub mod driver;
pub mod error;
pub(crate) mod fsutil;
pub mod gc;
pub(crate) mod handlers;
pub mod layout;
pub mod metrics;
pub mod names;
pub(crate) mod plumbing;
pub mod proxy;
pub(crate) mod routing;
pub mod server;
pub mod store;
pub mod tls;
pub mod upload;
pub mod web;

pub use auth::{Auth, AuthConfig, AuthConfigError, AuthError, IssueConfig, TokenConfig};
pub use builder::{BuildError, Registry, RegistryBuilder, DEFAULT_ADDR};
pub use driver::{S3Config, StorageConfig};
pub use error::{Error, Result, StorageError};
pub use names::{ManifestRef, NameError, RepoName, Tag, UploadId};
pub use proxy::{ProxyConfig, UpstreamConfig};
pub use server::{router, serve, shutdown_signal, ServerConfig};
pub use store::Store;
