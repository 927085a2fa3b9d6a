//! The web page over HTTP (the browser test is in hoist's registry_web.rs):
//! hostile strings are escaped, paths cannot escape, lists are paginated.

mod common;

use common::*;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Pushes an OCI image whose config history holds `created_by`.
async fn push_with_history(s: &TestServer, repo: &str, tag: &str, created_by: &str) {
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": [] },
        "history": [{ "created": "2024-05-06T07:08:09Z", "created_by": created_by, "empty_layer": true }]
    }))
    .unwrap();
    let c = s.push_blob(repo, &config).await;
    let l = s.push_blob(repo, b"some layer bytes").await;
    let m = oci_manifest(
        (&c, config.len(), "application/vnd.oci.image.config.v1+json"),
        &[(&l, 16)],
        None,
        None,
    );
    let r = s.put_manifest(repo, tag, OCI_MANIFEST, &m).await;
    assert_eq!(r.status, 201, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_page_escapes_hostile_history() {
    let d = tmp();
    let s = TestServer::start(d.path()).await;
    let evil = "<script>alert('x')</script> & \"quoted\" <img src=x onerror=alert(1)>";
    push_with_history(&s, "evil/repo", "v1", evil).await;
    let r = s.req("GET", "/ui/r/evil/repo/_tags/v1").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'none'"));
    let html = r.text();
    assert!(
        html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quoted&quot; &lt;img src=x onerror=alert(1)&gt;"),
        "{html}"
    );
    assert!(
        !html.contains("<script") && !html.contains("<img"),
        "{html}"
    );
    assert!(html.contains("2024-05-06T07:08:09Z"), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_paths_cannot_escape_and_unknowns_are_404() {
    let d = tmp();
    let s = TestServer::start(d.path()).await;
    push_image(&s, "good/repo", "v1", "a").await;
    for (path, status) in [
        ("/ui/r/../../etc/passwd", 400),
        ("/ui/r/good/../../x/_tags/v1", 400),
        ("/ui/r/good/repo/_tags/..%2F..%2Fx", 400),
        ("/ui/r/good/repo/_tags/a%00b", 400),
        ("/ui/r/good/repo/_manifests/sha256:..%2F..%2Fx", 400),
        ("/ui/r/good/repo/_manifests/md5:abc", 400),
        ("/ui/r/UPPER/case", 400),
        ("/ui/r/nope/repo", 404),
        ("/ui/r/good/repo/_tags/missing", 404),
        ("/ui/r/good/repo/_manifests/sha256:0000000000000000000000000000000000000000000000000000000000000000", 404),
    ] {
        let r = s.req("GET", path).await;
        assert_eq!(r.status, status, "GET {path}: {}", r.text());
        assert!(r.text().contains("<h1>"), "GET {path} is not an HTML page");
    }
    // The good pages work and link each other.
    let root = s.req("GET", "/").await.text();
    assert!(root.contains("href=\"/ui/r/good/repo\""), "{root}");
    let tags = s.req("GET", "/ui/r/good/repo").await.text();
    assert!(tags.contains("href=\"/ui/r/good/repo/_tags/v1\""), "{tags}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_lists_are_paginated() {
    let d = tmp();
    let s = TestServer::start(d.path()).await;
    let (_, m) = push_image(&s, "many/tags", "t000", "a").await;
    for i in 1..150 {
        let r = s
            .put_manifest("many/tags", &format!("t{i:03}"), DOCKER_MANIFEST, &m)
            .await;
        assert_eq!(r.status, 201);
    }
    let first = s.req("GET", "/ui/r/many/tags").await.text();
    assert!(first.contains("150 tags"), "{first}");
    assert_eq!(first.matches("<li>").count(), hoist_registry::web::PAGE);
    assert!(first.contains("_tags/t099\"") && !first.contains("_tags/t100\""));
    assert!(
        first.contains("href=\"/ui/r/many/tags?last=t099\""),
        "{first}"
    );
    let second = s.req("GET", "/ui/r/many/tags?last=t099").await.text();
    assert_eq!(second.matches("<li>").count(), 50);
    assert!(second.contains("_tags/t100\"") && second.contains("_tags/t149\""));
    assert!(!second.contains("rel=\"next\""), "{second}");

    // 101 more repositories, each holding the same image (blobs mounted).
    let v: serde_json::Value = serde_json::from_slice(&m).unwrap();
    for i in 0..101 {
        let repo = format!("r{i:03}");
        for d in std::iter::once(&v["config"]).chain(v["layers"].as_array().unwrap()) {
            let dg = d["digest"].as_str().unwrap();
            let path = format!("/v2/{repo}/blobs/uploads/?mount={dg}&from=many/tags");
            let mr = s.req("POST", &path).await;
            assert_eq!(mr.status, 201, "{}", mr.text());
        }
        let r = s.put_manifest(&repo, "v1", DOCKER_MANIFEST, &m).await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let root = s.req("GET", "/").await.text();
    assert!(root.contains("102 repositories"), "{root}");
    assert_eq!(root.matches("<li>").count(), hoist_registry::web::PAGE);
    let last = root
        .split("?last=")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let next = s.req("GET", &format!("/?last={last}")).await.text();
    assert_eq!(next.matches("<li>").count(), 2, "{next}");
}

#[test]
fn human_sizes() {
    use hoist_registry::web::human_size;
    // Docker's units, as `hoist images` prints them.
    assert_eq!(human_size(0), "0B");
    assert_eq!(human_size(999), "999B");
    assert_eq!(human_size(1536), "1.54kB");
    assert_eq!(human_size(5 << 20), "5.24MB");
    assert_eq!(human_size(u64::MAX), "18.4EB");
}
