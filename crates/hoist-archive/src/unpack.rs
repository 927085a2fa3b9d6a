//! Secure unpacking of a layer tar into a root directory.
//!
//! Every file-system operation is made relative to a directory file
//! descriptor that was opened component by component with `O_NOFOLLOW`, so a
//! symlink planted by an earlier entry (or a lower layer) can never redirect a
//! write outside the root. Symlinks met in the *parents* of an entry are
//! followed only while they stay inside the root (absolute targets are taken
//! relative to the root, as in a chroot), which is what Docker and umoci do
//! for layers that write through e.g. `lib -> usr/lib`.

use crate::error::{Error, Result};
use crate::fsat;
use crate::paths::{sanitize_entry_path, PathError};
use crate::tarstream::{Entry, EntryKind, TarReader};
use crate::{WHITEOUT_META_PREFIX, WHITEOUT_OPAQUE, WHITEOUT_PREFIX};
use std::collections::{HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// What [`unpack`] does with OCI whiteout entries (`.wh.NAME`, `.wh..wh..opq`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// Apply them to what the root already holds: delete `NAME`, clear opaque
    /// directories of everything this layer did not write (flattening layers).
    #[default]
    Apply,
    /// Turn them into overlayfs whiteouts (a 0/0 character device, and the
    /// `overlay.opaque` xattr on opaque directories) so the root can serve as
    /// an overlay lower directory.
    Overlay {
        /// Use `user.overlay.*` (unprivileged overlay mounts with `userxattr`)
        /// instead of `trusted.overlay.*`.
        user_xattr: bool,
    },
    /// Write them as the ordinary empty files they are in the tar.
    Keep,
}

/// How [`unpack`] treats ownership, devices, xattrs and whiteouts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnpackOptions {
    /// What to do with whiteout entries.
    pub whiteouts: WhiteoutMode,
    /// Give files the archive's owner (needs root; default: when running as root).
    pub same_owner: bool,
    /// Create device nodes (needs root; default: when running as root). When
    /// false, device entries are skipped and counted in `UnpackStats::skipped`.
    pub devices: bool,
    /// Apply `SCHILY.xattr.*` records. Attributes the file system or our
    /// privileges refuse are counted in `UnpackStats::xattrs_ignored`.
    pub xattrs: bool,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        let root = fsat::euid() == 0;
        UnpackOptions {
            whiteouts: WhiteoutMode::Apply,
            same_owner: root,
            devices: root,
            xattrs: true,
        }
    }
}

/// What [`unpack`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Tar entries read (extension headers not counted).
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Directories created or updated.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Hardlinks created.
    pub hardlinks: u64,
    /// Device nodes and FIFOs created.
    pub specials: u64,
    /// Whiteout and opaque-marker entries processed.
    pub whiteouts: u64,
    /// Entries skipped (devices without privilege, AUFS metadata).
    pub skipped: u64,
    /// Extended attributes that could not be set and were ignored.
    pub xattrs_ignored: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Unpacks the uncompressed layer tar `reader` into `root` (created if missing).
///
/// Nothing is ever written outside `root`. The whole stream is read, even
/// past the end-of-archive marker, so a hashing reader around it sees every
/// byte. On error the root may hold part of the layer: unpack into a fresh
/// directory and discard it on failure.
pub fn unpack<R: Read>(reader: R, root: &Path, opts: &UnpackOptions) -> Result<UnpackStats> {
    std::fs::create_dir_all(root)
        .map_err(|e| Error::io(e, || format!("creating unpack root {root:?}")))?;
    let root_fd = fsat::open_dir_path(root)
        .map_err(|e| Error::io(e, || format!("opening unpack root {root:?}")))?;
    let mut u = Unpacker {
        root: root_fd,
        opts,
        created: HashSet::new(),
        dirs: Vec::new(),
        stats: UnpackStats::default(),
        cache: None,
        buf: vec![0u8; 256 * 1024],
    };
    let mut tar = TarReader::new(reader);
    while let Some(entry) = tar.next_entry()? {
        u.stats.entries += 1;
        u.entry(&entry, &mut tar)?;
    }
    tar.finish()?;
    u.finish_dirs()?;
    Ok(u.stats)
}

/// How far [`Unpacker::resolve`] may go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum How {
    /// Create missing directories; follow symlinks that stay in the root.
    Create,
    /// Only existing directories; follow symlinks that stay in the root.
    Existing,
    /// Only existing real directories; never follow a symlink.
    Strict,
}

/// An open directory inside the root and its real path relative to the root.
struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

struct Unpacker<'a> {
    root: OwnedFd,
    opts: &'a UnpackOptions,
    /// Real paths (relative to the root) this layer wrote: whiteouts and
    /// opaque markers hide only lower content, never this layer's own.
    created: HashSet<PathBuf>,
    /// Directories whose mode and mtime are set last, so that read-only
    /// directories can still receive their children and adding children does
    /// not disturb the recorded mtimes.
    dirs: Vec<(PathBuf, u32, u64)>,
    stats: UnpackStats,
    /// The parent resolved for the previous entry, by its name in the archive:
    /// consecutive entries usually share it, which saves a walk from the root.
    cache: Option<(PathBuf, Dir)>,
    buf: Vec<u8>,
}

impl Unpacker<'_> {
    fn entry<R: Read>(&mut self, entry: &Entry, tar: &mut TarReader<R>) -> Result<()> {
        let shown = entry.display_name();
        let rel = sanitize_entry_path(&entry.path)?;
        let (Some(name), Some(parent_rel)) = (rel.file_name(), rel.parent()) else {
            return self.root_entry(entry, &shown);
        };
        let name = name.to_owned();
        let parent_rel = parent_rel.to_owned();

        if self.opts.whiteouts != WhiteoutMode::Keep {
            let first = rel.components().next().map(|c| c.as_os_str().as_bytes());
            let name_bytes = name.as_bytes();
            if name_bytes == WHITEOUT_OPAQUE.as_bytes() {
                self.cache = None;
                return self.opaque(&parent_rel, &shown);
            }
            // AUFS keeps its own bookkeeping under `.wh..wh.*` at the top;
            // it is not content, and Docker skips it too.
            if first.is_some_and(|f| f.starts_with(WHITEOUT_META_PREFIX.as_bytes())) {
                self.stats.skipped += 1;
                return Ok(());
            }
            if let Some(target) = name_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
                self.cache = None;
                return self.whiteout(&parent_rel, OsStr::from_bytes(target), entry, &shown);
            }
        }

        let parent = match self.cache.take() {
            Some((cached, dir)) if cached == parent_rel => dir,
            _ => self.must_resolve(&parent_rel, &shown)?,
        };
        let real = parent.path.join(&name);
        let result = self.create(&parent, &name, entry, tar, &shown);
        self.created.insert(real);
        self.cache = Some((parent_rel, parent));
        result
    }

    /// Handles an entry that names the root itself (`./`).
    fn root_entry(&mut self, entry: &Entry, shown: &str) -> Result<()> {
        if entry.kind != EntryKind::Dir {
            return Err(Error::NotADirectory {
                entry: shown.to_owned(),
                component: ".".into(),
            });
        }
        let root = self
            .root
            .try_clone()
            .map_err(|e| self.ctx(e, shown, "open root"))?;
        self.dir_metadata(root.as_fd(), entry, shown)?;
        self.dirs.push((PathBuf::new(), entry.mode, entry.mtime));
        self.stats.dirs += 1;
        Ok(())
    }

    /// Creates the non-whiteout `entry` as `name` in `dir`.
    fn create<R: Read>(
        &mut self,
        parent: &Dir,
        name: &OsStr,
        entry: &Entry,
        tar: &mut TarReader<R>,
        shown: &str,
    ) -> Result<()> {
        let dir = parent.fd.as_fd();
        match entry.kind {
            EntryKind::File => {
                self.clear(dir, name, false, shown)?;
                let mut file = fsat::create_file_at(dir, name)
                    .map_err(|e| self.ctx(e, shown, "create file"))?;
                let written = self.copy(tar, &mut file, shown)?;
                if written != entry.size {
                    return Err(Error::SizeMismatch {
                        path: entry.path.clone(),
                        expected: entry.size,
                        got: written,
                    });
                }
                self.file_metadata(file.as_fd(), entry, shown)?;
                self.stats.files += 1;
                self.stats.bytes += written;
            }
            EntryKind::Dir => {
                let existing = self.clear(dir, name, true, shown)?;
                if !existing.as_ref().is_some_and(fsat::is_dir) {
                    // Owner-only until the deferred chmod, like GNU tar.
                    fsat::mkdir_at(dir, name, 0o700)
                        .map_err(|e| self.ctx(e, shown, "create directory"))?;
                }
                let fd = fsat::open_dir_at(dir, name)
                    .map_err(|e| self.ctx(e, shown, "open directory"))?;
                self.dir_metadata(fd.as_fd(), entry, shown)?;
                self.dirs
                    .push((parent.path.join(name), entry.mode, entry.mtime));
                self.stats.dirs += 1;
            }
            EntryKind::Symlink => {
                let Some(target) = &entry.link else {
                    return Err(self.no_link(shown));
                };
                self.clear(dir, name, false, shown)?;
                fsat::symlink_at(target.as_os_str(), dir, name)
                    .map_err(|e| self.ctx(e, shown, "create symlink"))?;
                if self.opts.same_owner {
                    fsat::chown_at(dir, name, entry.uid, entry.gid)
                        .map_err(|e| self.ctx(e, shown, "chown symlink"))?;
                }
                fsat::set_times_at(dir, name, entry.mtime)
                    .map_err(|e| self.ctx(e, shown, "set symlink times"))?;
                self.stats.symlinks += 1;
            }
            EntryKind::Hardlink => self.hardlink(dir, name, entry, shown)?,
            EntryKind::CharDevice | EntryKind::BlockDevice | EntryKind::Fifo => {
                let (kind, device) = match entry.kind {
                    EntryKind::CharDevice => (libc::S_IFCHR, true),
                    EntryKind::BlockDevice => (libc::S_IFBLK, true),
                    _ => (libc::S_IFIFO, false),
                };
                if device && !self.opts.devices {
                    self.stats.skipped += 1;
                    return Ok(());
                }
                self.clear(dir, name, false, shown)?;
                match fsat::mknod_at(dir, name, kind, entry.dev_major, entry.dev_minor) {
                    Ok(()) => {}
                    // Root in a user namespace may not create devices: skip
                    // them as an unprivileged unpack would.
                    Err(e) if device && e.raw_os_error() == Some(libc::EPERM) => {
                        self.stats.skipped += 1;
                        return Ok(());
                    }
                    Err(e) => return Err(self.ctx(e, shown, "create device node")),
                }
                if self.opts.same_owner {
                    fsat::chown_at(dir, name, entry.uid, entry.gid)
                        .map_err(|e| self.ctx(e, shown, "chown"))?;
                }
                // mknod applied the umask; the archive's mode is the truth.
                fsat::chmod_at(dir, name, entry.mode & 0o7777)
                    .map_err(|e| self.ctx(e, shown, "chmod"))?;
                fsat::set_times_at(dir, name, entry.mtime)
                    .map_err(|e| self.ctx(e, shown, "set times"))?;
                self.stats.specials += 1;
            }
            EntryKind::Other(t) => {
                return Err(Error::Unsupported {
                    entry: shown.to_owned(),
                    typeflag: t as char,
                })
            }
        }
        Ok(())
    }

    fn hardlink(
        &mut self,
        dir: BorrowedFd,
        name: &OsStr,
        entry: &Entry,
        shown: &str,
    ) -> Result<()> {
        let Some(link) = &entry.link else {
            return Err(self.no_link(shown));
        };
        let bad = |reason: String| Error::BadHardlink {
            entry: shown.to_owned(),
            target: link.to_string_lossy().into_owned(),
            reason,
        };
        let target = sanitize_entry_path(link).map_err(|e| {
            bad(match e {
                PathError::Absolute(_) => {
                    "is an absolute path (hardlink targets must name an entry of the archive)"
                        .into()
                }
                PathError::ParentDir(_) => "climbs out of the archive with \"..\"".into(),
                PathError::Empty => "is empty".into(),
                PathError::Nul(_) => "contains a NUL byte".into(),
                PathError::TooLong { len, .. } => format!("is {len} bytes long, over PATH_MAX"),
            })
        })?;
        let missing = || {
            bad(
                "does not exist (it must be a file earlier in this layer or in a layer below)"
                    .into(),
            )
        };
        let (Some(tname), Some(tparent)) = (target.file_name(), target.parent()) else {
            return Err(bad("is the root directory".into()));
        };
        let Some(tdir) = self.resolve(tparent, shown, How::Existing)? else {
            return Err(missing());
        };
        let tst = fsat::stat_at(tdir.fd.as_fd(), tname)
            .map_err(|e| self.ctx(e, shown, "stat hardlink target"))?
            .ok_or_else(missing)?;
        if fsat::is_dir(&tst) {
            return Err(bad("is a directory".into()));
        }
        let existing = fsat::stat_at(dir, name).map_err(|e| self.ctx(e, shown, "stat"))?;
        if existing.is_some_and(|st| st.st_dev == tst.st_dev && st.st_ino == tst.st_ino) {
            // Already the same file (a link to itself, or a repeated entry).
            self.stats.hardlinks += 1;
            return Ok(());
        }
        self.clear(dir, name, false, shown)?;
        fsat::link_at(tdir.fd.as_fd(), tname, dir, name)
            .map_err(|e| self.ctx(e, shown, "create hardlink"))?;
        self.stats.hardlinks += 1;
        Ok(())
    }

    /// Applies or converts the whiteout `.wh.TARGET` found in `parent_rel`.
    fn whiteout(
        &mut self,
        parent_rel: &Path,
        target: &OsStr,
        entry: &Entry,
        shown: &str,
    ) -> Result<()> {
        if target.is_empty() || target == "." || target == ".." {
            return Err(Error::BadWhiteout {
                entry: shown.to_owned(),
            });
        }
        self.stats.whiteouts += 1;
        match self.opts.whiteouts {
            WhiteoutMode::Apply => {
                // No parent means nothing below to hide.
                let Some(parent) = self.resolve(parent_rel, shown, How::Existing)? else {
                    return Ok(());
                };
                if self.created.contains(&parent.path.join(target)) {
                    return Ok(());
                }
                fsat::remove_all_at(parent.fd.as_fd(), target)
                    .map_err(|e| self.ctx(e, shown, "apply whiteout"))?;
            }
            WhiteoutMode::Overlay { .. } => {
                let parent = self.must_resolve(parent_rel, shown)?;
                if self.created.contains(&parent.path.join(target)) {
                    return Ok(());
                }
                let dir = parent.fd.as_fd();
                self.clear(dir, target, false, shown)?;
                fsat::mknod_at(dir, target, libc::S_IFCHR, 0, 0)
                    .map_err(|e| self.ctx(e, shown, "create overlay whiteout (needs CAP_MKNOD)"))?;
                if self.opts.same_owner {
                    fsat::chown_at(dir, target, entry.uid, entry.gid)
                        .map_err(|e| self.ctx(e, shown, "chown whiteout"))?;
                }
            }
            WhiteoutMode::Keep => {}
        }
        Ok(())
    }

    /// Applies or converts the opaque marker found in `parent_rel`.
    fn opaque(&mut self, parent_rel: &Path, shown: &str) -> Result<()> {
        self.stats.whiteouts += 1;
        match self.opts.whiteouts {
            WhiteoutMode::Apply => {
                let Some(parent) = self.resolve(parent_rel, shown, How::Existing)? else {
                    return Ok(());
                };
                self.clear_lower(parent.fd.as_fd(), &parent.path, shown)?;
            }
            WhiteoutMode::Overlay { user_xattr } => {
                let parent = self.must_resolve(parent_rel, shown)?;
                let key = if user_xattr {
                    "user.overlay.opaque"
                } else {
                    "trusted.overlay.opaque"
                };
                fsat::fsetxattr(parent.fd.as_fd(), OsStr::new(key), b"y")
                    .map_err(|e| self.ctx(e, shown, &format!("set {key}")))?;
                self.created.insert(parent.path);
            }
            WhiteoutMode::Keep => {}
        }
        Ok(())
    }

    /// Removes everything under `dir` that this layer did not write.
    fn clear_lower(&self, dir: BorrowedFd, real: &Path, shown: &str) -> Result<()> {
        let names = fsat::list_dir(dir).map_err(|e| self.ctx(e, shown, "list opaque directory"))?;
        for child in names {
            let child_real = real.join(&child);
            if !self.created.contains(&child_real) {
                fsat::remove_all_at(dir, &child)
                    .map_err(|e| self.ctx(e, shown, "clear opaque directory"))?;
                continue;
            }
            // A directory this layer wrote may still hold lower content.
            let st = fsat::stat_at(dir, &child).map_err(|e| self.ctx(e, shown, "stat"))?;
            if st.as_ref().is_some_and(fsat::is_dir) {
                let sub = fsat::open_dir_at(dir, &child)
                    .map_err(|e| self.ctx(e, shown, "open directory"))?;
                self.clear_lower(sub.as_fd(), &child_real, shown)?;
            }
        }
        Ok(())
    }

    /// Removes whatever is at `name` unless it is a directory and `keep_dir`;
    /// returns what was there.
    fn clear(
        &mut self,
        dir: BorrowedFd,
        name: &OsStr,
        keep_dir: bool,
        shown: &str,
    ) -> Result<Option<libc::stat>> {
        let st = fsat::stat_at(dir, name).map_err(|e| self.ctx(e, shown, "stat"))?;
        if let Some(st) = &st {
            if !(keep_dir && fsat::is_dir(st)) {
                let remove = if fsat::is_dir(st) {
                    fsat::remove_all_at(dir, name)
                } else {
                    fsat::unlink_at(dir, name, false)
                };
                remove.map_err(|e| self.ctx(e, shown, "replace existing file"))?;
            }
        }
        Ok(st)
    }

    fn copy<R: Read>(
        &mut self,
        tar: &mut TarReader<R>,
        file: &mut std::fs::File,
        shown: &str,
    ) -> Result<u64> {
        let mut total = 0u64;
        loop {
            let n = match tar.read(&mut self.buf) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(e, || format!("tar entry {shown:?}: read data"))),
            };
            file.write_all(&self.buf[..n])
                .map_err(|e| Error::io(e, || format!("tar entry {shown:?}: write file")))?;
            total += n as u64;
        }
    }

    fn file_metadata(&mut self, fd: BorrowedFd, entry: &Entry, shown: &str) -> Result<()> {
        // Owner first: chown clears setuid bits and file capabilities, so the
        // mode and the xattrs come after it.
        if self.opts.same_owner {
            fsat::fchown(fd, entry.uid, entry.gid).map_err(|e| self.ctx(e, shown, "chown"))?;
        }
        fsat::fchmod(fd, entry.mode & 0o7777).map_err(|e| self.ctx(e, shown, "chmod"))?;
        self.set_xattrs(fd, entry, shown)?;
        fsat::set_times(fd, entry.mtime).map_err(|e| self.ctx(e, shown, "set times"))
    }

    fn dir_metadata(&mut self, fd: BorrowedFd, entry: &Entry, shown: &str) -> Result<()> {
        if self.opts.same_owner {
            fsat::fchown(fd, entry.uid, entry.gid).map_err(|e| self.ctx(e, shown, "chown"))?;
        }
        self.set_xattrs(fd, entry, shown)
    }

    fn set_xattrs(&mut self, fd: BorrowedFd, entry: &Entry, shown: &str) -> Result<()> {
        if !self.opts.xattrs {
            return Ok(());
        }
        for (key, value) in &entry.xattrs {
            match fsat::fsetxattr(fd, key, value) {
                Ok(()) => {}
                // The file system lacks xattrs, or the namespace (trusted.*,
                // security.*) needs privileges we lack: the content is still
                // right, so count it rather than fail the layer.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EPERM | libc::EOPNOTSUPP | libc::EACCES | libc::EINVAL)
                    ) =>
                {
                    self.stats.xattrs_ignored += 1
                }
                Err(e) => return Err(self.ctx(e, shown, &format!("set xattr {key:?}"))),
            }
        }
        Ok(())
    }

    /// Sets the deferred modes and mtimes, deepest directories first.
    fn finish_dirs(&mut self) -> Result<()> {
        let dirs = std::mem::take(&mut self.dirs);
        for (real, mode, mtime) in dirs.iter().rev() {
            let shown = real.to_string_lossy();
            // A directory replaced or whited out later in the layer is gone;
            // never follow a symlink that took its place.
            let Some(dir) = self.resolve(real, &shown, How::Strict)? else {
                continue;
            };
            let fd = dir.fd.as_fd();
            fsat::fchmod(fd, mode & 0o7777).map_err(|e| self.ctx(e, &shown, "chmod directory"))?;
            fsat::set_times(fd, *mtime).map_err(|e| self.ctx(e, &shown, "set directory times"))?;
        }
        Ok(())
    }

    fn must_resolve(&mut self, rel: &Path, shown: &str) -> Result<Dir> {
        self.resolve(rel, shown, How::Create)?
            .ok_or_else(|| Error::NotADirectory {
                entry: shown.to_owned(),
                component: rel.to_string_lossy().into_owned(),
            })
    }

    /// Opens the directory `rel` (a sanitised relative path) inside the root.
    ///
    /// Each component is opened with `O_NOFOLLOW`. A component that is a
    /// symlink is replaced by its target — from the root when absolute — and
    /// the walk goes on; a `..` that would climb above the root is an
    /// [`Error::SymlinkEscape`]. `None` when (in the non-creating modes) a
    /// component is missing or is not a directory.
    fn resolve(&mut self, rel: &Path, shown: &str, how: How) -> Result<Option<Dir>> {
        let mut todo: VecDeque<OsString> = rel.iter().map(OsStr::to_owned).collect();
        let mut stack: Vec<OsString> = Vec::new();
        let mut cur = self.dup_root(shown)?;
        let mut links = 0;
        let mut last_link: Option<(String, String)> = None;
        while let Some(name) = todo.pop_front() {
            if name.is_empty() || name == "." {
                continue;
            }
            if name == ".." {
                if stack.pop().is_none() {
                    let (link, target) = last_link.unwrap_or_default();
                    return Err(Error::SymlinkEscape {
                        entry: shown.to_owned(),
                        link,
                        target,
                    });
                }
                cur = self.reopen(&stack, shown)?;
                continue;
            }
            let err = match fsat::open_dir_at(cur.as_fd(), &name) {
                Ok(fd) => {
                    cur = fd;
                    stack.push(name);
                    continue;
                }
                Err(e) => e,
            };
            match err.raw_os_error() {
                Some(libc::ENOENT) if how == How::Create => {
                    match fsat::mkdir_at(cur.as_fd(), &name, 0o755) {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                        Err(e) => return Err(self.ctx(e, shown, "create parent directory")),
                    }
                    cur = fsat::open_dir_at(cur.as_fd(), &name)
                        .map_err(|e| self.ctx(e, shown, "open parent directory"))?;
                    stack.push(name);
                    self.created.insert(stack.iter().collect());
                }
                Some(libc::ENOENT) => return Ok(None),
                Some(libc::ELOOP | libc::ENOTDIR) => {
                    let st = fsat::stat_at(cur.as_fd(), &name)
                        .map_err(|e| self.ctx(e, shown, "stat parent"))?;
                    let here: PathBuf = stack.iter().chain([&name]).collect();
                    match st {
                        Some(st) if fsat::is_symlink(&st) && how != How::Strict => {
                            links += 1;
                            if links > 40 {
                                return Err(Error::SymlinkLoop {
                                    entry: shown.to_owned(),
                                });
                            }
                            let target = fsat::readlink_at(cur.as_fd(), &name)
                                .map_err(|e| self.ctx(e, shown, "read symlink"))?;
                            let target = PathBuf::from(target);
                            last_link = Some((
                                here.to_string_lossy().into_owned(),
                                target.to_string_lossy().into_owned(),
                            ));
                            if target.is_absolute() {
                                stack.clear();
                                cur = self.dup_root(shown)?;
                            }
                            let mut parts: Vec<OsString> = target
                                .components()
                                .filter_map(|c| match c {
                                    Component::Normal(p) => Some(p.to_owned()),
                                    Component::ParentDir => Some("..".into()),
                                    _ => None,
                                })
                                .collect();
                            parts.extend(todo.drain(..));
                            todo = parts.into();
                        }
                        _ if how == How::Create => {
                            return Err(Error::NotADirectory {
                                entry: shown.to_owned(),
                                component: here.to_string_lossy().into_owned(),
                            })
                        }
                        _ => return Ok(None),
                    }
                }
                _ => return Err(self.ctx(err, shown, "open parent directory")),
            }
        }
        Ok(Some(Dir {
            fd: cur,
            path: stack.iter().collect(),
        }))
    }

    /// Re-opens a real path (no symlinks in it) from the root after a `..`.
    fn reopen(&self, stack: &[OsString], shown: &str) -> Result<OwnedFd> {
        let mut cur = self.dup_root(shown)?;
        for name in stack {
            cur = fsat::open_dir_at(cur.as_fd(), name)
                .map_err(|e| self.ctx(e, shown, "re-open parent directory"))?;
        }
        Ok(cur)
    }

    fn dup_root(&self, shown: &str) -> Result<OwnedFd> {
        self.root
            .try_clone()
            .map_err(|e| self.ctx(e, shown, "duplicate root descriptor"))
    }

    fn no_link(&self, shown: &str) -> Error {
        Error::Corrupt {
            what: format!("tar entry {shown:?}"),
            detail: "a link without a target".into(),
        }
    }

    fn ctx(&self, e: io::Error, shown: &str, op: &str) -> Error {
        Error::io(e, || format!("tar entry {shown:?}: {op}"))
    }
}
