//! `GET /v2/<name>/referrers/<digest>`: the manifests whose subject is a
//! digest, as an OCI index.

use super::app::App;
use crate::names::RepoName;
use crate::plumbing::{blocking, finish, respond, ApiResult};
use crate::routing::query_param;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use hoist_oci::{media_type, Digest};

/// The referrers of `subject`, filtered by `artifactType` when asked.
pub(crate) async fn referrers(
    app: App,
    name: RepoName,
    subject: Digest,
    req: Request,
) -> ApiResult {
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
