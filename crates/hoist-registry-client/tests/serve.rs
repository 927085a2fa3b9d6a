//! The client against a real registry server: an in-process `hoist serve`.

mod common;

use bytes::Bytes;
use common::{opts, serve, Image};
use hoist_oci::{media_type, Descriptor, Digest};
use hoist_registry_client::{Partial, RegistryClient, UploadBody};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

async fn push_image(c: &RegistryClient, repo: &str, tag: &str, img: &Image) {
    c.push_blob(
        repo,
        &img.config_desc(),
        UploadBody::Bytes(Bytes::from(img.config.clone())),
    )
    .await
    .unwrap();
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(b"junk before").unwrap();
    f.write_all(&img.layer).unwrap();
    let body = UploadBody::File {
        file: f,
        offset: 11,
        len: img.layer.len() as u64,
    };
    c.push_blob_chunked(repo, &img.layer_desc(), body, 100_000)
        .await
        .unwrap();
    c.put_manifest(repo, tag, &img.manifest, media_type::OCI_MANIFEST)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_pull_blobs_and_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path()).await;
    let c = RegistryClient::new(&s.addr, &opts()).unwrap();
    c.ping().await.unwrap();
    assert_eq!(
        c.base_url().unwrap(),
        format!("http://{}", s.addr),
        "plain HTTP is the fallback on loopback"
    );
    let img = Image::new(1 << 20);
    assert_eq!(
        c.blob_size("app", &img.layer_desc().digest).await.unwrap(),
        None
    );
    push_image(&c, "app", "v1", &img).await;
    assert_eq!(
        c.blob_size("app", &img.layer_desc().digest).await.unwrap(),
        Some(img.layer.len() as u64)
    );

    let m = c.get_manifest("app", "v1").await.unwrap();
    assert_eq!(m.bytes, img.manifest);
    assert_eq!(m.media_type, media_type::OCI_MANIFEST);
    assert_eq!(m.digest, img.manifest_digest());
    let by_digest = c.get_manifest("app", &m.digest.to_string()).await.unwrap();
    assert_eq!(by_digest, m);
    let head = c.head_manifest("app", "v1").await.unwrap().unwrap();
    assert_eq!(head.digest, m.digest);
    assert_eq!(head.size, img.manifest.len() as u64);
    assert!(c.head_manifest("app", "nope").await.unwrap().is_none());

    // 1 MiB in 64 KiB ranges, four at once, written at their offsets.
    let out = tempfile::tempfile().unwrap();
    let mut partial = Partial::new(hoist_oci::Algorithm::Sha256);
    let seen = AtomicU64::new(0);
    c.fetch_blob("app", &img.layer_desc(), &out, &mut partial, &|n| {
        seen.fetch_add(n, Ordering::Relaxed);
    })
    .await
    .unwrap();
    assert_eq!(partial.offset, img.layer.len() as u64);
    assert_eq!(seen.load(Ordering::Relaxed), img.layer.len() as u64);
    let mut got = Vec::new();
    use std::io::{Read, Seek};
    let mut out = out;
    out.rewind().unwrap();
    out.read_to_end(&mut got).unwrap();
    assert!(got == img.layer, "the ranged fetch wrote other bytes");

    // A stream from an offset.
    let mut st = c
        .open_blob("app", &img.layer_desc().digest, 1000)
        .await
        .unwrap();
    let mut streamed = Vec::new();
    while let Some(b) = st.chunk().await.unwrap() {
        streamed.extend_from_slice(&b);
    }
    assert!(streamed == img.layer[1000..]);

    c.delete_manifest("app", &m.digest).await.unwrap();
    let e = c
        .get_manifest("app", &m.digest.to_string())
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
    let text = e.to_string();
    assert!(
        text.contains(&s.addr)
            && text.contains("repository app")
            && text.contains("MANIFEST_UNKNOWN"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_is_mounted_from_another_repository() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path()).await;
    let c = RegistryClient::new(&s.addr, &opts()).unwrap();
    let img = Image::new(4096);
    push_image(&c, "src/app", "v1", &img).await;
    let d = img.layer_desc().digest;
    assert!(c.mount_blob("dst/app", &d, "src/app").await.unwrap());
    assert_eq!(c.blob_size("dst/app", &d).await.unwrap(), Some(4096));
    // Nothing to mount from: the registry opens an upload, which is cancelled.
    let absent = Digest::sha256(b"absent");
    assert!(!c.mount_blob("dst/app", &absent, "src/app").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_and_catalog_follow_link_pages() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path()).await;
    let c = RegistryClient::new(&s.addr, &opts()).unwrap();
    let img = Image::new(100);
    push_image(&c, "one", "a", &img).await;
    for t in ["b", "c", "d", "e"] {
        c.put_manifest("one", t, &img.manifest, media_type::OCI_MANIFEST)
            .await
            .unwrap();
    }
    push_image(&c, "two", "x", &img).await;
    assert_eq!(
        c.list_tags("one", Some(2)).await.unwrap(),
        ["a", "b", "c", "d", "e"]
    );
    assert_eq!(c.list_tags("one", None).await.unwrap().len(), 5);
    assert_eq!(c.catalog(Some(1)).await.unwrap(), ["one", "two"]);
    let e = c.list_tags("absent", None).await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path()).await;
    let c = RegistryClient::new(&s.addr, &opts()).unwrap();
    let img = Image::new(100);
    push_image(&c, "app", "v1", &img).await;
    let subject = Descriptor::new(
        media_type::OCI_MANIFEST,
        img.manifest_digest(),
        img.manifest.len() as u64,
    );
    let empty = b"{}".to_vec();
    c.push_blob(
        "app",
        &Descriptor::new(media_type::OCI_EMPTY, Digest::sha256(&empty), 2),
        UploadBody::Bytes(empty.clone().into()),
    )
    .await
    .unwrap();
    let sig = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "artifactType": "application/vnd.example.sig",
        "config": {"mediaType": media_type::OCI_EMPTY, "digest": Digest::sha256(&empty), "size": 2},
        "layers": [{"mediaType": media_type::OCI_EMPTY, "digest": Digest::sha256(&empty), "size": 2}],
        "subject": subject,
    })
    .to_string();
    let sd = Digest::sha256(sig.as_bytes());
    c.put_manifest(
        "app",
        &sd.to_string(),
        sig.as_bytes(),
        media_type::OCI_MANIFEST,
    )
    .await
    .unwrap();
    let r = c
        .referrers("app", &img.manifest_digest(), None)
        .await
        .unwrap();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].digest, sd);
    let r = c
        .referrers("app", &img.manifest_digest(), Some("application/other"))
        .await
        .unwrap();
    assert!(r.is_empty());
}

/// The blocking facade from a plain thread, with its own runtime.
#[test]
fn the_blocking_facade_pushes_and_pulls() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = rt.block_on(serve(dir.path()));
    let c = hoist_registry_client::blocking::RegistryClient::new(&s.addr, &opts()).unwrap();
    let img = Image::new(300_000);
    let sent = std::cell::Cell::new(0u64);
    c.push_blob(
        "b",
        &img.layer_desc(),
        UploadBody::Reader(Box::new(std::io::Cursor::new(img.layer.clone()))),
        &|n| sent.set(sent.get() + n),
    )
    .unwrap();
    assert_eq!(sent.get(), 300_000, "progress does not add up to the blob");
    let mut r = c.open_blob("b", &img.layer_desc().digest, 0).unwrap();
    assert_eq!(r.len(), Some(300_000));
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut r, &mut got).unwrap();
    assert!(got == img.layer);
    let out = tempfile::tempfile().unwrap();
    let mut p = Partial::new(hoist_oci::Algorithm::Sha256);
    c.fetch_blob("b", &img.layer_desc(), &out, &mut p, &|_| {})
        .unwrap();
    assert_eq!(p.offset, 300_000);
    drop(c);
    drop(s);
}

/// Docker Hub's mirrors answer pulls first (here a hoist serve; the
/// machine is offline, so Docker Hub itself never could).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_hub_pulls_go_to_its_mirrors_first() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path()).await;
    let direct = RegistryClient::new(&s.addr, &opts()).unwrap();
    let img = Image::new(200_000);
    push_image(&direct, "library/mirrored", "v1", &img).await;
    let o = hoist_registry_client::Options {
        registry_mirrors: vec![format!("http://{}", s.addr)],
        retries: 0,
        ..opts()
    };
    let hub = RegistryClient::new("docker.io", &o).unwrap();
    let m = hub.get_manifest("library/mirrored", "v1").await.unwrap();
    assert_eq!(m.bytes, img.manifest);
    let out = tempfile::tempfile().unwrap();
    let mut p = Partial::new(hoist_oci::Algorithm::Sha256);
    hub.fetch_blob("library/mirrored", &img.layer_desc(), &out, &mut p, &|_| {})
        .await
        .unwrap();
    assert_eq!(p.offset, 200_000);
    let e = hub.get_manifest("library/absent", "v1").await.unwrap_err();
    assert!(e.to_string().contains("docker.io"), "{e}");
}
