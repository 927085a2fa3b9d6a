//! `hoist digest REF`: the digest of the manifest (or index) a registry
//! reference names, as `crane digest` prints it.

use super::remote::{
    manifest_ref, parse_docker, print_json, print_lines, registry_error, RemoteOpts,
};
use super::{Context, Error, Format};
use std::process::ExitCode;

/// Arguments of `hoist digest`.
#[derive(clap::Args)]
pub struct Args {
    /// `table` (the digest alone, the default) or `json` (digest, media type, size).
    #[arg(long, default_value = "table")]
    format: Format,
    #[command(flatten)]
    remote: RemoteOpts,
    /// The image: [docker://]REGISTRY/REPOSITORY[:TAG|@DIGEST].
    reference: String,
}

/// Runs `hoist digest`.
pub fn run(_ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    let r = parse_docker(&args.reference, true)?;
    let client = args.remote.client(r.domain())?;
    let reference = manifest_ref(&r);
    let d = client
        .head_manifest(r.path(), &reference)
        .map_err(registry_error)?
        .ok_or_else(|| Error::Msg(format!("{}: no such manifest in {}", r, client.registry())))?;
    match args.format {
        Format::Json => print_json(&serde_json::json!({
            "Digest": d.digest.to_string(), "MediaType": d.media_type, "Size": d.size,
        }))?,
        Format::Table => print_lines([d.digest.to_string()])?,
    }
    Ok(ExitCode::SUCCESS)
}
