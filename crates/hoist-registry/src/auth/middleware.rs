//! The auth middleware: the access each request needs (from its route),
//! the challenges (basic or bearer) and the `DENIED` answer, the built-in
//! token issuer's endpoint, and `protect`, which puts them on a router.

use super::acl::Acl;
use super::token::{Claims, ResourceActions};
use super::{Auth, Files, TokenAuth};
use crate::names::RepoName;
use crate::plumbing::API_VERSION_HEADER;
use crate::routing::{percent_decode, query_param, route, Route};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::Response;
use std::sync::Arc;

/// The access a request needs: resources and actions (empty: only
/// authentication, as for `/v2/`).
fn needed(method: &Method, uri: &axum::http::Uri) -> Result<Vec<ResourceActions>, Box<Response>> {
    let path = uri.path();
    // The web page's list of repositories is the catalog; a repository's
    // pages read what a pull reads.
    if path == "/v2/_catalog" || path == "/" {
        return Ok(vec![res("registry", "catalog", &["*"])]);
    }
    if let Some(name) = crate::web::repo_of_page(path) {
        return Ok(vec![res("repository", &checked_name(name)?, &["pull"])]);
    }
    let Some(r) = route(path) else {
        return Ok(Vec::new());
    };
    let (name, action) = match (&r, method) {
        (Route::UploadStart(n) | Route::Upload(n, _), _) => (n, "push"),
        (_, &Method::GET | &Method::HEAD) => (repo_of(&r), "pull"),
        (Route::Manifest(n, _) | Route::Blob(n, _), &Method::DELETE) => (n, "delete"),
        _ => (repo_of(&r), "push"),
    };
    let name = checked_name(name)?;
    let mut need = vec![res("repository", &name, &[action])];
    // A mount reads the blob from `from`: it needs pull there too.
    if matches!(r, Route::UploadStart(_)) && *method == Method::POST {
        if let (Some(_), Some(from)) = (query_param(uri, "mount"), query_param(uri, "from")) {
            let from = checked_name(&from)?;
            if from != name {
                need.push(res("repository", &from, &["pull"]));
            }
        }
    }
    Ok(need)
}

fn repo_of(r: &Route) -> &String {
    match r {
        Route::Tags(n)
        | Route::UploadStart(n)
        | Route::Upload(n, _)
        | Route::Blob(n, _)
        | Route::Manifest(n, _)
        | Route::Referrers(n, _) => n,
    }
}

/// A valid repository name, else the spec's NAME_INVALID (a rule's glob is
/// never matched against a name the storage would refuse anyway).
fn checked_name(n: &str) -> Result<String, Box<Response>> {
    RepoName::new(n)
        .map(|n| n.as_str().to_owned())
        .map_err(|e| {
            Box::new(error_response(
                StatusCode::BAD_REQUEST,
                "NAME_INVALID",
                &e.to_string(),
                serde_json::json!({ "name": n }),
                None,
            ))
        })
}

fn res(typ: &str, name: &str, actions: &[&str]) -> ResourceActions {
    ResourceActions {
        typ: typ.to_owned(),
        name: name.to_owned(),
        actions: actions.iter().map(|a| (*a).to_owned()).collect(),
    }
}

/// `repository:name:pull,push repository:other:pull`, as scopes are written.
fn scope_string(need: &[ResourceActions]) -> String {
    need.iter()
        .map(|r| format!("{}:{}:{}", r.typ, r.name, r.actions.join(",")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn error_response(
    status: StatusCode,
    code: &str,
    message: &str,
    detail: serde_json::Value,
    challenge: Option<String>,
) -> Response {
    let body = serde_json::json!({
        "errors": [{ "code": code, "message": message, "detail": detail }]
    });
    let mut b = Response::builder()
        .status(status)
        .header(API_VERSION_HEADER, "registry/2.0")
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(c) = challenge {
        b = b.header(header::WWW_AUTHENTICATE, c);
    }
    b.body(Body::from(body.to_string())).unwrap_or_else(|_| {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = status;
        r
    })
}

fn detail(need: &[ResourceActions]) -> serde_json::Value {
    need.iter()
        .flat_map(|r| {
            r.actions
                .iter()
                .map(move |a| serde_json::json!({ "Type": r.typ, "Name": r.name, "Action": a }))
        })
        .collect()
}

impl Files {
    fn basic_challenge(&self, need: &[ResourceActions]) -> Response {
        error_response(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required",
            detail(need),
            Some(format!("Basic realm=\"{}\"", self.realm.replace('"', "'"))),
        )
    }

    fn bearer_challenge(t: &TokenAuth, need: &[ResourceActions], error: Option<&str>) -> Response {
        let mut c = format!("Bearer realm=\"{}\",service=\"{}\"", t.realm, t.service);
        if !need.is_empty() {
            c.push_str(&format!(",scope=\"{}\"", scope_string(need)));
        }
        if let Some(e) = error {
            c.push_str(&format!(",error=\"{e}\""));
        }
        let msg = match error {
            Some("insufficient_scope") => "the token does not grant the access this request needs",
            Some(_) => "the token is not valid",
            None => "authentication required",
        };
        error_response(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            msg,
            detail(need),
            Some(c),
        )
    }
}

/// The middleware: lets a request through when its credentials grant what
/// it needs, else answers 401 (with the challenge) or 403 `DENIED`.
pub async fn check(
    State(auth): State<Arc<Auth>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path();
    if path == "/healthz" || Some(path) == auth.issuer_path() {
        return next.run(req).await;
    }
    let auth = auth.files();
    let need = match needed(req.method(), req.uri()) {
        Ok(n) => n,
        Err(resp) => return *resp,
    };
    if let Some(t) = &auth.token {
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.split_once(' ')
                    .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
            })
            .map(|(_, tok)| tok.trim().to_owned());
        let Some(tok) = bearer else {
            return Files::bearer_challenge(t, &need, None);
        };
        let claims: Claims = match t.verifier.verify(&tok) {
            Ok(c) => c,
            Err(e) => {
                tracing::info!(error = %e, "bearer token refused");
                return Files::bearer_challenge(t, &need, Some("invalid_token"));
            }
        };
        let ok = need
            .iter()
            .all(|r| r.actions.iter().all(|a| claims.grants(&r.typ, &r.name, a)));
        if !ok {
            return Files::bearer_challenge(t, &need, Some("insufficient_scope"));
        }
        return next.run(req).await;
    }
    let user = match auth.basic_user(req.headers()).await {
        Ok(u) => u,
        Err(()) => return auth.basic_challenge(&need),
    };
    // `/v2/` answers 401 to anonymous clients: that is how `docker login`
    // learns it must send credentials.
    let ok = (user.is_some() || !need.is_empty())
        && need.iter().all(|r| auth.acl_allows_all(user.as_deref(), r));
    if ok {
        next.run(req).await
    } else if user.is_none() {
        auth.basic_challenge(&need)
    } else {
        error_response(
            StatusCode::FORBIDDEN,
            "DENIED",
            "requested access to the resource is denied",
            detail(&need),
            None,
        )
    }
}

/// Most scopes one token request may name (a bound on the token's size).
const MAX_SCOPES: usize = 100;

/// Parses `repository:name:pull,push` (also `repository(plugin):…`).
fn parse_scope(s: &str) -> Option<ResourceActions> {
    let (typ, rest) = s.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    let typ = typ.split('(').next().unwrap_or(typ);
    Some(ResourceActions {
        typ: typ.to_owned(),
        name: name.to_owned(),
        actions: actions
            .split(',')
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// The built-in issuer: `GET <path>?service=S&scope=…` authenticated by
/// basic auth (anonymous when the ACL grants `*` anything); the token
/// grants the intersection of the requested scopes and the user's rights.
pub async fn issue(State(auth): State<Arc<Auth>>, req: Request) -> Response {
    let auth = auth.files();
    let Some((t, (issuer, _))) = auth
        .token
        .as_ref()
        .and_then(|t| t.issuer.as_ref().map(|i| (t, i)))
    else {
        return error_response(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "no token issuer here",
            serde_json::Value::Null,
            None,
        );
    };
    let uri = req.uri();
    let user = match auth.basic_user(req.headers()).await {
        Ok(u) => u,
        Err(()) => return auth.basic_challenge(&[]),
    };
    let anonymous_ok = auth.acl.as_ref().is_some_and(Acl::grants_anonymous);
    if user.is_none() && !anonymous_ok {
        return auth.basic_challenge(&[]);
    }
    if let Some(s) = query_param(uri, "service") {
        if s != t.service {
            return error_response(
                StatusCode::BAD_REQUEST,
                "UNSUPPORTED",
                &format!(
                    "this issuer signs tokens for service {:?}, not {s:?}",
                    t.service
                ),
                serde_json::Value::Null,
                None,
            );
        }
    }
    let scopes: Vec<ResourceActions> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == "scope")
        .flat_map(|(_, v)| {
            percent_decode(&v.replace('+', " "))
                .split(' ')
                .filter_map(parse_scope)
                .collect::<Vec<_>>()
        })
        .collect();
    if scopes.len() > MAX_SCOPES {
        return error_response(
            StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
            &format!(
                "{} scopes asked for; the limit is {MAX_SCOPES}",
                scopes.len()
            ),
            serde_json::Value::Null,
            None,
        );
    }
    let u = user.as_deref();
    let access: Vec<ResourceActions> = scopes
        .into_iter()
        .filter(|r| r.typ != "repository" || RepoName::new(&r.name).is_ok())
        .map(|mut r| {
            let (typ, name) = (r.typ.clone(), r.name.clone());
            r.actions.retain(|a| auth.acl_grants(u, &typ, &name, a));
            r
        })
        .filter(|r| !r.actions.is_empty())
        .collect();
    let granted = scope_string(&access);
    let (token, now) = match issuer.sign(u.unwrap_or(""), &t.service, access) {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(error = %e, "token signing failed");
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNKNOWN",
                &e,
                serde_json::Value::Null,
                None,
            );
        }
    };
    tracing::info!(user = u.unwrap_or(""), granted, "token issued");
    let issued_at = chrono::DateTime::from_timestamp(now as i64, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": issuer.ttl().as_secs(),
        "issued_at": issued_at,
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// Adds the auth middleware (and the issuer's route) to the registry's router.
pub(crate) fn protect<S: Clone + Send + Sync + 'static>(
    r: axum::Router<S>,
    auth: Arc<Auth>,
) -> axum::Router<S> {
    let r = match auth.issuer_path() {
        Some(p) => r.route(p, axum::routing::get(issue).with_state(auth.clone())),
        None => r,
    };
    r.layer(axum::middleware::from_fn_with_state(auth, check))
}
