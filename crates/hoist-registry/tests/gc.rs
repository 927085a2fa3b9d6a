//! Garbage collection: what it keeps, what it deletes, and that it is safe
//! while pushes go on, on every storage driver (the claims it relies on are
//! one layer over all of them: file times where the storage can touch, claim
//! markers on S3).

mod common;

use common::storage::{blob_file, Storage};
use common::*;
use hoist_oci::Digest;
use hoist_registry::gc::GcOptions;
use std::sync::Arc;
use std::time::Duration;

async fn sweeps_unreferenced_blobs_keeps_the_rest(st: Storage) {
    let s = st.start().await;
    let (kept, km) = push_image(&s, "a", "latest", "kept").await;
    let (untagged, _) = push_image(&s, "a", "gone", "untagged").await;
    assert_eq!(s.req("DELETE", "/v2/a/manifests/gone").await.status, 202);
    let lonely = s.push_blob("a", b"nobody references me").await;
    let fresh_before = s.push_blob("a", b"pushed just now").await;
    st.age().await;
    let fresh = s.push_blob("a", b"pushed after aging").await;
    // Re-pushing an existing blob refreshes it too.
    s.push_blob("a", b"pushed just now").await;

    let dry = st
        .gc(GcOptions {
            dry_run: true,
            ..Default::default()
        })
        .await;
    assert_eq!(dry.blobs_deleted.len(), 1, "{dry:?}");
    assert_eq!(dry.blobs_deleted[0].0, lonely);
    assert!(st.has_blob(&lonely).await, "dry run deleted");

    let rep = st.gc(GcOptions::default()).await;
    assert_eq!(rep.repositories, 1);
    assert_eq!(
        rep.blobs_deleted.iter().map(|b| &b.0).collect::<Vec<_>>(),
        [&lonely]
    );
    assert_eq!(rep.bytes_freed(), 20);
    assert!(rep.manifests_deleted.is_empty());
    assert!(!st.has_blob(&lonely).await);
    assert!(st.has_blob(&fresh).await);
    assert!(st.has_blob(&fresh_before).await);
    assert!(
        st.has_blob(&untagged).await,
        "untagged manifests stay without --delete-untagged"
    );
    assert_eq!(
        s.req("GET", &format!("/v2/a/manifests/{untagged}"))
            .await
            .status,
        200
    );
    assert_eq!(
        s.req("GET", "/v2/a/manifests/latest").await.body.as_ref(),
        &km[..]
    );
    assert_eq!(
        s.req("HEAD", &format!("/v2/a/blobs/{lonely}")).await.status,
        404
    );
    // The dangling layer link went with it, and nothing set aside is left.
    let link = format!("repositories/a/_layers/sha256/{}/", lonely.hex());
    let left = st.all_files().await;
    assert!(!left.iter().any(|f| f.starts_with(&link)), "{left:?}");
    assert!(
        !left.iter().any(|f| f.starts_with("_hoist/tmp")),
        "{left:?}"
    );
    let _ = kept;
}

async fn delete_untagged_keeps_index_children_and_referrers(st: Storage) {
    let s = st.start().await;
    // Children pushed by digest only, then an index tagged.
    let (c1, m1) = push_image(&s, "m", "tmp1", "child1").await;
    let (c2, m2) = push_image(&s, "m", "tmp2", "child2").await;
    s.req("DELETE", "/v2/m/manifests/tmp1").await;
    s.req("DELETE", "/v2/m/manifests/tmp2").await;
    let idx = index(
        OCI_INDEX,
        &[
            (&c1, m1.len(), DOCKER_MANIFEST),
            (&c2, m2.len(), DOCKER_MANIFEST),
        ],
    );
    assert_eq!(
        s.put_manifest("m", "multi", OCI_INDEX, &idx).await.status,
        201
    );
    // A signature of the index (a referrer, untagged).
    let empty = s.push_blob("m", b"{}").await;
    let sigl = s.push_blob("m", b"sig").await;
    let sig = oci_manifest(
        (&empty, 2, "application/vnd.oci.empty.v1+json"),
        &[(&sigl, 3)],
        Some((&Digest::sha256(&idx), idx.len())),
        Some("application/vnd.example.sig"),
    );
    let sigd = Digest::sha256(&sig);
    assert_eq!(
        s.put_manifest("m", &sigd.to_string(), OCI_MANIFEST, &sig)
            .await
            .status,
        201
    );
    // An untagged image with a layer of its own.
    let (orphan, om) = push_image(&s, "m", "old", "orphan").await;
    s.req("DELETE", "/v2/m/manifests/old").await;
    let orphan_layer = {
        let doc: serde_json::Value = serde_json::from_slice(&om).unwrap();
        doc["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .parse::<Digest>()
            .unwrap()
    };
    st.age().await;

    let rep = st
        .gc(GcOptions {
            delete_untagged: true,
            ..Default::default()
        })
        .await;
    assert_eq!(rep.manifests_deleted, [("m".to_owned(), orphan.clone())]);
    for d in [&c1, &c2, &sigd, &sigl, &Digest::sha256(&idx)] {
        assert!(st.has_blob(d).await, "{d} deleted");
    }
    assert!(!st.has_blob(&orphan).await);
    assert!(!st.has_blob(&orphan_layer).await);
    assert_eq!(s.req("GET", "/v2/m/manifests/multi").await.status, 200);
    assert_eq!(
        s.req("GET", &format!("/v2/m/manifests/{c1}")).await.status,
        200
    );
    assert_eq!(
        s.req("GET", &format!("/v2/m/manifests/{orphan}"))
            .await
            .status,
        404
    );
    let r = s
        .req("GET", &format!("/v2/m/referrers/{}", Digest::sha256(&idx)))
        .await;
    assert_eq!(r.json()["manifests"].as_array().unwrap().len(), 1);
}

async fn old_uploads_are_purged(st: Storage) {
    let s = st.start().await;
    let old = s.req("POST", "/v2/u/blobs/uploads/").await;
    st.age().await;
    let new = s.req("POST", "/v2/u/blobs/uploads/").await;
    let rep = st
        .gc(GcOptions {
            // Past what aging makes old on every storage (see `Storage::age`).
            upload_max_age: Duration::from_secs(2),
            ..Default::default()
        })
        .await;
    assert_eq!(rep.uploads_purged, 1);
    assert_eq!(
        s.req("GET", old.header("location").unwrap()).await.status,
        404
    );
    assert_eq!(
        s.req("GET", new.header("location").unwrap()).await.status,
        204
    );
}

/// Pushes race a collector that runs over and over. Pushers reuse old blobs
/// nothing references (the case that loses data in distribution#3045): they
/// mount them, or upload them again when the mount finds them gone, and
/// retry a manifest PUT that finds a blob gone. Every manifest that was
/// accepted must have all its blobs afterwards.
async fn collection_during_pushes_never_loses_a_referenced_blob(st: Storage) {
    let s = Arc::new(st.start().await);
    let base: Vec<Vec<u8>> = (0..12)
        .map(|i| format!("base layer {i}").repeat(50).into_bytes())
        .collect();
    for b in &base {
        s.push_blob("base", b).await;
    }
    st.age().await;

    // S3 is slower: fewer pushes, fewer collections.
    let (clients, per, runs) = if st.is_s3() { (3, 4, 2) } else { (4, 6, 3) };
    gc_race(s, st.config(), &base, clients, per, runs).await;
}

/// A Schema 1 manifest (left by an old docker-registry) cannot be parsed as
/// Schema 2, but its layers (`fsLayers[].blobSum`) must still be kept.
async fn schema1_manifests_keep_their_layers(st: Storage) {
    let s = st.start().await;
    let layer = s.push_blob("old", b"a schema 1 layer").await;
    let lonely = s.push_blob("old", b"unreferenced").await;
    s.stop().await;
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 1, "name": "old", "tag": "latest", "architecture": "amd64",
        "fsLayers": [{ "blobSum": layer.to_string() }],
        "history": [{ "v1Compatibility": "{}" }]
    }))
    .unwrap();
    let md = Digest::sha256(&m);
    st.write(&blob_file(&md), &m).await;
    let rev = format!(
        "repositories/old/_manifests/revisions/sha256/{}/link",
        md.hex()
    );
    st.write(&rev, md.to_string().as_bytes()).await;
    let cur = "repositories/old/_manifests/tags/latest/current/link";
    st.write(cur, md.to_string().as_bytes()).await;
    st.age().await;

    for delete_untagged in [false, true] {
        let rep = st
            .gc(GcOptions {
                delete_untagged,
                ..Default::default()
            })
            .await;
        assert!(rep.manifests_deleted.is_empty());
        assert!(st.has_blob(&layer).await);
        assert!(st.has_blob(&md).await);
    }
    assert!(!st.has_blob(&lonely).await);
    let s = st.start().await;
    let r = s.req("GET", "/v2/old/manifests/latest").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.docker.distribution.manifest.v1+prettyjws")
    );
}

/// A client that HEADs a blob (and so will skip uploading it) refreshes it:
/// a collection right after keeps it for the manifest still to come.
async fn a_blob_checked_with_head_survives_the_next_collection(st: Storage) {
    let s = st.start().await;
    let seen = s.push_blob("h", b"checked by a pusher").await;
    let unseen = s.push_blob("h", b"nobody asked").await;
    st.age().await;
    assert_eq!(
        s.req("HEAD", &format!("/v2/h/blobs/{seen}")).await.status,
        200
    );
    // A GET (a pull) is not a claim.
    assert_eq!(
        s.req("GET", &format!("/v2/h/blobs/{unseen}")).await.status,
        200
    );
    st.gc(GcOptions::default()).await;
    assert!(st.has_blob(&seen).await);
    assert!(!st.has_blob(&unseen).await);
}

/// Makes each behaviour a test on every storage driver.
macro_rules! on_every_driver {
    ($($name:ident),* $(,)?) => {
        mod fs {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Storage::fs()).await
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Storage::s3()).await
                }
            )*
        }
        mod mem {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Storage::mem()).await
                }
            )*
        }
    };
}

on_every_driver!(
    sweeps_unreferenced_blobs_keeps_the_rest,
    delete_untagged_keeps_index_children_and_referrers,
    old_uploads_are_purged,
    collection_during_pushes_never_loses_a_referenced_blob,
    schema1_manifests_keep_their_layers,
    a_blob_checked_with_head_survives_the_next_collection,
);
