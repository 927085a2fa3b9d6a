//! Hostile and unlucky clients: bad names and digests, huge bodies, races,
//! clients that go away mid-request. Each must get a clear 4xx (never a 500)
//! and leave nothing behind outside the root or half-committed inside it.

mod common;

use common::*;
use hoist_oci::Digest;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A registry root inside a parent directory, so escapes would show up in the parent.
fn nested() -> (tempfile::TempDir, std::path::PathBuf) {
    let parent = tempfile::tempdir().unwrap();
    let root = parent.path().join("root");
    std::fs::create_dir(&root).unwrap();
    (parent, root)
}

fn assert_nothing_outside(parent: &std::path::Path) {
    let entries: Vec<_> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(entries, ["root"], "something was written outside the root");
}

/// Sends raw bytes and returns the raw response (until the server closes
/// or `wait` passes).
async fn raw(addr: std::net::SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut c = TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before taking the whole request.
    let _ = c.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, c.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_names_digests_and_references() {
    let (parent, root) = nested();
    let s = TestServer::start(&root).await;
    let good = Digest::sha256(b"x");
    let bad_digests = [
        "sha256:abc",
        "sha256:../../../../etc/passwd",
        "sha256:..%2f..%2fetc",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        "nocolon",
        "sha256:",
    ];
    for d in bad_digests {
        for (m, p) in [
            ("GET", format!("/v2/a/blobs/{d}")),
            ("HEAD", format!("/v2/a/blobs/{d}")),
            ("DELETE", format!("/v2/a/blobs/{d}")),
            ("GET", format!("/v2/a/referrers/{d}")),
            ("POST", format!("/v2/a/blobs/uploads/?digest={d}")),
            ("POST", format!("/v2/a/blobs/uploads/?mount={d}&from=b")),
        ] {
            let r = s.req(m, &p).await;
            assert_eq!(r.status, 400, "{m} {p}: {}", r.text());
            if m != "HEAD" {
                assert_eq!(r.code(), "DIGEST_INVALID", "{m} {p}");
            }
        }
        if d.contains(':') {
            let r = s.req("GET", &format!("/v2/a/manifests/{d}")).await;
            assert_eq!(r.status, 400, "manifest {d}");
            assert_eq!(r.code(), "DIGEST_INVALID");
        }
    }
    // An upload finished with a bad digest.
    let r = s.req("POST", "/v2/a/blobs/uploads/").await;
    let loc = r.header("location").unwrap().to_owned();
    let r = s.req("PUT", &format!("{loc}?digest=sha256:../../x")).await;
    assert_eq!(r.code(), "DIGEST_INVALID");
    let r = s.req("PUT", &loc).await;
    assert_eq!(r.code(), "DIGEST_INVALID");

    for name in [
        "..",
        "../..",
        "a/../../b",
        "%2e%2e",
        "A",
        "a//b",
        "_x",
        "a/.x",
        "a%2fb",
    ] {
        for p in [
            format!("/v2/{name}/blobs/{good}"),
            format!("/v2/{name}/manifests/latest"),
            format!("/v2/{name}/tags/list"),
        ] {
            let r = s.req("GET", &p).await;
            assert!(r.status == 400 || r.status == 404, "{p}: {}", r.status);
            assert_eq!(r.code(), "NAME_INVALID", "{p}");
        }
        let r = s.req("POST", &format!("/v2/{name}/blobs/uploads/")).await;
        assert_eq!(r.code(), "NAME_INVALID", "POST {name}");
    }
    let long = vec!["a"; 200].join("/");
    assert_eq!(
        s.req("GET", &format!("/v2/{long}/tags/list")).await.code(),
        "NAME_INVALID"
    );
    let r = s
        .req(
            "POST",
            &format!("/v2/a/blobs/uploads/?mount={good}&from=.."),
        )
        .await;
    assert_eq!(r.code(), "NAME_INVALID");

    for tag in ["..", ".hidden", "-x", &"t".repeat(129)] {
        // A read finds nothing under a name no tag can have; a write is refused.
        for method in ["GET", "HEAD"] {
            let r = s.req(method, &format!("/v2/a/manifests/{tag}")).await;
            assert_eq!(r.status, 404, "{method} {tag}");
            if method == "GET" {
                assert_eq!(r.code(), "MANIFEST_UNKNOWN");
            }
        }
        let r = s.put_manifest("a", tag, OCI_MANIFEST, b"{}").await;
        assert_eq!(r.code(), "TAG_INVALID");
    }
    for id in ["..", "a.b", "%2e%2e"] {
        let r = s.req("GET", &format!("/v2/a/blobs/uploads/{id}")).await;
        assert_eq!(r.status, 404, "{id}");
        assert_eq!(r.code(), "BLOB_UPLOAD_UNKNOWN");
        let r = s
            .send(
                "PATCH",
                &format!("/v2/a/blobs/uploads/{id}"),
                &[],
                b"x".to_vec(),
            )
            .await;
        assert_eq!(r.status, 404);
    }
    // A manifest naming a malformed digest.
    let bad = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"x","digest":"sha256:../x","size":1},"layers":[]}"#;
    let r = s.put_manifest("a", "t", OCI_MANIFEST, bad).await;
    assert_eq!(r.code(), "MANIFEST_INVALID");
    // Bad pagination numbers.
    assert_eq!(
        s.req("GET", "/v2/_catalog?n=abc").await.code(),
        "PAGINATION_NUMBER_INVALID"
    );
    // Bad Content-Range.
    let r = s
        .send(
            "PATCH",
            &loc,
            &[("content-range", "garbage")],
            b"x".to_vec(),
        )
        .await;
    assert_eq!(r.status, 416);
    let r = s
        .send("PATCH", &loc, &[("content-range", "0-19")], vec![0u8; 10])
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "SIZE_INVALID");
    // Unsupported methods.
    assert_eq!(
        s.req("POST", "/v2/a/manifests/latest").await.code(),
        "UNSUPPORTED"
    );
    assert_eq!(
        s.req("PUT", &format!("/v2/a/blobs/{good}")).await.code(),
        "UNSUPPORTED"
    );

    assert_nothing_outside(parent.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_manifests_are_refused_without_buffering() {
    let (parent, root) = nested();
    let s = TestServer::start(&root).await;
    let mut req = format!(
        "PUT /v2/a/manifests/big HTTP/1.1\r\nHost: x\r\nContent-Type: {OCI_MANIFEST}\r\nContent-Length: {}\r\n\r\n",
        5 << 20
    )
    .into_bytes();
    req.extend(vec![b' '; 5 << 20]);
    let resp = raw(s.addr, &req, Duration::from_secs(5)).await;
    assert!(
        resp.starts_with("HTTP/1.1 413"),
        "{}",
        &resp[..resp.len().min(200)]
    );
    assert!(resp.contains("MANIFEST_INVALID"));

    // Chunked, with no Content-Length: cut off at the limit.
    let mut req = format!(
        "PUT /v2/a/manifests/big HTTP/1.1\r\nHost: x\r\nContent-Type: {OCI_MANIFEST}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..5 {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(&chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let resp = raw(s.addr, &req, Duration::from_secs(5)).await;
    assert!(
        resp.starts_with("HTTP/1.1 413"),
        "{}",
        &resp[..resp.len().min(200)]
    );

    // A Content-Length that lies about a huge size is refused up front.
    let resp = raw(
        s.addr,
        b"PUT /v2/a/manifests/big HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\n\r\n{}",
        Duration::from_secs(5),
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
    assert!(files_under(&root.join("docker/registry/v2/blobs")).is_empty());
    assert_nothing_outside(parent.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_link_files_read_as_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let (d, _) = push_image(&s, "r", "latest", "x").await;
    let b = s.push_blob("r", b"blob").await;
    let repo = dir.path().join("docker/registry/v2/repositories/r");
    std::fs::write(repo.join("_manifests/tags/latest/current/link"), "").unwrap();
    std::fs::write(
        repo.join(format!("_layers/sha256/{}/link", b.hex())),
        "sha256:zz",
    )
    .unwrap();
    let r = s.req("GET", "/v2/r/manifests/latest").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "MANIFEST_UNKNOWN");
    assert_eq!(s.req("GET", &format!("/v2/r/blobs/{b}")).await.status, 404);
    // A link naming another digest does not serve that other blob.
    std::fs::write(
        repo.join(format!("_layers/sha256/{}/link", b.hex())),
        d.to_string(),
    )
    .unwrap();
    assert_eq!(s.req("GET", &format!("/v2/r/blobs/{b}")).await.status, 404);
    // Missing data behind a valid link.
    let c = s.push_blob("r", b"gone").await;
    std::fs::remove_file(dir.path().join(format!(
        "docker/registry/v2/blobs/sha256/{}/{}/data",
        &c.hex()[..2],
        c.hex()
    )))
    .unwrap();
    assert_eq!(s.req("HEAD", &format!("/v2/r/blobs/{c}")).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pushes_of_the_same_blob_and_tag() {
    let dir = tempfile::tempdir().unwrap();
    let s = std::sync::Arc::new(TestServer::start(dir.path()).await);
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 241) as u8).collect();
    let d = Digest::sha256(&data);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        let data = data.clone();
        tasks.push(tokio::spawn(async move {
            let repo = format!("same{}", i % 2);
            if i % 4 == 0 {
                s.push_blob(&repo, &data).await;
            } else {
                // Chunked, two PATCHes.
                let r = s.req("POST", &format!("/v2/{repo}/blobs/uploads/")).await;
                let loc = r.header("location").unwrap().to_owned();
                let (a, b) = data.split_at(1_000_000);
                assert_eq!(s.send("PATCH", &loc, &[], a.to_vec()).await.status, 202);
                assert_eq!(s.send("PATCH", &loc, &[], b.to_vec()).await.status, 202);
                let d = Digest::sha256(&data);
                let r = s.send("PUT", &format!("{loc}?digest={d}"), &[], "").await;
                assert_eq!(r.status, 201, "{}", r.text());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for repo in ["same0", "same1"] {
        assert_eq!(
            s.req("GET", &format!("/v2/{repo}/blobs/{d}")).await.body,
            data
        );
    }

    // Many manifests racing for one tag: the tag ends on one of them, whole.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let (d, _) = push_image(&s, "race", "latest", &format!("racer{i}")).await;
            d
        }));
    }
    let mut pushed = Vec::new();
    for t in tasks {
        pushed.push(t.await.unwrap());
    }
    let r = s.req("GET", "/v2/race/manifests/latest").await;
    assert_eq!(r.status, 200);
    let got = Digest::sha256(&r.body);
    assert!(pushed.contains(&got));
    assert_eq!(
        r.header("docker-content-digest"),
        Some(got.to_string().as_str())
    );
    for d in &pushed {
        assert_eq!(
            s.req("HEAD", &format!("/v2/race/manifests/{d}"))
                .await
                .status,
            200
        );
    }
    // Nothing left in scratch space.
    assert!(files_under(&dir.path().join("docker/registry/v2/_hoist/tmp")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnects_mid_upload_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 13) as u8).collect();
    let d = Digest::sha256(&data);
    let r = s.req("POST", "/v2/dc/blobs/uploads/").await;
    let loc = r.header("location").unwrap().to_owned();

    // Announce 100000 bytes, send 40000, hang up.
    {
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        let head = format!(
            "PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nContent-Range: 0-99999\r\n\r\n"
        );
        c.write_all(head.as_bytes()).await.unwrap();
        c.write_all(&data[..40_000]).await.unwrap();
        c.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The session keeps what arrived (and is free again once the server notices).
    let mut got = None;
    for _ in 0..50 {
        let st = s.req("GET", &loc).await;
        assert_eq!(st.status, 204);
        let range = st.header("range").unwrap().to_owned();
        let end: u64 = range.split('-').nth(1).unwrap().parse().unwrap();
        // "0-0" means one byte or none (distribution's convention): try both.
        let starts = if end == 0 { vec![0, 1] } else { vec![end + 1] };
        for start in starts {
            let r = s
                .send(
                    "PATCH",
                    &loc,
                    &[("content-range", &format!("{start}-99999"))],
                    data[start as usize..].to_vec(),
                )
                .await;
            if r.status == 202 {
                got = Some(start);
                break;
            }
        }
        if got.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let start = got.expect("could not resume the upload");
    assert!(start <= 40_000);
    let r = s.send("PUT", &format!("{loc}?digest={d}"), &[], "").await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(s.req("GET", &format!("/v2/dc/blobs/{d}")).await.body, data);

    // A monolithic push cut short commits nothing and leaves no session.
    {
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        let other = Digest::sha256(b"never completes");
        let head = format!(
            "POST /v2/dc2/blobs/uploads/?digest={other} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
        );
        c.write_all(head.as_bytes()).await.unwrap();
        c.write_all(&[0u8; 1000]).await.unwrap();
    }
    let uploads = dir
        .path()
        .join("docker/registry/v2/repositories/dc2/_uploads");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !files_under(&uploads).is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        files_under(&uploads).is_empty(),
        "{:?}",
        files_under(&uploads)
    );
    // Only the blob of the first upload was committed.
    assert_eq!(
        files_under(&dir.path().join("docker/registry/v2/blobs")).len(),
        1
    );

    // A client that stops reading a big download does not hurt the server.
    let big: Vec<u8> = vec![7u8; 8 << 20];
    let bd = s.push_blob("dc", &big).await;
    {
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(format!("GET /v2/dc/blobs/{bd} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut buf = [0u8; 4096];
        let _ = c.read(&mut buf).await.unwrap();
    }
    assert_eq!(s.req("GET", "/v2/").await.status, 200);
    assert_eq!(
        s.req("GET", &format!("/v2/dc/blobs/{bd}")).await.body.len(),
        8 << 20
    );
}
