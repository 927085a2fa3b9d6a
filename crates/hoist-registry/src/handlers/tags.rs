//! `GET /v2/<name>/tags/list`: a repository's tags, a page at a time.

use super::app::{next_link, page_size, paginate, App};
use crate::names::RepoName;
use crate::plumbing::{blocking, finish, respond, ApiResult, RequestError};
use crate::routing::query_param;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use std::sync::Arc;

/// One page of a repository's tags (the upstream's when it is mirrored).
pub(crate) async fn tags_list(app: App, name: RepoName, req: Request) -> ApiResult {
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
    .map_err(|e| RequestError::Internal(e.to_string()))?;
    let b = respond(StatusCode::OK).header(header::CONTENT_TYPE, "application/json");
    let b = next_link(b, &format!("/v2/{name}/tags/list"), n, more);
    finish(b, Body::from(body))
}
