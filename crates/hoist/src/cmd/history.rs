//! `hoist history IMAGE`: the steps that made an image, newest first, like `docker history`.

use super::{Context, Error};
use crate::output::{self, Formatter};
use crate::resolve;
use chrono::Timelike;
use hoist_oci::{Config, HistoryEntry};
use std::process::ExitCode;

/// Docker truncates CREATED BY to this many characters unless `--no-trunc`.
const CREATED_BY_WIDTH: usize = 45;

/// Arguments of `hoist history`.
#[derive(clap::Args)]
pub struct Args {
    /// Print sizes and dates in human readable format (`--human=false` for bytes and RFC 3339).
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    human: bool,
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Format output: table, table TEMPLATE, json, or a Go template (`{{.CreatedBy}}`).
    #[arg(long, default_value = "")]
    format: String,
    /// The image, by reference or ID.
    image: String,
}

/// One row: a history entry and the size of the layer it made.
struct Step {
    entry: HistoryEntry,
    size: u64,
}

/// Docker's `Ellipsis`: cut to `width` characters, the last one `…`.
fn ellipsis(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Pairs history entries with layer sizes: each entry that is not
/// `empty_layer` made the next layer of the stack, in order.
fn steps(config: &Config, layer_sizes: &[u64]) -> Vec<Step> {
    if config.history.is_empty() {
        // Images built without history (some tools omit it) still show one row per layer.
        return layer_sizes
            .iter()
            .map(|&size| Step {
                entry: HistoryEntry::default(),
                size,
            })
            .collect();
    }
    let mut sizes = layer_sizes.iter();
    config
        .history
        .iter()
        .map(|h| Step {
            entry: h.clone(),
            size: if h.empty_layer {
                0
            } else {
                // A config with more non-empty entries than layers is malformed; show 0.
                sizes.next().copied().unwrap_or(0)
            },
        })
        .collect()
}

/// Runs `hoist history`.
pub fn run(ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    let store = ctx.store_read()?;
    let img = resolve::image(&store, &args.image)?.image;
    let raw = store.read_blob(&img.id, hoist_transport::MAX_JSON)?;
    let config = Config::parse(&raw).map_err(|e| Error::Msg(format!("config {}: {e}", img.id)))?;
    // Docker's SIZE: each layer's content (files' bytes), not its tar bytes.
    let sizes = store.content_sizes(&img)?;
    let mut rows = steps(&config, &sizes);
    rows.reverse();
    let top_id = if args.no_trunc {
        img.id.to_string()
    } else {
        img.id.short().to_owned()
    };
    let values: Vec<serde_json::Value> = rows
        .iter()
        .enumerate()
        .map(|(i, s)| {
            // Only the newest step is this image; earlier steps' images are not in the store.
            let id = if i == 0 { top_id.as_str() } else { "<missing>" };
            row_value(s, id, args.human, !args.no_trunc)
        })
        .collect();
    let fmt = if args.quiet {
        Formatter::new("{{.ID}}", "")?
    } else {
        Formatter::new(&args.format, DEFAULT_TABLE)?
    };
    fmt.print(&headers(), &values)?;
    Ok(ExitCode::SUCCESS)
}

/// Docker's `docker history` table.
const DEFAULT_TABLE: &str =
    "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";

/// The column names of Docker's history formatter.
fn headers() -> serde_json::Value {
    serde_json::json!({
        "Comment": "COMMENT",
        "CreatedAt": "CREATED AT",
        "CreatedBy": "CREATED BY",
        "CreatedSince": "CREATED",
        "ID": "IMAGE",
        "Size": "SIZE",
    })
}

/// One step with the fields of Docker's history formatter, as the strings it prints.
fn row_value(s: &Step, id: &str, human: bool, trunc: bool) -> serde_json::Value {
    let created = output::parse_time(s.entry.created.as_deref());
    // Docker prints the time in seconds (time.Unix), RFC 3339.
    let rfc3339 = created
        .map(|t| t.with_timezone(&chrono::Utc).fixed_offset())
        .map(|t| t.with_nanosecond(0).unwrap_or(t))
        .map_or_else(
            || "1970-01-01T00:00:00Z".to_owned(),
            |t| output::rfc3339_nano(&t),
        );
    let created_by = s
        .entry
        .created_by
        .clone()
        .unwrap_or_default()
        .replace('\t', " ");
    serde_json::json!({
        "Comment": s.entry.comment.clone().unwrap_or_default(),
        "CreatedAt": rfc3339,
        "CreatedBy": if trunc { ellipsis(&created_by, CREATED_BY_WIDTH) } else { created_by },
        "CreatedSince": if human { output::ago(s.entry.created.as_deref()) } else { rfc3339.clone() },
        "ID": id,
        "Size": if human { output::human_size(s.size) } else { s.size.to_string() },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ellipsis_cuts_like_docker() {
        assert_eq!(ellipsis("abc", 3), "abc");
        assert_eq!(ellipsis("abcd", 3), "ab…");
    }

    #[test]
    fn non_empty_entries_take_layer_sizes_in_order() {
        let h = |empty| HistoryEntry {
            empty_layer: empty,
            ..Default::default()
        };
        let config = Config {
            created: None,
            author: None,
            comment: None,
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
            config: None,
            rootfs: hoist_oci::RootFs {
                kind: "layers".into(),
                diff_ids: vec![],
            },
            history: vec![h(false), h(true), h(false), h(true)],
        };
        let s: Vec<u64> = steps(&config, &[10, 20]).iter().map(|s| s.size).collect();
        assert_eq!(s, [10, 0, 20, 0]);
    }
}
