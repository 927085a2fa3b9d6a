//! The store writer: verified puts, one commit that makes blobs and records
//! visible together, and nothing visible when it is dropped.

use hoist_oci::{chain_ids, Digest};
use hoist_store::{
    IndexChild, LayerRecord, NewImage, NewIndex, NewLayer, Store, StoreError, TagTarget,
};
use std::path::Path;

fn ingest_files(root: &Path) -> usize {
    std::fs::read_dir(root.join("ingest")).unwrap().count()
}

/// A one-layer image over `layer` (a plain tar, so diffID = digest).
fn new_image(config: &[u8], manifest: &[u8], layer: &[u8], tag: Option<&str>) -> NewImage {
    let diff = Digest::sha256(layer);
    let chain = chain_ids(std::slice::from_ref(&diff)).remove(0);
    NewImage {
        id: Digest::sha256(config),
        config_size: config.len() as u64,
        manifest: Digest::sha256(manifest),
        manifest_media_type: hoist_oci::media_type::OCI_MANIFEST.into(),
        created: None,
        layers: vec![NewLayer {
            layer: LayerRecord {
                chain_id: chain,
                diff_id: diff.clone(),
                parent: None,
                size: layer.len() as u64,
            },
            blob: diff,
            media_type: hoist_oci::media_type::OCI_LAYER_TAR.into(),
            blob_size: layer.len() as u64,
        }],
        tags: tag.map(|t| vec![t.to_owned()]).unwrap_or_default(),
    }
}

#[test]
fn commit_makes_blobs_records_and_tags_visible_together() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let img = new_image(
        b"config",
        b"manifest",
        b"layer bytes",
        Some("docker.io/library/x:1"),
    );
    let w = store.begin().unwrap();
    let n = w
        .put_blob(
            &img.layers[0].blob,
            Some(11),
            &mut &b"layer bytes"[..],
            &|_| {},
        )
        .unwrap();
    assert_eq!(n, 11);
    w.put_bytes(b"config", Some(&img.id)).unwrap();
    w.put_bytes(b"manifest", None).unwrap();
    assert!(w.has_blob(&img.id).unwrap());
    w.add_image(img.clone(), None).unwrap();
    w.tag("docker.io/library/x:2", &img.manifest).unwrap();
    // Before commit: nothing under blobs/, nothing in the index.
    assert!(!store.has_blob(&img.id));
    assert!(store.index().images().unwrap().is_empty());
    let moved = w.commit().unwrap();
    assert!(moved.is_empty());
    assert!(store.has_blob(&img.layers[0].blob) && store.has_blob(&img.manifest));
    let rec = store.index().image(&img.id).unwrap().unwrap();
    assert_eq!(
        rec.tags,
        vec!["docker.io/library/x:1", "docker.io/library/x:2"]
    );
    assert_eq!(ingest_files(dir.path()), 0);
}

#[test]
fn a_dropped_writer_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let img = new_image(
        b"config",
        b"manifest",
        b"layer",
        Some("docker.io/library/x:1"),
    );
    {
        let w = store.begin().unwrap();
        w.put_bytes(b"layer", None).unwrap();
        w.put_bytes(b"config", None).unwrap();
        w.add_image(img.clone(), None).unwrap();
        assert_eq!(ingest_files(dir.path()), 2);
    }
    assert_eq!(ingest_files(dir.path()), 0);
    assert!(!store.has_blob(&img.id));
    assert!(store.index().tags().unwrap().is_empty());
}

#[test]
fn a_blob_that_does_not_match_is_refused_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let w = store.begin().unwrap();
    let want = Digest::sha256(b"the real bytes");
    let e = w
        .put_blob(&want, None, &mut &b"other bytes"[..], &|_| {})
        .unwrap_err();
    assert!(matches!(e, StoreError::DigestMismatch { .. }), "{e}");
    let e = w
        .put_blob(&want, Some(3), &mut &b"the real bytes"[..], &|_| {})
        .unwrap_err();
    assert!(matches!(e, StoreError::SizeMismatch { .. }), "{e}");
    assert_eq!(ingest_files(dir.path()), 0);
    w.commit().unwrap();
    assert!(!store.has_blob(&want));
}

#[test]
fn a_record_naming_a_blob_that_is_not_there_is_not_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let img = new_image(
        b"config",
        b"manifest",
        b"layer",
        Some("docker.io/library/x:1"),
    );
    let w = store.begin().unwrap();
    w.put_bytes(b"config", None).unwrap();
    w.put_bytes(b"manifest", None).unwrap();
    w.add_image(img.clone(), None).unwrap();
    let e = w.commit().unwrap_err();
    assert!(
        matches!(&e, StoreError::MissingBlob(d) if d == &img.layers[0].blob),
        "{e}"
    );
    assert!(store.index().images().unwrap().is_empty());
}

#[test]
fn threads_put_blobs_side_by_side_and_an_index_commits_with_its_platforms() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let amd = new_image(b"config amd", b"manifest amd", b"amd layer", None);
    let arm = new_image(b"config arm", b"manifest arm", b"arm layer", None);
    let w = store.begin().unwrap();
    std::thread::scope(|s| {
        for (img, layer, config, manifest) in [
            (
                &amd,
                &b"amd layer"[..],
                &b"config amd"[..],
                &b"manifest amd"[..],
            ),
            (
                &arm,
                &b"arm layer"[..],
                &b"config arm"[..],
                &b"manifest arm"[..],
            ),
        ] {
            let w = &w;
            s.spawn(move || {
                w.put_blob(&img.layers[0].blob, None, &mut &layer[..], &|_| {})
                    .unwrap();
                w.put_bytes(config, Some(&img.id)).unwrap();
                w.put_bytes(manifest, Some(&img.manifest)).unwrap();
            });
        }
    });
    let index = w.put_bytes(b"index", None).unwrap();
    w.add_image(amd.clone(), Some("linux/amd64".into()))
        .unwrap();
    w.add_image(arm.clone(), Some("linux/arm64".into()))
        .unwrap();
    let child = |m: &NewImage, p: &str| IndexChild {
        digest: m.manifest.clone(),
        media_type: hoist_oci::media_type::OCI_MANIFEST.into(),
        size: 12,
        platform: Some(p.into()),
    };
    w.add_index(NewIndex {
        digest: index.clone(),
        media_type: hoist_oci::media_type::OCI_INDEX.into(),
        children: vec![child(&amd, "linux/amd64"), child(&arm, "linux/arm64")],
    })
    .unwrap();
    w.tag("docker.io/library/multi:latest", &index).unwrap();
    w.commit().unwrap();
    assert_eq!(
        store
            .index()
            .tag_target("docker.io/library/multi:latest")
            .unwrap(),
        Some(TagTarget::Index(index.clone()))
    );
    assert_eq!(
        store.index().index(&index).unwrap().unwrap().fetched.len(),
        2
    );
    let (swept, _) = store.sweep().unwrap();
    assert!(swept.is_empty(), "{swept:?}");
}
