//! `/metrics`: requests are counted by method, route kind and status, bytes
//! both ways, upload requests in flight; the scrape parses as the Prometheus
//! text format and never carries a repository name.

mod common;

use common::*;
use std::collections::HashMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Parses the text format: `name{labels} value` per sample line; `# HELP`
/// and `# TYPE` lines must name a metric. Panics on anything else.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut w = rest.split_whitespace();
            let kind = w.next().unwrap();
            assert!(matches!(kind, "HELP" | "TYPE"), "bad comment line {line:?}");
            assert!(
                w.next().is_some_and(|n| n.starts_with("hoist_registry_")),
                "{line:?}"
            );
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        assert!(
            out.insert(series.to_owned(), v).is_none(),
            "duplicate series {series}"
        );
    }
    out
}

async fn scrape(s: &TestServer) -> (HashMap<String, f64>, usize) {
    let r = s.req("GET", "/metrics").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    (parse(&r.text()), r.body.len())
}

fn get(m: &HashMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

fn req_series(method: &str, route: &str, status: u16) -> String {
    format!("hoist_registry_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_bytes_and_durations_are_counted_without_repo_names() {
    let d = tempfile::tempdir().unwrap();
    let s = TestServer::start(d.path()).await;
    let (before, _) = scrape(&s).await;
    assert_eq!(
        get(&before, "hoist_registry_build_info{version=\"0.1.0\"}"),
        1.0,
        "{before:?}"
    );

    let (digest, manifest) = push_image(&s, "secret-team/secret-app", "v1", "m").await;
    let blob = b"metrics blob bytes ".repeat(1000);
    let bd = s.push_blob("secret-team/secret-app", &blob).await;
    assert_eq!(s.req("GET", "/v2/").await.status, 200);
    assert_eq!(s.req("GET", "/v2/_catalog").await.status, 200);
    assert_eq!(
        s.req("GET", "/v2/secret-team/secret-app/tags/list")
            .await
            .status,
        200
    );
    for _ in 0..3 {
        let r = s
            .send(
                "GET",
                &format!("/v2/secret-team/secret-app/manifests/{digest}"),
                &[("accept", DOCKER_MANIFEST)],
                Vec::new(),
            )
            .await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(
        s.req("GET", "/v2/secret-team/secret-app/manifests/nope")
            .await
            .status,
        404
    );
    assert_eq!(
        s.req(
            "GET",
            &format!("/v2/secret-team/secret-app/referrers/{digest}")
        )
        .await
        .status,
        200
    );
    assert_eq!(s.req("BREW", "/v2/").await.status, 405);

    let (mid, mid_len) = scrape(&s).await;
    let r = s
        .req("GET", &format!("/v2/secret-team/secret-app/blobs/{bd}"))
        .await;
    assert_eq!(r.body.len(), blob.len());
    let (after, _) = scrape(&s).await;

    let delta = |m: &HashMap<String, f64>, series: &str| get(m, series) - get(&before, series);
    assert_eq!(delta(&mid, &req_series("GET", "manifest", 200)), 3.0);
    assert_eq!(delta(&mid, &req_series("GET", "manifest", 404)), 1.0);
    assert_eq!(delta(&mid, &req_series("PUT", "manifest", 201)), 1.0);
    // push_image pushes two blobs, then one more: monolithic POSTs.
    assert_eq!(delta(&mid, &req_series("POST", "upload", 201)), 3.0);
    assert_eq!(delta(&mid, &req_series("GET", "base", 200)), 1.0);
    assert_eq!(delta(&mid, &req_series("GET", "catalog", 200)), 1.0);
    assert_eq!(delta(&mid, &req_series("GET", "tags", 200)), 1.0);
    assert_eq!(delta(&mid, &req_series("GET", "referrers", 200)), 1.0);
    assert_eq!(
        delta(&mid, &req_series("OTHER", "base", 405)),
        1.0,
        "{mid:#?}"
    );
    assert_eq!(delta(&after, &req_series("GET", "blob", 200)), 1.0);
    // The first scrape counted itself once it had answered.
    assert!(get(&after, &req_series("GET", "other", 200)) >= 2.0);

    // Bytes sent between the two last scrapes: the blob, plus the body of
    // the scrape before it (counted as it was sent).
    let sent = "hoist_registry_http_response_body_bytes_total";
    assert_eq!(
        get(&after, sent) - get(&mid, sent),
        (blob.len() + mid_len) as f64
    );
    let received = "hoist_registry_http_request_body_bytes_total";
    assert!(delta(&mid, received) >= (blob.len() + manifest.len()) as f64);

    let count = |route: &str| {
        get(
            &after,
            &format!("hoist_registry_http_request_duration_seconds_count{{route=\"{route}\"}}"),
        )
    };
    // One PUT, three GETs and one 404.
    assert_eq!(count("manifest"), 5.0);
    assert_eq!(count("blob"), 1.0);
    assert_eq!(
        get(
            &after,
            "hoist_registry_http_request_duration_seconds_bucket{route=\"blob\",le=\"+Inf\"}"
        ),
        1.0
    );

    // No repository name, tag or path in any label.
    let text = s.req("GET", "/metrics").await.text();
    assert!(!text.contains("secret"), "{text}");
    assert!(!text.contains("/v2"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_in_progress_is_a_gauge() {
    let d = tempfile::tempdir().unwrap();
    let s = TestServer::start(d.path()).await;
    let gauge = "hoist_registry_blob_uploads_in_progress";
    let r = s.req("POST", "/v2/up/load/blobs/uploads/").await;
    assert_eq!(r.status, 202);
    let loc = r.header("location").unwrap().to_owned();
    // A PATCH whose body has not all arrived yet.
    let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    c.write_all(
        format!(
            "PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: 10\r\nConnection: close\r\n\r\nhello"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut seen = 0.0;
    for _ in 0..100 {
        seen = get(&scrape(&s).await.0, gauge);
        if seen == 1.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(seen, 1.0);
    c.write_all(b"world").await.unwrap();
    let mut resp = Vec::new();
    c.read_to_end(&mut resp).await.unwrap();
    assert!(
        resp.starts_with(b"HTTP/1.1 202"),
        "{}",
        String::from_utf8_lossy(&resp)
    );
    assert_eq!(get(&scrape(&s).await.0, gauge), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_leave_the_main_address() {
    let d = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(d.path(), |c| c.metrics_on_main = false).await;
    assert_eq!(s.req("GET", "/metrics").await.status, 404);
}
