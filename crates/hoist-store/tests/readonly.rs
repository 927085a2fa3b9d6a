//! Stores that cannot be written (#16.2), stores that do not exist (#16.8)
//! and directories that are a registry's storage (#16.7).

#[path = "common/romount.rs"]
mod romount;

use hoist_oci::{chain_ids, Digest};
use hoist_store::{LayerRecord, NewImage, NewLayer, Store, StoreError};
use romount::RoMount;

/// Commits a valid one-layer image (plain tar layer) tagged `tag`.
fn add_image(store: &Store, layer: &[u8], tag: &str) -> Digest {
    let diff = Digest::sha256(layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff.to_string()]},
    }))
    .unwrap();
    let id = Digest::sha256(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": hoist_oci::media_type::OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": id.to_string(), "size": config.len()},
        "layers": [{"mediaType": hoist_oci::media_type::OCI_LAYER_TAR, "digest": diff.to_string(), "size": layer.len()}],
    }))
    .unwrap();
    let w = store.begin().unwrap();
    w.put_bytes(layer, None).unwrap();
    w.put_bytes(&config, None).unwrap();
    let manifest_digest = w.put_bytes(&manifest, None).unwrap();
    w.add_image(
        NewImage {
            id: id.clone(),
            config_size: config.len() as u64,
            manifest: manifest_digest,
            manifest_media_type: hoist_oci::media_type::OCI_MANIFEST.into(),
            created: None,
            layers: vec![NewLayer {
                layer: LayerRecord {
                    chain_id: chain_ids(std::slice::from_ref(&diff)).remove(0),
                    diff_id: diff.clone(),
                    parent: None,
                    size: layer.len() as u64,
                },
                blob: diff,
                media_type: hoist_oci::media_type::OCI_LAYER_TAR.into(),
                blob_size: layer.len() as u64,
            }],
            tags: vec![tag.into()],
        },
        None,
    )
    .unwrap();
    w.commit().unwrap();
    id
}

#[test]
fn a_missing_store_reads_as_empty_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nonexistent/deep/store");
    let store = Store::open_read_only(&root).unwrap();
    assert!(store.index().images().unwrap().is_empty());
    assert!(store
        .index()
        .tag("docker.io/library/x:latest")
        .unwrap()
        .is_none());
    assert_eq!(store.usage().unwrap().images_summary.total, 0);
    assert!(store.fsck().unwrap().is_clean());
    assert!(!dir.path().join("nonexistent").exists());
}

#[test]
fn a_read_only_store_is_read_and_refuses_writes_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("store");
    let writer = Store::open(&src).unwrap();
    let a = add_image(&writer, b"layer a", "docker.io/library/a:1");
    drop(writer);
    // A second image still in the WAL of a writer that is running.
    let writer = Store::open(&src).unwrap();
    let b = add_image(&writer, b"layer b", "docker.io/library/b:1");
    let Some(ro) = RoMount::new(&src, &dir.path().join("ro")) else {
        return;
    };

    let store = Store::open_read_only(&ro.path).unwrap();
    assert!(store.is_read_only());
    assert_eq!(store.index().tag("docker.io/library/a:1").unwrap(), Some(a));
    assert_eq!(store.index().tag("docker.io/library/b:1").unwrap(), Some(b));
    assert_eq!(store.usage().unwrap().images_summary.total, 2);
    let report = store.fsck().unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert!(store.read_blob(&Digest::sha256(b"layer a"), 100).is_ok());

    for e in [
        Store::open(&ro.path).err().expect("writable open refused"),
        store
            .lock(hoist_store::LockMode::Exclusive)
            .err()
            .expect("no exclusive lock"),
    ] {
        assert!(matches!(e, StoreError::ReadOnly { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("read-only") && msg.contains("permission denied"),
            "{msg}"
        );
        assert!(!msg.contains("move it away"), "{msg}");
    }
    drop(writer);
}

#[test]
fn a_directory_holding_a_registry_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("docker/registry/v2/blobs")).unwrap();
    for e in [
        Store::open(dir.path()).err().expect("refused"),
        Store::open_read_only(dir.path()).err().expect("refused"),
    ] {
        assert!(matches!(e, StoreError::RegistryLayout { .. }), "{e}");
        assert!(e.to_string().contains("hoist serve --root"), "{e}");
    }
    assert!(!dir.path().join("index.db").exists());
}

#[test]
fn only_a_damaged_index_is_advised_to_be_moved_away() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    std::fs::write(dir.path().join("index.db"), vec![0x5a; 8192]).unwrap();
    let e = Store::open_read_only(dir.path()).err().expect("damaged");
    assert!(matches!(e, StoreError::DamagedIndex { .. }), "{e}");
    assert!(e.to_string().contains("move it away"), "{e}");
}
