//! The HTTP side: the OCI distribution-spec v1.1 (and Docker's extras) on
//! axum. Stateless: every request goes to the [`Store`]; blocking filesystem
//! work runs on tokio's blocking pool.
//!
//! Routing is by hand rather than by axum's router: repository names contain
//! slashes and may even contain `blobs` or `manifests` as components, so the
//! path is matched from its end, as distribution's regular expressions do.

use crate::driver::StorageConfig;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::names::{ManifestRef, RepoName, Tag, UploadId};
use crate::proxy::{BlobAnswer, Proxy};
use crate::store::{BlobInfo, Store, MAX_MANIFEST_SIZE};
use crate::upload::UploadWriter;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hoist_oci::{media_type, Digest};
use http_body_util::BodyExt;
use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;

/// The API version header every `/v2` response carries.
pub const API_VERSION_HEADER: &str = "Docker-Distribution-API-Version";
/// Largest page of tags or repositories returned at once.
pub const MAX_PAGE: usize = 10_000;
/// Page size of `/v2/_catalog` when the client gives no `n`.
pub const DEFAULT_CATALOG_PAGE: usize = 1_000;
/// Blobs up to this size are read in one go; larger ones are streamed.
const SMALL_BLOB: u64 = 256 << 10;
/// How long an upload body may send nothing before the request is dropped.
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Bytes handed to the socket at once when streaming a blob from disk.
const CHUNK: usize = 4 << 20;

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

#[derive(Clone)]
struct App {
    store: Arc<Store>,
    cfg: Arc<ServerConfig>,
    proxy: Option<Arc<Proxy>>,
}

impl App {
    /// The pull-through cache and upstream for `name`, when it is mirrored.
    async fn mirror(
        &self,
        name: &RepoName,
    ) -> Result<Option<(&Proxy, crate::proxy::Target<'_>)>, ApiError> {
        let Some(p) = self.proxy.as_deref() else {
            return Ok(None);
        };
        Ok(p.target(&self.store, name).await?.map(|t| (p, t)))
    }
}

/// `/metrics` needs only the metrics.
impl axum::extract::FromRef<App> for Arc<Metrics> {
    fn from_ref(app: &App) -> Arc<Metrics> {
        app.cfg.metrics.clone()
    }
}

/// The web page's handlers need only the store.
impl axum::extract::FromRef<App> for Arc<Store> {
    fn from_ref(app: &App) -> Arc<Store> {
        app.store.clone()
    }
}

/// An error as the distribution-spec writes it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    detail: serde_json::Value,
    headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            detail: serde_json::Value::Null,
            headers: Vec::new(),
        }
    }

    pub(crate) fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }

    fn unsupported(message: &str) -> Self {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        use crate::names::NameError;
        let msg = e.to_string();
        let s = StatusCode::BAD_REQUEST;
        let nf = StatusCode::NOT_FOUND;
        match e {
            Error::Io { .. } | Error::Config(_) => {
                tracing::error!(error = %msg, "storage failure");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", msg)
            }
            Error::Name(NameError::Repository(n)) => {
                ApiError::new(s, "NAME_INVALID", msg).detail(serde_json::json!({ "name": n }))
            }
            Error::Name(NameError::Tag(t)) => {
                ApiError::new(s, "TAG_INVALID", msg).detail(serde_json::json!({ "tag": t }))
            }
            Error::Name(NameError::UploadId(_)) => ApiError::new(nf, "BLOB_UPLOAD_UNKNOWN", msg),
            Error::Digest(_) => ApiError::new(s, "DIGEST_INVALID", msg),
            Error::BlobUnknown(d) => ApiError::new(nf, "BLOB_UNKNOWN", msg)
                .detail(serde_json::json!({ "digest": d.to_string() })),
            Error::ManifestUnknown { reference, .. } => ApiError::new(nf, "MANIFEST_UNKNOWN", msg)
                .detail(serde_json::json!({ "reference": reference })),
            Error::NameUnknown(n) => ApiError::new(nf, "NAME_UNKNOWN", msg)
                .detail(serde_json::json!({ "name": n.as_str() })),
            Error::UploadUnknown(_) => ApiError::new(nf, "BLOB_UPLOAD_UNKNOWN", msg),
            Error::UploadBusy(_) => ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "BLOB_UPLOAD_INVALID",
                msg,
            ),
            Error::DigestMismatch { expected, actual } => ApiError::new(s, "DIGEST_INVALID", msg)
                .detail(serde_json::json!({
                    "expected": expected.to_string(),
                    "actual": actual.to_string()
                })),
            Error::RangeInvalid { current, .. } => {
                let mut e = ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "BLOB_UPLOAD_INVALID",
                    msg,
                );
                e.headers.push(("Range", range_header(current)));
                e
            }
            Error::SizeInvalid { .. } => ApiError::new(s, "SIZE_INVALID", msg),
            Error::BodyAborted(_) => ApiError::new(s, "BLOB_UPLOAD_INVALID", msg),
            Error::ManifestInvalid(_) => ApiError::new(s, "MANIFEST_INVALID", msg),
            Error::ManifestBlobUnknown(d) => ApiError::new(s, "MANIFEST_BLOB_UNKNOWN", msg)
                .detail(serde_json::json!({ "digest": d.to_string() })),
            Error::ManifestTooLarge(_) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "MANIFEST_INVALID", msg)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "errors": [{ "code": self.code, "message": self.message, "detail": self.detail }]
        });
        let mut r = respond(self.status)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
        for (k, v) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&v) {
                r.headers_mut().insert(k, v);
            }
        }
        r
    }
}

type ApiResult = Result<Response, ApiError>;

/// A response builder carrying the API version header.
pub(crate) fn respond(status: StatusCode) -> axum::http::response::Builder {
    Response::builder()
        .status(status)
        .header(API_VERSION_HEADER, "registry/2.0")
}

fn finish(b: axum::http::response::Builder, body: Body) -> ApiResult {
    b.body(body)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", e.to_string()))
}

/// `Range: 0-<last byte>` as distribution writes it ("0-0" when empty).
fn range_header(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

/// Runs blocking storage work off the async threads.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> crate::Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN",
            format!("internal task failed: {e}"),
        )),
    }
}

/// Percent-decodes a query value or path segment. `+` stays `+`: media
/// types such as `application/vnd.x+json` arrive unescaped from some clients.
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn query_param(uri: &axum::http::Uri, key: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (percent_decode(k) == key).then(|| percent_decode(v))
    })
}

fn parse_digest(s: &str) -> Result<Digest, ApiError> {
    s.parse::<Digest>()
        .map_err(|e| ApiError::from(Error::Digest(e)))
}

fn parse_name(s: &str) -> Result<RepoName, ApiError> {
    RepoName::new(s).map_err(|e| ApiError::from(Error::Name(e)))
}

fn parse_ref(s: &str) -> Result<ManifestRef, ApiError> {
    if s.contains(':') {
        Ok(ManifestRef::Digest(parse_digest(s)?))
    } else {
        Tag::new(s)
            .map(ManifestRef::Tag)
            .map_err(|e| ApiError::from(Error::Name(e)))
    }
}

/// The page size from `n`: absent gives `default`, too big is capped.
fn page_size(uri: &axum::http::Uri, default: usize) -> Result<usize, ApiError> {
    match query_param(uri, "n") {
        None => Ok(default),
        Some(n) => n
            .parse::<u64>()
            .map(|n| n.min(MAX_PAGE as u64) as usize)
            .map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "PAGINATION_NUMBER_INVALID",
                    format!("invalid page size n={n:?}"),
                )
            }),
    }
}

/// A parsed `/v2/...` path.
#[derive(Debug, PartialEq)]
pub(crate) enum Route {
    Tags(String),
    UploadStart(String),
    Upload(String, String),
    Blob(String, String),
    Manifest(String, String),
    Referrers(String, String),
}

pub(crate) fn route(path: &str) -> Option<Route> {
    let rest = path.strip_prefix("/v2/")?;
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    let name = |k: usize| segs[..n - k].join("/");
    let last = || percent_decode(segs[n - 1]);
    if n >= 3 && segs[n - 2] == "tags" && segs[n - 1] == "list" {
        return Some(Route::Tags(name(2)));
    }
    if n >= 3 && segs[n - 2] == "blobs" && segs[n - 1] == "uploads" {
        return Some(Route::UploadStart(name(2)));
    }
    if n >= 4 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads" {
        if segs[n - 1].is_empty() {
            return Some(Route::UploadStart(name(3)));
        }
        return Some(Route::Upload(name(3), last()));
    }
    if n >= 3 {
        match segs[n - 2] {
            "blobs" => return Some(Route::Blob(name(2), last())),
            "manifests" => return Some(Route::Manifest(name(2), last())),
            "referrers" => return Some(Route::Referrers(name(2), last())),
            _ => {}
        }
    }
    // A reference with slashes in it (`sha256:../../x`): route it anyway so
    // the client hears "invalid digest/tag" rather than "no such endpoint".
    let i = (1..n.saturating_sub(1))
        .find(|&i| matches!(segs[i], "blobs" | "manifests" | "referrers"))?;
    let (name, reference) = (
        segs[..i].join("/"),
        percent_decode(&segs[i + 1..].join("/")),
    );
    Some(match segs[i] {
        "blobs" => Route::Blob(name, reference),
        "manifests" => Route::Manifest(name, reference),
        _ => Route::Referrers(name, reference),
    })
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
        cfg: Arc::new(cfg),
    };
    let r = Router::new()
        .route("/v2/", get(base))
        .route("/v2", get(base))
        .route("/v2/_catalog", get(catalog))
        .route("/healthz", get(healthz))
        .route("/", get(crate::web::index))
        .route("/ui/r/{*rest}", get(crate::web::repo))
        .fallback(dispatch);
    let r = match auth {
        Some(a) => crate::auth::protect(r, a),
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

async fn base() -> Response {
    respond(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .unwrap_or_else(|_| StatusCode::OK.into_response())
}

async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

/// Appends a `Link: <...>; rel="next"` header when a page is full.
fn next_link(
    b: axum::http::response::Builder,
    path: &str,
    n: usize,
    last: Option<&String>,
) -> axum::http::response::Builder {
    match last {
        Some(last) => b.header(
            header::LINK,
            format!("<{path}?n={n}&last={}>; rel=\"next\"", percent_encode(last)),
        ),
        None => b,
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Takes one page from a sorted list: entries after `last`, at most `n`.
/// Returns the page and, when more remain, the last entry for the next link.
fn paginate<'a>(
    all: &'a [String],
    n: usize,
    last: Option<&str>,
    less: impl Fn(&str, &str) -> bool,
) -> (&'a [String], Option<&'a String>) {
    let start = match last {
        Some(l) => all.partition_point(|x| !less(l, x)),
        None => 0,
    };
    let end = (start + n).min(all.len());
    let page = &all[start..end];
    let more = end < all.len() && n > 0;
    (page, if more { page.last() } else { None })
}

async fn catalog(State(app): State<App>, req: Request) -> ApiResult {
    let uri = req.uri().clone();
    let n = page_size(&uri, DEFAULT_CATALOG_PAGE)?;
    let last = query_param(&uri, "last");
    let store = app.store.clone();
    let (page, more) = blocking(move || store.catalog_page(last.as_deref(), n)).await?;
    #[derive(serde::Serialize)]
    struct Catalog<'a> {
        repositories: &'a [String],
    }
    let body = serde_json::to_vec(&Catalog {
        repositories: &page,
    })
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", e.to_string()))?;
    let b = respond(StatusCode::OK).header(header::CONTENT_TYPE, "application/json");
    let b = next_link(b, "/v2/_catalog", n, more.then(|| page.last()).flatten());
    finish(b, Body::from(body))
}

async fn dispatch(State(app): State<App>, req: Request) -> ApiResult {
    let path = req.uri().path().to_owned();
    let Some(r) = route(&path) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no such endpoint: {path}"),
        ));
    };
    let method = req.method().clone();
    let writes = !matches!(method, Method::GET | Method::HEAD);
    if writes && app.cfg.read_only {
        return Err(ApiError::unsupported("the registry is in read-only mode"));
    }
    if method == Method::DELETE && !app.cfg.delete_enabled && !matches!(r, Route::Upload(..)) {
        return Err(ApiError::unsupported(
            "deletes are disabled on this registry",
        ));
    }
    let not_allowed = || {
        Err(ApiError::unsupported(&format!(
            "method {method} is not supported on {path}"
        )))
    };
    match r {
        Route::Tags(name) => match method {
            Method::GET | Method::HEAD => tags_list(app, parse_name(&name)?, req).await,
            _ => not_allowed(),
        },
        Route::Referrers(name, d) => match method {
            Method::GET | Method::HEAD => {
                referrers(app, parse_name(&name)?, parse_digest(&d)?, req).await
            }
            _ => not_allowed(),
        },
        Route::Blob(name, d) => {
            let name = parse_name(&name)?;
            let d = parse_digest(&d)?;
            match method {
                Method::GET => get_blob(app, name, d, req, false).await,
                Method::HEAD => get_blob(app, name, d, req, true).await,
                Method::DELETE => {
                    let store = app.store.clone();
                    blocking(move || store.delete_blob(&name, &d)).await?;
                    finish(
                        respond(StatusCode::ACCEPTED).header(header::CONTENT_LENGTH, "0"),
                        Body::empty(),
                    )
                }
                _ => not_allowed(),
            }
        }
        Route::Manifest(name, reference) => {
            let name = parse_name(&name)?;
            let r = match parse_ref(&reference) {
                // No manifest can have a name that is not a valid tag: a read
                // of one finds nothing (404, as distribution and the OCI
                // conformance suite have it); a write of one is refused.
                Err(_)
                    if matches!(method, Method::GET | Method::HEAD) && !reference.contains(':') =>
                {
                    return Err(Error::ManifestUnknown { name, reference }.into());
                }
                r => r?,
            };
            match method {
                Method::GET => get_manifest(app, name, r, false).await,
                Method::HEAD => get_manifest(app, name, r, true).await,
                Method::PUT => {
                    mark_pushed(&app, &name).await?;
                    put_manifest(app, name, r, req).await
                }
                Method::DELETE => {
                    let store = app.store.clone();
                    blocking(move || store.delete_manifest(&name, &r)).await?;
                    finish(
                        respond(StatusCode::ACCEPTED).header(header::CONTENT_LENGTH, "0"),
                        Body::empty(),
                    )
                }
                _ => not_allowed(),
            }
        }
        Route::UploadStart(name) => match method {
            Method::POST => {
                let name = parse_name(&name)?;
                mark_pushed(&app, &name).await?;
                start_upload(app, name, req).await
            }
            _ => not_allowed(),
        },
        Route::Upload(name, id) => {
            let name = parse_name(&name)?;
            let id = UploadId::new(&id).map_err(|e| ApiError::from(Error::Name(e)))?;
            match method {
                Method::GET | Method::HEAD => {
                    let store = app.store.clone();
                    let (n2, i2) = (name.clone(), id.clone());
                    let size = blocking(move || store.upload_status(&n2, &i2)).await?;
                    upload_progress(StatusCode::NO_CONTENT, &name, &id, size)
                }
                Method::PATCH => patch_upload(app, name, id, req).await,
                Method::PUT => put_upload(app, name, id, req).await,
                Method::DELETE => {
                    let store = app.store.clone();
                    blocking(move || store.cancel_upload(&name, &id)).await?;
                    finish(
                        respond(StatusCode::NO_CONTENT).header(header::CONTENT_LENGTH, "0"),
                        Body::empty(),
                    )
                }
                _ => not_allowed(),
            }
        }
    }
}

/// A push makes a mirrored repository local (see `proxy`).
async fn mark_pushed(app: &App, name: &RepoName) -> Result<(), ApiError> {
    let Some(proxy) = app.proxy.clone() else {
        return Ok(());
    };
    let (store, name) = (app.store.clone(), name.clone());
    blocking(move || proxy.mark_pushed(&store, &name)).await
}

async fn tags_list(app: App, name: RepoName, req: Request) -> ApiResult {
    let uri = req.uri().clone();
    let n = page_size(&uri, usize::MAX)?;
    let last = query_param(&uri, "last");
    let store = app.store.clone();
    let n2 = name.clone();
    let target = app.mirror(&name).await?;
    let all = match target {
        Some((p, t)) => Arc::new(p.tags(&app.store, &t, &name).await?),
        None => blocking(move || store.tags_shared(&n2)).await?,
    };
    let (page, more) = paginate(&all, n, last.as_deref(), |a, b| a < b);
    #[derive(serde::Serialize)]
    struct TagList<'a> {
        name: &'a str,
        tags: &'a [String],
    }
    let body = serde_json::to_vec(&TagList {
        name: name.as_str(),
        tags: page,
    })
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", e.to_string()))?;
    let b = respond(StatusCode::OK).header(header::CONTENT_TYPE, "application/json");
    let b = next_link(b, &format!("/v2/{name}/tags/list"), n, more);
    finish(b, Body::from(body))
}

async fn referrers(app: App, name: RepoName, subject: Digest, req: Request) -> ApiResult {
    let artifact_type = query_param(req.uri(), "artifactType").filter(|s| !s.is_empty());
    let store = app.store.clone();
    let at = artifact_type.clone();
    let list = blocking(move || store.referrers(&name, &subject, at.as_deref())).await?;
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": list,
    });
    let mut b = respond(StatusCode::OK).header(header::CONTENT_TYPE, media_type::OCI_INDEX);
    if artifact_type.is_some() {
        b = b.header("OCI-Filters-Applied", "artifactType");
    }
    finish(b, Body::from(body.to_string()))
}

async fn get_manifest(app: App, name: RepoName, r: ManifestRef, head: bool) -> ApiResult {
    let store = app.store.clone();
    let target = app.mirror(&name).await?;
    let m = match target {
        Some((p, t)) => p.manifest(&app.store, &t, &name, &r, head).await?,
        None => blocking(move || store.get_manifest(&name, &r)).await?,
    };
    let b = respond(StatusCode::OK)
        .header(header::CONTENT_TYPE, m.media_type.as_str())
        .header(header::CONTENT_LENGTH, m.bytes.len())
        .header("Docker-Content-Digest", m.digest.to_string())
        .header(header::ETAG, format!("\"{}\"", m.digest));
    let body = if head {
        Body::empty()
    } else {
        Body::from(m.bytes.clone())
    };
    finish(b, body)
}

async fn put_manifest(app: App, name: RepoName, r: ManifestRef, req: Request) -> ApiResult {
    let too_large = || ApiError::from(Error::ManifestTooLarge(MAX_MANIFEST_SIZE));
    if content_length(req.headers()).is_some_and(|n| n > MAX_MANIFEST_SIZE as u64) {
        return Err(too_large());
    }
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let limited = http_body_util::Limited::new(req.into_body(), MAX_MANIFEST_SIZE);
    let bytes = match limited.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Err(e) => return Err(Error::BodyAborted(e.to_string()).into()),
    };
    let store = app.store.clone();
    let n2 = name.clone();
    let put = blocking(move || store.put_manifest(&n2, &r, ct.as_deref(), bytes)).await?;
    let mut b = respond(StatusCode::CREATED)
        .header(
            header::LOCATION,
            format!("/v2/{name}/manifests/{}", put.digest),
        )
        .header(header::CONTENT_LENGTH, "0")
        .header("Docker-Content-Digest", put.digest.to_string());
    if let Some(s) = &put.subject {
        b = b.header("OCI-Subject", s.to_string());
    }
    finish(b, Body::empty())
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Parses a byte range request (`bytes=a-b`, `bytes=a-`, `bytes=-n`) against
/// `size`. `Ok(None)`: serve everything; `Err`: unsatisfiable.
fn parse_range(h: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(v) = h.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        // Multipart ranges: not worth it for blobs; serve the whole thing.
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (size.saturating_sub(n), size.saturating_sub(1))
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end: u64 = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            b.parse::<u64>()
                .map_err(|_| ())?
                .min(size.saturating_sub(1))
        };
        (start, end)
    };
    if size == 0 || start >= size || end < start {
        return Err(());
    }
    Ok(Some((start, end)))
}

async fn get_blob(app: App, name: RepoName, d: Digest, req: Request, head: bool) -> ApiResult {
    let store = app.store.clone();
    // A HEAD is how a pushing client decides to skip an upload and reference
    // the blob from its manifest later: refresh the blob's mtime so a
    // garbage collection in between keeps it (see `gc`).
    let claim = head && !app.cfg.read_only;
    let (n2, d2) = (name.clone(), d.clone());
    let found = blocking(move || {
        let info = match store.blob_stat(&n2, &d2) {
            Err(Error::BlobUnknown(_)) => return Ok(None),
            r => r?,
        };
        if claim {
            store.claim_blob(&d2)?;
        }
        Ok(Some(info))
    })
    .await?;
    let info: BlobInfo = match found {
        Some(info) => info,
        None => {
            let target = app.mirror(&name).await?;
            let Some((p, t)) = target else {
                return Err(Error::BlobUnknown(d).into());
            };
            match p.blob(&app.store, &t, &name, &d, head).await? {
                BlobAnswer::Local(info) => info,
                BlobAnswer::Response(r) => return Ok(r),
            }
        }
    };
    let size = info.size;
    let range = match parse_range(req.headers(), size) {
        Ok(r) => r,
        Err(()) => {
            let mut e = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "BLOB_UNKNOWN",
                format!("requested range not satisfiable for a blob of {size} bytes"),
            );
            e.headers.push(("Content-Range", format!("bytes */{size}")));
            return Err(e);
        }
    };
    let (status, start, len) = match range {
        Some((a, b)) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        None => (StatusCode::OK, 0, size),
    };
    let mut b = respond(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, len)
        .header(header::ACCEPT_RANGES, "bytes")
        .header("Docker-Content-Digest", info.digest.to_string())
        .header(header::ETAG, format!("\"{}\"", info.digest))
        .header(header::CACHE_CONTROL, "max-age=31536000");
    if status == StatusCode::PARTIAL_CONTENT {
        b = b.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", start + len - 1),
        );
    }
    if head || len == 0 {
        return finish(b, Body::empty());
    }
    if !app.store.is_local() {
        let (store, info) = (app.store.clone(), info.clone());
        let stream = blocking(move || store.blob_stream(&info, start, len)).await?;
        if let Some(stream) = stream {
            return finish(b, Body::from_stream(stream));
        }
    }
    let path = info.path.clone();
    if len <= SMALL_BLOB {
        let bytes = blocking(move || read_range(&path, start, len)).await?;
        return finish(b, Body::from(bytes));
    }
    finish(b, Body::new(file_body(path, start, len)))
}

fn read_range(path: &std::path::Path, start: u64, len: u64) -> crate::Result<Bytes> {
    use crate::error::IoContext;
    let mut f = std::fs::File::open(path).ctx("open", path)?;
    f.seek(SeekFrom::Start(start)).ctx("seek", path)?;
    let mut buf = Vec::with_capacity(len as usize);
    f.take(len).read_to_end(&mut buf).ctx("read", path)?;
    if (buf.len() as u64) < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "blob shorter than its size",
        ))
        .ctx("read", path);
    }
    Ok(Bytes::from(buf))
}

/// A response body over memory maps of a blob file, one per chunk. The
/// socket is handed the mapped pages, so the kernel copies page cache
/// straight into the socket without a read into a user buffer first (hyper
/// cannot `sendfile`). A blocking task maps and faults in each chunk a couple
/// of chunks ahead of the socket, so a cold disk stalls that task and never an
/// async worker; a chunk is unmapped once sent, so resident memory stays a few
/// chunks whatever the blob's size.
///
/// Mapping is sound here because a blob file is immutable once it has its
/// digest name: it is written elsewhere and renamed in, and gc unlinks it,
/// which leaves an existing map intact; nothing truncates it.
fn file_body(path: PathBuf, start: u64, len: u64) -> ChannelBody {
    let (tx, rx) = mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        let f = match open_range(&path, start, len) {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        let mut off = start;
        let end = start + len;
        while off < end {
            let n = (end - off).min(CHUNK as u64);
            let chunk = match map_chunk(&f, off, n) {
                Ok(m) => Bytes::from_owner(m),
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            // Touch one byte per page: the fault (and any disk read)
            // happens on this blocking thread, not in the socket write.
            for i in (0..chunk.len()).step_by(4096) {
                std::hint::black_box(chunk[i]);
            }
            off += n;
            // The receiver is gone when the client hung up.
            if tx.blocking_send(Ok(chunk)).is_err() {
                return;
            }
        }
    });
    ChannelBody {
        rx,
        remaining: Some(len),
    }
}

/// Opens a blob file that must hold `start + len` bytes.
fn open_range(path: &std::path::Path, start: u64, len: u64) -> io::Result<std::fs::File> {
    let f = std::fs::File::open(path)?;
    let have = f.metadata()?.len();
    if have < start.saturating_add(len) {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "blob {} is {have} bytes, shorter than its size",
                path.display()
            ),
        ));
    }
    Ok(f)
}

/// Maps `len` bytes of `f` from `off`, read-only.
fn map_chunk(f: &std::fs::File, off: u64, len: u64) -> io::Result<memmap2::Mmap> {
    let len = usize::try_from(len).map_err(io::Error::other)?;
    // SAFETY: see `file_body`: blob files are never modified or truncated
    // once they carry their digest name.
    unsafe { memmap2::MmapOptions::new().offset(off).len(len).map(f) }
}

/// A response body fed through a channel by a task (a blob read ahead from
/// disk, or a pull-through fill); `remaining` is the length when known.
pub(crate) struct ChannelBody {
    pub(crate) rx: mpsc::Receiver<io::Result<Bytes>>,
    pub(crate) remaining: Option<u64>,
}

impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, io::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(b))) => {
                if let Some(r) = self.remaining.as_mut() {
                    *r = r.saturating_sub(b.len() as u64);
                }
                Poll::Ready(Some(Ok(http_body::Frame::data(b))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == Some(0)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.remaining {
            Some(n) => http_body::SizeHint::with_exact(n),
            None => http_body::SizeHint::default(),
        }
    }
}

fn upload_progress(status: StatusCode, name: &RepoName, id: &UploadId, size: u64) -> ApiResult {
    finish(
        respond(status)
            .header(header::LOCATION, format!("/v2/{name}/blobs/uploads/{id}"))
            .header(header::RANGE, range_header(size))
            .header(header::CONTENT_LENGTH, "0")
            .header("Docker-Upload-UUID", id.as_str()),
        Body::empty(),
    )
}

fn blob_created(name: &RepoName, d: &Digest) -> ApiResult {
    finish(
        respond(StatusCode::CREATED)
            .header(header::LOCATION, format!("/v2/{name}/blobs/{d}"))
            .header(header::CONTENT_LENGTH, "0")
            .header("Docker-Content-Digest", d.to_string()),
        Body::empty(),
    )
}

/// Parses `Content-Range: <start>-<end>` (also with a `bytes ` or `bytes=`
/// prefix). Returns (start, length).
fn content_range(h: &HeaderMap) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(v) = h.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UPLOAD_INVALID",
            "malformed Content-Range: expected <start>-<end>",
        )
    };
    let s = v.to_str().map_err(|_| bad())?.trim();
    let s = s
        .strip_prefix("bytes=")
        .or_else(|| s.strip_prefix("bytes "))
        .unwrap_or(s);
    let s = s.split('/').next().unwrap_or(s);
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let a: u64 = a.trim().parse().map_err(|_| bad())?;
    let b: u64 = b.trim().parse().map_err(|_| bad())?;
    if b < a {
        return Err(bad());
    }
    Ok(Some((a, b - a + 1)))
}

/// Streams a request body into an upload session. The network side stays on
/// the async threads; hashing and writing run on a blocking thread fed
/// through a small channel. Returns the writer when the whole body arrived.
async fn pump(
    writer: UploadWriter,
    body: Body,
) -> Result<(UploadWriter, crate::Result<u64>), ApiError> {
    let (tx, mut rx) = mpsc::channel::<Bytes>(4);
    let task = tokio::task::spawn_blocking(move || {
        let mut w = writer;
        let mut n = 0u64;
        while let Some(chunk) = rx.blocking_recv() {
            if let Err(e) = w.write(&chunk) {
                return (w, Err(e));
            }
            n += chunk.len() as u64;
        }
        (w, Ok(n))
    });
    let mut body = body;
    let mut aborted = None;
    loop {
        // A client that stops sending holds its upload session busy; give
        // up on it after a while so the session can be resumed.
        let Ok(frame) = tokio::time::timeout(BODY_IDLE_TIMEOUT, body.frame()).await else {
            aborted = Some(format!(
                "no data for {} seconds",
                BODY_IDLE_TIMEOUT.as_secs()
            ));
            break;
        };
        match frame {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    // A send error means the writer stopped on an error,
                    // which the task's result reports.
                    if !data.is_empty() && tx.send(data).await.is_err() {
                        break;
                    }
                }
            }
            Some(Err(e)) => {
                aborted = Some(e.to_string());
                break;
            }
            None => break,
        }
    }
    drop(tx);
    let (w, res) = task.await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN",
            format!("upload writer failed: {e}"),
        )
    })?;
    Ok(match (res, aborted) {
        (Err(e), _) => (w, Err(e)),
        (Ok(_), Some(why)) => (w, Err(Error::BodyAborted(why))),
        (Ok(n), None) => (w, Ok(n)),
    })
}

/// Opens the session, checks the chunk's declared range and streams it in.
async fn receive_chunk(
    app: &App,
    name: &RepoName,
    id: &UploadId,
    req: Request,
) -> Result<UploadWriter, ApiError> {
    let range = content_range(req.headers())?;
    let len = content_length(req.headers());
    if let (Some((_, rl)), Some(cl)) = (range, len) {
        if rl != cl {
            return Err(Error::SizeInvalid {
                announced: rl,
                received: cl,
            }
            .into());
        }
    }
    let store = app.store.clone();
    let (n2, i2) = (name.clone(), id.clone());
    let start = range.map(|(s, _)| s);
    let writer = blocking(move || store.upload_writer(&n2, &i2, start)).await?;
    let (writer, res) = pump(writer, req.into_body()).await?;
    let received = match res {
        Ok(n) => n,
        Err(e) => {
            tracing::debug!(upload = %id, error = %e, "chunk not fully received");
            let _ = tokio::task::spawn_blocking(move || writer.finish()).await;
            return Err(e.into());
        }
    };
    if let Some((_, rl)) = range {
        if rl != received {
            let _ = tokio::task::spawn_blocking(move || writer.finish()).await;
            return Err(Error::SizeInvalid {
                announced: rl,
                received,
            }
            .into());
        }
    }
    Ok(writer)
}

async fn start_upload(app: App, name: RepoName, req: Request) -> ApiResult {
    let uri = req.uri().clone();
    if let Some(m) = query_param(&uri, "mount") {
        let d = parse_digest(&m)?;
        let from = match query_param(&uri, "from") {
            Some(f) => Some(parse_name(&f)?),
            None if app.cfg.auto_mount => None,
            None => Some(name.clone()),
        };
        let store = app.store.clone();
        let (n2, d2) = (name.clone(), d.clone());
        let mounted = blocking(move || store.mount_blob(&n2, &d2, from.as_ref())).await?;
        if mounted.is_some() {
            return blob_created(&name, &d);
        }
    }
    let digest = match query_param(&uri, "digest") {
        Some(d) => Some(parse_digest(&d)?),
        None => None,
    };
    let store = app.store.clone();
    let n2 = name.clone();
    let id = blocking(move || store.start_upload(&n2)).await?;
    let Some(digest) = digest else {
        return upload_progress(StatusCode::ACCEPTED, &name, &id, 0);
    };
    // Monolithic: the whole blob is this request's body.
    match finish_upload(&app, &name, &id, &digest, req).await {
        Ok(r) => Ok(r),
        Err(e) => {
            let store = app.store.clone();
            let _ = tokio::task::spawn_blocking(move || store.cancel_upload(&name, &id)).await;
            Err(e)
        }
    }
}

async fn finish_upload(
    app: &App,
    name: &RepoName,
    id: &UploadId,
    digest: &Digest,
    req: Request,
) -> ApiResult {
    let writer = receive_chunk(app, name, id, req).await?;
    let store = app.store.clone();
    let d = digest.clone();
    blocking(move || store.commit_upload(writer, &d)).await?;
    blob_created(name, digest)
}

async fn patch_upload(app: App, name: RepoName, id: UploadId, req: Request) -> ApiResult {
    let writer = receive_chunk(&app, &name, &id, req).await?;
    let size = blocking(move || writer.finish()).await?;
    upload_progress(StatusCode::ACCEPTED, &name, &id, size)
}

async fn put_upload(app: App, name: RepoName, id: UploadId, req: Request) -> ApiResult {
    let Some(d) = query_param(req.uri(), "digest") else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            "the digest query parameter is required to finish an upload",
        ));
    };
    let d = parse_digest(&d)?;
    finish_upload(&app, &name, &id, &d, req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_from_the_end() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(route("/v2/a/b/tags/list"), Some(Route::Tags("a/b".into())));
        assert_eq!(
            route("/v2/a/blobs/uploads/"),
            Some(Route::UploadStart("a".into()))
        );
        assert_eq!(
            route("/v2/a/blobs/uploads"),
            Some(Route::UploadStart("a".into()))
        );
        assert_eq!(
            route("/v2/a/blobs/uploads/xyz"),
            Some(Route::Upload("a".into(), "xyz".into()))
        );
        assert_eq!(
            route(&format!("/v2/x/blobs/y/blobs/{d}")),
            Some(Route::Blob("x/blobs/y".into(), d.clone()))
        );
        assert_eq!(
            route("/v2/m/manifests/manifests/latest"),
            Some(Route::Manifest("m/manifests".into(), "latest".into()))
        );
        assert_eq!(
            route(&format!("/v2/r/referrers/{d}")),
            Some(Route::Referrers("r".into(), d.clone()))
        );
        assert_eq!(route("/v2/"), None);
        assert_eq!(route("/v2/blobs/x"), None);
        assert_eq!(
            route("/v2/a/blobs/sha256:../../x"),
            Some(Route::Blob("a".into(), "sha256:../../x".into()))
        );
        assert_eq!(route("/other"), None);
    }

    #[test]
    fn percent_decoding_keeps_plus() {
        assert_eq!(percent_decode("a%2Bb+c%3a"), "a+b+c:");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn ranges() {
        let mut h = HeaderMap::new();
        let mut r = |v: &str, size| {
            h.insert(header::RANGE, v.parse().unwrap());
            parse_range(&h, size)
        };
        assert_eq!(r("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(r("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(r("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(r("bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(r("bytes=100-", 100), Err(()));
        assert_eq!(r("bytes=5-2", 100), Err(()));
        assert_eq!(r("bytes=x-2", 100), Err(()));
        assert_eq!(r("items=0-1", 100), Ok(None));
    }

    #[test]
    fn pagination() {
        let all: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let lt = |a: &str, b: &str| a < b;
        let (p, more) = paginate(&all, 2, None, lt);
        assert_eq!(p, ["a", "b"]);
        assert_eq!(more.map(String::as_str), Some("b"));
        let (p, more) = paginate(&all, 2, Some("b"), lt);
        assert_eq!(p, ["c", "d"]);
        assert_eq!(more, None);
        let (p, _) = paginate(&all, 10, Some("bb"), lt);
        assert_eq!(p, ["c", "d"]);
        let (p, more) = paginate(&all, 0, None, lt);
        assert!(p.is_empty() && more.is_none());
    }
}
