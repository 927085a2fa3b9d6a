//! `hoist system …`: store-wide commands (`df`, `info`, `prune`).

use super::{df, info, prune, Context, Error};
use std::process::ExitCode;

/// Arguments of `hoist system`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: SystemCommand,
}

/// The `hoist system` subcommands.
#[derive(clap::Subcommand)]
enum SystemCommand {
    /// Show hoist disk usage.
    Df(df::Args),
    /// Display store-wide information (same as `hoist info`).
    Info(info::Args),
    /// Remove dangling images (all unused with -a), unreferenced blobs and leftovers of interrupted loads.
    Prune(prune::Args),
}

/// Runs `hoist system SUBCOMMAND`.
pub fn run(ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    match args.command {
        SystemCommand::Df(a) => df::run(ctx, a),
        SystemCommand::Info(a) => info::run(ctx, a),
        SystemCommand::Prune(a) => prune::run_system(ctx, a),
    }
}
