//! `hoist image prune`: delete dangling (untagged) images, or with `-a` every
//! image, then sweep blobs nothing refers to and leftovers of killed writers,
//! printing what went and the space reclaimed as Docker does.

use super::{Context, Error, Format};
use crate::output::human_size;
use crate::resolve::familiar;
use hoist_oci::Digest;
use hoist_store::{ImageRecord, Store};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::process::ExitCode;

/// Arguments of `hoist image prune`.
#[derive(clap::Args)]
pub struct Args {
    /// Remove all images, not just dangling ones (hoist has no containers, so none is in use).
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    force: bool,
    /// Filter: until=TIMESTAMP|DURATION (e.g. 24h), label=KEY[=VALUE], label!=KEY[=VALUE].
    #[arg(long)]
    filter: Vec<String>,
    /// Output format: table (Docker's lines) or json.
    #[arg(long, default_value = "table")]
    format: Format,
}

/// One `--filter` condition.
enum Filter {
    /// Only images created before this Unix time.
    Until(i64),
    /// Only images with (`true`) or without (`false`) this label (and value).
    Label(bool, String, Option<String>),
}

/// Parses a Go-style duration (`90s`, `1h30m`, `2.5h`) into seconds.
fn parse_duration(s: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push('s');
            chars.next();
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        any = true;
    }
    (any && num.is_empty()).then_some(total)
}

/// Docker's `until=`: a duration back from now, an RFC 3339 time, or Unix seconds.
fn parse_until(v: &str) -> Option<i64> {
    let now = chrono::Utc::now().timestamp();
    if let Some(d) = parse_duration(v) {
        return Some(now - d as i64);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Some(t.timestamp());
    }
    v.split('.').next().and_then(|s| s.parse().ok())
}

fn parse_filters(raw: &[String]) -> Result<Vec<Filter>, Error> {
    raw.iter()
        .map(|f| {
            let bad = || {
                Error::Msg(format!(
                    "invalid filter {f:?}: use until=24h or label=KEY[=VALUE]"
                ))
            };
            if let Some(v) = f.strip_prefix("label!=") {
                let (k, val) = v.split_once('=').map_or((v, None), |(k, x)| (k, Some(x)));
                return Ok(Filter::Label(false, k.to_owned(), val.map(str::to_owned)));
            }
            let (k, v) = f.split_once('=').ok_or_else(bad)?;
            match k {
                "until" => parse_until(v).map(Filter::Until).ok_or_else(|| {
                    Error::Msg(format!(
                        "invalid filter 'until={v}': give a duration (24h, 90m) or a timestamp"
                    ))
                }),
                "label" => {
                    let (lk, val) = v.split_once('=').map_or((v, None), |(k, x)| (k, Some(x)));
                    Ok(Filter::Label(true, lk.to_owned(), val.map(str::to_owned)))
                }
                _ => Err(bad()),
            }
        })
        .collect()
}

fn matches(store: &Store, img: &ImageRecord, filters: &[Filter]) -> bool {
    filters.iter().all(|f| match f {
        Filter::Until(t) => {
            img.created
                .as_deref()
                .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                // An image with no creation time falls back to when it was added.
                .map_or(img.added, |c| c.timestamp())
                < *t
        }
        Filter::Label(want, k, v) => {
            let l = crate::resolve::labels(store, img);
            let has = l.get(k).is_some_and(|x| v.as_ref().is_none_or(|v| v == x));
            has == *want
        }
    })
}

/// Sizes of every committed blob and of `ingest/`, to tell what a prune freed.
fn disk_usage(store: &Store) -> Result<(BTreeMap<Digest, u64>, u64), Error> {
    let (blobs, _) = store.list_blobs()?;
    let sizes = blobs
        .into_iter()
        .map(|d| {
            let n = std::fs::metadata(store.blob_path(&d)).map_or(0, |m| m.len());
            (d, n)
        })
        .collect();
    let ingest = std::fs::read_dir(store.root().join("ingest"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    Ok((sizes, ingest))
}

/// Asks Docker's question on stderr; true only for an explicit yes.
fn confirm(all: bool) -> bool {
    let what = if all {
        "all images without at least one container associated to them"
    } else {
        "all dangling images"
    };
    eprint!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_lowercase().as_str(), "y" | "yes")
}

/// Runs `hoist image prune`.
pub fn run(ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    let filters = parse_filters(&args.filter)?;
    if !args.force && !confirm(args.all) {
        return Ok(ExitCode::SUCCESS);
    }
    let mut store = ctx.store()?;
    let (before, ingest_before) = disk_usage(&store)?;
    let victims: Vec<ImageRecord> = store
        .index()
        .images()?
        .into_iter()
        .filter(|img| args.all || img.tags.is_empty())
        .filter(|img| matches(&store, img, &filters))
        .collect();
    let mut lines: Vec<(&str, String)> = Vec::new();
    for img in &victims {
        let removed = store.remove_image(&img.id, &img.tags, true)?;
        lines.extend(removed.untagged.iter().map(|t| ("Untagged", familiar(t))));
        lines.extend(
            removed
                .deleted_indexes
                .iter()
                .chain(&removed.deleted_image)
                .chain(&removed.deleted_images)
                .chain(&removed.deleted_layers)
                .map(|d| ("Deleted", d.to_string())),
        );
    }
    let (swept, _) = store.sweep()?;
    let (after, ingest_after) = disk_usage(&store)?;
    let reclaimed: u64 = before
        .iter()
        .filter(|(d, _)| !after.contains_key(*d))
        .map(|(_, n)| n)
        .sum::<u64>()
        + ingest_before.saturating_sub(ingest_after);
    if args.format == Format::Json {
        let v = serde_json::json!({
            "ImagesDeleted": lines.iter().map(|(k, v)| serde_json::json!({ *k: v })).collect::<Vec<_>>(),
            "BlobsDeleted": swept.len(),
            "SpaceReclaimed": reclaimed,
        });
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    if !lines.is_empty() {
        println!("Deleted Images:");
        for (k, v) in &lines {
            println!("{}: {v}", k.to_lowercase());
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(reclaimed));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("90s"), Some(90.0));
        assert_eq!(parse_duration("1h30m"), Some(5400.0));
        assert_eq!(parse_duration("1.5h"), Some(5400.0));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("2024-01-01"), None);
    }
}
