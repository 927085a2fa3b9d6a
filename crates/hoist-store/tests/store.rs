//! The store's contract: verified atomic blobs, an index that counts layer
//! users by chainID, and deletion that keeps what another image still uses.

use hoist_oci::{chain_ids, Digest};
use hoist_store::{LayerRecord, NewImage, NewLayer, Store, StoreError};
use std::io::Write;

fn layer(chains: &[Digest], diffs: &[Digest], i: usize, blob: &Digest) -> NewLayer {
    NewLayer {
        layer: LayerRecord {
            chain_id: chains[i].clone(),
            diff_id: diffs[i].clone(),
            parent: i.checked_sub(1).map(|p| chains[p].clone()),
            size: 10,
        },
        blob: blob.clone(),
        media_type: hoist_oci::media_type::OCI_LAYER_TAR.into(),
        blob_size: 10,
    }
}

/// Commits `contents` as blobs and an image over them.
fn add(store: &mut Store, config: &[u8], layers: &[&[u8]], tag: &str) -> Digest {
    let mut diffs = Vec::new();
    for l in layers {
        let s = store.stage_bytes(l, None).unwrap();
        diffs.push(store.commit_blob(s).unwrap());
    }
    let chains = chain_ids(&diffs);
    let id = store
        .commit_blob(store.stage_bytes(config, None).unwrap())
        .unwrap();
    let manifest = store
        .commit_blob(
            store
                .stage_bytes(format!("m{tag}").as_bytes(), None)
                .unwrap(),
        )
        .unwrap();
    store.sync_blobs().unwrap();
    let img = NewImage {
        id: id.clone(),
        config_size: config.len() as u64,
        manifest,
        manifest_media_type: hoist_oci::media_type::OCI_MANIFEST.into(),
        created: None,
        layers: (0..layers.len())
            .map(|i| layer(&chains, &diffs, i, &diffs[i]))
            .collect(),
        tags: vec![tag.to_owned()],
    };
    store.index_mut().add_image(&img).unwrap();
    id
}

#[test]
fn staged_blob_is_invisible_until_committed_and_dropped_if_not() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let s = store.stage_bytes(b"hello", None).unwrap();
    let d = s.digest().clone();
    assert!(!store.has_blob(&d));
    drop(s);
    assert!(!store.has_blob(&d));
    assert_eq!(
        std::fs::read_dir(dir.path().join("ingest"))
            .unwrap()
            .count(),
        0
    );
    let s = store.stage_bytes(b"hello", None).unwrap();
    store.commit_blob(s).unwrap();
    assert_eq!(store.read_blob(&d, 100).unwrap(), b"hello");
}

#[test]
fn announced_digest_mismatch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let wrong = Digest::sha256(b"other");
    let e = store.stage_bytes(b"hello", Some(&wrong)).unwrap_err();
    assert!(matches!(e, StoreError::DigestMismatch { .. }), "{e}");
    assert!(!store.has_blob(&Digest::sha256(b"hello")));
}

#[test]
fn blob_writer_hashes_large_writes_on_a_second_thread_correctly() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let data: Vec<u8> = (0..5_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut w = store.blob_writer().unwrap();
    w.write_all(&data[..100]).unwrap();
    for chunk in data[100..].chunks(1 << 20) {
        w.write_all(chunk).unwrap();
    }
    let s = w.finish().unwrap();
    assert_eq!(s.digest(), &Digest::sha256(&data));
    assert_eq!(s.size(), data.len() as u64);
}

#[test]
fn stage_range_copies_and_hashes_a_slice_of_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let src = dir.path().join("src");
    std::fs::write(&src, &data).unwrap();
    let f = std::fs::File::open(&src).unwrap();
    let seen = std::sync::atomic::AtomicU64::new(0);
    let s = store
        .stage_range(&f, 1000, 2_000_000, &|n| {
            seen.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        })
        .unwrap();
    assert_eq!(s.digest(), &Digest::sha256(&data[1000..2_001_000]));
    assert_eq!(seen.into_inner(), 2_000_000);
    let d = store.commit_blob(s).unwrap();
    assert_eq!(
        std::fs::read(store.blob_path(&d)).unwrap(),
        &data[1000..2_001_000]
    );
}

#[test]
fn removing_an_image_keeps_layers_and_blobs_another_image_uses() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let a = add(
        &mut store,
        b"config-a",
        &[b"base", b"top-a"],
        "docker.io/library/a:latest",
    );
    let b = add(
        &mut store,
        b"config-b",
        &[b"base", b"top-b"],
        "docker.io/library/b:latest",
    );
    let removed = store
        .remove_image(&a, &["docker.io/library/a:latest".into()], true)
        .unwrap();
    assert_eq!(removed.untagged, vec!["docker.io/library/a:latest"]);
    assert_eq!(removed.deleted_image.as_ref(), Some(&a));
    // Only a's top layer goes: the base chain is b's too.
    assert_eq!(removed.deleted_layers.len(), 1);
    assert!(store.has_blob(&Digest::sha256(b"base")));
    assert!(!store.has_blob(&Digest::sha256(b"top-a")));
    assert!(!store.has_blob(&a));
    assert!(store.index().image(&b).unwrap().is_some());
    let img = store.index().image(&b).unwrap().unwrap();
    assert_eq!(img.layers[0].layer.chain_id, Digest::sha256(b"base"));
}

#[test]
fn untagging_one_of_two_tags_keeps_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let a = add(&mut store, b"config-a", &[b"base"], "docker.io/library/a:1");
    store
        .index_mut()
        .set_tag("docker.io/library/a:2", &a)
        .unwrap();
    let r = store
        .remove_image(&a, &["docker.io/library/a:1".into()], true)
        .unwrap();
    assert!(r.deleted_image.is_none());
    assert!(store.has_blob(&a));
    assert_eq!(store.index().tag("docker.io/library/a:2").unwrap(), Some(a));
}

#[test]
fn retagging_reports_the_image_the_tag_left() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let a = add(
        &mut store,
        b"config-a",
        &[b"x"],
        "docker.io/library/t:latest",
    );
    let b = add(
        &mut store,
        b"config-b",
        &[b"y"],
        "docker.io/library/u:latest",
    );
    let prev = store
        .index_mut()
        .set_tag("docker.io/library/t:latest", &b)
        .unwrap();
    assert_eq!(prev, Some(a.clone()));
    // a is now dangling but still present, as in Docker.
    assert!(store.index().image(&a).unwrap().unwrap().tags.is_empty());
}

#[test]
fn sweep_removes_unreferenced_blobs_and_ingest_leftovers_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let a = add(
        &mut store,
        b"config-a",
        &[b"l"],
        "docker.io/library/a:latest",
    );
    let orphan = store
        .commit_blob(store.stage_bytes(b"orphan", None).unwrap())
        .unwrap();
    std::fs::write(dir.path().join("ingest/leftover"), b"partial").unwrap();
    let (removed, freed) = store.sweep().unwrap();
    assert_eq!(removed, vec![orphan]);
    assert_eq!(freed, 6);
    assert!(store.has_blob(&a));
    assert_eq!(
        std::fs::read_dir(dir.path().join("ingest"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn two_handles_on_one_store_see_each_others_commits() {
    let dir = tempfile::tempdir().unwrap();
    let mut s1 = Store::open(dir.path()).unwrap();
    let s2 = Store::open(dir.path()).unwrap();
    let a = add(&mut s1, b"config-a", &[b"l"], "docker.io/library/a:latest");
    assert_eq!(
        s2.index().tag("docker.io/library/a:latest").unwrap(),
        Some(a)
    );
}

#[test]
fn chunk_buffers_write_whole_pages_directly_and_the_tail_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Two whole 1 MiB chunks (O_DIRECT where the filesystem allows) and a tail of odd size.
    let data: Vec<u8> = (0..(2 * 1024 * 1024 + 12_345u32))
        .map(|i| (i % 241) as u8)
        .collect();
    let mut w = store.blob_writer().unwrap();
    for chunk in data.chunks(1 << 20) {
        let mut buf = w.buffer(1 << 20);
        buf.space()[..chunk.len()].copy_from_slice(chunk);
        buf.set_len(chunk.len());
        w.write_buffer(buf).unwrap();
    }
    let s = w.finish().unwrap();
    assert_eq!(s.digest(), &Digest::sha256(&data));
    assert_eq!(s.size(), data.len() as u64);
    let d = store.commit_blob(s).unwrap();
    assert_eq!(std::fs::read(store.blob_path(&d)).unwrap(), data);
}
