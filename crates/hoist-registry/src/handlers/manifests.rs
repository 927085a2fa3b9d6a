//! `/v2/<name>/manifests/<reference>`: get, head, put and delete.

use super::app::{parse_ref, App};
use crate::error::Error;
use crate::names::{ManifestRef, RepoName};
use crate::plumbing::{blocking, content_length, finish, respond, ApiError, ApiResult};
use crate::store::MAX_MANIFEST_SIZE;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use http_body_util::BodyExt;

/// A manifest by tag or digest (filled from the upstream when mirrored).
pub(crate) async fn get_manifest(
    app: App,
    name: RepoName,
    r: ManifestRef,
    head: bool,
) -> ApiResult {
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

/// Stores a pushed manifest under its digest and, for a tag, points the tag at it.
pub(crate) async fn put_manifest(
    app: App,
    name: RepoName,
    r: ManifestRef,
    req: Request,
) -> ApiResult {
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

/// The reference of a manifest request. No manifest can have a name that is
/// not a valid tag: a read of one finds nothing (404, as distribution and
/// the OCI conformance suite have it); a write of one is refused.
pub(crate) fn reference(
    name: &RepoName,
    reference: String,
    method: &Method,
) -> Result<ManifestRef, ApiError> {
    match parse_ref(&reference) {
        Err(_) if matches!(*method, Method::GET | Method::HEAD) && !reference.contains(':') => {
            Err(Error::ManifestUnknown {
                name: name.clone(),
                reference,
            }
            .into())
        }
        r => r,
    }
}

/// Deletes a manifest (by digest) or a tag.
pub(crate) async fn delete_manifest(app: App, name: RepoName, r: ManifestRef) -> ApiResult {
    let store = app.store.clone();
    blocking(move || store.delete_manifest(&name, &r)).await?;
    finish(
        respond(StatusCode::ACCEPTED).header(header::CONTENT_LENGTH, "0"),
        Body::empty(),
    )
}
