//! The configuration file of `hoist serve`: the CNCF distribution registry's
//! `config.yml`, key for key, so that the file an existing `docker-registry`
//! runs with runs `hoist serve` unchanged. Keys hoist has no use for (redis,
//! notifications, …) are reported back, never silently dropped; hoist's own
//! settings live under one `hoist:` section that distribution ignores.
//!
//! Over 600 lines on purpose: one struct per section of distribution's file,
//! key for key, with its mapping and tests, reads best in one place.

use crate::auth::{AuthConfig, IssueConfig, TokenConfig};
use crate::driver::{S3Config, StorageConfig};
use crate::proxy::{ProxyConfig, UpstreamConfig};
use crate::server::ServerConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Largest configuration file read (a config is a few KiB; this bounds a mistake).
const MAX_CONFIG: u64 = 1 << 20;

/// Why a configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is larger than any configuration.
    #[error("the configuration file {path} is {size} bytes; a configuration is at most {MAX_CONFIG} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// The YAML is malformed or a key has the wrong type.
    #[error("the configuration file {path} is not valid: {message} (keys follow distribution's config.yml)")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is out of range or inconsistent with another.
    #[error("the configuration file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to mend it.
        message: String,
    },
}

type Other = BTreeMap<String, yaml_serde::Value>;

/// A distribution-style `config.yml`, as far as hoist reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FileConfig {
    /// `version: 0.1`; any value is accepted.
    pub version: Option<yaml_serde::Value>,
    /// `log:`.
    pub log: LogSection,
    /// `storage:`.
    pub storage: StorageSection,
    /// `http:`.
    pub http: HttpSection,
    /// `auth:`.
    pub auth: AuthSection,
    /// `proxy:` (one upstream; more under `hoist.proxies`).
    pub proxy: Option<ProxySection>,
    /// hoist's own settings.
    pub hoist: HoistSection,
    /// Every other top-level key.
    #[serde(flatten)]
    pub other: Other,
}

/// `log:`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LogSection {
    /// `log.level`: error, warn, info, debug.
    pub level: Option<String>,
    /// `log.accesslog.disabled`.
    pub accesslog: AccessLog,
    /// Other keys (formatter, fields, hooks).
    #[serde(flatten)]
    pub other: Other,
}

/// `log.accesslog`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AccessLog {
    /// Turns off the per-request log lines.
    pub disabled: bool,
}

/// `storage:`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StorageSection {
    /// `storage.filesystem`.
    pub filesystem: Option<Filesystem>,
    /// `storage.s3`.
    pub s3: Option<S3Section>,
    /// `storage.delete.enabled`.
    pub delete: Option<Enabled>,
    /// `storage.maintenance.readonly.enabled` (uploadpurging is not needed:
    /// hoist's gc removes stale uploads).
    pub maintenance: Maintenance,
    /// Other keys (cache, redirect, other drivers).
    #[serde(flatten)]
    pub other: Other,
}

/// `storage.filesystem`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Filesystem {
    /// The directory holding `docker/registry/v2`.
    pub rootdirectory: Option<PathBuf>,
    /// Other keys (maxthreads).
    #[serde(flatten)]
    pub other: Other,
}

/// `storage.s3`, distribution's keys.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct S3Section {
    /// The bucket.
    pub bucket: Option<String>,
    /// The region (`us-east-1` when not set).
    pub region: Option<String>,
    /// The endpoint of an S3-compatible service; AWS when not set.
    pub regionendpoint: Option<String>,
    /// The root directory inside the bucket.
    pub rootdirectory: Option<String>,
    /// The access key id; else `AWS_ACCESS_KEY_ID`.
    pub accesskey: Option<String>,
    /// The secret key; else `AWS_SECRET_ACCESS_KEY`.
    pub secretkey: Option<String>,
    /// Other keys (encrypt, secure, chunksize, storageclass, …).
    #[serde(flatten)]
    pub other: Other,
}

/// `storage.s3` as the driver takes it; keys missing from the file come
/// from the environment, as distribution's driver does.
fn s3_config(s: S3Section) -> Result<S3Config, String> {
    let bucket = s
        .bucket
        .filter(|b| !b.is_empty())
        .ok_or("storage.s3 needs bucket")?;
    let region = s.region.unwrap_or_else(|| "us-east-1".into());
    let prefix = s.rootdirectory.unwrap_or_default();
    match (s.accesskey, s.secretkey) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(S3Config {
            bucket,
            endpoint: s.regionendpoint,
            region,
            prefix,
            access_key_id,
            secret_access_key,
            session_token: None,
        }),
        (None, None) => S3Config::from_env(&bucket, s.regionendpoint.as_deref(), &region, &prefix)
            .map_err(|e| format!("storage.s3: {e}")),
        _ => Err("storage.s3 needs both accesskey and secretkey, or neither \
                  (then AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
            .into()),
    }
}

/// A `{enabled: bool}` switch.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Enabled {
    /// On or off.
    pub enabled: bool,
}

/// `storage.maintenance`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Maintenance {
    /// `readonly.enabled`.
    pub readonly: Option<Enabled>,
    /// Other keys (uploadpurging).
    #[serde(flatten)]
    pub other: Other,
}

/// `http:`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HttpSection {
    /// `http.addr`: `HOST:PORT` or Go's `:PORT` for every interface.
    pub addr: Option<String>,
    /// `http.tls.certificate` and `http.tls.key`.
    pub tls: Option<Tls>,
    /// `http.debug`: where distribution serves `/metrics`.
    pub debug: Option<Debug>,
    /// Other keys.
    #[serde(flatten)]
    pub other: Other,
}

/// `http.tls`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Tls {
    /// PEM certificate chain.
    pub certificate: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
    /// Other keys (clientcas, letsencrypt, minimumtls).
    #[serde(flatten)]
    pub other: Other,
}

/// `http.debug`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Debug {
    /// The debug address.
    pub addr: Option<String>,
    /// `prometheus.enabled` and `prometheus.path`.
    pub prometheus: Option<Prometheus>,
}

/// `http.debug.prometheus`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Prometheus {
    /// Serve `/metrics` on the debug address.
    pub enabled: bool,
    /// Its path; hoist serves `/metrics` only.
    pub path: Option<String>,
}

/// `auth:`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AuthSection {
    /// `auth.htpasswd`.
    pub htpasswd: Option<HtpasswdSection>,
    /// `auth.token`.
    pub token: Option<TokenSection>,
    /// Other schemes (silly, …).
    #[serde(flatten)]
    pub other: Other,
}

/// `auth.htpasswd`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HtpasswdSection {
    /// Realm of the basic challenge.
    pub realm: Option<String>,
    /// The htpasswd file (bcrypt).
    pub path: Option<PathBuf>,
}

/// `auth.token`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TokenSection {
    /// Where clients get tokens.
    pub realm: Option<String>,
    /// The audience tokens must name.
    pub service: Option<String>,
    /// The issuer tokens must name.
    pub issuer: Option<String>,
    /// Certificates and keys that sign tokens.
    pub rootcertbundle: Option<PathBuf>,
    /// Other keys (jwks, autoredirect, …).
    #[serde(flatten)]
    pub other: Other,
}

/// `proxy:`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ProxySection {
    /// The upstream registry.
    pub remoteurl: Option<String>,
    /// Its user.
    pub username: Option<String>,
    /// Its password.
    pub password: Option<String>,
    /// Other keys (ttl).
    #[serde(flatten)]
    pub other: Other,
}

/// `hoist:`, settings distribution has no key for.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HoistSection {
    /// Mount blobs across repositories when a client asks without `from`.
    pub automount: Option<bool>,
    /// Per-repository rights (see the README's ACL format).
    pub acl: Option<PathBuf>,
    /// The built-in token issuer: its signing key and token lifetime.
    pub tokenissuer: Option<TokenIssuerSection>,
    /// More pull-through upstreams, as `--proxy` takes them (`PREFIX=URL`).
    pub proxies: Vec<String>,
}

/// `hoist.tokenissuer`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenIssuerSection {
    /// PEM private key whose certificate is in `auth.token.rootcertbundle`.
    pub key: Option<PathBuf>,
    /// Lifetime of issued tokens, seconds (default 300).
    pub expiration: Option<u64>,
}

/// What a configuration file sets: the server's settings and its address.
#[derive(Debug)]
pub struct Loaded {
    /// The settings, on top of [`ServerConfig::with_storage`]'s defaults.
    pub server: ServerConfig,
    /// `http.addr`: `HOST:PORT`, or `:PORT` for every address.
    pub addr: Option<String>,
    /// `http.tls`: certificate chain and key.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `http.debug.addr` when `prometheus.enabled`: `/metrics` goes there.
    pub metrics_addr: Option<String>,
    /// `auth.htpasswd`, `auth.token`, `hoist.acl`, `hoist.tokenissuer`.
    pub auth: Option<AuthConfig>,
    /// `log.level`.
    pub log_level: Option<String>,
    /// Keys that hoist does not act on, dotted (`notifications`, `storage.cache`).
    pub ignored: Vec<String>,
}

impl FileConfig {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<FileConfig, ConfigError> {
        let read_err = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read_err)?.len();
        if size > MAX_CONFIG {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
                size,
            });
        }
        let text = std::fs::read_to_string(path).map_err(read_err)?;
        FileConfig::parse(path, &text)
    }

    /// Parses `text`, the contents of `path` (named in errors).
    pub fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
        if text.trim().is_empty() {
            return Ok(FileConfig::default());
        }
        yaml_serde::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Turns the file into server settings; `path` is named in errors.
    pub fn load(self, path: &Path) -> Result<Loaded, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let mut ignored = Vec::new();
        let mut note = |prefix: &str, other: &Other| {
            ignored.extend(other.keys().map(|k| format!("{prefix}{k}")));
        };
        note("", &self.other);
        note("log.", &self.log.other);
        note("storage.", &self.storage.other);
        note("storage.maintenance.", &self.storage.maintenance.other);
        note("http.", &self.http.other);

        let storage =
            match (self.storage.filesystem, self.storage.s3) {
                (Some(fs), None) => {
                    note("storage.filesystem.", &fs.other);
                    StorageConfig::Filesystem(fs.rootdirectory.ok_or_else(|| {
                        invalid(
                            "storage.filesystem.rootdirectory is not set: name the directory that \
                         holds docker/registry/v2"
                                .into(),
                        )
                    })?)
                }
                (None, Some(s3)) => {
                    note("storage.s3.", &s3.other);
                    StorageConfig::S3(s3_config(s3).map_err(invalid)?)
                }
                (None, None) => return Err(invalid(
                    "no storage: set storage.filesystem.rootdirectory (the directory that holds \
                     docker/registry/v2) or storage.s3"
                        .into(),
                )),
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        "storage.filesystem and storage.s3 are both set: keep one".into(),
                    ))
                }
            };
        let mut server = ServerConfig::with_storage(storage);
        // distribution turns deletes off unless storage.delete.enabled is true.
        server.delete_enabled = self.storage.delete.is_some_and(|d| d.enabled);
        server.read_only = self.storage.maintenance.readonly.is_some_and(|r| r.enabled);
        if let Some(m) = self.hoist.automount {
            server.auto_mount = m;
        }
        let addr = self.http.addr.map(|a| normalise_addr(&a)).transpose();
        let addr = addr.map_err(invalid)?;
        let tls = match self.http.tls {
            None => None,
            Some(t) => {
                note("http.tls.", &t.other);
                match (t.certificate, t.key) {
                    (Some(c), Some(k)) => Some((c, k)),
                    (None, None) => None,
                    _ => return Err(invalid("http.tls needs both certificate and key".into())),
                }
            }
        };
        let metrics_addr = match self.http.debug {
            Some(Debug {
                addr: Some(a),
                prometheus: Some(p),
            }) if p.enabled => {
                if p.path.as_deref().is_some_and(|p| p != "/metrics") {
                    return Err(invalid(
                        "http.debug.prometheus.path: hoist serves /metrics only".into(),
                    ));
                }
                Some(normalise_addr(&a).map_err(invalid)?)
            }
            _ => None,
        };
        server.proxy = proxy_config(self.proxy.as_ref(), &self.hoist.proxies, &mut note)
            .map_err(|e| invalid(e.to_string()))?;
        let auth = auth_config(self.auth, &self.hoist, &mut note).map_err(invalid)?;
        if let Some(level) = &self.log.level {
            if !["error", "warn", "info", "debug", "trace"].contains(&level.as_str()) {
                return Err(invalid(format!(
                    "log.level {level:?} is not one of error, warn, info, debug"
                )));
            }
        }
        Ok(Loaded {
            server,
            addr,
            tls,
            metrics_addr,
            auth,
            log_level: self.log.level,
            ignored,
        })
    }
}

/// `proxy:` and `hoist.proxies` as the pull-through cache's upstreams.
fn proxy_config(
    section: Option<&ProxySection>,
    more: &[String],
    note: &mut impl FnMut(&str, &Other),
) -> Result<Option<ProxyConfig>, crate::proxy::ProxyConfigError> {
    let mut cfg = ProxyConfig::default();
    if let Some(p) = section {
        note("proxy.", &p.other);
        if let Some(url) = &p.remoteurl {
            let mut up = UpstreamConfig::parse(url)?;
            if let Some(user) = &p.username {
                up.credentials = Some((user.clone(), p.password.clone().unwrap_or_default()));
            }
            cfg.add(up)?;
        }
    }
    for spec in more {
        cfg.add(UpstreamConfig::parse(spec)?)?;
    }
    Ok((!cfg.upstreams.is_empty()).then_some(cfg))
}

/// `auth:` with hoist's ACL and token issuer, as the CLI's flags give them.
fn auth_config(
    section: AuthSection,
    hoist: &HoistSection,
    note: &mut impl FnMut(&str, &Other),
) -> Result<Option<AuthConfig>, String> {
    note("auth.", &section.other);
    let mut cfg = AuthConfig {
        realm: "hoist registry".into(),
        acl: hoist.acl.clone(),
        ..AuthConfig::default()
    };
    if let Some(h) = section.htpasswd {
        cfg.htpasswd = Some(
            h.path
                .ok_or("auth.htpasswd needs path: the htpasswd file")?,
        );
        if let Some(r) = h.realm {
            cfg.realm = r;
        }
    }
    if let Some(t) = section.token {
        note("auth.token.", &t.other);
        let need = |v: Option<String>, key: &str| v.ok_or(format!("auth.token needs {key}"));
        let realm = need(t.realm, "realm")?;
        let issue = match &hoist.tokenissuer {
            Some(TokenIssuerSection {
                key: Some(key),
                expiration,
            }) => Some(IssueConfig {
                key: key.clone(),
                path: crate::auth::url_path(&realm)
                    .filter(|p| p.len() > 1)
                    .ok_or(format!(
                        "auth.token.realm {realm:?} must be a URL with a path, such as \
                         http://HOST:5000/token, for hoist.tokenissuer to serve on"
                    ))?
                    .to_owned(),
                ttl: std::time::Duration::from_secs(expiration.unwrap_or(300).max(1)),
            }),
            Some(_) => return Err("hoist.tokenissuer needs key: its PEM private key".into()),
            None => None,
        };
        cfg.token = Some(TokenConfig {
            service: need(t.service, "service")?,
            issuer: need(t.issuer, "issuer")?,
            rootcertbundle: t.rootcertbundle.ok_or("auth.token needs rootcertbundle")?,
            realm,
            issue,
        });
    }
    if cfg.htpasswd.is_none() && cfg.token.is_none() {
        if cfg.acl.is_some() {
            return Err("hoist.acl needs auth.htpasswd or auth.token: rights are per user".into());
        }
        return Ok(None);
    }
    Ok(Some(cfg))
}

/// Checks an address is `HOST:PORT`, or Go's `:PORT` for every address
/// (which the registry builder binds as Go does).
fn normalise_addr(a: &str) -> Result<String, String> {
    let a = a.trim();
    let port_ok = a
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
    if port_ok {
        Ok(a.to_owned())
    } else {
        Err(format!(
            "http.addr {a:?} is not HOST:PORT (or :PORT for every interface)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Loaded, ConfigError> {
        FileConfig::parse(Path::new("config.yml"), text)?.load(Path::new("config.yml"))
    }

    #[test]
    fn distribution_default_config_is_read_and_extras_reported() {
        // The shape of the config.yml that Debian's docker-registry ships.
        let l = load(
            "version: 0.1\nlog:\n  fields:\n    service: registry\nstorage:\n  cache:\n    \
             blobdescriptor: inmemory\n  filesystem:\n    rootdirectory: /var/lib/docker-registry\n\
             http:\n  addr: :5000\n  headers:\n    X-Content-Type-Options: [nosniff]\n\
             health:\n  storagedriver:\n    enabled: true\n",
        )
        .unwrap();
        assert!(
            matches!(&l.server.storage, StorageConfig::Filesystem(p) if p == Path::new("/var/lib/docker-registry"))
        );
        assert_eq!(l.addr.as_deref(), Some(":5000"));
        assert!(
            !l.server.delete_enabled,
            "distribution's default: no deletes"
        );
        assert!(!l.server.read_only);
        assert_eq!(
            l.ignored,
            ["health", "log.fields", "storage.cache", "http.headers"]
        );
    }

    #[test]
    fn delete_readonly_and_hoist_section() {
        let l = load(
            "storage:\n  filesystem: {rootdirectory: /r}\n  delete: {enabled: true}\n  \
             maintenance:\n    readonly: {enabled: true}\nhttp: {addr: 127.0.0.1:5001}\n\
             hoist: {automount: false}\nlog: {level: debug}\n",
        )
        .unwrap();
        assert!(l.server.delete_enabled && l.server.read_only && !l.server.auto_mount);
        assert_eq!(l.addr.as_deref(), Some("127.0.0.1:5001"));
        assert_eq!(l.log_level.as_deref(), Some("debug"));
        assert!(l.ignored.is_empty());
    }

    #[test]
    fn bad_files_name_the_problem() {
        let e = load("storage: [1, 2\n").unwrap_err().to_string();
        assert!(e.contains("config.yml is not valid"), "{e}");
        let e = load("storage: {filesystem: {}}\n").unwrap_err().to_string();
        assert!(e.contains("rootdirectory is not set"), "{e}");
        let e = load("storage: {filesystem: {rootdirectory: /r}}\nhttp: {addr: nowhere}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("http.addr \"nowhere\""), "{e}");
        let e = load("storage: {filesystem: {rootdirectory: /r}}\nhoist: {automunt: true}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("automunt"), "{e}");
        let e = load("storage: {filesystem: {rootdirectory: /r}}\nlog: {level: loud}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("log.level"), "{e}");
    }

    #[test]
    fn tls_metrics_auth_and_proxy_sections() {
        let l = load(
            "storage: {filesystem: {rootdirectory: /r}}\n\
             http:\n  addr: :5000\n  tls: {certificate: /c.pem, key: /k.pem}\n  \
             debug: {addr: localhost:5001, prometheus: {enabled: true, path: /metrics}}\n\
             auth:\n  token:\n    realm: http://reg:5000/token\n    service: reg\n    \
             issuer: me\n    rootcertbundle: /b.pem\n  htpasswd: {realm: r, path: /h}\n\
             proxy: {remoteurl: 'https://up.example', username: u, password: p, ttl: 1h}\n\
             hoist:\n  acl: /acl\n  tokenissuer: {key: /key.pem, expiration: 60}\n  \
             proxies: ['ghcr.io=https://ghcr.io']\n",
        )
        .unwrap();
        assert_eq!(
            l.tls,
            Some((PathBuf::from("/c.pem"), PathBuf::from("/k.pem")))
        );
        assert_eq!(l.metrics_addr.as_deref(), Some("localhost:5001"));
        let a = l.auth.unwrap();
        assert_eq!(a.realm, "r");
        assert_eq!(a.htpasswd, Some(PathBuf::from("/h")));
        assert_eq!(a.acl, Some(PathBuf::from("/acl")));
        let t = a.token.unwrap();
        assert_eq!((t.service.as_str(), t.issuer.as_str()), ("reg", "me"));
        let i = t.issue.unwrap();
        assert_eq!((i.path.as_str(), i.ttl.as_secs()), ("/token", 60));
        let p = l.server.proxy.unwrap();
        assert_eq!(p.upstreams.len(), 2);
        assert_eq!(p.upstreams[0].url, "https://up.example");
        assert_eq!(
            p.upstreams[0].credentials,
            Some(("u".to_owned(), "p".to_owned()))
        );
        assert_eq!(p.upstreams[1].prefix.as_deref(), Some("ghcr.io"));
        assert_eq!(l.ignored, ["proxy.ttl"]);
    }

    #[test]
    fn s3_storage_section() {
        let l = load(
            "storage:\n  s3:\n    bucket: b\n    region: eu-west-1\n    regionendpoint: \
             http://127.0.0.1:9000\n    rootdirectory: /reg\n    accesskey: AK\n    \
             secretkey: SK\n    secure: false\n",
        )
        .unwrap();
        let StorageConfig::S3(c) = &l.server.storage else {
            panic!("not s3: {:?}", l.server.storage)
        };
        assert_eq!(
            (c.bucket.as_str(), c.region.as_str(), c.prefix.as_str()),
            ("b", "eu-west-1", "/reg")
        );
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(
            (c.access_key_id.as_str(), c.secret_access_key.as_str()),
            ("AK", "SK")
        );
        assert_eq!(l.ignored, ["storage.s3.secure"]);
    }

    #[test]
    fn half_given_sections_are_refused() {
        let base = "storage: {filesystem: {rootdirectory: /r}}\n";
        for (extra, want) in [
            ("http: {tls: {certificate: /c}}", "both certificate and key"),
            (
                "http: {debug: {addr: ':5001', prometheus: {enabled: true, path: /m}}}",
                "/metrics only",
            ),
            ("auth: {htpasswd: {realm: x}}", "needs path"),
            (
                "auth: {token: {realm: 'http://a/t'}}",
                "auth.token needs service",
            ),
            ("hoist: {acl: /a}", "hoist.acl needs"),
            ("proxy: {remoteurl: 'ftp://x'}", "http or https"),
        ] {
            let e = load(&format!("{base}{extra}\n")).unwrap_err().to_string();
            assert!(e.contains(want), "{extra}: {e}");
        }
        for (text, want) in [
            ("storage: {s3: {region: x}}", "storage.s3 needs bucket"),
            (
                "storage: {s3: {bucket: b, accesskey: a}}",
                "both accesskey and secretkey",
            ),
            (
                "storage: {s3: {bucket: b}, filesystem: {rootdirectory: /r}}",
                "keep one",
            ),
            ("log: {level: info}", "no storage"),
        ] {
            let e = load(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn oversized_file_is_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.yml");
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(MAX_CONFIG + 1).unwrap();
        let e = FileConfig::read(&p).unwrap_err().to_string();
        assert!(e.contains("at most"), "{e}");
    }
}
