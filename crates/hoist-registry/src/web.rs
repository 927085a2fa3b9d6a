//! The web page: server-rendered HTML, no script, listing repositories
//! (`/`), a repository's tags (`/ui/r/<name>`), and for a tag
//! (`/ui/r/<name>/_tags/<tag>`) or a manifest (`/ui/r/<name>/_manifests/<digest>`)
//! its digest, media type, platforms, layers, sizes and history.
//!
//! `_tags` and `_manifests` can never be components of a repository name
//! (components start with a letter or digit), so splitting the path at the
//! last of them is unambiguous, and nothing here can clash with `/v2/…`.
//! Every string shown comes from outside (names, tags, configs) and is
//! escaped; names and tags are validated by [`RepoName`] and [`Tag`]
//! before they reach the store. Lists are paginated and documents bounded.

use crate::error::Error;
use crate::names::{ManifestRef, RepoName, Tag};
use crate::routing::query_param;
use crate::store::Store;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hoist_oci::document::HistoryEntry;
use hoist_oci::{Digest, Document};
use std::fmt::Write as _;
use std::sync::Arc;

/// Repositories or tags per page.
pub const PAGE: usize = 100;
/// Index children rendered in full on a tag page; the rest are only linked.
pub const MAX_CHILDREN_SHOWN: usize = 16;
/// History entries shown per image.
pub const MAX_HISTORY_SHOWN: usize = 1_000;
/// Largest image config read to show its history.
pub const MAX_CONFIG: u64 = 4 << 20;
/// No page may run scripts or load anything: defence in depth on top of escaping.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'";

/// HTML-escapes text for element content and quoted attributes. Five
/// replacements do not justify a dependency.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Bytes as Docker prints them (`12.3MB`), as every hoist table does.
pub use hoist_oci::units::human_size;

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{t} · hoist</title><style>\
         body{{font-family:sans-serif;margin:2em;max-width:80em}}\
         table{{border-collapse:collapse;margin:.5em 0 1.5em}}\
         td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:left;vertical-align:top}}\
         code{{font-size:.9em}}.num{{text-align:right}}</style></head>\
         <body><nav><a href=\"/\">hoist registry</a></nav><h1>{t}</h1>\n{body}</body></html>\n",
        t = esc(title)
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        html,
    )
        .into_response()
}

fn error_page(e: &Error) -> Response {
    let status = match e {
        Error::Name(_) | Error::Digest(_) => StatusCode::BAD_REQUEST,
        Error::NameUnknown(_) | Error::ManifestUnknown { .. } | Error::BlobUnknown(_) => {
            StatusCode::NOT_FOUND
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %e, "web page failed");
    }
    page(
        status,
        status.canonical_reason().unwrap_or("Error"),
        &format!("<p class=\"error\">{}</p>", esc(&e.to_string())),
    )
}

/// Entries of a sorted list after `last`, at most [`PAGE`]; and whether more follow.
fn paginate<'a>(all: &'a [String], last: Option<&str>) -> (&'a [String], bool) {
    let start = match last {
        Some(l) => all.partition_point(|x| x.as_str() <= l),
        None => 0,
    };
    let rest = &all[start..];
    let n = rest.len().min(PAGE);
    (&rest[..n], rest.len() > n)
}

async fn render(
    store: Arc<Store>,
    f: impl FnOnce(&Store) -> Result<(String, String), Error> + Send + 'static,
) -> Response {
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(Ok((title, body))) => page(StatusCode::OK, &title, &body),
        Ok(Err(e)) => error_page(&e),
        Err(e) => {
            tracing::error!(error = %e, "web page task failed");
            page(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", "")
        }
    }
}

/// `GET /`: the repositories, [`PAGE`] at a time (`?last=<name>`).
pub(crate) async fn index(State(store): State<Arc<Store>>, uri: Uri) -> Response {
    let last = query_param(&uri, "last");
    render(store, move |store| {
        let all = store.catalog()?;
        // The catalog is sorted with '/' first, as distribution sorts it;
        // pagination needs the plain byte order used by `paginate`.
        let mut all = all;
        all.sort_unstable();
        let (shown, more) = paginate(&all, last.as_deref());
        let mut b = String::new();
        if all.is_empty() {
            b.push_str("<p>No repositories yet.</p>\n");
        } else {
            let _ = writeln!(b, "<p>{} repositories.</p>\n<ul id=\"repos\">", all.len());
            for r in shown {
                let _ = writeln!(b, "<li><a href=\"/ui/r/{0}\">{0}</a></li>", esc(r));
            }
            b.push_str("</ul>\n");
        }
        if let (true, Some(l)) = (more, shown.last()) {
            let _ = writeln!(
                b,
                "<p><a rel=\"next\" href=\"/?last={}\">Next page</a></p>",
                esc(l)
            );
        }
        Ok(("Repositories".to_owned(), b))
    })
    .await
}

const TAG_SEP: &str = "/_tags/";
const MANIFEST_SEP: &str = "/_manifests/";

/// The repository a web page path (`/ui/r/<rest>`) shows, unvalidated;
/// `None` for `/` and other pages that list no single repository.
pub(crate) fn repo_of_page(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/ui/r/")?;
    let name = rest
        .rsplit_once(TAG_SEP)
        .or_else(|| rest.rsplit_once(MANIFEST_SEP))
        .map_or(rest.trim_end_matches('/'), |(n, _)| n);
    Some(name)
}

/// `GET /ui/r/<rest>`: a repository's tags, a tag, or a manifest.
pub(crate) async fn repo(
    State(store): State<Arc<Store>>,
    Path(rest): Path<String>,
    uri: Uri,
) -> Response {
    let last = query_param(&uri, "last");
    render(store, move |store| {
        if let Some((name, tag)) = rest.rsplit_once(TAG_SEP) {
            let name = RepoName::new(name)?;
            let tag = Tag::new(tag)?;
            let title = format!("{}:{}", name.as_str(), tag.as_str());
            Ok((title, manifest_page(store, &name, &ManifestRef::Tag(tag))?))
        } else if let Some((name, digest)) = rest.rsplit_once(MANIFEST_SEP) {
            let name = RepoName::new(name)?;
            let digest: Digest = digest.parse()?;
            let title = format!("{}@{digest}", name.as_str());
            Ok((
                title,
                manifest_page(store, &name, &ManifestRef::Digest(digest))?,
            ))
        } else {
            let name = RepoName::new(rest.trim_end_matches('/'))?;
            Ok((
                name.as_str().to_owned(),
                tags_page(store, &name, last.as_deref())?,
            ))
        }
    })
    .await
}

fn tags_page(store: &Store, name: &RepoName, last: Option<&str>) -> Result<String, Error> {
    let all = store.tags(name)?;
    let (shown, more) = paginate(&all, last);
    let n = esc(name.as_str());
    let mut b = String::new();
    let _ = writeln!(b, "<p>{} tags.</p>\n<ul id=\"tags\">", all.len());
    for t in shown {
        let _ = writeln!(
            b,
            "<li><a href=\"/ui/r/{n}/_tags/{0}\">{0}</a></li>",
            esc(t)
        );
    }
    b.push_str("</ul>\n");
    if let (true, Some(l)) = (more, shown.last()) {
        let _ = writeln!(
            b,
            "<p><a rel=\"next\" href=\"/ui/r/{n}?last={}\">Next page</a></p>",
            esc(l)
        );
    }
    Ok(b)
}

fn manifest_page(store: &Store, name: &RepoName, r: &ManifestRef) -> Result<String, Error> {
    let m = store.get_manifest(name, r)?;
    let n = esc(name.as_str());
    let mut b = String::new();
    let _ = writeln!(
        b,
        "<table id=\"manifest\"><tr><th>Digest</th><td><code>{}</code></td></tr>\
         <tr><th>Media type</th><td>{}</td></tr>\
         <tr><th>Size</th><td>{} bytes</td></tr></table>",
        esc(&m.digest.to_string()),
        esc(&m.media_type),
        m.bytes.len()
    );
    match Document::parse(&m.bytes, Some(&m.media_type)) {
        Ok(Document::Index(idx)) => {
            b.push_str("<h2>Platforms</h2>\n<table id=\"platforms\"><tr><th>Platform</th><th>Manifest</th><th>Media type</th><th class=\"num\">Size</th></tr>\n");
            for d in &idx.manifests {
                let _ = writeln!(
                    b,
                    "<tr><td class=\"platform\">{}</td><td><a href=\"/ui/r/{n}/_manifests/{d}\"><code>{d}</code></a></td><td>{}</td><td class=\"num\">{}</td></tr>",
                    esc(&platform_of(d.platform.as_ref())),
                    esc(&d.media_type),
                    d.size,
                    d = esc(&d.digest.to_string()),
                );
            }
            b.push_str("</table>\n");
            for d in idx.manifests.iter().take(MAX_CHILDREN_SHOWN) {
                let _ = writeln!(
                    b,
                    "<h2>{} <code>{}</code></h2>",
                    esc(&platform_of(d.platform.as_ref())),
                    esc(&d.digest.to_string())
                );
                match store.get_manifest(name, &ManifestRef::Digest(d.digest.clone())) {
                    Ok(child) => match Document::parse(&child.bytes, Some(&child.media_type)) {
                        Ok(Document::Manifest(cm)) => image_section(store, name, &cm, &mut b)?,
                        Ok(Document::Index(_)) => {
                            let _ = writeln!(
                                b,
                                "<p>A nested index: <a href=\"/ui/r/{n}/_manifests/{0}\">open it</a>.</p>",
                                esc(&d.digest.to_string())
                            );
                        }
                        Err(e) => {
                            let _ =
                                writeln!(b, "<p>Unreadable manifest: {}</p>", esc(&e.to_string()));
                        }
                    },
                    Err(Error::ManifestUnknown { .. }) => {
                        b.push_str("<p>Not in this repository.</p>\n");
                    }
                    Err(e) => return Err(e),
                }
            }
            if idx.manifests.len() > MAX_CHILDREN_SHOWN {
                let _ = writeln!(
                    b,
                    "<p>{} more manifests: follow their links above.</p>",
                    idx.manifests.len() - MAX_CHILDREN_SHOWN
                );
            }
        }
        Ok(Document::Manifest(im)) => image_section(store, name, &im, &mut b)?,
        Err(e) => {
            let _ = writeln!(
                b,
                "<p>Not an image manifest or index this page can show: {}</p>",
                esc(&e.to_string())
            );
        }
    }
    Ok(b)
}

fn platform_of(p: Option<&hoist_oci::Platform>) -> String {
    match p {
        Some(p) => {
            let mut s = format!("{}/{}", p.os, p.architecture);
            if let Some(v) = &p.variant {
                s.push('/');
                s.push_str(v);
            }
            s
        }
        None => "unknown".to_owned(),
    }
}

/// What the page needs of a config; lenient, so that a config missing
/// other fields still shows its history.
#[derive(serde::Deserialize)]
struct ConfigView {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    history: Vec<HistoryEntry>,
}

fn image_section(
    store: &Store,
    name: &RepoName,
    m: &hoist_oci::document::Manifest,
    b: &mut String,
) -> Result<(), Error> {
    let total: u64 = m.layers.iter().map(|l| l.size).sum();
    b.push_str("<section class=\"image\">\n<h3>Layers</h3>\n<table class=\"layers\"><tr><th>#</th><th>Digest</th><th>Media type</th><th class=\"num\">Size</th><th class=\"num\">Human</th></tr>\n");
    for (i, l) in m.layers.iter().enumerate() {
        let _ = writeln!(
            b,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            i + 1,
            esc(&l.digest.to_string()),
            esc(&l.media_type),
            l.size,
            human_size(l.size)
        );
    }
    let _ = writeln!(
        b,
        "</table>\n<p class=\"total\">Total size: {total} bytes ({}) in {} layers.</p>",
        human_size(total),
        m.layers.len()
    );
    let _ = writeln!(
        b,
        "<h3>Config</h3>\n<p><code>{}</code> ({}, {} bytes)</p>",
        esc(&m.config.digest.to_string()),
        esc(&m.config.media_type),
        m.config.size
    );
    match read_config(store, name, &m.config.digest) {
        Ok(Some(c)) => {
            let mut plat = format!("{}/{}", c.os, c.architecture);
            if let Some(v) = &c.variant {
                plat.push('/');
                plat.push_str(v);
            }
            let _ = writeln!(
                b,
                "<p>Platform {}, created {}.</p>",
                esc(&plat),
                esc(c.created.as_deref().unwrap_or("unknown"))
            );
            b.push_str("<h3>History</h3>\n<table class=\"history\"><tr><th>Created</th><th>Created by</th><th>Empty layer</th><th>Comment</th></tr>\n");
            for h in c.history.iter().take(MAX_HISTORY_SHOWN) {
                let _ = writeln!(
                    b,
                    "<tr><td>{}</td><td class=\"created-by\"><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                    esc(h.created.as_deref().unwrap_or("")),
                    esc(h.created_by.as_deref().unwrap_or("")),
                    if h.empty_layer { "yes" } else { "no" },
                    esc(h.comment.as_deref().unwrap_or(""))
                );
            }
            b.push_str("</table>\n");
            if c.history.len() > MAX_HISTORY_SHOWN {
                let _ = writeln!(
                    b,
                    "<p>{} more history entries not shown.</p>",
                    c.history.len() - MAX_HISTORY_SHOWN
                );
            }
        }
        Ok(None) => {
            let _ = writeln!(
                b,
                "<p>The config is larger than {} and is not shown.</p>",
                human_size(MAX_CONFIG)
            );
        }
        Err(msg) => {
            let _ = writeln!(b, "<p>The config cannot be shown: {}</p>", esc(&msg));
        }
    }
    b.push_str("</section>\n");
    Ok(())
}

/// The config blob as stored in the repository; `Ok(None)` when too large
/// to show, `Err` with the reason when missing or unreadable.
fn read_config(store: &Store, name: &RepoName, d: &Digest) -> Result<Option<ConfigView>, String> {
    let info = store.blob_stat(name, d).map_err(|e| e.to_string())?;
    if info.size > MAX_CONFIG {
        return Ok(None);
    }
    let bytes = crate::fsutil::read_bounded(&info.path, MAX_CONFIG)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("blob {d} vanished"))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| format!("not an image config: {e}"))
}
