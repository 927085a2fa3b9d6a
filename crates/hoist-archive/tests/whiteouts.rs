//! OCI whiteouts: `.wh.NAME` hides NAME in the layers below, `.wh..wh..opq`
//! hides everything below in its directory; applied, converted for overlayfs,
//! or kept as files.

mod common;

use common::{get_xattr, is_root, names, snapshot, Node, RawTar, Sandbox};
use hoist_archive::{unpack, write_tree, UnpackOptions, WhiteoutMode, WriteOptions};
use std::fs;
use std::path::Path;

fn lower(root: &Path) {
    fs::create_dir_all(root.join("a")).unwrap();
    fs::write(root.join("a/x"), b"x").unwrap();
    fs::write(root.join("a/y"), b"y").unwrap();
    fs::create_dir_all(root.join("b/deep/er")).unwrap();
    fs::write(root.join("b/deep/er/f"), b"f").unwrap();
    fs::write(root.join("c"), b"c").unwrap();
    fs::create_dir_all(root.join("d/sub")).unwrap();
    fs::write(root.join("d/old"), b"old").unwrap();
    fs::write(root.join("d/sub/deep"), b"old").unwrap();
}

fn apply(sb: &Sandbox, tar: &[u8]) -> hoist_archive::UnpackStats {
    unpack(tar, &sb.root, &UnpackOptions::default()).unwrap()
}

#[test]
fn whiteouts_delete_lower_files_and_directories() {
    let sb = Sandbox::new();
    lower(&sb.root);
    let tar = RawTar::new()
        .file("a/.wh.x", b"")
        .file(".wh.b", b"")
        .file(".wh.missing", b"")
        .file("nodir/.wh.missing", b"")
        .finish();
    let stats = apply(&sb, &tar);
    assert_eq!(stats.whiteouts, 4);
    assert!(!sb.root.join("a/x").exists());
    assert!(sb.root.join("a/y").exists());
    assert!(!sb.root.join("b").exists());
    assert!(sb.root.join("c").exists());
    // Whiteouts are never written as files, and do not create their parents.
    assert!(!sb.root.join("a/.wh.x").exists());
    assert!(!sb.root.join("nodir").exists());
    sb.assert_outside_untouched();
}

#[test]
fn whiteout_does_not_hide_its_own_layer() {
    let sb = Sandbox::new();
    lower(&sb.root);
    let tar = RawTar::new()
        .file("c", b"new c")
        .file(".wh.c", b"")
        .file("fresh", b"fresh")
        .file(".wh.fresh", b"")
        .finish();
    apply(&sb, &tar);
    assert_eq!(fs::read(sb.root.join("c")).unwrap(), b"new c");
    assert_eq!(fs::read(sb.root.join("fresh")).unwrap(), b"fresh");
}

#[test]
fn opaque_marker_first_hides_all_lower_content() {
    let sb = Sandbox::new();
    lower(&sb.root);
    let tar = RawTar::new()
        .dir("d")
        .file("d/.wh..wh..opq", b"")
        .file("d/new", b"new")
        .dir("d/sub")
        .file("d/sub/x", b"x")
        .finish();
    apply(&sb, &tar);
    let (nodes, _) = snapshot(&sb.root.join("d"));
    let names: Vec<_> = nodes
        .keys()
        .map(|p| p.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["new", "sub", "sub/x"]);
}

#[test]
fn opaque_marker_last_keeps_this_layers_entries() {
    let sb = Sandbox::new();
    lower(&sb.root);
    let tar = RawTar::new()
        .dir("d")
        .file("d/new", b"new")
        .dir("d/sub")
        .file("d/sub/x", b"x")
        .file("d/implicit/y", b"y")
        .file("d/.wh..wh..opq", b"")
        .finish();
    apply(&sb, &tar);
    let (nodes, _) = snapshot(&sb.root.join("d"));
    let names: Vec<_> = nodes
        .keys()
        .map(|p| p.to_str().unwrap().to_owned())
        .collect();
    // sub/deep came from below: hidden although sub itself is in this layer.
    assert_eq!(names, ["implicit", "implicit/y", "new", "sub", "sub/x"]);
}

#[test]
fn opaque_for_a_missing_directory_is_harmless() {
    let sb = Sandbox::new();
    let tar = RawTar::new().file("nothere/.wh..wh..opq", b"").finish();
    apply(&sb, &tar);
    assert!(!sb.root.join("nothere").exists());
}

#[test]
fn aufs_metadata_is_skipped() {
    let sb = Sandbox::new();
    let tar = RawTar::new()
        .dir(".wh..wh.plnk")
        .file(".wh..wh.plnk/1234.5678", b"x")
        .file(".wh..wh.aufs", b"")
        .finish();
    let stats = apply(&sb, &tar);
    assert_eq!(stats.skipped, 3);
    assert_eq!(fs::read_dir(&sb.root).unwrap().count(), 0);
}

#[test]
fn keep_mode_writes_whiteouts_as_files() {
    let sb = Sandbox::new();
    lower(&sb.root);
    let tar = RawTar::new()
        .file("a/.wh.x", b"")
        .file("d/.wh..wh..opq", b"")
        .finish();
    let opts = UnpackOptions {
        whiteouts: WhiteoutMode::Keep,
        ..UnpackOptions::default()
    };
    unpack(&tar[..], &sb.root, &opts).unwrap();
    assert!(sb.root.join("a/x").exists());
    assert!(sb.root.join("a/.wh.x").is_file());
    assert!(sb.root.join("d/.wh..wh..opq").is_file());
    assert!(sb.root.join("d/old").exists());
}

#[test]
fn overlay_mode_converts_whiteouts_and_write_tree_converts_back() {
    if !is_root() {
        eprintln!("skipped: overlay whiteouts need CAP_MKNOD");
        return;
    }
    let sb = Sandbox::new();
    let tar = RawTar::new()
        .dir("d")
        .file("d/.wh..wh..opq", b"")
        .file("d/kept", b"k")
        .file(".wh.gone", b"")
        .file("made", b"m")
        .file(".wh.made", b"")
        .finish();
    let opts = UnpackOptions {
        whiteouts: WhiteoutMode::Overlay { user_xattr: false },
        ..UnpackOptions::default()
    };
    let stats = unpack(&tar[..], &sb.root, &opts).unwrap();
    assert_eq!(stats.whiteouts, 3);
    let (nodes, _) = snapshot(&sb.root);
    assert_eq!(nodes[Path::new("gone")], Node::Whiteout);
    assert!(matches!(nodes[Path::new("made")], Node::File { .. }));
    let opaque = get_xattr(&sb.root.join("d"), "trusted.overlay.opaque");
    assert_eq!(opaque.as_deref(), Some(&b"y"[..]));

    // The overlay upper dir written back as a layer carries OCI whiteouts again.
    let mut layer = Vec::new();
    let wopts = WriteOptions {
        overlay_whiteouts: true,
        ..WriteOptions::default()
    };
    write_tree(&sb.root, &mut layer, &wopts).unwrap();
    assert_eq!(
        names(&layer),
        [".wh.gone", "d/", "d/.wh..wh..opq", "d/kept", "made"]
    );
    // And the overlay xattr itself is never recorded.
    let mut r = hoist_archive::TarReader::new(&layer[..]);
    while let Some(e) = r.next_entry().unwrap() {
        assert!(e.xattrs.is_empty(), "{:?} {:?}", e.path, e.xattrs);
    }
}

#[test]
fn root_entry_sets_root_metadata_and_non_directory_root_is_refused() {
    let sb = Sandbox::new();
    let tar = RawTar::new().dir("./").file("./a", b"a").finish();
    let stats = apply(&sb, &tar);
    assert_eq!((stats.dirs, stats.files), (1, 1));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&sb.root).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    let tar = RawTar::new().file(".", b"x").finish();
    let err = unpack(&tar[..], &sb.root, &UnpackOptions::default()).unwrap_err();
    assert!(
        matches!(err, hoist_archive::Error::NotADirectory { .. }),
        "{err}"
    );
}
