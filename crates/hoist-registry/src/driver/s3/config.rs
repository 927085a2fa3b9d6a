//! Where and how to reach an S3-compatible bucket.

use crate::error::{Result, StorageError};
use std::fmt;
use std::path::PathBuf;

/// Where and how to reach an S3-compatible bucket.
#[derive(Clone)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// The service's URL (`http://127.0.0.1:9000`); `None` for AWS itself.
    pub endpoint: Option<String>,
    /// The region (`us-east-1` for most S3-compatible servers).
    pub region: String,
    /// The root directory inside the bucket (distribution's `rootdirectory`); may be empty.
    pub prefix: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// A session token, for temporary credentials.
    pub session_token: Option<String>,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret: configs end up in logs.
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)?;
        if let Some(e) = &self.endpoint {
            write!(f, " at {e}")?;
        }
        Ok(())
    }
}

impl S3Config {
    /// A config whose credentials come from `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` and (optionally) `AWS_SESSION_TOKEN`.
    pub fn from_env(
        bucket: &str,
        endpoint: Option<&str>,
        region: &str,
        prefix: &str,
    ) -> Result<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let (Some(access_key_id), Some(secret_access_key)) =
            (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
        else {
            return Err(StorageError::MissingCredentials.into());
        };
        Ok(S3Config {
            bucket: bucket.to_owned(),
            endpoint: endpoint.map(str::to_owned),
            region: region.to_owned(),
            prefix: prefix.to_owned(),
            access_key_id,
            secret_access_key,
            session_token: var("AWS_SESSION_TOKEN"),
        })
    }

    /// The prefix as a relative path; refuses empty, `.` and `..` components.
    pub(super) fn prefix_path(&self) -> Result<PathBuf> {
        let trimmed = self.prefix.trim_matches('/');
        let mut p = PathBuf::new();
        if trimmed.is_empty() {
            return Ok(p);
        }
        for c in trimmed.split('/') {
            if c.is_empty() || c == "." || c == ".." || c.contains('\\') {
                return Err(StorageError::BadPrefix(self.prefix.clone()).into());
            }
            p.push(c);
        }
        Ok(p)
    }
}
