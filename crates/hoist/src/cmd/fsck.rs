//! `hoist fsck [--repair]`: re-hash every blob, check the index against the
//! blobs, print one line per problem with its fix; exit 0 only when clean.

use super::{Context, Error, Format};
use crate::output::human_size;
use crate::resolve::familiar;
use hoist_store::{FsckReport, Problem, RepairReport};
use std::process::ExitCode;

/// Arguments of `hoist fsck`.
#[derive(clap::Args)]
pub struct Args {
    /// Delete corrupt blobs, drop images that use missing or corrupt blobs, and sweep leftovers.
    #[arg(long)]
    repair: bool,
    /// Output format: table (one line per problem) or json.
    #[arg(long, default_value = "table")]
    format: Format,
}

fn problem_json(p: &Problem) -> serde_json::Value {
    serde_json::json!({
        "Kind": p.kind,
        "Subject": p.subject,
        "Detail": p.detail,
        "Fix": p.fix,
        "Message": p.to_string(),
    })
}

fn report_json(r: &FsckReport) -> serde_json::Value {
    serde_json::json!({
        "Clean": r.is_clean(),
        "BlobsChecked": r.blobs_checked,
        "BytesChecked": r.bytes_checked,
        "ImagesChecked": r.images_checked,
        "Problems": r.problems.iter().map(problem_json).collect::<Vec<_>>(),
        "Reclaimable": {
            "Blobs": r.unreferenced_blobs.iter().map(|(d, n)| serde_json::json!({"Digest": d.to_string(), "Size": n})).collect::<Vec<_>>(),
            "Ingest": r.ingest_leftovers.iter().map(|(p, n)| serde_json::json!({"Path": p.display().to_string(), "Size": n})).collect::<Vec<_>>(),
            "Bytes": r.reclaimable_bytes(),
        },
    })
}

fn repair_json(r: &RepairReport) -> serde_json::Value {
    let digests = |v: &[hoist_oci::Digest]| v.iter().map(|d| d.to_string()).collect::<Vec<_>>();
    serde_json::json!({
        "DeletedBlobs": digests(&r.deleted_blobs),
        "DeletedFiles": r.deleted_files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "DroppedImages": r.dropped_images.iter().map(|(d, t)| serde_json::json!({"ID": d.to_string(), "Tags": t})).collect::<Vec<_>>(),
        "DroppedTags": r.dropped_tags,
        "SweptBlobs": digests(&r.swept_blobs),
        "SweptBytes": r.swept_bytes,
    })
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn print_summary(r: &FsckReport) {
    println!(
        "checked {} ({}) and {}: {}",
        plural(r.blobs_checked, "blob", "blobs"),
        human_size(r.bytes_checked),
        plural(r.images_checked, "image", "images"),
        if r.is_clean() {
            "clean".to_owned()
        } else {
            plural(r.problems.len(), "problem", "problems")
        }
    );
    let (blobs, ingest) = (r.unreferenced_blobs.len(), r.ingest_leftovers.len());
    if blobs + ingest > 0 {
        // Leftovers of an interrupted write are normal, so they are not problems.
        println!(
            "reclaimable (not an error): {} and {} ({}); `hoist image prune` or `hoist fsck --repair` removes them",
            plural(blobs, "unreferenced blob", "unreferenced blobs"),
            plural(ingest, "ingest leftover", "ingest leftovers"),
            human_size(r.reclaimable_bytes())
        );
    }
}

/// Runs `hoist fsck`.
pub fn run(ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    let mut store = if args.repair {
        ctx.store()?
    } else {
        ctx.store_read()?
    };
    if !args.repair {
        let report = store.fsck()?;
        if args.format == Format::Json {
            println!("{}", report_json(&report));
        } else {
            for p in &report.problems {
                println!("{p}");
            }
            print_summary(&report);
        }
        return Ok(if report.is_clean() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let (found, done) = store.fsck_repair()?;
    // Check again: what repair cannot fix (a damaged index.db) must still fail the run.
    let after = store.fsck()?;
    if args.format == Format::Json {
        let v = serde_json::json!({
            "Found": report_json(&found),
            "Repair": repair_json(&done),
            "After": report_json(&after),
            "Clean": after.is_clean(),
        });
        println!("{v}");
    } else {
        for p in &found.problems {
            println!("{p}");
        }
        for d in &done.deleted_blobs {
            println!("repaired: deleted corrupt blob {d}");
        }
        for f in &done.deleted_files {
            println!("repaired: deleted stray file {}", f.display());
        }
        for (id, tags) in &done.dropped_images {
            if tags.is_empty() {
                println!("repaired: dropped image {id}");
            } else {
                let names: Vec<String> = tags.iter().map(|t| familiar(t)).collect();
                println!("repaired: dropped image {id} ({})", names.join(", "));
            }
        }
        for t in &done.dropped_tags {
            println!("repaired: dropped tag {t}");
        }
        if !done.swept_blobs.is_empty() || !found.ingest_leftovers.is_empty() {
            println!(
                "repaired: swept {} ({}) and the ingest directory",
                plural(
                    done.swept_blobs.len(),
                    "unreferenced blob",
                    "unreferenced blobs"
                ),
                human_size(done.swept_bytes)
            );
        }
        for p in &after.problems {
            println!("still broken: {p}");
        }
        print_summary(&after);
    }
    Ok(if after.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
