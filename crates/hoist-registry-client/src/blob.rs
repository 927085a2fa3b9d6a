//! Blobs: `HEAD`, streams, verified fetches into a file (resumed with
//! `Range`, large ones as several bounded ranges at once), monolithic and
//! chunked uploads, cross-repository mounts.

use crate::auth::Scopes;
use crate::client::{header_u64, RegistryClient, Req};
use crate::error::{error_chain, Error, Result};
use bytes::Bytes;
use futures_util::StreamExt as _;
use hoist_oci::{Descriptor, Digest, Digester};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Method, StatusCode};
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Bytes read from a file or reader per upload chunk of a streamed body.
const READ_PIECE: usize = 1 << 20;
/// Default size of one PATCH of a chunked upload.
pub const DEFAULT_CHUNK_SIZE: usize = 8 << 20;

/// A hash that follows the verified prefix of a blob: sha2's state by
/// default, or one whose state can be saved (the store's resumable ingest),
/// so a pull killed midway resumes without hashing its prefix again.
pub trait PrefixHash: Send {
    /// Feeds the next bytes of the prefix.
    fn update(&mut self, bytes: &[u8]);
    /// The digest of everything fed so far (the state is kept).
    fn digest(&self) -> Digest;
}

impl PrefixHash for Digester {
    fn update(&mut self, bytes: &[u8]) {
        Digester::update(self, bytes);
    }

    fn digest(&self) -> Digest {
        self.clone().finish()
    }
}

/// The verified prefix of a blob being fetched into a file: how many
/// bytes are there, and the hash state after them. A fetch starts from it
/// and advances it as bytes are verified, so a failed fetch can resume.
pub struct Partial {
    /// Bytes at the start of the file already hashed.
    pub offset: u64,
    /// The hash of those bytes.
    pub hash: Box<dyn PrefixHash>,
}

impl Partial {
    /// Nothing fetched yet.
    pub fn new(algorithm: hoist_oci::Algorithm) -> Self {
        Partial {
            offset: 0,
            hash: Box::new(Digester::new(algorithm)),
        }
    }

    /// `offset` bytes already in the file, `hash` having seen exactly them.
    pub fn resume(offset: u64, hash: Box<dyn PrefixHash>) -> Self {
        Partial { offset, hash }
    }
}

/// What a blob upload reads from.
pub enum UploadBody {
    /// Bytes in memory (small blobs: configs).
    Bytes(Bytes),
    /// A region of a file; re-read on a retry.
    File {
        /// The file.
        file: std::fs::File,
        /// Where the blob starts.
        offset: u64,
        /// Its length.
        len: u64,
    },
    /// A stream, read once (no retry after bytes went out).
    Reader(Box<dyn Read + Send>),
}

/// A blob's bytes as the registry sends them, without retries (the
/// pull-through cache passes them on as they come).
pub struct BlobStream {
    resp: reqwest::Response,
    len: Option<u64>,
    /// Bytes still to drop (a registry that ignored `Range` sent them).
    skip: u64,
    client: RegistryClient,
    repo: String,
}

impl BlobStream {
    /// How many bytes the stream will give, when the registry said.
    pub fn len(&self) -> Option<u64> {
        self.len.map(|l| l.saturating_sub(self.skip))
    }

    /// True when the registry announced an empty body.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// The next piece, `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>> {
        loop {
            let c = self.resp.chunk().await.map_err(|e| {
                self.client.unreachable(
                    Some(&self.repo),
                    format!("the blob body broke off: {}", error_chain(&e)),
                )
            })?;
            let Some(mut c) = c else { return Ok(None) };
            if self.skip > 0 {
                let n = (c.len() as u64).min(self.skip);
                self.skip -= n;
                c = c.slice(n as usize..);
                if c.is_empty() {
                    continue;
                }
            }
            return Ok(Some(c));
        }
    }
}

/// The first byte and the total of a `Content-Range: bytes a-b/total`.
fn content_range(resp: &reqwest::Response) -> Option<(u64, u64, Option<u64>)> {
    let v = resp.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    let (range, total) = v.trim().strip_prefix("bytes ")?.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((
        a.trim().parse().ok()?,
        b.trim().parse().ok()?,
        total.trim().parse().ok(),
    ))
}

/// Completed ranges not yet hashed, by start.
type Done = Mutex<BTreeMap<u64, u64>>;

impl RegistryClient {
    /// A blob's size (`HEAD`); `None` when the repository lacks it.
    pub async fn blob_size(&self, repo: &str, digest: &Digest) -> Result<Option<u64>> {
        let r = Req::new(
            Method::HEAD,
            format!("/v2/{repo}/blobs/{digest}"),
            Some(repo),
        );
        match self.send(r).await {
            Ok(resp) => match header_u64(resp.headers(), CONTENT_LENGTH) {
                Some(n) => Ok(Some(n)),
                None => Err(self.invalid(
                    Some(repo),
                    "BLOB_UNKNOWN",
                    format!("HEAD of blob {digest} answered without Content-Length"),
                )),
            },
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A blob's bytes from `offset`, as a stream (redirects to object
    /// storage followed without our credentials). Not verified: that is
    /// the reader's job, or use [`RegistryClient::fetch_blob`].
    pub async fn open_blob(&self, repo: &str, digest: &Digest, offset: u64) -> Result<BlobStream> {
        self.mirrored(|c| async move { c.open_blob_here(repo, digest, offset).await })
            .await
    }

    async fn open_blob_here(&self, repo: &str, digest: &Digest, offset: u64) -> Result<BlobStream> {
        let mut r = Req::new(
            Method::GET,
            format!("/v2/{repo}/blobs/{digest}"),
            Some(repo),
        );
        r.small = false;
        if offset > 0 {
            r = r.header(RANGE, &format!("bytes={offset}-"));
        }
        let resp = self.send(r).await?;
        let len = header_u64(resp.headers(), CONTENT_LENGTH);
        // A 200 to a ranged request is the whole blob: drop what was asked past.
        let skip = if offset > 0 && resp.status() == StatusCode::OK {
            offset
        } else {
            0
        };
        if offset > 0 && resp.status() == StatusCode::PARTIAL_CONTENT {
            match content_range(&resp) {
                Some((a, _, _)) if a == offset => {}
                _ => {
                    return Err(self.invalid(
                        Some(repo),
                        "BLOB_UNKNOWN",
                        format!("blob {digest}: asked for bytes from {offset}, got another range"),
                    ))
                }
            }
        }
        Ok(BlobStream {
            resp,
            len,
            skip,
            client: self.clone(),
            repo: repo.to_owned(),
        })
    }

    /// Fetches `desc`'s blob into `file` at its offsets, from `partial`
    /// on, and verifies its size and digest. Blobs larger than two ranges
    /// come as several bounded ranges at once when the registry honours
    /// `Range`; a cut connection resumes where the bytes stopped (within a
    /// range too), so verified bytes are never fetched twice. `progress`
    /// gets the count of each piece written.
    pub async fn fetch_blob(
        &self,
        repo: &str,
        desc: &Descriptor,
        file: &std::fs::File,
        partial: &mut Partial,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<()> {
        // A mirror's verified prefix is the blob's: the next one goes on from it.
        for m in self.mirrors() {
            match m.fetch_blob_here(repo, desc, file, partial, progress).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::info!(mirror = m.registry(), error = %e, "mirror failed; trying the next");
                    // Wrong bytes taint the whole prefix; a cut does not.
                    if !e.is_unavailable() {
                        *partial = Partial::new(desc.digest.algorithm());
                    }
                }
            }
        }
        self.fetch_blob_here(repo, desc, file, partial, progress)
            .await
    }

    async fn fetch_blob_here(
        &self,
        repo: &str,
        desc: &Descriptor,
        file: &std::fs::File,
        partial: &mut Partial,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<()> {
        let size = desc.size;
        let d = &desc.digest;
        if partial.offset > size {
            *partial = Partial::new(d.algorithm());
        }
        let opts = &self.inner.opts;
        let remaining = size - partial.offset;
        if remaining > 2 * opts.range_size && opts.parallel_ranges > 1 {
            self.fetch_ranges(repo, desc, file, partial, progress)
                .await?;
        } else if remaining > 0 {
            self.fetch_stream(repo, desc, file, partial, None, progress)
                .await?;
        }
        self.check_complete(repo, desc, partial)
    }

    fn check_complete(&self, repo: &str, desc: &Descriptor, partial: &Partial) -> Result<()> {
        if partial.offset != desc.size {
            return Err(self.invalid(
                Some(repo),
                "SIZE_INVALID",
                format!(
                    "blob {}: expected {} bytes, got {}",
                    desc.digest, desc.size, partial.offset
                ),
            ));
        }
        let actual = partial.hash.digest();
        if actual != desc.digest {
            return Err(self.invalid(
                Some(repo),
                "DIGEST_INVALID",
                format!(
                    "blob {}: the {} bytes received hash to {actual}; nothing kept",
                    desc.digest, desc.size
                ),
            ));
        }
        Ok(())
    }

    /// One stream from `partial.offset` to the end, resumed with a bounded
    /// `Range` after a cut; a registry that ignores `Range` (200 without
    /// `Content-Range`) is read from the start again.
    async fn fetch_stream(
        &self,
        repo: &str,
        desc: &Descriptor,
        file: &std::fs::File,
        partial: &mut Partial,
        first: Option<reqwest::Response>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<()> {
        let size = desc.size;
        let d = &desc.digest;
        let io = |source| Error::Io {
            path: format!("<blob {d}>").into(),
            source,
        };
        let mut first = first;
        let mut attempt = 0u32;
        loop {
            let resp = match first.take() {
                Some(r) => r,
                None => {
                    let mut r = Req::new(Method::GET, format!("/v2/{repo}/blobs/{d}"), Some(repo));
                    r.small = false;
                    if partial.offset > 0 {
                        r = r.header(RANGE, &format!("bytes={}-{}", partial.offset, size - 1));
                    }
                    self.send(r).await?
                }
            };
            if resp.status() == StatusCode::OK && partial.offset > 0 {
                // The registry ignores Range: it sends everything.
                *partial = Partial::new(d.algorithm());
            } else if resp.status() == StatusCode::PARTIAL_CONTENT {
                match content_range(&resp) {
                    Some((a, _, total))
                        if a == partial.offset && total.is_none_or(|t| t == size) => {}
                    _ => {
                        return Err(self.invalid(
                            Some(repo),
                            "SIZE_INVALID",
                            format!(
                                "blob {d}: asked for bytes {}-{}, got another range or size",
                                partial.offset,
                                size - 1
                            ),
                        ))
                    }
                }
            }
            if let Some(n) = header_u64(resp.headers(), CONTENT_LENGTH) {
                if n != size - partial.offset {
                    return Err(self.invalid(
                        Some(repo),
                        "SIZE_INVALID",
                        format!(
                            "blob {d}: expected {} bytes, the registry announces {n}",
                            size - partial.offset
                        ),
                    ));
                }
            }
            let mut resp = resp;
            let cut = loop {
                match resp.chunk().await {
                    Ok(Some(c)) => {
                        if partial.offset + c.len() as u64 > size {
                            return Err(self.invalid(
                                Some(repo),
                                "SIZE_INVALID",
                                format!("blob {d}: the registry sends more than the {size} bytes expected"),
                            ));
                        }
                        // A pwrite into the page cache: cheaper than a hop
                        // to the blocking pool.
                        file.write_all_at(&c, partial.offset).map_err(io)?;
                        partial.hash.update(&c);
                        partial.offset += c.len() as u64;
                        progress(c.len() as u64);
                    }
                    Ok(None) => break None,
                    Err(e) => break Some(error_chain(&e)),
                }
            };
            if partial.offset == size {
                return Ok(());
            }
            let why = cut.unwrap_or_else(|| "the connection closed early".into());
            if attempt >= self.inner.opts.retries {
                return Err(self.unreachable(
                    Some(repo),
                    format!(
                        "blob {d} broke off at byte {} of {size}: {why}",
                        partial.offset
                    ),
                ));
            }
            tracing::debug!(blob = %d, at = partial.offset, "resuming a cut blob");
            self.backoff(attempt, None).await;
            attempt += 1;
        }
    }

    /// Several bounded ranges at once, written at their offsets; the hash
    /// follows the contiguous prefix as ranges complete (read back from
    /// the page cache), so memory stays bounded.
    async fn fetch_ranges(
        &self,
        repo: &str,
        desc: &Descriptor,
        file: &std::fs::File,
        partial: &mut Partial,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<()> {
        let size = desc.size;
        let d = &desc.digest;
        let step = self.inner.opts.range_size;
        let start = partial.offset;
        // The first range tells whether the registry honours Range.
        let first_end = (start + step).min(size) - 1;
        let mut r = Req::new(Method::GET, format!("/v2/{repo}/blobs/{d}"), Some(repo));
        r.small = false;
        r = r.header(RANGE, &format!("bytes={start}-{first_end}"));
        let probe = self.send(r).await?;
        if probe.status() != StatusCode::PARTIAL_CONTENT || content_range(&probe).is_none() {
            tracing::debug!(blob = %d, "the registry ignores Range: one stream");
            if start > 0 {
                *partial = Partial::new(d.algorithm());
            }
            return self
                .fetch_stream(repo, desc, file, partial, Some(probe), progress)
                .await;
        }
        let mut ranges = Vec::new();
        let mut a = start;
        while a < size {
            let b = (a + step).min(size) - 1;
            ranges.push((a, b));
            a = b + 1;
        }
        let done: Done = Mutex::new(BTreeMap::new());
        let mut probe = Some(probe);
        let mut tasks = futures_util::stream::iter(ranges.into_iter().map(|(a, b)| {
            let first = if a == start { probe.take() } else { None };
            let done = &done;
            async move {
                self.fetch_range(repo, d, size, file, a, b, first, progress)
                    .await?;
                done.lock().unwrap_or_else(|p| p.into_inner()).insert(a, b);
                Ok::<(), Error>(())
            }
        }))
        .buffer_unordered(self.inner.opts.parallel_ranges);
        let mut failure = None;
        while let Some(res) = tasks.next().await {
            if let Err(e) = res {
                failure = Some(e);
                break;
            }
            self.hash_prefix(d, file, partial, &done)?;
        }
        drop(tasks);
        self.hash_prefix(d, file, partial, &done)?;
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Hashes completed ranges that continue the verified prefix.
    fn hash_prefix(
        &self,
        d: &Digest,
        file: &std::fs::File,
        partial: &mut Partial,
        done: &Done,
    ) -> Result<()> {
        let mut buf = vec![0u8; READ_PIECE];
        loop {
            let next = done
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&partial.offset);
            let Some(end) = next else { return Ok(()) };
            while partial.offset <= end {
                let n = ((end + 1 - partial.offset) as usize).min(buf.len());
                file.read_exact_at(&mut buf[..n], partial.offset)
                    .map_err(|source| Error::Io {
                        path: format!("<blob {d}>").into(),
                        source,
                    })?;
                partial.hash.update(&buf[..n]);
                partial.offset += n as u64;
            }
        }
    }

    /// One range `a..=b`, resumed within itself after a cut.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_range(
        &self,
        repo: &str,
        d: &Digest,
        size: u64,
        file: &std::fs::File,
        a: u64,
        b: u64,
        first: Option<reqwest::Response>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<()> {
        let mut pos = a;
        let mut first = first;
        let mut attempt = 0u32;
        loop {
            let mut resp = match first.take() {
                Some(r) => r,
                None => {
                    let mut r = Req::new(Method::GET, format!("/v2/{repo}/blobs/{d}"), Some(repo));
                    r.small = false;
                    self.send(r.header(RANGE, &format!("bytes={pos}-{b}")))
                        .await?
                }
            };
            match content_range(&resp) {
                Some((x, y, total))
                    if resp.status() == StatusCode::PARTIAL_CONTENT
                        && x == pos
                        && y == b
                        && total.is_none_or(|t| t == size) => {}
                _ => {
                    return Err(self.invalid(
                        Some(repo),
                        "SIZE_INVALID",
                        format!(
                        "blob {d}: asked for bytes {pos}-{b} of {size}, got another range or size"
                    ),
                    ))
                }
            }
            let cut = loop {
                match resp.chunk().await {
                    Ok(Some(c)) => {
                        if pos + c.len() as u64 > b + 1 {
                            return Err(self.invalid(
                                Some(repo),
                                "SIZE_INVALID",
                                format!("blob {d}: range {a}-{b} is longer than asked"),
                            ));
                        }
                        file.write_all_at(&c, pos).map_err(|source| Error::Io {
                            path: format!("<blob {d}>").into(),
                            source,
                        })?;
                        pos += c.len() as u64;
                        progress(c.len() as u64);
                    }
                    Ok(None) => break None,
                    Err(e) => break Some(error_chain(&e)),
                }
            };
            if pos == b + 1 {
                return Ok(());
            }
            let why = cut.unwrap_or_else(|| "the connection closed early".into());
            if attempt >= self.inner.opts.retries {
                return Err(self.unreachable(
                    Some(repo),
                    format!("blob {d} range {a}-{b} broke off at byte {pos}: {why}"),
                ));
            }
            self.backoff(attempt, None).await;
            attempt += 1;
        }
    }

    /// Mounts `digest` from repository `from` of the same registry into
    /// `repo`; `false` when the registry would not (the upload it opened
    /// instead is cancelled).
    pub async fn mount_blob(&self, repo: &str, digest: &Digest, from: &str) -> Result<bool> {
        let mut r = Req::new(
            Method::POST,
            format!("/v2/{repo}/blobs/uploads/?mount={digest}&from={from}"),
            Some(repo),
        );
        r.scopes = Scopes::push(repo).union(&Scopes::pull(from));
        r.retry = true;
        let resp = self.send(r).await?;
        if resp.status() == StatusCode::CREATED {
            return Ok(true);
        }
        if let Ok(loc) = self.location(&resp, repo) {
            // Cancelling an upload is part of pushing (no delete right needed).
            let mut cancel = Req::new(Method::DELETE, loc, Some(repo));
            cancel.scopes = Scopes::push(repo);
            let _ = self.send(cancel).await;
        }
        Ok(false)
    }

    /// The upload URL a POST or PATCH answered with.
    fn location(&self, resp: &reqwest::Response, repo: &str) -> Result<String> {
        let loc = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                self.invalid(
                    Some(repo),
                    "BLOB_UPLOAD_INVALID",
                    "an upload answer without Location",
                )
            })?;
        if loc.starts_with("http://") || loc.starts_with("https://") {
            return Ok(loc.to_owned());
        }
        let base = self
            .base_url()
            .ok_or_else(|| self.unreachable(Some(repo), "no endpoint chosen"))?;
        if loc.starts_with('/') {
            Ok(format!("{base}{loc}"))
        } else {
            Ok(format!("{base}/{loc}"))
        }
    }

    async fn start_upload(&self, repo: &str) -> Result<String> {
        let mut r = Req::new(
            Method::POST,
            format!("/v2/{repo}/blobs/uploads/"),
            Some(repo),
        );
        r.retry = true;
        let resp = self.send(r).await?;
        self.location(&resp, repo)
    }

    /// Uploads a blob in one request (POST, then PUT `?digest=`); the
    /// registry verifies the digest. A file or bytes body is retried whole.
    pub async fn push_blob(&self, repo: &str, desc: &Descriptor, body: UploadBody) -> Result<()> {
        self.push_blob_counted(repo, desc, body, &AtomicU64::new(0))
            .await
    }

    /// [`RegistryClient::push_blob`], counting into `sent` the bytes handed
    /// to the connection (set back to 0 when a retry starts over), so a
    /// caller can draw progress while it waits.
    pub async fn push_blob_counted(
        &self,
        repo: &str,
        desc: &Descriptor,
        body: UploadBody,
        sent: &AtomicU64,
    ) -> Result<()> {
        let d = &desc.digest;
        let mut body = Some(body);
        let mut attempt = 0u32;
        loop {
            let Some(b) = body.take() else {
                return Err(self.unreachable(Some(repo), format!("blob {d}: the upload failed")));
            };
            let counter = Arc::new(AtomicU64::new(0));
            let (stream, again) = upload_body(b, desc.size, counter.clone())?;
            let loc = self.start_upload(repo).await?;
            let mut r = Req::new(Method::PUT, with_digest(&loc, d), Some(repo))
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, &desc.size.to_string());
            r.small = false;
            r.retry = false;
            r.stream = Some(stream);
            sent.store(0, Ordering::Relaxed);
            let put = self.send(r);
            tokio::pin!(put);
            // Mirror the stream's count into `sent` until the PUT is answered.
            let res = loop {
                tokio::select! {
                    r = &mut put => break r,
                    _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {
                        sent.store(counter.load(Ordering::Relaxed), Ordering::Relaxed);
                    }
                }
            };
            match res {
                Ok(_) => {
                    sent.store(desc.size, Ordering::Relaxed);
                    return Ok(());
                }
                Err(e)
                    if e.is_unavailable()
                        && attempt < self.inner.opts.retries
                        && again.is_some() =>
                {
                    tracing::debug!(blob = %d, error = %e, "retrying the upload");
                    body = again;
                    self.backoff(attempt, None).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Uploads a blob in PATCHes of `chunk_size` bytes, then PUT `?digest=`.
    /// A PATCH that fails is resumed from what the registry says it has.
    pub async fn push_blob_chunked(
        &self,
        repo: &str,
        desc: &Descriptor,
        body: UploadBody,
        chunk_size: usize,
    ) -> Result<()> {
        let d = &desc.digest;
        let mut source = ChunkSource::new(body)?;
        let mut loc = self.start_upload(repo).await?;
        let mut sent = 0u64;
        while sent < desc.size {
            let want = (desc.size - sent).min(chunk_size.max(1) as u64) as usize;
            let chunk = source.next(want).await.map_err(|source| Error::Io {
                path: format!("<blob {d}>").into(),
                source,
            })?;
            if chunk.len() != want {
                return Err(Error::Io {
                    path: format!("<blob {d}>").into(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!(
                            "the blob's source ended at byte {} of {}",
                            sent + chunk.len() as u64,
                            desc.size
                        ),
                    ),
                });
            }
            let mut offset_in_chunk = 0usize;
            let mut attempt = 0u32;
            loop {
                let piece = chunk.slice(offset_in_chunk..);
                let from = sent + offset_in_chunk as u64;
                let mut r = Req::new(Method::PATCH, loc.clone(), Some(repo))
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(
                        CONTENT_RANGE,
                        &format!("{from}-{}", from + piece.len() as u64 - 1),
                    );
                r.small = false;
                r.retry = false;
                r.body = Some(piece);
                match self.send(r).await {
                    Ok(resp) => {
                        loc = self.location(&resp, repo)?;
                        break;
                    }
                    Err(e) if e.is_unavailable() && attempt < self.inner.opts.retries => {
                        self.backoff(attempt, None).await;
                        attempt += 1;
                        let have = self.upload_status(repo, &loc).await?;
                        if have < sent || have > sent + chunk.len() as u64 {
                            return Err(e);
                        }
                        offset_in_chunk = (have - sent) as usize;
                        if offset_in_chunk == chunk.len() {
                            break;
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            sent += chunk.len() as u64;
        }
        let mut r =
            Req::new(Method::PUT, with_digest(&loc, d), Some(repo)).header(CONTENT_LENGTH, "0");
        r.body = Some(Bytes::new());
        self.send(r).await.map(drop)
    }

    /// How many bytes an upload session holds (`GET` its URL: `Range: 0-N`).
    async fn upload_status(&self, repo: &str, loc: &str) -> Result<u64> {
        let mut r = Req::new(Method::GET, loc.to_owned(), Some(repo));
        r.scopes = Scopes::push(repo);
        let resp = self.send(r).await?;
        Ok(resp
            .headers()
            .get(RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().trim_start_matches("bytes=").split_once('-'))
            .and_then(|(_, end)| end.trim().parse::<u64>().ok())
            .map_or(0, |end| end + 1))
    }
}

/// `loc` with `digest=` added to its query.
fn with_digest(loc: &str, d: &Digest) -> String {
    let sep = if loc.contains('?') { '&' } else { '?' };
    format!("{loc}{sep}digest={d}")
}

/// A request body for `body`, and the body again for a retry when it can
/// be read twice.
fn upload_body(
    body: UploadBody,
    len: u64,
    counter: Arc<AtomicU64>,
) -> Result<(reqwest::Body, Option<UploadBody>)> {
    Ok(match body {
        UploadBody::Bytes(b) => (reqwest::Body::from(b.clone()), Some(UploadBody::Bytes(b))),
        UploadBody::File {
            file,
            offset,
            len: l,
        } => {
            let again = file.try_clone().map_err(|source| Error::Io {
                path: "<upload source>".into(),
                source,
            })?;
            let reader = FileRegion {
                file,
                pos: offset,
                end: offset + l.min(len),
            };
            (
                stream_body(Box::new(reader), counter),
                Some(UploadBody::File {
                    file: again,
                    offset,
                    len: l,
                }),
            )
        }
        UploadBody::Reader(r) => (stream_body(r, counter), None),
    })
}

/// A region of a file as a reader (positioned reads: the file's cursor is untouched).
struct FileRegion {
    file: std::fs::File,
    pos: u64,
    end: u64,
}

impl Read for FileRegion {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = ((self.end - self.pos) as usize).min(buf.len());
        if n == 0 {
            return Ok(0);
        }
        let got = self.file.read_at(&mut buf[..n], self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

/// A streamed request body read by a blocking thread through a small queue.
fn stream_body(mut r: Box<dyn Read + Send>, counter: Arc<AtomicU64>) -> reqwest::Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || loop {
        let mut buf = vec![0u8; READ_PIECE];
        match read_full(&mut r, &mut buf) {
            Ok(0) => return,
            Ok(n) => {
                buf.truncate(n);
                if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
    });
    reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, move |mut rx| {
        let counter = counter.clone();
        async move {
            let item = rx.recv().await?;
            if let Ok(b) = &item {
                counter.fetch_add(b.len() as u64, Ordering::Relaxed);
            }
            Some((item, rx))
        }
    }))
}

/// Reads until `buf` is full or the end.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Chunks of an upload body, read on the blocking pool.
struct ChunkSource {
    reader: Option<Box<dyn Read + Send>>,
}

impl ChunkSource {
    fn new(body: UploadBody) -> Result<Self> {
        let reader: Box<dyn Read + Send> = match body {
            UploadBody::Bytes(b) => Box::new(std::io::Cursor::new(b)),
            UploadBody::File { file, offset, len } => Box::new(FileRegion {
                file,
                pos: offset,
                end: offset + len,
            }),
            UploadBody::Reader(r) => r,
        };
        Ok(ChunkSource {
            reader: Some(reader),
        })
    }

    async fn next(&mut self, want: usize) -> std::io::Result<Bytes> {
        let mut r = self
            .reader
            .take()
            .ok_or_else(|| std::io::Error::other("the upload source failed before"))?;
        let (r, res) = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; want];
            let res = read_full(&mut r, &mut buf).map(|n| {
                buf.truncate(n);
                Bytes::from(buf)
            });
            (r, res)
        })
        .await
        .map_err(std::io::Error::other)?;
        self.reader = Some(r);
        res
    }
}
