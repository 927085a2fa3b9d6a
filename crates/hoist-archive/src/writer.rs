//! Deterministic layer tars from a directory tree, and from the difference
//! between two trees.
//!
//! Entries come in a fixed order (depth first, names sorted by bytes, a
//! directory before its contents), so the same tree always gives the same
//! bytes and therefore the same diffID.

use crate::error::{Error, Result};
use crate::fsat;
use crate::tarstream::{Entry, EntryKind, TarWriter};
use crate::{WHITEOUT_OPAQUE, WHITEOUT_PREFIX};
use std::collections::{BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// How [`write_tree`] and [`diff`] record metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteOptions {
    /// Give every entry this mtime (seconds since the epoch) for reproducible layers.
    pub mtime: Option<u64>,
    /// Give every entry this owner `(uid, gid)` instead of the file's.
    pub owner: Option<(u64, u64)>,
    /// Record extended attributes (never overlayfs' own or SELinux labels).
    pub xattrs: bool,
    /// Turn overlayfs whiteouts in the tree (0/0 character devices, the
    /// `overlay.opaque` xattr) into OCI whiteout entries: for an overlay upper dir.
    pub overlay_whiteouts: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            mtime: None,
            owner: None,
            xattrs: true,
            overlay_whiteouts: false,
        }
    }
}

/// What [`write_tree`] or [`diff`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Entries written (whiteouts included).
    pub entries: u64,
    /// Whiteout and opaque entries among them.
    pub whiteouts: u64,
    /// Bytes of file content.
    pub bytes: u64,
}

/// Writes the tree under `root` (not `root` itself) as a layer tar into `out`.
///
/// Hardlinked files (same device and inode) are written once and then as
/// links; symlinks are written as symlinks, never followed; sockets are
/// skipped, as Docker does.
pub fn write_tree<W: Write>(root: &Path, out: W, opts: &WriteOptions) -> Result<WriteStats> {
    let mut w = TreeWriter::new(out, opts);
    w.add_children(root, Path::new(""))?;
    w.finish()
}

/// Writes the layer that turns the tree `lower` into the tree `upper`.
///
/// New and changed entries are written from `upper`; entries missing from
/// `upper` become `.wh.NAME` whiteouts; a directory whose lower contents were
/// all replaced becomes opaque. A file is unchanged when type, mode, owner,
/// size (and xattrs) agree and either the mtime or the bytes agree; a
/// directory whose only change is its mtime is not written, as in Docker.
pub fn diff<W: Write>(
    lower: &Path,
    upper: &Path,
    out: W,
    opts: &WriteOptions,
) -> Result<WriteStats> {
    let mut w = TreeWriter::new(out, opts);
    w.diff_dir(lower, upper, Path::new(""))?;
    w.finish()
}

/// The sorted names in directory `dir`.
fn children(dir: &Path) -> Result<Vec<OsString>> {
    let ctx = |e| Error::io(e, || format!("listing directory {dir:?}"));
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(ctx)? {
        names.push(entry.map_err(ctx)?.file_name());
    }
    // Byte order, independent of locale and of the file system's own order.
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

fn lstat(path: &Path) -> Result<Metadata> {
    fs::symlink_metadata(path).map_err(|e| Error::io(e, || format!("reading metadata of {path:?}")))
}

/// True for overlayfs' whiteout: a character device numbered 0/0.
fn is_overlay_whiteout(md: &Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

/// The overlayfs xattrs that mark an opaque directory.
const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

/// True for xattrs that describe the host rather than the content.
fn host_xattr(name: &OsStr) -> bool {
    let n = name.as_bytes();
    n.starts_with(b"trusted.overlay.")
        || n.starts_with(b"user.overlay.")
        || n == b"security.selinux"
}

struct TreeWriter<'a, W: Write> {
    tar: TarWriter<W>,
    opts: &'a WriteOptions,
    /// The archive name first written for each (device, inode) with several links.
    links: HashMap<(u64, u64), PathBuf>,
    stats: WriteStats,
}

impl<'a, W: Write> TreeWriter<'a, W> {
    fn new(out: W, opts: &'a WriteOptions) -> Self {
        TreeWriter {
            tar: TarWriter::new(out),
            opts,
            links: HashMap::new(),
            stats: WriteStats::default(),
        }
    }

    fn finish(self) -> Result<WriteStats> {
        self.tar.finish()?;
        Ok(self.stats)
    }

    /// Writes `fs` as `name`, then, for a directory, everything under it.
    fn add_tree(&mut self, fs: &Path, name: &Path) -> Result<()> {
        let md = lstat(fs)?;
        self.add(fs, name, &md)?;
        if md.is_dir() {
            self.add_children(fs, name)?;
        }
        Ok(())
    }

    /// Writes everything under directory `fs`, whose entry is named `name`.
    fn add_children(&mut self, fs: &Path, name: &Path) -> Result<()> {
        let mut kids = Vec::new();
        for child in children(fs)? {
            let md = lstat(&fs.join(&child))?;
            kids.push((child, md));
        }
        if self.opts.overlay_whiteouts {
            // Whiteouts before their siblings, as the image-spec asks and as
            // `diff` writes them; the sort is stable, so names stay sorted.
            kids.sort_by_key(|(_, md)| !is_overlay_whiteout(md));
        }
        for (child, md) in kids {
            let (cfs, cname) = (fs.join(&child), name.join(&child));
            self.add(&cfs, &cname, &md)?;
            if md.is_dir() {
                self.add_children(&cfs, &cname)?;
            }
        }
        Ok(())
    }

    /// Writes the single file-system object `fs` as entry `name`.
    fn add(&mut self, fs: &Path, name: &Path, md: &Metadata) -> Result<()> {
        let ft = md.file_type();
        if ft.is_socket() {
            return Ok(());
        }
        if self.opts.overlay_whiteouts && is_overlay_whiteout(md) {
            let parent = name.parent().unwrap_or(Path::new(""));
            let mut wh = OsString::from(WHITEOUT_PREFIX);
            wh.push(name.file_name().unwrap_or_default());
            return self.whiteout(parent.join(wh));
        }
        let kind = if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_symlink() {
            EntryKind::Symlink
        } else if ft.is_char_device() {
            EntryKind::CharDevice
        } else if ft.is_block_device() {
            EntryKind::BlockDevice
        } else if ft.is_fifo() {
            EntryKind::Fifo
        } else {
            EntryKind::File
        };
        let mut entry = self.entry(name, kind, md);
        // Directories are read for the opaque marker even when xattrs are not recorded.
        let want = self.opts.xattrs || (kind == EntryKind::Dir && self.opts.overlay_whiteouts);
        let all_xattrs = if kind == EntryKind::Symlink || !want {
            Vec::new()
        } else {
            fsat::list_xattrs(fs)
                .map_err(|e| Error::io(e, || format!("reading xattrs of {fs:?}")))?
        };
        let opaque = self.opts.overlay_whiteouts
            && kind == EntryKind::Dir
            && all_xattrs
                .iter()
                .any(|(k, v)| OPAQUE_XATTRS.iter().any(|o| k == o) && v == b"y");
        if self.opts.xattrs {
            entry.xattrs = all_xattrs
                .into_iter()
                .filter(|(k, _)| !host_xattr(k))
                .collect();
        }
        match kind {
            EntryKind::File => {
                if md.nlink() > 1 {
                    if let Some(first) = self.links.get(&(md.dev(), md.ino())) {
                        entry.kind = EntryKind::Hardlink;
                        entry.link = Some(first.clone());
                        entry.xattrs.clear();
                        return self.append(&entry, io::empty(), fs);
                    }
                    self.links.insert((md.dev(), md.ino()), name.to_owned());
                }
                entry.size = md.len();
                let file = File::options()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(fs)
                    .map_err(|e| Error::io(e, || format!("opening {fs:?}")))?;
                self.stats.bytes += entry.size;
                self.append(&entry, file, fs)
            }
            EntryKind::Symlink => {
                let target = fs::read_link(fs)
                    .map_err(|e| Error::io(e, || format!("reading symlink {fs:?}")))?;
                entry.link = Some(target);
                self.append(&entry, io::empty(), fs)
            }
            EntryKind::CharDevice | EntryKind::BlockDevice => {
                entry.dev_major = libc::major(md.rdev());
                entry.dev_minor = libc::minor(md.rdev());
                self.append(&entry, io::empty(), fs)
            }
            _ => {
                self.append(&entry, io::empty(), fs)?;
                if opaque {
                    self.whiteout(name.join(WHITEOUT_OPAQUE))?;
                }
                Ok(())
            }
        }
    }

    /// An entry for `name` with `md`'s metadata, after the options' overrides.
    fn entry(&self, name: &Path, kind: EntryKind, md: &Metadata) -> Entry {
        let mut entry = Entry::new(name, kind);
        entry.mode = md.mode() & 0o7777;
        (entry.uid, entry.gid) = self
            .opts
            .owner
            .unwrap_or((u64::from(md.uid()), u64::from(md.gid())));
        // Times before the epoch cannot be written in USTAR; clamp them.
        entry.mtime = self.opts.mtime.unwrap_or(md.mtime().max(0) as u64);
        entry
    }

    /// Writes an empty whiteout or opaque marker entry named `name`.
    fn whiteout(&mut self, name: PathBuf) -> Result<()> {
        let mut entry = Entry::new(name, EntryKind::File);
        // Docker writes whiteouts with mode 0 and root ownership.
        entry.mode = 0;
        (entry.uid, entry.gid) = self.opts.owner.unwrap_or((0, 0));
        entry.mtime = self.opts.mtime.unwrap_or(0);
        self.stats.whiteouts += 1;
        let shown = entry.path.clone();
        self.append(&entry, io::empty(), &shown)
    }

    fn append(&mut self, entry: &Entry, data: impl Read, fs: &Path) -> Result<()> {
        self.stats.entries += 1;
        self.tar.append(entry, data).map_err(|e| match e {
            // Name the file on disk, not its archive name.
            Error::SizeMismatch { expected, got, .. } => Error::SizeMismatch {
                path: fs.to_owned(),
                expected,
                got,
            },
            other => other,
        })
    }

    /// Writes what turns directory `lower` into directory `upper`, both named `name`.
    fn diff_dir(&mut self, lower: &Path, upper: &Path, name: &Path) -> Result<()> {
        let lower_names: BTreeSet<Vec<u8>> = children(lower)?
            .into_iter()
            .map(|n| n.as_bytes().to_vec())
            .collect();
        let upper_names = children(upper)?;
        let upper_set: BTreeSet<&[u8]> = upper_names.iter().map(|n| n.as_bytes()).collect();
        // Whiteouts first: the image-spec asks for them before their siblings.
        for gone in lower_names
            .iter()
            .filter(|n| !upper_set.contains(n.as_slice()))
        {
            let mut wh = WHITEOUT_PREFIX.as_bytes().to_vec();
            wh.extend_from_slice(gone);
            self.whiteout(name.join(OsStr::from_bytes(&wh)))?;
        }
        for child in &upper_names {
            let (l, u, n) = (lower.join(child), upper.join(child), name.join(child));
            let um = lstat(&u)?;
            if !lower_names.contains(child.as_bytes()) {
                self.add_tree(&u, &n)?;
                continue;
            }
            let lm = lstat(&l)?;
            match (lm.is_dir(), um.is_dir()) {
                (true, true) => {
                    let lower_kids = children(&l)?;
                    let upper_kids: BTreeSet<Vec<u8>> = children(&u)?
                        .into_iter()
                        .map(|k| k.as_bytes().to_vec())
                        .collect();
                    let replaced = !lower_kids.is_empty()
                        && lower_kids
                            .iter()
                            .all(|k| !upper_kids.contains(k.as_bytes()));
                    if replaced {
                        // Nothing of the lower directory survives: one opaque
                        // marker says so better than a whiteout per child.
                        self.add(&u, &n, &um)?;
                        self.whiteout(n.join(WHITEOUT_OPAQUE))?;
                        for kid in &upper_kids {
                            let kid = OsStr::from_bytes(kid);
                            self.add_tree(&u.join(kid), &n.join(kid))?;
                        }
                    } else {
                        if self.meta_changed(&l, &u, &lm, &um)? {
                            self.add(&u, &n, &um)?;
                        }
                        self.diff_dir(&l, &u, &n)?;
                    }
                }
                // A directory where there was none: write it all; unpacking
                // it removes whatever was below.
                (false, true) => self.add_tree(&u, &n)?,
                _ => {
                    if !self.same(&l, &u, &lm, &um)? {
                        self.add(&u, &n, &um)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// True when type, mode, owner or (when recorded) xattrs differ.
    fn meta_changed(&self, l: &Path, u: &Path, lm: &Metadata, um: &Metadata) -> Result<bool> {
        if lm.mode() != um.mode() || lm.uid() != um.uid() || lm.gid() != um.gid() {
            return Ok(true);
        }
        if self.opts.xattrs && !lm.file_type().is_symlink() {
            let read = |p: &Path| {
                fsat::list_xattrs(p)
                    .map(|v| {
                        v.into_iter()
                            .filter(|(k, _)| !host_xattr(k))
                            .collect::<Vec<_>>()
                    })
                    .map_err(|e| Error::io(e, || format!("reading xattrs of {p:?}")))
            };
            if read(l)? != read(u)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// True when the non-directory `u` has the same content and metadata as `l`.
    fn same(&self, l: &Path, u: &Path, lm: &Metadata, um: &Metadata) -> Result<bool> {
        // `mode()` includes the file type, so a type change is caught here.
        if self.meta_changed(l, u, lm, um)? {
            return Ok(false);
        }
        let ft = um.file_type();
        if ft.is_symlink() {
            let read = |p: &Path| {
                fs::read_link(p).map_err(|e| Error::io(e, || format!("reading symlink {p:?}")))
            };
            return Ok(read(l)? == read(u)?);
        }
        if ft.is_char_device() || ft.is_block_device() {
            return Ok(lm.rdev() == um.rdev());
        }
        if !ft.is_file() {
            return Ok(true);
        }
        if lm.len() != um.len() {
            return Ok(false);
        }
        if lm.mtime() == um.mtime() && lm.mtime_nsec() == um.mtime_nsec() {
            return Ok(true);
        }
        same_bytes(l, u)
    }
}

/// Compares two files byte by byte.
fn same_bytes(a: &Path, b: &Path) -> Result<bool> {
    let open = |p: &Path| File::open(p).map_err(|e| Error::io(e, || format!("opening {p:?}")));
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let mut ba = vec![0u8; 64 * 1024];
    let mut bb = vec![0u8; 64 * 1024];
    loop {
        let na =
            read_full(&mut fa, &mut ba).map_err(|e| Error::io(e, || format!("reading {a:?}")))?;
        let nb =
            read_full(&mut fb, &mut bb).map_err(|e| Error::io(e, || format!("reading {b:?}")))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
