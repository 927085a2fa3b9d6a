//! `hoist list-tags docker://REGISTRY/REPOSITORY`, as `skopeo list-tags`.

use super::remote::{parse_docker, print_json, print_lines, registry_error, RemoteOpts};
use super::{Context, Error, Format};
use std::process::ExitCode;

/// Arguments of `hoist list-tags`.
#[derive(clap::Args)]
pub struct Args {
    /// `json` (skopeo's `{"Repository", "Tags"}`, the default) or `table` (one tag a line).
    #[arg(long, default_value = "json")]
    format: Format,
    #[command(flatten)]
    remote: RemoteOpts,
    /// The repository: docker://REGISTRY/REPOSITORY.
    repository: String,
}

/// Runs `hoist list-tags`.
pub fn run(_ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    let r = parse_docker(&args.repository, false)?;
    if r.tag().is_some() || r.digest().is_some() {
        return Err(Error::Msg(format!(
            "{}: list-tags takes a repository without a tag or digest",
            args.repository
        )));
    }
    let client = args.remote.client(r.domain())?;
    let tags = client.list_tags(r.path(), None).map_err(registry_error)?;
    match args.format {
        Format::Json => print_json(&serde_json::json!({ "Repository": r.name(), "Tags": tags }))?,
        Format::Table => print_lines(&tags)?,
    }
    Ok(ExitCode::SUCCESS)
}
