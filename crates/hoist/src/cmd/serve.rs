//! `hoist serve`: an OCI distribution registry on a directory laid out as
//! the CNCF distribution registry lays out its `rootdirectory`.

use super::{Context, Error};
use hoist_registry::{S3Config, ServerConfig, StorageConfig};
use std::process::ExitCode;

/// Arguments of `hoist serve`. The directory is the global `--root`
/// (distribution's `storage.filesystem.rootdirectory`).
#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:5000")]
    addr: String,
    /// Refuse every push and delete.
    #[arg(long)]
    read_only: bool,
    /// Refuse deletes of manifests, tags and blobs (pushes still work).
    #[arg(long)]
    no_delete: bool,
    /// Mount blobs across repositories only when the client names `from`.
    #[arg(long)]
    no_auto_mount: bool,
    /// Where the registry's data lives: `filesystem` (under --root) or `s3`
    /// (a bucket; credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY).
    #[arg(long, value_enum, default_value = "filesystem")]
    storage: Storage,
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

/// The storage drivers `hoist serve` offers.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Storage {
    /// A directory in distribution's layout (--root).
    Filesystem,
    /// An S3-compatible bucket in distribution's layout.
    S3,
}

fn storage(ctx: &Context, args: &Args) -> Result<StorageConfig, Error> {
    let s3_flag = [
        ("--s3-bucket", args.s3_bucket.is_some()),
        ("--s3-endpoint", args.s3_endpoint.is_some()),
        ("--s3-prefix", !args.s3_prefix.is_empty()),
    ]
    .into_iter()
    .find(|(_, given)| *given);
    match args.storage {
        Storage::Filesystem => {
            if let Some((flag, _)) = s3_flag {
                return Err(Error::Msg(format!(
                    "hoist serve: {flag} needs --storage s3 (the default storage is the filesystem under --root)"
                )));
            }
            Ok(StorageConfig::Filesystem(
                ctx.registry_root("hoist serve")?.to_owned(),
            ))
        }
        Storage::S3 => {
            let Some(bucket) = args.s3_bucket.as_deref().filter(|b| !b.is_empty()) else {
                return Err(Error::Msg(
                    "hoist serve --storage s3 needs --s3-bucket BUCKET".into(),
                ));
            };
            let cfg = S3Config::from_env(
                bucket,
                args.s3_endpoint.as_deref(),
                &args.s3_region,
                &args.s3_prefix,
            )
            .map_err(|e| Error::Msg(format!("hoist serve: {e}")))?;
            Ok(StorageConfig::S3(cfg))
        }
    }
}

/// Runs `hoist serve` until SIGINT or SIGTERM.
pub fn run(ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    let mut cfg = ServerConfig::with_storage(storage(ctx, &args)?);
    cfg.read_only = args.read_only;
    cfg.delete_enabled = !args.no_delete;
    cfg.auto_mount = !args.no_auto_mount;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Msg(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.addr)
            .await
            .map_err(|e| Error::Msg(format!("cannot listen on {}: {e}", args.addr)))?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::Msg(format!("cannot listen on {}: {e}", args.addr)))?;
        eprintln!(
            "hoist serve: listening on http://{local}, storage {}",
            cfg.storage
        );
        hoist_registry::serve(listener, cfg, hoist_registry::shutdown_signal())
            .await
            .map_err(|e| Error::Msg(format!("registry server failed: {e}")))
    })?;
    eprintln!("hoist serve: stopped");
    Ok(ExitCode::SUCCESS)
}
