//! `hoist history IMAGE`: the steps that made an image, newest first, like `docker history`.

use super::{Context, Error, Format};
use crate::output::{ago, human_size, table};
use crate::resolve;
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
    /// Output format: table or json (one object per line, as Docker prints).
    #[arg(long, default_value = "table")]
    format: Format,
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
    let sizes: Vec<u64> = img.layers.iter().map(|l| l.layer.size).collect();
    let mut rows = steps(&config, &sizes);
    rows.reverse();
    let top_id = if args.no_trunc {
        img.id.to_string()
    } else {
        img.id.short().to_owned()
    };
    // Only the newest step is this image; earlier steps' images are not in the store.
    let id_of = |i: usize| {
        if i == 0 {
            top_id.clone()
        } else {
            "<missing>".to_owned()
        }
    };
    if args.quiet {
        for i in 0..rows.len() {
            println!("{}", id_of(i));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let created_by = |s: &Step| {
        let c = s
            .entry
            .created_by
            .clone()
            .unwrap_or_default()
            .replace('\t', " ");
        if args.no_trunc {
            c
        } else {
            ellipsis(&c, CREATED_BY_WIDTH)
        }
    };
    let created = |s: &Step| {
        if args.human {
            ago(s.entry.created.as_deref())
        } else {
            s.entry.created.clone().unwrap_or_default()
        }
    };
    let size = |s: &Step| {
        if args.human {
            human_size(s.size)
        } else {
            s.size.to_string()
        }
    };
    if args.format == Format::Json {
        for (i, s) in rows.iter().enumerate() {
            let v = serde_json::json!({
                "ID": id_of(i),
                "CreatedAt": s.entry.created.clone().unwrap_or_default(),
                "CreatedSince": ago(s.entry.created.as_deref()),
                "CreatedBy": created_by(s),
                "Size": size(s),
                "SizeBytes": s.size,
                "Comment": s.entry.comment.clone().unwrap_or_default(),
                "EmptyLayer": s.entry.empty_layer,
            });
            println!("{v}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let body: Vec<Vec<String>> = rows
        .iter()
        .enumerate()
        .map(|(i, s)| {
            vec![
                id_of(i),
                created(s),
                created_by(s),
                size(s),
                s.entry.comment.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
        &body,
    );
    Ok(ExitCode::SUCCESS)
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
