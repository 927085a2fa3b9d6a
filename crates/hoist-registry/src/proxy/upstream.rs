//! The pull-through cache's upstreams: their configuration (`--proxy`
//! values), which upstream serves which repository (the longest prefix), and
//! the requests the cache makes to them.

use crate::names::RepoName;
use crate::routing::percent_decode;
use hoist_oci::{media_type, Digest, Document};
use hoist_registry_client::{
    BlobStream, Credentials, Error as UpstreamError, Options, RawManifest, RegistryClient,
};

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
pub(crate) struct Upstream {
    /// The upstream's URL, for messages.
    pub(crate) base: String,
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

/// The upstreams by prefix, each with its client.
#[derive(Debug)]
pub(crate) struct Upstreams(Vec<(Option<String>, Upstream)>);

impl Upstreams {
    /// Clients for `cfg`'s upstreams.
    pub(crate) fn new(cfg: &ProxyConfig) -> Self {
        Upstreams(
            cfg.upstreams
                .iter()
                .map(|u| (u.prefix.clone(), Upstream::new(u)))
                .collect(),
        )
    }

    /// The upstream and upstream name for `name`, longest prefix first.
    pub(crate) fn for_repo(&self, name: &RepoName) -> Option<Target<'_>> {
        let n = name.as_str();
        self.0
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
}

/// A repository to fetch: which upstream, and its name there.
pub(crate) struct Target<'a> {
    pub(crate) up: &'a Upstream,
    pub(crate) repo: String,
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
    pub(crate) async fn head_manifest(
        &self,
        reference: &str,
    ) -> Result<Option<Digest>, UpstreamError> {
        let d = self.client()?.head_manifest(&self.repo, reference).await?;
        Ok(d.map(|d| d.digest))
    }

    /// A manifest, its digest verified by the client (the one asked for,
    /// or the one the upstream claims) and its size bounded.
    pub(crate) async fn get_manifest(&self, reference: &str) -> Result<RawManifest, UpstreamError> {
        self.client()?.get_manifest(&self.repo, reference).await
    }

    /// All the upstream's tags, following its `Link` pages.
    pub(crate) async fn tags(&self) -> Result<Vec<String>, UpstreamError> {
        self.client()?.list_tags(&self.repo, None).await
    }

    /// A blob's size upstream; `None` when the repository lacks it.
    pub(crate) async fn blob_size(&self, d: &Digest) -> Result<Option<u64>, UpstreamError> {
        self.client()?.blob_size(&self.repo, d).await
    }

    /// A blob's bytes as the upstream sends them.
    pub(crate) async fn open_blob(&self, d: &Digest) -> Result<BlobStream, UpstreamError> {
        self.client()?.open_blob(&self.repo, d, 0).await
    }

    /// Checks that upstream manifest bytes are a manifest or index we can serve.
    pub(crate) fn check_manifest(
        &self,
        bytes: &[u8],
        ct: Option<&str>,
    ) -> Result<(), UpstreamError> {
        let declared = ct
            .map(|c| c.split(';').next().unwrap_or("").trim())
            .filter(|c| {
                !c.is_empty() && *c != "application/json" && *c != "application/octet-stream"
            });
        let doc = Document::parse(bytes, declared).map_err(|e| {
            self.invalid(
                "MANIFEST_INVALID",
                format!("manifest of {}: {e}", self.repo),
            )
        })?;
        let mt = doc.media_type();
        if media_type::is_manifest(mt) || media_type::is_index(mt) {
            Ok(())
        } else {
            Err(self.invalid(
                "MANIFEST_INVALID",
                format!(
                    "manifest of {} has unsupported media type {mt:?}",
                    self.repo
                ),
            ))
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
        let p = Upstreams::new(&cfg);
        let t = |n: &str| {
            let t = p.for_repo(&RepoName::new(n).unwrap()).unwrap();
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
        let only = Upstreams::new(&ProxyConfig::from_specs(&["ghcr.io=http://g"]).unwrap());
        assert!(only.for_repo(&RepoName::new("ghcr.io").unwrap()).is_none());
        assert!(only.for_repo(&RepoName::new("other/x").unwrap()).is_none());
    }
}
