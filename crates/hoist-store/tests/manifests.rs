//! Manifests and indexes as themselves: an image with several manifests, a
//! tag naming an index, and `rmi` of that tag taking the index and its
//! platforms with it.

use hoist_oci::{chain_ids, Digest};
use hoist_store::{IndexChild, LayerRecord, NewImage, NewIndex, NewLayer, Store, TagTarget};

fn commit(store: &Store, bytes: &[u8]) -> Digest {
    let d = store
        .commit_blob(store.stage_bytes(bytes, None).unwrap())
        .unwrap();
    store.sync_blobs().unwrap();
    d
}

/// An image over `diffs` whose manifest `manifest_bytes` carries `blobs`.
fn image(
    store: &Store,
    config: &[u8],
    diffs: &[Digest],
    blobs: &[&[u8]],
    manifest_bytes: &[u8],
) -> NewImage {
    let chains = chain_ids(diffs);
    let id = commit(store, config);
    let manifest = commit(store, manifest_bytes);
    let layers = blobs
        .iter()
        .enumerate()
        .map(|(i, b)| NewLayer {
            layer: LayerRecord {
                chain_id: chains[i].clone(),
                diff_id: diffs[i].clone(),
                parent: i.checked_sub(1).map(|p| chains[p].clone()),
                size: 100,
            },
            blob: commit(store, b),
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            blob_size: b.len() as u64,
        })
        .collect();
    NewImage {
        id,
        config_size: config.len() as u64,
        manifest,
        manifest_media_type: hoist_oci::media_type::OCI_MANIFEST.into(),
        created: None,
        layers,
        tags: Vec::new(),
    }
}

#[test]
fn one_image_keeps_two_manifests_and_rmi_removes_both() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let diffs = [Digest::sha256(b"plain layer")];
    let mut gz = image(
        &store,
        b"config",
        &diffs,
        &[b"gzip bytes"],
        b"manifest gzip",
    );
    gz.tags = vec!["docker.io/library/app:gz".into()];
    let mut zst = image(
        &store,
        b"config",
        &diffs,
        &[b"zstd bytes"],
        b"manifest zstd",
    );
    zst.tags = vec!["docker.io/library/app:zst".into()];
    store.index_mut().add_image(&gz).unwrap();
    store.index_mut().add_image(&zst).unwrap();

    let img = store.index().image(&gz.id).unwrap().unwrap();
    assert_eq!(store.index().images().unwrap().len(), 1);
    let manifests: Vec<&Digest> = img.manifests.iter().map(|m| &m.digest).collect();
    assert_eq!(manifests, vec![&gz.manifest, &zst.manifest]);
    assert_eq!(
        img.manifests[1].layers[0].blob,
        Digest::sha256(b"zstd bytes")
    );
    assert_eq!(img.tags.len(), 2);
    assert_eq!(
        store
            .index()
            .tag_target("docker.io/library/app:zst")
            .unwrap(),
        Some(TagTarget::Manifest {
            digest: zst.manifest.clone(),
            image: gz.id.clone()
        })
    );
    // Both manifests' blobs are referenced: a sweep keeps them.
    let (swept, _) = store.sweep().unwrap();
    assert!(swept.is_empty(), "{swept:?}");

    let removed = store.remove_image(&gz.id, &img.tags, true).unwrap();
    assert_eq!(removed.deleted_image, Some(gz.id.clone()));
    for b in [&gz.manifest, &zst.manifest, &gz.id] {
        assert!(!store.has_blob(b), "{b} removed");
    }
    assert!(!store.has_blob(&Digest::sha256(b"gzip bytes")));
    assert!(!store.has_blob(&Digest::sha256(b"zstd bytes")));
}

/// Two platforms under one index tagged `multi:latest`; returns (index, amd64, arm64).
fn two_platforms(store: &mut Store) -> (Digest, NewImage, NewImage) {
    let amd = image(
        store,
        b"config amd64",
        &[Digest::sha256(b"a")],
        &[b"amd64 layer"],
        b"manifest amd64",
    );
    let arm = image(
        store,
        b"config arm64",
        &[Digest::sha256(b"b")],
        &[b"arm64 layer"],
        b"manifest arm64",
    );
    let index = commit(store, b"index bytes");
    let child = |m: &NewImage, p: &str| IndexChild {
        digest: m.manifest.clone(),
        media_type: hoist_oci::media_type::OCI_MANIFEST.into(),
        size: 14,
        platform: Some(p.into()),
    };
    store
        .index_mut()
        .add_platform_image(&amd, "linux/amd64")
        .unwrap();
    store
        .index_mut()
        .add_platform_image(&arm, "linux/arm64/v8")
        .unwrap();
    let idx = NewIndex {
        digest: index.clone(),
        media_type: hoist_oci::media_type::OCI_INDEX.into(),
        children: vec![
            child(&amd, "linux/amd64"),
            child(&arm, "linux/arm64/v8"),
            IndexChild {
                digest: Digest::sha256(b"s390x manifest, not fetched"),
                media_type: hoist_oci::media_type::OCI_MANIFEST.into(),
                size: 1,
                platform: Some("linux/s390x".into()),
            },
        ],
    };
    store
        .index_mut()
        .add_index(&idx, &["docker.io/library/multi:latest".into()])
        .unwrap();
    (index, amd, arm)
}

#[test]
fn a_tag_names_an_index_that_keeps_its_bytes_and_fetched_platforms() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let (index, amd, arm) = two_platforms(&mut store);
    let tag = "docker.io/library/multi:latest";
    assert_eq!(
        store.index().tag_target(tag).unwrap(),
        Some(TagTarget::Index(index.clone()))
    );
    let rec = store.index().index(&index).unwrap().unwrap();
    assert_eq!(rec.children.len(), 3);
    assert_eq!(
        rec.fetched,
        vec![amd.manifest.clone(), arm.manifest.clone()]
    );
    assert_eq!(rec.tags, vec![tag.to_string()]);
    assert_eq!(store.read_blob(&index, 100).unwrap(), b"index bytes");
    // Both platforms show the index's tag; the tag resolves to one of them.
    for m in [&amd, &arm] {
        let img = store.index().image(&m.id).unwrap().unwrap();
        assert_eq!(img.tags, vec![tag.to_string()]);
    }
    let arm_rec = store.index().manifest(&arm.manifest).unwrap().unwrap();
    assert_eq!(arm_rec.platform.as_deref(), Some("linux/arm64/v8"));
    let resolved = store.index().tag(tag).unwrap().unwrap();
    assert!(resolved == amd.id || resolved == arm.id);
    let (swept, _) = store.sweep().unwrap();
    assert!(swept.is_empty(), "{swept:?}");
}

#[test]
fn rmi_of_the_last_index_tag_removes_the_index_its_platforms_and_their_layers() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let (index, amd, arm) = two_platforms(&mut store);
    let tag = "docker.io/library/multi:latest".to_string();
    store
        .index_mut()
        .set_tag_target("docker.io/library/multi:again", &index)
        .unwrap();
    let resolved = store.index().tag(&tag).unwrap().unwrap();

    // Another tag still names the index: only the tag goes.
    let r = store
        .remove_image(&resolved, std::slice::from_ref(&tag), true)
        .unwrap();
    assert_eq!(r.untagged, vec![tag.clone()]);
    assert!(r.deleted_image.is_none() && r.deleted_indexes.is_empty());
    assert!(store.has_blob(&index));

    let again = "docker.io/library/multi:again".to_string();
    let r = store
        .remove_image(&resolved, std::slice::from_ref(&again), true)
        .unwrap();
    assert_eq!(r.deleted_indexes, vec![index.clone()]);
    assert_eq!(r.deleted_image, Some(resolved.clone()));
    assert_eq!(r.deleted_images.len(), 1);
    assert_eq!(r.deleted_layers.len(), 2);
    assert!(store.index().images().unwrap().is_empty());
    assert!(store.index().index(&index).unwrap().is_none());
    for b in [&index, &amd.id, &arm.id, &amd.manifest, &arm.manifest] {
        assert!(!store.has_blob(b), "{b} removed");
    }
    assert!(!store.has_blob(&Digest::sha256(b"arm64 layer")));
}

#[test]
fn a_platform_also_tagged_by_itself_survives_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let (index, amd, arm) = two_platforms(&mut store);
    store
        .index_mut()
        .set_tag("docker.io/library/arm:only", &arm.id)
        .unwrap();
    let tag = "docker.io/library/multi:latest".to_string();
    let r = store
        .remove_image(&amd.id, std::slice::from_ref(&tag), true)
        .unwrap();
    assert_eq!(r.deleted_indexes, vec![index]);
    assert_eq!(r.deleted_image, Some(amd.id.clone()));
    assert!(r.deleted_images.is_empty());
    let kept = store.index().image(&arm.id).unwrap().unwrap();
    assert_eq!(kept.tags, vec!["docker.io/library/arm:only".to_string()]);
    assert!(store.has_blob(&arm.manifest));
}
