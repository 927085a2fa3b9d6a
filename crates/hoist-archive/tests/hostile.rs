//! Hostile and broken layers: each is refused with an error that names the
//! problem, and nothing is written outside the unpack root.

mod common;

use common::{RawTar, Sandbox};
use hoist_archive::{
    compress_writer, decompress_auto, unpack, Compression, Error, LimitedReader, PathError,
    UnpackOptions,
};
use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;

fn run(sb: &Sandbox, tar: &[u8]) -> Result<hoist_archive::UnpackStats, Error> {
    unpack(tar, &sb.root, &UnpackOptions::default())
}

#[test]
fn parent_dir_entry_is_refused() {
    let sb = Sandbox::new();
    let tar = RawTar::new()
        .file("ok", b"x")
        .file("../sentinel/file", b"pwned")
        .finish();
    let err = run(&sb, &tar).unwrap_err();
    assert!(matches!(err, Error::Path(PathError::ParentDir(_))), "{err}");
    assert!(err.to_string().contains("../sentinel/file"), "{err}");
    sb.assert_outside_untouched();
}

#[test]
fn nested_parent_dir_entry_is_refused() {
    let sb = Sandbox::new();
    let tar = RawTar::new().file("a/b/../../../x", b"pwned").finish();
    assert!(matches!(
        run(&sb, &tar),
        Err(Error::Path(PathError::ParentDir(_)))
    ));
    sb.assert_outside_untouched();
}

#[test]
fn absolute_entry_is_refused() {
    let sb = Sandbox::new();
    let abs = sb.sentinel.join("abs");
    let tar = RawTar::new().file(abs.to_str().unwrap(), b"pwned").finish();
    let err = run(&sb, &tar).unwrap_err();
    assert!(matches!(err, Error::Path(PathError::Absolute(_))), "{err}");
    assert!(err.to_string().contains("absolute"), "{err}");
    sb.assert_outside_untouched();
}

#[test]
fn nul_in_pax_path_is_refused() {
    let sb = Sandbox::new();
    let tar = RawTar::new()
        .pax(&[("path", b"ok\0/../../x")])
        .file("ok", b"x")
        .finish();
    assert!(matches!(
        run(&sb, &tar),
        Err(Error::Path(PathError::Nul(_)))
    ));
    sb.assert_outside_untouched();
}

#[test]
fn symlink_out_then_file_through_it_is_refused() {
    let sb = Sandbox::new();
    let tar = RawTar::new()
        .symlink("evil", "../sentinel")
        .file("evil/file", b"pwned")
        .finish();
    let err = run(&sb, &tar).unwrap_err();
    assert!(matches!(err, Error::SymlinkEscape { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("evil/file") && msg.contains("../sentinel"),
        "{msg}"
    );
    sb.assert_outside_untouched();
    // The symlink itself may exist: pointing out is harmless until followed.
    assert!(sb
        .root
        .join("evil")
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn symlink_chain_out_is_refused() {
    let sb = Sandbox::new();
    let tar = RawTar::new()
        .dir("d")
        .symlink("d/up", "..")
        .symlink("a", "d/up/d/up/../sentinel")
        .file("a/file", b"pwned")
        .finish();
    assert!(matches!(run(&sb, &tar), Err(Error::SymlinkEscape { .. })));
    sb.assert_outside_untouched();
}

#[test]
fn absolute_symlink_parent_is_contained_in_the_root() {
    let sb = Sandbox::new();
    // An absolute target means the root's own path, as inside the container.
    let target = sb.sentinel.to_str().unwrap().to_owned();
    let tar = RawTar::new()
        .symlink("abs", &target)
        .file("abs/file", b"inside")
        .finish();
    run(&sb, &tar).unwrap();
    sb.assert_outside_untouched();
    let contained = sb.root.join(target.trim_start_matches('/')).join("file");
    assert_eq!(fs::read(contained).unwrap(), b"inside");
}

#[test]
fn symlink_inside_the_root_is_followed_for_parents() {
    let sb = Sandbox::new();
    let tar = RawTar::new()
        .dir("usr/lib")
        .symlink("lib", "usr/lib")
        .file("lib/libc.so", b"elf")
        .finish();
    run(&sb, &tar).unwrap();
    assert_eq!(fs::read(sb.root.join("usr/lib/libc.so")).unwrap(), b"elf");
    sb.assert_outside_untouched();
}

#[test]
fn symlink_loop_is_refused() {
    let sb = Sandbox::new();
    let tar = RawTar::new()
        .symlink("a", "b")
        .symlink("b", "a")
        .file("a/x", b"x")
        .finish();
    assert!(matches!(run(&sb, &tar), Err(Error::SymlinkLoop { .. })));
    sb.assert_outside_untouched();
}

#[test]
fn existing_symlink_is_replaced_not_written_through() {
    let sb = Sandbox::new();
    // A lower layer planted symlinks to the sentinel.
    symlink("../sentinel/file", sb.root.join("f")).unwrap();
    symlink("../sentinel", sb.root.join("d")).unwrap();
    let tar = RawTar::new()
        .file("f", b"new")
        .dir("d")
        .file("d/x", b"new")
        .finish();
    run(&sb, &tar).unwrap();
    sb.assert_outside_untouched();
    assert_eq!(fs::read(sb.root.join("f")).unwrap(), b"new");
    assert!(sb.root.join("d").symlink_metadata().unwrap().is_dir());
    assert_eq!(fs::read(sb.root.join("d/x")).unwrap(), b"new");
}

#[test]
fn hardlink_to_absolute_path_is_refused() {
    let sb = Sandbox::new();
    for target in ["/etc/passwd", sb.sentinel.join("file").to_str().unwrap()] {
        let tar = RawTar::new().hardlink("passwd", target).finish();
        let err = run(&sb, &tar).unwrap_err();
        assert!(matches!(err, Error::BadHardlink { .. }), "{err}");
        assert!(err.to_string().contains(target), "{err}");
        assert!(!sb.root.join("passwd").exists());
    }
    sb.assert_outside_untouched();
}

#[test]
fn hardlink_climbing_out_is_refused() {
    let sb = Sandbox::new();
    let tar = RawTar::new().hardlink("x", "../sentinel/file").finish();
    assert!(matches!(run(&sb, &tar), Err(Error::BadHardlink { .. })));
    sb.assert_outside_untouched();
}

#[test]
fn hardlink_through_escaping_symlink_is_refused() {
    let sb = Sandbox::new();
    let tar = RawTar::new()
        .symlink("s", "../sentinel")
        .hardlink("x", "s/file")
        .finish();
    assert!(matches!(run(&sb, &tar), Err(Error::SymlinkEscape { .. })));
    sb.assert_outside_untouched();
}

#[test]
fn hardlink_to_missing_target_is_refused() {
    let sb = Sandbox::new();
    let tar = RawTar::new().hardlink("x", "nowhere").finish();
    let err = run(&sb, &tar).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[test]
fn hardlink_to_symlink_out_links_the_symlink_not_its_target() {
    let sb = Sandbox::new();
    let tar = RawTar::new()
        .symlink("s", "../sentinel/file")
        .hardlink("x", "s")
        .finish();
    run(&sb, &tar).unwrap();
    assert!(sb
        .root
        .join("x")
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());
    sb.assert_outside_untouched();
}

#[test]
fn hardlink_within_the_layer_works() {
    let sb = Sandbox::new();
    let tar = RawTar::new()
        .file("a", b"data")
        .hardlink("b", "./a")
        .finish();
    let stats = run(&sb, &tar).unwrap();
    assert_eq!(stats.hardlinks, 1);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        fs::metadata(sb.root.join("b")).unwrap().ino(),
        fs::metadata(sb.root.join("a")).unwrap().ino()
    );
}

#[test]
fn entry_under_a_file_is_refused() {
    let sb = Sandbox::new();
    let tar = RawTar::new().file("f", b"x").file("f/g", b"y").finish();
    assert!(matches!(run(&sb, &tar), Err(Error::NotADirectory { .. })));
}

#[test]
fn devices_are_skipped_when_not_allowed() {
    let sb = Sandbox::new();
    let tar = RawTar::new()
        .entry(b"dev/null", b'3', b"", b"")
        .entry(b"dev/sda", b'4', b"", b"")
        .finish();
    let opts = UnpackOptions {
        devices: false,
        ..UnpackOptions::default()
    };
    let stats = unpack(&tar[..], &sb.root, &opts).unwrap();
    assert_eq!(stats.skipped, 2);
    assert!(!sb.root.join("dev/null").exists());
}

#[test]
fn unsupported_entry_types_are_named() {
    let sb = Sandbox::new();
    let tar = RawTar::new().entry(b"vol", b'V', b"", b"").finish();
    let err = run(&sb, &tar).unwrap_err();
    assert!(
        matches!(err, Error::Unsupported { typeflag: 'V', .. }),
        "{err}"
    );
    assert!(err.to_string().contains("\"vol\""));
}

#[test]
fn invalid_whiteouts_are_refused() {
    let sb = Sandbox::new();
    for name in [".wh.", "a/.wh..."] {
        let tar = RawTar::new().file(name, b"").finish();
        assert!(
            matches!(run(&sb, &tar), Err(Error::BadWhiteout { .. })),
            "{name}"
        );
    }
}

#[test]
fn whiteout_through_escaping_symlink_is_refused() {
    let sb = Sandbox::new();
    let tar = RawTar::new()
        .symlink("s", "../sentinel")
        .file("s/.wh.file", b"")
        .finish();
    assert!(matches!(run(&sb, &tar), Err(Error::SymlinkEscape { .. })));
    sb.assert_outside_untouched();
}

#[test]
fn opaque_through_escaping_symlink_is_refused() {
    let sb = Sandbox::new();
    let tar = RawTar::new()
        .symlink("s", "../sentinel")
        .file("s/.wh..wh..opq", b"")
        .finish();
    assert!(matches!(run(&sb, &tar), Err(Error::SymlinkEscape { .. })));
    sb.assert_outside_untouched();
}

#[test]
fn truncated_tar_names_the_entry() {
    let sb = Sandbox::new();
    let tar = RawTar::new().file("big", &[7u8; 5000]).finish();
    let err = run(&sb, &tar[..2048]).unwrap_err();
    assert!(matches!(err, Error::Truncated { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("\"big\"") && msg.contains("truncated"),
        "{msg}"
    );
    // Truncated inside a header.
    let err = run(&sb, &tar[..100]).unwrap_err();
    assert!(matches!(err, Error::Truncated { .. }), "{err}");
    sb.assert_outside_untouched();
}

#[test]
fn garbage_is_not_a_tar() {
    let sb = Sandbox::new();
    let err = run(&sb, &[b'x'; 1024]).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("checksum"), "{err}");
}

#[test]
fn giant_pax_header_is_refused_without_reading_it() {
    let sb = Sandbox::new();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_size(50 << 30);
    h.set_cksum();
    let err = run(&sb, h.as_bytes()).unwrap_err();
    assert!(matches!(err, Error::HeaderTooLarge { .. }), "{err}");
}

fn compressed(c: Compression, data: &[u8]) -> Vec<u8> {
    let mut w = compress_writer(Vec::new(), c, None).unwrap();
    w.write_all(data).unwrap();
    w.finish().unwrap()
}

#[test]
fn truncated_gzip_and_zstd_are_refused() {
    let data: Vec<u8> = (0..200_000u32)
        .flat_map(|i| i.wrapping_mul(2654435761).to_le_bytes())
        .collect();
    let tar = RawTar::new().file("noise", &data).finish();
    for c in [Compression::Gzip, Compression::Zstd] {
        let packed = compressed(c, &tar);
        for cut in [packed.len() / 2, packed.len() - 4] {
            let sb = Sandbox::new();
            let (_, reader) = decompress_auto(&packed[..cut]).unwrap();
            let err = unpack(reader, &sb.root, &UnpackOptions::default()).unwrap_err();
            assert!(
                matches!(err, Error::Truncated { .. } | Error::Corrupt { .. }),
                "{c:?} cut at {cut}: {err}"
            );
            assert!(err.to_string().contains("fetch it again"), "{err}");
            sb.assert_outside_untouched();
        }
    }
}

#[test]
fn gzip_bomb_stops_at_the_limit() {
    // One gzip member holding a header for a 256 MiB file, then many small
    // members of 1 MiB of zeros each: about 1 KiB of input per MiB of output.
    let mut h = tar::Header::new_ustar();
    h.set_path("bomb").unwrap();
    h.set_size(256 << 20);
    h.set_cksum();
    let mut packed = compressed(Compression::Gzip, h.as_bytes());
    let zeros = compressed(Compression::Gzip, &vec![0u8; 1 << 20]);
    for _ in 0..256 {
        packed.extend_from_slice(&zeros);
    }
    assert!(packed.len() < 2 << 20, "bomb is {} bytes", packed.len());
    let sb = Sandbox::new();
    let limit = 4 << 20;
    let (c, reader) = decompress_auto(&packed[..]).unwrap();
    assert_eq!(c, Compression::Gzip);
    let err = unpack(
        LimitedReader::new(reader, limit),
        &sb.root,
        &UnpackOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { limit: l } if l == limit),
        "{err}"
    );
    assert!(err.to_string().contains("limit"), "{err}");
    let written = fs::metadata(sb.root.join("bomb"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(written <= limit, "wrote {written} bytes");
    sb.assert_outside_untouched();
}
