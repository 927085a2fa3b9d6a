//! `hoist delete docker://REF`: deletes the manifest a reference names (a
//! tag is resolved to its digest first, as `skopeo delete` does).

use super::remote::{manifest_ref, parse_docker, registry_error, RemoteOpts};
use super::{Context, Error};
use std::process::ExitCode;

/// Arguments of `hoist delete`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    remote: RemoteOpts,
    /// The image: docker://REGISTRY/REPOSITORY[:TAG|@DIGEST].
    reference: String,
}

/// Runs `hoist delete`.
pub fn run(_ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    let r = parse_docker(&args.reference, false)?;
    let client = args.remote.client(r.domain())?;
    let digest = match r.digest() {
        Some(d) => d.clone(),
        None => {
            client
                .head_manifest(r.path(), &manifest_ref(&r))
                .map_err(registry_error)?
                .ok_or_else(|| {
                    Error::Msg(format!("{r}: no such manifest in {}", client.registry()))
                })?
                .digest
        }
    };
    client
        .delete_manifest(r.path(), &digest)
        .map_err(registry_error)?;
    Ok(ExitCode::SUCCESS)
}
