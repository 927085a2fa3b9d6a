//! Authentication and authorization of `hoist serve`: htpasswd (bcrypt)
//! basic auth, bearer tokens per the distribution token specification
//! (checked against trusted keys, optionally issued by this server), and
//! per-repository pull/push/delete rights from an ACL file.
//!
//! Modes: with a [`TokenConfig`] the registry asks for bearer tokens (and
//! the htpasswd file, if any, authenticates users at the built-in issuer);
//! with only an htpasswd file it asks for basic auth on every request.

pub mod acl;
pub mod htpasswd;
pub mod middleware;
pub mod token;

use acl::{Acl, Action};
use axum::http::{header, HeaderMap};
use base64::Engine as _;
use htpasswd::Htpasswd;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use token::{Issuer, ResourceActions, Verifier};

/// What goes wrong loading the auth configuration (at startup).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A file could not be read.
    #[error("cannot read the {what} {path}: {source}")]
    Io {
        /// Which file it is.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A bad htpasswd line.
    #[error("htpasswd file {path}:{line}: {msg}")]
    Htpasswd {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong and how to fix it.
        msg: String,
    },
    /// A bad ACL line.
    #[error("ACL file {path}:{line}: {msg}")]
    Acl {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong and how to fix it.
        msg: String,
    },
    /// A bad key, certificate or bundle.
    #[error("{path}: {msg}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        msg: String,
    },
    /// Settings that do not fit together.
    #[error("auth configuration: {0}")]
    Config(#[from] AuthConfigError),
}

/// Auth settings that do not fit together; each says the fix.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// Neither basic nor token auth.
    #[error("give an htpasswd file (basic auth) or token settings")]
    NoMethod,
    /// A token setting left empty.
    #[error("the token {0} is empty")]
    EmptyTokenSetting(&'static str),
    /// A realm that is not an absolute URL.
    #[error("the token realm {0:?} is not an absolute URL such as http://host:5000/token")]
    RealmNotUrl(String),
    /// htpasswd or ACL files with token auth but no built-in issuer to serve.
    #[error(
        "with token auth the htpasswd and ACL files serve the built-in issuer: \
         give its signing key too, or leave them out when another issuer signs"
    )]
    FilesWithoutIssuer,
    /// An issuer path that would shadow the API or the health check.
    #[error("the token issuer path {0:?} must start with / and not be /healthz or under /v2")]
    IssuerPath(String),
}

/// Token auth settings (distribution's `auth.token`).
#[derive(Clone, Debug)]
pub struct TokenConfig {
    /// Where clients get tokens (absolute URL, sent in the challenge).
    pub realm: String,
    /// The service name: the audience tokens must be issued for.
    pub service: String,
    /// The issuer tokens must name in `iss`.
    pub issuer: String,
    /// PEM file of certificates and/or public keys that sign tokens.
    pub rootcertbundle: PathBuf,
    /// Serve a token issuer on this server too.
    pub issue: Option<IssueConfig>,
}

/// Settings of the built-in token issuer.
#[derive(Clone, Debug)]
pub struct IssueConfig {
    /// PEM private key (PKCS#8 EC P-256/P-384, or RSA) that signs tokens;
    /// its certificate or public key must be in the root certificate bundle.
    pub key: PathBuf,
    /// The URL path the issuer answers on (e.g. `/token`).
    pub path: String,
    /// Lifetime of issued tokens.
    pub ttl: Duration,
}

/// Auth settings of `hoist serve`; [`Auth::load`] reads the files.
#[derive(Clone, Debug, Default)]
pub struct AuthConfig {
    /// Realm of the basic auth challenge.
    pub realm: String,
    /// htpasswd file (bcrypt) of users.
    pub htpasswd: Option<PathBuf>,
    /// ACL file of rights; without it every authenticated user may do all.
    pub acl: Option<PathBuf>,
    /// Token auth; without it the registry uses basic auth.
    pub token: Option<TokenConfig>,
}

/// Loaded token settings.
#[derive(Debug)]
struct TokenAuth {
    realm: String,
    service: String,
    verifier: Verifier,
    issuer: Option<(Issuer, String)>,
}

/// The auth state the middleware checks requests against: the settings and
/// what their files held when last (re)loaded.
#[derive(Debug)]
pub struct Auth {
    cfg: AuthConfig,
    files: RwLock<Arc<Files>>,
}

/// What the auth files hold, read together so a reload swaps all at once.
#[derive(Debug)]
struct Files {
    realm: String,
    htpasswd: Option<Htpasswd>,
    acl: Option<Acl>,
    token: Option<TokenAuth>,
}

/// The path of a URL (`http://h:5000/token?x` gives `/token`), for serving
/// the built-in issuer on the path its realm names.
pub fn url_path(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let path = &rest[rest.find('/')?..];
    Some(path.split(['?', '#']).next().unwrap_or(path))
}

impl Auth {
    /// Reads the files `cfg` names and checks they fit together.
    pub fn load(cfg: &AuthConfig) -> Result<Auth, AuthError> {
        Ok(Auth {
            files: RwLock::new(Arc::new(Files::load(cfg)?)),
            cfg: cfg.clone(),
        })
    }

    /// Reads the files again (htpasswd, ACL, token bundle and signing key)
    /// and uses them from the next request on; requests in flight finish
    /// with the old ones. When a file is bad the old ones stay, and the
    /// error says why.
    pub fn reload(&self) -> Result<(), AuthError> {
        let fresh = Arc::new(Files::load(&self.cfg)?);
        // A poisoned lock only means a panic elsewhere held it; the Arc
        // inside is whole either way.
        *self.files.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// The files as last loaded.
    fn files(&self) -> Arc<Files> {
        self.files.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// One line for the startup message: how clients authenticate.
    pub fn describe(&self) -> String {
        self.files().describe()
    }

    /// The path of the built-in token issuer, when this server issues.
    /// Settings, not files: it stays what it was at startup.
    pub fn issuer_path(&self) -> Option<&str> {
        self.cfg
            .token
            .as_ref()?
            .issue
            .as_ref()
            .map(|i| i.path.as_str())
    }
}

impl Files {
    fn load(cfg: &AuthConfig) -> Result<Files, AuthError> {
        let htpasswd = cfg.htpasswd.as_deref().map(Htpasswd::load).transpose()?;
        let acl = cfg.acl.as_deref().map(Acl::load).transpose()?;
        let token = match &cfg.token {
            None => {
                if htpasswd.is_none() {
                    return Err(AuthConfigError::NoMethod.into());
                }
                None
            }
            Some(t) => {
                for (what, v) in [
                    ("realm", &t.realm),
                    ("service", &t.service),
                    ("issuer", &t.issuer),
                ] {
                    if v.trim().is_empty() {
                        return Err(AuthConfigError::EmptyTokenSetting(what).into());
                    }
                }
                if url_path(&t.realm).is_none() {
                    return Err(AuthConfigError::RealmNotUrl(t.realm.clone()).into());
                }
                if t.issue.is_none() && (htpasswd.is_some() || acl.is_some()) {
                    return Err(AuthConfigError::FilesWithoutIssuer.into());
                }
                let verifier = Verifier::load(&t.rootcertbundle, &t.issuer, &t.service)?;
                let issuer = match &t.issue {
                    None => None,
                    Some(i) => {
                        if !i.path.starts_with('/')
                            || i.path.starts_with("/v2")
                            || i.path == "/healthz"
                        {
                            return Err(AuthConfigError::IssuerPath(i.path.clone()).into());
                        }
                        let iss = Issuer::load(&i.key, &verifier, &t.rootcertbundle, i.ttl)?;
                        Some((iss, i.path.clone()))
                    }
                };
                Some(TokenAuth {
                    realm: t.realm.clone(),
                    service: t.service.clone(),
                    verifier,
                    issuer,
                })
            }
        };
        let realm = if cfg.realm.is_empty() {
            "hoist registry".to_owned()
        } else {
            cfg.realm.clone()
        };
        Ok(Files {
            realm,
            htpasswd,
            acl,
            token,
        })
    }

    fn describe(&self) -> String {
        match &self.token {
            Some(t) => match &t.issuer {
                Some((_, p)) => format!("token (issuing on {p}, service {})", t.service),
                None => format!("token (from {}, service {})", t.realm, t.service),
            },
            None => format!("basic (realm {:?})", self.realm),
        }
    }

    /// Whether `user` (None: anonymous) has `action` on `repo` per the ACL.
    fn acl_allows(&self, user: Option<&str>, repo: &str, action: Action) -> bool {
        match &self.acl {
            Some(a) => a.allows(user, repo, action),
            None => user.is_some(),
        }
    }

    fn acl_allows_catalog(&self, user: Option<&str>) -> bool {
        match &self.acl {
            Some(a) => a.allows_catalog(user),
            None => user.is_some(),
        }
    }

    /// Whether `user` may have the access in `r` per the ACL.
    fn acl_allows_all(&self, user: Option<&str>, r: &ResourceActions) -> bool {
        r.actions
            .iter()
            .all(|a| self.acl_grants(user, &r.typ, &r.name, a))
    }

    /// Whether `user` may have `action` on `typ:name` per the ACL.
    fn acl_grants(&self, user: Option<&str>, typ: &str, name: &str, action: &str) -> bool {
        match (typ, Action::parse(action)) {
            ("repository", Some(a)) => self.acl_allows(user, name, a),
            ("registry", _) => name == "catalog" && action == "*" && self.acl_allows_catalog(user),
            _ => false,
        }
    }

    /// Checks a basic `Authorization` header against the htpasswd file.
    /// `Ok(None)`: no credentials; `Err`: wrong ones.
    async fn basic_user(self: &Arc<Self>, h: &HeaderMap) -> Result<Option<String>, ()> {
        let Some(v) = h.get(header::AUTHORIZATION) else {
            return Ok(None);
        };
        let v = v.to_str().map_err(|_| ())?;
        let (scheme, cred) = v.split_once(' ').ok_or(())?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(());
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(cred.trim())
            .map_err(|_| ())?;
        let raw = String::from_utf8(raw).map_err(|_| ())?;
        let (user, pass) = raw.split_once(':').ok_or(())?;
        let (user, pass) = (user.to_owned(), pass.to_owned());
        let me = self.clone();
        // bcrypt takes milliseconds: keep it off the async threads.
        let ok = tokio::task::spawn_blocking(move || {
            me.htpasswd
                .as_ref()
                .is_some_and(|h| h.check(&user, &pass))
                .then_some(user)
        })
        .await
        .map_err(|_| ())?;
        ok.map(Some).ok_or(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_line(user: &str, password: &str) -> String {
        format!("{user}:{}\n", bcrypt::hash(password, 4).unwrap())
    }

    fn knows(auth: &Auth, user: &str, password: &str) -> bool {
        auth.files()
            .htpasswd
            .as_ref()
            .is_some_and(|h| h.check(user, password))
    }

    #[test]
    fn reload_takes_new_files_and_keeps_the_old_ones_when_a_new_one_is_bad() {
        let d = tempfile::tempdir().unwrap();
        let htpasswd = d.path().join("htpasswd");
        std::fs::write(&htpasswd, user_line("alice", "a")).unwrap();
        let auth = Auth::load(&AuthConfig {
            htpasswd: Some(htpasswd.clone()),
            ..AuthConfig::default()
        })
        .unwrap();
        assert!(knows(&auth, "alice", "a"));

        std::fs::write(&htpasswd, user_line("bob", "b")).unwrap();
        auth.reload().unwrap();
        assert!(knows(&auth, "bob", "b") && !knows(&auth, "alice", "a"));

        std::fs::write(&htpasswd, "not a bcrypt line\n").unwrap();
        let e = auth.reload().unwrap_err();
        assert!(matches!(e, AuthError::Htpasswd { .. }), "{e}");
        assert!(knows(&auth, "bob", "b"), "the old file was dropped");

        std::fs::remove_file(&htpasswd).unwrap();
        assert!(matches!(auth.reload(), Err(AuthError::Io { .. })));
        assert!(knows(&auth, "bob", "b"));
    }
}
