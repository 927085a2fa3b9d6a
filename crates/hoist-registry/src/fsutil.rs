//! Small filesystem helpers: atomic writes, touching, listing.

use crate::error::{IoContext, Result};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::SystemTime;

/// True for errors meaning "it is not there" (a missing file or a missing
/// parent directory, or a parent that is a file).
pub(crate) fn is_not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory
}

/// Reads at most `max` bytes of a file; `None` when it does not exist.
pub(crate) fn read_bounded(path: &Path, max: u64) -> Result<Option<Vec<u8>>> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(e).ctx("open", path),
    };
    let mut buf = Vec::new();
    f.take(max).read_to_end(&mut buf).ctx("read", path)?;
    Ok(Some(buf))
}

/// `create_dir_all` that tolerates a concurrent garbage collection removing
/// an empty parent between two of its `mkdir`s (it then sees ENOENT).
pub(crate) fn create_dirs(dir: &Path) -> Result<()> {
    let mut tries = 0;
    loop {
        match fs::create_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound && tries < 10 => tries += 1,
            Err(e) => return Err(e).ctx("create directory", dir),
        }
    }
}

/// A fresh temporary file in `tmp_dir`, created with its parents if needed.
pub(crate) fn temp_file(tmp_dir: &Path) -> Result<(File, std::path::PathBuf)> {
    for _ in 0..3 {
        let name = format!("tmp-{}", hex::encode(rand::random::<[u8; 12]>()));
        let path = tmp_dir.join(name);
        match File::options().write(true).create_new(true).open(&path) {
            Ok(f) => return Ok((f, path)),
            Err(e) if is_not_found(&e) => create_dirs(tmp_dir)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).ctx("create", &path),
        }
    }
    let path = tmp_dir.join("tmp");
    Err(io::Error::other("could not create a temporary file")).ctx("create", &path)
}

/// Renames `from` to `to`, creating `to`'s parent directories. Retries when a
/// concurrent garbage collection removes an empty parent between the two.
pub(crate) fn rename_into_place(from: &Path, to: &Path) -> Result<()> {
    let parent = to.parent().unwrap_or(Path::new("/"));
    let mut last = None;
    for _ in 0..10 {
        match fs::rename(from, to) {
            Ok(()) => return Ok(()),
            Err(e) if is_not_found(&e) && from.exists() => {
                create_dirs(parent)?;
                last = Some(e);
            }
            Err(e) => return Err(e).ctx("rename into", to),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("rename failed"))).ctx("rename into", to)
}

/// Writes `bytes` to `path` atomically: a temp file in `tmp_dir`, fsync, rename.
/// Readers see either the old content or the new, never a torn file.
pub(crate) fn write_atomic(tmp_dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let (mut f, tmp) = temp_file(tmp_dir)?;
    let res = (|| {
        f.write_all(bytes).ctx("write", &tmp)?;
        f.sync_all().ctx("fsync", &tmp)?;
        drop(f);
        rename_into_place(&tmp, path)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// Sets a file's modification time to now. Garbage collection treats a file
/// modified after it started as in use; see `gc`.
pub(crate) fn touch(path: &Path) -> io::Result<()> {
    File::open(path)?.set_modified(SystemTime::now())
}

/// fsyncs a directory so a rename into it survives a power loss.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Lists the names of a directory's entries; empty when it does not exist.
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<(String, bool)>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if is_not_found(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e).ctx("list", dir),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.ctx("list", dir)?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        out.push((name, is_dir));
    }
    Ok(out)
}

/// Removes a file; absent is fine.
pub(crate) fn remove_file(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(e).ctx("remove", path),
    }
}

/// Removes a directory tree; absent is fine.
pub(crate) fn remove_dir_all(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e).ctx("remove", path),
    }
}

/// Removes `dir` and then its parents up to (not including) `stop`, as long
/// as each is empty. Keeps the tree tidy after deletes; errors are ignored
/// because a non-empty directory is the normal reason to stop.
pub(crate) fn prune_empty_dirs(dir: &Path, stop: &Path) {
    let mut cur = dir.to_path_buf();
    while cur.starts_with(stop) && cur != stop {
        if fs::remove_dir(&cur).is_err() {
            break;
        }
        if !cur.pop() {
            break;
        }
    }
}

/// The current time in distribution's `startedat` form (RFC 3339, UTC).
pub(crate) fn rfc3339_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
