//! Docker-style image references: `nginx` is `docker.io/library/nginx:latest`,
//! `host:port/a/b:tag@sha256:…` keeps every part.

use crate::Digest;
use std::fmt;
use std::str::FromStr;

/// The registry Docker assumes when a reference names none.
pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DOMAIN: &str = "index.docker.io";
const OFFICIAL_PREFIX: &str = "library/";
const MAX_NAME_LEN: usize = 255;

/// Why a string is not an image reference; each names the wrong part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// Nothing to parse.
    #[error("invalid reference: empty")]
    Empty,
    /// A repository path component breaks the grammar.
    #[error("invalid reference {0:?}: repository component {1:?} must be lowercase letters, digits and separators (., _, __, -), starting and ending with a letter or digit")]
    BadComponent(String, String),
    /// The registry host part is malformed.
    #[error("invalid reference {0:?}: registry host {1:?} is not a valid host[:port]")]
    BadDomain(String, String),
    /// The tag part breaks the grammar.
    #[error("invalid reference {0:?}: tag {1:?} must be 1-128 of [A-Za-z0-9_.-], not starting with . or -")]
    BadTag(String, String),
    /// The digest part is malformed.
    #[error("invalid reference {0:?}: {1}")]
    BadDigest(String, crate::DigestError),
    /// The repository name is over 255 characters.
    #[error("invalid reference {0:?}: repository name longer than 255 characters")]
    TooLong(String),
}

/// A parsed, normalised image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// True for one repository path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
pub fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// True for a tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        // IPv6 literal: [addr]:port
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        if addr.is_empty() || !addr.bytes().all(|x| x.is_ascii_hexdigit() || x == b':') {
            return false;
        }
        match after.strip_prefix(':') {
            Some(p) => ("x", Some(p)),
            None if after.is_empty() => ("x", None),
            None => return false,
        }
    } else {
        match d.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|x| x.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
        })
}

impl Reference {
    /// Parses and normalises a reference as Docker does.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (
                r,
                Some(
                    d.parse::<Digest>()
                        .map_err(|e| ReferenceError::BadDigest(s.to_owned(), e))?,
                ),
            ),
            None => (s, None),
        };
        // A tag follows the last ':' only if no '/' comes after it (else it is a port).
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(ReferenceError::BadTag(s.to_owned(), t.to_owned()));
            }
        }
        if name.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                if !valid_domain(first) {
                    return Err(ReferenceError::BadDomain(s.to_owned(), first.to_owned()));
                }
                (first.to_owned(), remainder.to_owned())
            }
            _ => (DEFAULT_DOMAIN.to_owned(), name.to_owned()),
        };
        let domain = if domain == LEGACY_DOMAIN {
            DEFAULT_DOMAIN.to_owned()
        } else {
            domain
        };
        for c in path.split('/') {
            if !valid_component(c) {
                return Err(ReferenceError::BadComponent(s.to_owned(), c.to_owned()));
            }
        }
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("{OFFICIAL_PREFIX}{path}")
        } else {
            path
        };
        if domain.len() + 1 + path.len() > MAX_NAME_LEN {
            return Err(ReferenceError::TooLong(s.to_owned()));
        }
        Ok(Reference {
            domain,
            path,
            tag: tag.map(str::to_owned),
            digest,
        })
    }

    /// Adds `:latest` when the reference has neither tag nor digest.
    pub fn with_default_tag(mut self) -> Self {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some("latest".to_owned());
        }
        self
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Self {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(tag.to_owned()),
            digest: None,
        }
    }

    /// The registry host, e.g. `docker.io`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path within the registry, e.g. `library/nginx`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The full repository name, `domain/path`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The repository as Docker shows it: `nginx`, `user/app`, `host:5000/app`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path
                .strip_prefix(OFFICIAL_PREFIX)
                .filter(|p| !p.contains('/'))
                .unwrap_or(&self.path)
                .to_owned()
        } else {
            self.name()
        }
    }

    /// The whole reference as Docker shows it, e.g. `nginx:latest`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_docker() {
        let r = Reference::parse("nginx").unwrap().with_default_tag();
        assert_eq!(r.to_string(), "docker.io/library/nginx:latest");
        assert_eq!(r.familiar(), "nginx:latest");
        let r = Reference::parse("user/app:1.0").unwrap();
        assert_eq!(r.to_string(), "docker.io/user/app:1.0");
        assert_eq!(r.familiar(), "user/app:1.0");
        let r = Reference::parse("index.docker.io/library/busybox").unwrap();
        assert_eq!(r.familiar_name(), "busybox");
        let r = Reference::parse("localhost/app").unwrap();
        assert_eq!(r.domain(), "localhost");
    }

    #[test]
    fn keeps_port_tag_and_digest() {
        let d = format!("sha256:{}", "b".repeat(64));
        let r = Reference::parse(&format!("host:5000/a/b:v1@{d}")).unwrap();
        assert_eq!(r.domain(), "host:5000");
        assert_eq!(r.path(), "a/b");
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.digest().unwrap().to_string(), d);
        let r = Reference::parse("host:5000/a").unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.familiar(), "host:5000/a");
    }

    #[test]
    fn rejects_bad_parts_naming_them() {
        let e = Reference::parse("Nginx").unwrap_err();
        assert!(
            matches!(e, ReferenceError::BadComponent(_, ref c) if c == "Nginx"),
            "{e}"
        );
        let e = Reference::parse("nginx:-bad").unwrap_err();
        assert!(matches!(e, ReferenceError::BadTag(..)), "{e}");
        let e = Reference::parse("nginx@sha256:1234").unwrap_err();
        assert!(matches!(e, ReferenceError::BadDigest(..)), "{e}");
        assert!(Reference::parse("a//b").is_err());
        assert!(Reference::parse("../etc").is_err());
        assert!(Reference::parse("host:port/x").is_err());
        assert!(Reference::parse("").is_err());
        assert!(Reference::parse(&"a".repeat(300)).is_err());
        assert!(Reference::parse("a__b-c.d--e").is_ok());
        assert!(Reference::parse("a___b").is_err());
    }
}
