//! The blocking facade: the async client driven by a tokio runtime this
//! facade owns, for callers on plain threads (the `docker://` transport,
//! the CLI). Never use it from inside an async runtime.

use crate::blob::{BlobStream, Partial, UploadBody};
use crate::client::{Options, RawManifest};
use crate::error::{Error, Result};
use bytes::Bytes;
use hoist_oci::{Descriptor, Digest};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The blocking client for one registry; clones share the runtime and auth.
#[derive(Clone, Debug)]
pub struct RegistryClient {
    rt: Arc<tokio::runtime::Runtime>,
    inner: crate::RegistryClient,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    // Two workers: the ranges of a blob and token fetches run beside the
    // caller's `block_on`.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("hoist-registry-client")
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the registry client's runtime: {e}")))
}

impl RegistryClient {
    /// See [`crate::RegistryClient::new`].
    pub fn new(registry: &str, opts: &Options) -> Result<Self> {
        Ok(RegistryClient {
            rt: Arc::new(runtime()?),
            inner: crate::RegistryClient::new(registry, opts)?,
        })
    }

    /// See [`crate::RegistryClient::with_url`].
    pub fn with_url(
        base: &str,
        credentials: Option<crate::Credentials>,
        opts: &Options,
    ) -> Result<Self> {
        Ok(RegistryClient {
            rt: Arc::new(runtime()?),
            inner: crate::RegistryClient::with_url(base, credentials, opts)?,
        })
    }

    /// The async client underneath.
    pub fn inner(&self) -> &crate::RegistryClient {
        &self.inner
    }

    /// The registry as errors name it.
    pub fn registry(&self) -> &str {
        self.inner.registry()
    }

    /// See [`crate::RegistryClient::ping`].
    pub fn ping(&self) -> Result<()> {
        self.rt.block_on(self.inner.ping())
    }

    /// See [`crate::RegistryClient::head_manifest`].
    pub fn head_manifest(&self, repo: &str, reference: &str) -> Result<Option<Descriptor>> {
        self.rt.block_on(self.inner.head_manifest(repo, reference))
    }

    /// See [`crate::RegistryClient::get_manifest`].
    pub fn get_manifest(&self, repo: &str, reference: &str) -> Result<RawManifest> {
        self.rt.block_on(self.inner.get_manifest(repo, reference))
    }

    /// See [`crate::RegistryClient::put_manifest`].
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest> {
        self.rt
            .block_on(self.inner.put_manifest(repo, reference, bytes, media_type))
    }

    /// See [`crate::RegistryClient::put_referrer`].
    pub fn put_referrer(&self, repo: &str, bytes: &[u8], media_type: &str) -> Result<bool> {
        self.rt
            .block_on(self.inner.put_referrer(repo, bytes, media_type))
    }

    /// See [`crate::RegistryClient::delete_manifest`].
    pub fn delete_manifest(&self, repo: &str, digest: &Digest) -> Result<()> {
        self.rt.block_on(self.inner.delete_manifest(repo, digest))
    }

    /// See [`crate::RegistryClient::delete_blob`].
    pub fn delete_blob(&self, repo: &str, digest: &Digest) -> Result<()> {
        self.rt.block_on(self.inner.delete_blob(repo, digest))
    }

    /// See [`crate::RegistryClient::list_tags`].
    pub fn list_tags(&self, repo: &str, page_size: Option<usize>) -> Result<Vec<String>> {
        self.rt.block_on(self.inner.list_tags(repo, page_size))
    }

    /// See [`crate::RegistryClient::catalog`].
    pub fn catalog(&self, page_size: Option<usize>) -> Result<Vec<String>> {
        self.rt.block_on(self.inner.catalog(page_size))
    }

    /// See [`crate::RegistryClient::referrers`].
    pub fn referrers(
        &self,
        repo: &str,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        self.rt
            .block_on(self.inner.referrers(repo, digest, artifact_type))
    }

    /// See [`crate::RegistryClient::blob_size`].
    pub fn blob_size(&self, repo: &str, digest: &Digest) -> Result<Option<u64>> {
        self.rt.block_on(self.inner.blob_size(repo, digest))
    }

    /// A blob's bytes from `offset` as a reader (unverified; see
    /// [`crate::RegistryClient::open_blob`]).
    pub fn open_blob(&self, repo: &str, digest: &Digest, offset: u64) -> Result<BlobReader> {
        let stream = self
            .rt
            .block_on(self.inner.open_blob(repo, digest, offset))?;
        Ok(BlobReader {
            rt: self.rt.clone(),
            stream,
            buf: Bytes::new(),
        })
    }

    /// See [`crate::RegistryClient::fetch_blob`].
    pub fn fetch_blob(
        &self,
        repo: &str,
        desc: &Descriptor,
        file: &std::fs::File,
        partial: &mut Partial,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<()> {
        self.rt
            .block_on(self.inner.fetch_blob(repo, desc, file, partial, progress))
    }

    /// See [`crate::RegistryClient::mount_blob`].
    pub fn mount_blob(&self, repo: &str, digest: &Digest, from: &str) -> Result<bool> {
        self.rt.block_on(self.inner.mount_blob(repo, digest, from))
    }

    /// See [`crate::RegistryClient::push_blob`]; `progress` gets the bytes
    /// sent as they go (on this thread).
    pub fn push_blob(
        &self,
        repo: &str,
        desc: &Descriptor,
        body: UploadBody,
        progress: &dyn Fn(u64),
    ) -> Result<()> {
        let sent = AtomicU64::new(0);
        let mut reported = 0u64;
        let mut report = || {
            let now = sent.load(Ordering::Relaxed);
            if now > reported {
                progress(now - reported);
                reported = now;
            }
        };
        self.rt.block_on(async {
            let push = self.inner.push_blob_counted(repo, desc, body, &sent);
            tokio::pin!(push);
            loop {
                tokio::select! {
                    r = &mut push => {
                        report();
                        return r;
                    }
                    _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => report(),
                }
            }
        })
    }

    /// See [`crate::RegistryClient::push_blob_chunked`].
    pub fn push_blob_chunked(
        &self,
        repo: &str,
        desc: &Descriptor,
        body: UploadBody,
        chunk_size: usize,
    ) -> Result<()> {
        self.rt
            .block_on(self.inner.push_blob_chunked(repo, desc, body, chunk_size))
    }
}

/// A blob stream as a [`Read`].
pub struct BlobReader {
    rt: Arc<tokio::runtime::Runtime>,
    stream: BlobStream,
    buf: Bytes,
}

impl BlobReader {
    /// How many bytes the registry announced, if it did.
    pub fn len(&self) -> Option<u64> {
        self.stream.len()
    }

    /// True when the registry announced an empty body.
    pub fn is_empty(&self) -> bool {
        self.stream.is_empty()
    }
}

impl Read for BlobReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() {
            match self.rt.block_on(self.stream.chunk()) {
                Ok(Some(c)) => self.buf = c,
                Ok(None) => return Ok(0),
                Err(e) => return Err(std::io::Error::other(e)),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf = self.buf.slice(n..);
        Ok(n)
    }
}
