//! `GET /v2/_catalog`: the repositories, a page at a time.

use super::app::{next_link, page_size, App, DEFAULT_CATALOG_PAGE};
use crate::plumbing::{blocking, finish, respond, ApiResult, RequestError};
use crate::routing::query_param;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};

/// One page of the repositories.
pub(crate) async fn catalog(State(app): State<App>, req: Request) -> ApiResult {
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
    .map_err(|e| RequestError::Internal(e.to_string()))?;
    let b = respond(StatusCode::OK).header(header::CONTENT_TYPE, "application/json");
    let b = next_link(b, "/v2/_catalog", n, more.then(|| page.last()).flatten());
    finish(b, Body::from(body))
}
