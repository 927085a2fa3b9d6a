//! The client for one registry: endpoint choice (HTTPS, plain HTTP as the
//! fallback for local and insecure registries), TLS, auth, retries, and the
//! small requests (ping, manifests, tags, catalog, referrers, delete).

use crate::auth::{parse_challenges, Challenge, Credentials, Scopes};
use crate::docker_config::{normalize_registry, DockerConfig};
use crate::error::{error_chain, Error, RegistryError, Result};
use bytes::Bytes;
use hoist_oci::{media_type, Descriptor, Digest, Digester, Document, Index};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LINK};
use reqwest::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every manifest type hoist reads, for content negotiation.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// The largest manifest accepted (distribution's and containerd's limit).
pub const MAX_MANIFEST_SIZE: usize = 4 << 20;
/// Largest token response, error body or tags page read.
const MAX_SMALL_BODY: usize = 4 << 20;
/// Token lifetime assumed when the token server does not say (its spec's default).
const DEFAULT_TOKEN_LIFETIME: u64 = 60;
/// How long to wait for a TCP (and TLS) connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one read may take before the registry counts as stalled.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Whole-request limit for small requests (manifests, tags, tokens).
const SMALL_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Most pages of a tags list or catalog followed.
const MAX_PAGES: usize = 10_000;
/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// How a client talks to registries.
#[derive(Clone, Debug)]
pub struct Options {
    /// `false` (skopeo's `--tls-verify=false`): certificates are not
    /// checked and plain HTTP is the fallback, for every registry.
    pub tls_verify: bool,
    /// Registries (`host[:port]`) treated as insecure, as Docker's
    /// `insecure-registries`: certificates unchecked, plain HTTP the
    /// fallback. `localhost` and 127.0.0.0/8 get the fallback without
    /// being listed, their certificates still checked.
    pub insecure_registries: Vec<String>,
    /// Directories holding `HOST/{ca.crt,client.cert,client.key}` (Docker's `certs.d`).
    pub certs_dirs: Vec<PathBuf>,
    /// Credentials to use instead of those in `config.json` (`--creds`).
    pub credentials: Option<Credentials>,
    /// `config.json` to read credentials from; `None`: the default one.
    pub docker_config: Option<PathBuf>,
    /// Retries after a connection error, a 5xx or a 429.
    pub retries: u32,
    /// First backoff; doubled on each retry.
    pub backoff: Duration,
    /// Ranges of one large blob fetched at once.
    pub parallel_ranges: usize,
    /// Size of each range; blobs up to twice this are one request.
    pub range_size: u64,
    /// Mirrors of Docker Hub (`https://mirror.example`), tried in order
    /// before it for pulls, as Docker's `registry-mirrors`.
    pub registry_mirrors: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        let mut certs_dirs = vec![PathBuf::from("/etc/docker/certs.d")];
        if let Some(h) = std::env::var_os("HOME") {
            certs_dirs.push(PathBuf::from(h).join(".docker/certs.d"));
        }
        Options {
            tls_verify: true,
            insecure_registries: Vec::new(),
            certs_dirs,
            credentials: None,
            docker_config: None,
            retries: 4,
            backoff: Duration::from_millis(250),
            parallel_ranges: 4,
            range_size: 16 << 20,
            registry_mirrors: Vec::new(),
        }
    }
}

impl Options {
    /// hoist's own client config file: `$HOIST_CONFIG`, else
    /// `$XDG_CONFIG_HOME/hoist/config.json` (`~/.config/hoist/config.json`),
    /// else `/etc/hoist/config.json`; the first that exists.
    pub fn config_file() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("HOIST_CONFIG").filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(p));
        }
        let xdg = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
        let user = xdg.map(|d| d.join("hoist/config.json"));
        [user, Some(PathBuf::from("/etc/hoist/config.json"))]
            .into_iter()
            .flatten()
            .find(|p| p.is_file())
    }

    /// Adds `insecure-registries` and `registry-mirrors` from hoist's
    /// config file (the keys and shape of Docker's `daemon.json`), when there is one.
    pub fn with_config_file(mut self) -> Result<Self> {
        let Some(path) = Self::config_file() else {
            return Ok(self);
        };
        let bad = |why: String| Error::Io {
            path: path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, why),
        };
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(self),
            Err(source) => {
                return Err(Error::Io {
                    path: path.clone(),
                    source,
                })
            }
        };
        #[derive(serde::Deserialize)]
        struct File {
            #[serde(default, rename = "insecure-registries")]
            insecure_registries: Vec<String>,
            #[serde(default, rename = "registry-mirrors")]
            registry_mirrors: Vec<String>,
        }
        let f: File = serde_json::from_slice(&text).map_err(|e| {
            bad(format!(
                "not a hoist config file ({e}); expected {{\"insecure-registries\": [\"HOST:PORT\"]}}"
            ))
        })?;
        self.insecure_registries.extend(f.insecure_registries);
        self.registry_mirrors.extend(f.registry_mirrors);
        Ok(self)
    }
}

/// A manifest or index exactly as received, with its media type and digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawManifest {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Its media type (from the document, else `Content-Type`).
    pub media_type: String,
    /// The digest of the bytes.
    pub digest: Digest,
}

/// The client for one registry; cheap to clone (clones share auth state).
#[derive(Clone)]
pub struct RegistryClient {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("registry", &self.inner.name)
            .field("credentials", &self.inner.creds)
            .finish()
    }
}

#[derive(Default)]
struct AuthState {
    /// A challenge asked for basic auth.
    basic: bool,
    /// The token server learned from a challenge (realm, service).
    bearer: Option<(String, Option<String>)>,
    /// Tokens by scope key, with when they stop being good.
    tokens: HashMap<String, (String, Instant)>,
}

pub(crate) struct Inner {
    /// The registry as errors name it.
    pub(crate) name: String,
    /// Base URLs to try, in order (`https://host`, then `http://host`).
    candidates: Vec<String>,
    chosen: Mutex<Option<String>>,
    pub(crate) http: reqwest::Client,
    creds: Option<Credentials>,
    auth: Mutex<AuthState>,
    pub(crate) opts: Options,
    /// Docker Hub's mirrors, asked first for pulls.
    mirrors: Vec<RegistryClient>,
}

/// True for `localhost`, 127.0.0.0/8 and `::1` (with or without a port).
pub fn is_local(host: &str) -> bool {
    let h = host
        .rsplit_once(':')
        .filter(|(h, p)| !h.ends_with(':') && p.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(h, _)| h);
    let h = h.trim_start_matches('[').trim_end_matches(']');
    h == "localhost"
        || h.ends_with(".localhost")
        || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The API host for a registry name (Docker Hub's is `registry-1.docker.io`).
pub fn api_host(registry: &str) -> String {
    let r = normalize_registry(registry);
    if r == "docker.io" {
        "registry-1.docker.io".to_owned()
    } else {
        r
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded maps hold no invariant a panic could break.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reads Docker's `certs.d/HOST`: `*.crt` are CAs, `X.cert` + `X.key` a client identity.
fn add_certs_d(
    mut b: reqwest::ClientBuilder,
    dirs: &[PathBuf],
    host: &str,
) -> Result<reqwest::ClientBuilder> {
    // Docker names the directory `host:port`, or `host` for the default port.
    for dir in dirs {
        let d = dir.join(host);
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        for p in names {
            let read = |p: &PathBuf| {
                std::fs::read(p).map_err(|source| Error::Io {
                    path: p.clone(),
                    source,
                })
            };
            let bad = |p: &PathBuf, e: reqwest::Error| Error::Io {
                path: p.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, error_chain(&e)),
            };
            match p.extension().and_then(|e| e.to_str()) {
                Some("crt") => {
                    for c in
                        reqwest::Certificate::from_pem_bundle(&read(&p)?).map_err(|e| bad(&p, e))?
                    {
                        b = b.add_root_certificate(c);
                    }
                }
                Some("cert") => {
                    let key = p.with_extension("key");
                    let mut pem = read(&p)?;
                    pem.push(b'\n');
                    pem.extend(read(&key)?);
                    b = b.identity(reqwest::Identity::from_pem(&pem).map_err(|e| bad(&p, e))?);
                }
                _ => {}
            }
        }
    }
    Ok(b)
}

fn build_http(host: &str, insecure: bool, opts: &Options) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .user_agent(concat!("hoist/", env!("CARGO_PKG_VERSION")))
        // reqwest drops Authorization on a redirect to another host or
        // port (object-storage URLs), so credentials never follow.
        .redirect(reqwest::redirect::Policy::limited(10));
    b = add_certs_d(b, &opts.certs_dirs, host)?;
    if insecure {
        b = b.danger_accept_invalid_certs(true);
    }
    b.build()
        .map_err(|e| Error::Usage(format!("cannot build the HTTP client: {}", error_chain(&e))))
}

/// What a request needs besides its method and URL.
pub(crate) struct Req<'a> {
    pub method: Method,
    /// A path from the base (`/v2/…`) or an absolute URL (an upload's `Location`).
    pub target: String,
    pub repo: Option<&'a str>,
    pub scopes: Scopes,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
    /// A streamed body, sent once (no retry, no second try after a 401).
    pub stream: Option<reqwest::Body>,
    /// Bounded whole-request time (not for blobs).
    pub small: bool,
    /// Whether a connection error, 5xx or 429 may be retried.
    pub retry: bool,
}

impl<'a> Req<'a> {
    pub(crate) fn new(method: Method, target: impl Into<String>, repo: Option<&'a str>) -> Self {
        let scopes = match (repo, &method) {
            (Some(r), &Method::GET | &Method::HEAD) => Scopes::pull(r),
            (Some(r), &Method::DELETE) => Scopes::delete(r),
            (Some(r), _) => Scopes::push(r),
            (None, _) => Scopes::none(),
        };
        let retry = matches!(
            method,
            Method::GET | Method::HEAD | Method::DELETE | Method::PUT
        );
        Req {
            method,
            target: target.into(),
            repo,
            scopes,
            headers: HeaderMap::new(),
            body: None,
            stream: None,
            small: true,
            retry,
        }
    }

    pub(crate) fn header(mut self, k: reqwest::header::HeaderName, v: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(v) {
            self.headers.insert(k, v);
        }
        self
    }
}

/// Parses a `Link: <…>; rel="next"` target into a request target on the
/// same registry (a hostile registry must not send us elsewhere).
fn next_link(v: &str, base: &str) -> Option<String> {
    let (target, params) = v.trim().strip_prefix('<')?.split_once('>')?;
    params.contains("rel=\"next\"").then_some(())?;
    if target.starts_with("/v2/") {
        return Some(target.to_owned());
    }
    target
        .strip_prefix(base)
        .filter(|t| t.starts_with("/v2/"))
        .map(str::to_owned)
}

impl RegistryClient {
    /// A client for `registry` (`host[:port]`, `docker.io` for Docker Hub),
    /// with credentials from `opts` or Docker's `config.json`.
    pub fn new(registry: &str, opts: &Options) -> Result<Self> {
        let name = normalize_registry(registry);
        let host = api_host(&name);
        let creds = match &opts.credentials {
            Some(c) => Some(c.clone()),
            None => {
                let cfg = match &opts.docker_config {
                    Some(p) => DockerConfig::load_from(p),
                    None => DockerConfig::load(),
                };
                match cfg {
                    Ok(c) => c.credentials(&name)?,
                    // No HOME and no DOCKER_CONFIG: anonymous.
                    Err(Error::Usage(_)) => None,
                    Err(e) => return Err(e),
                }
            }
        };
        // Insecure: certificates unchecked. Local registries keep the
        // check (certs.d can name their CA) but, like insecure ones, fall
        // back to plain HTTP when HTTPS fails, as Docker does.
        let insecure = !opts.tls_verify
            || opts
                .insecure_registries
                .iter()
                .any(|r| normalize_registry(r) == name);
        let mut candidates = vec![format!("https://{host}")];
        if insecure || is_local(&host) {
            candidates.push(format!("http://{host}"));
        }
        let http = build_http(&host, insecure, opts)?;
        let mut c = Self::from_parts(name, candidates, http, creds, opts);
        if c.inner.name == "docker.io" && !opts.registry_mirrors.is_empty() {
            let mirrors = opts
                .registry_mirrors
                .iter()
                .map(|m| Self::with_url(m, None, opts))
                .collect::<Result<Vec<_>>>()?;
            if let Some(inner) = Arc::get_mut(&mut c.inner) {
                inner.mirrors = mirrors;
            }
        }
        Ok(c)
    }

    /// A client for the registry at `base` (`http(s)://host[:port]`), as the
    /// pull-through cache is configured, with these credentials.
    pub fn with_url(base: &str, credentials: Option<Credentials>, opts: &Options) -> Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        let host = base
            .strip_prefix("https://")
            .or_else(|| base.strip_prefix("http://"))
            .ok_or_else(|| Error::Usage(format!("{base:?} is not an http(s):// URL")))?
            .to_owned();
        let http = build_http(&host, !opts.tls_verify, opts)?;
        Ok(Self::from_parts(
            base.clone(),
            vec![base],
            http,
            credentials,
            opts,
        ))
    }

    fn from_parts(
        name: String,
        candidates: Vec<String>,
        http: reqwest::Client,
        creds: Option<Credentials>,
        opts: &Options,
    ) -> Self {
        let chosen = (candidates.len() == 1).then(|| candidates[0].clone());
        RegistryClient {
            inner: Arc::new(Inner {
                name,
                candidates,
                chosen: Mutex::new(chosen),
                http,
                creds,
                auth: Mutex::new(AuthState::default()),
                opts: opts.clone(),
                mirrors: Vec::new(),
            }),
        }
    }

    /// Runs a pull request on each mirror in turn, then on the registry itself.
    pub(crate) async fn mirrored<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: Fn(RegistryClient) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        for m in &self.inner.mirrors {
            match f(m.clone()).await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    tracing::info!(mirror = m.registry(), error = %e, "mirror failed; trying the next")
                }
            }
        }
        f(self.clone()).await
    }

    /// Docker Hub's mirrors in use.
    pub(crate) fn mirrors(&self) -> &[RegistryClient] {
        &self.inner.mirrors
    }

    /// The registry as errors name it (its host, or the URL it was given).
    pub fn registry(&self) -> &str {
        &self.inner.name
    }

    /// The base URL in use (`https://host` or `http://host`), once known.
    pub fn base_url(&self) -> Option<String> {
        lock(&self.inner.chosen).clone()
    }

    pub(crate) fn unreachable(&self, repo: Option<&str>, reason: impl Into<String>) -> Error {
        Error::Unreachable {
            registry: self.inner.name.clone(),
            repository: repo.map(str::to_owned),
            reason: reason.into(),
        }
    }

    /// An invalid-answer error naming this registry.
    pub fn invalid(
        &self,
        repo: Option<&str>,
        code: &'static str,
        reason: impl Into<String>,
    ) -> Error {
        Error::Invalid {
            registry: self.inner.name.clone(),
            repository: repo.map(str::to_owned),
            code,
            reason: reason.into(),
        }
    }

    /// The base URL, choosing it on first use: the first candidate that
    /// answers HTTP at all (a TLS failure or refused connection on
    /// `https://` of an insecure registry moves on to `http://`).
    async fn base(&self) -> Result<String> {
        if let Some(b) = lock(&self.inner.chosen).clone() {
            return Ok(b);
        }
        let mut failures = Vec::new();
        for c in &self.inner.candidates {
            let sent = self
                .inner
                .http
                .get(format!("{c}/v2/"))
                .timeout(SMALL_REQUEST_TIMEOUT)
                .send()
                .await;
            match sent {
                Ok(resp) => {
                    self.learn(resp.headers());
                    *lock(&self.inner.chosen) = Some(c.clone());
                    return Ok(c.clone());
                }
                Err(e) => failures.push(format!("{c}: {}", error_chain(&e.without_url()))),
            }
        }
        Err(self.unreachable(None, failures.join("; ")))
    }

    /// Remembers the token server (or basic auth) a 401 asked for.
    fn learn(&self, headers: &HeaderMap) -> Option<Challenge> {
        let challenges = parse_challenges(
            headers
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
        // Bearer first: it is what a token-auth registry wants; Basic only
        // when we have something to send.
        let chosen = challenges
            .iter()
            .find(|c| matches!(c, Challenge::Bearer { .. }))
            .or_else(|| {
                challenges
                    .iter()
                    .find(|c| matches!(c, Challenge::Basic) && self.inner.creds.is_some())
            })
            .cloned();
        let mut st = lock(&self.inner.auth);
        match &chosen {
            Some(Challenge::Bearer { realm, service, .. }) => {
                st.bearer = Some((realm.clone(), service.clone()));
            }
            Some(Challenge::Basic) => st.basic = true,
            None => {}
        }
        chosen
    }

    /// A valid cached token for `scopes`.
    fn cached_token(&self, scopes: &Scopes) -> Option<String> {
        let st = lock(&self.inner.auth);
        st.tokens
            .get(&scopes.key())
            .filter(|(_, until)| *until > Instant::now())
            .map(|(t, _)| t.clone())
    }

    /// Adds what the registry wants: a bearer token for the scopes (fetched
    /// now when the token server is known), else basic auth once asked.
    async fn authorize(
        &self,
        mut req: reqwest::RequestBuilder,
        scopes: &Scopes,
        repo: Option<&str>,
    ) -> Result<reqwest::RequestBuilder> {
        let bearer = lock(&self.inner.auth).bearer.clone();
        if let Some((realm, service)) = bearer {
            let token = match self.cached_token(scopes) {
                Some(t) => t,
                None => {
                    self.fetch_token(&realm, service.as_deref(), scopes, repo)
                        .await?
                }
            };
            return Ok(req.bearer_auth(token));
        }
        if lock(&self.inner.auth).basic {
            if let Some(c) = &self.inner.creds {
                req = req.basic_auth(&c.username, Some(&c.password));
            }
        }
        Ok(req)
    }

    /// Gets a token for `scopes` from `realm` (with our credentials, as the
    /// token spec wants; an identity token is exchanged with a POST) and caches it.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &Scopes,
        repo: Option<&str>,
    ) -> Result<String> {
        let http = &self.inner.http;
        let req = match &self.inner.creds {
            Some(c) if c.is_identity_token() => {
                let mut form: Vec<(&str, &str)> = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &c.password),
                    ("client_id", "hoist"),
                ];
                if let Some(s) = service {
                    form.push(("service", s));
                }
                let joined = scopes.iter().collect::<Vec<_>>().join(" ");
                if !joined.is_empty() {
                    form.push(("scope", &joined));
                }
                http.post(realm).form(&form)
            }
            creds => {
                let mut q: Vec<(&str, &str)> = scopes.iter().map(|s| ("scope", s)).collect();
                if let Some(s) = service {
                    q.push(("service", s));
                }
                let mut r = http.get(realm).query(&q);
                if let Some(c) = creds {
                    r = r.basic_auth(&c.username, Some(&c.password));
                }
                r
            }
        };
        let what = format!("its token server {realm}");
        let resp = req
            .timeout(SMALL_REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.unreachable(repo, format!("{what}: {}", error_chain(&e))))?;
        if !resp.status().is_success() {
            return Err(match self.status_error(resp, repo).await {
                Error::Status {
                    registry,
                    repository,
                    status,
                    errors,
                } => Error::Status {
                    registry: format!("{registry} ({what})"),
                    repository,
                    status,
                    errors,
                },
                e => e,
            });
        }
        let body = read_limited(resp, MAX_SMALL_BODY)
            .await
            .map_err(|e| self.unreachable(repo, format!("{what}: {e}")))?;
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let t: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            self.invalid(
                repo,
                "UNAUTHORIZED",
                format!("{what} answered something that is not a token response: {e}"),
            )
        })?;
        let token = t
            .token
            .or(t.access_token)
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                self.invalid(
                    repo,
                    "UNAUTHORIZED",
                    format!("{what} answered no usable token"),
                )
            })?;
        // Renew a little early so a token does not expire in flight.
        let life = t.expires_in.unwrap_or(DEFAULT_TOKEN_LIFETIME).max(10) - 5;
        lock(&self.inner.auth).tokens.insert(
            scopes.key(),
            (token.clone(), Instant::now() + Duration::from_secs(life)),
        );
        Ok(token)
    }

    /// Sends `r`, answering auth challenges and retrying what may be
    /// retried; returns a success response, else the registry's error.
    pub(crate) async fn send(&self, mut r: Req<'_>) -> Result<reqwest::Response> {
        let base = self.base().await?;
        let url = if r.target.starts_with("http://") || r.target.starts_with("https://") {
            r.target.clone()
        } else {
            format!("{base}{}", r.target)
        };
        let mut challenged = false;
        let mut attempt = 0u32;
        loop {
            let mut req = self
                .inner
                .http
                .request(r.method.clone(), &url)
                .headers(r.headers.clone());
            if let Some(b) = &r.body {
                req = req.body(b.clone());
            }
            let streamed = r.stream.is_some();
            if let Some(s) = r.stream.take() {
                req = req.body(s);
            }
            if r.small {
                req = req.timeout(SMALL_REQUEST_TIMEOUT);
            }
            req = self.authorize(req, &r.scopes, r.repo).await?;
            let may_retry = r.retry && attempt < self.inner.opts.retries;
            let resp = match req.send().await {
                Ok(resp) => resp,
                Err(e) if may_retry => {
                    tracing::debug!(error = %error_chain(&e), "retrying");
                    self.backoff(attempt, None).await;
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(self.unreachable(r.repo, error_chain(&e.without_url()))),
            };
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && !challenged && !streamed {
                challenged = true;
                match self.learn(resp.headers()) {
                    Some(Challenge::Bearer { scope, .. }) => {
                        // The registry's own scope (the catalog's, say)
                        // joins ours; a stale token is dropped.
                        if let Some(s) = scope {
                            r.scopes = r.scopes.clone().with(&s);
                        }
                        lock(&self.inner.auth).tokens.remove(&r.scopes.key());
                        continue;
                    }
                    Some(Challenge::Basic) => continue,
                    None => return Err(self.status_error(resp, r.repo).await),
                }
            }
            if (status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS) && may_retry {
                let after = resp
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
                self.backoff(attempt, after).await;
                attempt += 1;
                continue;
            }
            if status.is_success() {
                return Ok(resp);
            }
            return Err(self.status_error(resp, r.repo).await);
        }
    }

    pub(crate) async fn backoff(&self, attempt: u32, at_least: Option<Duration>) {
        let d = self.inner.opts.backoff * 2u32.saturating_pow(attempt.min(8));
        tokio::time::sleep(at_least.map_or(d, |a| a.max(d))).await;
    }

    /// Turns an error response into an error carrying the registry's codes.
    pub(crate) async fn status_error(&self, resp: reqwest::Response, repo: Option<&str>) -> Error {
        let status = resp.status().as_u16();
        let body = read_limited(resp, 64 << 10).await.unwrap_or_default();
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(default)]
            errors: Vec<Item>,
        }
        #[derive(serde::Deserialize)]
        struct Item {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
        }
        let errors = serde_json::from_slice::<Body>(&body)
            .map(|b| {
                b.errors
                    .into_iter()
                    .take(8)
                    .map(|i| RegistryError {
                        code: clip(&i.code, 64),
                        message: clip(&i.message, 512),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Error::Status {
            registry: self.inner.name.clone(),
            repository: repo.map(str::to_owned),
            status,
            errors,
        }
    }

    /// `GET /v2/`: the registry answers and, with credentials, accepts them
    /// (a token without scope is fetched when it wants tokens), as `docker login` checks.
    pub async fn ping(&self) -> Result<()> {
        self.send(Req::new(Method::GET, "/v2/", None)).await?;
        Ok(())
    }

    /// A manifest's descriptor without its body (`HEAD`); `None` when absent.
    /// The digest is the registry's `Docker-Content-Digest`, else the body's
    /// (fetched then).
    pub async fn head_manifest(&self, repo: &str, reference: &str) -> Result<Option<Descriptor>> {
        self.mirrored(|c| async move { c.head_manifest_here(repo, reference).await })
            .await
    }

    async fn head_manifest_here(&self, repo: &str, reference: &str) -> Result<Option<Descriptor>> {
        let r = Req::new(
            Method::HEAD,
            format!("/v2/{repo}/manifests/{reference}"),
            Some(repo),
        )
        .header(ACCEPT, MANIFEST_ACCEPT);
        let resp = match self.send(r).await {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let h = resp.headers();
        let digest = header_digest(h).map_err(|e| self.invalid(Some(repo), "DIGEST_INVALID", e))?;
        let size = header_u64(h, CONTENT_LENGTH);
        let mt = content_type(h);
        match (digest, size, mt) {
            (Some(d), Some(size), Some(mt))
                if reference_digest(reference).is_none_or(|r| r == d) =>
            {
                Ok(Some(Descriptor::new(&mt, d, size)))
            }
            _ => {
                let m = self.get_manifest_here(repo, reference).await?;
                Ok(Some(Descriptor::new(
                    &m.media_type,
                    m.digest,
                    m.bytes.len() as u64,
                )))
            }
        }
    }

    /// A manifest or index by tag or digest, checked: at most 4 MiB, its
    /// media type agreeing with `Content-Type`, its bytes hashing to the
    /// digest asked for (or the one the registry claims).
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Result<RawManifest> {
        self.mirrored(|c| async move { c.get_manifest_here(repo, reference).await })
            .await
    }

    async fn get_manifest_here(&self, repo: &str, reference: &str) -> Result<RawManifest> {
        let r = Req::new(
            Method::GET,
            format!("/v2/{repo}/manifests/{reference}"),
            Some(repo),
        )
        .header(ACCEPT, MANIFEST_ACCEPT);
        let resp = self.send(r).await?;
        let what = format!("manifest {reference}");
        let bad = |code, why: String| self.invalid(Some(repo), code, format!("{what}: {why}"));
        let h = resp.headers().clone();
        if let Some(n) = header_u64(&h, CONTENT_LENGTH).filter(|n| *n > MAX_MANIFEST_SIZE as u64) {
            return Err(bad(
                "SIZE_INVALID",
                format!("{n} bytes, over the {MAX_MANIFEST_SIZE}-byte manifest limit"),
            ));
        }
        let claimed = header_digest(&h).map_err(|e| bad("DIGEST_INVALID", e))?;
        let bytes = read_limited(resp, MAX_MANIFEST_SIZE)
            .await
            .map_err(|e| match e {
                ReadError::TooLarge => bad(
                    "SIZE_INVALID",
                    format!("over the {MAX_MANIFEST_SIZE}-byte manifest limit"),
                ),
                ReadError::Broken(e) => self.unreachable(Some(repo), format!("{what}: {e}")),
            })?;
        let expected = reference_digest(reference).or(claimed.clone());
        let alg = expected
            .as_ref()
            .map_or(hoist_oci::Algorithm::Sha256, Digest::algorithm);
        let mut hasher = Digester::new(alg);
        hasher.update(&bytes);
        let digest = hasher.finish();
        if let Some(want) = expected.filter(|w| *w != digest) {
            return Err(bad(
                "DIGEST_INVALID",
                format!("expected {want} but the bytes hash to {digest}"),
            ));
        }
        if let (Some(c), Some(_)) = (&claimed, reference_digest(reference)) {
            if *c != digest {
                return Err(bad(
                    "DIGEST_INVALID",
                    format!("Docker-Content-Digest says {c} but the bytes hash to {digest}"),
                ));
            }
        }
        let ct = content_type(&h);
        let declared = ct
            .as_deref()
            .filter(|c| *c != "application/json" && *c != "application/octet-stream");
        let doc = Document::parse(&bytes, declared)
            .map_err(|e| bad("MANIFEST_INVALID", format!("{e} (Content-Type {ct:?})")))?;
        Ok(RawManifest {
            media_type: doc.media_type().to_owned(),
            bytes,
            digest,
        })
    }

    /// Uploads a manifest or index under `reference` (a tag or its digest);
    /// returns its digest.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest> {
        let mut r = Req::new(
            Method::PUT,
            format!("/v2/{repo}/manifests/{reference}"),
            Some(repo),
        )
        .header(CONTENT_TYPE, media_type);
        r.body = Some(Bytes::copy_from_slice(bytes));
        self.send(r).await?;
        Ok(Digest::sha256(bytes))
    }

    /// Uploads, by its digest, a manifest that names a `subject`; true when
    /// the registry indexed it for the referrers API itself (it answered
    /// with `OCI-Subject`), false when the caller must keep the
    /// `<alg>-<hex>` tag index up to date (the tag-schema fallback).
    pub async fn put_referrer(&self, repo: &str, bytes: &[u8], media_type: &str) -> Result<bool> {
        let mut r = Req::new(
            Method::PUT,
            format!("/v2/{repo}/manifests/{}", Digest::sha256(bytes)),
            Some(repo),
        )
        .header(CONTENT_TYPE, media_type);
        r.body = Some(Bytes::copy_from_slice(bytes));
        let resp = self.send(r).await?;
        Ok(resp.headers().contains_key("oci-subject"))
    }

    /// Deletes a manifest by digest.
    pub async fn delete_manifest(&self, repo: &str, digest: &Digest) -> Result<()> {
        let r = Req::new(
            Method::DELETE,
            format!("/v2/{repo}/manifests/{digest}"),
            Some(repo),
        );
        self.send(r).await.map(drop)
    }

    /// Deletes a blob.
    pub async fn delete_blob(&self, repo: &str, digest: &Digest) -> Result<()> {
        let r = Req::new(
            Method::DELETE,
            format!("/v2/{repo}/blobs/{digest}"),
            Some(repo),
        );
        self.send(r).await.map(drop)
    }

    /// Every tag of `repo`, following `Link` pages (`page_size` asks for `n` per page).
    pub async fn list_tags(&self, repo: &str, page_size: Option<usize>) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let first = match page_size {
            Some(n) => format!("/v2/{repo}/tags/list?n={n}"),
            None => format!("/v2/{repo}/tags/list"),
        };
        self.pages(first, Some(repo), |b| {
            serde_json::from_slice::<Page>(b).map(|p| p.tags.unwrap_or_default())
        })
        .await
    }

    /// Every repository in the registry (`/v2/_catalog`), following pages.
    pub async fn catalog(&self, page_size: Option<usize>) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            repositories: Option<Vec<String>>,
        }
        let first = match page_size {
            Some(n) => format!("/v2/_catalog?n={n}"),
            None => "/v2/_catalog".to_owned(),
        };
        self.pages(first, None, |b| {
            serde_json::from_slice::<Page>(b).map(|p| p.repositories.unwrap_or_default())
        })
        .await
    }

    async fn pages(
        &self,
        first: String,
        repo: Option<&str>,
        parse: impl Fn(&[u8]) -> serde_json::Result<Vec<String>>,
    ) -> Result<Vec<String>> {
        let mut target = first;
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let mut r = Req::new(Method::GET, target.clone(), repo);
            if repo.is_none() {
                r.scopes = Scopes::none().with("registry:catalog:*");
            }
            let resp = self.send(r).await?;
            let base = self.base().await?;
            let next = resp
                .headers()
                .get(LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| next_link(v, &base));
            let body = read_limited(resp, MAX_SMALL_BODY)
                .await
                .map_err(|e| self.unreachable(repo, e.to_string()))?;
            let page = parse(&body).map_err(|e| {
                self.invalid(
                    repo,
                    "UNKNOWN",
                    format!("{target}: the list is not JSON: {e}"),
                )
            })?;
            out.extend(page);
            match next {
                Some(n) if n != target => target = n,
                _ => return Ok(out),
            }
        }
        Ok(out)
    }

    /// The referrers of `digest` (signatures, SBOMs…): the referrers API,
    /// else the `sha256-<hex>` tag schema; optionally of one artifact type.
    pub async fn referrers(
        &self,
        repo: &str,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        let r = Req::new(
            Method::GET,
            format!("/v2/{repo}/referrers/{digest}"),
            Some(repo),
        )
        .header(ACCEPT, media_type::OCI_INDEX);
        let bytes = match self.send(r).await {
            Ok(resp) if content_type(resp.headers()).as_deref() == Some(media_type::OCI_INDEX) => {
                read_limited(resp, MAX_MANIFEST_SIZE)
                    .await
                    .map_err(|e| self.unreachable(Some(repo), e.to_string()))?
            }
            // No referrers API (404, or something that is not an index): the tag schema.
            Ok(_) | Err(Error::Status { status: 404, .. }) => {
                let tag = format!("{}-{}", digest.algorithm().as_str(), digest.hex());
                match self.get_manifest(repo, &tag).await {
                    Ok(m) => m.bytes,
                    Err(e) if e.is_not_found() => return Ok(Vec::new()),
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        let idx: Index = serde_json::from_slice(&bytes).map_err(|e| {
            self.invalid(
                Some(repo),
                "MANIFEST_INVALID",
                format!("referrers of {digest}: not an index: {e}"),
            )
        })?;
        Ok(idx
            .manifests
            .into_iter()
            .filter(|d| artifact_type.is_none_or(|t| d.artifact_type.as_deref() == Some(t)))
            .collect())
    }
}

/// The digest a manifest reference names, when it is one.
fn reference_digest(reference: &str) -> Option<Digest> {
    reference.contains(':').then(|| reference.parse().ok())?
}

/// `Content-Type` without parameters.
pub(crate) fn content_type(h: &HeaderMap) -> Option<String> {
    h.get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// A numeric header (`Content-Length` as sent, which reqwest's
/// `content_length()` is not for a HEAD).
pub(crate) fn header_u64(h: &HeaderMap, name: reqwest::header::HeaderName) -> Option<u64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn header_digest(h: &HeaderMap) -> std::result::Result<Option<Digest>, String> {
    match h.get("docker-content-digest").map(|v| v.to_str()) {
        None => Ok(None),
        Some(Ok(v)) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|e| format!("bad Docker-Content-Digest header {v:?}: {e}")),
        Some(Err(_)) => Err("non-ASCII Docker-Content-Digest header".into()),
    }
}

/// A hostile registry can send anything: keep what we echo short.
fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Why a bounded body read failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    TooLarge,
    Broken(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::TooLarge => f.write_str("the answer is too large"),
            ReadError::Broken(e) => f.write_str(e),
        }
    }
}

/// Reads a response body of at most `max` bytes.
pub(crate) async fn read_limited(
    mut resp: reqwest::Response,
    max: usize,
) -> std::result::Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| ReadError::Broken(error_chain(&e)))?
    {
        if out.len() + chunk.len() > max {
            return Err(ReadError::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(is_local(h), "{h}");
        }
        for h in ["example.com", "10.0.0.1:5000", "docker.io"] {
            assert!(!is_local(h), "{h}");
        }
    }

    #[test]
    fn links_stay_on_the_registry() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#, "http://h"),
            Some("/v2/a/tags/list?n=2&last=b".into())
        );
        assert_eq!(
            next_link(r#"<http://h/v2/_catalog?last=x>; rel="next""#, "http://h"),
            Some("/v2/_catalog?last=x".into())
        );
        assert_eq!(
            next_link(r#"<http://evil/v2/x>; rel="next""#, "http://h"),
            None
        );
        assert_eq!(next_link(r#"</v2/x>; rel="prev""#, "http://h"), None);
    }

    #[test]
    fn insecure_registries_come_from_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(
            &p,
            r#"{"insecure-registries":["r.example:5000"],"other":1}"#,
        )
        .unwrap();
        std::env::set_var("HOIST_CONFIG", &p);
        let o = Options::default().with_config_file().unwrap();
        assert_eq!(o.insecure_registries, ["r.example:5000"]);
        std::fs::write(&p, "[1]").unwrap();
        let e = Options::default()
            .with_config_file()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("insecure-registries") && e.contains("config.json"),
            "{e}"
        );
        std::env::remove_var("HOIST_CONFIG");
    }

    #[test]
    fn hub_api_host() {
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("index.docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("ghcr.io"), "ghcr.io");
    }
}
