//! `hoist images`: the images of the store, one row per tag.

use super::{Context, Error};
use crate::output::{ago, go_time_string, human_size, Formatter};
use hoist_oci::Reference;
use hoist_store::ImageRecord;
use std::process::ExitCode;

/// Arguments of `hoist images`.
#[derive(clap::Args)]
pub struct Args {
    /// Show all images (hoist keeps no intermediate images, so the same as without).
    // Accepted so Docker users' scripts run; there is nothing more to show.
    #[arg(short = 'a', long = "all", action = clap::ArgAction::SetTrue)]
    _all: bool,
    /// Show digests.
    #[arg(long)]
    digests: bool,
    /// Only show image IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Filter: dangling=true|false, reference=PATTERN, label=KEY[=VALUE], before=IMAGE, since=IMAGE.
    #[arg(short, long)]
    filter: Vec<String>,
    /// Format output: table, table TEMPLATE, json, or a Go template (`{{.Repository}}:{{.Tag}}`).
    #[arg(long, default_value = "")]
    format: String,
    /// Only images of this repository[:tag].
    repository: Option<String>,
}

struct Row<'a> {
    image: &'a ImageRecord,
    repo: String,
    tag: String,
}

/// Go's `path.Match`, which Docker's `reference=` filter uses: `*` and `?`
/// never match `/`, `[…]` is a character class (`[^…]` negated), `\` escapes.
fn path_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => {
            // Try every split that stays inside one path segment.
            let rest = &p[1..];
            for i in 0..=n.len() {
                if match_from(rest, &n[i..]) {
                    return true;
                }
                if i < n.len() && n[i] == '/' {
                    return false;
                }
            }
            false
        }
        Some('?') => n.first().is_some_and(|&c| c != '/') && match_from(&p[1..], &n[1..]),
        Some('[') => {
            let Some(&c) = n.first() else { return false };
            let mut i = 1;
            let negated = p.get(i) == Some(&'^');
            if negated {
                i += 1;
            }
            let mut matched = false;
            let mut first = true;
            loop {
                let Some(&lo) = p.get(i) else { return false };
                if lo == ']' && !first {
                    break;
                }
                first = false;
                let lo = if lo == '\\' {
                    i += 1;
                    match p.get(i) {
                        Some(&e) => e,
                        None => return false,
                    }
                } else {
                    lo
                };
                i += 1;
                let mut hi = lo;
                if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&x| x != ']') {
                    hi = p[i + 1];
                    i += 2;
                }
                if lo <= c && c <= hi {
                    matched = true;
                }
            }
            c != '/' && matched != negated && match_from(&p[i + 1..], &n[1..])
        }
        Some('\\') => match p.get(1) {
            Some(&e) => n.first() == Some(&e) && match_from(&p[2..], &n[1..]),
            None => false,
        },
        Some(&c) => n.first() == Some(&c) && match_from(&p[1..], &n[1..]),
    }
}

/// An image's creation time in Unix seconds; Docker counts a missing or
/// unreadable `created` as the epoch.
fn created_unix(img: &ImageRecord) -> i64 {
    img.created
        .as_deref()
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map_or(0, |t| t.timestamp())
}

/// `--filter` values grouped by key: values of one key are alternatives, keys all apply (Docker's rule).
fn parse_filters(filters: &[String]) -> Result<std::collections::BTreeMap<&str, Vec<&str>>, Error> {
    let mut by_key: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| Error::Msg("bad format of filter (expected name=value)".into()))?;
        if !matches!(k, "dangling" | "reference" | "label" | "before" | "since") {
            return Err(Error::Msg(format!("Invalid filter '{k}'")));
        }
        by_key.entry(k).or_default().push(v);
    }
    Ok(by_key)
}

/// Runs `hoist images`.
pub fn run(ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    let store = ctx.store_read()?;
    let mut images = store.index().images()?;
    // Docker lists the newest image first, by creation time (not load order).
    images.sort_by_key(|img| std::cmp::Reverse(created_unix(img)));
    let mut rows: Vec<Row> = Vec::new();
    for img in &images {
        if img.tags.is_empty() {
            rows.push(Row {
                image: img,
                repo: "<none>".into(),
                tag: "<none>".into(),
            });
        }
        for t in &img.tags {
            let (repo, tag) = match Reference::parse(t) {
                Ok(r) => (r.familiar_name(), r.tag().unwrap_or("<none>").to_owned()),
                Err(_) => (t.clone(), "<none>".into()),
            };
            rows.push(Row {
                image: img,
                repo,
                tag,
            });
        }
    }
    let created_of = |name: &str| -> Result<i64, Error> {
        Ok(created_unix(&crate::resolve::image(&store, name)?.image))
    };
    for (k, values) in parse_filters(&args.filter)? {
        match k {
            "dangling" => {
                // Docker takes the last value given.
                let want = match values.last().copied().unwrap_or_default() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    v => return Err(Error::Msg(format!("Invalid filter 'dangling={v}'"))),
                };
                rows.retain(|r| r.image.tags.is_empty() == want);
            }
            "reference" => rows.retain(|r| {
                // Dangling images have no reference to match.
                !r.image.tags.is_empty()
                    && values.iter().any(|v| {
                        path_match(v, &format!("{}:{}", r.repo, r.tag)) || path_match(v, &r.repo)
                    })
            }),
            "label" => {
                let wanted: Vec<(&str, Option<&str>)> = values
                    .iter()
                    .map(|v| match v.split_once('=') {
                        Some((a, b)) => (a, Some(b)),
                        None => (*v, None),
                    })
                    .collect();
                rows.retain(|r| {
                    let l = crate::resolve::labels(&store, r.image);
                    // Docker requires every label= condition of the list.
                    wanted
                        .iter()
                        .all(|(lk, lv)| l.get(*lk).is_some_and(|x| lv.is_none_or(|lv| lv == x)))
                });
            }
            "before" => {
                for v in values {
                    let t = created_of(v)?;
                    rows.retain(|r| created_unix(r.image) < t);
                }
            }
            "since" => {
                for v in values {
                    let t = created_of(v)?;
                    rows.retain(|r| created_unix(r.image) > t);
                }
            }
            _ => return Err(Error::Msg(format!("Invalid filter '{k}'"))),
        }
    }
    if let Some(repo) = &args.repository {
        let (name, tag) = match repo.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
            Some((n, t)) => (n, Some(t)),
            None => (repo.as_str(), None),
        };
        let name = Reference::parse(name)
            .map(|r| r.familiar_name())
            .unwrap_or_else(|_| name.to_owned());
        rows.retain(|r| r.repo == name && tag.is_none_or(|t| t == r.tag));
    }
    let fmt = if args.quiet {
        Formatter::new("{{.ID}}", "")?
    } else if args.digests && args.format.is_empty() {
        Formatter::new("", DIGESTS_TABLE)?
    } else if let Some(f) = args
        .format
        .is_empty()
        .then(super::info::docker_config)
        .flatten()
        .and_then(|c| c.get("imagesFormat")?.as_str().map(str::to_owned))
        .filter(|f| !f.is_empty())
    {
        // Docker's CLI takes the default format from config.json's imagesFormat.
        Formatter::new(&f, DEFAULT_TABLE)?
    } else {
        Formatter::new(&args.format, DEFAULT_TABLE)?
    };
    let values: Vec<serde_json::Value> =
        rows.iter().map(|r| row_value(r, !args.no_trunc)).collect();
    fmt.print(&headers(), &values)?;
    Ok(ExitCode::SUCCESS)
}

/// An image's size as `docker images` counts it.
pub fn image_size(img: &ImageRecord) -> u64 {
    img.size()
}

/// Docker's `docker images` table.
const DEFAULT_TABLE: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
/// Docker's `docker images --digests` table.
const DIGESTS_TABLE: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

/// The column names of Docker's image formatter.
fn headers() -> serde_json::Value {
    serde_json::json!({
        "Containers": "CONTAINERS",
        "CreatedAt": "CREATED AT",
        "CreatedSince": "CREATED",
        "Digest": "DIGEST",
        "ID": "IMAGE ID",
        "Repository": "REPOSITORY",
        "SharedSize": "SHARED SIZE",
        "Size": "SIZE",
        "Tag": "TAG",
        "UniqueSize": "UNIQUE SIZE",
        "VirtualSize": "VIRTUAL SIZE",
    })
}

/// One row with the fields of Docker's image formatter, as the strings it prints.
fn row_value(r: &Row, trunc: bool) -> serde_json::Value {
    let id = if trunc {
        r.image.id.short().to_owned()
    } else {
        r.image.id.to_string()
    };
    let size = human_size(image_size(r.image));
    serde_json::json!({
        // hoist has no containers; `docker images` says N/A for the counts it does not compute.
        "Containers": "N/A",
        "CreatedAt": go_time_string(r.image.created.as_deref()),
        "CreatedSince": ago(r.image.created.as_deref()),
        // Docker fills this from RepoDigests, which only a pull or push records; a load has none.
        "Digest": "<none>",
        "ID": id,
        "Repository": r.repo,
        "SharedSize": "N/A",
        "Size": size,
        "Tag": r.tag,
        "UniqueSize": "N/A",
        "VirtualSize": size,
    })
}

#[cfg(test)]
mod tests {
    use super::path_match;

    #[test]
    fn reference_patterns_match_as_go_path_match() {
        assert!(path_match("busy*", "busybox"));
        assert!(path_match("*:latest", "busybox:latest"));
        assert!(!path_match("busy*", "alpine"));
        assert!(path_match("a?c", "abc"));
        // `*` and `?` stay inside one path segment, as in Docker.
        assert!(!path_match("peer*", "peerbench/app"));
        assert!(path_match("peer*/*", "peerbench/app"));
        assert!(!path_match("a?c", "a/c"));
        assert!(path_match("[a-c]x", "bx"));
        assert!(!path_match("[^a-c]x", "bx"));
        assert!(path_match("\\*", "*"));
        assert!(!path_match("\\*", "x"));
    }
}
