//! Hostile registries: tiny hand-written axum servers that lie, cut and
//! redirect. Each case ends in a clear error, or (a cut, a redirect) in
//! a correct fetch that did not repeat verified bytes or leak credentials.

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, Response};
use common::opts;
use hoist_oci::{media_type, Descriptor, Digest};
use hoist_registry_client::{Credentials, Error, Options, Partial, RegistryClient};
use std::sync::{Arc, Mutex};

/// What the server saw: method, path and query, headers.
type Seen = Arc<Mutex<Vec<(Method, String, HeaderMap)>>>;

/// Starts a server answering every request with `answer`; returns its
/// address and the requests it saw.
async fn hostile<F>(answer: F) -> (String, Seen)
where
    F: Fn(&Method, &str, &HeaderMap, usize) -> Response<Body> + Send + Sync + 'static,
{
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let answer = Arc::new(answer);
    let app = axum::Router::new().fallback(move |req: Request<Body>| {
        let (s, answer) = (s.clone(), answer.clone());
        async move {
            let pq = req
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let n = {
                let mut v = s.lock().unwrap();
                v.push((req.method().clone(), pq.clone(), req.headers().clone()));
                v.len()
            };
            answer(req.method(), &pq, req.headers(), n)
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(l, app).await });
    (addr, seen)
}

fn resp(status: u16, headers: &[(&str, String)], body: impl Into<Body>) -> Response<Body> {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    b.body(body.into()).unwrap()
}

/// A body that sends `data`, lets it reach the client, then breaks the connection.
fn cut_body(data: Vec<u8>) -> Body {
    let stream = futures_util::stream::unfold(Some(data), |state| async move {
        match state {
            Some(d) => Some((Ok(bytes::Bytes::from(d)), None)),
            None => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                Some((Err(std::io::Error::other("cut")), None))
            }
        }
    });
    Body::from_stream(stream)
}

fn blob(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 13 % 241) as u8).collect()
}

fn desc(data: &[u8]) -> Descriptor {
    Descriptor::new(
        media_type::OCI_LAYER_GZIP,
        Digest::sha256(data),
        data.len() as u64,
    )
}

async fn fetch(c: &RegistryClient, d: &Descriptor) -> Result<Vec<u8>, Error> {
    let f = tempfile::tempfile().unwrap();
    let mut p = Partial::new(hoist_oci::Algorithm::Sha256);
    c.fetch_blob("app", d, &f, &mut p, &|_| {}).await?;
    let mut out = vec![0u8; d.size as usize];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut out, 0).unwrap();
    Ok(out)
}

fn ok_or_ping(path: &str) -> Option<Response<Body>> {
    (path == "/v2/").then(|| resp(200, &[], ""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_whose_digest_does_not_match_is_refused() {
    let good = blob(5000);
    let mut bad = good.clone();
    bad[4000] ^= 1;
    let (addr, _) =
        hostile(move |_, p, _, _| ok_or_ping(p).unwrap_or_else(|| resp(200, &[], bad.clone())))
            .await;
    let c = RegistryClient::new(&addr, &opts()).unwrap();
    let e = fetch(&c, &desc(&good)).await.unwrap_err();
    assert_eq!(e.code(), Some("DIGEST_INVALID"), "{e}");
    let t = e.to_string();
    assert!(
        t.contains(&addr)
            && t.contains(&Digest::sha256(&good).to_string())
            && t.contains("hash to"),
        "{t}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_of_the_wrong_size_is_refused() {
    let good = blob(5000);
    let longer = blob(6000);
    let (addr, _) =
        hostile(move |_, p, _, _| ok_or_ping(p).unwrap_or_else(|| resp(200, &[], longer.clone())))
            .await;
    let c = RegistryClient::new(&addr, &opts()).unwrap();
    let e = fetch(&c, &desc(&good)).await.unwrap_err();
    assert_eq!(e.code(), Some("SIZE_INVALID"), "{e}");
    assert!(e.to_string().contains("5000"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_over_4_mib_is_refused() {
    let (addr, _) = hostile(|_, p, _, _| {
        ok_or_ping(p).unwrap_or_else(|| {
            let mut m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"pad":""#.to_vec();
            m.extend(std::iter::repeat_n(b'x', 5 << 20));
            m.extend(br#""}"#);
            resp(200, &[("content-type", media_type::OCI_INDEX.into())], m)
        })
    })
    .await;
    let c = RegistryClient::new(&addr, &opts()).unwrap();
    let e = c.get_manifest("app", "v1").await.unwrap_err();
    assert_eq!(e.code(), Some("SIZE_INVALID"), "{e}");
    assert!(
        e.to_string().contains("manifest v1") && e.to_string().contains("limit"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_media_type_contradicting_content_type_is_refused() {
    let (addr, _) = hostile(|_, p, _, _| {
        ok_or_ping(p).unwrap_or_else(|| {
            let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
            resp(200, &[("content-type", media_type::DOCKER_MANIFEST.into())], m.to_vec())
        })
    })
    .await;
    let c = RegistryClient::new(&addr, &opts()).unwrap();
    let e = c.get_manifest("app", "v1").await.unwrap_err();
    assert_eq!(e.code(), Some("MANIFEST_INVALID"), "{e}");
    assert!(e.to_string().contains(media_type::DOCKER_MANIFEST), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_fetched_by_digest_must_hash_to_it() {
    let (addr, _) = hostile(|_, p, _, _| {
        ok_or_ping(p).unwrap_or_else(|| {
            let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
            resp(200, &[("content-type", media_type::OCI_INDEX.into())], m.to_vec())
        })
    })
    .await;
    let c = RegistryClient::new(&addr, &opts()).unwrap();
    let want = Digest::sha256(b"another document");
    let e = c.get_manifest("app", &want.to_string()).await.unwrap_err();
    assert_eq!(e.code(), Some("DIGEST_INVALID"), "{e}");
    assert!(e.to_string().contains(&want.to_string()), "{e}");
    // By tag, a lying Docker-Content-Digest is refused too.
    let (addr, _) = hostile(move |_, p, _, _| {
        ok_or_ping(p).unwrap_or_else(|| {
            let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
            resp(200, &[("content-type", media_type::OCI_INDEX.into()), ("docker-content-digest", Digest::sha256(b"x").to_string())], m.to_vec())
        })
    })
    .await;
    let c = RegistryClient::new(&addr, &opts()).unwrap();
    let e = c.get_manifest("app", "v1").await.unwrap_err();
    assert_eq!(e.code(), Some("DIGEST_INVALID"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_server_answering_garbage_is_a_clear_error() {
    let (tok, _) = hostile(|_, _, _, _| {
        resp(
            200,
            &[("content-type", "application/json".into())],
            "<html>not json",
        )
    })
    .await;
    let realm = format!("http://{tok}/token");
    let (addr, _) = hostile(move |_, _, h, _| {
        if h.contains_key("authorization") {
            return resp(200, &[], "");
        }
        resp(
            401,
            &[(
                "www-authenticate",
                format!(r#"Bearer realm="{realm}",service="s""#),
            )],
            "",
        )
    })
    .await;
    let c = RegistryClient::new(&addr, &opts()).unwrap();
    let e = c.get_manifest("app", "v1").await.unwrap_err();
    assert_eq!(e.code(), Some("UNAUTHORIZED"), "{e}");
    let t = e.to_string();
    assert!(
        t.contains("token server") && t.contains(&tok) && t.contains("not a token response"),
        "{t}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_another_host_gets_no_credentials() {
    let data = blob(3000);
    let d = Digest::sha256(&data);
    let body = data.clone();
    let (store, store_seen) = hostile(move |_, _, _, _| resp(200, &[], body.clone())).await;
    let (addr, seen) = hostile(move |_, p, h, _| {
        if !h.contains_key("authorization") {
            return resp(
                401,
                &[("www-authenticate", r#"Basic realm="r""#.into())],
                "",
            );
        }
        if p.starts_with("/v2/app/blobs/") {
            return resp(
                307,
                &[("location", format!("http://{store}/bucket/{}", d.hex()))],
                "",
            );
        }
        resp(200, &[], "")
    })
    .await;
    let o = Options {
        credentials: Some(Credentials::new("alice", "secret-pw")),
        ..opts()
    };
    let c = RegistryClient::new(&addr, &o).unwrap();
    assert_eq!(fetch(&c, &desc(&data)).await.unwrap(), data);
    let registry_auth = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, _, h)| h.contains_key("authorization"))
        .count();
    assert!(registry_auth > 0, "the registry itself got the credentials");
    for (_, p, h) in store_seen.lock().unwrap().iter() {
        assert!(
            !h.contains_key("authorization"),
            "credentials followed the redirect to {p}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_cut_midway_resumes_without_fetching_twice() {
    let data = blob(100_000);
    let d = Digest::sha256(&data);
    let body = data.clone();
    let (addr, seen) = hostile(move |_, p, h, n| {
        if let Some(r) = ok_or_ping(p) {
            return r;
        }
        let len = body.len();
        match h.get("range").and_then(|v| v.to_str().ok()) {
            None if n <= 2 => {
                // The first GET: announces everything, sends 40 000 bytes, cuts.
                resp(
                    200,
                    &[("content-length", len.to_string())],
                    cut_body(body[..40_000].to_vec()),
                )
            }
            Some(r) => {
                let (a, b) = r.trim_start_matches("bytes=").split_once('-').unwrap();
                let a: usize = a.parse().unwrap();
                let b: usize = if b.is_empty() {
                    len - 1
                } else {
                    b.parse().unwrap()
                };
                resp(
                    206,
                    &[("content-range", format!("bytes {a}-{b}/{len}"))],
                    body[a..=b].to_vec(),
                )
            }
            None => resp(200, &[], body.clone()),
        }
    })
    .await;
    let c = RegistryClient::new(&addr, &opts()).unwrap();
    let got = fetch(
        &c,
        &Descriptor::new(media_type::OCI_LAYER_GZIP, d.clone(), 100_000),
    )
    .await
    .unwrap();
    assert!(got == data, "the resumed blob differs");
    let seen = seen.lock().unwrap();
    let ranges: Vec<String> = seen
        .iter()
        .filter(|(_, p, _)| p.contains("/blobs/"))
        .filter_map(|(_, _, h)| h.get("range").map(|v| v.to_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        ranges,
        ["bytes=40000-99999"],
        "the resume asked for other bytes: {:?}",
        seen.iter()
            .map(|(m, p, h)| (m, p, h.get("range")))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_ignoring_range_gets_one_plain_stream() {
    let data = blob(1 << 20);
    let body = data.clone();
    let (addr, seen) =
        hostile(move |_, p, _, _| ok_or_ping(p).unwrap_or_else(|| resp(200, &[], body.clone())))
            .await;
    let c = RegistryClient::new(&addr, &opts()).unwrap();
    assert!(fetch(&c, &desc(&data)).await.unwrap() == data);
    let gets = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, p, _)| p.contains("/blobs/"))
        .count();
    assert_eq!(
        gets, 1,
        "a 200 without Content-Range must be read as the one stream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_cut_midway_resume_within_the_range() {
    let data = blob(1 << 20);
    let body = data.clone();
    let cut_once = Arc::new(Mutex::new(true));
    let (addr, seen) = hostile(move |_, p, h, _| {
        if let Some(r) = ok_or_ping(p) {
            return r;
        }
        let len = body.len();
        let r = h.get("range").unwrap().to_str().unwrap();
        let (a, b) = r.trim_start_matches("bytes=").split_once('-').unwrap();
        let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
        let hdr = [
            ("content-range", format!("bytes {a}-{b}/{len}")),
            ("content-length", (b + 1 - a).to_string()),
        ];
        if a == 196_608 && std::mem::take(&mut *cut_once.lock().unwrap()) {
            return resp(206, &hdr, cut_body(body[a..a + 1000].to_vec()));
        }
        resp(206, &hdr, body[a..=b].to_vec())
    })
    .await;
    let c = RegistryClient::new(&addr, &opts()).unwrap();
    assert!(fetch(&c, &desc(&data)).await.unwrap() == data);
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter()
            .any(|(_, _, h)| h.get("range").is_some_and(|v| v == "bytes=197608-262143")),
        "the cut range did not resume where it stopped"
    );
    // Every range bounded.
    assert!(seen
        .iter()
        .filter_map(|(_, _, h)| h.get("range"))
        .all(|v| !v.to_str().unwrap().ends_with('-')));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_stays_down_is_named_in_the_error() {
    let (addr, seen) = hostile(|_, _, _, _| {
        resp(
            503,
            &[],
            r#"{"errors":[{"code":"UNAVAILABLE","message":"down for maintenance"}]}"#,
        )
    })
    .await;
    let c = RegistryClient::new(&addr, &opts()).unwrap();
    let e = c.get_manifest("lib/app", "v1").await.unwrap_err();
    assert!(e.is_unavailable());
    let t = e.to_string();
    assert!(
        t.contains(&addr) && t.contains("lib/app") && t.contains("down for maintenance"),
        "{t}"
    );
    // The ping and then 1 + 3 retries of the GET.
    assert_eq!(seen.lock().unwrap().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_cached_per_scope_and_fetched_again_when_refused() {
    let issued = Arc::new(Mutex::new(0usize));
    let i = issued.clone();
    let (tok, tok_seen) = hostile(move |_, _, _, _| {
        let mut n = i.lock().unwrap();
        *n += 1;
        resp(200, &[], format!(r#"{{"token":"t{n}","expires_in":300}}"#))
    })
    .await;
    let realm = format!("http://{tok}/token");
    let uses = Arc::new(Mutex::new(0usize));
    let (addr, _) = hostile(move |_, _, h, _| {
        let auth = h.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        let mut u = uses.lock().unwrap();
        // Token t1 stops being good after three uses (as an expired one would).
        let good = auth == "Bearer t2" || (auth == "Bearer t1" && *u < 3);
        if good {
            *u += 1;
            let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
            return resp(200, &[("content-type", media_type::OCI_INDEX.into())], m.to_vec());
        }
        resp(401, &[("www-authenticate", format!(r#"Bearer realm="{realm}",service="reg",scope="repository:app:pull""#))], "")
    })
    .await;
    let o = Options {
        credentials: Some(Credentials::new("u", "p")),
        ..opts()
    };
    let c = RegistryClient::new(&addr, &o).unwrap();
    for _ in 0..3 {
        c.get_manifest("app", "v1").await.unwrap();
    }
    assert_eq!(*issued.lock().unwrap(), 1, "the token was not reused");
    c.get_manifest("app", "v1").await.unwrap();
    assert_eq!(
        *issued.lock().unwrap(),
        2,
        "a refused token was not replaced"
    );
    let seen = tok_seen.lock().unwrap();
    let (_, q, h) = &seen[0];
    assert!(
        q.contains("scope=repository%3Aapp%3Apull") && q.contains("service=reg"),
        "{q}"
    );
    assert!(
        h.contains_key("authorization"),
        "the token request carried no credentials"
    );
}

/// A chunked upload whose PATCH fails after the registry kept part of it
/// resumes from what the registry says it has (`GET` → `Range: 0-N`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_patch_resumes_from_the_registry_s_offset() {
    use axum::body::to_bytes;
    let data = blob(250_000);
    let held: Arc<Mutex<Vec<u8>>> = Arc::default();
    let patches: Arc<Mutex<Vec<String>>> = Arc::default();
    let (h, p) = (held.clone(), patches.clone());
    let app = axum::Router::new().fallback(move |req: Request<Body>| {
        let (held, patches) = (h.clone(), p.clone());
        async move {
            let (parts, body) = req.into_parts();
            let path = parts.uri.path().to_owned();
            let body = to_bytes(body, 1 << 30).await.unwrap();
            let loc = [("location", "/v2/app/blobs/uploads/u1".to_owned())];
            let mut held = held.lock().unwrap();
            let range = |n: usize| [("range", format!("0-{}", n.max(1) - 1)), loc[0].clone()];
            match (parts.method.as_str(), path.as_str()) {
                ("GET", "/v2/") => resp(200, &[], ""),
                ("POST", _) => resp(202, &loc, ""),
                ("PATCH", _) => {
                    let cr = parts.headers["content-range"].to_str().unwrap().to_owned();
                    let mut p = patches.lock().unwrap();
                    p.push(cr);
                    if p.len() == 2 {
                        // Keeps 1 000 bytes of the second chunk, then fails.
                        held.extend_from_slice(&body[..1000]);
                        return resp(500, &[], "");
                    }
                    held.extend_from_slice(&body);
                    resp(202, &range(held.len()), "")
                }
                ("GET", _) => resp(204, &range(held.len()), ""),
                ("PUT", _) => {
                    let q = parts.uri.query().unwrap_or("");
                    let want = Digest::sha256(&held);
                    if q.contains(&want.to_string()) {
                        resp(201, &[], "")
                    } else {
                        resp(400, &[], r#"{"errors":[{"code":"DIGEST_INVALID","message":"digest did not match"}]}"#)
                    }
                }
                _ => resp(404, &[], ""),
            }
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(l, app).await });
    let c = RegistryClient::new(&addr, &opts()).unwrap();
    let body = hoist_registry_client::UploadBody::Bytes(data.clone().into());
    c.push_blob_chunked("app", &desc(&data), body, 100_000)
        .await
        .unwrap();
    assert!(
        *held.lock().unwrap() == data,
        "the registry holds other bytes"
    );
    assert_eq!(
        *patches.lock().unwrap(),
        ["0-99999", "100000-199999", "101000-199999", "200000-249999"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_waits_for_retry_after() {
    let (addr, seen) = hostile(|_, p, _, n| {
        if let Some(r) = ok_or_ping(p) {
            return r;
        }
        if n == 2 {
            return resp(
                429,
                &[("retry-after", "1".into())],
                r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#,
            );
        }
        resp(200, &[], "")
    })
    .await;
    let c = RegistryClient::new(&addr, &opts()).unwrap();
    let t = std::time::Instant::now();
    assert_eq!(
        c.blob_size("app", &Digest::sha256(b"x")).await.unwrap(),
        Some(0)
    );
    assert!(
        t.elapsed() >= std::time::Duration::from_secs(1),
        "Retry-After was not honoured"
    );
    assert_eq!(seen.lock().unwrap().len(), 3);
}

/// A fetch that gives up (no retries left) keeps its verified prefix: the
/// next fetch, even with a hash state rebuilt elsewhere (a new process, the
/// store's saved state), asks only for the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fetch_resumes_from_its_verified_prefix() {
    let data = blob(100_000);
    let body = data.clone();
    let (addr, seen) = hostile(move |_, p, h, _| {
        if let Some(r) = ok_or_ping(p) {
            return r;
        }
        let len = body.len();
        match h.get("range").and_then(|v| v.to_str().ok()) {
            None => resp(
                200,
                &[("content-length", len.to_string())],
                cut_body(body[..30_000].to_vec()),
            ),
            Some(r) => {
                let (a, b) = r.trim_start_matches("bytes=").split_once('-').unwrap();
                let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
                resp(
                    206,
                    &[("content-range", format!("bytes {a}-{b}/{len}"))],
                    body[a..=b].to_vec(),
                )
            }
        }
    })
    .await;
    let o = Options {
        retries: 0,
        ..opts()
    };
    let c = RegistryClient::new(&addr, &o).unwrap();
    let d = desc(&data);
    let f = tempfile::tempfile().unwrap();
    let mut p = Partial::new(hoist_oci::Algorithm::Sha256);
    let e = c
        .fetch_blob("app", &d, &f, &mut p, &|_| {})
        .await
        .unwrap_err();
    assert!(e.is_unavailable(), "{e}");
    assert_eq!(p.offset, 30_000);
    // The state rebuilt from the file, as another process would.
    let mut prefix = vec![0u8; 30_000];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut prefix, 0).unwrap();
    let mut h = hoist_oci::Digester::new(hoist_oci::Algorithm::Sha256);
    h.update(&prefix);
    let mut p = Partial::resume(30_000, Box::new(h));
    c.fetch_blob("app", &d, &f, &mut p, &|_| {}).await.unwrap();
    let mut got = vec![0u8; data.len()];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut got, 0).unwrap();
    assert!(got == data);
    let ranges: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(_, _, h)| h.get("range").map(|v| v.to_str().unwrap().to_owned()))
        .collect();
    assert_eq!(ranges, ["bytes=30000-99999"]);
}
