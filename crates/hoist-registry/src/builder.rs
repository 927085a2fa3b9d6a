//! A registry server composed step by step, as youki's `ContainerBuilder`
//! composes a container: each `with_*` step checks what it is given (reads
//! the certificate, the auth files, parses the address), so a mistake fails
//! before anything listens; [`RegistryBuilder::build`] starts the runtime and
//! binds the sockets; [`Registry::run`] serves until SIGINT or SIGTERM and
//! reloads the auth files on SIGHUP. The distribution-style config file is a
//! starting point that later steps override ([`RegistryBuilder::from_config_file`]).
//!
//! A program embeds a registry in a few lines:
//!
//! ```no_run
//! use hoist_registry::{RegistryBuilder, StorageConfig};
//!
//! # fn main() -> Result<(), hoist_registry::BuildError> {
//! let registry = RegistryBuilder::new(StorageConfig::Filesystem("/srv/registry".into()))?
//!     .with_addr(":5000")?
//!     .with_delete(false)
//!     .build()?;
//! println!("serving on {}", registry.url());
//! registry.run()
//! # }
//! ```

use crate::auth::{Auth, AuthConfig, AuthError};
use crate::config::{ConfigError, FileConfig, Loaded};
use crate::driver::StorageConfig;
use crate::proxy::{ProxyConfig, ProxyConfigError};
use crate::server::ServerConfig;
use crate::tls::{TlsError, TlsListener};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_rustls::rustls;

/// Where a registry listens when nothing says: loopback only, so a first
/// run exposes nothing.
pub const DEFAULT_ADDR: &str = "127.0.0.1:5000";

/// Why a registry cannot be built or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The configuration file cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listen address that is not `HOST:PORT` or `:PORT`.
    #[error("{what} {addr:?} is not HOST:PORT (or :PORT for every address)")]
    Addr {
        /// Which address it is.
        what: &'static str,
        /// What was given.
        addr: String,
    },
    /// The TLS certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The auth files cannot be used.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The pull-through cache's upstreams cannot work.
    #[error(transparent)]
    Proxy(#[from] ProxyConfigError),
    /// The directory is a hoist image store, whose layout a registry does
    /// not read.
    #[error(
        "{} holds a hoist image store (index.db and blobs/), not a registry: a registry keeps \
         distribution's layout (docker/registry/v2) in a directory of its own, such as \
         --root ./registry; to serve the store's images, push them to the registry",
        path.display()
    )]
    ImageStore {
        /// The directory.
        path: PathBuf,
    },
    /// A socket cannot be bound.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Which listener (the registry, its metrics).
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The async runtime cannot start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(io::Error),
    /// The server stopped on an error.
    #[error("registry server failed: {0}")]
    Serve(io::Error),
}

/// Refuses a directory holding a hoist image store (`index.db` and
/// `blobs/`): serving or collecting it as a registry would find nothing and
/// write distribution's layout beside the store. A missing, empty or
/// registry directory is fine.
pub fn refuse_image_store(root: &Path) -> Result<(), BuildError> {
    if root.join("index.db").is_file() && root.join("blobs").is_dir() {
        return Err(BuildError::ImageStore {
            path: root.to_owned(),
        });
    }
    Ok(())
}

/// Where to listen, checked: `HOST:PORT`, or `:PORT` for every address.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ListenAddr {
    /// A host (name or address) and port.
    Host(String),
    /// Every address, IPv6 and IPv4, as Go's `:5000` (docker-registry's
    /// `http.addr`) listens.
    Any(u16),
}

impl ListenAddr {
    fn parse(addr: &str, what: &'static str) -> Result<ListenAddr, BuildError> {
        let bad = || BuildError::Addr {
            what,
            addr: addr.to_owned(),
        };
        let a = addr.trim();
        let (host, port) = a.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty() {
            Ok(ListenAddr::Any(port))
        } else {
            Ok(ListenAddr::Host(a.to_owned()))
        }
    }

    /// Binds it. `:PORT` binds `[::]:PORT`, which takes IPv4 too on a
    /// dual-stack host, and `0.0.0.0:PORT` where IPv6 is off.
    async fn bind(&self, what: &'static str) -> Result<TcpListener, BuildError> {
        let fail = |addr: String, source| BuildError::Listen { addr, what, source };
        match self {
            ListenAddr::Host(a) => TcpListener::bind(a).await.map_err(|e| fail(a.clone(), e)),
            ListenAddr::Any(port) => match TcpListener::bind(("::", *port)).await {
                Ok(l) => Ok(l),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(fail(format!(":{port}"), e)),
                Err(_) => TcpListener::bind(("0.0.0.0", *port))
                    .await
                    .map_err(|e| fail(format!(":{port}"), e)),
            },
        }
    }
}

/// Composes a registry server; see the [module](self) documentation.
#[derive(Debug)]
pub struct RegistryBuilder {
    server: ServerConfig,
    addr: ListenAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// The address and where it was set, for the error when it is taken.
    metrics_addr: Option<(ListenAddr, &'static str)>,
    ignored: Vec<String>,
}

impl RegistryBuilder {
    /// A registry on `storage` with `hoist serve`'s defaults: pushes and
    /// deletes on, no auth, [`DEFAULT_ADDR`]. Refuses a hoist image store.
    pub fn new(storage: StorageConfig) -> Result<Self, BuildError> {
        check_storage(&storage)?;
        Ok(RegistryBuilder {
            server: ServerConfig::with_storage(storage),
            addr: ListenAddr::Host(DEFAULT_ADDR.to_owned()),
            tls: None,
            metrics_addr: None,
            ignored: Vec::new(),
        })
    }

    /// A registry as a distribution-style `config.yml` describes it (its
    /// storage, address, TLS, debug address, auth, proxy); later steps
    /// override it. Keys the file sets that hoist does not act on are in
    /// [`ignored_keys`](Self::ignored_keys).
    pub fn from_config_file(path: &Path) -> Result<Self, BuildError> {
        let Loaded {
            server,
            addr,
            tls,
            metrics_addr,
            auth,
            ignored,
            ..
        } = FileConfig::read(path)?.load(path)?;
        check_storage(&server.storage)?;
        let mut b = RegistryBuilder {
            server,
            addr: ListenAddr::Host(DEFAULT_ADDR.to_owned()),
            tls: None,
            metrics_addr: None,
            ignored,
        };
        if let Some(a) = addr {
            b = b.with_addr(&a)?;
        }
        if let Some((cert, key)) = tls {
            b = b.with_tls(&cert, &key)?;
        }
        if let Some(m) = metrics_addr {
            let what = "metrics, http.debug.addr";
            b.metrics_addr = Some((ListenAddr::parse(&m, what)?, what));
        }
        if let Some(a) = auth {
            b = b.with_auth(a)?;
        }
        Ok(b)
    }

    /// Keys of the config file that hoist has no use for, dotted
    /// (`notifications`, `storage.cache`), for the caller to report.
    pub fn ignored_keys(&self) -> &[String] {
        &self.ignored
    }

    /// Where the data lives. Refuses a hoist image store.
    pub fn with_storage(mut self, storage: StorageConfig) -> Result<Self, BuildError> {
        check_storage(&storage)?;
        self.server.storage = storage;
        Ok(self)
    }

    /// Listens on `HOST:PORT`, or on every address with `:PORT`.
    pub fn with_addr(mut self, addr: &str) -> Result<Self, BuildError> {
        self.addr = ListenAddr::parse(addr, "listen address")?;
        Ok(self)
    }

    /// Refuses every push and delete.
    pub fn with_read_only(mut self, read_only: bool) -> Self {
        self.server.read_only = read_only;
        self
    }

    /// Allows or refuses deletes of manifests, tags and blobs.
    pub fn with_delete(mut self, enabled: bool) -> Self {
        self.server.delete_enabled = enabled;
        self
    }

    /// Mounts blobs across repositories when the client names no `from`
    /// (only without auth; with auth a mount must name `from`).
    pub fn with_auto_mount(mut self, enabled: bool) -> Self {
        self.server.auto_mount = enabled;
        self
    }

    /// Serves HTTPS with this PEM certificate chain (leaf first) and key,
    /// read now so a bad file fails before anything listens.
    pub fn with_tls(mut self, cert: &Path, key: &Path) -> Result<Self, BuildError> {
        self.tls = Some(Arc::new(crate::tls::load_server_config(cert, key)?));
        Ok(self)
    }

    /// Serves `/metrics` on its own plain-HTTP address instead of the main
    /// one (`hoist serve --metrics-addr`, as errors name it).
    pub fn with_metrics_addr(mut self, addr: &str) -> Result<Self, BuildError> {
        let what = "metrics, --metrics-addr";
        self.metrics_addr = Some((ListenAddr::parse(addr, what)?, what));
        Ok(self)
    }

    /// Requires authentication as `auth` says; its files are read now.
    pub fn with_auth(mut self, auth: AuthConfig) -> Result<Self, BuildError> {
        self.server.auth = Some(Arc::new(Auth::load(&auth)?));
        Ok(self)
    }

    /// Makes the registry a pull-through cache of these upstreams.
    pub fn with_proxy(mut self, proxy: ProxyConfig) -> Result<Self, BuildError> {
        if proxy.upstreams.is_empty() {
            self.server.proxy = None;
        } else {
            let mut checked = ProxyConfig::default();
            for up in proxy.upstreams {
                checked.add(up)?;
            }
            self.server.proxy = Some(checked);
        }
        Ok(self)
    }

    /// The settings so far.
    pub fn config(&self) -> &ServerConfig {
        &self.server
    }

    /// Starts the async runtime and binds the sockets.
    pub fn build(self) -> Result<Registry, BuildError> {
        // Blocking work is short file I/O (or one S3 request): a few threads
        // per core keep the disk busy, where tokio's default of 512 would let
        // a burst of clients start hundreds, each keeping its stack and
        // malloc arena.
        let blocking_threads = std::thread::available_parallelism().map_or(2, |n| n.get()) * 8;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .max_blocking_threads(blocking_threads)
            .build()
            .map_err(BuildError::Runtime)?;
        let (hangup, listener, metrics) = runtime.block_on(async {
            // SIGHUP is taken over before the socket accepts anyone: a
            // client that sees the registry up may signal it at once, and
            // SIGHUP's default action would kill it.
            let hangup = signal(SignalKind::hangup());
            if let Err(e) = &hangup {
                tracing::warn!(error = %e, "cannot handle SIGHUP; auth files will not reload");
            }
            let listener = self.addr.bind("registry").await?;
            let metrics = match &self.metrics_addr {
                Some((m, what)) => Some(m.bind(what).await?),
                None => None,
            };
            Ok::<_, BuildError>((hangup.ok(), listener, metrics))
        })?;
        let local = |l: &TcpListener, what| {
            l.local_addr().map_err(|source| BuildError::Listen {
                addr: format!("{:?}", self.addr),
                what,
                source,
            })
        };
        let local_addr = local(&listener, "registry")?;
        let metrics_local = metrics.as_ref().map(|m| local(m, "metrics")).transpose()?;
        let mut server = self.server;
        server.metrics_on_main = metrics.is_none();
        Ok(Registry {
            runtime,
            hangup,
            listener,
            local_addr,
            metrics: metrics.zip(metrics_local),
            tls: self.tls,
            server,
        })
    }
}

fn check_storage(storage: &StorageConfig) -> Result<(), BuildError> {
    match storage {
        StorageConfig::Filesystem(root) => refuse_image_store(root),
        StorageConfig::S3(_) | StorageConfig::Memory(_) => Ok(()),
    }
}

/// A registry with its runtime started and its sockets bound, ready to run.
pub struct Registry {
    runtime: tokio::runtime::Runtime,
    hangup: Option<Signal>,
    listener: TcpListener,
    local_addr: SocketAddr,
    metrics: Option<(TcpListener, SocketAddr)>,
    tls: Option<Arc<rustls::ServerConfig>>,
    server: ServerConfig,
}

impl Registry {
    /// The address it listens on (the port chosen when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of `/metrics` when it has its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(_, a)| *a)
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The base URL clients on this host reach it at (loopback when it
    /// listens on every address).
    pub fn url(&self) -> String {
        let mut a = self.local_addr;
        if a.ip().is_unspecified() {
            a.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("{}://{a}", self.scheme())
    }

    /// Its settings.
    pub fn config(&self) -> &ServerConfig {
        &self.server
    }

    /// Serves until SIGINT or SIGTERM, then lets requests in flight finish
    /// (up to the shutdown grace); SIGHUP meanwhile reloads the auth files.
    pub fn run(self) -> Result<(), BuildError> {
        self.run_until(crate::server::shutdown_signal())
    }

    /// Serves until `shutdown` resolves; SIGHUP reloads the auth files.
    pub fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), BuildError> {
        let Registry {
            runtime,
            hangup,
            listener,
            metrics,
            tls,
            server,
            ..
        } = self;
        runtime.block_on(async move {
            if let Some(hangup) = hangup {
                tokio::spawn(reload_on_hangup(hangup, server.auth.clone()));
            }
            if let Some((ml, _)) = metrics {
                let m = server.metrics.clone();
                tokio::spawn(async move {
                    if let Err(e) = crate::metrics::serve_metrics(ml, m).await {
                        tracing::error!(error = %e, "metrics server failed");
                    }
                });
            }
            match tls {
                Some(tls) => {
                    let listener = TlsListener::new(listener, tls).map_err(BuildError::Serve)?;
                    crate::server::serve(listener, server, shutdown).await
                }
                None => crate::server::serve(listener, server, shutdown).await,
            }
            .map_err(BuildError::Serve)
        })
    }
}

/// Reloads the auth files on every SIGHUP, as daemons reread their
/// configuration: connections and requests in flight are untouched, and a
/// bad new file keeps the old ones in use. Handling SIGHUP at all also keeps
/// it from killing the server (its default action) when there is no auth.
async fn reload_on_hangup(mut hangup: Signal, auth: Option<Arc<Auth>>) {
    while hangup.recv().await.is_some() {
        let Some(auth) = auth.clone() else {
            tracing::info!("SIGHUP: no auth files to reload");
            continue;
        };
        match tokio::task::spawn_blocking(move || auth.reload()).await {
            Ok(Ok(())) => tracing::info!("SIGHUP: auth files reloaded"),
            Ok(Err(e)) => tracing::error!(
                error = %e,
                "SIGHUP: auth files not reloaded; the previous ones stay in use"
            ),
            Err(e) => tracing::error!(error = %e, "SIGHUP: reloading the auth files failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            ListenAddr::parse(":5000", "a").unwrap(),
            ListenAddr::Any(5000)
        );
        assert_eq!(
            ListenAddr::parse("127.0.0.1:80", "a").unwrap(),
            ListenAddr::Host("127.0.0.1:80".into())
        );
        assert_eq!(
            ListenAddr::parse("[::1]:80", "a").unwrap(),
            ListenAddr::Host("[::1]:80".into())
        );
        for bad in ["5000", "host", ":x", "h:70000", ""] {
            assert!(ListenAddr::parse(bad, "a").is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_to_loopback_port_5000() {
        let d = tempfile::tempdir().unwrap();
        let b = RegistryBuilder::new(StorageConfig::Filesystem(d.path().to_owned())).unwrap();
        assert_eq!(b.addr, ListenAddr::Host("127.0.0.1:5000".into()));
        assert!(b.config().delete_enabled && !b.config().read_only);
    }

    #[test]
    fn an_image_store_is_refused_and_an_empty_directory_is_not() {
        let d = tempfile::tempdir().unwrap();
        let b = RegistryBuilder::new(StorageConfig::Filesystem(d.path().to_owned()));
        assert!(b.is_ok());
        std::fs::write(d.path().join("index.db"), b"").unwrap();
        std::fs::create_dir(d.path().join("blobs")).unwrap();
        let e = RegistryBuilder::new(StorageConfig::Filesystem(d.path().to_owned())).unwrap_err();
        assert!(matches!(e, BuildError::ImageStore { .. }), "{e}");
        assert!(e.to_string().contains("image store"), "{e}");
    }

    #[test]
    fn a_config_file_is_the_base_and_later_steps_override_it() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("config.yml");
        let root = d.path().join("reg");
        std::fs::write(
            &file,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n  cache: {{}}\n\
                 http:\n  addr: :5000\n",
                root.display()
            ),
        )
        .unwrap();
        let b = RegistryBuilder::from_config_file(&file).unwrap();
        assert_eq!(b.addr, ListenAddr::Any(5000));
        // distribution's default: deletes off unless the file turns them on.
        assert!(!b.config().delete_enabled);
        assert_eq!(b.ignored_keys(), ["storage.cache"]);
        let b = b.with_addr("127.0.0.1:0").unwrap().with_delete(true);
        assert_eq!(b.addr, ListenAddr::Host("127.0.0.1:0".into()));
        assert!(b.config().delete_enabled);

        std::fs::create_dir_all(root.join("blobs")).unwrap();
        std::fs::write(root.join("index.db"), b"").unwrap();
        let e = RegistryBuilder::from_config_file(&file).unwrap_err();
        assert!(matches!(e, BuildError::ImageStore { .. }), "{e}");
    }

    #[test]
    fn every_address_is_served_on_colon_port() {
        let d = tempfile::tempdir().unwrap();
        let registry = RegistryBuilder::new(StorageConfig::Filesystem(d.path().join("r")))
            .unwrap()
            .with_addr(":0")
            .unwrap()
            .build()
            .unwrap();
        assert!(registry.local_addr().ip().is_unspecified());
        let port = registry.local_addr().port();
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        assert_eq!(registry.url(), format!("http://127.0.0.1:{port}"));
    }
}
