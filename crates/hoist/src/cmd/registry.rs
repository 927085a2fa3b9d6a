//! `hoist registry ...`: maintenance of a registry directory (`hoist serve`'s
//! or `docker-registry`'s) or S3 bucket.

use super::storage::StorageArgs;
use super::Error;
use hoist_registry::gc::{collect_storage, GcOptions};
use std::process::ExitCode;
use std::time::Duration;

/// Arguments of `hoist registry`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(clap::Subcommand)]
enum Sub {
    /// Delete blobs (and with --delete-untagged, manifests) nothing uses.
    /// Safe while `hoist serve` runs on the same directory or bucket.
    Gc(GcArgs),
}

#[derive(clap::Args)]
struct GcArgs {
    /// Also delete manifests that no tag reaches (an index's children and
    /// the referrers of kept manifests stay).
    #[arg(long)]
    delete_untagged: bool,
    /// Print what would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Keep anything written less than this long before the collection
    /// started, so pushes in progress keep their blobs (e.g. 30s, 10m, 1h, 2d).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    grace: Duration,
    /// Delete upload sessions idle for longer than this.
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    upload_max_age: Duration,
    #[command(flatten)]
    storage: StorageArgs,
}

/// Parses `90`, `90s`, `10m`, `1h`, `2d`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: use e.g. 30s, 10m, 1h, 2d"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("invalid duration unit in {s:?}: use s, m, h or d")),
    };
    Ok(Duration::from_secs(n.saturating_mul(mult)))
}

fn human(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u < units.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.3}{}", units[u])
    }
}

/// Runs `hoist registry`.
pub fn run(args: Args) -> Result<ExitCode, Error> {
    match args.command {
        Sub::Gc(a) => gc(a),
    }
}

fn gc(a: GcArgs) -> Result<ExitCode, Error> {
    let opts = GcOptions {
        delete_untagged: a.delete_untagged,
        dry_run: a.dry_run,
        grace: a.grace,
        upload_max_age: a.upload_max_age,
    };
    let storage = a.storage.config("hoist registry gc", None)?;
    let report = collect_storage(&storage, &opts)
        .map_err(|e| Error::Msg(format!("garbage collection failed: {e}")))?;
    let verb = if a.dry_run { "would delete" } else { "deleted" };
    for (repo, d) in &report.manifests_deleted {
        println!("{verb} manifest {repo}@{d}");
    }
    for (d, size) in &report.blobs_deleted {
        println!("{verb} blob {d} ({})", human(*size));
    }
    println!(
        "{} repositories, {} blobs in use; {verb} {} manifests and {} blobs ({}); kept {} recent unreferenced blobs; {} stale uploads {}",
        report.repositories,
        report.marked,
        report.manifests_deleted.len(),
        report.blobs_deleted.len(),
        human(report.bytes_freed()),
        report.blobs_kept_recent,
        report.uploads_purged,
        if a.dry_run { "to purge" } else { "purged" },
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("x").is_err());
        assert_eq!(human(999), "999B");
        assert_eq!(human(1_500_000), "1.500MB");
    }
}
