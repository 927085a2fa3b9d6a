//! Storage drivers: where the registry's files live. Every path is one that
//! [`Layout`] builds, so whichever driver holds them, the tree is exactly
//! the CNCF distribution registry's (`docker/registry/v2/...`).
//!
//! * [`fs::FsDriver`]: a directory on the local filesystem (what `hoist
//!   serve --root DIR` always did, byte for byte).
//! * [`s3::S3Driver`]: an S3-compatible bucket; the object keys are the same
//!   layout paths under an optional prefix, as distribution's `s3` driver
//!   writes them, so the bucket is distribution-compatible.
//!
//! The trait is blocking, like the rest of [`crate::Store`]: the HTTP layer
//! already runs storage work on tokio's blocking pool, and the filesystem
//! driver (the fast path) stays plain `std::fs`. The S3 driver bridges to its
//! async client with a runtime handle on those blocking threads.

pub mod fs;
pub mod s3;

use crate::error::Result;
use crate::layout::Layout;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use hoist_oci::Digest;
use std::fmt;
use std::io;
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
}

impl fmt::Display for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageConfig::Filesystem(root) => write!(f, "{}", root.display()),
            StorageConfig::S3(c) => c.fmt(f),
        }
    }
}

/// Appends one request's bytes to an upload session.
pub trait Append: Send {
    /// Appends bytes.
    fn write(&mut self, buf: &[u8]) -> Result<()>;
    /// Ends this request's writing; with `durable`, the bytes must survive a
    /// crash once this returns (the upload is about to be committed).
    fn close(&mut self, durable: bool) -> Result<()>;
    /// After a failed write: how many bytes the session now holds.
    fn len_after_error(&self) -> u64;
}

/// The storage operations the registry needs, on [`Layout`] paths.
pub trait Driver: Send + Sync + fmt::Debug {
    /// The layout of this storage's paths.
    fn layout(&self) -> &Layout;
    /// True when blobs are plain local files that the caller may read itself.
    fn is_local(&self) -> bool;
    /// A whole small file, at most `max` bytes; `None` when absent.
    fn get(&self, path: &Path, max: u64) -> Result<Option<Vec<u8>>>;
    /// Writes a file atomically: readers see the old content or the new.
    fn put(&self, path: &Path, bytes: &[u8]) -> Result<()>;
    /// A file's size; `None` when there is no such file.
    fn stat(&self, path: &Path) -> Result<Option<u64>>;
    /// Marks a file as just used (see [`crate::gc`]) and reports whether it exists.
    fn claim(&self, path: &Path) -> Result<bool>;
    /// Refreshes a file's "last used" time where the storage has one.
    fn touch(&self, path: &Path);
    /// A directory's entries, each with whether it is a directory; empty when absent.
    fn list(&self, dir: &Path) -> Result<Vec<(String, bool)>>;
    /// A value that changes whenever `dir`'s entries change, when the storage
    /// can tell that cheaply and for sure; `None` otherwise (then listings
    /// are not cached).
    fn list_version(&self, _dir: &Path) -> Option<ListVersion> {
        None
    }
    /// True when the directory exists (holds anything, on object storage).
    fn is_dir(&self, dir: &Path) -> Result<bool>;
    /// Removes a file; `false` when it was absent.
    fn delete(&self, path: &Path) -> Result<bool>;
    /// Removes a directory tree; absent is fine.
    fn delete_tree(&self, dir: &Path) -> Result<()>;
    /// Removes `dir` and its parents below `stop` while they are empty
    /// (object storage has no directories: nothing to do there).
    fn prune_empty_dirs(&self, dir: &Path, stop: &Path);
    /// The storage's clock now, which the times it reports follow.
    fn now(&self) -> Result<SystemTime>;
    /// When a file was last written or claimed; `None` when absent.
    fn last_used(&self, path: &Path) -> Result<Option<SystemTime>>;
    /// Moves a file aside, for a deletion that may still be undone; `None`
    /// when there is no such file.
    fn set_aside(&self, path: &Path) -> Result<Option<PathBuf>>;
    /// When the file moved from `path` to `aside` was last used, counting
    /// claims made on `path` before and while it moved.
    fn aside_last_used(&self, path: &Path, aside: &Path) -> Result<Option<SystemTime>>;
    /// Puts a file set aside back at `path`, unless `path` was written anew.
    fn restore(&self, aside: &Path, path: &Path) -> Result<()>;
    /// Deletes a file set aside from `path` for good.
    fn drop_aside(&self, aside: &Path, path: &Path) -> Result<()>;
    /// When the upload session in `dir` was last written; `None` when nothing
    /// tells (an empty or vanished session).
    fn upload_last_used(&self, dir: &Path) -> Result<Option<SystemTime>>;
    /// Streams `len` bytes of a file from `start`; `None` when the driver
    /// [`is_local`](Driver::is_local) and the caller reads the file itself.
    fn read_stream(&self, path: &Path, start: u64, len: u64) -> Result<Option<ByteStream>>;

    /// Creates an empty upload session in `dir`, started at `started_at`.
    fn upload_create(&self, dir: &Path, started_at: &str) -> Result<()>;
    /// How many bytes the upload session in `dir` holds; `None` when there is none.
    fn upload_size(&self, dir: &Path) -> Result<Option<u64>>;
    /// Opens the session for appending at `at` (its recorded size). Returns
    /// the writer and the size the session really has: bytes past `at` (a
    /// torn write) are cut; a shorter session reports its own size.
    fn upload_append(&self, dir: &Path, at: u64) -> Result<(Box<dyn Append>, u64)>;
    /// Reads the session's bytes from `from` on (to re-hash them).
    fn upload_reader(&self, dir: &Path, from: u64) -> Result<Box<dyn io::Read + Send>>;
    /// Makes the session's (verified, closed) bytes the content of `blob`.
    fn upload_commit(&self, dir: &Path, blob: &Path) -> Result<()>;
}

/// Reads a link file (`sha256:<hex>`). A missing link, and one whose content
/// is not a digest (say, torn by a crash of another writer), both read as
/// absent: the registry then answers "unknown" rather than failing.
/// What [`Driver::list_version`] returns: equal values, equal entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListVersion(pub [i64; 5]);

pub(crate) fn read_link(driver: &dyn Driver, path: &Path) -> Result<Option<Digest>> {
    let Some(bytes) = driver.get(path, 256)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    match text.trim().parse::<Digest>() {
        Ok(d) => Ok(Some(d)),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring malformed link file");
            Ok(None)
        }
    }
}

/// Writes a link file unless it already holds `d`. Returns true if written.
pub(crate) fn write_link(driver: &dyn Driver, path: &Path, d: &Digest) -> Result<bool> {
    if read_link(driver, path)?.as_ref() == Some(d) {
        // Refresh its mtime: garbage collection reads it as "in use now".
        driver.touch(path);
        return Ok(false);
    }
    driver.put(path, d.to_string().as_bytes())?;
    Ok(true)
}

/// Opens the driver a configuration names.
pub fn open(cfg: &StorageConfig) -> Result<Arc<dyn Driver>> {
    match cfg {
        StorageConfig::Filesystem(root) => Ok(Arc::new(fs::FsDriver::open(root)?)),
        StorageConfig::S3(c) => Ok(Arc::new(s3::S3Driver::open(c)?)),
    }
}
