//! The registry on S3 storage, against a real S3 server (`s3s-fs`, started
//! per test on a loopback port): the API workflows, distribution's key
//! layout in the bucket, upload sessions across a restart, and what a bad
//! configuration says.

mod common;

use common::*;
use hoist_oci::Digest;
use hoist_registry::{S3Config, ServerConfig, StorageConfig};
use hoist_testkit::{S3Server, S3_ACCESS_KEY, S3_SECRET_KEY};
use std::path::{Path, PathBuf};

const BUCKET: &str = "registry";

fn s3_config(s3: &S3Server, prefix: &str) -> S3Config {
    S3Config {
        bucket: BUCKET.to_owned(),
        endpoint: Some(s3.endpoint()),
        region: "us-east-1".to_owned(),
        prefix: prefix.to_owned(),
        access_key_id: S3_ACCESS_KEY.to_owned(),
        secret_access_key: S3_SECRET_KEY.to_owned(),
        session_token: None,
    }
}

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
async fn s3_monolithic_and_chunked_push_then_pull_with_range() {
    let s3 = S3Server::start(&[BUCKET]);
    let s = start(&s3, "").await;

    // Monolithic: POST with ?digest and the body.
    let small = b"hello s3".to_vec();
    let d = s.push_blob("app", &small).await;
    let r = s.req("GET", &format!("/v2/app/blobs/{d}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, small);
    assert_eq!(
        r.header("docker-content-digest"),
        Some(d.to_string().as_str())
    );

    // Chunked, big enough that a chunk is itself a multipart upload (over
    // the 8 MiB part buffer) and the commit concatenates several parts.
    let data = pattern(9 << 20 | 12345);
    let d = Digest::sha256(&data);
    let r = s.req("POST", "/v2/app/blobs/uploads/").await;
    assert_eq!(r.status, 202);
    let loc = r.header("location").unwrap().to_owned();
    let mut off = 0;
    for chunk in [
        &data[..(9 << 20)],
        &data[(9 << 20)..(9 << 20) + 5000],
        &data[(9 << 20) + 5000..],
    ] {
        let range = format!("{}-{}", off, off + chunk.len() - 1);
        let r = s
            .send(
                "PATCH",
                &loc,
                &[("content-range", range.as_str())],
                chunk.to_vec(),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.text());
        off += chunk.len();
        assert_eq!(r.header("range"), Some(format!("0-{}", off - 1).as_str()));
    }
    // Out of order: 416 with the current range, nothing appended.
    let r = s
        .send("PATCH", &loc, &[("content-range", "0-9")], vec![0u8; 10])
        .await;
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("range"),
        Some(format!("0-{}", data.len() - 1).as_str())
    );
    let r = s.send("PUT", &format!("{loc}?digest={d}"), &[], "").await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(s.req("GET", &loc).await.status, 404);

    let head = s.req("HEAD", &format!("/v2/app/blobs/{d}")).await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(data.len().to_string().as_str())
    );
    assert!(head.body.is_empty());
    let full = s.req("GET", &format!("/v2/app/blobs/{d}")).await;
    assert_eq!(full.status, 200);
    assert!(full.body == data, "the whole blob comes back");
    let part = s
        .send(
            "GET",
            &format!("/v2/app/blobs/{d}"),
            &[("range", "bytes=9437000-9437999")],
            "",
        )
        .await;
    assert_eq!(part.status, 206);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 9437000-9437999/{}", data.len()).as_str())
    );
    assert_eq!(part.body, data[9_437_000..9_438_000]);
    let tail = s
        .send(
            "GET",
            &format!("/v2/app/blobs/{d}"),
            &[("range", "bytes=-10")],
            "",
        )
        .await;
    assert_eq!(tail.body, data[data.len() - 10..]);
    let beyond = s
        .send(
            "GET",
            &format!("/v2/app/blobs/{d}"),
            &[("range", "bytes=99999999-")],
            "",
        )
        .await;
    assert_eq!(beyond.status, 416);
    s.stop().await;
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
    assert_eq!(
        keys(&s.root),
        want,
        "keys under some/prefix/docker/registry/v2"
    );
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
async fn s3_tags_list_and_deletes() {
    let s3 = S3Server::start(&[BUCKET]);
    let s = start(&s3, "").await;
    let (m1, _) = push_image(&s, "r", "one", "a").await;
    let (m2, _) = push_image(&s, "r", "two", "b").await;
    push_image(&s, "r", "three", "b").await;
    let tags = s.req("GET", "/v2/r/tags/list").await.json();
    assert_eq!(tags["tags"], serde_json::json!(["one", "three", "two"]));
    let page = s.req("GET", "/v2/r/tags/list?n=1&last=one").await;
    assert_eq!(page.json()["tags"], serde_json::json!(["three"]));
    assert!(page.header("link").is_some());

    // A tag alone.
    assert_eq!(s.req("DELETE", "/v2/r/manifests/three").await.status, 202);
    assert_eq!(s.req("GET", "/v2/r/manifests/three").await.status, 404);
    assert_eq!(s.req("GET", "/v2/r/manifests/two").await.status, 200);
    // A manifest by digest, with its tags.
    assert_eq!(
        s.req("DELETE", &format!("/v2/r/manifests/{m2}"))
            .await
            .status,
        202
    );
    assert_eq!(s.req("GET", "/v2/r/manifests/two").await.status, 404);
    assert_eq!(
        s.req("GET", &format!("/v2/r/manifests/{m2}")).await.status,
        404
    );
    assert_eq!(
        s.req("GET", &format!("/v2/r/manifests/{m1}")).await.status,
        200
    );
    let tags = s.req("GET", "/v2/r/tags/list").await.json();
    assert_eq!(tags["tags"], serde_json::json!(["one"]));
    // A blob (its link; the bytes stay for other repositories).
    let d = s.push_blob("r", b"to delete").await;
    assert_eq!(
        s.req("DELETE", &format!("/v2/r/blobs/{d}")).await.status,
        202
    );
    assert_eq!(s.req("GET", &format!("/v2/r/blobs/{d}")).await.status, 404);
    assert_eq!(
        s.req("DELETE", &format!("/v2/r/blobs/{d}")).await.status,
        404
    );
    assert_eq!(
        s.req("GET", "/v2/nothing/tags/list").await.code(),
        "NAME_UNKNOWN"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_upload_survives_a_restart() {
    let s3 = S3Server::start(&[BUCKET]);
    let data = pattern(300_000);
    let d = Digest::sha256(&data);
    let loc;
    {
        let s = start(&s3, "").await;
        let r = s.req("POST", "/v2/resume/blobs/uploads/").await;
        loc = r.header("location").unwrap().to_owned();
        let r = s.send("PATCH", &loc, &[], data[..100_000].to_vec()).await;
        assert_eq!(r.status, 202, "{}", r.text());
        s.stop().await;
    }
    let s = start(&s3, "").await;
    let st = s.req("GET", &loc).await;
    assert_eq!(st.status, 204);
    assert_eq!(st.header("range"), Some("0-99999"));
    // The hash state was saved in distribution's place and format.
    let id = st.header("docker-upload-uuid").unwrap();
    let hs = s.root.join(format!(
        "docker/registry/v2/repositories/resume/_uploads/{id}/hashstates/sha256/100000"
    ));
    assert_eq!(std::fs::read(hs).unwrap().len(), 108);
    let r = s
        .send(
            "PATCH",
            &loc,
            &[("content-range", "100000-299999")],
            data[100_000..].to_vec(),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let r = s.send("PUT", &format!("{loc}?digest={d}"), &[], "").await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(s.req("GET", &format!("/v2/resume/blobs/{d}")).await.body == data);
    // Committed: no upload keys left.
    assert!(
        !keys(&s.root).iter().any(|k| k.contains("_uploads")),
        "{:?}",
        keys(&s.root)
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_digest_mismatch_commits_nothing() {
    let s3 = S3Server::start(&[BUCKET]);
    let s = start(&s3, "").await;
    let wrong = Digest::sha256(b"something else");
    // Monolithic.
    let r = s
        .send(
            "POST",
            &format!("/v2/a/blobs/uploads/?digest={wrong}"),
            &[],
            b"actual".to_vec(),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "DIGEST_INVALID");
    // Chunked.
    let r = s.req("POST", "/v2/a/blobs/uploads/").await;
    let loc = r.header("location").unwrap().to_owned();
    assert_eq!(
        s.send("PATCH", &loc, &[], b"chunk one".to_vec())
            .await
            .status,
        202
    );
    let r = s
        .send(
            "PUT",
            &format!("{loc}?digest={wrong}"),
            &[],
            b"two".to_vec(),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "DIGEST_INVALID");
    assert_eq!(s.req("GET", &loc).await.status, 404);
    assert_eq!(
        s.req("HEAD", &format!("/v2/a/blobs/{wrong}")).await.status,
        404
    );
    for actual in [&b"actual"[..], b"chunk onetwo"] {
        let d = Digest::sha256(actual);
        assert_eq!(s.req("HEAD", &format!("/v2/a/blobs/{d}")).await.status, 404);
    }
    let left = keys(&s.root);
    assert!(
        !left
            .iter()
            .any(|k| k.starts_with("blobs/") || k.contains("_uploads")),
        "nothing committed, no session left: {left:?}"
    );
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

    let mut cfg = s3_config(&s3, "");
    cfg.endpoint = Some("127.0.0.1:1".into());
    let e = serve(cfg).await;
    assert!(e.contains("is not a URL"), "{e}");

    for prefix in ["a/../b", "a//b", "./x"] {
        let e = serve(s3_config(&s3, prefix)).await;
        assert!(e.contains("is not a plain path"), "{prefix}: {e}");
    }
}
