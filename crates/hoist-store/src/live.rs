//! Who owns a file in `ingest/`. Each writer holds an exclusive `flock` on
//! the files it writes (the kernel drops it when the process dies, however
//! it dies), so the next writer can tell an abandoned file from a live one.
//! The process also keeps a list of its own temporary files, so that a
//! binary catching SIGINT or SIGTERM can remove them before it exits
//! ([`remove_own_temporary_files`]).

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// This process's temporary files in `ingest/` (not the partial blobs kept on purpose).
static OWN: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// A file younger than this is never taken for abandoned: it covers the
/// moment between a writer creating its file and locking it.
const GRACE: Duration = Duration::from_secs(2);

/// Takes an exclusive lock on `file` without waiting; false when another
/// open file holds it.
pub(crate) fn try_lock(file: &File) -> io::Result<bool> {
    loop {
        // SAFETY: flock on a descriptor we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}

pub(crate) fn register(path: &Path) {
    if let Ok(mut own) = OWN.lock() {
        own.insert(path.to_owned());
    }
}

pub(crate) fn unregister(path: &Path) {
    if let Ok(mut own) = OWN.lock() {
        own.remove(path);
    }
}

/// Removes every temporary file this process is writing in any store's
/// `ingest/` (blobs not yet committed). For a binary's SIGINT/SIGTERM
/// handler, just before it exits; partial pulls kept to resume stay.
/// Returns how many files went.
pub fn remove_own_temporary_files() -> usize {
    let own = match OWN.lock() {
        Ok(mut own) => std::mem::take(&mut *own),
        Err(p) => std::mem::take(&mut *p.into_inner()),
    };
    own.iter()
        .filter(|p| std::fs::remove_file(p).is_ok())
        .count()
}

/// Removes files in `dir` whose writer died: unlocked, older than a
/// moment, and not a partial blob kept to resume. Returns how many went.
pub(crate) fn clean_dead(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for ent in rd.flatten() {
        let name = ent.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(crate::resume::PARTIAL_PREFIX) {
            continue;
        }
        let young = ent
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age < GRACE);
        if young {
            continue;
        }
        let path = ent.path();
        let Ok(f) = File::open(&path) else {
            continue;
        };
        // Holding the lock while unlinking: no writer can have it meanwhile.
        if try_lock(&f).unwrap_or(false) && std::fs::remove_file(&path).is_ok() {
            n += 1;
        }
    }
    n
}
