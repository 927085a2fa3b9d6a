//! Garbage collection: what it keeps, what it deletes, and that it is safe
//! while pushes go on.

mod common;

use common::*;
use hoist_oci::Digest;
use hoist_registry::gc::{collect, GcOptions};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Ages every file under `root` by an hour, as if pushed long ago.
fn age_everything(root: &Path) {
    let old = SystemTime::now() - Duration::from_secs(3600);
    for f in files_under(root) {
        let f = std::fs::File::open(root.join(f)).unwrap();
        f.set_modified(old).unwrap();
    }
}

fn blob_exists(root: &Path, d: &Digest) -> bool {
    root.join(format!(
        "docker/registry/v2/blobs/sha256/{}/{}/data",
        &d.hex()[..2],
        d.hex()
    ))
    .is_file()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeps_unreferenced_blobs_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let s = TestServer::start(root).await;
    let (kept, km) = push_image(&s, "a", "latest", "kept").await;
    let (untagged, _) = push_image(&s, "a", "gone", "untagged").await;
    assert_eq!(s.req("DELETE", "/v2/a/manifests/gone").await.status, 202);
    let lonely = s.push_blob("a", b"nobody references me").await;
    let fresh_before = s.push_blob("a", b"pushed just now").await;
    age_everything(root);
    let fresh = s.push_blob("a", b"pushed after aging").await;
    // Re-pushing an existing blob refreshes it too.
    s.push_blob("a", b"pushed just now").await;

    let dry = collect(
        root,
        &GcOptions {
            dry_run: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(dry.blobs_deleted.len(), 1, "{dry:?}");
    assert_eq!(dry.blobs_deleted[0].0, lonely);
    assert!(blob_exists(root, &lonely), "dry run deleted");

    let rep = collect(root, &GcOptions::default()).unwrap();
    assert_eq!(rep.repositories, 1);
    assert_eq!(
        rep.blobs_deleted.iter().map(|b| &b.0).collect::<Vec<_>>(),
        [&lonely]
    );
    assert_eq!(rep.bytes_freed(), 20);
    assert!(rep.manifests_deleted.is_empty());
    assert!(!blob_exists(root, &lonely));
    assert!(blob_exists(root, &fresh));
    assert!(blob_exists(root, &fresh_before));
    assert!(
        blob_exists(root, &untagged),
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
    // The dangling layer link went with it.
    assert!(!root
        .join(format!(
            "docker/registry/v2/repositories/a/_layers/sha256/{}",
            lonely.hex()
        ))
        .exists());
    let _ = kept;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_untagged_keeps_index_children_and_referrers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let s = TestServer::start(root).await;
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
    age_everything(root);

    let rep = collect(
        root,
        &GcOptions {
            delete_untagged: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(rep.manifests_deleted, [("m".to_owned(), orphan.clone())]);
    for d in [&c1, &c2, &sigd, &sigl, &Digest::sha256(&idx)] {
        assert!(blob_exists(root, d), "{d} deleted");
    }
    assert!(!blob_exists(root, &orphan));
    assert!(!blob_exists(root, &orphan_layer));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_uploads_are_purged() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let s = TestServer::start(root).await;
    let old = s.req("POST", "/v2/u/blobs/uploads/").await;
    age_everything(root);
    let new = s.req("POST", "/v2/u/blobs/uploads/").await;
    let rep = collect(
        root,
        &GcOptions {
            upload_max_age: Duration::from_secs(600),
            ..Default::default()
        },
    )
    .unwrap();
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
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_during_pushes_never_loses_a_referenced_blob() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let s = Arc::new(TestServer::start(&root).await);
    let base: Vec<Vec<u8>> = (0..12)
        .map(|i| format!("base layer {i}").repeat(50).into_bytes())
        .collect();
    for b in &base {
        s.push_blob("base", b).await;
    }
    age_everything(&root);

    gc_race(
        s,
        hoist_registry::StorageConfig::Filesystem(root),
        &base,
        4,
        6,
        3,
    )
    .await;
}

/// A Schema 1 manifest (left by an old docker-registry) cannot be parsed as
/// Schema 2, but its layers (`fsLayers[].blobSum`) must still be kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema1_manifests_keep_their_layers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let s = TestServer::start(root).await;
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
    let v2 = root.join("docker/registry/v2");
    let data = v2.join(format!("blobs/sha256/{}/{}/data", &md.hex()[..2], md.hex()));
    std::fs::create_dir_all(data.parent().unwrap()).unwrap();
    std::fs::write(&data, &m).unwrap();
    let rev = v2.join(format!(
        "repositories/old/_manifests/revisions/sha256/{}/link",
        md.hex()
    ));
    std::fs::create_dir_all(rev.parent().unwrap()).unwrap();
    std::fs::write(&rev, md.to_string()).unwrap();
    let cur = v2.join("repositories/old/_manifests/tags/latest/current/link");
    std::fs::create_dir_all(cur.parent().unwrap()).unwrap();
    std::fs::write(&cur, md.to_string()).unwrap();
    age_everything(root);

    for delete_untagged in [false, true] {
        let rep = collect(
            root,
            &GcOptions {
                delete_untagged,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(rep.manifests_deleted.is_empty());
        assert!(blob_exists(root, &layer));
        assert!(blob_exists(root, &md));
    }
    assert!(!blob_exists(root, &lonely));
    let s = TestServer::start(root).await;
    let r = s.req("GET", "/v2/old/manifests/latest").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.docker.distribution.manifest.v1+prettyjws")
    );
}

/// A client that HEADs a blob (and so will skip uploading it) refreshes it:
/// a collection right after keeps it for the manifest still to come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_checked_with_head_survives_the_next_collection() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let s = TestServer::start(root).await;
    let seen = s.push_blob("h", b"checked by a pusher").await;
    let unseen = s.push_blob("h", b"nobody asked").await;
    age_everything(root);
    assert_eq!(
        s.req("HEAD", &format!("/v2/h/blobs/{seen}")).await.status,
        200
    );
    // A GET (a pull) is not a claim.
    assert_eq!(
        s.req("GET", &format!("/v2/h/blobs/{unseen}")).await.status,
        200
    );
    collect(root, &GcOptions::default()).unwrap();
    assert!(blob_exists(root, &seen));
    assert!(!blob_exists(root, &unseen));
}
