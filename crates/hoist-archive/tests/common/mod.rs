//! Helpers shared by the integration tests: hand-built tar streams (the `tar`
//! crate refuses to write hostile names), tree snapshots, and a sandbox with
//! a sentinel directory next to the unpack root.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Builds a tar stream header by header, writing names as raw bytes.
#[derive(Default)]
pub struct RawTar(pub Vec<u8>);

impl RawTar {
    pub fn new() -> Self {
        RawTar(Vec::new())
    }

    /// Appends an entry with a raw name, type flag, link name and data.
    pub fn entry(mut self, name: &[u8], kind: u8, link: &[u8], data: &[u8]) -> Self {
        let mut h = tar::Header::new_ustar();
        let old = h.as_old_mut();
        old.name[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
        old.linkname[..link.len().min(100)].copy_from_slice(&link[..link.len().min(100)]);
        old.linkflag = [kind];
        h.set_mode(if kind == b'5' { 0o755 } else { 0o644 });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
        self
    }

    pub fn file(self, name: &str, data: &[u8]) -> Self {
        self.entry(name.as_bytes(), b'0', b"", data)
    }

    pub fn dir(self, name: &str) -> Self {
        self.entry(name.as_bytes(), b'5', b"", b"")
    }

    pub fn symlink(self, name: &str, target: &str) -> Self {
        self.entry(name.as_bytes(), b'2', target.as_bytes(), b"")
    }

    pub fn hardlink(self, name: &str, target: &str) -> Self {
        self.entry(name.as_bytes(), b'1', target.as_bytes(), b"")
    }

    /// Appends a PAX extended header with the given records.
    pub fn pax(self, records: &[(&str, &[u8])]) -> Self {
        let mut body = Vec::new();
        for (k, v) in records {
            let rest = k.len() + v.len() + 3;
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            body.extend_from_slice(format!("{len} {k}=").as_bytes());
            body.extend_from_slice(v);
            body.push(b'\n');
        }
        self.entry(b"PaxHeaders/x", b'x', b"", &body)
    }

    /// Adds the end-of-archive marker.
    pub fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 1024]);
        self.0
    }
}

/// A temporary directory holding an unpack `root` and a `sentinel` sibling
/// that hostile archives try to reach.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub sentinel: PathBuf,
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let sentinel = dir.path().join("sentinel");
        fs::create_dir(&root).unwrap();
        fs::create_dir(&sentinel).unwrap();
        fs::write(sentinel.join("file"), b"precious").unwrap();
        Sandbox {
            dir,
            root,
            sentinel,
        }
    }

    /// Asserts that nothing outside `root` changed.
    pub fn assert_outside_untouched(&self) {
        let mut top: Vec<_> = fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        top.sort();
        assert_eq!(
            top,
            ["root", "sentinel"],
            "something was written next to the root"
        );
        let inside: Vec<_> = fs::read_dir(&self.sentinel)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            inside,
            ["file"],
            "something was written into the sentinel directory"
        );
        let file = self.sentinel.join("file");
        assert_eq!(fs::read(&file).unwrap(), b"precious");
        assert_eq!(
            fs::metadata(&file).unwrap().nlink(),
            1,
            "sentinel was hardlinked"
        );
    }
}

/// One file-system object as the tests compare it.
#[derive(Debug, PartialEq, Eq, Clone)]
pub enum Node {
    File {
        mode: u32,
        uid: u32,
        gid: u32,
        mtime: i64,
        data: Vec<u8>,
    },
    Dir {
        mode: u32,
        uid: u32,
        gid: u32,
        mtime: i64,
    },
    Symlink {
        target: PathBuf,
        uid: u32,
        gid: u32,
        mtime: i64,
    },
    Fifo {
        mode: u32,
        mtime: i64,
    },
    Device {
        mode: u32,
        rdev: u64,
        char: bool,
    },
    Whiteout,
}

/// Every object under `root` (not `root` itself), plus the hardlink groups.
pub fn snapshot(root: &Path) -> (BTreeMap<PathBuf, Node>, Vec<Vec<PathBuf>>) {
    let mut nodes = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<PathBuf>> = BTreeMap::new();
    walk(root, Path::new(""), &mut nodes, &mut inodes);
    let mut groups: Vec<Vec<PathBuf>> = inodes.into_values().filter(|v| v.len() > 1).collect();
    groups.sort();
    (nodes, groups)
}

fn walk(
    fs_dir: &Path,
    rel: &Path,
    nodes: &mut BTreeMap<PathBuf, Node>,
    inodes: &mut BTreeMap<(u64, u64), Vec<PathBuf>>,
) {
    for e in fs::read_dir(fs_dir).unwrap() {
        let e = e.unwrap();
        let path = e.path();
        let name = rel.join(e.file_name());
        let md = fs::symlink_metadata(&path).unwrap();
        let ft = md.file_type();
        let mode = md.mode() & 0o7777;
        let node = if ft.is_dir() {
            walk(&path, &name, nodes, inodes);
            Node::Dir {
                mode,
                uid: md.uid(),
                gid: md.gid(),
                mtime: md.mtime(),
            }
        } else if ft.is_symlink() {
            Node::Symlink {
                target: fs::read_link(&path).unwrap(),
                uid: md.uid(),
                gid: md.gid(),
                mtime: md.mtime(),
            }
        } else if ft.is_fifo() {
            Node::Fifo {
                mode,
                mtime: md.mtime(),
            }
        } else if ft.is_char_device() && md.rdev() == 0 {
            Node::Whiteout
        } else if ft.is_char_device() || ft.is_block_device() {
            Node::Device {
                mode,
                rdev: md.rdev(),
                char: ft.is_char_device(),
            }
        } else {
            if md.nlink() > 1 {
                inodes
                    .entry((md.dev(), md.ino()))
                    .or_default()
                    .push(name.clone());
            }
            Node::File {
                mode,
                uid: md.uid(),
                gid: md.gid(),
                mtime: md.mtime(),
                data: fs::read(&path).unwrap(),
            }
        };
        nodes.insert(name, node);
    }
}

/// Names in the tar stream, in order.
pub fn names(tar_bytes: &[u8]) -> Vec<String> {
    let mut r = hoist_archive::TarReader::new(tar_bytes);
    let mut out = Vec::new();
    while let Some(e) = r.next_entry().unwrap() {
        out.push(String::from_utf8_lossy(e.path.as_os_str().as_bytes()).into_owned());
    }
    out
}

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Sets a file's mtime (not following symlinks).
pub fn set_mtime(path: &Path, secs: i64) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let t = libc::timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let ts = [t, t];
    // SAFETY: valid C string and two-element timespec array.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(r, 0, "utimensat {path:?}");
}

/// Reads an xattr (not following symlinks); `None` when absent or unsupported.
pub fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let k = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid C strings and buffer of the length passed.
    let n = unsafe { libc::lgetxattr(c.as_ptr(), k.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}
