//! The pull-through cache's answers as HTTP: its errors as the
//! distribution-spec writes them, its blobs as responses.

use crate::plumbing::{finish, respond, ApiError, ApiResult, ChannelBody};
use crate::proxy::{FillBody, Missing, ProxyError};
use axum::body::Body;
use axum::http::{header, StatusCode};
use hoist_oci::Digest;
use hoist_registry_client::Error as UpstreamError;

impl From<ProxyError> for ApiError {
    fn from(e: ProxyError) -> Self {
        let message = e.to_string();
        match e {
            ProxyError::Store(e) => e.into(),
            ProxyError::Upstream {
                missing, source, ..
            } => {
                let code = match missing {
                    Missing::Manifest => "MANIFEST_UNKNOWN",
                    Missing::Blob => "BLOB_UNKNOWN",
                    Missing::Name => "NAME_UNKNOWN",
                };
                upstream_api_error(&source, message, code)
            }
            ProxyError::Unconfirmed { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", message)
            }
            ProxyError::FillsFailed { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", message)
            }
        }
    }
}

fn blob_headers(d: &Digest) -> axum::http::response::Builder {
    respond(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header("Docker-Content-Digest", d.to_string())
}

/// A HEAD of a blob only the upstream has (it has `size` bytes).
pub(crate) fn upstream_head(d: &Digest, size: u64) -> ApiResult {
    finish(
        blob_headers(d).header(header::CONTENT_LENGTH, size),
        Body::empty(),
    )
}

/// A blob streamed from its fill.
pub(crate) fn filling(d: &Digest, fill: FillBody) -> ApiResult {
    let mut b = blob_headers(d).header(header::ETAG, format!("\"{d}\""));
    if let Some(len) = fill.size {
        b = b.header(header::CONTENT_LENGTH, len);
    }
    let body = ChannelBody {
        rx: fill.rx,
        remaining: fill.size,
    };
    finish(b, Body::new(body))
}

/// The static code for an upstream's error code, when it is one of the spec's.
fn known_code(code: &str) -> Option<&'static str> {
    const KNOWN: [&str; 15] = [
        "BLOB_UNKNOWN",
        "BLOB_UPLOAD_INVALID",
        "BLOB_UPLOAD_UNKNOWN",
        "DIGEST_INVALID",
        "MANIFEST_BLOB_UNKNOWN",
        "MANIFEST_INVALID",
        "MANIFEST_UNKNOWN",
        "NAME_INVALID",
        "NAME_UNKNOWN",
        "SIZE_INVALID",
        "UNAUTHORIZED",
        "DENIED",
        "UNSUPPORTED",
        "TOOMANYREQUESTS",
        "UNKNOWN",
    ];
    KNOWN.into_iter().find(|k| *k == code)
}

/// Our answer for an upstream failure while fetching `what`: the upstream's
/// 404 stays a 404 (with its code); anything else is a 502 naming the
/// upstream, its status and its error codes.
fn upstream_api_error(
    e: &UpstreamError,
    message: String,
    not_found_code: &'static str,
) -> ApiError {
    let mut detail = serde_json::json!({});
    let (status, code) = match e {
        UpstreamError::Unreachable { registry, .. } => {
            detail["upstream"] = registry.clone().into();
            (StatusCode::BAD_GATEWAY, "UNAVAILABLE")
        }
        UpstreamError::Status {
            registry,
            status,
            errors,
            ..
        } => {
            detail["upstream"] = registry.clone().into();
            detail["upstream_status"] = (*status).into();
            detail["upstream_errors"] = errors
                .iter()
                .map(|e| serde_json::json!({ "code": e.code, "message": e.message }))
                .collect::<Vec<_>>()
                .into();
            let first = errors.first().and_then(|e| known_code(&e.code));
            match *status {
                404 => (StatusCode::NOT_FOUND, first.unwrap_or(not_found_code)),
                429 => (StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS"),
                // Our credentials for the upstream, not the client's: a 502.
                401 => (StatusCode::BAD_GATEWAY, first.unwrap_or("UNAUTHORIZED")),
                403 => (StatusCode::BAD_GATEWAY, first.unwrap_or("DENIED")),
                _ => (StatusCode::BAD_GATEWAY, first.unwrap_or("UNAVAILABLE")),
            }
        }
        UpstreamError::Invalid { registry, code, .. } => {
            detail["upstream"] = registry.clone().into();
            (StatusCode::BAD_GATEWAY, *code)
        }
        UpstreamError::Credentials { .. } | UpstreamError::Io { .. } | UpstreamError::Usage(_) => {
            (StatusCode::BAD_GATEWAY, "UNAVAILABLE")
        }
    };
    ApiError::new(status, code, message).detail(detail)
}
