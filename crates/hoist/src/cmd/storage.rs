//! The storage flags that `hoist serve` and `hoist registry gc` share: the
//! filesystem under `--root` or `HOIST_REGISTRY_ROOT` (the default), or an
//! S3 bucket.

use super::Error;
use hoist_registry::builder::refuse_image_store;
use hoist_registry::{S3Config, StorageConfig};
use std::path::{Path, PathBuf};

/// Where the registry's data lives.
#[derive(clap::Args)]
pub struct StorageArgs {
    /// The registry's directory (distribution's storage.filesystem.rootdirectory,
    /// holding docker/registry/v2); not the image store, so never HOIST_ROOT.
    #[arg(long, value_name = "DIR", env = "HOIST_REGISTRY_ROOT")]
    root: Option<PathBuf>,
    /// Where the registry's data lives: `filesystem` (under --root) or `s3`
    /// (a bucket; credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)
    /// [default: filesystem].
    #[arg(long, value_enum)]
    storage: Option<Storage>,
    /// S3 bucket (with --storage s3).
    #[arg(long, value_name = "BUCKET")]
    s3_bucket: Option<String>,
    /// S3 endpoint URL, e.g. http://127.0.0.1:9000 (default: AWS).
    #[arg(long, value_name = "URL")]
    s3_endpoint: Option<String>,
    /// S3 region.
    #[arg(long, value_name = "REGION", default_value = "us-east-1")]
    s3_region: String,
    /// Root directory inside the bucket (distribution's s3 `rootdirectory`).
    #[arg(long, value_name = "PREFIX", default_value = "")]
    s3_prefix: String,
}

/// The storage drivers on offer.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Storage {
    /// A directory in distribution's layout (--root).
    Filesystem,
    /// An S3-compatible bucket in distribution's layout.
    S3,
}

impl StorageArgs {
    /// Whether the command line or environment names a storage (`--storage`,
    /// `--root` or `HOIST_REGISTRY_ROOT`), which then wins over a config file's.
    pub fn given(&self) -> bool {
        self.storage.is_some() || self.root.is_some()
    }

    /// The storage the flags name; `command` prefixes the errors. Without
    /// `--root` or `HOIST_REGISTRY_ROOT` the filesystem storage is `default`,
    /// or an error when there is none. A hoist image store is refused.
    pub fn config(&self, command: &str, default: Option<&Path>) -> Result<StorageConfig, Error> {
        let s3_flag = [
            ("--s3-bucket", self.s3_bucket.is_some()),
            ("--s3-endpoint", self.s3_endpoint.is_some()),
            ("--s3-prefix", !self.s3_prefix.is_empty()),
        ]
        .into_iter()
        .find(|(_, given)| *given);
        match self.storage.unwrap_or(Storage::Filesystem) {
            Storage::Filesystem => {
                if let Some((flag, _)) = s3_flag {
                    return Err(Error::Msg(format!(
                        "{command}: {flag} needs --storage s3 (the default storage is the filesystem under --root)"
                    )));
                }
                let root = match (&self.root, default) {
                    (Some(r), _) => r.clone(),
                    (None, Some(d)) => d.to_owned(),
                    (None, None) => {
                        return Err(Error::Msg(format!(
                            "{command} needs --root DIR (or HOIST_REGISTRY_ROOT): the registry's \
                             storage directory (distribution's storage.filesystem.rootdirectory, \
                             holding docker/registry/v2); HOIST_ROOT names the image store, a \
                             different layout"
                        )))
                    }
                };
                refuse_image_store(&root).map_err(|e| Error::Msg(format!("{command}: {e}")))?;
                Ok(StorageConfig::Filesystem(root))
            }
            Storage::S3 => {
                let Some(bucket) = self.s3_bucket.as_deref().filter(|b| !b.is_empty()) else {
                    return Err(Error::Msg(format!(
                        "{command} --storage s3 needs --s3-bucket BUCKET"
                    )));
                };
                let cfg = S3Config::from_env(
                    bucket,
                    self.s3_endpoint.as_deref(),
                    &self.s3_region,
                    &self.s3_prefix,
                )
                .map_err(|e| Error::Msg(format!("{command}: {e}")))?;
                Ok(StorageConfig::S3(cfg))
            }
        }
    }
}
