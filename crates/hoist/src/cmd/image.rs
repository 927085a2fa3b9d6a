//! `hoist image …`: Docker's management-command spelling of the image
//! commands (`hoist image ls` = `hoist images`, …) plus `hoist image prune`.

use super::{history, images, import, inspect, load, prune, rmi, save, tag, Context, Error};
use std::process::ExitCode;

/// Arguments of `hoist image`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: ImageCommand,
}

/// The `hoist image` subcommands.
#[derive(clap::Subcommand)]
enum ImageCommand {
    /// List images.
    #[command(visible_alias = "list")]
    Ls(images::Args),
    /// Remove images.
    #[command(visible_aliases = ["remove", "rmi"])]
    Rm(rmi::Args),
    /// Show low-level information on images.
    Inspect(inspect::Args),
    /// Show the history of an image.
    History(history::Args),
    /// Create a tag TARGET that refers to SOURCE.
    Tag(tag::Args),
    /// Load images from a docker save or OCI archive.
    Load(load::Args),
    /// Save images to a docker save or OCI archive.
    Save(save::Args),
    /// Import a rootfs tarball as a one-layer image.
    Import(import::Args),
    /// Remove dangling images (or all with -a) and unreferenced blobs.
    Prune(prune::Args),
}

/// Runs `hoist image SUBCOMMAND`.
pub fn run(ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    match args.command {
        ImageCommand::Ls(a) => images::run(ctx, a),
        ImageCommand::Rm(a) => rmi::run(ctx, a),
        ImageCommand::Inspect(a) => inspect::run(ctx, a),
        ImageCommand::History(a) => history::run(ctx, a),
        ImageCommand::Tag(a) => tag::run(ctx, a),
        ImageCommand::Load(a) => load::run(ctx, a),
        ImageCommand::Save(a) => save::run(ctx, a),
        ImageCommand::Import(a) => import::run(ctx, a),
        ImageCommand::Prune(a) => prune::run(ctx, a),
    }
}
