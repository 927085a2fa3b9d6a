//! The hoist command line: parses arguments, opens the store, runs one
//! command, prints its result the way Docker would.

mod cmd;
mod docker_progress;
mod output;
mod progress;
mod resolve;
mod template;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// hoist: build, ship, store, use and destroy container images, with no daemon.
#[derive(Parser)]
#[command(name = "hoist", version, about, propagate_version = true)]
struct Cli {
    /// The store directory (default /var/lib/hoist as root, else $XDG_DATA_HOME/hoist);
    /// for `serve` and `registry gc`, the registry directory (HOIST_REGISTRY_ROOT).
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
    /// Manage hoist (df, info, prune).
    System(cmd::system::Args),
    /// Show the hoist version information.
    Version(cmd::version::Args),
    /// Display store-wide information.
    Info(cmd::info::Args),
    /// Download an image from a registry into the store.
    Pull(cmd::pull::Args),
    /// Upload an image of the store to a registry.
    Push(cmd::push::Args),
    /// Copy an image between transports: docker://, oci:, oci-archive:, docker-archive:, store:.
    Copy(cmd::copy::Args),
    /// Check the store: re-hash every blob, check the index; --repair drops what is broken.
    Fsck(cmd::fsck::Args),
    /// Log in to a registry (credentials in Docker's config.json).
    Login(cmd::login::Args),
    /// Log out from a registry.
    Logout(cmd::login::LogoutArgs),
    /// List the tags of a repository in a registry (docker://REGISTRY/REPOSITORY).
    ListTags(cmd::list_tags::Args),
    /// List the repositories of a registry.
    Catalog(cmd::catalog::Args),
    /// Print the manifest digest of an image in a registry.
    Digest(cmd::digest::Args),
    /// Delete an image from a registry (docker://REGISTRY/REPOSITORY:TAG or @DIGEST).
    Delete(cmd::delete::Args),
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
    let matches = Cli::command().get_matches();
    // `serve` and `registry gc` take `--root` as typed, never from HOIST_ROOT
    // (which names the image store, a different layout).
    let root_typed = matches.value_source("root") == Some(ValueSource::CommandLine);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    output::die_quietly_on_closed_stdout();
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
        registry_root: match &cli.root {
            Some(r) if root_typed => Some(r.clone()),
            _ => std::env::var_os("HOIST_REGISTRY_ROOT")
                .filter(|r| !r.is_empty())
                .map(PathBuf::from),
        },
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
        Command::Version(a) => cmd::version::run(a),
        Command::Info(a) => cmd::info::run(&ctx, a),
        Command::Fsck(a) => cmd::fsck::run(&ctx, a),
        Command::Login(a) => cmd::login::run(&ctx, a),
        Command::Logout(a) => cmd::login::run_logout(&ctx, a),
        Command::ListTags(a) => cmd::list_tags::run(&ctx, a),
        Command::Catalog(a) => cmd::catalog::run(&ctx, a),
        Command::Digest(a) => cmd::digest::run(&ctx, a),
        Command::Delete(a) => cmd::delete::run(&ctx, a),
        Command::Copy(a) => cmd::copy::run(&ctx, a),
        Command::Pull(a) => cmd::pull::run(&ctx, a),
        Command::Push(a) => cmd::push::run(&ctx, a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(1)
        }
    }
}
