//! The filesystem driver: distribution's layout in a local directory, with
//! atomic writes (temp file, fsync, rename) and mtimes for garbage collection.

use super::{Driver, FileInfo, FileWriter, ListVersion};
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

    fn reader(&self, path: &Path, offset: u64) -> Result<Box<dyn io::Read + Send>> {
        let mut f = File::open(path).ctx("open", path)?;
        f.seek(SeekFrom::Start(offset)).ctx("seek", path)?;
        Ok(Box::new(f))
    }

    fn append(&self, path: &Path) -> Result<Box<dyn FileWriter>> {
        if let Some(dir) = path.parent() {
            fsutil::create_dirs(dir)?;
        }
        let file = File::options()
            .append(true)
            .create(true)
            .open(path)
            .ctx("open", path)?;
        let start = file.metadata().ctx("stat", path)?.len();
        Ok(Box::new(FsWriter {
            file,
            path: path.to_owned(),
            start,
        }))
    }

    fn stat(&self, path: &Path) -> Result<Option<FileInfo>> {
        match fs::metadata(path) {
            Ok(m) if m.is_file() => Ok(Some(FileInfo {
                size: m.len(),
                modified: m.modified().ok(),
            })),
            Ok(_) => Ok(None),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e).ctx("stat", path),
        }
    }

    fn can_touch(&self) -> bool {
        true
    }

    fn touch(&self, path: &Path) -> Result<bool> {
        match touch(path) {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            // A read-only filesystem or foreign ownership: fall back to a stat.
            Err(_) => Ok(self.stat(path)?.is_some()),
        }
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

    fn rename(&self, from: &Path, to: &Path) -> Result<bool> {
        if !from.exists() {
            return Ok(false);
        }
        match fsutil::rename_into_place(from, to) {
            Ok(()) => {}
            Err(_) if !from.exists() && !to.exists() => return Ok(false),
            Err(e) => return Err(e),
        }
        if let Some(dir) = to.parent() {
            fsutil::sync_dir(dir);
        }
        Ok(true)
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
}

/// Appends to a local file.
struct FsWriter {
    file: File,
    path: PathBuf,
    /// The file's size when opened, where a cancel cuts it back to.
    start: u64,
}

impl FileWriter for FsWriter {
    fn write(&mut self, buf: &[u8]) -> Result<()> {
        self.file.write_all(buf).ctx("write", &self.path)
    }

    fn size(&self) -> u64 {
        // Part of a failed buffer may be on disk: the file says how much.
        self.file.metadata().map(|m| m.len()).unwrap_or(self.start)
    }

    fn commit(self: Box<Self>, durable: bool) -> Result<()> {
        if durable {
            self.file.sync_all().ctx("fsync", &self.path)?;
        }
        Ok(())
    }

    fn cancel(self: Box<Self>) -> Result<()> {
        self.file.set_len(self.start).ctx("truncate", &self.path)
    }
}
