//! What is particular to S3 storage, against a real S3 server (`s3s-fs`,
//! started per test on a loopback port): distribution's key layout in the
//! bucket under a prefix, what a bad configuration says, a client cut off
//! mid-upload, replicas sharing one bucket, and the pull-through cache
//! filling it. The API workflows and garbage collection run on S3 with every
//! other driver in `behaviours.rs` and `gc.rs`.

mod common;

use common::storage::{s3_config, BUCKET};
use common::*;
use hoist_oci::Digest;
use hoist_registry::{S3Config, ServerConfig, StorageConfig};
use hoist_testkit::S3Server;
use std::path::{Path, PathBuf};

/// A registry on the bucket under `prefix`; its `root` is the directory where
/// s3s-fs keeps the objects under that prefix (one file per key).
async fn start(s3: &S3Server, prefix: &str) -> TestServer {
    let cfg = ServerConfig::with_storage(StorageConfig::S3(s3_config(s3, prefix)));
    let root: PathBuf = s3.bucket_dir(BUCKET).join(prefix);
    TestServer::start_cfg(cfg, &root).await
}

/// Object keys under `dir` with `docker/registry/v2/` stripped.
fn keys(dir: &Path) -> Vec<String> {
    files_under(&dir.join("docker/registry/v2"))
        .into_iter()
        // s3s-fs keeps its own bookkeeping beside the objects.
        .filter(|k| !k.contains(".s3s-fs") && !k.starts_with(".") && !k.contains("/."))
        .collect()
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n as u32).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_bucket_holds_distributions_layout_under_the_prefix() {
    let s3 = S3Server::start(&[BUCKET]);
    let s = start(&s3, "some/prefix").await;
    let (m, _) = push_image(&s, "library/web", "v1", "layout").await;
    let config = r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"seed":"layout"}"#;
    let c = Digest::sha256(config.as_bytes());
    let l = Digest::sha256("layer bytes of layout".repeat(100).as_bytes());
    let blob = |d: &Digest| format!("blobs/sha256/{}/{}/data", &d.hex()[..2], d.hex());
    let repo = "repositories/library/web";
    let mut want = vec![
        blob(&c),
        blob(&l),
        blob(&m),
        format!("{repo}/_layers/sha256/{}/link", c.hex()),
        format!("{repo}/_layers/sha256/{}/link", l.hex()),
        format!("{repo}/_manifests/revisions/sha256/{}/link", m.hex()),
        format!("{repo}/_manifests/tags/v1/current/link"),
        format!("{repo}/_manifests/tags/v1/index/sha256/{}/link", m.hex()),
    ];
    want.sort();
    // hoist's own claim markers (for garbage collection) live apart, under
    // `_hoist/`, where distribution never looks.
    let layout: Vec<String> = keys(&s.root)
        .into_iter()
        .filter(|k| !k.starts_with("_hoist/"))
        .collect();
    assert_eq!(layout, want, "keys under some/prefix/docker/registry/v2");
    let link = std::fs::read_to_string(s.root.join(format!(
        "docker/registry/v2/{repo}/_manifests/tags/v1/current/link"
    )))
    .unwrap();
    assert_eq!(link, m.to_string());
    // The catalog and the manifest come back from the bucket.
    let cat = s.req("GET", "/v2/_catalog").await.json();
    assert_eq!(cat["repositories"], serde_json::json!(["library/web"]));
    let r = s.req("GET", "/v2/library/web/manifests/v1").await;
    assert_eq!(r.status, 200);
    assert_eq!(Digest::sha256(&r.body), m);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_bad_configuration_is_named() {
    let s3 = S3Server::start(&[BUCKET]);
    let serve = |cfg: S3Config| async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cfg = ServerConfig::with_storage(StorageConfig::S3(cfg));
        hoist_registry::serve(listener, cfg, std::future::pending())
            .await
            .expect_err("the server must refuse to start")
            .to_string()
    };
    let mut cfg = s3_config(&s3, "");
    cfg.bucket = "no-such-bucket".into();
    let e = serve(cfg).await;
    assert!(
        e.contains("s3://no-such-bucket/") && e.contains("does not answer"),
        "{e}"
    );

    let mut cfg = s3_config(&s3, "");
    cfg.secret_access_key = "wrong".into();
    let e = serve(cfg).await;
    assert!(
        e.contains("check the endpoint, the bucket and the credentials"),
        "{e}"
    );

    // Nothing listens there: reported after a few quick retries.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = s3_config(&s3, "");
    cfg.endpoint = Some(format!("http://127.0.0.1:{closed}"));
    let t0 = std::time::Instant::now();
    let e = serve(cfg).await;
    assert!(e.contains("does not answer"), "{e}");
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(40),
        "{:?}",
        t0.elapsed()
    );

    let mut cfg = s3_config(&s3, "");
    cfg.endpoint = Some("127.0.0.1:1".into());
    let e = serve(cfg).await;
    assert!(e.contains("is not a URL"), "{e}");

    for prefix in ["a/../b", "a//b", "./x"] {
        let e = serve(s3_config(&s3, prefix)).await;
        assert!(e.contains("is not a plain path"), "{prefix}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_client_disconnects_mid_upload_and_resumes() {
    use tokio::io::AsyncWriteExt;
    let s3 = S3Server::start(&[BUCKET]);
    let s = start(&s3, "").await;
    let data = pattern(100_000);
    let d = Digest::sha256(&data);
    let r = s.req("POST", "/v2/dc/blobs/uploads/").await;
    let loc = r.header("location").unwrap().to_owned();

    // Announce 100000 bytes, send 40000, hang up.
    {
        let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        let head = format!(
            "PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nContent-Range: 0-99999\r\n\r\n"
        );
        c.write_all(head.as_bytes()).await.unwrap();
        c.write_all(&data[..40_000]).await.unwrap();
        c.flush().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // The session keeps what arrived, as one part, once the server noticed.
    let mut start_at = None;
    for _ in 0..100 {
        let st = s.req("GET", &loc).await;
        assert_eq!(st.status, 204);
        let end: u64 = st.header("range").unwrap()[2..].parse().unwrap();
        let from = if end == 0 { 0 } else { end + 1 };
        let r = s
            .send(
                "PATCH",
                &loc,
                &[("content-range", &format!("{from}-99999"))],
                data[from as usize..].to_vec(),
            )
            .await;
        if r.status == 202 {
            start_at = Some(from);
            break;
        }
        // 416 while the cut request still holds the session.
        assert_eq!(r.status, 416, "{}", r.text());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let from = start_at.expect("could not resume the upload");
    assert!(from <= 40_000);
    let r = s.send("PUT", &format!("{loc}?digest={d}"), &[], "").await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(s.req("GET", &format!("/v2/dc/blobs/{d}")).await.body == data);

    // A monolithic push cut short commits nothing and leaves no session.
    {
        let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        let other = Digest::sha256(b"never completes");
        let head = format!(
            "POST /v2/dc2/blobs/uploads/?digest={other} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
        );
        c.write_all(head.as_bytes()).await.unwrap();
        c.write_all(&[0u8; 1000]).await.unwrap();
    }
    let uploads = |root: &Path| {
        keys(root)
            .into_iter()
            .filter(|k| k.starts_with("repositories/dc2/_uploads"))
            .collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !uploads(&s.root).is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(uploads(&s.root).is_empty(), "{:?}", uploads(&s.root));
    let blobs: Vec<_> = keys(&s.root)
        .into_iter()
        .filter(|k| k.starts_with("blobs/"))
        .collect();
    assert_eq!(blobs.len(), 1, "only the first upload's blob: {blobs:?}");
    s.stop().await;
}

/// Two replicas on one bucket, as behind a load balancer: an upload started
/// on one goes on chunk by chunk on whichever replica each request reaches,
/// and what one pushes the other serves at once (tags, manifests, blobs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_two_replicas_share_uploads_and_content() {
    let s3 = S3Server::start(&[BUCKET]);
    let a = start(&s3, "shared").await;
    let b = start(&s3, "shared").await;
    let data = pattern(600_000);
    let d = Digest::sha256(&data);
    let r = a.req("POST", "/v2/lb/app/blobs/uploads/").await;
    assert_eq!(r.status, 202);
    let loc = r.header("location").unwrap().to_owned();
    for (i, s) in [&b, &a, &b].into_iter().enumerate() {
        let (from, to) = (i * 200_000, (i + 1) * 200_000);
        let range = format!("{from}-{}", to - 1);
        let r = s
            .send(
                "PATCH",
                &loc,
                &[("content-range", range.as_str())],
                data[from..to].to_vec(),
            )
            .await;
        assert_eq!(r.status, 202, "chunk {i}: {}", r.text());
        assert_eq!(r.header("range"), Some(format!("0-{}", to - 1).as_str()));
    }
    let r = a.send("PUT", &format!("{loc}?digest={d}"), &[], "").await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(b.req("GET", &format!("/v2/lb/app/blobs/{d}")).await.body == data);

    let (m, _) = push_image(&b, "lb/app", "v1", "replica").await;
    let r = a.req("GET", "/v2/lb/app/manifests/v1").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("docker-content-digest"),
        Some(m.to_string().as_str())
    );
    let r = a.req("GET", "/v2/lb/app/tags/list").await;
    assert_eq!(r.json()["tags"], serde_json::json!(["v1"]));
    a.stop().await;
    b.stop().await;
}

/// The pull-through cache on S3 storage: manifests and blobs fetched from
/// the upstream land in the bucket (no upload session left), are served from
/// there once the upstream is gone, and a push makes the repository local.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_pull_through_cache_fills_the_bucket() {
    let s3 = S3Server::start(&[BUCKET]);
    let up_dir = tempfile::tempdir().unwrap();
    let up = TestServer::start(up_dir.path()).await;
    let (digest, bytes) = push_image(&up, "lib/app", "v1", "mirrored").await;
    let m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let mut cfg = ServerConfig::with_storage(StorageConfig::S3(s3_config(&s3, "px")));
    cfg.proxy =
        Some(hoist_registry::ProxyConfig::from_specs(&[format!("http://{}", up.addr)]).unwrap());
    let px = TestServer::start_cfg(cfg, &s3.bucket_dir(BUCKET).join("px")).await;

    let blobs = [
        m["config"]["digest"].as_str().unwrap().to_owned(),
        m["layers"][0]["digest"].as_str().unwrap().to_owned(),
    ];
    async fn pull(px: &TestServer, bytes: &[u8], blobs: &[String]) {
        let r = px.req("GET", "/v2/lib/app/manifests/v1").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.body, bytes);
        for b in blobs {
            let r = px.req("GET", &format!("/v2/lib/app/blobs/{b}")).await;
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(Digest::sha256(&r.body).to_string(), *b);
        }
    }
    pull(&px, &bytes, &blobs).await;
    let k = keys(&px.root);
    for b in &blobs {
        assert!(
            k.iter()
                .any(|k| k.starts_with("blobs/") && k.contains(&b[7..])),
            "blob {b} not in the bucket: {k:?}"
        );
    }
    assert!(!k.iter().any(|k| k.contains("_uploads")), "{k:?}");
    let d = digest.to_string();
    assert!(
        k.iter().any(|k| k.contains("_manifests/tags/v1/current")),
        "{k:?}"
    );

    up.stop().await;
    pull(&px, &bytes, &blobs).await;
    let r = px.req("GET", &format!("/v2/lib/app/manifests/{d}")).await;
    assert_eq!(r.status, 200);

    push_image(&px, "lib/app", "local", "pushed").await;
    assert!(keys(&px.root)
        .iter()
        .any(|k| k.ends_with("lib/app/_hoist_pushed")));
    let r = px.req("GET", "/v2/lib/app/tags/list").await;
    assert_eq!(r.json()["tags"], serde_json::json!(["local", "v1"]));
    px.stop().await;
}
