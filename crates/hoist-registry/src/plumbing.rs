//! HTTP plumbing shared by the handlers, auth, the pull-through cache and
//! the web page: the distribution-spec error ([`ApiError`]), responses that
//! carry the API version header, blocking storage work off the async
//! threads, and a response body fed through a channel.

use crate::error::Error;
use axum::body::{Body, Bytes, HttpBody};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// The API version header every `/v2` response carries.
pub const API_VERSION_HEADER: &str = "Docker-Distribution-API-Version";

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

    /// Adds a header to the error response.
    pub(crate) fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// 405 `UNSUPPORTED`: the method or the registry's mode refuses it.
    pub(crate) fn unsupported(message: &str) -> Self {
        RequestError::Unsupported(message.to_owned()).into()
    }
}

/// A request the registry refuses before storage has a say, or a failure
/// of the server itself.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestError {
    /// No route for the path.
    #[error("no such endpoint: {0}")]
    NoEndpoint(String),
    /// The method, or the registry's mode, refuses the request.
    #[error("{0}")]
    Unsupported(String),
    /// An `n` that is not a number.
    #[error("invalid page size n={0:?}")]
    PageSize(String),
    /// A `Range` outside the blob.
    #[error("requested range not satisfiable for a blob of {0} bytes")]
    RangeNotSatisfiable(u64),
    /// A `Content-Range` that is not `<start>-<end>`.
    #[error("malformed Content-Range: expected <start>-<end>")]
    ContentRange,
    /// An upload's last PUT without `?digest=`.
    #[error("the digest query parameter is required to finish an upload")]
    DigestRequired,
    /// The server failed (a task died, a body could not be built).
    #[error("{0}")]
    Internal(String),
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        let msg = e.to_string();
        match e {
            RequestError::NoEndpoint(_) => ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", msg),
            RequestError::Unsupported(_) => {
                ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", msg)
            }
            RequestError::PageSize(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "PAGINATION_NUMBER_INVALID", msg)
            }
            RequestError::RangeNotSatisfiable(size) => {
                ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UNKNOWN", msg)
                    .with_header("Content-Range", format!("bytes */{size}"))
            }
            RequestError::ContentRange => ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "BLOB_UPLOAD_INVALID",
                msg,
            ),
            RequestError::DigestRequired => {
                ApiError::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", msg)
            }
            RequestError::Internal(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", msg)
            }
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        use crate::names::NameError;
        let msg = e.to_string();
        let s = StatusCode::BAD_REQUEST;
        let nf = StatusCode::NOT_FOUND;
        match e {
            Error::Io { .. } | Error::Storage(_) | Error::Task(_) => {
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
            Error::RangeInvalid { current, .. } => ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "BLOB_UPLOAD_INVALID",
                msg,
            )
            .with_header("Range", range_header(current)),
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

/// What a handler answers.
pub(crate) type ApiResult = Result<Response, ApiError>;

/// A response builder carrying the API version header.
pub(crate) fn respond(status: StatusCode) -> axum::http::response::Builder {
    Response::builder()
        .status(status)
        .header(API_VERSION_HEADER, "registry/2.0")
}

/// Builds the response, or a 500 when a header value was unusable.
pub(crate) fn finish(b: axum::http::response::Builder, body: Body) -> ApiResult {
    b.body(body)
        .map_err(|e| RequestError::Internal(e.to_string()).into())
}

/// `Range: 0-<last byte>` as distribution writes it ("0-0" when empty).
pub(crate) fn range_header(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

/// Runs blocking storage work off the async threads.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> crate::Result<T> + Send + 'static,
    T: Send + 'static,
{
    crate::error::off_thread(f).await.map_err(ApiError::from)
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

/// The request's `Content-Length`, when it is a number.
pub(crate) fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}
