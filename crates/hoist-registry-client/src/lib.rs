//! A client for the OCI distribution spec (and Docker's registry API).
//!
//! # I/O model
//! The core is async (tokio, reqwest 0.12 with rustls on ring): a registry
//! client spends its life waiting on the network, many requests at once
//! (several ranges of one blob, several blobs, token fetches), and the
//! registry server's pull-through cache, itself async, uses it directly.
//! The rest of hoist (the store, tar, in-kernel copies) is blocking
//! syscalls, so [`blocking::RegistryClient`] wraps the same client in a
//! runtime it owns: the `docker://` transport calls it from plain threads.
//!
//! # What it does
//! * `/v2/` ping; manifests by tag or digest with every OCI and Docker
//!   manifest type in `Accept`, at most 4 MiB, the digest verified, the
//!   media type checked against `Content-Type`.
//! * Blobs: `HEAD`, plain streams, and verified fetches into a file that
//!   resume with `Range` after a cut and, for large blobs on a registry
//!   that honours `Range`, fetch several bounded ranges at once; one plain
//!   stream when it answers 200 without `Content-Range`.
//! * Uploads: monolithic (POST + PUT) and chunked (PATCH), cross-repository
//!   mount; tags and catalog following `Link` pages; referrers with the
//!   tag-schema fallback; delete.
//! * Auth: anonymous, basic and bearer tokens (every challenge of
//!   `WWW-Authenticate` read, pull/push scopes, several repositories for a
//!   mount, tokens cached per scope set and fetched again when they
//!   expire), credentials from Docker's `config.json` and its helpers.
//! * TLS with the system's roots (rustls-native-certs, on purpose: a
//!   company CA installed in the OS must work as it does for Docker) plus
//!   Docker's `certs.d/HOST/{*.crt,client.cert,client.key}`. `localhost`,
//!   127.0.0.0/8 and insecure registries: HTTPS first, plain HTTP as the
//!   fallback, as Docker does (certificates of insecure ones unchecked). `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY`
//!   are honoured (reqwest reads them). A redirect to another host
//!   (object storage) is followed without our credentials.
//! * Retries with backoff on connection errors, 5xx and 429.

mod auth;
mod blob;
pub mod blocking;
mod client;
mod docker_config;
mod error;

pub use auth::Credentials;
pub use blob::{BlobStream, Partial, PrefixHash, UploadBody, DEFAULT_CHUNK_SIZE};
pub use client::{
    api_host, is_local, Options, RawManifest, RegistryClient, MANIFEST_ACCEPT, MAX_MANIFEST_SIZE,
};
pub use docker_config::{config_key, normalize_registry, DockerConfig, DOCKER_HUB_KEY};
pub use error::{error_chain, Error, RegistryError, Result};
