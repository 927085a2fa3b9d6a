//! Stores that cannot be written (#16.2), stores that do not exist (#16.8)
//! and directories that are a registry's storage (#16.7).

#[path = "common/images.rs"]
mod images;
#[path = "common/romount.rs"]
mod romount;

use hoist_oci::Digest;
use hoist_store::{Store, StoreError};
use images::add_image;
use romount::RoMount;

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
