//! The client's errors: each names the registry (and the repository when
//! there is one) and keeps the registry's own error codes and messages.

use std::path::PathBuf;

/// One entry of a registry's distribution-spec error body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryError {
    /// The code (`MANIFEST_UNKNOWN`, `DENIED`, …).
    pub code: String,
    /// The registry's message.
    pub message: String,
}

/// What went wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No answer: connection refused, DNS, TLS, timeout, a body cut short.
    #[error("registry {registry}{} is unreachable: {reason}", repo_part(.repository))]
    Unreachable {
        /// The registry (host, or base URL when given one).
        registry: String,
        /// The repository, when the request was about one.
        repository: Option<String>,
        /// What failed.
        reason: String,
    },
    /// The registry answered with an error status.
    #[error("registry {registry}{} answered {status}{}{}", repo_part(.repository), describe(.errors), hint(*.status))]
    Status {
        /// The registry.
        registry: String,
        /// The repository, when the request was about one.
        repository: Option<String>,
        /// The HTTP status.
        status: u16,
        /// Its distribution-spec errors, if it sent any.
        errors: Vec<RegistryError>,
    },
    /// The registry's answer is not acceptable: content that does not match
    /// its digest or size, a manifest over the limit, a media type that
    /// contradicts `Content-Type`, a token server answering garbage.
    #[error("registry {registry}{} sent invalid data: {reason}", repo_part(.repository))]
    Invalid {
        /// The registry.
        registry: String,
        /// The repository, when the request was about one.
        repository: Option<String>,
        /// The distribution-spec code that fits (`DIGEST_INVALID`, `SIZE_INVALID`,
        /// `MANIFEST_INVALID`, `UNAUTHORIZED`, …).
        code: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// Docker's `config.json` or a credential helper failed.
    #[error("credentials for {registry}: {reason}")]
    Credentials {
        /// The registry.
        registry: String,
        /// What failed, naming the file or helper.
        reason: String,
    },
    /// A local file (the blob's destination, certs.d, config.json) failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A bad argument from the caller (a URL that is not one, …).
    #[error("{0}")]
    Usage(String),
}

/// The client's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn repo_part(repo: &Option<String>) -> String {
    repo.as_ref()
        .map(|r| format!(" (repository {r})"))
        .unwrap_or_default()
}

fn hint(status: u16) -> &'static str {
    match status {
        401 => " (log in with `hoist login`, or check the user and password)",
        403 => " (the credentials lack access to this repository)",
        _ => "",
    }
}

fn describe(errors: &[RegistryError]) -> String {
    errors
        .iter()
        .map(|e| format!(": {} {}", e.code, e.message))
        .collect::<Vec<_>>()
        .join(";")
}

impl Error {
    /// True when the registry is down or overloaded (no answer, 5xx, 429).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Unreachable { .. } => true,
            Error::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// True when the registry says the thing does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Status { status: 404, .. })
    }

    /// The HTTP status, when the registry answered with an error one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The first distribution-spec code: the registry's, or ours for invalid data.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Status { errors, .. } => errors.first().map(|e| e.code.as_str()),
            Error::Invalid { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// An error with its causes ("error sending request: connection refused").
pub fn error_chain(e: &dyn std::error::Error) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_registry_repository_and_codes() {
        let e = Error::Status {
            registry: "r.example".into(),
            repository: Some("lib/app".into()),
            status: 404,
            errors: vec![RegistryError {
                code: "MANIFEST_UNKNOWN".into(),
                message: "manifest unknown".into(),
            }],
        };
        assert_eq!(
            e.to_string(),
            "registry r.example (repository lib/app) answered 404: MANIFEST_UNKNOWN manifest unknown"
        );
        assert!(e.is_not_found() && !e.is_unavailable());
        assert_eq!(e.code(), Some("MANIFEST_UNKNOWN"));
    }
}
