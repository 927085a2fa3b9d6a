//! The pull-through cache (`hoist serve --proxy`): a repository that is not
//! local is fetched from an upstream registry, stored in the same layout as
//! pushed content, and served from there afterwards, also while the
//! upstream is down.
//!
//! The rules:
//! * **Which repositories.** `--proxy URL` mirrors the whole namespace;
//!   `--proxy PREFIX=URL` mirrors `PREFIX/<repo>` as `<repo>` of that
//!   upstream (the longest matching prefix wins). A repository that has been
//!   pushed to (upload start or manifest PUT) gets a `_hoist_pushed` marker
//!   and is local from then on: it never goes upstream again, so a pushed
//!   tag always wins. Pushes work everywhere; distribution turns them off
//!   when it mirrors (distribution#1218), hoist does not.
//! * **Manifests by tag.** The upstream is asked (HEAD for the digest, GET
//!   when we lack that digest); the bytes and the tag are stored, then
//!   served. When the upstream is unreachable, answers 5xx or 429, the
//!   cached tag is served (with a warning in the log).
//! * **Manifests by digest and blobs.** Local first, else the upstream,
//!   verified against the digest before anything becomes visible. A blob is
//!   streamed to the client while it is written to the store; the last chunk
//!   is held back until the sha256 and size match, so a client never gets a
//!   complete wrong blob, and nothing is committed unless it matched. When the
//!   client hangs up the fill goes on to the end (requests waiting for the
//!   same blob, and the next pull, get it). Concurrent requests for the same
//!   missing blob make one upstream fetch: the others wait for it and are
//!   then served from the store.
//! * **Tags list.** The union of the local tags and the upstream's; only the
//!   local ones while the upstream is unavailable. The catalog and referrers
//!   are local only.

use crate::error::Error;
use crate::fsutil;
use crate::names::{ManifestRef, RepoName, Tag, UploadId};
use crate::plumbing::{blocking, respond, ApiError, ChannelBody};
use crate::routing::percent_decode;
use crate::store::{BlobInfo, ManifestData, Store};
use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::Response;
use hoist_oci::{media_type, Digest, Digester, Document};
use hoist_registry_client::{
    BlobStream, Credentials, Error as UpstreamError, Options, RawManifest, RegistryClient,
};
use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// The file in a repository's directory that makes it local (see the module docs).
pub const PUSHED_MARKER: &str = "_hoist_pushed";
/// Blob chunks buffered between the upstream, the disk and the client.
const FILL_QUEUE: usize = 8;
/// How long a fill waits for its client to take a chunk before dropping it.
const CLIENT_STALL: Duration = Duration::from_secs(30);

/// One upstream registry of the pull-through cache.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// Repositories under `PREFIX/` go to this upstream (without the
    /// prefix); `None` mirrors every repository not matched otherwise.
    pub prefix: Option<String>,
    /// `http(s)://host[:port]`, without credentials.
    pub url: String,
    /// Basic credentials for the upstream (also sent to its token server).
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamConfig")
            .field("prefix", &self.prefix)
            .field("url", &self.url)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|(u, _)| (u, "<hidden>")),
            )
            .finish()
    }
}

/// The pull-through cache's configuration: its upstreams.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyConfig {
    /// The upstreams; at most one without a prefix, prefixes distinct.
    pub upstreams: Vec<UpstreamConfig>,
}

/// A `--proxy` value or a proxy configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ProxyConfigError {
    /// The upstream URL is not usable.
    #[error("--proxy: bad upstream URL {url:?}: {reason}; expected http(s)://[user:password@]host[:port]")]
    Url {
        /// The URL with any credentials removed.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The prefix is not a repository name.
    #[error("--proxy: bad prefix {0:?}: expected repository name components such as docker.io or ghcr.io/org, as in --proxy docker.io=https://registry-1.docker.io")]
    Prefix(String),
    /// Two upstreams for the same prefix (or two without one).
    #[error("--proxy: two upstreams for {0}; give each prefix once")]
    Duplicate(String),
}

impl UpstreamConfig {
    /// Parses a `--proxy` value: `URL` or `PREFIX=URL`, the URL possibly
    /// with `user:password@` (percent-encoded where needed).
    pub fn parse(spec: &str) -> Result<Self, ProxyConfigError> {
        let spec = spec.trim();
        let lower = spec.to_ascii_lowercase();
        let (prefix, url) = if lower.starts_with("http://") || lower.starts_with("https://") {
            (None, spec)
        } else {
            match spec.split_once('=') {
                Some((p, u)) => (Some(p.trim().trim_end_matches('/')), u.trim()),
                None => (None, spec),
            }
        };
        if let Some(p) = prefix {
            if RepoName::new(p).is_err() {
                return Err(ProxyConfigError::Prefix(p.to_owned()));
            }
        }
        let mut u = reqwest::Url::parse(url).map_err(|e| ProxyConfigError::Url {
            url: redact(url),
            reason: e.to_string(),
        })?;
        let bad = |u: &reqwest::Url, reason: &str| ProxyConfigError::Url {
            url: redact(u.as_str()),
            reason: reason.to_owned(),
        };
        if u.scheme() != "http" && u.scheme() != "https" {
            return Err(bad(&u, "the scheme must be http or https"));
        }
        if u.host_str().is_none_or(str::is_empty) {
            return Err(bad(&u, "there is no host"));
        }
        if !(u.path().is_empty() || u.path() == "/")
            || u.query().is_some()
            || u.fragment().is_some()
        {
            return Err(bad(
                &u,
                "a registry lives at the root: no path, query or fragment",
            ));
        }
        let credentials = if u.username().is_empty() {
            None
        } else {
            let user = percent_decode(u.username());
            let pass = percent_decode(u.password().unwrap_or(""));
            Some((user, pass))
        };
        // Infallible for http(s) URLs with a host.
        let _ = u.set_username("");
        let _ = u.set_password(None);
        Ok(UpstreamConfig {
            prefix: prefix.map(str::to_owned),
            url: u.as_str().trim_end_matches('/').to_owned(),
            credentials,
        })
    }
}

/// A URL for messages: any `user:password@` replaced.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            format!("{}://<credentials>@{}", &url[..s], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

impl ProxyConfig {
    /// Adds an upstream, refusing a second one for the same prefix.
    pub fn add(&mut self, up: UpstreamConfig) -> Result<(), ProxyConfigError> {
        if self.upstreams.iter().any(|u| u.prefix == up.prefix) {
            return Err(ProxyConfigError::Duplicate(match &up.prefix {
                Some(p) => format!("prefix {p}"),
                None => "the whole namespace (no prefix)".to_owned(),
            }));
        }
        self.upstreams.push(up);
        Ok(())
    }

    /// Parses `--proxy` values (see [`UpstreamConfig::parse`]).
    pub fn from_specs<S: AsRef<str>>(specs: &[S]) -> Result<Self, ProxyConfigError> {
        let mut cfg = ProxyConfig::default();
        for s in specs {
            cfg.add(UpstreamConfig::parse(s.as_ref())?)?;
        }
        Ok(cfg)
    }
}

/// One upstream's client (or why it could not be built, said on each use).
#[derive(Debug)]
struct Upstream {
    base: String,
    client: Result<RegistryClient, String>,
}

impl Upstream {
    fn new(u: &UpstreamConfig) -> Self {
        let opts = Options {
            // The cache answers at once: a cached copy is served while
            // the upstream is down, and the client retries itself.
            retries: 0,
            ..Options::default()
        };
        let creds = u
            .credentials
            .as_ref()
            .map(|(user, pass)| Credentials::new(user.clone(), pass.clone()));
        Upstream {
            base: u.url.trim_end_matches('/').to_owned(),
            client: RegistryClient::with_url(&u.url, creds, &opts).map_err(|e| e.to_string()),
        }
    }
}

/// A repository to fetch: which upstream, and its name there.
pub(crate) struct Target<'a> {
    up: &'a Upstream,
    repo: String,
}

/// What the proxy found for a blob the repository lacks.
pub(crate) enum BlobAnswer {
    /// It is in the store now: serve it as a local blob.
    Local(BlobInfo),
    /// The answer, already built (a streamed fill, or a HEAD).
    Response(Response),
}

type Fills = Arc<Mutex<HashMap<Digest, watch::Receiver<()>>>>;

/// The running pull-through cache.
pub struct Proxy {
    upstreams: Vec<(Option<String>, Upstream)>,
    fills: Fills,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("upstreams", &self.upstreams)
            .finish()
    }
}

impl Proxy {
    /// The cache for `cfg`'s upstreams.
    pub fn new(cfg: &ProxyConfig) -> Self {
        Proxy {
            upstreams: cfg
                .upstreams
                .iter()
                .map(|u| (u.prefix.clone(), Upstream::new(u)))
                .collect(),
            fills: Arc::default(),
        }
    }

    /// The upstream and upstream name for `name`, longest prefix first.
    fn upstream_for(&self, name: &RepoName) -> Option<Target<'_>> {
        let n = name.as_str();
        self.upstreams
            .iter()
            .filter_map(|(prefix, up)| match prefix {
                None => Some((0, up, n.to_owned())),
                Some(p) => n
                    .strip_prefix(p.as_str())
                    .and_then(|rest| rest.strip_prefix('/'))
                    .map(|rest| (p.len(), up, rest.to_owned())),
            })
            .max_by_key(|(len, _, _)| *len)
            .map(|(_, up, repo)| Target { up, repo })
    }

    /// The upstream to ask for `name`, unless it is not mirrored or has been
    /// pushed to. On disk one `stat`, cheap enough for the async threads; on
    /// object storage a request, made on the blocking pool.
    pub(crate) async fn target(
        &self,
        store: &Arc<Store>,
        name: &RepoName,
    ) -> Result<Option<Target<'_>>, ApiError> {
        let Some(t) = self.upstream_for(name) else {
            return Ok(None);
        };
        let marker = store.layout().repo(name).join(PUSHED_MARKER);
        let pushed = if store.driver.is_local() {
            marker.exists()
        } else {
            let s = store.clone();
            blocking(move || Ok(s.driver.stat(&marker)?.is_some())).await?
        };
        Ok((!pushed).then_some(t))
    }

    /// Makes `name` local before a push into it (see the module docs).
    pub(crate) fn mark_pushed(&self, store: &Store, name: &RepoName) -> crate::Result<()> {
        if self.upstream_for(name).is_none() {
            return Ok(());
        }
        let marker = store.layout().repo(name).join(PUSHED_MARKER);
        if store.driver.stat(&marker)?.is_some() {
            return Ok(());
        }
        store.driver.put(&marker, b"pushed\n")
    }
}

impl Target<'_> {
    fn client(&self) -> Result<&RegistryClient, UpstreamError> {
        self.up
            .client
            .as_ref()
            .map_err(|e| UpstreamError::Unreachable {
                registry: self.up.base.clone(),
                repository: Some(self.repo.clone()),
                reason: e.clone(),
            })
    }

    /// An invalid-answer error naming the upstream and repository.
    fn invalid(&self, code: &'static str, reason: String) -> UpstreamError {
        UpstreamError::Invalid {
            registry: self.up.base.clone(),
            repository: Some(self.repo.clone()),
            code,
            reason,
        }
    }

    /// The upstream's digest for a manifest (HEAD), if it has it.
    async fn head_manifest(&self, reference: &str) -> Result<Option<Digest>, UpstreamError> {
        let d = self.client()?.head_manifest(&self.repo, reference).await?;
        Ok(d.map(|d| d.digest))
    }

    /// A manifest, its digest verified by the client (the one asked for,
    /// or the one the upstream claims) and its size bounded.
    async fn get_manifest(&self, reference: &str) -> Result<RawManifest, UpstreamError> {
        self.client()?.get_manifest(&self.repo, reference).await
    }

    /// All the upstream's tags, following its `Link` pages.
    async fn tags(&self) -> Result<Vec<String>, UpstreamError> {
        self.client()?.list_tags(&self.repo, None).await
    }

    /// A blob's size upstream; `None` when the repository lacks it.
    async fn blob_size(&self, d: &Digest) -> Result<Option<u64>, UpstreamError> {
        self.client()?.blob_size(&self.repo, d).await
    }

    /// A blob's bytes as the upstream sends them.
    async fn open_blob(&self, d: &Digest) -> Result<BlobStream, UpstreamError> {
        self.client()?.open_blob(&self.repo, d, 0).await
    }
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
fn upstream_api_error(e: UpstreamError, what: &str, not_found_code: &'static str) -> ApiError {
    let message = format!("{what}: {e}");
    let mut detail = serde_json::json!({});
    let (status, code) = match &e {
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

/// Checks that upstream manifest bytes are a manifest or index we can serve.
fn check_manifest(t: &Target<'_>, bytes: &[u8], ct: Option<&str>) -> Result<(), UpstreamError> {
    let declared = ct
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .filter(|c| !c.is_empty() && *c != "application/json" && *c != "application/octet-stream");
    let doc = Document::parse(bytes, declared)
        .map_err(|e| t.invalid("MANIFEST_INVALID", format!("manifest of {}: {e}", t.repo)))?;
    let mt = doc.media_type();
    if media_type::is_manifest(mt) || media_type::is_index(mt) {
        Ok(())
    } else {
        Err(t.invalid(
            "MANIFEST_INVALID",
            format!("manifest of {} has unsupported media type {mt:?}", t.repo),
        ))
    }
}

/// Stores verified manifest bytes as a revision of `name` and, with a tag,
/// points the tag at it. Bypasses `put_manifest`'s check that the blobs are
/// present: a cache fetches blobs only when they are asked for.
fn cache_manifest(
    store: &Store,
    name: &RepoName,
    d: &Digest,
    bytes: &[u8],
    tag: Option<&Tag>,
) -> crate::Result<()> {
    store.put_blob_bytes(d, bytes)?;
    store.write_link(&store.layout().revision_link(name, d), d)?;
    if let Some(tag) = tag {
        point_tag(store, name, tag, d)?;
    }
    Ok(())
}

fn point_tag(store: &Store, name: &RepoName, tag: &Tag, d: &Digest) -> crate::Result<()> {
    let l = store.layout();
    store.write_link(&l.tag_index_link(name, tag, d), d)?;
    store.write_link(&l.tag_current(name, tag), d)?;
    Ok(())
}

/// A manifest of `name` from the store; `None` when it is not there.
async fn local_manifest(
    store: &Arc<Store>,
    name: &RepoName,
    r: ManifestRef,
) -> Result<Option<Arc<ManifestData>>, ApiError> {
    let (s, n) = (store.clone(), name.clone());
    blocking(move || match s.get_manifest(&n, &r) {
        Ok(m) => Ok(Some(m)),
        Err(Error::ManifestUnknown { .. }) => Ok(None),
        Err(e) => Err(e),
    })
    .await
}

impl Proxy {
    /// A manifest of a mirrored repository (see the module docs).
    pub(crate) async fn manifest(
        &self,
        store: &Arc<Store>,
        t: &Target<'_>,
        name: &RepoName,
        r: &ManifestRef,
        head: bool,
    ) -> Result<Arc<ManifestData>, ApiError> {
        let what = format!("fetching manifest {}:{r} for {name}", t.repo);
        let fail = |e: UpstreamError| {
            // A HEAD's body is never seen, and pushing clients (containerd)
            // probe with HEAD and stop on anything but 200 or 404: with the
            // upstream down, what we lack is simply unknown.
            if head && e.is_unavailable() {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "MANIFEST_UNKNOWN",
                    format!("{what}: {e}"),
                )
            } else {
                upstream_api_error(e, &what, "MANIFEST_UNKNOWN")
            }
        };
        let tag = match r {
            ManifestRef::Digest(d) => {
                if let Some(m) = local_manifest(store, name, r.clone()).await? {
                    return Ok(m);
                }
                // The client checked that the bytes hash to `d`.
                let m = t.get_manifest(&d.to_string()).await.map_err(fail)?;
                check_manifest(t, &m.bytes, Some(&m.media_type)).map_err(fail)?;
                return self
                    .store_manifest(store, name, m.digest, Bytes::from(m.bytes), None)
                    .await;
            }
            ManifestRef::Tag(tag) => tag,
        };
        let cached = || local_manifest(store, name, r.clone());
        let unavailable = |e: UpstreamError| async move {
            match cached().await? {
                Some(m) => {
                    tracing::warn!(repository = %name, tag = %tag, error = %e,
                        "upstream unavailable; serving the cached tag");
                    Ok(m)
                }
                None => Err(fail(e)),
            }
        };
        match t.head_manifest(tag.as_str()).await {
            Ok(Some(d)) => {
                // We may hold that digest already (this tag unchanged, or
                // pulled by digest before): no need to download it again.
                if let Some(m) = local_manifest(store, name, ManifestRef::Digest(d.clone())).await?
                {
                    let (s, n, tg) = (store.clone(), name.clone(), tag.clone());
                    blocking(move || point_tag(&s, &n, &tg, &d)).await?;
                    return Ok(m);
                }
            }
            Ok(None) => {}
            Err(e) if e.is_unavailable() => return unavailable(e).await,
            Err(e) => return Err(fail(e)),
        }
        // The client checked the bytes against the digest the upstream claims.
        let m = match t.get_manifest(tag.as_str()).await {
            Ok(v) => v,
            Err(e) if e.is_unavailable() => return unavailable(e).await,
            Err(e) => return Err(fail(e)),
        };
        check_manifest(t, &m.bytes, Some(&m.media_type)).map_err(fail)?;
        self.store_manifest(
            store,
            name,
            m.digest,
            Bytes::from(m.bytes),
            Some(tag.clone()),
        )
        .await
    }

    async fn store_manifest(
        &self,
        store: &Arc<Store>,
        name: &RepoName,
        d: Digest,
        bytes: Bytes,
        tag: Option<Tag>,
    ) -> Result<Arc<ManifestData>, ApiError> {
        let (s, n) = (store.clone(), name.clone());
        blocking(move || {
            cache_manifest(&s, &n, &d, &bytes, tag.as_ref())?;
            s.get_manifest(&n, &ManifestRef::Digest(d))
        })
        .await
    }

    /// The tags of a mirrored repository: local ∪ upstream, local alone
    /// while the upstream is unavailable.
    pub(crate) async fn tags(
        &self,
        store: &Arc<Store>,
        t: &Target<'_>,
        name: &RepoName,
    ) -> Result<Vec<String>, ApiError> {
        let (s, n) = (store.clone(), name.clone());
        let local = blocking(move || match s.tags(&n) {
            Ok(v) => Ok(Some(v)),
            Err(Error::NameUnknown(_)) => Ok(None),
            Err(e) => Err(e),
        })
        .await?;
        let what = format!("listing the tags of {}", t.repo);
        let mut all = match (t.tags().await, local) {
            (Ok(up), local) => {
                let mut all = local.unwrap_or_default();
                all.extend(up.into_iter().filter(|t| Tag::new(t).is_ok()));
                all
            }
            (Err(e), Some(local)) if e.is_unavailable() || e.is_not_found() => {
                if e.is_unavailable() {
                    tracing::warn!(repository = %name, error = %e,
                        "upstream unavailable; listing the cached tags only");
                }
                local
            }
            (Err(e), _) => return Err(upstream_api_error(e, &what, "NAME_UNKNOWN")),
        };
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }

    /// A blob `name` lacks: from the store if another request just filled
    /// it, else from the upstream (see the module docs).
    pub(crate) async fn blob(
        &self,
        store: &Arc<Store>,
        t: &Target<'_>,
        name: &RepoName,
        d: &Digest,
        head: bool,
    ) -> Result<BlobAnswer, ApiError> {
        let what = format!("fetching blob {d} of {}", t.repo);
        // A few rounds: a fill by another request may fail, then we try.
        for _ in 0..3 {
            let (s, n, dd) = (store.clone(), name.clone(), d.clone());
            let (local, global) = blocking(move || {
                Ok(match s.blob_stat(&n, &dd) {
                    Ok(info) => (Some(info), true),
                    Err(Error::BlobUnknown(_)) => (None, s.blob_data_size(&dd)?.is_some()),
                    Err(e) => return Err(e),
                })
            })
            .await?;
            if let Some(info) = local {
                return Ok(BlobAnswer::Local(info));
            }
            let waiting = self.fills_lock().get(d).cloned();
            if let Some(mut rx) = waiting {
                // Resolves when the filling request is done, either way.
                let _ = rx.changed().await;
                continue;
            }
            if head || global {
                // Only the upstream's word: a HEAD, or a blob the store has
                // for another repository and this one may link once the
                // upstream confirms the repository has it.
                let len = match t.blob_size(d).await {
                    Ok(Some(len)) => len,
                    Ok(None) => return Err(ApiError::from(Error::BlobUnknown(d.clone()))),
                    // A HEAD's body is never seen and a pushing client reads
                    // anything but 404 as fatal: a blob we cannot confirm is
                    // unknown.
                    Err(e) if head => {
                        tracing::debug!(error = %e, "blob HEAD upstream failed");
                        return Err(ApiError::from(Error::BlobUnknown(d.clone())));
                    }
                    Err(e) => return Err(upstream_api_error(e, &what, "BLOB_UNKNOWN")),
                };
                if global {
                    let (s, n, dd) = (store.clone(), name.clone(), d.clone());
                    let info = blocking(move || {
                        s.claim_blob(&dd)?;
                        s.link_blob(&n, &dd)?;
                        s.blob_stat(&n, &dd)
                    })
                    .await?;
                    return Ok(BlobAnswer::Local(info));
                }
                let b = respond(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .header("Docker-Content-Digest", d.to_string())
                    .header(header::CONTENT_LENGTH, len);
                return finish_response(b, Body::empty()).map(BlobAnswer::Response);
            }
            let (tx, rx) = watch::channel(());
            {
                let mut fills = self.fills_lock();
                if fills.contains_key(d) {
                    continue;
                }
                fills.insert(d.clone(), rx);
            }
            let guard = FillGuard {
                fills: self.fills.clone(),
                digest: d.clone(),
                _done: tx,
            };
            let resp = t
                .open_blob(d)
                .await
                .map_err(|e| upstream_api_error(e, &what, "BLOB_UNKNOWN"))?;
            let size = resp.len();
            let (ctx, crx) = mpsc::channel(FILL_QUEUE);
            let fill = Fill {
                store: store.clone(),
                name: name.clone(),
                digest: d.clone(),
                upstream: t.up.base.clone(),
                size,
            };
            tokio::spawn(fill.run(resp, ctx, guard));
            let mut b = respond(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header("Docker-Content-Digest", d.to_string())
                .header(header::ETAG, format!("\"{d}\""));
            if let Some(len) = size {
                b = b.header(header::CONTENT_LENGTH, len);
            }
            let body = ChannelBody {
                rx: crx,
                remaining: size,
            };
            return finish_response(b, Body::new(body)).map(BlobAnswer::Response);
        }
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            format!("{what}: concurrent fetches of this blob kept failing; try again"),
        ))
    }

    fn fills_lock(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, watch::Receiver<()>>> {
        // The map holds no invariant a panic could break.
        self.fills.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn finish_response(b: axum::http::response::Builder, body: Body) -> Result<Response, ApiError> {
    b.body(body)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", e.to_string()))
}

/// Marks a blob as being filled; dropping it (fill done, failed or
/// abandoned) wakes the requests waiting for it.
struct FillGuard {
    fills: Fills,
    digest: Digest,
    _done: watch::Sender<()>,
}

impl Drop for FillGuard {
    fn drop(&mut self) {
        // Removed before `_done` drops, so a woken waiter finds no fill.
        self.fills
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.digest);
    }
}

/// One blob being copied from the upstream into the store and to a client.
struct Fill {
    store: Arc<Store>,
    name: RepoName,
    digest: Digest,
    upstream: String,
    size: Option<u64>,
}

impl Fill {
    async fn run(
        self,
        mut resp: BlobStream,
        client: mpsc::Sender<io::Result<Bytes>>,
        _guard: FillGuard,
    ) {
        let (wtx, wrx) = mpsc::channel::<Bytes>(FILL_QUEUE);
        let alg = self.digest.algorithm();
        let (store, name) = (self.store.clone(), self.name.clone());
        let writer = tokio::task::spawn_blocking(move || write_fill(&store, &name, wrx, alg));
        let mut client = Some(client);
        // The last chunk waits until the whole blob is verified.
        let mut held: Option<Bytes> = None;
        let mut failure: Option<String> = None;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if wtx.send(chunk.clone()).await.is_err() {
                        break; // The writer failed; its result says why.
                    }
                    if let Some(prev) = held.replace(chunk) {
                        if let Some(c) = &client {
                            // A client that hung up, or stopped reading,
                            // must not hold the fill (and those waiting for
                            // it): it is dropped and the fill goes on.
                            let sent = tokio::time::timeout(CLIENT_STALL, c.send(Ok(prev))).await;
                            if !matches!(sent, Ok(Ok(()))) {
                                client = None;
                            }
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    failure = Some(format!("the upstream body broke off: {e}"));
                    break;
                }
            }
        }
        drop(wtx);
        let written = match writer.await {
            Ok(Ok(w)) => Some(w),
            Ok(Err(e)) => {
                failure.get_or_insert(format!("cannot write the blob: {e}"));
                None
            }
            Err(e) => {
                failure.get_or_insert(format!("the blob writer failed: {e}"));
                None
            }
        };
        if let Some((path, actual, n)) = written {
            if failure.is_none() {
                if let Some(want) = self.size.filter(|w| *w != n) {
                    failure = Some(format!("the upstream announced {want} bytes but sent {n}"));
                } else if actual != self.digest {
                    failure = Some(format!("the upstream's bytes hash to {actual}"));
                }
            }
            let (s, name, d, dir) = (
                self.store.clone(),
                self.name.clone(),
                self.digest.clone(),
                path.clone(),
            );
            let ok = failure.is_none();
            let committed = tokio::task::spawn_blocking(move || {
                if ok {
                    s.commit_blob_upload(&dir.join("data"), &d)?;
                    s.link_blob(&name, &d)?;
                }
                // Committed or not, the session has served its purpose.
                s.driver.delete_tree(&dir)
            })
            .await;
            match committed {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    failure.get_or_insert(format!("cannot store the blob: {e}"));
                }
                Err(e) => {
                    failure.get_or_insert(format!("cannot store the blob: {e}"));
                }
            }
        }
        match failure {
            None => {
                tracing::info!(repository = %self.name, digest = %self.digest, "cached blob from upstream");
                if let (Some(c), Some(last)) = (client, held) {
                    let _ = c.send(Ok(last)).await;
                }
            }
            Some(why) => {
                let msg = format!(
                    "blob {} of {} from upstream {}: {why}; nothing stored",
                    self.digest, self.name, self.upstream
                );
                tracing::warn!("{msg}");
                if let Some(c) = client {
                    // An error ends the response early: the client sees a
                    // broken transfer, never a complete wrong blob.
                    let _ = c.send(Err(io::Error::other(msg))).await;
                }
            }
        }
    }
}

/// Writes chunks into a fresh upload session of `name` while hashing them,
/// through the storage driver (a file on disk, part objects on S3), and
/// closes it durably. Returns the session, the digest and the size; a
/// session that failed is deleted (and gc purges one a crash left behind).
fn write_fill(
    store: &Store,
    name: &RepoName,
    mut rx: mpsc::Receiver<Bytes>,
    alg: hoist_oci::Algorithm,
) -> crate::Result<(PathBuf, Digest, u64)> {
    let dir = store.layout().upload_dir(name, &UploadId::random());
    let started = fsutil::rfc3339_now();
    store
        .driver
        .put(&dir.join("startedat"), started.as_bytes())?;
    let res = (|| {
        let mut sink = store.driver.append(&dir.join("data"))?;
        let mut h = Digester::new(alg);
        let mut n = 0u64;
        while let Some(chunk) = rx.blocking_recv() {
            if let Err(e) = sink.write(&chunk) {
                let _ = sink.cancel();
                return Err(e);
            }
            h.update(&chunk);
            n += chunk.len() as u64;
        }
        sink.commit(true)?;
        Ok((h.finish(), n))
    })();
    match res {
        Ok((d, n)) => Ok((dir, d, n)),
        Err(e) => {
            let _ = store.driver.delete_tree(&dir);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_specs() {
        let u = UpstreamConfig::parse("https://registry-1.docker.io").unwrap();
        assert_eq!(u.prefix, None);
        assert_eq!(u.url, "https://registry-1.docker.io");
        let u = UpstreamConfig::parse("docker.io=https://me:p%40ss@registry-1.docker.io/").unwrap();
        assert_eq!(u.prefix.as_deref(), Some("docker.io"));
        assert_eq!(u.url, "https://registry-1.docker.io");
        assert_eq!(u.credentials, Some(("me".into(), "p@ss".into())));
        assert!(!format!("{u:?}").contains("p@ss"));
        for bad in [
            "ftp://x",
            "x=notaurl",
            "Bad_Prefix=http://x",
            "http://x/path",
            "http://",
        ] {
            assert!(UpstreamConfig::parse(bad).is_err(), "{bad}");
        }
        let e = UpstreamConfig::parse("http://me:secret@x/p")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
        let dup = ProxyConfig::from_specs(&["a=http://x", "a=http://y"]).unwrap_err();
        assert!(dup.to_string().contains("prefix a"), "{dup}");
    }

    #[test]
    fn longest_prefix_wins() {
        let cfg = ProxyConfig::from_specs(&[
            "http://all",
            "docker.io=http://hub",
            "docker.io/org=http://org",
        ])
        .unwrap();
        let p = Proxy::new(&cfg);
        let t = |n: &str| {
            let t = p.upstream_for(&RepoName::new(n).unwrap()).unwrap();
            (t.up.base.clone(), t.repo)
        };
        assert_eq!(
            t("docker.io/library/alpine"),
            ("http://hub".into(), "library/alpine".into())
        );
        assert_eq!(t("docker.io/org/x"), ("http://org".into(), "x".into()));
        assert_eq!(
            t("docker.iox/y"),
            ("http://all".into(), "docker.iox/y".into())
        );
        let only = Proxy::new(&ProxyConfig::from_specs(&["ghcr.io=http://g"]).unwrap());
        assert!(only
            .upstream_for(&RepoName::new("ghcr.io").unwrap())
            .is_none());
        assert!(only
            .upstream_for(&RepoName::new("other/x").unwrap())
            .is_none());
    }
}
