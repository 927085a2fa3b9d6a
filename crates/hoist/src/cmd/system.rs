//! `hoist system …`: store-wide commands (`hoist system df`).

use super::{df, Context, Error};
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
}

/// Runs `hoist system SUBCOMMAND`.
pub fn run(ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    match args.command {
        SystemCommand::Df(a) => df::run(ctx, a),
    }
}
