//! Test support: a real `hoist serve` (in process, on a loopback port) and a
//! minimal HTTP/1.1 client on hyper, the same HTTP stack as the server.

#![allow(dead_code)]

pub mod storage;

use bytes::Bytes;
use hoist_oci::Digest;
use hoist_registry::ServerConfig;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderMap;
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server; stopped (gracefully) by [`TestServer::stop`] or on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    pub root: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start(root: &Path) -> TestServer {
        Self::start_with(root, |_| {}).await
    }

    pub async fn start_with(root: &Path, tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let mut cfg = ServerConfig::new(root.to_path_buf());
        tweak(&mut cfg);
        Self::start_cfg(cfg, root).await
    }

    /// Starts a server with `cfg` (any storage); `root` is where the test
    /// looks at the stored files.
    pub async fn start_cfg(mut cfg: ServerConfig, root: &Path) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        cfg.shutdown_grace = std::time::Duration::from_secs(2);
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(hoist_registry::serve(listener, cfg, async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            root: root.to_path_buf(),
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }

    pub async fn req(&self, method: &str, path: &str) -> Resp {
        send(self.addr, method, path, &[], Vec::new()).await
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Vec<u8>>,
    ) -> Resp {
        send(self.addr, method, path, headers, body.into()).await
    }

    /// Pushes a blob monolithically (POST ?digest=) and returns its digest.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> Digest {
        let d = Digest::sha256(data);
        let r = self
            .send(
                "POST",
                &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
                &[("content-type", "application/octet-stream")],
                data.to_vec(),
            )
            .await;
        assert_eq!(r.status, 201, "push blob: {}", r.text());
        d
    }

    /// PUTs a manifest and returns the response.
    pub async fn put_manifest(&self, repo: &str, reference: &str, mt: &str, body: &[u8]) -> Resp {
        self.send(
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("content-type", mt)],
            body.to_vec(),
        )
        .await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A response, body collected.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers.get(k).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The first error code of a distribution-spec error body.
    pub fn code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {}", self.text()))
            .to_owned()
    }
}

pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Resp {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body))).unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Resp {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A Docker Schema 2 manifest for a config and layers (digest, size).
pub fn schema2(config: (&Digest, usize), layers: &[(&Digest, usize)]) -> Vec<u8> {
    let layers: Vec<_> = layers
        .iter()
        .map(|(d, s)| {
            serde_json::json!({
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "digest": d.to_string(), "size": s
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": config.0.to_string(), "size": config.1
        },
        "layers": layers,
    }))
    .unwrap()
}

/// An OCI manifest, optionally an artifact with a subject.
pub fn oci_manifest(
    config: (&Digest, usize, &str),
    layers: &[(&Digest, usize)],
    subject: Option<(&Digest, usize)>,
    artifact_type: Option<&str>,
) -> Vec<u8> {
    let layers: Vec<_> = layers
        .iter()
        .map(|(d, s)| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": d.to_string(), "size": s
            })
        })
        .collect();
    let mut m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": config.2, "digest": config.0.to_string(), "size": config.1 },
        "layers": layers,
    });
    if let Some((d, s)) = subject {
        m["subject"] =
            serde_json::json!({ "mediaType": OCI_MANIFEST, "digest": d.to_string(), "size": s });
    }
    if let Some(a) = artifact_type {
        m["artifactType"] = serde_json::json!(a);
        m["annotations"] = serde_json::json!({ "org.example.kind": a });
    }
    serde_json::to_vec(&m).unwrap()
}

/// An index of manifests (digest, size, media type).
pub fn index(media_type: &str, children: &[(&Digest, usize, &str)]) -> Vec<u8> {
    let ms: Vec<_> = children
        .iter()
        .map(|(d, s, mt)| {
            serde_json::json!({
                "mediaType": mt, "digest": d.to_string(), "size": s,
                "platform": { "os": "linux", "architecture": "amd64" }
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": media_type, "manifests": ms
    }))
    .unwrap()
}

/// Pushes config + one layer + a Schema 2 manifest under `tag`; returns the
/// manifest digest and its bytes.
pub async fn push_image(s: &TestServer, repo: &str, tag: &str, seed: &str) -> (Digest, Vec<u8>) {
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"seed":"{seed}"}}"#
    );
    let layer = format!("layer bytes of {seed}").repeat(100);
    let c = s.push_blob(repo, config.as_bytes()).await;
    let l = s.push_blob(repo, layer.as_bytes()).await;
    let m = schema2((&c, config.len()), &[(&l, layer.len())]);
    let r = s.put_manifest(repo, tag, DOCKER_MANIFEST, &m).await;
    assert_eq!(r.status, 201, "put manifest: {}", r.text());
    (Digest::sha256(&m), m)
}

/// Every regular file under `dir`, relative.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// An image push that the registry accepted during a gc race:
/// (repository, manifest bytes, layer digest, layer bytes).
pub type Accepted = (String, Vec<u8>, Digest, Vec<u8>);

/// Sets a flag when dropped: stops a collector loop even when a pusher panics.
pub struct StopOnDrop(pub std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// `clients` pushers at once, each pushing `per` images whose layers are
/// old `base` blobs that nothing references: each layer is mounted from
/// `base`, uploaded again when the mount finds it gone, and a manifest PUT
/// that finds a blob gone is retried. Returns every push that was accepted.
pub async fn racing_pushes(
    s: std::sync::Arc<TestServer>,
    base: &[Vec<u8>],
    clients: usize,
    per: usize,
) -> Vec<Accepted> {
    let base = std::sync::Arc::new(base.to_vec());
    let mut pushers = Vec::new();
    for p in 0..clients {
        let (s, base) = (s.clone(), base.clone());
        pushers.push(tokio::spawn(async move {
            let mut accepted = Vec::new();
            for i in 0..per {
                let repo = format!("app{p}");
                let layer = &base[(p * per + i) % base.len()];
                let ld = Digest::sha256(layer);
                let config =
                    format!(r#"{{"rootfs":{{"type":"layers","diff_ids":[]}},"p":{p},"i":{i}}}"#);
                let m = schema2(
                    (&Digest::sha256(config.as_bytes()), config.len()),
                    &[(&ld, layer.len())],
                );
                let mut tries = 0;
                loop {
                    tries += 1;
                    assert!(tries < 20, "push never succeeded");
                    let r = s
                        .req(
                            "POST",
                            &format!("/v2/{repo}/blobs/uploads/?mount={ld}&from=base"),
                        )
                        .await;
                    if r.status != 201 {
                        s.push_blob(&repo, layer).await;
                    }
                    s.push_blob(&repo, config.as_bytes()).await;
                    let r = s
                        .put_manifest(&repo, &format!("t{i}"), DOCKER_MANIFEST, &m)
                        .await;
                    if r.status == 201 {
                        accepted.push((repo.clone(), m.clone(), ld.clone(), layer.clone()));
                        break;
                    }
                    assert_eq!(r.code(), "MANIFEST_BLOB_UNKNOWN", "{}", r.text());
                }
            }
            accepted
        }));
    }
    let mut accepted = Vec::new();
    for p in pushers {
        accepted.extend(p.await.unwrap());
    }
    accepted
}

/// The gc race (distribution#3045): a collector runs over and over on
/// `storage` (at least `min_runs` times) while [`racing_pushes`] push
/// images built on the old `base` blobs; once more after them all. Every
/// push that was accepted must still have its manifest and layer.
pub async fn gc_race(
    s: std::sync::Arc<TestServer>,
    storage: hoist_registry::StorageConfig,
    base: &[Vec<u8>],
    clients: usize,
    per: usize,
    min_runs: usize,
) {
    use hoist_registry::gc::{collect_storage, GcOptions};
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let _guard = StopOnDrop(stop.clone());
    let gc = {
        let (storage, stop) = (storage.clone(), stop.clone());
        tokio::task::spawn_blocking(move || {
            let mut runs = 0;
            while !stop.load(Ordering::Relaxed) || runs < min_runs {
                collect_storage(&storage, &GcOptions::default()).unwrap();
                runs += 1;
            }
            runs
        })
    };
    let accepted = racing_pushes(s.clone(), base, clients, per).await;
    stop.store(true, Ordering::Relaxed);
    assert!(gc.await.unwrap() >= min_runs);
    // Once more, after everything: still nothing referenced may go.
    tokio::task::spawn_blocking(move || collect_storage(&storage, &GcOptions::default()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(accepted.len(), clients * per);
    for (repo, m, ld, layer) in accepted {
        let md = Digest::sha256(&m);
        let r = s.req("GET", &format!("/v2/{repo}/manifests/{md}")).await;
        assert_eq!(r.status, 200);
        let r = s.req("GET", &format!("/v2/{repo}/blobs/{ld}")).await;
        assert_eq!(r.status, 200, "{repo}: layer {ld} lost");
        assert_eq!(r.body.as_ref(), &layer[..]);
    }
}
