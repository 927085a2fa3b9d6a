//! `/v2/<name>/blobs/uploads/…`: upload sessions (start, mount, chunks,
//! status, finish, cancel), the body streamed to a blocking writer.

use super::app::{parse_digest, parse_name, App};
use crate::error::Error;
use crate::names::{RepoName, UploadId};
use crate::plumbing::{
    blocking, content_length, finish, range_header, respond, ApiError, ApiResult, RequestError,
};
use crate::routing::query_param;
use crate::upload::UploadWriter;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderMap, StatusCode};
use hoist_oci::Digest;
use http_body_util::BodyExt;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long an upload body may send nothing before the request is dropped.
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

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
    let bad = || ApiError::from(RequestError::ContentRange);
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
    let (w, res) = task
        .await
        .map_err(|e| RequestError::Internal(format!("upload writer failed: {e}")))?;
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

/// `POST …/blobs/uploads/`: a mount, a monolithic upload or a new session.
pub(crate) async fn start_upload(app: App, name: RepoName, req: Request) -> ApiResult {
    let uri = req.uri().clone();
    if let Some(m) = query_param(&uri, "mount") {
        let d = parse_digest(&m)?;
        let from = match query_param(&uri, "from") {
            Some(f) => Some(parse_name(&f)?),
            None if app.auto_mount => None,
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

/// `PATCH`: one more chunk of a session.
pub(crate) async fn patch_upload(
    app: App,
    name: RepoName,
    id: UploadId,
    req: Request,
) -> ApiResult {
    let writer = receive_chunk(&app, &name, &id, req).await?;
    let size = blocking(move || writer.finish()).await?;
    upload_progress(StatusCode::ACCEPTED, &name, &id, size)
}

/// `PUT ?digest=`: the last chunk (maybe empty), then the blob is committed.
pub(crate) async fn put_upload(app: App, name: RepoName, id: UploadId, req: Request) -> ApiResult {
    let Some(d) = query_param(req.uri(), "digest") else {
        return Err(RequestError::DigestRequired.into());
    };
    let d = parse_digest(&d)?;
    finish_upload(&app, &name, &id, &d, req).await
}

/// How much of an upload session has arrived.
pub(crate) async fn upload_status(app: App, name: RepoName, id: UploadId) -> ApiResult {
    let store = app.store.clone();
    let (n2, i2) = (name.clone(), id.clone());
    let size = blocking(move || store.upload_status(&n2, &i2)).await?;
    upload_progress(StatusCode::NO_CONTENT, &name, &id, size)
}

/// Drops an upload session and what it received.
pub(crate) async fn cancel_upload(app: App, name: RepoName, id: UploadId) -> ApiResult {
    let store = app.store.clone();
    blocking(move || store.cancel_upload(&name, &id)).await?;
    finish(
        respond(StatusCode::NO_CONTENT).header(header::CONTENT_LENGTH, "0"),
        Body::empty(),
    )
}
