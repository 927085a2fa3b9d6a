//! TLS: HTTPS with a test CA made by the real `openssl` CLI, clients that
//! fail or stall their handshake, and certificate/key files that are wrong.

use bytes::Bytes;
use hoist_registry::tls::{load_server_config, TlsError, TlsListener};
use hoist_registry::ServerConfig;
use hoist_testkit::certs::TestCerts;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;

/// A TLS server on a loopback port; stops when the sender is dropped.
async fn start(
    root: &Path,
    certs: &TestCerts,
    handshake_timeout: Duration,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let tls = Arc::new(load_server_config(&certs.cert, &certs.key).unwrap());
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = TlsListener::with_handshake_timeout(tcp, tls, handshake_timeout).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let cfg = ServerConfig::new(root.to_path_buf());
    tokio::spawn(hoist_registry::serve(listener, cfg, async {
        let _ = rx.await;
    }));
    (addr, tx)
}

fn client_config(ca: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// GET `path` over HTTPS, verifying the server against `ca`; (status, headers' API version).
async fn https_get(addr: SocketAddr, ca: &Path, path: &str) -> (u16, Option<String>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(client_config(ca));
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake with the test CA");
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let api = resp
        .headers()
        .get("docker-distribution-api-version")
        .map(|v| v.to_str().unwrap().to_owned());
    let status = resp.status().as_u16();
    resp.into_body().collect().await.unwrap();
    (status, api)
}

#[tokio::test]
async fn https_v2_with_a_test_ca() {
    let scratch = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(&scratch.path().join("certs"));
    let (addr, _stop) = start(
        &scratch.path().join("root"),
        &certs,
        Duration::from_secs(10),
    )
    .await;
    let (status, api) = https_get(addr, &certs.ca, "/v2/").await;
    assert_eq!(status, 200);
    assert_eq!(api.as_deref(), Some("registry/2.0"));
}

#[tokio::test]
async fn failed_and_stalled_handshakes_do_not_affect_other_clients() {
    let scratch = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(&scratch.path().join("certs"));
    let timeout = Duration::from_millis(800);
    let (addr, _stop) = start(&scratch.path().join("root"), &certs, timeout).await;

    // A client that opens connections and says nothing.
    let mut stalled = Vec::new();
    for _ in 0..20 {
        stalled.push(TcpStream::connect(addr).await.unwrap());
    }
    // A client speaking plain HTTP to the TLS port.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // A client that does not trust the server's CA.
    let other = tempfile::tempdir().unwrap();
    let other_certs = TestCerts::generate(other.path());
    let tcp = TcpStream::connect(addr).await.unwrap();
    let refused = tokio_rustls::TlsConnector::from(client_config(&other_certs.ca))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await;
    assert!(refused.is_err(), "an untrusted CA must fail the handshake");

    // Meanwhile a good client is served at once.
    let t = Instant::now();
    assert_eq!(https_get(addr, &certs.ca, "/v2/").await.0, 200);
    assert!(t.elapsed() < timeout, "served in {:?}", t.elapsed());

    // The plain HTTP client gets no HTTP answer: the connection is closed.
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut buf))
        .await
        .expect("the server closes a connection that is not TLS");
    assert!(!buf.starts_with(b"HTTP/"), "{buf:?}");

    // The stalled connections are closed once the handshake timeout passes.
    for mut s in stalled {
        let mut b = [0u8; 16];
        let n = tokio::time::timeout(timeout * 5, s.read(&mut b))
            .await
            .expect("a stalled handshake is dropped after the timeout");
        assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    }
    assert_eq!(https_get(addr, &certs.ca, "/v2/").await.0, 200);
}

#[test]
fn missing_certificate_file_is_named() {
    let scratch = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(scratch.path());
    let missing = scratch.path().join("nope.crt");
    let e = load_server_config(&missing, &certs.key).unwrap_err();
    assert!(matches!(e, TlsError::Read { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("certificate") && msg.contains("nope.crt"),
        "{msg}"
    );
}

#[test]
fn key_given_as_certificate_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(scratch.path());
    let msg = load_server_config(&certs.key, &certs.key)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("server.key") && msg.contains("BEGIN CERTIFICATE"),
        "{msg}"
    );
}

#[test]
fn certificate_given_as_key_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(scratch.path());
    let msg = load_server_config(&certs.cert, &certs.cert)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("key file") && msg.contains("server.crt") && msg.contains("PRIVATE KEY"),
        "{msg}"
    );
}

#[test]
fn key_not_matching_the_certificate_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(scratch.path());
    let e = load_server_config(&certs.cert, &certs.other_key).unwrap_err();
    assert!(matches!(e, TlsError::Pair { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("other.key") && msg.contains("server.crt"),
        "{msg}"
    );
}

#[test]
fn garbage_and_huge_files_are_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(scratch.path());
    let garbage = scratch.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let msg = load_server_config(&garbage, &certs.key)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("garbage.pem"), "{msg}");
    let huge = scratch.path().join("huge.pem");
    std::fs::write(&huge, vec![b'A'; (1 << 20) + 10]).unwrap();
    let e = load_server_config(&certs.cert, &huge).unwrap_err();
    assert!(matches!(e, TlsError::TooLarge { .. }), "{e:?}");
    assert!(e.to_string().contains("huge.pem"));
}
