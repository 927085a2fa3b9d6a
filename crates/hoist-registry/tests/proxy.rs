//! The pull-through cache (`--proxy`) with a real `hoist serve` as the
//! upstream: pull through, serve from the cache when the upstream is down,
//! follow a moved tag, prefixes, pushes that make a repository local, the
//! tags union, concurrent fills. Hostile upstreams (a tiny hand-rolled
//! server that answers one wrong thing) for wrong bytes, a truncated body
//! and a lying digest header: nothing is stored and the error says why.

mod common;

use bytes::Bytes;
use common::*;
use hoist_oci::Digest;
use hoist_registry::ProxyConfig;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A `hoist serve` whose upstreams are `specs` (`--proxy` values).
async fn start_proxy(root: &Path, specs: &[String]) -> TestServer {
    let cfg = ProxyConfig::from_specs(specs).unwrap();
    TestServer::start_with(root, move |c| c.proxy = Some(cfg)).await
}

fn url(s: &TestServer) -> String {
    format!("http://{}", s.addr)
}

/// GET that tolerates a body broken off: (status, body or the body's error).
async fn get_body(addr: SocketAddr, path: &str) -> (u16, Result<Bytes, String>) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .uri(path)
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| e.to_string());
    (status, body)
}

/// Blob files, temporary files and upload sessions of a registry root.
fn stored_blobs(root: &Path) -> Vec<String> {
    files_under(root)
        .into_iter()
        .filter(|f| f.contains("/blobs/") || f.contains("_hoist/tmp") || f.contains("/_uploads/"))
        .collect()
}

fn blob_path(root: &Path, d: &Digest) -> std::path::PathBuf {
    root.join("docker/registry/v2/blobs/sha256")
        .join(&d.hex()[..2])
        .join(d.hex())
        .join("data")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_through_and_serves_the_cache_when_the_upstream_is_down() {
    let (up_dir, px_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let up = TestServer::start(up_dir.path()).await;
    let (digest, bytes) = push_image(&up, "lib/app", "v1", "one").await;
    let m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let px = start_proxy(px_dir.path(), &[url(&up)]).await;

    let r = px.req("GET", "/v2/lib/app/manifests/v1").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, bytes, "the manifest bytes changed on the way");
    assert_eq!(
        r.header("docker-content-digest"),
        Some(digest.to_string().as_str())
    );
    let mut blobs = vec![m["config"]["digest"].as_str().unwrap().to_owned()];
    blobs.push(m["layers"][0]["digest"].as_str().unwrap().to_owned());
    // A HEAD of a blob not cached yet: the upstream's size, nothing stored.
    let layer = &m["layers"][0];
    let r = px
        .req(
            "HEAD",
            &format!("/v2/lib/app/blobs/{}", layer["digest"].as_str().unwrap()),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some(layer["size"].to_string().as_str())
    );
    assert!(stored_blobs(px_dir.path())
        .iter()
        .all(|f| !f.contains(&layer["digest"].as_str().unwrap()[7..])));
    for b in &blobs {
        let r = px.req("GET", &format!("/v2/lib/app/blobs/{b}")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(Digest::sha256(&r.body).to_string(), *b);
        let d: Digest = b.parse().unwrap();
        assert!(
            blob_path(px_dir.path(), &d).is_file(),
            "blob {b} not cached"
        );
    }
    // The cache is in distribution's layout: tag link and revision.
    let tag_link = px_dir
        .path()
        .join("docker/registry/v2/repositories/lib/app/_manifests/tags/v1/current/link");
    assert_eq!(
        std::fs::read_to_string(tag_link).unwrap(),
        digest.to_string()
    );

    up.stop().await;
    let r = px.req("GET", "/v2/lib/app/manifests/v1").await;
    assert_eq!(r.status, 200, "cached tag not served: {}", r.text());
    assert_eq!(r.body, bytes);
    let r = px.req("HEAD", "/v2/lib/app/manifests/v1").await;
    assert_eq!(r.status, 200);
    for b in &blobs {
        let r = px.req("GET", &format!("/v2/lib/app/blobs/{b}")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = px.req("GET", "/v2/lib/app/tags/list").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["tags"], serde_json::json!(["v1"]));
    let r = px
        .req("GET", &format!("/v2/lib/app/manifests/{digest}"))
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_upstream_tag_is_followed_and_digests_are_fetched() {
    let (up_dir, px_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let up = TestServer::start(up_dir.path()).await;
    let (d1, _) = push_image(&up, "app", "v1", "one").await;
    let px = start_proxy(px_dir.path(), &[url(&up)]).await;
    let r = px.req("GET", "/v2/app/manifests/v1").await;
    assert_eq!(
        r.header("docker-content-digest"),
        Some(d1.to_string().as_str())
    );
    let (d2, b2) = push_image(&up, "app", "v1", "two").await;
    let r = px.req("GET", "/v2/app/manifests/v1").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("docker-content-digest"),
        Some(d2.to_string().as_str())
    );
    assert_eq!(r.body, b2);
    // By digest: the old one is local, a new one comes from the upstream.
    let (d3, b3) = push_image(&up, "app", "v3", "three").await;
    let r = px.req("GET", &format!("/v2/app/manifests/{d1}")).await;
    assert_eq!(r.status, 200);
    let r = px.req("GET", &format!("/v2/app/manifests/{d3}")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, b3);
    // Unknown upstream: its 404 and its code come through, naming it.
    let r = px.req("GET", "/v2/app/manifests/nope").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "MANIFEST_UNKNOWN");
    assert!(r.text().contains(&url(&up)), "{}", r.text());
    assert_eq!(r.json()["errors"][0]["detail"]["upstream_status"], 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_route_to_their_upstream_and_the_rest_is_local() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let hub = TestServer::start(dirs[0].path()).await;
    let ghcr = TestServer::start(dirs[1].path()).await;
    let (dh, _) = push_image(&hub, "library/alpine", "3", "hub").await;
    let (dg, _) = push_image(&ghcr, "org/tool", "1", "ghcr").await;
    let px = start_proxy(
        dirs[2].path(),
        &[
            format!("docker.io={}", url(&hub)),
            format!("ghcr.io={}", url(&ghcr)),
        ],
    )
    .await;
    let r = px
        .req("GET", "/v2/docker.io/library/alpine/manifests/3")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("docker-content-digest"),
        Some(dh.to_string().as_str())
    );
    let r = px.req("GET", "/v2/ghcr.io/org/tool/manifests/1").await;
    assert_eq!(
        r.header("docker-content-digest"),
        Some(dg.to_string().as_str())
    );
    // Outside every prefix: a plain local registry (no upstream asked).
    let r = px.req("GET", "/v2/library/alpine/manifests/3").await;
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("upstream"), "{}", r.text());
    let r = px
        .req("GET", "/v2/docker.io/library/alpine/tags/list")
        .await;
    assert_eq!(r.json()["tags"], serde_json::json!(["3"]));
    // The catalog lists what is cached, under the local names.
    let r = px.req("GET", "/v2/_catalog").await;
    assert_eq!(
        r.json()["repositories"],
        serde_json::json!(["docker.io/library/alpine", "ghcr.io/org/tool"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_repository_is_local_and_its_tags_win() {
    let (up_dir, px_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let up = TestServer::start(up_dir.path()).await;
    push_image(&up, "app", "v1", "upstream").await;
    push_image(&up, "app", "v2", "upstream2").await;
    let px = start_proxy(px_dir.path(), &[url(&up)]).await;
    // A push to a mirrored name works, and from then on the repo is local.
    let (mine, bytes) = push_image(&px, "app", "v1", "mine").await;
    let r = px.req("GET", "/v2/app/manifests/v1").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("docker-content-digest"),
        Some(mine.to_string().as_str())
    );
    assert_eq!(r.body, bytes);
    let r = px.req("GET", "/v2/app/manifests/v2").await;
    assert_eq!(
        r.status,
        404,
        "a local repository went upstream: {}",
        r.text()
    );
    let r = px.req("GET", "/v2/app/tags/list").await;
    assert_eq!(r.json()["tags"], serde_json::json!(["v1"]));
    // Pushing to a new repository works with the upstream down too.
    up.stop().await;
    let (d, _) = push_image(&px, "fresh/repo", "v1", "fresh").await;
    let r = px.req("GET", "/v2/fresh/repo/manifests/v1").await;
    assert_eq!(
        r.header("docker-content-digest"),
        Some(d.to_string().as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_list_is_local_and_upstream_together() {
    let (up_dir, px_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let up = TestServer::start(up_dir.path()).await;
    push_image(&up, "app", "old", "old").await;
    let px = start_proxy(px_dir.path(), &[url(&up)]).await;
    assert_eq!(px.req("GET", "/v2/app/manifests/old").await.status, 200);
    assert_eq!(up.req("DELETE", "/v2/app/manifests/old").await.status, 202);
    push_image(&up, "app", "new", "new").await;
    let r = px.req("GET", "/v2/app/tags/list?n=1").await;
    assert_eq!(r.json()["tags"], serde_json::json!(["new"]));
    assert!(r.header("link").is_some());
    let r = px.req("GET", "/v2/app/tags/list").await;
    assert_eq!(r.json()["tags"], serde_json::json!(["new", "old"]));
    // Never seen anywhere: the upstream's NAME_UNKNOWN.
    let r = px.req("GET", "/v2/nothing/tags/list").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "NAME_UNKNOWN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_of_one_missing_blob_all_get_it_intact() {
    let (up_dir, px_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let up = TestServer::start(up_dir.path()).await;
    let big: Vec<u8> = (0..6u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
    let d = up.push_blob("app", &big).await;
    let px = start_proxy(px_dir.path(), &[url(&up)]).await;
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let addr = px.addr;
        let path = format!("/v2/app/blobs/{d}");
        tasks.push(tokio::spawn(async move { get_body(addr, &path).await }));
    }
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200);
        let body = body.expect("a complete body");
        assert_eq!(Digest::sha256(&body), d, "a client got corrupt bytes");
    }
    assert!(blob_path(px_dir.path(), &d).is_file());
    assert!(
        !files_under(px_dir.path())
            .iter()
            .any(|f| f.contains("_hoist/tmp")),
        "temporary files left behind"
    );
    let r = px.req("HEAD", &format!("/v2/app/blobs/{d}")).await;
    assert_eq!(
        r.header("content-length"),
        Some(big.len().to_string().as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_mid_blob_still_leaves_it_cached() {
    let (up_dir, px_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let up = TestServer::start(up_dir.path()).await;
    let big: Vec<u8> = (0..16u32 << 20).map(|i| (i % 253) as u8).collect();
    let d = up.push_blob("app", &big).await;
    let px = start_proxy(px_dir.path(), &[url(&up)]).await;
    let mut c = TcpStream::connect(px.addr).await.unwrap();
    c.write_all(format!("GET /v2/app/blobs/{d} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 64 << 10];
    let n = c.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    drop(c);
    let path = blob_path(px_dir.path(), &d);
    for _ in 0..200 {
        if path.is_file() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        big,
        "the fill did not finish"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_gives_a_clear_error_for_what_is_not_cached() {
    let dir = tempfile::tempdir().unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let up = format!("http://{closed}");
    let px = start_proxy(dir.path(), std::slice::from_ref(&up)).await;
    for path in ["/v2/app/manifests/v1", "/v2/app/tags/list"] {
        let r = px.req("GET", path).await;
        assert_eq!(r.status, 502, "{path}: {}", r.text());
        assert_eq!(r.code(), "UNAVAILABLE");
        assert!(
            r.text().contains(&up),
            "the error does not name the upstream: {}",
            r.text()
        );
    }
    let d = Digest::sha256(b"never");
    let r = px.req("GET", &format!("/v2/app/blobs/{d}")).await;
    assert_eq!(r.status, 502);
    assert!(r.text().contains(&up));
    // A HEAD (how a pushing client probes) says "unknown", not "broken".
    assert_eq!(
        px.req("HEAD", &format!("/v2/app/blobs/{d}")).await.status,
        404
    );
    assert_eq!(px.req("HEAD", "/v2/app/manifests/v1").await.status, 404);
    assert!(stored_blobs(dir.path()).is_empty());
}

// ------------------------------------------------------------- hostile upstreams

/// A hostile upstream: answers every request with what `answer(method,
/// path)` returns (a whole raw HTTP response), then closes the connection.
async fn hostile_upstream(answer: fn(&str, &str) -> Vec<u8>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&req).into_owned();
                let mut words = head.split_whitespace();
                let (m, p) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                let _ = c.write_all(&answer(m, p)).await;
                let _ = c.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

fn response(status: &str, headers: &[(&str, String)], body: &[u8], declared_len: usize) -> Vec<u8> {
    let mut out =
        format!("HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {declared_len}\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

const GOOD: &[u8] = b"the bytes the digest names, repeated enough to matter ";

fn good_digest() -> Digest {
    Digest::sha256(&GOOD.repeat(1000))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_blob_that_does_not_match_its_digest_is_never_stored() {
    let dir = tempfile::tempdir().unwrap();
    let up = hostile_upstream(|_, _| {
        let wrong = b"something else entirely, same length? no matter ".repeat(1000);
        response("200 OK", &[], &wrong, wrong.len())
    })
    .await;
    let px = start_proxy(dir.path(), &[up]).await;
    let d = good_digest();
    for _ in 0..2 {
        let (status, body) = get_body(px.addr, &format!("/v2/app/blobs/{d}")).await;
        // The headers went out before the last byte was checked; the body
        // then breaks off, so no client takes the wrong bytes as complete.
        assert_eq!(status, 200);
        assert!(body.is_err(), "a client got a complete wrong blob");
    }
    assert!(
        !blob_path(dir.path(), &d).exists(),
        "the wrong bytes were stored"
    );
    assert!(
        stored_blobs(dir.path()).is_empty(),
        "{:?}",
        stored_blobs(dir.path())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_upstream_blob_is_never_stored() {
    let dir = tempfile::tempdir().unwrap();
    let up = hostile_upstream(|_, _| {
        let all = GOOD.repeat(1000);
        // Announces the whole blob, sends half, hangs up.
        response("200 OK", &[], &all[..all.len() / 2], all.len())
    })
    .await;
    let px = start_proxy(dir.path(), &[up]).await;
    let d = good_digest();
    let (status, body) = get_body(px.addr, &format!("/v2/app/blobs/{d}")).await;
    assert_eq!(status, 200);
    assert!(body.is_err(), "a truncated blob was served as complete");
    assert!(
        stored_blobs(dir.path()).is_empty(),
        "{:?}",
        stored_blobs(dir.path())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_manifest_with_a_lying_digest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let up = hostile_upstream(|method, _| {
        let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        let claimed = Digest::sha256(b"another document");
        let h = [
            ("Docker-Content-Digest", claimed.to_string()),
            ("Content-Type", "application/vnd.oci.image.index.v1+json".to_owned()),
        ];
        let body: &[u8] = if method == "HEAD" { b"" } else { m };
        response("200 OK", &h, body, m.len())
    })
    .await;
    let px = start_proxy(dir.path(), std::slice::from_ref(&up)).await;
    let r = px.req("GET", "/v2/app/manifests/v1").await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.code(), "DIGEST_INVALID");
    assert!(r.text().contains(&up), "{}", r.text());
    // Asked by digest, the bytes must hash to it.
    let want = Digest::sha256(b"another document");
    let r = px.req("GET", &format!("/v2/app/manifests/{want}")).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.code(), "DIGEST_INVALID");
    assert!(
        stored_blobs(dir.path()).is_empty(),
        "{:?}",
        stored_blobs(dir.path())
    );
    assert!(!files_under(dir.path())
        .iter()
        .any(|f| f.contains("_manifests")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_collection_keeps_a_partly_filled_cache_and_pushed_markers() {
    let (up_dir, px_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let up = TestServer::start(up_dir.path()).await;
    let (_, bytes) = push_image(&up, "app", "v1", "gc").await;
    let m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let config = m["config"]["digest"].as_str().unwrap().to_owned();
    let px = start_proxy(px_dir.path(), &[url(&up)]).await;
    assert_eq!(px.req("GET", "/v2/app/manifests/v1").await.status, 200);
    // Only the config is fetched; the layer stays upstream.
    let r = px.req("GET", &format!("/v2/app/blobs/{config}")).await;
    assert_eq!(r.status, 200);
    push_image(&px, "mine", "v1", "local").await;
    up.stop().await;
    let opts = hoist_registry::gc::GcOptions {
        delete_untagged: true,
        ..Default::default()
    };
    let root = px_dir.path().to_path_buf();
    let report = tokio::task::spawn_blocking(move || hoist_registry::gc::collect(&root, &opts))
        .await
        .unwrap()
        .unwrap();
    assert!(report.blobs_deleted.is_empty(), "{report:?}");
    assert!(report.manifests_deleted.is_empty(), "{report:?}");
    assert_eq!(px.req("GET", "/v2/app/manifests/v1").await.status, 200);
    assert_eq!(
        px.req("GET", &format!("/v2/app/blobs/{config}"))
            .await
            .status,
        200
    );
    assert_eq!(px.req("GET", "/v2/mine/manifests/v1").await.status, 200);
    let marker = px_dir
        .path()
        .join("docker/registry/v2/repositories/mine")
        .join(hoist_registry::proxy::PUSHED_MARKER);
    assert!(marker.is_file());
}
