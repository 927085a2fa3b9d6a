//! The S3 driver: distribution's layout as object keys in an S3-compatible
//! bucket (`<prefix>/docker/registry/v2/blobs/sha256/<2>/<hex>/data`, ...),
//! through `object_store`'s `AmazonS3`.
//!
//! Blocking on async: the [`Driver`] trait is blocking because the whole
//! store is (the filesystem driver is plain `std::fs` on tokio's blocking
//! pool, its fastest form). The S3 driver keeps the runtime's `Handle` and
//! `block_on`s each request; it is only ever called on blocking-pool threads
//! (the server's `spawn_blocking`), where that is allowed and parks no async
//! worker.
//!
//! Appending: S3 cannot append, so each writer of [`Driver::append`] (one
//! PATCH, or the body of a final PUT) becomes one part object
//! `<file>.parts/<offset>`, named by where it starts, streamed with bounded
//! memory (a multipart upload once it outgrows one buffer). A part object
//! appears only once its writer commits; a failed write leaves no part.
//! Reading or renaming such a file reads its parts in order; a rename makes
//! them one object: one part by a server-side copy, several by streaming them
//! into one multipart upload, the target appearing only when that finishes.
//!
//! Garbage collection's claims cannot refresh an object's time without
//! rewriting it: [`crate::claims`] writes marker objects on S3 instead, and a
//! rename here (a copy and a delete) gives the target a time of its own.

use super::{ByteStream, Driver, FileInfo, FileWriter};

mod config;
pub use config::S3Config;

use crate::error::{Error, Result, StorageError};
use crate::layout::Layout;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::path::Path as Key;
use object_store::{
    ClientOptions, GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload,
    RetryConfig,
};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::AsyncWriteExt;
use tokio::runtime::Handle;

/// Buffer of one part of a multipart upload (S3 wants at least 5 MiB).
const PART_BUFFER: usize = 8 << 20;
/// Parts of one upload in flight at once (bounds memory per upload).
const PART_CONCURRENCY: usize = 2;

/// An S3-compatible bucket holding distribution's layout.
pub struct S3Driver {
    layout: Layout,
    store: Arc<dyn ObjectStore>,
    rt: Handle,
    /// A runtime of its own when opened outside any (`hoist registry gc`).
    _own_rt: Option<tokio::runtime::Runtime>,
    bucket: String,
}

impl fmt::Debug for S3Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Driver")
            .field("bucket", &self.bucket)
            .field("base", &self.layout.base())
            .finish()
    }
}

impl S3Driver {
    /// Connects to the bucket and checks that it answers. Inside a tokio
    /// runtime it must run on a thread that may block (`spawn_blocking`);
    /// outside any, it starts a small runtime of its own.
    pub fn open(cfg: &S3Config) -> Result<Self> {
        let (rt, own_rt) = match Handle::try_current() {
            Ok(h) => (h, None),
            Err(_) => {
                let own = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(StorageError::Runtime)?;
                (own.handle().clone(), Some(own))
            }
        };
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&cfg.bucket)
            .with_region(&cfg.region)
            .with_access_key_id(&cfg.access_key_id)
            .with_secret_access_key(&cfg.secret_access_key)
            // Path-style requests work with every S3-compatible server.
            .with_virtual_hosted_style_request(false)
            // The default 30 s limit covers the whole response body, and a
            // blob GET streams at the pace of the registry's client: no
            // overall limit, but a bounded connect.
            .with_client_options(
                ClientOptions::new()
                    .with_timeout_disabled()
                    .with_connect_timeout(Duration::from_secs(10)),
            )
            // A few quick retries of transient failures, not minutes of them
            // (the default) before a wrong endpoint is reported.
            .with_retry(RetryConfig {
                max_retries: 4,
                retry_timeout: Duration::from_secs(30),
                ..RetryConfig::default()
            });
        if let Some(t) = &cfg.session_token {
            b = b.with_token(t);
        }
        if let Some(e) = &cfg.endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(StorageError::BadEndpoint(e.clone()).into());
            }
            b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
        }
        let store = b.build().map_err(|source| StorageError::Client {
            storage: cfg.to_string(),
            source,
        })?;
        let driver = S3Driver {
            layout: Layout::new(&cfg.prefix_path()?),
            store: Arc::new(store),
            rt,
            _own_rt: own_rt,
            bucket: cfg.bucket.clone(),
        };
        // Fail now, with the bucket named, rather than on the first push.
        let base = driver.key(driver.layout.base())?;
        driver
            .rt
            .block_on(driver.store.list_with_delimiter(Some(&base)))
            .map_err(|source| StorageError::Unreachable {
                storage: cfg.to_string(),
                source,
            })?;
        Ok(driver)
    }

    fn key(&self, path: &Path) -> Result<Key> {
        let s = path
            .to_str()
            .ok_or_else(|| self.err("map", path, "not UTF-8"))?;
        Key::parse(s).map_err(|e| self.err("map", path, e))
    }

    fn err(&self, op: &'static str, path: &Path, e: impl fmt::Display) -> Error {
        Error::Io {
            op,
            path: PathBuf::from(format!("s3://{}/{}", self.bucket, path.display())),
            source: io::Error::other(e.to_string()),
        }
    }

    fn head_meta(&self, path: &Path) -> Result<Option<ObjectMeta>> {
        let key = self.key(path)?;
        match self.rt.block_on(self.store.head(&key)) {
            Ok(m) => Ok(Some(m)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err("stat", path, e)),
        }
    }

    fn head(&self, path: &Path) -> Result<Option<u64>> {
        Ok(self.head_meta(path)?.map(|m| m.size))
    }

    fn modified(&self, path: &Path) -> Result<Option<SystemTime>> {
        Ok(self.head_meta(path)?.map(|m| m.last_modified.into()))
    }

    fn delete_key(&self, path: &Path) -> Result<()> {
        let key = self.key(path)?;
        match self.rt.block_on(self.store.delete(&key)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err("delete", path, e)),
        }
    }

    fn delete_prefix(&self, dir: &Path) -> Result<()> {
        let prefix = self.key(dir)?;
        self.rt.block_on(async {
            let keys: Vec<_> = self
                .store
                .list(Some(&prefix))
                .try_collect()
                .await
                .map_err(|e| self.err("list", dir, e))?;
            // One by one: a tree here is a tag or an upload session, a few keys.
            for o in keys {
                match self.store.delete(&o.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(self.err("delete", dir, e)),
                }
            }
            Ok(())
        })
    }

    fn copy(&self, from: &Path, to: &Path) -> Result<bool> {
        let (f, t) = (self.key(from)?, self.key(to)?);
        match self.rt.block_on(self.store.copy(&f, &t)) {
            Ok(()) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.err("copy", from, e)),
        }
    }

    /// Where the parts of an appended file live.
    fn parts_dir(path: &Path) -> PathBuf {
        let mut name = path.file_name().unwrap_or_default().to_owned();
        name.push(".parts");
        path.with_file_name(name)
    }

    /// An appended file's parts in order, each (key, size), while they are
    /// contiguous.
    fn parts(&self, path: &Path) -> Result<Vec<(Key, u64)>> {
        let dir = Self::parts_dir(path);
        let prefix = self.key(&dir)?;
        let objects: Vec<_> = self
            .rt
            .block_on(self.store.list(Some(&prefix)).try_collect::<Vec<_>>())
            .map_err(|e| self.err("list", &dir, e))?;
        let mut parts: Vec<(u64, Key, u64)> = objects
            .into_iter()
            .filter_map(|o| {
                let offset = o.location.filename()?.parse::<u64>().ok()?;
                Some((offset, o.location, o.size))
            })
            .collect();
        parts.sort_by_key(|p| p.0);
        let mut out = Vec::new();
        let mut at = 0;
        for (offset, key, size) in parts {
            // A gap or an overlap can only come from a foreign writer:
            // what follows it is not part of the file.
            if offset != at || size == 0 {
                break;
            }
            at += size;
            out.push((key, size));
        }
        Ok(out)
    }

    /// Makes an appended file's parts the object `to`.
    fn join_parts(&self, parts: &[(Key, u64)], to: &Path) -> Result<()> {
        let key = self.key(to)?;
        match parts {
            [] => self.put(to, b""),
            // One part (a monolithic push, or docker's single PATCH): a
            // server-side copy, no bytes through this process.
            [(from, _)] => self
                .rt
                .block_on(self.store.copy(from, &key))
                .map_err(|e| self.err("copy into", to, e)),
            _ => self.rt.block_on(async {
                let mut w = BufWriter::with_capacity(self.store.clone(), key, PART_BUFFER)
                    .with_max_concurrency(PART_CONCURRENCY);
                let res = async {
                    for (from, _) in parts {
                        let mut s = self.store.get(from).await?.into_stream();
                        while let Some(chunk) = s.next().await {
                            w.put(chunk?).await?;
                        }
                    }
                    Ok::<_, object_store::Error>(())
                }
                .await;
                match res {
                    Ok(()) => w.shutdown().await.map_err(|e| self.err("write", to, e)),
                    Err(e) => {
                        let _ = w.abort().await;
                        Err(self.err("write", to, e))
                    }
                }
            }),
        }
    }

    fn stream_key(&self, key: &Key, path: &Path, range: Option<GetRange>) -> Result<ByteStream> {
        let opts = GetOptions {
            range,
            ..GetOptions::default()
        };
        let r = self
            .rt
            .block_on(self.store.get_opts(key, opts))
            .map_err(|e| self.err("get", path, e))?;
        Ok(r.into_stream().map_err(io::Error::other).boxed())
    }
}

impl Driver for S3Driver {
    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn get(&self, path: &Path, max: u64) -> Result<Option<Vec<u8>>> {
        let key = self.key(path)?;
        let r = match self.rt.block_on(self.store.get(&key)) {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.err("get", path, e)),
        };
        let mut stream = r.into_stream();
        let mut out = Vec::new();
        self.rt.block_on(async {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| self.err("read", path, e))?;
                let room = (max as usize).saturating_sub(out.len());
                out.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if out.len() as u64 >= max {
                    break;
                }
            }
            Ok::<_, Error>(())
        })?;
        Ok(Some(out))
    }

    fn put(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        // A PUT of an object is atomic in S3: readers see old or new.
        let key = self.key(path)?;
        self.rt
            .block_on(
                self.store
                    .put(&key, PutPayload::from(Bytes::copy_from_slice(bytes))),
            )
            .map(|_| ())
            .map_err(|e| self.err("put", path, e))
    }

    fn reader(&self, path: &Path, offset: u64) -> Result<Box<dyn io::Read + Send>> {
        let parts = self.parts(path)?;
        let parts = if parts.is_empty() {
            if self.head(path)?.is_none() {
                return Err(self.err("open", path, "no such object"));
            }
            vec![(self.key(path)?, u64::MAX)]
        } else {
            parts
        };
        let mut todo = VecDeque::new();
        let mut at = 0u64;
        for (key, size) in parts {
            if at.saturating_add(size) > offset {
                todo.push_back((key, offset.saturating_sub(at)));
            }
            at = at.saturating_add(size);
        }
        Ok(Box::new(PartsReader {
            store: self.store.clone(),
            rt: self.rt.clone(),
            todo,
            current: None,
            buf: Bytes::new(),
        }))
    }

    fn append(&self, path: &Path) -> Result<Box<dyn FileWriter>> {
        // The parts are the truth; nothing torn can be in them.
        let size = self.parts(path)?.iter().map(|(_, s)| s).sum();
        let part = Self::parts_dir(path).join(format!("{size:020}"));
        Ok(Box::new(S3Append {
            store: self.store.clone(),
            rt: self.rt.clone(),
            key: self.key(&part)?,
            path: PathBuf::from(format!("s3://{}/{}", self.bucket, part.display())),
            start: size,
            written: 0,
            writer: None,
        }))
    }

    fn stat(&self, path: &Path) -> Result<Option<FileInfo>> {
        Ok(self.head_meta(path)?.map(|m| FileInfo {
            size: m.size,
            modified: Some(m.last_modified.into()),
        }))
    }

    fn list(&self, dir: &Path) -> Result<Vec<(String, bool)>> {
        let prefix = self.key(dir)?;
        let r = self
            .rt
            .block_on(self.store.list_with_delimiter(Some(&prefix)))
            .map_err(|e| self.err("list", dir, e))?;
        let dirs = r
            .common_prefixes
            .iter()
            .filter_map(|p| Some((p.filename()?.to_owned(), true)));
        let files = r
            .objects
            .iter()
            .filter_map(|o| Some((o.location.filename()?.to_owned(), false)));
        Ok(dirs.chain(files).collect())
    }

    fn is_dir(&self, dir: &Path) -> Result<bool> {
        let prefix = self.key(dir)?;
        let mut l = self.store.list(Some(&prefix));
        match self.rt.block_on(l.next()) {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(self.err("list", dir, e)),
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<bool> {
        let parts = self.parts(from)?;
        if !parts.is_empty() {
            self.join_parts(&parts, to)?;
            self.delete_prefix(&Self::parts_dir(from))?;
            self.delete_key(from)?;
            return Ok(true);
        }
        if !self.copy(from, to)? {
            return Ok(false);
        }
        self.delete_key(from)?;
        Ok(true)
    }

    fn delete(&self, path: &Path) -> Result<bool> {
        // S3 deletes of absent keys succeed: ask first to tell the caller.
        if self.head(path)?.is_none() {
            return Ok(false);
        }
        self.delete_key(path)?;
        Ok(true)
    }

    fn delete_tree(&self, dir: &Path) -> Result<()> {
        self.delete_prefix(dir)
    }

    fn now(&self) -> Result<SystemTime> {
        // The server's clock, not this machine's: object times come from it.
        let probe = self.layout.base().join("_hoist").join("clock");
        self.put(&probe, b"")?;
        self.modified(&probe)?
            .ok_or_else(|| self.err("stat", &probe, "the object just written is gone"))
    }

    fn stream(&self, path: &Path, start: u64, len: u64) -> Result<ByteStream> {
        let key = self.key(path)?;
        let range = GetRange::Bounded(start..start + len);
        self.stream_key(&key, path, Some(range))
    }
}

/// Streams one writer's bytes into a part object.
struct S3Append {
    store: Arc<dyn ObjectStore>,
    rt: Handle,
    key: Key,
    path: PathBuf,
    /// The file's size before this part.
    start: u64,
    /// Bytes in this part so far.
    written: u64,
    /// Created on the first byte: an empty writer makes no part.
    writer: Option<BufWriter>,
}

impl S3Append {
    fn err(&self, op: &'static str, e: impl fmt::Display) -> Error {
        Error::Io {
            op,
            path: self.path.clone(),
            source: io::Error::other(e.to_string()),
        }
    }
}

impl FileWriter for S3Append {
    fn write(&mut self, buf: &[u8]) -> Result<()> {
        let w = self.writer.get_or_insert_with(|| {
            BufWriter::with_capacity(self.store.clone(), self.key.clone(), PART_BUFFER)
                .with_max_concurrency(PART_CONCURRENCY)
        });
        let res = self.rt.block_on(w.put(Bytes::copy_from_slice(buf)));
        if let Err(e) = res {
            // A failed part is dropped whole.
            if let Some(mut w) = self.writer.take() {
                let _ = self.rt.block_on(w.abort());
            }
            self.written = 0;
            return Err(self.err("write", e));
        }
        self.written += buf.len() as u64;
        Ok(())
    }

    fn size(&self) -> u64 {
        self.start + self.written
    }

    fn commit(mut self: Box<Self>, _durable: bool) -> Result<()> {
        // Completing the part is what makes it exist (and durable) at all.
        let Some(mut w) = self.writer.take() else {
            return Ok(());
        };
        self.rt
            .block_on(w.shutdown())
            .map_err(|e| self.err("write", e))
    }

    fn cancel(mut self: Box<Self>) -> Result<()> {
        if let Some(mut w) = self.writer.take() {
            self.rt
                .block_on(w.abort())
                .map_err(|e| self.err("abort", e))?;
        }
        Ok(())
    }
}

impl Drop for S3Append {
    fn drop(&mut self) {
        // Never closed (the request failed): abandon the part. This may run
        // on an async thread, so the abort goes to a task rather than block.
        if let Some(mut w) = self.writer.take() {
            self.rt.spawn(async move {
                let _ = w.abort().await;
            });
        }
    }
}

/// Reads upload parts one after the other, from an offset.
struct PartsReader {
    store: Arc<dyn ObjectStore>,
    rt: Handle,
    /// Parts still to read, each with where to start in it.
    todo: VecDeque<(Key, u64)>,
    current: Option<futures_util::stream::BoxStream<'static, object_store::Result<Bytes>>>,
    buf: Bytes,
}

impl io::Read for PartsReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if !self.buf.is_empty() {
                let n = out.len().min(self.buf.len());
                out[..n].copy_from_slice(&self.buf.split_to(n));
                return Ok(n);
            }
            if let Some(s) = &mut self.current {
                match self.rt.block_on(s.next()) {
                    Some(Ok(b)) => self.buf = b,
                    Some(Err(e)) => return Err(io::Error::other(e)),
                    None => self.current = None,
                }
                continue;
            }
            let Some((key, skip)) = self.todo.pop_front() else {
                return Ok(0);
            };
            let opts = GetOptions {
                range: (skip > 0).then_some(GetRange::Offset(skip)),
                ..GetOptions::default()
            };
            let r = self
                .rt
                .block_on(self.store.get_opts(&key, opts))
                .map_err(io::Error::other)?;
            self.current = Some(r.into_stream());
        }
    }
}
