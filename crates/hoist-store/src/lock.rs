//! A store-wide advisory lock. Writers (load, import, tag) hold it shared;
//! deleters (rmi, prune, fsck --repair) hold it exclusive, so a blob a writer
//! has just committed can never be swept before the writer indexes it.

use crate::StoreError;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Shared for writers, exclusive for deleters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// Many holders at once.
    Shared,
    /// One holder, no shared holders.
    Exclusive,
}

/// A held lock; released on drop (the kernel also releases it if the process dies).
pub struct GcLock {
    _file: Option<File>,
}

impl GcLock {
    /// Like [`GcLock::acquire`] but never creates the lock file: for
    /// readers, who must not create anything. No file, nothing to hold.
    pub fn acquire_existing(path: &Path, mode: LockMode) -> Result<Self, StoreError> {
        match File::open(path) {
            Ok(f) => Self::hold(f, path, mode),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(GcLock { _file: None }),
            Err(e) => Err(StoreError::io(path, e)),
        }
    }

    /// Blocks until the lock is held in `mode`. In a store this user cannot
    /// write, the lock file is opened read-only (flock needs no write
    /// access), and a missing one means no writer has ever run: nothing to
    /// hold.
    pub fn acquire(path: &Path, mode: LockMode) -> Result<Self, StoreError> {
        let rw = File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path);
        let file = match rw {
            Ok(f) => f,
            Err(e) if crate::error::is_read_only_io(&e) => {
                return Self::acquire_existing(path, mode)
            }
            Err(e) => return Err(StoreError::io(path, e)),
        };
        Self::hold(file, path, mode)
    }

    fn hold(file: File, path: &Path, mode: LockMode) -> Result<Self, StoreError> {
        let op = match mode {
            LockMode::Shared => libc::LOCK_SH,
            LockMode::Exclusive => libc::LOCK_EX,
        };
        loop {
            // SAFETY: flock on a file descriptor we own.
            let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
            if rc == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(StoreError::io(path, err));
            }
        }
        Ok(GcLock { _file: Some(file) })
    }
}
