//! TLS for `hoist serve`: loading a PEM certificate chain and private key
//! into a rustls configuration (ring provider), and a listener that hands
//! axum only connections whose handshake has finished.
//!
//! Handshakes run in their own tasks, each bounded by [`HANDSHAKE_TIMEOUT`]
//! and all together by [`MAX_HANDSHAKES`], so a client that fails or stalls
//! its handshake never delays the others nor holds a slot for ever.

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to finish its TLS handshake by default.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; further connections wait in the backlog.
pub const MAX_HANDSHAKES: usize = 256;
/// Largest certificate or key file read (PEM files are a few KiB).
const MAX_PEM_FILE: u64 = 1 << 20;

/// Why the TLS certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be read.
    #[error("cannot read TLS {what} file {path}: {source}")]
    Read {
        /// "certificate" or "key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file is larger than any PEM certificate chain or key.
    #[error("TLS {what} file {path} is larger than {max} bytes: not a PEM file")]
    TooLarge {
        /// "certificate" or "key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The limit.
        max: u64,
    },
    /// The file holds no usable PEM section of the kind needed.
    #[error("TLS {what} file {path}: {msg}")]
    Pem {
        /// "certificate" or "key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong and what is expected instead.
        msg: String,
    },
    /// rustls refused the pair (bad key, or a key not matching the certificate).
    #[error("TLS key file {key} cannot be used with certificate file {cert}: {source}")]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
}

fn read_pem_file(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read;
    let read_err = |source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    };
    let f = std::fs::File::open(path).map_err(read_err)?;
    let mut buf = Vec::new();
    f.take(MAX_PEM_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(read_err)?;
    if buf.len() as u64 > MAX_PEM_FILE {
        return Err(TlsError::TooLarge {
            what,
            path: path.to_owned(),
            max: MAX_PEM_FILE,
        });
    }
    Ok(buf)
}

/// Loads a PEM certificate chain (leaf first) and a PEM private key (PKCS#8,
/// or PKCS#1 RSA, or SEC1 EC) into a server configuration speaking
/// HTTP/1.1 over TLS 1.2 and 1.3.
pub fn load_server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let pem_err = |what, path: &Path, msg: String| TlsError::Pem {
        what,
        path: path.to_owned(),
        msg,
    };
    let cert_pem = read_pem_file("certificate", cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|e| pem_err("certificate", cert, format!("malformed PEM: {e}")))?;
    if chain.is_empty() {
        return Err(pem_err(
            "certificate",
            cert,
            "no `-----BEGIN CERTIFICATE-----` section; give the PEM certificate chain, leaf first"
                .into(),
        ));
    }
    let key_pem = read_pem_file("key", key)?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => pem_err(
            "key",
            key,
            "no private key section; give a PEM `PRIVATE KEY` (PKCS#8), `RSA PRIVATE KEY` or `EC PRIVATE KEY`"
                .into(),
        ),
        e => pem_err("key", key, format!("malformed PEM: {e}")),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, private))
        .map_err(|source| TlsError::Pair {
            cert: cert.to_owned(),
            key: key.to_owned(),
            source,
        })?;
    // The server speaks HTTP/1.1 only (axum's `http1` feature).
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Aborts the accept task when the listener is dropped (at shutdown).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A listener yielding TLS streams whose handshake has completed.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    _accept: AbortOnDrop,
}

impl TlsListener {
    /// Starts accepting on `tcp` and handshaking with `cfg`.
    pub fn new(tcp: TcpListener, cfg: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        Self::with_handshake_timeout(tcp, cfg, HANDSHAKE_TIMEOUT)
    }

    /// [`TlsListener::new`] with another handshake timeout.
    pub fn with_handshake_timeout(
        tcp: TcpListener,
        cfg: Arc<rustls::ServerConfig>,
        timeout: Duration,
    ) -> io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let task = tokio::spawn(accept_loop(tcp, TlsAcceptor::from(cfg), tx, timeout));
        Ok(TlsListener {
            ready,
            local,
            _accept: AbortOnDrop(task),
        })
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    timeout: Duration,
) {
    let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        // Waiting for a slot first leaves excess connections in the kernel's
        // backlog instead of spawning unbounded handshakes.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match tcp.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off rather than spin, as axum does.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = tx.send((tls, peer)).await;
                }
                Ok(Err(e)) => {
                    tracing::info!(target: "hoist_registry::tls", %peer, error = %e, "TLS handshake failed")
                }
                Err(_) => {
                    tracing::info!(target: "hoist_registry::tls", %peer, "TLS handshake timed out")
                }
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept task ended (it never does before the listener is
            // dropped); wait for the shutdown signal instead of failing.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
