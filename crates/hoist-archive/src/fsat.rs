//! Thin safe wrappers over the `*at` system calls. The unpacker works
//! relative to directory file descriptors it has opened with `O_NOFOLLOW`, so
//! that no path it touches is re-resolved through a symlink behind its back.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// Converts a name to a C string; a NUL inside is an invalid-input error.
fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("name {name:?} contains a NUL byte"),
        )
    })
}

/// Maps a `-1` return to the thread's `errno`.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Retries a call interrupted by a signal.
fn retry(mut f: impl FnMut() -> libc::c_int) -> io::Result<libc::c_int> {
    loop {
        match check(f()) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// Opens a directory by path (following symlinks: the caller chose this path).
pub(crate) fn open_dir_path(path: &Path) -> io::Result<OwnedFd> {
    let c = cstr(path.as_os_str())?;
    // SAFETY: `c` is a valid NUL-terminated string; the returned fd is owned.
    let fd = retry(|| unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: `fd` was just returned by open and is not owned elsewhere.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the directory `name` in `dir` without following a symlink there.
///
/// Fails with `ELOOP` (or `ENOTDIR`) when `name` is a symlink.
pub(crate) fn open_dir_at(dir: BorrowedFd, name: &OsStr) -> io::Result<OwnedFd> {
    let c = cstr(name)?;
    // SAFETY: valid fd and C string; the returned fd is owned.
    let fd = retry(|| unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: fresh fd from openat.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Creates a new regular file `name` in `dir`, failing if anything exists there.
pub(crate) fn create_file_at(dir: BorrowedFd, name: &OsStr) -> io::Result<File> {
    let c = cstr(name)?;
    // O_EXCL with O_CREAT never follows a symlink in the last component.
    // SAFETY: valid fd and C string; the returned fd is owned.
    let fd = retry(|| unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600 as libc::c_uint,
        )
    })?;
    // SAFETY: fresh fd from openat.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// `lstat` of `name` in `dir`; `Ok(None)` when it does not exist.
pub(crate) fn stat_at(dir: BorrowedFd, name: &OsStr) -> io::Result<Option<libc::stat>> {
    let c = cstr(name)?;
    // SAFETY: `stat` is plain old data; zeroed is a valid value to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd, C string and out-pointer.
    match retry(|| unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    }) {
        Ok(_) => Ok(Some(st)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// True when `st` describes a directory.
pub(crate) fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

/// True when `st` describes a symlink.
pub(crate) fn is_symlink(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFLNK
}

/// Creates directory `name` in `dir`.
pub(crate) fn mkdir_at(dir: BorrowedFd, name: &OsStr, mode: u32) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid fd and C string.
    retry(|| unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t) })?;
    Ok(())
}

/// Removes `name` in `dir` (an empty directory when `is_dir`).
pub(crate) fn unlink_at(dir: BorrowedFd, name: &OsStr, is_dir: bool) -> io::Result<()> {
    let c = cstr(name)?;
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: valid fd and C string.
    retry(|| unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), flags) })?;
    Ok(())
}

/// Creates symlink `name` in `dir` pointing at `target`.
pub(crate) fn symlink_at(target: &OsStr, dir: BorrowedFd, name: &OsStr) -> io::Result<()> {
    let t = cstr(target)?;
    let c = cstr(name)?;
    // SAFETY: valid fd and C strings.
    retry(|| unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), c.as_ptr()) })?;
    Ok(())
}

/// Creates hardlink `new_name` in `new_dir` to `old_name` in `old_dir`, not following symlinks.
pub(crate) fn link_at(
    old_dir: BorrowedFd,
    old_name: &OsStr,
    new_dir: BorrowedFd,
    new_name: &OsStr,
) -> io::Result<()> {
    let o = cstr(old_name)?;
    let n = cstr(new_name)?;
    // SAFETY: valid fds and C strings; flags 0 = do not follow a symlink at `old`.
    retry(|| unsafe {
        libc::linkat(
            old_dir.as_raw_fd(),
            o.as_ptr(),
            new_dir.as_raw_fd(),
            n.as_ptr(),
            0,
        )
    })?;
    Ok(())
}

/// Reads the target of symlink `name` in `dir`.
pub(crate) fn readlink_at(dir: BorrowedFd, name: &OsStr) -> io::Result<OsString> {
    let c = cstr(name)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: valid fd, C string, and buffer of the length passed.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            c.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(OsString::from_vec(buf))
}

/// Creates a device node or FIFO `name` in `dir`; `mode` includes the file type.
pub(crate) fn mknod_at(
    dir: BorrowedFd,
    name: &OsStr,
    mode: u32,
    major: u32,
    minor: u32,
) -> io::Result<()> {
    let c = cstr(name)?;
    let dev = libc::makedev(major, minor);
    // SAFETY: valid fd and C string.
    retry(|| unsafe { libc::mknodat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t, dev) })?;
    Ok(())
}

/// Changes the owner of `name` in `dir`, not following a symlink.
pub(crate) fn chown_at(dir: BorrowedFd, name: &OsStr, uid: u64, gid: u64) -> io::Result<()> {
    let c = cstr(name)?;
    let (uid, gid) = ids(uid, gid)?;
    // SAFETY: valid fd and C string.
    retry(|| unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            c.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(())
}

/// Changes the owner of an open file.
pub(crate) fn fchown(fd: BorrowedFd, uid: u64, gid: u64) -> io::Result<()> {
    let (uid, gid) = ids(uid, gid)?;
    // SAFETY: valid fd.
    retry(|| unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) })?;
    Ok(())
}

fn ids(uid: u64, gid: u64) -> io::Result<(libc::uid_t, libc::gid_t)> {
    match (libc::uid_t::try_from(uid), libc::gid_t::try_from(gid)) {
        (Ok(u), Ok(g)) => Ok((u, g)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("owner {uid}:{gid} does not fit in 32 bits"),
        )),
    }
}

/// Changes the permission bits of an open file.
pub(crate) fn fchmod(fd: BorrowedFd, mode: u32) -> io::Result<()> {
    // SAFETY: valid fd.
    retry(|| unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) })?;
    Ok(())
}

/// Changes the permission bits of `name` in `dir`. Linux cannot do this
/// without following a symlink, so callers use it only on nodes they have
/// just created and checked (devices, FIFOs).
pub(crate) fn chmod_at(dir: BorrowedFd, name: &OsStr, mode: u32) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid fd and C string.
    retry(|| unsafe { libc::fchmodat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t, 0) })?;
    Ok(())
}

fn timespecs(mtime: u64) -> [libc::timespec; 2] {
    let t = libc::timespec {
        tv_sec: libc::time_t::try_from(mtime).unwrap_or(libc::time_t::MAX),
        tv_nsec: 0,
    };
    // Access time follows modification time, as Docker and GNU tar set it.
    [t, t]
}

/// Sets the access and modification times of `name` in `dir`, not following a symlink.
pub(crate) fn set_times_at(dir: BorrowedFd, name: &OsStr, mtime: u64) -> io::Result<()> {
    let c = cstr(name)?;
    let ts = timespecs(mtime);
    // SAFETY: valid fd, C string and a two-element timespec array.
    retry(|| unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(())
}

/// Sets the access and modification times of an open file.
pub(crate) fn set_times(fd: BorrowedFd, mtime: u64) -> io::Result<()> {
    let ts = timespecs(mtime);
    // SAFETY: valid fd and a two-element timespec array.
    retry(|| unsafe { libc::futimens(fd.as_raw_fd(), ts.as_ptr()) })?;
    Ok(())
}

/// Sets an extended attribute on an open file.
pub(crate) fn fsetxattr(fd: BorrowedFd, name: &OsStr, value: &[u8]) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid fd, C string and value buffer of the length passed.
    retry(|| unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            c.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })?;
    Ok(())
}

/// Lists the extended attributes of `path` (not following a symlink), sorted by name.
pub(crate) fn list_xattrs(path: &Path) -> io::Result<Vec<(OsString, Vec<u8>)>> {
    let c = cstr(path.as_os_str())?;
    let names = grow(|buf, len| {
        // SAFETY: valid C string and buffer of the length passed (or null with 0).
        unsafe { libc::llistxattr(c.as_ptr(), buf.cast(), len) }
    })?;
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let Ok(cname) = CString::new(name) else {
            continue;
        };
        let value = grow(|buf, len| {
            // SAFETY: valid C strings and buffer of the length passed.
            unsafe { libc::lgetxattr(c.as_ptr(), cname.as_ptr(), buf.cast(), len) }
        });
        match value {
            Ok(v) => out.push((OsString::from_vec(name.to_vec()), v)),
            // Removed between listing and reading: nothing to archive.
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort();
    Ok(out)
}

/// Calls a size-probing getter (`llistxattr`/`lgetxattr` style) with a big enough buffer.
fn grow(mut f: impl FnMut(*mut u8, usize) -> libc::ssize_t) -> io::Result<Vec<u8>> {
    loop {
        let n = f(std::ptr::null_mut(), 0);
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOTSUP) => Ok(Vec::new()),
                _ => Err(e),
            };
        }
        let mut buf = vec![0u8; n as usize];
        let m = f(buf.as_mut_ptr(), buf.len());
        if m >= 0 {
            buf.truncate(m as usize);
            return Ok(buf);
        }
        let e = io::Error::last_os_error();
        // The value grew between the two calls: ask again.
        if e.raw_os_error() != Some(libc::ERANGE) {
            return Err(e);
        }
    }
}

/// Lists the names in an open directory (without `.` and `..`).
pub(crate) fn list_dir(dir: BorrowedFd) -> io::Result<Vec<OsString>> {
    // fdopendir takes ownership of the fd it is given, so give it a duplicate.
    let dup = dir.try_clone_to_owned()?;
    // Start from the beginning even if this fd was read before.
    // SAFETY: valid fd.
    unsafe { libc::lseek(dup.as_raw_fd(), 0, libc::SEEK_SET) };
    // SAFETY: `dup` is a valid directory fd; on success the DIR owns it.
    let dirp = unsafe { libc::fdopendir(dup.as_raw_fd()) };
    if dirp.is_null() {
        return Err(io::Error::last_os_error());
    }
    std::mem::forget(dup);
    let mut names = Vec::new();
    let result = loop {
        // readdir signals errors only through errno, so clear it first.
        // SAFETY: errno is thread-local.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `dirp` is a valid open DIR.
        let ent = unsafe { libc::readdir(dirp) };
        if ent.is_null() {
            let e = io::Error::last_os_error();
            break if e.raw_os_error().unwrap_or(0) == 0 {
                Ok(())
            } else {
                Err(e)
            };
        }
        // SAFETY: readdir returned a valid entry whose d_name is NUL-terminated.
        let name = unsafe { std::ffi::CStr::from_ptr((*ent).d_name.as_ptr()) };
        let bytes = name.to_bytes();
        if bytes != b"." && bytes != b".." {
            names.push(OsString::from_vec(bytes.to_vec()));
        }
    };
    // SAFETY: `dirp` is valid and closed once, which also closes the fd.
    unsafe { libc::closedir(dirp) };
    result.map(|()| names)
}

/// Removes `name` in `dir` and, when it is a directory, everything under it,
/// never following symlinks.
pub(crate) fn remove_all_at(dir: BorrowedFd, name: &OsStr) -> io::Result<()> {
    let Some(st) = stat_at(dir, name)? else {
        return Ok(());
    };
    if !is_dir(&st) {
        return unlink_at(dir, name, false);
    }
    let sub = open_dir_at(dir, name)?;
    // A read-only directory (a lower layer's 0555) cannot lose entries until
    // it is writable; it is being deleted, so its mode no longer matters.
    if st.st_mode & 0o700 != 0o700 {
        fchmod(sub.as_fd(), 0o700)?;
    }
    for child in list_dir(sub.as_fd())? {
        remove_all_at(sub.as_fd(), &child)?;
    }
    drop(sub);
    unlink_at(dir, name, true)
}

/// The effective user ID of this process.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}
