//! One suite of registry behaviours, the distribution-spec workflows
//! against a real server over HTTP, run on every storage driver: the
//! filesystem, S3 (a real S3 server, `s3s-fs`) and memory. Each behaviour is
//! a function of its [`Storage`]; `on_every_driver!` makes it a test per
//! driver (`fs::<name>`, `s3::<name>`, `mem::<name>`).

mod common;

use common::storage::{blob_file, Storage};
use common::*;
use hoist_oci::Digest;

fn pattern(n: usize) -> Vec<u8> {
    (0..n as u32).map(|i| (i * 7 + i / 251) as u8).collect()
}

async fn base_endpoint_and_health(st: Storage) {
    let s = st.start().await;
    let r = s.req("GET", "/v2/").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
    assert_eq!(s.req("GET", "/v2").await.status, 200);
    assert_eq!(s.req("HEAD", "/v2/").await.status, 200);
    assert_eq!(s.req("GET", "/healthz").await.status, 200);
    let r = s.req("GET", "/v2/nothing-here").await;
    assert_eq!(r.status, 404);
}

/// Blobs larger than one streaming chunk (4 MiB) come back whole, and an
/// unaligned range across chunk and page boundaries comes back exact.
async fn large_blob_streams_whole_and_in_unaligned_ranges(st: Storage) {
    let s = st.start().await;
    let size = 9 * (1 << 20) + 12_345;
    let data: Vec<u8> = (0..size as u32)
        .map(|i| (i.wrapping_mul(7) % 253) as u8)
        .collect();
    let d = s.push_blob("big/blob", &data).await;
    let r = s.req("GET", &format!("/v2/big/blob/blobs/{d}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some(size.to_string().as_str()));
    assert!(r.body.as_ref() == &data[..], "whole blob differs");
    let (a, b) = (4_194_301usize, 8_390_003usize);
    let r = s
        .send(
            "GET",
            &format!("/v2/big/blob/blobs/{d}"),
            &[("range", &format!("bytes={a}-{b}"))],
            "",
        )
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes {a}-{b}/{size}").as_str())
    );
    assert!(r.body.as_ref() == &data[a..=b], "ranged blob differs");
}

async fn monolithic_push_then_pull_with_ranges(st: Storage) {
    let s = st.start().await;
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let d = s.push_blob("lib/app", &data).await;

    let r = s.req("HEAD", &format!("/v2/lib/app/blobs/{d}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("1000000"));
    assert_eq!(
        r.header("docker-content-digest"),
        Some(d.to_string().as_str())
    );
    assert!(r.body.is_empty());

    let r = s.req("GET", &format!("/v2/lib/app/blobs/{d}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.as_ref(), &data[..]);

    let r = s
        .send(
            "GET",
            &format!("/v2/lib/app/blobs/{d}"),
            &[("range", "bytes=10-19")],
            "",
        )
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 10-19/1000000"));
    assert_eq!(r.body.as_ref(), &data[10..20]);

    let r = s
        .send(
            "GET",
            &format!("/v2/lib/app/blobs/{d}"),
            &[("range", "bytes=999000-")],
            "",
        )
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body.as_ref(), &data[999_000..]);

    let r = s
        .send(
            "GET",
            &format!("/v2/lib/app/blobs/{d}"),
            &[("range", "bytes=2000000-")],
            "",
        )
        .await;
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */1000000"));

    // Stored exactly where distribution puts it.
    let hex = d.hex();
    assert_eq!(st.read(&blob_file(&d)).await.unwrap(), data);
    let link = st
        .read(&format!("repositories/lib/app/_layers/sha256/{hex}/link"))
        .await
        .unwrap();
    assert_eq!(link, d.to_string().as_bytes());
    // No upload left behind.
    assert!(st.files().await.iter().all(|f| !f.contains("_uploads")));

    // Unknown in another repository.
    let r = s.req("GET", &format!("/v2/lib/other/blobs/{d}")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "BLOB_UNKNOWN");
}

async fn post_then_put_and_chunked_patch_uploads(st: Storage) {
    let s = st.start().await;

    // POST then PUT with the whole body.
    let r = s.req("POST", "/v2/a/blobs/uploads/").await;
    assert_eq!(r.status, 202);
    assert_eq!(r.header("range"), Some("0-0"));
    let uuid = r.header("docker-upload-uuid").unwrap().to_owned();
    let loc = r.header("location").unwrap().to_owned();
    assert_eq!(loc, format!("/v2/a/blobs/uploads/{uuid}"));
    let body = b"hello monolithic".to_vec();
    let d = Digest::sha256(&body);
    let r = s
        .send("PUT", &format!("{loc}?digest={d}"), &[], body.clone())
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some(format!("/v2/a/blobs/{d}").as_str())
    );
    assert_eq!(s.req("GET", &format!("/v2/a/blobs/{d}")).await.body, body);

    // Chunked: three PATCHes with Content-Range, then an empty PUT.
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let d = Digest::sha256(&data);
    let r = s.req("POST", "/v2/a/blobs/uploads/").await;
    let loc = r.header("location").unwrap().to_owned();
    let mut off = 0;
    for chunk in data.chunks(100_000) {
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
        let status = s.req("GET", &loc).await;
        assert_eq!(status.status, 204);
        assert_eq!(
            status.header("range"),
            Some(format!("0-{}", off - 1).as_str())
        );
        assert_eq!(status.header("location"), Some(loc.as_str()));
        assert!(status.header("docker-upload-uuid").is_some());
        if off == 100_000 {
            // The hash state is kept in distribution's place and format.
            let id = status.header("docker-upload-uuid").unwrap();
            let hs = format!("repositories/a/_uploads/{id}/hashstates/sha256/100000");
            assert_eq!(st.read(&hs).await.unwrap().len(), 108);
        }
    }
    // Out of order and repeated chunks: 416 with the current range.
    for range in ["0-9", "300001-300010"] {
        let r = s
            .send("PATCH", &loc, &[("content-range", range)], vec![0u8; 10])
            .await;
        assert_eq!(r.status, 416, "{range}");
        assert_eq!(r.header("range"), Some("0-299999"));
    }
    let r = s.send("PUT", &format!("{loc}?digest={d}"), &[], "").await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(s.req("GET", &format!("/v2/a/blobs/{d}")).await.body, data);
    // The session is gone.
    assert_eq!(s.req("GET", &loc).await.status, 404);
    assert_eq!(s.req("GET", &loc).await.code(), "BLOB_UPLOAD_UNKNOWN");

    // PATCH without Content-Range (streamed), then cancel.
    let r = s.req("POST", "/v2/a/blobs/uploads/").await;
    let loc = r.header("location").unwrap().to_owned();
    assert_eq!(s.send("PATCH", &loc, &[], vec![1u8; 5]).await.status, 202);
    assert_eq!(s.req("DELETE", &loc).await.status, 204);
    assert_eq!(s.req("GET", &loc).await.status, 404);
    assert_eq!(s.req("DELETE", &loc).await.status, 404);
}

/// Chunks bigger than the S3 driver's part buffer (8 MiB): each is itself a
/// multipart upload there, and the commit concatenates several parts.
async fn big_chunks_push_then_pull_with_ranges(st: Storage) {
    let s = st.start().await;

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

async fn digest_mismatch_commits_nothing(st: Storage) {
    let s = st.start().await;
    let wrong = Digest::sha256(b"something else");
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
    let r = s.req("POST", "/v2/a/blobs/uploads/").await;
    let loc = r.header("location").unwrap().to_owned();
    let r = s
        .send(
            "PUT",
            &format!("{loc}?digest={wrong}"),
            &[],
            b"actual".to_vec(),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "DIGEST_INVALID");
    let left = st.files().await;
    assert!(
        left.iter()
            .all(|f| !f.starts_with("blobs/") && !f.starts_with("repositories/")),
        "nothing committed, no session left: {left:?}"
    );
    assert_eq!(
        s.req("HEAD", &format!("/v2/a/blobs/{wrong}")).await.status,
        404
    );
    let actual = Digest::sha256(b"actual");
    assert_eq!(
        s.req("HEAD", &format!("/v2/a/blobs/{actual}")).await.status,
        404
    );
}

async fn manifests_by_tag_and_digest(st: Storage) {
    let s = st.start().await;
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = b"layer data".repeat(10);
    let cd = Digest::sha256(config);
    let ld = Digest::sha256(&layer);
    let m = schema2((&cd, config.len()), &[(&ld, layer.len())]);
    let md = Digest::sha256(&m);

    // Blobs not pushed yet.
    let r = s.put_manifest("r", "v1", DOCKER_MANIFEST, &m).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "MANIFEST_BLOB_UNKNOWN");
    // Pushed to another repository only: still unknown here.
    s.push_blob("elsewhere", config).await;
    s.push_blob("elsewhere", &layer).await;
    assert_eq!(
        s.put_manifest("r", "v1", DOCKER_MANIFEST, &m).await.code(),
        "MANIFEST_BLOB_UNKNOWN"
    );

    s.push_blob("r", config).await;
    s.push_blob("r", &layer).await;
    let r = s.put_manifest("r", "v1", DOCKER_MANIFEST, &m).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.header("docker-content-digest"),
        Some(md.to_string().as_str())
    );
    assert_eq!(
        r.header("location"),
        Some(format!("/v2/r/manifests/{md}").as_str())
    );

    for reference in ["v1".to_owned(), md.to_string()] {
        let r = s.req("GET", &format!("/v2/r/manifests/{reference}")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body.as_ref(), &m[..]);
        assert_eq!(r.header("content-type"), Some(DOCKER_MANIFEST));
        assert_eq!(
            r.header("docker-content-digest"),
            Some(md.to_string().as_str())
        );
        let h = s.req("HEAD", &format!("/v2/r/manifests/{reference}")).await;
        assert_eq!(h.status, 200);
        assert_eq!(
            h.header("content-length"),
            Some(m.len().to_string().as_str())
        );
        assert!(h.body.is_empty());
    }
    // A manifest can be fetched through the blobs endpoint too.
    assert_eq!(
        s.req("GET", &format!("/v2/r/blobs/{md}"))
            .await
            .body
            .as_ref(),
        &m[..]
    );

    // PUT by digest: must match.
    let r = s
        .put_manifest("r", &md.to_string(), DOCKER_MANIFEST, &m)
        .await;
    assert_eq!(r.status, 201);
    let r = s
        .put_manifest("r", &cd.to_string(), DOCKER_MANIFEST, &m)
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "DIGEST_INVALID");

    // Content-Type disagreeing with the document.
    let r = s.put_manifest("r", "bad", OCI_MANIFEST, &m).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "MANIFEST_INVALID");
    for junk in [
        &b"not json"[..],
        br#"{"schemaVersion":1}"#,
        br#"{"schemaVersion":2,"mediaType":"application/vnd.example"}"#,
    ] {
        let r = s.put_manifest("r", "bad", "application/json", junk).await;
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(junk));
        assert_eq!(r.code(), "MANIFEST_INVALID");
    }

    // On-disk layout.
    for link in [
        format!("revisions/sha256/{}/link", md.hex()),
        "tags/v1/current/link".to_owned(),
        format!("tags/v1/index/sha256/{}/link", md.hex()),
    ] {
        let got = st.read(&format!("repositories/r/_manifests/{link}")).await;
        assert_eq!(got.as_deref(), Some(md.to_string().as_bytes()), "{link}");
    }

    // Unknown.
    let r = s.req("GET", "/v2/r/manifests/nope").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "MANIFEST_UNKNOWN");
    let r = s.req("GET", &format!("/v2/r/manifests/{cd}")).await;
    assert_eq!(r.code(), "MANIFEST_UNKNOWN");
}

async fn oci_index_and_manifest_list_need_their_children(st: Storage) {
    let s = st.start().await;
    let (d1, m1) = push_image(&s, "multi", "amd64", "one").await;
    let missing = Digest::sha256(b"a child never pushed");
    for mt in [OCI_INDEX, DOCKER_LIST] {
        let bad = index(
            mt,
            &[
                (&d1, m1.len(), DOCKER_MANIFEST),
                (&missing, 10, DOCKER_MANIFEST),
            ],
        );
        let r = s.put_manifest("multi", "latest", mt, &bad).await;
        assert_eq!(r.status, 400);
        assert_eq!(r.code(), "MANIFEST_BLOB_UNKNOWN");
        let good = index(mt, &[(&d1, m1.len(), DOCKER_MANIFEST)]);
        let r = s.put_manifest("multi", "latest", mt, &good).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let r = s.req("GET", "/v2/multi/manifests/latest").await;
        assert_eq!(r.header("content-type"), Some(mt));
        assert_eq!(r.body.as_ref(), &good[..]);
    }
    // An index without mediaType is served as an OCI index (its shape says so).
    let bare = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{ "mediaType": DOCKER_MANIFEST, "digest": d1.to_string(), "size": m1.len() }]
    }))
    .unwrap();
    let r = s.put_manifest("multi", "bare", OCI_INDEX, &bare).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = s.req("GET", "/v2/multi/manifests/bare").await;
    assert_eq!(r.header("content-type"), Some(OCI_INDEX));
}

async fn tags_list_paginates(st: Storage) {
    let s = st.start().await;
    let (_, m) = push_image(&s, "t", "a", "x").await;
    for tag in ["b", "c", "d", "e"] {
        assert_eq!(
            s.put_manifest("t", tag, DOCKER_MANIFEST, &m).await.status,
            201
        );
    }
    let r = s.req("GET", "/v2/t/tags/list").await;
    assert_eq!(
        r.json(),
        serde_json::json!({"name": "t", "tags": ["a", "b", "c", "d", "e"]})
    );
    assert!(r.header("link").is_none());

    let r = s.req("GET", "/v2/t/tags/list?n=2").await;
    assert_eq!(r.json()["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(
        r.header("link"),
        Some("</v2/t/tags/list?n=2&last=b>; rel=\"next\"")
    );
    let r = s.req("GET", "/v2/t/tags/list?n=2&last=b").await;
    assert_eq!(r.json()["tags"], serde_json::json!(["c", "d"]));
    let r = s.req("GET", "/v2/t/tags/list?n=2&last=d").await;
    assert_eq!(r.json()["tags"], serde_json::json!(["e"]));
    assert!(r.header("link").is_none());
    let r = s.req("GET", "/v2/t/tags/list?n=0").await;
    assert_eq!(r.json()["tags"], serde_json::json!([]));
    let r = s.req("GET", "/v2/t/tags/list?n=10000000").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["tags"].as_array().unwrap().len(), 5);
    let r = s.req("GET", "/v2/t/tags/list?n=-1").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "PAGINATION_NUMBER_INVALID");
    let r = s.req("GET", "/v2/unknown/tags/list").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "NAME_UNKNOWN");
}

async fn catalog_paginates_in_distribution_order(st: Storage) {
    let s = st.start().await;
    for repo in ["b", "a", "a/b", "a-b", "c/d/e"] {
        push_image(&s, repo, "latest", repo).await;
    }
    // A repository with only an upload in progress is not listed.
    s.req("POST", "/v2/zz/blobs/uploads/").await;
    let r = s.req("GET", "/v2/_catalog").await;
    assert_eq!(
        r.json(),
        serde_json::json!({"repositories": ["a", "a/b", "a-b", "b", "c/d/e"]})
    );
    let r = s.req("GET", "/v2/_catalog?n=2").await;
    assert_eq!(r.json()["repositories"], serde_json::json!(["a", "a/b"]));
    assert_eq!(
        r.header("link"),
        Some("</v2/_catalog?n=2&last=a%2Fb>; rel=\"next\"")
    );
    let r = s.req("GET", "/v2/_catalog?n=2&last=a%2Fb").await;
    assert_eq!(r.json()["repositories"], serde_json::json!(["a-b", "b"]));
    let r = s.req("GET", "/v2/_catalog?n=2&last=b").await;
    assert_eq!(r.json()["repositories"], serde_json::json!(["c/d/e"]));
    assert!(r.header("link").is_none());
    assert_eq!(s.req("GET", "/v2/_catalog?n=99999999").await.status, 200);
}

async fn deletes_tag_alone_manifest_and_blob(st: Storage) {
    let s = st.start().await;
    let (d, m) = push_image(&s, "del", "one", "x").await;
    assert_eq!(
        s.put_manifest("del", "two", DOCKER_MANIFEST, &m)
            .await
            .status,
        201
    );

    // Deleting a tag leaves the manifest and other tags.
    let r = s.req("DELETE", "/v2/del/manifests/one").await;
    assert_eq!(r.status, 202);
    assert_eq!(s.req("GET", "/v2/del/manifests/one").await.status, 404);
    assert_eq!(
        s.req("GET", &format!("/v2/del/manifests/{d}")).await.status,
        200
    );
    assert_eq!(s.req("GET", "/v2/del/manifests/two").await.status, 200);
    assert_eq!(
        s.req("GET", "/v2/del/tags/list").await.json()["tags"],
        serde_json::json!(["two"])
    );
    assert_eq!(s.req("DELETE", "/v2/del/manifests/one").await.status, 404);

    // Deleting by digest removes the tags pointing at it.
    assert_eq!(
        s.req("DELETE", &format!("/v2/del/manifests/{d}"))
            .await
            .status,
        202
    );
    assert_eq!(
        s.req("GET", &format!("/v2/del/manifests/{d}")).await.status,
        404
    );
    assert_eq!(s.req("GET", "/v2/del/manifests/two").await.status, 404);
    assert_eq!(
        s.req("GET", "/v2/del/tags/list").await.json()["tags"],
        serde_json::json!([])
    );
    assert_eq!(
        s.req("DELETE", &format!("/v2/del/manifests/{d}"))
            .await
            .status,
        404
    );

    // Blob delete unlinks it from the repository.
    let b = s.push_blob("del", b"blob to delete").await;
    assert_eq!(
        s.req("DELETE", &format!("/v2/del/blobs/{b}")).await.status,
        202
    );
    assert_eq!(
        s.req("HEAD", &format!("/v2/del/blobs/{b}")).await.status,
        404
    );
    let r = s.req("DELETE", &format!("/v2/del/blobs/{b}")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "BLOB_UNKNOWN");
}

async fn deletes_disabled_and_read_only(st: Storage) {
    {
        let s = st.start().await;
        push_image(&s, "ro", "latest", "x").await;
        s.stop().await;
    }
    let s = st.start_with(|c| c.delete_enabled = false).await;
    let r = s.req("DELETE", "/v2/ro/manifests/latest").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.code(), "UNSUPPORTED");
    s.stop().await;

    let s = st.start_with(|c| c.read_only = true).await;
    assert_eq!(s.req("GET", "/v2/ro/manifests/latest").await.status, 200);
    for (m, p) in [
        ("POST", "/v2/ro/blobs/uploads/"),
        ("PUT", "/v2/ro/manifests/x"),
        ("DELETE", "/v2/ro/manifests/latest"),
    ] {
        let r = s.req(m, p).await;
        assert_eq!(r.status, 405, "{m} {p}");
        assert_eq!(r.code(), "UNSUPPORTED");
    }
}

async fn cross_repository_mount(st: Storage) {
    let s = st.start().await;
    let d = s.push_blob("src", b"shared layer").await;
    let r = s
        .req(
            "POST",
            &format!("/v2/dst/blobs/uploads/?mount={d}&from=src"),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        r.header("location"),
        Some(format!("/v2/dst/blobs/{d}").as_str())
    );
    assert_eq!(
        r.header("docker-content-digest"),
        Some(d.to_string().as_str())
    );
    assert_eq!(
        s.req("GET", &format!("/v2/dst/blobs/{d}"))
            .await
            .body
            .as_ref(),
        b"shared layer"
    );

    // From a repository that lacks it: an ordinary upload session instead.
    let r = s
        .req(
            "POST",
            &format!("/v2/dst2/blobs/uploads/?mount={d}&from=nothere"),
        )
        .await;
    assert_eq!(r.status, 202);
    assert!(r.header("docker-upload-uuid").is_some());

    // Without `from`: mounted from wherever the registry has it.
    let r = s
        .req("POST", &format!("/v2/dst3/blobs/uploads/?mount={d}"))
        .await;
    assert_eq!(r.status, 201);
    let unknown = Digest::sha256(b"unknown");
    let r = s
        .req("POST", &format!("/v2/dst3/blobs/uploads/?mount={unknown}"))
        .await;
    assert_eq!(r.status, 202);
}

async fn referrers_api_with_subject_and_filter(st: Storage) {
    let s = st.start().await;
    let (subject, sm) = push_image(&s, "app", "v1", "img").await;
    let empty = s.push_blob("app", b"{}").await;
    let sig = s.push_blob("app", b"signature bytes").await;
    let sbom = s.push_blob("app", b"sbom bytes").await;

    let a1 = oci_manifest(
        (&empty, 2, "application/vnd.oci.empty.v1+json"),
        &[(&sig, 15)],
        Some((&subject, sm.len())),
        Some("application/vnd.example.sig"),
    );
    let r = s
        .put_manifest("app", &Digest::sha256(&a1).to_string(), OCI_MANIFEST, &a1)
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("oci-subject"), Some(subject.to_string().as_str()));

    // No artifactType: the config's media type stands in.
    let a2 = oci_manifest(
        (&empty, 2, "application/vnd.example.sbom+json"),
        &[(&sbom, 10)],
        Some((&subject, sm.len())),
        None,
    );
    let r = s
        .put_manifest("app", &Digest::sha256(&a2).to_string(), OCI_MANIFEST, &a2)
        .await;
    assert_eq!(r.status, 201);

    // A subject that does not exist (yet) is fine.
    let ghost = Digest::sha256(b"ghost");
    let a3 = oci_manifest(
        (&empty, 2, "application/vnd.oci.empty.v1+json"),
        &[],
        Some((&ghost, 5)),
        Some("application/vnd.example.sig"),
    );
    assert_eq!(
        s.put_manifest("app", "a3", OCI_MANIFEST, &a3).await.status,
        201
    );

    let r = s.req("GET", &format!("/v2/app/referrers/{subject}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some(OCI_INDEX));
    let idx = r.json();
    assert_eq!(idx["schemaVersion"], 2);
    assert_eq!(idx["mediaType"], OCI_INDEX);
    let ms = idx["manifests"].as_array().unwrap();
    assert_eq!(ms.len(), 2);
    let by_type = |t: &str| ms.iter().find(|m| m["artifactType"] == t).cloned().unwrap();
    let m1 = by_type("application/vnd.example.sig");
    assert_eq!(m1["digest"], Digest::sha256(&a1).to_string());
    assert_eq!(m1["size"], a1.len());
    assert_eq!(m1["mediaType"], OCI_MANIFEST);
    assert_eq!(
        m1["annotations"]["org.example.kind"],
        "application/vnd.example.sig"
    );
    by_type("application/vnd.example.sbom+json");

    for q in [
        "application/vnd.example.sig",
        "application%2Fvnd.example.sig",
    ] {
        let r = s
            .req(
                "GET",
                &format!("/v2/app/referrers/{subject}?artifactType={q}"),
            )
            .await;
        assert_eq!(r.header("oci-filters-applied"), Some("artifactType"));
        let ms = r.json()["manifests"].as_array().unwrap().clone();
        assert_eq!(ms.len(), 1);
        assert_eq!(ms[0]["digest"], Digest::sha256(&a1).to_string());
    }
    let r = s
        .req(
            "GET",
            &format!("/v2/app/referrers/{subject}?artifactType=application/vnd.example.sbom+json"),
        )
        .await;
    assert_eq!(r.json()["manifests"].as_array().unwrap().len(), 1);

    // None for an unrelated digest; bad digest is 400.
    let r = s
        .req(
            "GET",
            &format!("/v2/app/referrers/{}", Digest::sha256(b"x")),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["manifests"], serde_json::json!([]));
    let r = s.req("GET", "/v2/app/referrers/sha256:nothex").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "DIGEST_INVALID");

    // Deleting a referrer removes it from the list.
    let d1 = Digest::sha256(&a1);
    assert_eq!(
        s.req("DELETE", &format!("/v2/app/manifests/{d1}"))
            .await
            .status,
        202
    );
    let r = s.req("GET", &format!("/v2/app/referrers/{subject}")).await;
    assert_eq!(r.json()["manifests"].as_array().unwrap().len(), 1);
}

async fn upload_sessions_survive_a_restart(st: Storage) {
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 199) as u8).collect();
    let d = Digest::sha256(&data);
    let loc;
    {
        let s = st.start().await;
        let r = s.req("POST", "/v2/restart/blobs/uploads/").await;
        loc = r.header("location").unwrap().to_owned();
        let r = s
            .send(
                "PATCH",
                &loc,
                &[("content-range", "0-99999")],
                data[..100_000].to_vec(),
            )
            .await;
        assert_eq!(r.status, 202);
        s.stop().await;
    }
    let s = st.start().await;
    let st = s.req("GET", &loc).await;
    assert_eq!(st.status, 204);
    assert_eq!(st.header("range"), Some("0-99999"));
    let r = s
        .send(
            "PATCH",
            &loc,
            &[("content-range", "100000-199999")],
            data[100_000..].to_vec(),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let r = s.send("PUT", &format!("{loc}?digest={d}"), &[], "").await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        s.req("GET", &format!("/v2/restart/blobs/{d}")).await.body,
        data
    );
}

/// A session whose hash state is missing (say docker-registry wrote it
/// without one) is re-hashed from its data.
async fn upload_resumes_without_hash_state(st: Storage) {
    let data = b"resumable data without state".repeat(1000);
    let d = Digest::sha256(&data);
    let loc;
    {
        let s = st.start().await;
        let r = s.req("POST", "/v2/nohs/blobs/uploads/").await;
        loc = r.header("location").unwrap().to_owned();
        s.send("PATCH", &loc, &[], data[..5000].to_vec()).await;
        s.stop().await;
    }
    for f in st.files().await {
        if let Some(i) = f.find("/hashstates/") {
            st.remove_tree(&f[..i + "/hashstates".len()]).await;
        }
    }
    assert!(st.files().await.iter().all(|f| !f.contains("hashstates")));
    let s = st.start().await;
    s.send("PATCH", &loc, &[], data[5000..].to_vec()).await;
    let r = s.send("PUT", &format!("{loc}?digest={d}"), &[], "").await;
    assert_eq!(r.status, 201, "{}", r.text());
}

async fn sha512_blobs(st: Storage) {
    let s = st.start().await;
    let data = b"sha512 content";
    let mut h = hoist_oci::Digester::new(hoist_oci::Algorithm::Sha512);
    h.update(data);
    let d = h.finish();
    let r = s
        .send(
            "POST",
            &format!("/v2/x/blobs/uploads/?digest={d}"),
            &[],
            data.to_vec(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        s.req("GET", &format!("/v2/x/blobs/{d}"))
            .await
            .body
            .as_ref(),
        data
    );
    let stored = st
        .read(&format!("blobs/sha512/{}/{}/data", &d.hex()[..2], d.hex()))
        .await;
    assert_eq!(stored.as_deref(), Some(&data[..]));
}

/// The tags list is cached while the tags directory is unchanged: a tag
/// pushed, a tag deleted, and a tag written into the directory by another
/// process (as docker-registry sharing the root would) all show at once,
/// also after the listing has been cached.
async fn tags_list_never_serves_a_stale_cache(st: Storage) {
    let s = st.start().await;
    let (m, _) = push_image(&s, "c/t", "v1", "one").await;
    push_image(&s, "c/t", "v2", "one").await;
    let tags = |r: Resp| r.json()["tags"].clone();
    // Past the two seconds in which a directory counts as still changing.
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    for _ in 0..2 {
        let r = s.req("GET", "/v2/c/t/tags/list").await;
        assert_eq!(tags(r), serde_json::json!(["v1", "v2"]));
    }
    push_image(&s, "c/t", "v3", "one").await;
    let r = s.req("GET", "/v2/c/t/tags/list").await;
    assert_eq!(tags(r), serde_json::json!(["v1", "v2", "v3"]));
    assert_eq!(s.req("DELETE", "/v2/c/t/manifests/v1").await.status, 202);
    let r = s.req("GET", "/v2/c/t/tags/list").await;
    assert_eq!(tags(r), serde_json::json!(["v2", "v3"]));

    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let r = s.req("GET", "/v2/c/t/tags/list").await;
    assert_eq!(tags(r), serde_json::json!(["v2", "v3"]));
    let tag_dir = "repositories/c/t/_manifests/tags/v9";
    let hex = m.hex();
    st.write(&format!("{tag_dir}/current/link"), m.to_string().as_bytes())
        .await;
    st.write(
        &format!("{tag_dir}/index/sha256/{hex}/link"),
        m.to_string().as_bytes(),
    )
    .await;
    let r = s.req("GET", "/v2/c/t/tags/list").await;
    assert_eq!(tags(r), serde_json::json!(["v2", "v3", "v9"]));
    let r = s.req("GET", "/v2/c/t/tags/list?n=1&last=v2").await;
    assert_eq!(tags(r), serde_json::json!(["v3"]));
}

/// One test of a behaviour on one driver.
macro_rules! behaviour_test {
    ($name:ident, $driver:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            super::$name(super::Storage::$driver()).await
        }
    };
}

/// Makes each behaviour a test on every storage driver; those after
/// `not_on_s3:` skip S3, each for the reason given where it is listed.
macro_rules! on_every_driver {
    ($($name:ident),* $(,)? ; not_on_s3: $($local:ident),* $(,)?) => {
        mod fs {
            $(behaviour_test!($name, fs);)*
            $(behaviour_test!($local, fs);)*
        }
        mod s3 {
            $(behaviour_test!($name, s3);)*
        }
        mod mem {
            $(behaviour_test!($name, mem);)*
            $(behaviour_test!($local, mem);)*
        }
    };
}

on_every_driver!(
    base_endpoint_and_health,
    large_blob_streams_whole_and_in_unaligned_ranges,
    big_chunks_push_then_pull_with_ranges,
    monolithic_push_then_pull_with_ranges,
    post_then_put_and_chunked_patch_uploads,
    digest_mismatch_commits_nothing,
    manifests_by_tag_and_digest,
    oci_index_and_manifest_list_need_their_children,
    tags_list_paginates,
    catalog_paginates_in_distribution_order,
    deletes_tag_alone_manifest_and_blob,
    deletes_disabled_and_read_only,
    cross_repository_mount,
    referrers_api_with_subject_and_filter,
    upload_sessions_survive_a_restart,
    upload_resumes_without_hash_state,
    tags_list_never_serves_a_stale_cache,
    ;
    not_on_s3:
    // s3s-fs, the test S3 server, names a file after the base64 of each
    // object's key, and sha512 keys are too long for that file name (real
    // S3 takes keys of up to 1024 bytes).
    sha512_blobs,
);
