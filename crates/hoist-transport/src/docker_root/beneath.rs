//! Opens files below a layer's diff directory one component at a time with
//! `O_NOFOLLOW`, so a symlink planted in the diff (or swapped in while we read)
//! can never lead outside it. hoist-archive's `*at` helpers are private to
//! that crate; the two calls needed here are small enough to keep local.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn openat(dir: BorrowedFd, name: &OsStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))?;
    loop {
        // SAFETY: valid directory fd and NUL-terminated name; the fd returned is owned here.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                c.as_ptr(),
                flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd >= 0 {
            // SAFETY: a fresh fd from openat, owned by nobody else.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Opens directory `name` in `dir`, refusing a symlink there.
pub(crate) fn open_dir_at(dir: BorrowedFd, name: &OsStr) -> io::Result<OwnedFd> {
    openat(dir, name, libc::O_RDONLY | libc::O_DIRECTORY)
}

/// Opens a directory by path (the caller chose the path, so symlinks in it are followed).
pub(crate) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let f = File::open(path)?;
    if !f.metadata()?.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        ));
    }
    Ok(f.into())
}

/// Regular files below one directory, opened without following any symlink.
pub(crate) struct Beneath {
    root: OwnedFd,
    /// The last parent directory opened: tar entries come directory by
    /// directory, so most lookups reuse it.
    last: Option<(Vec<OsString>, OwnedFd)>,
}

impl Beneath {
    /// Files below `root`.
    pub(crate) fn new(root: OwnedFd) -> Self {
        Beneath { root, last: None }
    }

    /// Opens the regular file at `components` (already free of `.`, `..` and
    /// empty parts). A symlink anywhere on the way fails with `ELOOP` or
    /// `ENOTDIR`; something other than a regular file is an error too.
    pub(crate) fn open_file(&mut self, components: &[&OsStr]) -> io::Result<File> {
        let Some((name, parents)) = components.split_last() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty path"));
        };
        let cached = matches!(&self.last, Some((p, _)) if p.len() == parents.len()
            && p.iter().zip(parents.iter()).all(|(a, b)| a.as_os_str() == *b));
        if !cached {
            self.last = None;
            let mut dir: Option<OwnedFd> = None;
            for part in parents {
                let parent = match &dir {
                    Some(d) => d.as_fd(),
                    None => self.root.as_fd(),
                };
                dir = Some(open_dir_at(parent, part)?);
            }
            let fd = match dir {
                Some(d) => d,
                None => self.root.try_clone()?,
            };
            self.last = Some((parents.iter().map(|p| p.to_os_string()).collect(), fd));
        }
        let parent = match &self.last {
            Some((_, fd)) => fd.as_fd(),
            None => self.root.as_fd(),
        };
        let file = File::from(openat(parent, name, libc::O_RDONLY | libc::O_NONBLOCK)?);
        // O_NONBLOCK keeps a FIFO planted in place of a file from blocking the open.
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok(file)
    }
}
