//! The in-memory driver, for tests: files in a map under one lock, with
//! times, so that every registry behaviour (garbage collection's claims
//! included) runs on it as on the filesystem. Directories exist while they
//! hold a file, as on object storage.

use super::{Driver, FileInfo, FileWriter};
use crate::error::{Error, Result};
use crate::layout::Layout;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

#[derive(Debug)]
struct File {
    bytes: Vec<u8>,
    modified: SystemTime,
}

type Files = BTreeMap<PathBuf, File>;

/// A registry's files in memory.
#[derive(Debug)]
pub struct MemDriver {
    layout: Layout,
    files: Arc<Mutex<Files>>,
}

impl Default for MemDriver {
    fn default() -> Self {
        MemDriver {
            layout: Layout::new(Path::new("/")),
            files: Arc::default(),
        }
    }
}

impl MemDriver {
    /// An empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Files> {
        lock(&self.files)
    }

    /// Every file path, sorted (what a test inspects).
    pub fn paths(&self) -> Vec<PathBuf> {
        self.lock().keys().cloned().collect()
    }

    /// Sets a file's modified time (a test ages files for garbage collection).
    pub fn set_modified(&self, path: &Path, t: SystemTime) -> bool {
        self.lock().get_mut(path).map(|f| f.modified = t).is_some()
    }
}

fn lock(files: &Mutex<Files>) -> MutexGuard<'_, Files> {
    // A panic under the lock leaves whole entries: poison is ignored.
    files.lock().unwrap_or_else(|p| p.into_inner())
}

fn not_found(op: &'static str, path: &Path) -> Error {
    Error::Io {
        op,
        path: path.to_owned(),
        source: io::Error::from(io::ErrorKind::NotFound),
    }
}

/// The files strictly under `dir`.
fn under<'a>(files: &'a Files, dir: &'a Path) -> impl Iterator<Item = (&'a PathBuf, &'a File)> {
    files
        .range(dir.to_path_buf()..)
        .take_while(move |(p, _)| p.starts_with(dir))
        .filter(move |(p, _)| p.as_path() != dir)
}

impl Driver for MemDriver {
    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn get(&self, path: &Path, max: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().get(path).map(|f| {
            let n = f.bytes.len().min(max as usize);
            f.bytes[..n].to_vec()
        }))
    }

    fn put(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let file = File {
            bytes: bytes.to_vec(),
            modified: SystemTime::now(),
        };
        self.lock().insert(path.to_owned(), file);
        Ok(())
    }

    fn reader(&self, path: &Path, offset: u64) -> Result<Box<dyn io::Read + Send>> {
        let files = self.lock();
        let f = files.get(path).ok_or_else(|| not_found("open", path))?;
        let from = (offset as usize).min(f.bytes.len());
        Ok(Box::new(io::Cursor::new(f.bytes[from..].to_vec())))
    }

    fn append(&self, path: &Path) -> Result<Box<dyn FileWriter>> {
        let start = self
            .lock()
            .entry(path.to_owned())
            .or_insert_with(|| File {
                bytes: Vec::new(),
                modified: SystemTime::now(),
            })
            .bytes
            .len() as u64;
        Ok(Box::new(MemWriter {
            files: self.files.clone(),
            path: path.to_owned(),
            start,
        }))
    }

    fn stat(&self, path: &Path) -> Result<Option<FileInfo>> {
        Ok(self.lock().get(path).map(|f| FileInfo {
            size: f.bytes.len() as u64,
            modified: Some(f.modified),
        }))
    }

    fn can_touch(&self) -> bool {
        true
    }

    fn touch(&self, path: &Path) -> Result<bool> {
        Ok(self.set_modified(path, SystemTime::now()))
    }

    fn list(&self, dir: &Path) -> Result<Vec<(String, bool)>> {
        let files = self.lock();
        let mut out: Vec<(String, bool)> = Vec::new();
        for (p, _) in under(&files, dir) {
            let Ok(rest) = p.strip_prefix(dir) else {
                continue;
            };
            let mut parts = rest.components();
            let Some(first) = parts.next() else { continue };
            let name = first.as_os_str().to_string_lossy().into_owned();
            out.push((name, parts.next().is_some()));
        }
        // Sorted paths: a directory's files are adjacent.
        out.dedup();
        Ok(out)
    }

    fn is_dir(&self, dir: &Path) -> Result<bool> {
        Ok(under(&self.lock(), dir).next().is_some())
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<bool> {
        let mut files = self.lock();
        let Some(f) = files.remove(from) else {
            return Ok(false);
        };
        files.insert(to.to_owned(), f);
        Ok(true)
    }

    fn delete(&self, path: &Path) -> Result<bool> {
        Ok(self.lock().remove(path).is_some())
    }

    fn delete_tree(&self, dir: &Path) -> Result<()> {
        let mut files = self.lock();
        let doomed: Vec<PathBuf> = under(&files, dir).map(|(p, _)| p.clone()).collect();
        for p in doomed {
            files.remove(&p);
        }
        Ok(())
    }
}

/// Appends to a file in memory.
struct MemWriter {
    files: Arc<Mutex<Files>>,
    path: PathBuf,
    start: u64,
}

impl FileWriter for MemWriter {
    fn write(&mut self, buf: &[u8]) -> Result<()> {
        let mut files = lock(&self.files);
        let f = files
            .get_mut(&self.path)
            .ok_or_else(|| not_found("write", &self.path))?;
        f.bytes.extend_from_slice(buf);
        f.modified = SystemTime::now();
        Ok(())
    }

    fn size(&self) -> u64 {
        lock(&self.files)
            .get(&self.path)
            .map_or(self.start, |f| f.bytes.len() as u64)
    }

    fn commit(self: Box<Self>, _durable: bool) -> Result<()> {
        Ok(())
    }

    fn cancel(self: Box<Self>) -> Result<()> {
        if let Some(f) = lock(&self.files).get_mut(&self.path) {
            f.bytes.truncate(self.start as usize);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_files_and_directories_once_each() {
        let m = MemDriver::new();
        for p in ["/a/x", "/a/b/y", "/a/b/z", "/a/c/d/e", "/ab"] {
            m.put(Path::new(p), b"1").unwrap();
        }
        let mut l = m.list(Path::new("/a")).unwrap();
        l.sort();
        assert_eq!(
            l,
            [("b".into(), true), ("c".into(), true), ("x".into(), false)]
        );
        assert!(m.is_dir(Path::new("/a/c")).unwrap());
        assert!(!m.is_dir(Path::new("/a/x")).unwrap());
        m.delete_tree(Path::new("/a/b")).unwrap();
        assert_eq!(m.paths().len(), 3);
    }

    #[test]
    fn appends_commit_and_cancel() {
        let m = MemDriver::new();
        let p = Path::new("/u/data");
        let mut w = m.append(p).unwrap();
        w.write(b"abc").unwrap();
        w.commit(true).unwrap();
        let mut w = m.append(p).unwrap();
        assert_eq!(w.size(), 3);
        w.write(b"def").unwrap();
        assert_eq!(w.size(), 6);
        w.cancel().unwrap();
        assert_eq!(m.get(p, 100).unwrap().unwrap(), b"abc");
        assert!(m.rename(p, Path::new("/b/data")).unwrap());
        assert!(!m.rename(p, Path::new("/b/data")).unwrap());
        assert_eq!(m.stat(Path::new("/b/data")).unwrap().unwrap().size, 3);
    }
}
