//! `hoist system df`: disk usage of images and layers, like `docker system df`.
//!
//! Sizes are blob bytes on disk (compressed layers as stored, configs and
//! manifests), each blob counted once: the real disk usage. ACTIVE counts
//! tagged images (hoist has no containers yet), and RECLAIMABLE is what
//! `hoist image prune` would free.

use super::{Context, Error};
use crate::output::{ago, human_size, Formatter};
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
    /// Format output: table, table TEMPLATE, json, or a Go template (`{{.Type}}: {{.Size}}`).
    #[arg(long, default_value = "")]
    format: String,
}

/// Docker's `docker system df` table.
const DEFAULT_TABLE: &str =
    "table {{.Type}}\\t{{.TotalCount}}\\t{{.Active}}\\t{{.Size}}\\t{{.Reclaimable}}";
/// The images part of `docker system df -v` (hoist has no CONTAINERS column yet).
const VERBOSE_IMAGES: &str = "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.CreatedSince}}\\t{{.Size}}\\t{{.SharedSize}}\\t{{.UniqueSize}}";
/// hoist's layers part of `system df -v`.
const VERBOSE_LAYERS: &str = "table {{.ChainID}}\\t{{.DiffID}}\\t{{.Size}}\\t{{.Images}}";

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
    if args.verbose && args.format == "json" {
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
        return Ok(ExitCode::SUCCESS);
    }
    if args.verbose {
        let mut rows = Vec::new();
        for u in &usage.images {
            for (repo, tag) in image_rows(u) {
                rows.push(serde_json::json!({
                    "Repository": repo,
                    "Tag": tag,
                    "ID": u.image.id.short(),
                    "CreatedSince": ago(u.image.created.as_deref()),
                    "Size": human_size(u.size),
                    "SharedSize": human_size(u.shared),
                    "UniqueSize": human_size(u.unique),
                }));
            }
        }
        let images = Formatter::new("", VERBOSE_IMAGES)?.render(
            &serde_json::json!({
                "Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "CreatedSince": "CREATED",
                "Size": "SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
            }),
            &rows,
        )?;
        let rows: Vec<serde_json::Value> = usage
            .layers
            .iter()
            .map(|l| {
                serde_json::json!({
                    "ChainID": l.chain_id.short(),
                    "DiffID": l.diff_id.short(),
                    "Size": human_size(l.size),
                    "Images": l.images.to_string(),
                })
            })
            .collect();
        let layers = Formatter::new("", VERBOSE_LAYERS)?.render(
            &serde_json::json!({"ChainID": "CHAIN ID", "DiffID": "DIFF ID", "Size": "SIZE", "Images": "IMAGES"}),
            &rows,
        )?;
        print!("Images space usage:\n\n{images}\nLayers space usage:\n\n{layers}");
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
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<serde_json::Value> = summaries
        .iter()
        .map(|(kind, s)| {
            serde_json::json!({
                "Type": kind,
                "TotalCount": s.total.to_string(),
                "Active": s.active.to_string(),
                "Size": human_size(s.size),
                "Reclaimable": reclaimable(s),
                "SizeBytes": s.size,
                "ReclaimableBytes": s.reclaimable,
            })
        })
        .collect();
    Formatter::new(&args.format, DEFAULT_TABLE)?.print(
        &serde_json::json!({
            "Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
            "Reclaimable": "RECLAIMABLE", "SizeBytes": "SIZE (BYTES)", "ReclaimableBytes": "RECLAIMABLE (BYTES)",
        }),
        &rows,
    )?;
    Ok(ExitCode::SUCCESS)
}
