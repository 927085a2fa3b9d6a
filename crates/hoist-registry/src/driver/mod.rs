//! Storage drivers: where the registry's files live. Every path is one that
//! [`Layout`] builds, so whichever driver holds them, the tree is exactly
//! the CNCF distribution registry's (`docker/registry/v2/...`).
//!
//! * [`fs::FsDriver`]: a directory on the local filesystem (what `hoist
//!   serve --root DIR` always did, byte for byte).
//! * [`s3::S3Driver`]: an S3-compatible bucket; the object keys are the same
//!   layout paths under an optional prefix, as distribution's `s3` driver
//!   writes them, so the bucket is distribution-compatible.
//! * [`mem::MemDriver`]: memory, for tests.
//!
//! Like distribution's `storagedriver`, a driver only stores files; what
//! the registry makes of them (claims for garbage collection, upload
//! sessions, links) is written once above it.
//!
//! The trait is blocking, like the rest of [`crate::Store`]: the HTTP layer
//! already runs storage work on tokio's blocking pool, and the filesystem
//! driver (the fast path) stays plain `std::fs`. The S3 driver bridges to its
//! async client with a runtime handle on those blocking threads.

pub mod fs;
pub mod mem;
pub mod s3;

use crate::error::Result;
use crate::layout::Layout;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

pub use s3::S3Config;

/// A stream of a blob's bytes.
pub type ByteStream = BoxStream<'static, io::Result<Bytes>>;

/// Where the registry keeps its data.
#[derive(Clone, Debug)]
pub enum StorageConfig {
    /// A directory (distribution's `storage.filesystem.rootdirectory`).
    Filesystem(PathBuf),
    /// An S3-compatible bucket (distribution's `storage.s3`).
    S3(S3Config),
    /// Memory, for tests: every opening shares this one driver's files.
    Memory(Arc<mem::MemDriver>),
}

impl fmt::Display for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageConfig::Filesystem(root) => write!(f, "{}", root.display()),
            StorageConfig::S3(c) => c.fmt(f),
            StorageConfig::Memory(_) => write!(f, "memory"),
        }
    }
}

/// What [`Driver::stat`] tells of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written (or touched); `None` where the storage cannot say.
    pub modified: Option<SystemTime>,
}

/// Appends bytes to a file (see [`Driver::append`]).
pub trait FileWriter: Send {
    /// Appends bytes.
    fn write(&mut self, buf: &[u8]) -> Result<()>;
    /// How many bytes the file holds now, this writer's included; after a
    /// failed write, what the storage really kept.
    fn size(&self) -> u64;
    /// Ends the writing: this writer's bytes are part of the file, and with
    /// `durable` they survive a crash once this returns.
    fn commit(self: Box<Self>, durable: bool) -> Result<()>;
    /// Ends the writing and drops this writer's bytes. (Dropping a writer
    /// without either keeps what the storage already has of them.)
    fn cancel(self: Box<Self>) -> Result<()>;
}

/// The storage primitives the registry needs, on [`Layout`] paths: whole
/// small files, appendable files, listing, renaming and deleting. Garbage
/// collection's claims ([`crate::claims`]) and upload sessions
/// ([`crate::upload`]) are built on these, once for every driver.
pub trait Driver: Send + Sync + fmt::Debug {
    /// The layout of this storage's paths.
    fn layout(&self) -> &Layout;
    /// A whole small file, at most `max` bytes; `None` when absent.
    fn get(&self, path: &Path, max: u64) -> Result<Option<Vec<u8>>>;
    /// Writes a file atomically and durably: readers see the old content or the new.
    fn put(&self, path: &Path, bytes: &[u8]) -> Result<()>;
    /// Reads a file from `offset` on.
    fn reader(&self, path: &Path, offset: u64) -> Result<Box<dyn io::Read + Send>>;
    /// Opens a file for appending, creating it empty if absent. Bytes a
    /// writer never committed may be lost, or kept (see [`FileWriter::size`]).
    fn append(&self, path: &Path) -> Result<Box<dyn FileWriter>>;
    /// A file's size and time; `None` when there is no such file.
    fn stat(&self, path: &Path) -> Result<Option<FileInfo>>;
    /// A directory's entries, each with whether it is a directory; empty when absent.
    fn list(&self, dir: &Path) -> Result<Vec<(String, bool)>>;
    /// True when the directory exists (holds anything, on object storage).
    fn is_dir(&self, dir: &Path) -> Result<bool>;
    /// Moves a file, replacing `to`; `false` when `from` was absent.
    fn rename(&self, from: &Path, to: &Path) -> Result<bool>;
    /// Removes a file; `false` when it was absent.
    fn delete(&self, path: &Path) -> Result<bool>;
    /// Removes a directory tree; absent is fine.
    fn delete_tree(&self, dir: &Path) -> Result<()>;

    /// True when [`touch`](Driver::touch) sets a file's modified time in
    /// place and a rename keeps it; object storage cannot, and
    /// [`crate::claims`] then writes claim markers instead.
    fn can_touch(&self) -> bool {
        false
    }
    /// Sets a file's modified time to now (where [`can_touch`](Driver::can_touch))
    /// and reports whether the file exists.
    fn touch(&self, path: &Path) -> Result<bool> {
        Ok(self.stat(path)?.is_some())
    }
    /// The storage's clock now, which the times it reports follow.
    fn now(&self) -> Result<SystemTime> {
        Ok(SystemTime::now())
    }
    /// True when files are plain local files at their layout paths, which
    /// the server may read (map) itself.
    fn is_local(&self) -> bool {
        false
    }
    /// Streams `len` bytes of a file from `start`. By default a blocking
    /// [`reader`](Driver::reader) read chunk by chunk on tokio's blocking pool.
    fn stream(&self, path: &Path, start: u64, len: u64) -> Result<ByteStream> {
        Ok(read_stream(self.reader(path, start)?, len))
    }
    /// A value that changes whenever `dir`'s entries change, when the storage
    /// can tell that cheaply and for sure; `None` otherwise (then listings
    /// are not cached).
    fn list_version(&self, _dir: &Path) -> Option<ListVersion> {
        None
    }
    /// Removes `dir` and its parents below `stop` while they are empty
    /// (storage without directories has nothing to do).
    fn prune_empty_dirs(&self, _dir: &Path, _stop: &Path) {}
}

/// What [`Driver::list_version`] returns: equal values, equal entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListVersion(pub [i64; 5]);

/// Chunks of a blocking reader as a stream, each read on the blocking pool.
fn read_stream(r: Box<dyn io::Read + Send>, len: u64) -> ByteStream {
    const CHUNK: u64 = 1 << 20;
    let state = (r, len);
    futures_util::stream::try_unfold(state, |(mut r, left)| async move {
        if left == 0 {
            return Ok(None);
        }
        let (r, buf) = tokio::task::spawn_blocking(move || {
            let mut buf = Vec::with_capacity(left.min(CHUNK) as usize);
            (&mut r).take(left.min(CHUNK)).read_to_end(&mut buf)?;
            Ok::<_, io::Error>((r, buf))
        })
        .await
        .map_err(io::Error::other)??;
        if buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shorter than its size",
            ));
        }
        let n = buf.len() as u64;
        Ok(Some((Bytes::from(buf), (r, left - n))))
    })
    .boxed()
}

/// Opens the driver a configuration names.
pub fn open(cfg: &StorageConfig) -> Result<Arc<dyn Driver>> {
    match cfg {
        StorageConfig::Filesystem(root) => Ok(Arc::new(fs::FsDriver::open(root)?)),
        StorageConfig::S3(c) => Ok(Arc::new(s3::S3Driver::open(c)?)),
        StorageConfig::Memory(m) => Ok(m.clone()),
    }
}
