//! Prometheus metrics (`/metrics`, text format 0.0.4) through the Prometheus
//! project's `prometheus-client`: requests by method, route kind and status,
//! request duration by route kind, bytes sent and received, blob upload
//! requests in flight, and build info.
//!
//! Every label takes a value from a small fixed set (a method outside the
//! usual ones counts as `OTHER`, paths are reduced to a [`RouteKind`], a
//! status is a number): never a repository name, tag or path, so the number
//! of series stays bounded whatever clients send.

use crate::routing::{route, Route};
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// What a request is for, as a metric label.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
// The derive writes variant names as label values: lower case on purpose.
#[allow(non_camel_case_types)]
pub enum RouteKind {
    /// `/v2/<name>/manifests/<ref>`.
    manifest,
    /// `/v2/<name>/blobs/<digest>`.
    blob,
    /// `/v2/<name>/blobs/uploads/…`.
    upload,
    /// `/v2/<name>/tags/list`.
    tags,
    /// `/v2/_catalog`.
    catalog,
    /// `/v2/<name>/referrers/<digest>`.
    referrers,
    /// `/v2/`.
    base,
    /// Everything else: the web page, `/healthz`, `/metrics`, unknown paths.
    other,
}

impl RouteKind {
    /// The kind of a request path.
    pub fn of(path: &str) -> RouteKind {
        match path {
            "/v2" | "/v2/" => return RouteKind::base,
            "/v2/_catalog" => return RouteKind::catalog,
            _ => {}
        }
        match route(path) {
            Some(Route::Tags(_)) => RouteKind::tags,
            Some(Route::UploadStart(_) | Route::Upload(..)) => RouteKind::upload,
            Some(Route::Blob(..)) => RouteKind::blob,
            Some(Route::Manifest(..)) => RouteKind::manifest,
            Some(Route::Referrers(..)) => RouteKind::referrers,
            None => RouteKind::other,
        }
    }
}

/// An HTTP method, as a metric label: the usual ones, or `OTHER`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
// Variant names are the label values, spelled as HTTP spells methods.
#[allow(clippy::upper_case_acronyms)]
enum MethodLabel {
    GET,
    HEAD,
    POST,
    PUT,
    PATCH,
    DELETE,
    OPTIONS,
    OTHER,
}

impl From<&Method> for MethodLabel {
    fn from(m: &Method) -> Self {
        match *m {
            Method::GET => MethodLabel::GET,
            Method::HEAD => MethodLabel::HEAD,
            Method::POST => MethodLabel::POST,
            Method::PUT => MethodLabel::PUT,
            Method::PATCH => MethodLabel::PATCH,
            Method::DELETE => MethodLabel::DELETE,
            Method::OPTIONS => MethodLabel::OPTIONS,
            _ => MethodLabel::OTHER,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: MethodLabel,
    route: RouteKind,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: RouteKind,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    // 1 ms to ~65 s in ×4 steps: a manifest GET and a 1 GiB blob both fit.
    Histogram::new(exponential_buckets(0.001, 4.0, 9))
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: HistogramFamily,
    bytes_sent: Counter,
    bytes_received: Counter,
    uploads_in_flight: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Fresh metrics, registered under the `hoist_registry_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("hoist_registry");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route kind and status",
            requests.clone(),
        );
        let duration = HistogramFamily::new_with_constructor(duration_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time from request to the last byte of the response, by route kind",
            duration.clone(),
        );
        let bytes_sent = Counter::default();
        registry.register(
            "http_response_body_bytes",
            "Bytes of response bodies sent",
            bytes_sent.clone(),
        );
        let bytes_received = Counter::default();
        registry.register(
            "http_request_body_bytes",
            "Bytes of request bodies received",
            bytes_received.clone(),
        );
        let uploads_in_flight = Gauge::default();
        registry.register(
            "blob_uploads_in_progress",
            "Blob upload requests (POST, PATCH, PUT under blobs/uploads) being served",
            uploads_in_flight.clone(),
        );
        registry.register(
            "build",
            "The hoist version serving",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        Metrics {
            registry,
            requests,
            duration,
            bytes_sent,
            bytes_received,
            uploads_in_flight,
        }
    }

    /// The metrics in the Prometheus text format 0.0.4.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// A router serving only `GET /metrics`, for `--metrics-addr`.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(metrics)
}

/// Serves only `GET /metrics` on `listener` (for `--metrics-addr`), until
/// the task running it is dropped with the runtime.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
) -> std::io::Result<()> {
    axum::serve(listener, router(metrics)).await
}

/// `GET /metrics`.
pub(crate) async fn scrape(State(metrics): State<Arc<Metrics>>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        metrics.encode(),
    )
        .into_response()
}

/// Middleware: counts the request and its bytes, and times it to the end
/// of its response body.
pub(crate) async fn track(
    State(metrics): State<Arc<Metrics>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let start = Instant::now();
    let kind = RouteKind::of(req.uri().path());
    let method = MethodLabel::from(req.method());
    let upload = kind == RouteKind::upload
        && matches!(
            method,
            MethodLabel::POST | MethodLabel::PATCH | MethodLabel::PUT
        );
    let in_flight = upload.then(|| {
        metrics.uploads_in_flight.inc();
        InFlight(metrics.uploads_in_flight.clone())
    });
    let received = metrics.bytes_received.clone();
    let req = req.map(|b| {
        Body::new(Counted {
            inner: b,
            bytes: received,
            done: None,
        })
    });
    let resp = next.run(req).await;
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route: kind,
            status: resp.status().as_u16(),
        })
        .inc();
    let histogram = metrics
        .duration
        .get_or_create(&RouteLabels { route: kind })
        .clone();
    let sent = metrics.bytes_sent.clone();
    resp.map(|b| {
        Body::new(Counted {
            inner: b,
            bytes: sent,
            done: Some(Done {
                start,
                histogram,
                _in_flight: in_flight,
            }),
        })
    })
}

/// Decrements the upload gauge when the request is over.
struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Observes the duration when the response body is finished or dropped
/// (a client that goes away still ends its request).
struct Done {
    start: Instant,
    histogram: Histogram,
    _in_flight: Option<InFlight>,
}

impl Drop for Done {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

/// A body that counts the data bytes passing through it.
struct Counted {
    inner: Body,
    bytes: Counter,
    done: Option<Done>,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    self.bytes.inc_by(d.len() as u64);
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => {
                self.done = None;
            }
            Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
