//! What every handler shares: the application state, reference parsing,
//! pagination and the pull-through cache's hooks.

use crate::error::Error;
use crate::metrics::Metrics;
use crate::names::{ManifestRef, RepoName, Tag};
use crate::plumbing::{blocking, ApiError, RequestError};
use crate::proxy::{Proxy, Target};
use crate::routing::query_param;
use crate::store::Store;
use axum::http::header;
use hoist_oci::Digest;
use std::sync::Arc;

/// Largest page of tags or repositories returned at once.
pub const MAX_PAGE: usize = 10_000;

/// Page size of `/v2/_catalog` when the client gives no `n`.
pub const DEFAULT_CATALOG_PAGE: usize = 1_000;

/// The state every handler gets: the store, the pull-through cache and the
/// registry's policy.
#[derive(Clone)]
pub(crate) struct App {
    pub(crate) store: Arc<Store>,
    pub(crate) proxy: Option<Arc<Proxy>>,
    pub(crate) metrics: Arc<Metrics>,
    /// Refuse every write.
    pub(crate) read_only: bool,
    /// Allow DELETE of manifests, tags and blobs.
    pub(crate) delete_enabled: bool,
    /// Mount a blob from anywhere when a client names no `from`.
    pub(crate) auto_mount: bool,
}

impl App {
    /// The pull-through cache and upstream for `name`, when it is mirrored.
    pub(crate) async fn mirror(
        &self,
        name: &RepoName,
    ) -> Result<Option<(&Proxy, Target<'_>)>, ApiError> {
        let Some(p) = self.proxy.as_deref() else {
            return Ok(None);
        };
        Ok(p.target(&self.store, name).await?.map(|t| (p, t)))
    }
}

/// `/metrics` needs only the metrics.
impl axum::extract::FromRef<App> for Arc<Metrics> {
    fn from_ref(app: &App) -> Arc<Metrics> {
        app.metrics.clone()
    }
}

/// The web page's handlers need only the store.
impl axum::extract::FromRef<App> for Arc<Store> {
    fn from_ref(app: &App) -> Arc<Store> {
        app.store.clone()
    }
}

/// A digest from the path or query, else `DIGEST_INVALID`.
pub(crate) fn parse_digest(s: &str) -> Result<Digest, ApiError> {
    s.parse::<Digest>()
        .map_err(|e| ApiError::from(Error::Digest(e)))
}

/// A repository name from the path or query, else `NAME_INVALID`.
pub(crate) fn parse_name(s: &str) -> Result<RepoName, ApiError> {
    RepoName::new(s).map_err(|e| ApiError::from(Error::Name(e)))
}

/// A manifest reference: a digest when it has a `:`, else a tag.
pub(crate) fn parse_ref(s: &str) -> Result<ManifestRef, ApiError> {
    if s.contains(':') {
        Ok(ManifestRef::Digest(parse_digest(s)?))
    } else {
        Tag::new(s)
            .map(ManifestRef::Tag)
            .map_err(|e| ApiError::from(Error::Name(e)))
    }
}

/// The page size from `n`: absent gives `default`, too big is capped.
pub(crate) fn page_size(uri: &axum::http::Uri, default: usize) -> Result<usize, ApiError> {
    match query_param(uri, "n") {
        None => Ok(default),
        Some(n) => n
            .parse::<u64>()
            .map(|n| n.min(MAX_PAGE as u64) as usize)
            .map_err(|_| RequestError::PageSize(n).into()),
    }
}

/// Appends a `Link: <...>; rel="next"` header when a page is full.
pub(crate) fn next_link(
    b: axum::http::response::Builder,
    path: &str,
    n: usize,
    last: Option<&String>,
) -> axum::http::response::Builder {
    match last {
        Some(last) => b.header(
            header::LINK,
            format!("<{path}?n={n}&last={}>; rel=\"next\"", percent_encode(last)),
        ),
        None => b,
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Takes one page from a sorted list: entries after `last`, at most `n`.
/// Returns the page and, when more remain, the last entry for the next link.
pub(crate) fn paginate<'a>(
    all: &'a [String],
    n: usize,
    last: Option<&str>,
    less: impl Fn(&str, &str) -> bool,
) -> (&'a [String], Option<&'a String>) {
    let start = match last {
        Some(l) => all.partition_point(|x| !less(l, x)),
        None => 0,
    };
    let end = (start + n).min(all.len());
    let page = &all[start..end];
    let more = end < all.len() && n > 0;
    (page, if more { page.last() } else { None })
}

/// A push makes a mirrored repository local (see `proxy`).
pub(crate) async fn mark_pushed(app: &App, name: &RepoName) -> Result<(), ApiError> {
    let Some(proxy) = app.proxy.clone() else {
        return Ok(());
    };
    let (store, name) = (app.store.clone(), name.clone());
    blocking(move || proxy.mark_pushed(&store, &name)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagination() {
        let all: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let lt = |a: &str, b: &str| a < b;
        let (p, more) = paginate(&all, 2, None, lt);
        assert_eq!(p, ["a", "b"]);
        assert_eq!(more.map(String::as_str), Some("b"));
        let (p, more) = paginate(&all, 2, Some("b"), lt);
        assert_eq!(p, ["c", "d"]);
        assert_eq!(more, None);
        let (p, _) = paginate(&all, 10, Some("bb"), lt);
        assert_eq!(p, ["c", "d"]);
        let (p, more) = paginate(&all, 0, None, lt);
        assert!(p.is_empty() && more.is_none());
    }
}
