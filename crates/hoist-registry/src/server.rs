//! The registry server: its configuration, the router that puts the
//! handlers, auth, `/metrics` and the web page together, and the serving
//! loop with its graceful shutdown.

use crate::driver::StorageConfig;
use crate::handlers::{self, App};
use crate::metrics::Metrics;
use crate::proxy::Proxy;
use crate::store::Store;
use axum::extract::Request;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use crate::handlers::{DEFAULT_CATALOG_PAGE, MAX_PAGE};
pub use crate::plumbing::API_VERSION_HEADER;

/// How the server behaves.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Where the registry's data lives.
    pub storage: StorageConfig,
    /// Refuse every write.
    pub read_only: bool,
    /// Allow DELETE of manifests, tags and blobs.
    pub delete_enabled: bool,
    /// Mount a blob from anywhere in the registry when a client asks to
    /// mount it without `from` (fine without auth: nothing is secret).
    pub auto_mount: bool,
    /// How long a graceful shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
    /// The request metrics.
    pub metrics: Arc<Metrics>,
    /// Serve `/metrics` on the main address (off when it has its own).
    pub metrics_on_main: bool,
    /// Authentication and rights; `None`: everyone may do everything.
    pub auth: Option<Arc<crate::auth::Auth>>,
    /// The pull-through cache's upstreams (`--proxy`), if any.
    pub proxy: Option<crate::proxy::ProxyConfig>,
}

impl ServerConfig {
    /// The defaults of `hoist serve --root DIR`: writes and deletes enabled.
    pub fn new(root: PathBuf) -> Self {
        Self::with_storage(StorageConfig::Filesystem(root))
    }

    /// The same defaults on any storage.
    pub fn with_storage(storage: StorageConfig) -> Self {
        ServerConfig {
            storage,
            read_only: false,
            delete_enabled: true,
            auto_mount: true,
            shutdown_grace: Duration::from_secs(30),
            metrics: Arc::new(Metrics::new()),
            metrics_on_main: true,
            auth: None,
            proxy: None,
        }
    }
}

/// The router: `/v2/`, `/v2/_catalog`, `/healthz`, everything under `/v2/<name>/`,
/// `/metrics` (unless `cfg.metrics_on_main` is off), and the web page (`/`, `/ui/r/…`, see [`crate::web`]).
pub fn router(store: Arc<Store>, mut cfg: ServerConfig) -> Router {
    // With auth, a mount without `from` would read from repositories the
    // client may not pull: only mounts that name `from` (checked) remain.
    cfg.auto_mount &= cfg.auth.is_none();
    let auth = cfg.auth.clone();
    let metrics = cfg.metrics.clone();
    let on_main = cfg.metrics_on_main;
    let app = App {
        store,
        proxy: cfg.proxy.as_ref().map(|p| Arc::new(Proxy::new(p))),
        metrics: metrics.clone(),
        read_only: cfg.read_only,
        delete_enabled: cfg.delete_enabled,
        auto_mount: cfg.auto_mount,
    };
    let r = Router::new()
        .route("/v2/", get(handlers::base))
        .route("/v2", get(handlers::base))
        .route("/v2/_catalog", get(handlers::catalog))
        .route("/healthz", get(handlers::healthz))
        .route("/", get(crate::web::index))
        .route("/ui/r/{*rest}", get(crate::web::repo))
        .fallback(handlers::dispatch);
    let r = match auth {
        Some(a) => crate::auth::middleware::protect(r, a),
        None => r,
    };
    // `/metrics` carries no repository names: it stays outside auth, as
    // distribution's debug address does (`--metrics-addr` moves it off the
    // public address).
    let r = if on_main {
        r.route("/metrics", get(crate::metrics::scrape))
    } else {
        r
    };
    r.layer(axum::middleware::from_fn(access_log))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            crate::metrics::track,
        ))
        .with_state(app)
}

/// One structured line per request at info level (`HOIST_LOG=info`).
async fn access_log(req: Request, next: axum::middleware::Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let start = std::time::Instant::now();
    let resp = next.run(req).await;
    tracing::info!(
        target: "hoist_registry::access",
        %method,
        path,
        status = resp.status().as_u16(),
        micros = start.elapsed().as_micros() as u64,
        "request"
    );
    resp
}

/// Serves on `listener` (a `TcpListener`, or a [`crate::tls::TlsListener`])
/// until `shutdown` resolves, then lets requests in flight finish for up to
/// `cfg.shutdown_grace`.
pub async fn serve<L>(
    listener: L,
    cfg: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    // Opening S3 storage blocks on its first request (see `driver::s3`).
    let storage = cfg.storage.clone();
    let store = tokio::task::spawn_blocking(move || Store::open_storage(&storage))
        .await
        .map_err(io::Error::other)?
        .map_err(io::Error::other)?;
    let store = Arc::new(store);
    let grace = cfg.shutdown_grace;
    let app = router(store, cfg);
    let trimmer = tokio::spawn(return_freed_memory());
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    let served = tokio::select! {
        r = std::future::IntoFuture::into_future(server) => r,
        _ = async {
            let _ = rx.wait_for(|v| *v).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!("requests still in flight after the shutdown grace period; stopping");
            Ok(())
        }
    };
    trimmer.abort();
    served
}

/// Hands memory that bursts of requests freed back to the kernel every few
/// seconds. glibc keeps freed memory in per-thread arenas for reuse and
/// returns it only on `malloc_trim`; a registry idles between bursts, and
/// what it holds then is what its host cannot use (Go's runtime returns
/// its own in the background the same way).
async fn return_freed_memory() {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only walks glibc's own allocator state.
        let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => {}
                _ = i.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
