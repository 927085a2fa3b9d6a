//! write_tree → unpack gives the same tree; the tar bytes are deterministic;
//! diff → unpack over the lower tree gives the upper tree.

mod common;

use common::{get_xattr, is_root, names, set_mtime, snapshot, Node};
use hoist_archive::{
    compress_writer, decompress_auto, diff, unpack, write_tree, Compression, HashingReader,
    UnpackOptions, WriteOptions,
};
use hoist_oci::{Algorithm, Digest};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o640) }, 0);
}

fn set_xattr(p: &Path, k: &str, v: &[u8]) -> bool {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    let k = std::ffi::CString::new(k).unwrap();
    // SAFETY: valid C strings and value buffer.
    unsafe { libc::lsetxattr(c.as_ptr(), k.as_ptr(), v.as_ptr().cast(), v.len(), 0) == 0 }
}

/// A temporary directory that makes its read-only directories writable
/// before it is removed, so an unprivileged run leaves nothing behind.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Self {
        Scratch(tempfile::tempdir().unwrap())
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for (p, n) in snapshot(self.path()).0 {
            if matches!(n, Node::Dir { .. }) {
                chmod(&self.path().join(p), 0o755);
            }
        }
    }
}

/// A tree with every kind of entry hoist writes.
fn rich_tree(root: &Path) {
    let long_dir = root.join("long").join("d".repeat(120));
    fs::create_dir_all(&long_dir).unwrap();
    fs::write(long_dir.join("f".repeat(150)), b"long name").unwrap();
    let a = root.join("a");
    fs::create_dir(&a).unwrap();
    fs::write(a.join("file"), b"hello").unwrap();
    fs::write(a.join("exec"), b"#!/bin/sh\n").unwrap();
    chmod(&a.join("exec"), 0o4755);
    fs::write(a.join("empty"), b"").unwrap();
    chmod(&a.join("empty"), 0o600);
    symlink("file", a.join("link")).unwrap();
    symlink("/etc/passwd", a.join("abs")).unwrap();
    symlink("../nowhere", a.join("dangling")).unwrap();
    fs::write(a.join("hard1"), b"shared").unwrap();
    fs::hard_link(a.join("hard1"), a.join("hard2")).unwrap();
    fs::hard_link(a.join("hard1"), root.join("hard3")).unwrap();
    fs::write(root.join("ünïcode ✓"), "text").unwrap();
    let big: Vec<u8> = (0..(1u32 << 20) + 7).map(|i| (i % 251) as u8).collect();
    fs::write(root.join("big"), &big).unwrap();
    mkfifo(&root.join("fifo"));
    let ro = root.join("ro");
    fs::create_dir(&ro).unwrap();
    fs::write(ro.join("inside"), b"x").unwrap();
    set_xattr(&a.join("file"), "user.hoist", b"value\0binary");
    if is_root() {
        fs::create_dir(root.join("dev")).unwrap();
        let c = std::ffi::CString::new(root.join("dev/null").to_str().unwrap()).unwrap();
        // SAFETY: valid C string.
        let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
        assert_eq!(r, 0);
        std::os::unix::fs::lchown(a.join("file"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(a.join("link"), Some(42), Some(43)).unwrap();
    }
    // Times last, deepest first, so creating children does not disturb them.
    let mut all: Vec<PathBuf> = snapshot(root).0.into_keys().collect();
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, p) in all.iter().enumerate() {
        set_mtime(&root.join(p), 1_500_000_000 + i as i64 * 1000);
    }
    chmod(&ro, 0o555);
    set_mtime(&ro, 1_400_000_000);
}

fn tar_of(root: &Path, opts: &WriteOptions) -> Vec<u8> {
    let mut out = Vec::new();
    write_tree(root, &mut out, opts).unwrap();
    out
}

#[test]
fn write_tree_then_unpack_gives_the_same_tree() {
    let src = Scratch::new();
    rich_tree(src.path());
    let tar = tar_of(src.path(), &WriteOptions::default());
    let dst = Scratch::new();
    let stats = unpack(&tar[..], dst.path(), &UnpackOptions::default()).unwrap();
    assert_eq!(snapshot(src.path()), snapshot(dst.path()));
    assert_eq!(stats.hardlinks, 2);
    assert_eq!(
        stats.bytes,
        fs::metadata(src.path().join("big")).unwrap().len() + 35
    );
    assert_eq!(
        snapshot(dst.path()).1.len(),
        1,
        "one hardlink group of three"
    );
    // Where the file system keeps user xattrs, they survive, binary and all.
    let x = get_xattr(&src.path().join("a/file"), "user.hoist");
    assert_eq!(x, get_xattr(&dst.path().join("a/file"), "user.hoist"));
    if is_root() {
        assert!(dst.path().join("dev/null").exists());
    }
}

#[test]
fn written_tars_are_deterministic() {
    let src = Scratch::new();
    rich_tree(src.path());
    let opts = WriteOptions::default();
    let first = tar_of(src.path(), &opts);
    assert_eq!(first, tar_of(src.path(), &opts));
    // Another copy of the tree (new inodes, another creation order) gives the same bytes.
    let copy = Scratch::new();
    unpack(&first[..], copy.path(), &UnpackOptions::default()).unwrap();
    assert_eq!(first, tar_of(copy.path(), &opts));
    // Entries are sorted, each directory before its contents.
    let n = names(&first);
    let a = n.iter().position(|x| x == "a/").unwrap();
    assert_eq!(&n[a + 1..a + 3], ["a/abs", "a/dangling"]);
    assert!(n.iter().any(|x| x.starts_with("long/") && x.len() > 255));
}

#[test]
fn fixed_mtime_and_owner_apply_to_every_entry() {
    let src = Scratch::new();
    rich_tree(src.path());
    let opts = WriteOptions {
        mtime: Some(0),
        owner: Some((0, 0)),
        ..WriteOptions::default()
    };
    let tar = tar_of(src.path(), &opts);
    let mut r = hoist_archive::TarReader::new(&tar[..]);
    while let Some(e) = r.next_entry().unwrap() {
        assert_eq!((e.mtime, e.uid, e.gid), (0, 0, 0), "{:?}", e.path);
    }
}

#[test]
fn diff_id_matches_through_compression() {
    let src = Scratch::new();
    rich_tree(src.path());
    let tar = tar_of(src.path(), &WriteOptions::default());
    let diff_id = Digest::sha256(&tar);
    for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let mut w = compress_writer(Vec::new(), c, None).unwrap();
        w.write_all(&tar).unwrap();
        let packed = w.finish().unwrap();
        let (got, reader) = decompress_auto(&packed[..]).unwrap();
        assert_eq!(got, c);
        let mut hashing = HashingReader::new(reader, Algorithm::Sha256);
        let dst = Scratch::new();
        unpack(&mut hashing, dst.path(), &UnpackOptions::default()).unwrap();
        assert_eq!(
            hashing.finish(),
            (diff_id.clone(), tar.len() as u64),
            "{c:?}"
        );
    }
}

/// The snapshot without directory mtimes, which diff does not carry.
fn content(root: &Path) -> BTreeMap<PathBuf, Node> {
    snapshot(root)
        .0
        .into_iter()
        .map(|(p, n)| match n {
            Node::Dir { mode, uid, gid, .. } => (
                p,
                Node::Dir {
                    mode,
                    uid,
                    gid,
                    mtime: 0,
                },
            ),
            other => (p, other),
        })
        .collect()
}

fn copy_tree(from: &Path, to: &Path) {
    let tar = tar_of(from, &WriteOptions::default());
    unpack(&tar[..], to, &UnpackOptions::default()).unwrap();
}

#[test]
fn diff_then_unpack_over_lower_gives_upper() {
    let lower = Scratch::new();
    let l = lower.path();
    for f in ["keep", "modify", "grow", "chmod", "gone", "f2d"] {
        fs::write(l.join(f), format!("{f} data")).unwrap();
    }
    for d in [
        "gonedir/sub",
        "replaced",
        "partial",
        "d2f/x",
        "emptied",
        "same/deep",
    ] {
        fs::create_dir_all(l.join(d)).unwrap();
    }
    fs::write(l.join("gonedir/sub/f"), b"1").unwrap();
    fs::write(l.join("replaced/x"), b"1").unwrap();
    fs::write(l.join("replaced/y"), b"1").unwrap();
    fs::write(l.join("partial/p"), b"1").unwrap();
    fs::write(l.join("partial/q"), b"1").unwrap();
    fs::write(l.join("d2f/x/f"), b"1").unwrap();
    fs::write(l.join("emptied/x"), b"1").unwrap();
    fs::write(l.join("same/deep/f"), b"1").unwrap();
    symlink("a", l.join("link")).unwrap();
    for (i, p) in snapshot(l).0.keys().enumerate() {
        set_mtime(&l.join(p), 1_000_000 + i as i64);
    }

    let upper = Scratch::new();
    let u = upper.path();
    copy_tree(l, u);
    fs::write(u.join("modify"), b"MODIFY data").unwrap();
    fs::write(u.join("grow"), b"grow data and more").unwrap();
    chmod(&u.join("chmod"), 0o700);
    fs::remove_file(u.join("gone")).unwrap();
    fs::remove_dir_all(u.join("gonedir")).unwrap();
    fs::remove_dir_all(u.join("replaced")).unwrap();
    fs::create_dir(u.join("replaced")).unwrap();
    fs::write(u.join("replaced/z"), b"new").unwrap();
    fs::remove_file(u.join("partial/q")).unwrap();
    fs::write(u.join("partial/r"), b"new").unwrap();
    fs::remove_file(u.join("f2d")).unwrap();
    fs::create_dir(u.join("f2d")).unwrap();
    fs::write(u.join("f2d/inner"), b"new").unwrap();
    fs::remove_dir_all(u.join("d2f")).unwrap();
    fs::write(u.join("d2f"), b"now a file").unwrap();
    fs::remove_file(u.join("emptied/x")).unwrap();
    fs::remove_file(u.join("link")).unwrap();
    symlink("b", u.join("link")).unwrap();
    fs::create_dir(u.join("new")).unwrap();
    fs::write(u.join("new/file"), b"new").unwrap();

    let mut layer = Vec::new();
    let stats = diff(l, u, &mut layer, &WriteOptions::default()).unwrap();
    let n = names(&layer);
    for expected in [
        ".wh.gone",
        ".wh.gonedir",
        "modify",
        "grow",
        "chmod",
        "replaced/",
        "replaced/.wh..wh..opq",
        "replaced/z",
        "partial/.wh.q",
        "partial/r",
        "f2d/",
        "f2d/inner",
        "d2f",
        "emptied/.wh..wh..opq",
        "link",
        "new/",
        "new/file",
    ] {
        assert!(
            n.iter().any(|x| x == expected),
            "{expected} missing from {n:?}"
        );
    }
    for unexpected in [
        "keep",
        "same/",
        "same/deep/",
        "same/deep/f",
        "partial/p",
        "partial/",
    ] {
        assert!(!n.iter().any(|x| x == unexpected), "{unexpected} in {n:?}");
    }
    assert_eq!(stats.whiteouts, 5);
    // Whiteouts come before their siblings.
    assert!(n.iter().position(|x| x == ".wh.gone") < n.iter().position(|x| x == "chmod"));

    let flat = Scratch::new();
    copy_tree(l, flat.path());
    unpack(&layer[..], flat.path(), &UnpackOptions::default()).unwrap();
    assert_eq!(content(u), content(flat.path()));
}

#[test]
fn diff_ignores_touch_but_sees_same_size_changes() {
    let lower = Scratch::new();
    let l = lower.path();
    fs::write(l.join("touched"), b"same").unwrap();
    fs::write(l.join("edited"), b"abcd").unwrap();
    set_mtime(&l.join("touched"), 1000);
    set_mtime(&l.join("edited"), 1000);
    let upper = Scratch::new();
    let u = upper.path();
    copy_tree(l, u);
    set_mtime(&u.join("touched"), 2000);
    fs::write(u.join("edited"), b"abce").unwrap();
    set_mtime(&u.join("edited"), 2000);
    let mut layer = Vec::new();
    diff(l, u, &mut layer, &WriteOptions::default()).unwrap();
    assert_eq!(names(&layer), ["edited"]);
    // Identical trees give an empty layer.
    let mut empty = Vec::new();
    let stats = diff(l, l, &mut empty, &WriteOptions::default()).unwrap();
    assert_eq!(stats.entries, 0);
    assert_eq!(empty, vec![0u8; 1024]);
}
