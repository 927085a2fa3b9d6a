//! The filesystem driver: distribution's layout in a local directory, with
//! atomic writes (temp file, fsync, rename) and mtimes for garbage collection.
//! An upload session's bytes are one file, `_uploads/<id>/data`.

use super::{Append, ByteStream, Driver, ListVersion};
use crate::error::{IoContext, Result};
use crate::fsutil::{self, is_not_found, touch};
use crate::layout::Layout;
use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A registry root on the local filesystem.
#[derive(Debug)]
pub struct FsDriver {
    layout: Layout,
}

impl FsDriver {
    /// Opens (and creates if needed) the registry root `root`.
    pub fn open(root: &Path) -> Result<Self> {
        let layout = Layout::new(root);
        fs::create_dir_all(layout.base()).ctx("create directory", layout.base())?;
        Ok(FsDriver { layout })
    }
}

fn mtime(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn data(dir: &Path) -> PathBuf {
    dir.join("data")
}

impl Driver for FsDriver {
    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn is_local(&self) -> bool {
        true
    }

    fn get(&self, path: &Path, max: u64) -> Result<Option<Vec<u8>>> {
        fsutil::read_bounded(path, max)
    }

    fn put(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        fsutil::write_atomic(&self.layout.tmp_dir(), path, bytes)
    }

    fn stat(&self, path: &Path) -> Result<Option<u64>> {
        match fs::metadata(path) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e).ctx("stat", path),
        }
    }

    fn claim(&self, path: &Path) -> Result<bool> {
        match touch(path) {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            // A read-only filesystem or foreign ownership: fall back to a stat.
            Err(_) => Ok(self.stat(path)?.is_some()),
        }
    }

    fn touch(&self, path: &Path) {
        let _ = touch(path);
    }

    fn list(&self, dir: &Path) -> Result<Vec<(String, bool)>> {
        fsutil::list_dir(dir)
    }

    fn list_version(&self, dir: &Path) -> Option<ListVersion> {
        use std::os::unix::fs::MetadataExt;
        // A directory's mtime and ctime change whenever an entry is added,
        // removed or renamed. Timestamps are coarse (a clock tick), so a
        // directory changed in the last seconds could change again within
        // the same stamp: such a one has no version yet (as git treats
        // "racily clean" files).
        let m = std::fs::metadata(dir).ok()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs() as i64;
        if now - m.mtime().max(m.ctime()) < 2 {
            return None;
        }
        Some(ListVersion([
            m.ino() as i64,
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
        ]))
    }

    fn is_dir(&self, dir: &Path) -> Result<bool> {
        Ok(dir.is_dir())
    }

    fn delete(&self, path: &Path) -> Result<bool> {
        fsutil::remove_file(path)
    }

    fn delete_tree(&self, dir: &Path) -> Result<()> {
        fsutil::remove_dir_all(dir)
    }

    fn prune_empty_dirs(&self, dir: &Path, stop: &Path) {
        fsutil::prune_empty_dirs(dir, stop)
    }

    fn now(&self) -> Result<SystemTime> {
        Ok(SystemTime::now())
    }

    fn last_used(&self, path: &Path) -> Result<Option<SystemTime>> {
        Ok(mtime(path))
    }

    fn set_aside(&self, path: &Path) -> Result<Option<PathBuf>> {
        let (_, tomb) = fsutil::temp_file(&self.layout.tmp_dir())?;
        match fs::rename(path, &tomb) {
            Ok(()) => Ok(Some(tomb)),
            Err(e) if is_not_found(&e) => {
                let _ = fs::remove_file(&tomb);
                Ok(None)
            }
            Err(e) => {
                let _ = fs::remove_file(&tomb);
                Err(e).ctx("rename", path)
            }
        }
    }

    fn aside_last_used(&self, _path: &Path, aside: &Path) -> Result<Option<SystemTime>> {
        // A claim before the move touched this very inode.
        Ok(mtime(aside))
    }

    fn restore(&self, aside: &Path, path: &Path) -> Result<()> {
        if path.exists() {
            fsutil::remove_file(aside).map(|_| ())
        } else {
            fsutil::rename_into_place(aside, path)
        }
    }

    fn drop_aside(&self, aside: &Path, _path: &Path) -> Result<()> {
        fsutil::remove_file(aside).map(|_| ())
    }

    fn upload_last_used(&self, dir: &Path) -> Result<Option<SystemTime>> {
        // The files' times say when the session was last used; a directory
        // without them is either being created right now or abandoned,
        // which only its own mtime tells apart.
        Ok([data(dir), dir.join("startedat")]
            .iter()
            .filter_map(|p| mtime(p))
            .max()
            .or_else(|| mtime(dir)))
    }

    fn read_stream(&self, _path: &Path, _start: u64, _len: u64) -> Result<Option<ByteStream>> {
        // The server reads local files itself (its file body streams from a
        // blocking reader straight to the socket).
        Ok(None)
    }

    fn upload_create(&self, dir: &Path, started_at: &str) -> Result<()> {
        fsutil::create_dirs(dir)?;
        let data = data(dir);
        File::create(&data).ctx("create", &data)?;
        let started = dir.join("startedat");
        fs::write(&started, started_at).ctx("write", &started)
    }

    fn upload_size(&self, dir: &Path) -> Result<Option<u64>> {
        self.stat(&data(dir))
    }

    fn upload_append(&self, dir: &Path, at: u64) -> Result<(Box<dyn Append>, u64)> {
        let path = data(dir);
        let file = File::options()
            .append(true)
            .open(&path)
            .ctx("open", &path)?;
        // Bytes past the recorded size (a write torn by a crash) are cut so
        // the file, the size and the hash agree.
        let len = file.metadata().ctx("stat", &path)?.len();
        let size = if len > at {
            file.set_len(at).ctx("truncate", &path)?;
            at
        } else {
            // Shrunk behind our back: the caller trusts the file.
            len
        };
        Ok((Box::new(FsAppend { file, path }), size))
    }

    fn upload_reader(&self, dir: &Path, from: u64) -> Result<Box<dyn io::Read + Send>> {
        let path = data(dir);
        let mut f = File::open(&path).ctx("open", &path)?;
        f.seek(SeekFrom::Start(from)).ctx("seek", &path)?;
        Ok(Box::new(f))
    }

    fn upload_commit(&self, dir: &Path, blob: &Path) -> Result<()> {
        let file = data(dir);
        fsutil::rename_into_place(&file, blob)?;
        if let Some(dir) = blob.parent() {
            fsutil::sync_dir(dir);
        }
        // The rename keeps the file's old mtime (its first byte's time); make
        // it "now" so a collection that started meanwhile keeps it.
        let _ = touch(blob);
        Ok(())
    }
}

/// Appends to `_uploads/<id>/data`.
struct FsAppend {
    file: File,
    path: PathBuf,
}

impl Append for FsAppend {
    fn write(&mut self, buf: &[u8]) -> Result<()> {
        self.file.write_all(buf).ctx("write", &self.path)
    }

    fn close(&mut self, durable: bool) -> Result<()> {
        if durable {
            self.file.sync_all().ctx("fsync", &self.path)?;
        }
        Ok(())
    }

    fn len_after_error(&self) -> u64 {
        // Part of the failed buffer may be on disk: the file says how much.
        self.file.metadata().map(|m| m.len()).unwrap_or(0)
    }
}
