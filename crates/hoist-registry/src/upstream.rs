//! The pull-through cache's client for one upstream registry: anonymous,
//! basic and bearer-token auth (the `WWW-Authenticate: Bearer realm=…,
//! service=…, scope=…` challenge that Docker Hub and distribution send),
//! timeouts, and the upstream's own error codes kept for our error body.
//!
//! Credentials never appear in a URL, a log line or an error message: the
//! URL is stored without its `user:pass@` part and `Debug` hides them.

use reqwest::header::{ACCEPT, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long to wait for a TCP (and TLS) connection to the upstream.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one read from the upstream may take before it counts as down.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Whole-request limit for small requests (manifests, tags, tokens).
const SMALL_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest token response or error body read from the upstream.
const MAX_SMALL_BODY: usize = 1 << 20;
/// Token lifetime assumed when the token server does not say (its spec's default).
const DEFAULT_TOKEN_LIFETIME: u64 = 60;

/// Every manifest type we store, for the upstream's content negotiation.
pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// What went wrong talking to an upstream.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No answer: connection refused, DNS, TLS, timeout, a body cut short.
    #[error("upstream {upstream} is unreachable: {reason}")]
    Unreachable {
        /// The upstream's base URL (without credentials).
        upstream: String,
        /// What failed.
        reason: String,
    },
    /// The upstream answered with an error status.
    #[error("upstream {upstream} answered {status}{}{}", describe(.errors), hint(*.status))]
    Status {
        /// The upstream's base URL (without credentials).
        upstream: String,
        /// The HTTP status it answered.
        status: u16,
        /// Its distribution-spec errors (code, message), if it sent any.
        errors: Vec<(String, String)>,
    },
    /// The upstream's answer made no sense (a bad token response, a
    /// manifest that is not one, content that does not match its digest).
    #[error("upstream {upstream} sent invalid data: {reason}")]
    Invalid {
        /// The upstream's base URL (without credentials).
        upstream: String,
        /// The distribution-spec code for our answer (`DIGEST_INVALID`, …).
        code: &'static str,
        /// What was wrong.
        reason: String,
    },
}

fn hint(status: u16) -> &'static str {
    match status {
        401 | 403 => " (check the upstream's user and password)",
        _ => "",
    }
}

fn describe(errors: &[(String, String)]) -> String {
    errors
        .iter()
        .map(|(c, m)| format!(": {c} {m}"))
        .collect::<Vec<_>>()
        .join(";")
}

impl UpstreamError {
    /// True when the upstream is down or overloaded (no answer, 5xx, 429):
    /// the cases where a cached copy is served instead.
    pub fn is_unavailable(&self) -> bool {
        match self {
            UpstreamError::Unreachable { .. } => true,
            UpstreamError::Status { status, .. } => *status >= 500 || *status == 429,
            UpstreamError::Invalid { .. } => false,
        }
    }

    /// True when the upstream says the thing does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, UpstreamError::Status { status: 404, .. })
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, PartialEq)]
enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses the first challenge of a `WWW-Authenticate` value. Written here
/// because the registry form is tiny (one scheme, quoted `k="v"` pairs) and
/// the crates that parse RFC 7235 in general are unmaintained.
fn parse_challenge(v: &str) -> Option<Challenge> {
    let v = v.trim();
    let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = HashMap::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let (key, after) = s.split_once('=')?;
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            // A quoted string; `\"` escapes a quote.
            let mut out = String::new();
            let mut chars = q.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            out.push(n);
                        }
                    }
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => out.push(c),
                }
            }
            (out, &q[end?..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        params.insert(key, value);
        s = next.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge::Bearer {
        realm: params.remove("realm")?,
        service: params.remove("service"),
        scope: params.remove("scope"),
    })
}

/// How requests to one upstream are authorised, learned from its challenges.
#[derive(Clone, Debug, Default)]
enum AuthMode {
    /// Nothing learned yet: try anonymously.
    #[default]
    Anonymous,
    /// The upstream wants basic auth.
    Basic,
}

/// A client for one upstream registry.
pub struct UpstreamClient {
    base: String,
    credentials: Option<(String, String)>,
    client: Result<reqwest::Client, String>,
    mode: Mutex<AuthMode>,
    /// Bearer tokens by scope, with when they stop being good.
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("base", &self.base)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<hidden>"),
            )
            .finish()
    }
}

impl UpstreamClient {
    /// A client for `base` (`http(s)://host[:port]`, no credentials in it).
    pub fn new(base: &str, credentials: Option<(String, String)>) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("hoist/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"));
        UpstreamClient {
            base: base.trim_end_matches('/').to_owned(),
            credentials,
            client,
            mode: Mutex::new(AuthMode::Anonymous),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The upstream's base URL, for messages.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> UpstreamError {
        UpstreamError::Unreachable {
            upstream: self.base.clone(),
            reason: e.to_string(),
        }
    }

    /// An invalid-answer error naming this upstream.
    pub(crate) fn invalid(&self, reason: impl Into<String>) -> UpstreamError {
        self.invalid_code("UNKNOWN", reason)
    }

    /// An invalid-answer error with the code our answer should carry.
    pub(crate) fn invalid_code(
        &self,
        code: &'static str,
        reason: impl Into<String>,
    ) -> UpstreamError {
        UpstreamError::Invalid {
            upstream: self.base.clone(),
            code,
            reason: reason.into(),
        }
    }

    fn http(&self) -> Result<&reqwest::Client, UpstreamError> {
        self.client.as_ref().map_err(|e| self.unreachable(e))
    }

    /// Sends `method path` (path starts with `/v2/`), answering auth
    /// challenges once. `small` bounds the whole request's time (not for
    /// blobs, which may take long but never stall: the read timeout holds).
    /// Returns the response when it is a success; an error status otherwise.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        repo: &str,
        accept: Option<&str>,
        small: bool,
    ) -> Result<reqwest::Response, UpstreamError> {
        let url = format!("{}{path}", self.base);
        let scope = format!("repository:{repo}:pull");
        let mut challenged = false;
        loop {
            let mut req = self.http()?.request(method.clone(), &url);
            if let Some(a) = accept {
                req = req.header(ACCEPT, a);
            }
            if small {
                req = req.timeout(SMALL_REQUEST_TIMEOUT);
            }
            req = self.authorize(req, &scope);
            let resp = req
                .send()
                .await
                .map_err(|e| self.unreachable(error_chain(&e.without_url())))?;
            if resp.status() == StatusCode::UNAUTHORIZED && !challenged {
                let challenge = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_challenge);
                match challenge {
                    Some(Challenge::Basic) if self.credentials.is_some() => {
                        *self.mode.lock().unwrap_or_else(|p| p.into_inner()) = AuthMode::Basic;
                    }
                    Some(Challenge::Bearer {
                        realm,
                        service,
                        scope: asked,
                    }) => {
                        let s = asked.unwrap_or_else(|| scope.clone());
                        self.fetch_token(&realm, service.as_deref(), &s, &scope)
                            .await?;
                    }
                    _ => return Err(self.status_error(resp).await),
                }
                challenged = true;
                continue;
            }
            if resp.status().is_success() {
                return Ok(resp);
            }
            return Err(self.status_error(resp).await);
        }
    }

    /// Adds the credentials the upstream asked for: a cached bearer token
    /// for the scope, else basic auth once a challenge asked for it.
    fn authorize(&self, req: reqwest::RequestBuilder, scope: &str) -> reqwest::RequestBuilder {
        let token = {
            let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
            tokens
                .get(scope)
                .filter(|(_, until)| *until > Instant::now())
                .map(|(t, _)| t.clone())
        };
        if let Some(t) = token {
            return req.bearer_auth(t);
        }
        let basic = matches!(
            *self.mode.lock().unwrap_or_else(|p| p.into_inner()),
            AuthMode::Basic
        );
        match &self.credentials {
            Some((u, p)) if basic => req.basic_auth(u, Some(p)),
            _ => req,
        }
    }

    /// Gets a bearer token from `realm` (with our credentials if we have
    /// any, as the token spec wants) and caches it under `key`.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        key: &str,
    ) -> Result<(), UpstreamError> {
        let mut req = self
            .http()?
            .get(realm)
            .timeout(SMALL_REQUEST_TIMEOUT)
            .query(&[("scope", scope)]);
        if let Some(s) = service {
            req = req.query(&[("service", s)]);
        }
        if let Some((u, p)) = &self.credentials {
            req = req.basic_auth(u, Some(p));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| self.unreachable(format!("token server: {}", error_chain(&e))))?;
        if !resp.status().is_success() {
            return Err(match self.status_error(resp).await {
                UpstreamError::Status {
                    upstream,
                    status,
                    errors,
                } => UpstreamError::Status {
                    upstream: format!("{upstream} (its token server {realm})"),
                    status,
                    errors,
                },
                e => e,
            });
        }
        let body = read_small(resp, MAX_SMALL_BODY)
            .await
            .map_err(|e| self.unreachable(format!("token server: {e}")))?;
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let t: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| self.invalid(format!("token server answered non-JSON: {e}")))?;
        let token = t
            .token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.invalid("token server answered no token"))?;
        // Renew a little early so a token does not expire in flight.
        let life = t.expires_in.unwrap_or(DEFAULT_TOKEN_LIFETIME).max(10) - 5;
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                key.to_owned(),
                (token, Instant::now() + Duration::from_secs(life)),
            );
        Ok(())
    }

    /// Turns an error response into an error carrying the upstream's codes.
    async fn status_error(&self, resp: reqwest::Response) -> UpstreamError {
        let status = resp.status().as_u16();
        let body = read_small(resp, MAX_SMALL_BODY).await.unwrap_or_default();
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
                    .map(|i| (clip(&i.code, 64), clip(&i.message, 512)))
                    .collect()
            })
            .unwrap_or_default();
        UpstreamError::Status {
            upstream: self.base.clone(),
            status,
            errors,
        }
    }
}

/// A hostile upstream can send anything: keep what we echo short.
fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// An error with its causes ("error sending request: connection refused").
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// Reads a response body of at most `max` bytes.
pub(crate) async fn read_small(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e))? {
        if out.len() + chunk.len() > max {
            return Err(format!("answer larger than {max} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/alpine:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"bearer realm="http://a/t", scope="x:y:pull,push""#),
            Some(Challenge::Bearer {
                realm: "http://a/t".into(),
                service: None,
                scope: Some("x:y:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge(r#"Bearer service="s""#), None);
        assert_eq!(parse_challenge(r#"Bearer realm="unterminated"#), None);
        assert_eq!(parse_challenge("Negotiate abc"), None);
    }

    #[test]
    fn unavailable_means_down_or_overloaded() {
        let st = |status| UpstreamError::Status {
            upstream: "u".into(),
            status,
            errors: vec![],
        };
        assert!(st(503).is_unavailable());
        assert!(st(429).is_unavailable());
        assert!(!st(404).is_unavailable());
        assert!(st(404).is_not_found());
    }

    #[test]
    fn debug_hides_credentials() {
        let c = UpstreamClient::new("http://h", Some(("me".into(), "s3cret".into())));
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
