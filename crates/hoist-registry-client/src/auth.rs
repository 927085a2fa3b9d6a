//! Credentials, `WWW-Authenticate` challenges and token scopes.

use std::collections::BTreeSet;

/// A user and password (or, with the user `<token>`, an identity token
/// from `docker login` to an OAuth2 registry).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password, or the identity (refresh) token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

impl Credentials {
    /// Credentials from a user and a password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }

    /// True when the password is an OAuth2 refresh token (`docker login`'s
    /// `identitytoken`), exchanged at the token server with a POST.
    pub fn is_identity_token(&self) -> bool {
        self.username == "<token>"
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// `Basic realm=…`.
    Basic,
    /// `Bearer realm=…,service=…,scope=…`.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Splits `s` at commas outside quoted strings.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    let Some(inner) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return v.to_owned();
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses every challenge of the `WWW-Authenticate` values (RFC 7235: one
/// header may hold several, each `scheme k=v, k=v`, and several headers may
/// come). Unknown schemes are skipped; a Bearer without a realm is dropped.
pub(crate) fn parse_challenges<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
    let mut raw: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for v in values {
        for item in split_top(v) {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            // A new challenge starts with a scheme token not followed by `=`.
            let starts_scheme = match item.find('=') {
                None => true,
                Some(e) => item[..e].trim().contains(char::is_whitespace),
            };
            let param = if starts_scheme {
                let (scheme, rest) = item.split_once(char::is_whitespace).unwrap_or((item, ""));
                raw.push((scheme.to_ascii_lowercase(), Vec::new()));
                rest.trim()
            } else {
                item
            };
            if let (Some((k, v)), Some(last)) = (param.split_once('='), raw.last_mut()) {
                last.1.push((k.trim().to_ascii_lowercase(), unquote(v)));
            }
        }
    }
    raw.into_iter()
        .filter_map(|(scheme, params)| {
            let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            match scheme.as_str() {
                "basic" => Some(Challenge::Basic),
                "bearer" => Some(Challenge::Bearer {
                    realm: get("realm")?,
                    service: get("service"),
                    scope: get("scope"),
                }),
                _ => None,
            }
        })
        .collect()
}

/// The access a request needs: `repository:NAME:ACTIONS` entries, kept
/// sorted so one set of scopes is one token-cache key.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Scopes(BTreeSet<String>);

impl Scopes {
    /// No scope (the `/v2/` ping, the catalog's own scope comes from its challenge).
    pub fn none() -> Self {
        Scopes::default()
    }

    /// Pull from `repo`.
    pub fn pull(repo: &str) -> Self {
        let mut s = Scopes::default();
        s.0.insert(format!("repository:{repo}:pull"));
        s
    }

    /// Pull and push to `repo`.
    pub fn push(repo: &str) -> Self {
        let mut s = Scopes::default();
        s.0.insert(format!("repository:{repo}:pull,push"));
        s
    }

    /// Delete in `repo` (distribution asks for `*` or `delete`).
    pub fn delete(repo: &str) -> Self {
        let mut s = Scopes::default();
        s.0.insert(format!("repository:{repo}:delete"));
        s
    }

    /// Adds a scope string as the registry wrote it.
    pub fn with(mut self, scope: &str) -> Self {
        // A challenge may hold several space-separated scopes.
        for s in scope.split_whitespace() {
            self.0.insert(s.to_owned());
        }
        self
    }

    /// Adds all of `other`'s scopes.
    pub fn union(mut self, other: &Scopes) -> Self {
        self.0.extend(other.0.iter().cloned());
        self
    }

    /// The scopes, for the token request's `scope` parameters.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// The token-cache key.
    pub(crate) fn key(&self) -> String {
        self.0.iter().cloned().collect::<Vec<_>>().join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_challenge_is_read() {
        let c = parse_challenges([
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        ]);
        assert_eq!(
            c,
            vec![Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/alpine:pull".into()),
            }]
        );
        let c = parse_challenges([
            r#"Basic realm="Registry Realm", Bearer realm="http://a/t", scope="x:y:pull,push""#,
        ]);
        assert_eq!(
            c,
            vec![
                Challenge::Basic,
                Challenge::Bearer {
                    realm: "http://a/t".into(),
                    service: None,
                    scope: Some("x:y:pull,push".into()),
                }
            ]
        );
        let c = parse_challenges(["Negotiate abc", r#"basic realm="r""#]);
        assert_eq!(c, vec![Challenge::Basic]);
        assert!(parse_challenges([r#"Bearer service="s""#]).is_empty());
        let c = parse_challenges([r#"Bearer realm="a\"b""#]);
        assert!(matches!(&c[0], Challenge::Bearer { realm, .. } if realm == "a\"b"));
    }

    #[test]
    fn scopes_key_is_order_free() {
        let a = Scopes::push("a").union(&Scopes::pull("b"));
        let b = Scopes::pull("b").union(&Scopes::push("a"));
        assert_eq!(a.key(), b.key());
        assert_eq!(Scopes::none().with("x y").iter().count(), 2);
    }

    #[test]
    fn debug_hides_the_password() {
        let c = Credentials::new("me", "s3cret");
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
