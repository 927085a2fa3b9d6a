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
    _file: File,
}

impl GcLock {
    /// Blocks until the lock is held in `mode`.
    pub fn acquire(path: &Path, mode: LockMode) -> Result<Self, StoreError> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| StoreError::io(path, e))?;
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
        Ok(GcLock { _file: file })
    }
}
