//! `hoist catalog REGISTRY`: the repositories a registry lists (`/v2/_catalog`).

use super::remote::{print_json, print_lines, registry_error, RemoteOpts};
use super::{Context, Error, Format};
use std::process::ExitCode;

/// Arguments of `hoist catalog`.
#[derive(clap::Args)]
pub struct Args {
    /// `table` (one repository a line, the default) or `json` (`{"Registry", "Repositories"}`).
    #[arg(long, default_value = "table")]
    format: Format,
    #[command(flatten)]
    remote: RemoteOpts,
    /// The registry: HOST[:PORT] (a `docker://` prefix is allowed).
    registry: String,
}

/// Runs `hoist catalog`.
pub fn run(_ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    let registry = args
        .registry
        .trim_start_matches("docker://")
        .trim_end_matches('/');
    if registry.is_empty() || registry.contains('/') {
        return Err(Error::Msg(format!(
            "{:?}: catalog takes a registry HOST[:PORT], not a repository",
            args.registry
        )));
    }
    let client = args.remote.client(registry)?;
    let repos = client.catalog(None).map_err(registry_error)?;
    match args.format {
        Format::Json => {
            print_json(&serde_json::json!({ "Registry": registry, "Repositories": repos }))?
        }
        Format::Table => print_lines(&repos)?,
    }
    Ok(ExitCode::SUCCESS)
}
