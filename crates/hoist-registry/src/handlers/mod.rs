//! The distribution-spec's handlers, by resource as distribution's
//! `registry/handlers/` has them: [`blobs`], [`uploads`], [`manifests`],
//! [`tags`], [`catalog`](mod@catalog), [`referrers`]. [`dispatch`] sends each `/v2/<name>/…`
//! request to its handler once the registry's mode allows the method.
//! Stateless: every request goes to the [`Store`](crate::store::Store);
//! blocking filesystem work runs on tokio's blocking pool.

mod app;
mod blobs;
mod catalog;
mod manifests;
mod mirror;
mod referrers;
mod tags;
mod uploads;

pub(crate) use app::App;
pub use app::{DEFAULT_CATALOG_PAGE, MAX_PAGE};
pub(crate) use catalog::catalog;

use crate::error::Error;
use crate::names::UploadId;
use crate::plumbing::{respond, ApiError, ApiResult, RequestError};
use crate::routing::{route, Route};
use app::{mark_pushed, parse_digest, parse_name};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// `GET /v2/`: the API is here (auth, when on, has had its say).
pub(crate) async fn base() -> Response {
    respond(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .unwrap_or_else(|_| StatusCode::OK.into_response())
}

/// `GET /healthz`, outside auth, for load balancers.
pub(crate) async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

/// Every `/v2/<name>/…` request: routed from the path's end, checked
/// against the registry's mode, handed to its resource's handler.
pub(crate) async fn dispatch(State(app): State<App>, req: Request) -> ApiResult {
    let path = req.uri().path().to_owned();
    let Some(r) = route(&path) else {
        return Err(RequestError::NoEndpoint(path).into());
    };
    let method = req.method().clone();
    let writes = !matches!(method, Method::GET | Method::HEAD);
    if writes && app.read_only {
        return Err(ApiError::unsupported("the registry is in read-only mode"));
    }
    if method == Method::DELETE && !app.delete_enabled && !matches!(r, Route::Upload(..)) {
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
            Method::GET | Method::HEAD => tags::tags_list(app, parse_name(&name)?, req).await,
            _ => not_allowed(),
        },
        Route::Referrers(name, d) => match method {
            Method::GET | Method::HEAD => {
                referrers::referrers(app, parse_name(&name)?, parse_digest(&d)?, req).await
            }
            _ => not_allowed(),
        },
        Route::Blob(name, d) => {
            let name = parse_name(&name)?;
            let d = parse_digest(&d)?;
            match method {
                Method::GET => blobs::get_blob(app, name, d, req, false).await,
                Method::HEAD => blobs::get_blob(app, name, d, req, true).await,
                Method::DELETE => blobs::delete_blob(app, name, d).await,
                _ => not_allowed(),
            }
        }
        Route::Manifest(name, reference) => {
            let name = parse_name(&name)?;
            let r = manifests::reference(&name, reference, &method)?;
            match method {
                Method::GET => manifests::get_manifest(app, name, r, false).await,
                Method::HEAD => manifests::get_manifest(app, name, r, true).await,
                Method::PUT => {
                    mark_pushed(&app, &name).await?;
                    manifests::put_manifest(app, name, r, req).await
                }
                Method::DELETE => manifests::delete_manifest(app, name, r).await,
                _ => not_allowed(),
            }
        }
        Route::UploadStart(name) => match method {
            Method::POST => {
                let name = parse_name(&name)?;
                mark_pushed(&app, &name).await?;
                uploads::start_upload(app, name, req).await
            }
            _ => not_allowed(),
        },
        Route::Upload(name, id) => {
            let name = parse_name(&name)?;
            let id = UploadId::new(&id).map_err(|e| ApiError::from(Error::Name(e)))?;
            match method {
                Method::GET | Method::HEAD => uploads::upload_status(app, name, id).await,
                Method::PATCH => uploads::patch_upload(app, name, id, req).await,
                Method::PUT => uploads::put_upload(app, name, id, req).await,
                Method::DELETE => uploads::cancel_upload(app, name, id).await,
                _ => not_allowed(),
            }
        }
    }
}
