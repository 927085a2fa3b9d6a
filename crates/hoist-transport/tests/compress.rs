//! Compression during a copy: layers compressed (or recompressed), the
//! manifest rewritten with their new digests and media types, the config
//! (and so the diffIDs and the image ID) untouched.

use hoist_oci::{media_type, Digest, Document, Manifest};
use hoist_transport::{
    copy, Compress, CompressFormat, CopyOptions, ImageSource, NoProgress, OciDirDestination,
    OciDirSource, TransportError,
};
use std::io::Read;
use std::path::Path;

/// A layer tar holding one file of `n` generated, compressible bytes.
fn layer(n: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..n)
        .map(|i| b"hoist layer "[i % 12] ^ (i >> 14) as u8)
        .collect();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "data.bin", &data[..]).unwrap();
    b.into_inner().unwrap()
}

fn put_blob(dir: &Path, bytes: &[u8]) -> Digest {
    let d = Digest::sha256(bytes);
    let p = dir.join("blobs/sha256");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join(d.hex()), bytes).unwrap();
    d
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e =
        hoist_archive::compress_writer(Vec::new(), hoist_archive::Compression::Gzip, Some(1))
            .unwrap();
    std::io::Write::write_all(&mut e, b).unwrap();
    e.finish().unwrap()
}

/// An OCI layout with one image of two layers (one plain tar, one gzip),
/// its manifest of type `manifest_type`; returns the plain layers and the
/// config digest.
fn layout(dir: &Path, manifest_type: &str) -> (Vec<Vec<u8>>, Digest) {
    let docker = manifest_type == media_type::DOCKER_MANIFEST;
    let tars = vec![layer(3 << 20), layer(100_000)];
    let gz = gzip(&tars[1]);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": [Digest::sha256(&tars[0]), Digest::sha256(&tars[1])] },
    }))
    .unwrap();
    let (tar_type, gz_type, config_type) = if docker {
        (
            media_type::DOCKER_LAYER_TAR,
            media_type::DOCKER_LAYER_GZIP,
            media_type::DOCKER_CONFIG,
        )
    } else {
        (
            media_type::OCI_LAYER_TAR,
            media_type::OCI_LAYER_GZIP,
            media_type::OCI_CONFIG,
        )
    };
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": { "mediaType": config_type, "digest": put_blob(dir, &config), "size": config.len() },
        "layers": [
            { "mediaType": tar_type, "digest": put_blob(dir, &tars[0]), "size": tars[0].len() },
            { "mediaType": gz_type, "digest": put_blob(dir, &gz), "size": gz.len() },
        ],
    }))
    .unwrap();
    let md = put_blob(dir, &manifest);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{ "mediaType": manifest_type, "digest": md, "size": manifest.len() }],
    }))
    .unwrap();
    std::fs::write(dir.join("index.json"), index).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    (tars, Digest::sha256(&config))
}

fn copy_compressing(
    src: &Path,
    dst: &Path,
    compress: Compress,
) -> Result<Manifest, TransportError> {
    let source = OciDirSource::open(src, None)?;
    let opts = CopyOptions {
        compress,
        ..CopyOptions::default()
    };
    let copied = copy(
        &source,
        Box::new(OciDirDestination::new(dst)?),
        &["v1".to_owned()],
        &opts,
        &NoProgress,
    )?;
    // What the destination names is the rewritten manifest, stored as those bytes.
    let top = copied.top;
    let stored = std::fs::read(dst.join("blobs/sha256").join(top.digest.hex())).unwrap();
    assert_eq!(stored, top.bytes);
    assert_eq!(copied.images[0].manifest, top);
    match Document::parse(&top.bytes, Some(&top.media_type)).unwrap() {
        Document::Manifest(m) => Ok(*m),
        Document::Index(_) => panic!("expected a manifest"),
    }
}

fn blob(dir: &Path, d: &Digest) -> Vec<u8> {
    std::fs::read(dir.join("blobs/sha256").join(d.hex())).unwrap()
}

fn decompress(b: &[u8]) -> Vec<u8> {
    let (_, mut r) = hoist_archive::decompress_auto(b).unwrap();
    let mut v = Vec::new();
    r.read_to_end(&mut v).unwrap();
    v
}

#[test]
fn uncompressed_layers_are_gzipped_and_the_manifest_names_them() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    std::fs::create_dir(&src).unwrap();
    let (tars, config) = layout(&src, media_type::DOCKER_MANIFEST);
    let top = OciDirSource::open(&src, None).unwrap().top().unwrap();
    let before: Manifest = serde_json::from_slice(&top.bytes).unwrap();
    let m = copy_compressing(&src, &dst, Compress::Uncompressed(CompressFormat::Gzip)).unwrap();
    assert_eq!(m.media_type.as_deref(), Some(media_type::DOCKER_MANIFEST));
    assert_eq!(m.config.digest, config, "the config does not change");
    assert_eq!(m.layers[0].media_type, media_type::DOCKER_LAYER_GZIP);
    let gz = blob(&dst, &m.layers[0].digest);
    assert_eq!(&gz[..2], &[0x1f, 0x8b]);
    assert_eq!(gz.len() as u64, m.layers[0].size);
    assert_eq!(decompress(&gz), tars[0]);
    // The gzip layer was already compressed: it travels as it is.
    assert_eq!(m.layers[1], before.layers[1]);
}

#[test]
fn all_to_zstd_recompresses_and_turns_a_docker_manifest_oci() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    std::fs::create_dir(&src).unwrap();
    let (tars, config) = layout(&src, media_type::DOCKER_MANIFEST);
    let m = copy_compressing(&src, &dst, Compress::All(CompressFormat::Zstd)).unwrap();
    assert_eq!(m.media_type.as_deref(), Some(media_type::OCI_MANIFEST));
    assert_eq!(m.config.media_type, media_type::OCI_CONFIG);
    assert_eq!(m.config.digest, config);
    for (l, tar) in m.layers.iter().zip(&tars) {
        assert_eq!(l.media_type, media_type::OCI_LAYER_ZSTD);
        let z = blob(&dst, &l.digest);
        assert_eq!(&z[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
        assert_eq!(&decompress(&z), tar);
    }
}

#[test]
fn the_same_copy_gives_the_same_manifest_whatever_the_thread_count() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    layout(&src, media_type::OCI_MANIFEST);
    let digests: Vec<Digest> = [1, 2, 4]
        .iter()
        .map(|&threads| {
            let dst = t.path().join(format!("dst{threads}"));
            let source = OciDirSource::open(&src, None).unwrap();
            let opts = CopyOptions {
                compress: Compress::All(CompressFormat::Gzip),
                compress_threads: threads,
                ..CopyOptions::default()
            };
            copy(
                &source,
                Box::new(OciDirDestination::new(&dst).unwrap()),
                &[],
                &opts,
                &NoProgress,
            )
            .unwrap()
            .top
            .digest
        })
        .collect();
    assert_eq!(digests[0], digests[1]);
    assert_eq!(digests[0], digests[2]);
}

#[test]
fn a_layer_whose_bytes_do_not_match_its_digest_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    std::fs::create_dir(&src).unwrap();
    let (tars, _) = layout(&src, media_type::OCI_MANIFEST);
    // Other bytes under the plain layer's name: caught while compressing it.
    let d = Digest::sha256(&tars[0]);
    let mut other = tars[0].clone();
    let last = other.len() - 2000;
    other[last] ^= 1;
    std::fs::write(src.join("blobs/sha256").join(d.hex()), &other).unwrap();
    let err =
        copy_compressing(&src, &dst, Compress::Uncompressed(CompressFormat::Gzip)).unwrap_err();
    assert!(
        matches!(err, TransportError::DigestMismatch { .. }),
        "{err}"
    );
}

#[test]
fn a_level_changes_the_bytes_and_a_level_the_format_lacks_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let (tars, _) = layout(&src, media_type::OCI_MANIFEST);
    let with_level = |level, dst: &Path| {
        let source = OciDirSource::open(&src, None).unwrap();
        let opts = CopyOptions {
            compress: Compress::Uncompressed(CompressFormat::Gzip),
            compress_level: Some(level),
            ..CopyOptions::default()
        };
        copy(
            &source,
            Box::new(OciDirDestination::new(dst).unwrap()),
            &[],
            &opts,
            &NoProgress,
        )
    };
    let fast = with_level(1, &t.path().join("fast")).unwrap();
    let best = with_level(9, &t.path().join("best")).unwrap();
    assert_ne!(fast.top.digest, best.top.digest);
    for (copied, dir) in [(fast, "fast"), (best, "best")] {
        let m: Manifest = serde_json::from_slice(&copied.top.bytes).unwrap();
        assert_eq!(
            decompress(&blob(&t.path().join(dir), &m.layers[0].digest)),
            tars[0]
        );
    }
    let err = with_level(10, &t.path().join("bad")).unwrap_err();
    assert!(
        matches!(err, TransportError::BadLevel { level: 10, .. }),
        "{err}"
    );
}
