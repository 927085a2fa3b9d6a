//! `hoist system df`: disk usage of images and layers, like `docker system df`.
//!
//! Sizes are blob bytes on disk (compressed layers as stored, configs and
//! manifests), each blob counted once: the real disk usage. ACTIVE counts
//! tagged images (hoist has no containers yet), and RECLAIMABLE is what
//! `hoist image prune` would free.

use super::{Context, Error, Format};
use crate::output::{ago, human_size, table};
use crate::resolve::familiar;
use hoist_oci::Reference;
use hoist_store::{ImageUsage, UsageSummary};
use std::process::ExitCode;

/// Arguments of `hoist system df`.
#[derive(clap::Args)]
pub struct Args {
    /// Show detailed information on space usage (per image and per layer).
    #[arg(short, long)]
    verbose: bool,
    /// Output format: table or json.
    #[arg(long, default_value = "table")]
    format: Format,
}

/// Docker's RECLAIMABLE cell: `1.2MB (40%)`, the percentage truncated as Docker does.
fn reclaimable(s: &UsageSummary) -> String {
    if s.size == 0 {
        return human_size(s.reclaimable);
    }
    let pct = (s.reclaimable as u128 * 100 / s.size as u128) as u64;
    format!("{} ({pct}%)", human_size(s.reclaimable))
}

/// One row per tag (a dangling image gets one `<none>` row), as `docker system df -v`.
fn image_rows(u: &ImageUsage) -> Vec<(String, String)> {
    if u.image.tags.is_empty() {
        return vec![("<none>".into(), "<none>".into())];
    }
    u.image
        .tags
        .iter()
        .map(|t| match Reference::parse(t) {
            Ok(r) => (r.familiar_name(), r.tag().unwrap_or("<none>").to_owned()),
            Err(_) => (familiar(t), "<none>".into()),
        })
        .collect()
}

/// Runs `hoist system df`.
pub fn run(ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    let store = ctx.store_read()?;
    let usage = store.usage()?;
    let summaries = [
        ("Images", &usage.images_summary),
        ("Layers", &usage.layers_summary),
        ("Unreferenced blobs", &usage.unreferenced_summary),
    ];
    match (args.format, args.verbose) {
        (Format::Json, false) => {
            for (kind, s) in summaries {
                let v = serde_json::json!({
                    "Type": kind,
                    "TotalCount": s.total.to_string(),
                    "Active": s.active.to_string(),
                    "Size": human_size(s.size),
                    "Reclaimable": reclaimable(s),
                    "SizeBytes": s.size,
                    "ReclaimableBytes": s.reclaimable,
                });
                println!("{v}");
            }
        }
        (Format::Json, true) => {
            let mut images = Vec::new();
            for u in &usage.images {
                for (repo, tag) in image_rows(u) {
                    images.push(serde_json::json!({
                        "Repository": repo,
                        "Tag": tag,
                        "ID": u.image.id.to_string(),
                        "CreatedAt": u.image.created.clone().unwrap_or_default(),
                        "Size": human_size(u.size),
                        "SharedSize": human_size(u.shared),
                        "UniqueSize": human_size(u.unique),
                        "SizeBytes": u.size,
                        "SharedSizeBytes": u.shared,
                        "UniqueSizeBytes": u.unique,
                    }));
                }
            }
            let layers: Vec<_> = usage
                .layers
                .iter()
                .map(|l| {
                    serde_json::json!({
                        "ChainID": l.chain_id.to_string(),
                        "DiffID": l.diff_id.to_string(),
                        "Size": human_size(l.size),
                        "SizeBytes": l.size,
                        "Images": l.images,
                        "TaggedImages": l.tagged_images,
                    })
                })
                .collect();
            let s = &usage.unreferenced_summary;
            let v = serde_json::json!({
                "Images": images,
                "Layers": layers,
                "Unreferenced": {"Count": s.total, "SizeBytes": s.size},
                "PartialPulls": usage.partials.iter().map(|p| serde_json::json!({
                    "Digest": p.digest.to_string(), "Offset": p.offset, "SizeBytes": p.size,
                })).collect::<Vec<_>>(),
            });
            println!("{v}");
        }
        (Format::Table, false) => {
            let rows: Vec<Vec<String>> = summaries
                .iter()
                .map(|(kind, s)| {
                    vec![
                        (*kind).to_owned(),
                        s.total.to_string(),
                        s.active.to_string(),
                        human_size(s.size),
                        reclaimable(s),
                    ]
                })
                .collect();
            table(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], &rows);
        }
        (Format::Table, true) => {
            println!("Images space usage:\n");
            let mut rows = Vec::new();
            for u in &usage.images {
                for (repo, tag) in image_rows(u) {
                    rows.push(vec![
                        repo,
                        tag,
                        u.image.id.short().to_owned(),
                        ago(u.image.created.as_deref()),
                        human_size(u.size),
                        human_size(u.shared),
                        human_size(u.unique),
                    ]);
                }
            }
            table(
                &[
                    "REPOSITORY",
                    "TAG",
                    "IMAGE ID",
                    "CREATED",
                    "SIZE",
                    "SHARED SIZE",
                    "UNIQUE SIZE",
                ],
                &rows,
            );
            println!("\nLayers space usage:\n");
            let rows: Vec<Vec<String>> = usage
                .layers
                .iter()
                .map(|l| {
                    vec![
                        l.chain_id.short().to_owned(),
                        l.diff_id.short().to_owned(),
                        human_size(l.size),
                        l.images.to_string(),
                    ]
                })
                .collect();
            table(&["CHAIN ID", "DIFF ID", "SIZE", "IMAGES"], &rows);
            let s = &usage.unreferenced_summary;
            if s.total > 0 {
                println!(
                    "\nUnreferenced blobs and leftovers: {} ({}); `hoist image prune` removes them",
                    s.total,
                    human_size(s.size)
                );
            }
            for p in &usage.partials {
                println!(
                    "Partial pull kept to resume: {} ({} received); `hoist image prune` removes it",
                    p.digest,
                    human_size(p.offset)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
