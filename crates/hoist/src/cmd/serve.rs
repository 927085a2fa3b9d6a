//! `hoist serve`: an OCI distribution registry on a directory laid out as
//! the CNCF distribution registry lays out its `rootdirectory`, or on an S3
//! bucket holding the same layout.

use super::storage::StorageArgs;
use super::{Context, Error};
use hoist_registry::ServerConfig;
use std::process::ExitCode;

/// Arguments of `hoist serve`. The directory is the global `--root`
/// (distribution's `storage.filesystem.rootdirectory`) unless `--storage s3`.
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
    #[command(flatten)]
    storage: StorageArgs,
}

/// Runs `hoist serve` until SIGINT or SIGTERM.
pub fn run(ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    let mut cfg = ServerConfig::with_storage(args.storage.config(ctx, "hoist serve")?);
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
