//! The storage flags that `hoist serve` and `hoist registry gc` share: the
//! filesystem under the global `--root` (the default), or an S3 bucket.

use super::{Context, Error};
use hoist_registry::{S3Config, StorageConfig};

/// Where the registry's data lives.
#[derive(clap::Args)]
pub struct StorageArgs {
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
    /// Whether the command line names a storage (`--storage` or `--root`),
    /// which then wins over a config file's.
    pub fn given(&self, ctx: &Context) -> bool {
        self.storage.is_some() || ctx.root_given
    }

    /// The storage the flags name; `command` prefixes the errors.
    pub fn config(&self, ctx: &Context, command: &str) -> Result<StorageConfig, Error> {
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
                Ok(StorageConfig::Filesystem(
                    ctx.registry_root(command)?.to_owned(),
                ))
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
