//! The hoist command line: parses arguments, opens the store, runs one
//! command, prints its result the way Docker would.

mod cmd;
mod output;
mod progress;
mod resolve;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// hoist: build, ship, store, use and destroy container images, with no daemon.
#[derive(Parser)]
#[command(name = "hoist", version, about, propagate_version = true)]
struct Cli {
    /// The store directory (default /var/lib/hoist as root, else $XDG_DATA_HOME/hoist).
    #[arg(long, global = true, env = "HOIST_ROOT")]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load images from a docker save or OCI archive (file or stdin).
    Load(cmd::load::Args),
    /// Save images to a docker save or OCI archive (file or stdout).
    Save(cmd::save::Args),
    /// List images.
    #[command(alias = "ls")]
    Images(cmd::images::Args),
    /// Create a tag TARGET that refers to SOURCE.
    Tag(cmd::tag::Args),
    /// Remove images.
    Rmi(cmd::rmi::Args),
    /// Show low-level information on images.
    Inspect(cmd::inspect::Args),
    /// Serve an OCI registry from --root (distribution's rootdirectory layout) or an S3 bucket.
    Serve(Box<cmd::serve::Args>),
    /// Maintain a registry directory (garbage collection).
    Registry(cmd::registry::Args),
    /// Show the history of an image.
    History(cmd::history::Args),
    /// Import the contents from a tarball to create a filesystem image.
    Import(cmd::import::Args),
    /// Manage images (ls, rm, inspect, history, tag, load, save, import, prune).
    Image(cmd::image::Args),
    /// Manage hoist (df).
    System(cmd::system::Args),
    /// Copy an image between transports: oci:, oci-archive:, docker-archive:, store:.
    Copy(cmd::copy::Args),
    /// Check the store: re-hash every blob, check the index; --repair drops what is broken.
    Fsck(cmd::fsck::Args),
}

/// The store root when none is given.
fn default_root() -> PathBuf {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/hoist");
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("hoist");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".local/share/hoist")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // HOIST_LOG wins; else `hoist serve --config` may set the level.
    let default_filter = match &cli.command {
        Command::Serve(a) => a.log_filter(),
        _ => None,
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HOIST_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(default_filter.as_deref().unwrap_or("warn"))
            }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let ctx = cmd::Context {
        root_given: cli.root.is_some(),
        root: cli.root.unwrap_or_else(default_root),
    };
    let result = match cli.command {
        Command::Load(a) => cmd::load::run(&ctx, a),
        Command::Save(a) => cmd::save::run(&ctx, a),
        Command::Images(a) => cmd::images::run(&ctx, a),
        Command::Tag(a) => cmd::tag::run(&ctx, a),
        Command::Rmi(a) => cmd::rmi::run(&ctx, a),
        Command::Inspect(a) => cmd::inspect::run(&ctx, a),
        Command::Serve(a) => cmd::serve::run(&ctx, *a),
        Command::Registry(a) => cmd::registry::run(&ctx, a),
        Command::History(a) => cmd::history::run(&ctx, a),
        Command::Import(a) => cmd::import::run(&ctx, a),
        Command::Image(a) => cmd::image::run(&ctx, a),
        Command::System(a) => cmd::system::run(&ctx, a),
        Command::Fsck(a) => cmd::fsck::run(&ctx, a),
        Command::Copy(a) => cmd::copy::run(&ctx, a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(1)
        }
    }
}
