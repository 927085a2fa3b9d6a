//! fsck and indexes: an index whose bytes are gone is reported, and
//! `--repair` drops it and its tags while its platforms' images stay.

#[path = "common/images.rs"]
mod images;

use hoist_store::{IndexChild, NewIndex, Store};

#[test]
fn an_index_whose_bytes_are_gone_is_reported_and_dropped_by_repair() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let id = images::add_image(&store, b"layer", "docker.io/library/one:1");
    let manifest = store.index().image(&id).unwrap().unwrap().manifest;
    let index = store
        .commit_blob(store.stage_bytes(b"index bytes", None).unwrap())
        .unwrap();
    let idx = NewIndex {
        digest: index.clone(),
        media_type: hoist_oci::media_type::OCI_INDEX.into(),
        children: vec![IndexChild {
            digest: manifest,
            media_type: hoist_oci::media_type::OCI_MANIFEST.into(),
            size: 1,
            platform: Some("linux/amd64".into()),
        }],
    };
    let tag = "docker.io/library/multi:1".to_string();
    store
        .index_mut()
        .add_index(&idx, std::slice::from_ref(&tag))
        .unwrap();
    assert!(store.fsck().unwrap().is_clean());

    std::fs::remove_file(store.blob_path(&index)).unwrap();
    let report = store.fsck().unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].subject, format!("index {index}"));
    let (_, done) = store.fsck_repair().unwrap();
    assert_eq!(done.dropped_tags, vec![tag.clone()]);
    assert!(store.index().index(&index).unwrap().is_none());
    assert!(store.index().tag(&tag).unwrap().is_none());
    assert!(store.index().image(&id).unwrap().is_some());
    assert!(store.fsck().unwrap().is_clean());
}
