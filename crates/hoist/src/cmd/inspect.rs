//! `hoist inspect`: an image's config and store metadata as JSON, like `docker image inspect`.

use super::{Context, Error};
use crate::resolve::{self, familiar};
use hoist_oci::Config;
use std::process::ExitCode;

/// Arguments of `hoist inspect`.
#[derive(clap::Args)]
pub struct Args {
    /// Output format (json is the only one; accepted for uniformity).
    #[arg(long, default_value = "json", value_parser = ["json"])]
    format: String,
    /// Images, by reference or ID.
    #[arg(required = true)]
    images: Vec<String>,
    #[command(flatten)]
    remote: super::inspect_remote::Flags,
}

/// Runs `hoist inspect`.
pub fn run(ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    if args.images.iter().any(|i| i.starts_with("docker://")) {
        return super::inspect_remote::run(&args.images, &args.remote);
    }
    let store = ctx.store()?;
    let mut out = Vec::new();
    let mut failed = false;
    for name in &args.images {
        let r = match resolve::image(&store, name) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("Error: {e}");
                failed = true;
                continue;
            }
        };
        let img = r.image;
        let raw = store.read_blob(&img.id, hoist_transport::MAX_JSON)?;
        let parsed =
            Config::parse(&raw).map_err(|e| Error::Msg(format!("config {}: {e}", img.id)))?;
        let full: serde_json::Value = serde_json::from_slice(&raw)
            .map_err(|e| Error::Msg(format!("config {}: {e}", img.id)))?;
        out.push(serde_json::json!({
            "Id": img.id.to_string(),
            "RepoTags": img.tags.iter().map(|t| familiar(t)).collect::<Vec<_>>(),
            "RepoDigests": [],
            "Parent": "",
            "Comment": parsed.history.last().and_then(|h| h.comment.clone()).unwrap_or_default(),
            "Created": parsed.created,
            "Author": parsed.author.clone().unwrap_or_default(),
            "Config": full.get("config").cloned().unwrap_or(serde_json::Value::Null),
            "Architecture": parsed.architecture,
            "Variant": parsed.variant,
            "Os": parsed.os,
            "Size": img.size(),
            "RootFS": {
                "Type": "layers",
                "Layers": parsed.rootfs.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            },
            "Manifest": {
                "Digest": img.manifest.to_string(),
                "MediaType": img.manifest_media_type,
            },
            "Layers": img.layers.iter().map(|l| serde_json::json!({
                "ChainID": l.layer.chain_id.to_string(),
                "DiffID": l.layer.diff_id.to_string(),
                "Digest": l.blob.to_string(),
                "MediaType": l.media_type,
                "Size": l.blob_size,
                "UncompressedSize": l.layer.size,
            })).collect::<Vec<_>>(),
        }));
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&out).map_err(|e| Error::Msg(e.to_string()))?
    );
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
