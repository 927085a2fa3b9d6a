//! `hoist images`: the images of the store, one row per tag (per tag and
//! repository digest with `--digests`); an index with several fetched
//! platforms is one row, as Docker's containerd image store shows it.

use super::{Context, Error};
use crate::output::{ago, go_time_string, human_size, human_size_precision, Formatter};
use hoist_oci::{Digest, Reference};
use hoist_store::{ImageRecord, Store};
use std::collections::BTreeSet;
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

/// One line of the listing.
struct Row<'a> {
    /// The image whose creation time and labels the row has: for an index,
    /// the platform its tag resolves to.
    image: &'a ImageRecord,
    /// What IMAGE ID shows: the image ID, or an index's digest.
    id: Digest,
    /// The images whose layers SIZE counts: one, or every fetched platform.
    platforms: Vec<&'a ImageRecord>,
    repo: String,
    tag: String,
    /// The repository digest, or `<none>`.
    digest: String,
    /// No tag reaches the image.
    dangling: bool,
}

/// `REPO@DIGEST` (full repository) as Docker's familiar repository and digest.
fn split_repo_digest(rd: &str) -> Option<(String, String)> {
    let (repo, digest) = rd.split_once('@')?;
    let repo = Reference::parse(repo).map_or_else(|_| repo.to_owned(), |r| r.familiar_name());
    Some((repo, digest.to_owned()))
}

/// `repo` and tag of a full reference, familiar as Docker prints them.
fn split_tag(t: &str) -> (String, String) {
    match Reference::parse(t) {
        Ok(r) => (r.familiar_name(), r.tag().unwrap_or("<none>").to_owned()),
        Err(_) => (t.to_owned(), "<none>".into()),
    }
}

/// The rows of one image as Docker's CLI makes them from RepoTags and
/// RepoDigests: a row per tag (per tag and digest with `--digests`), then
/// the repositories known only by digest; `<none>` rows for an image with
/// neither. `claimed` tags are shown by an index's row instead.
fn image_rows<'a>(
    img: &'a ImageRecord,
    claimed: &BTreeSet<String>,
    show_digests: bool,
) -> Vec<Row<'a>> {
    let row = |repo: String, tag: String, digest: String| Row {
        image: img,
        id: img.id.clone(),
        platforms: vec![img],
        repo,
        tag,
        digest,
        dangling: img.tags.is_empty(),
    };
    let tags: Vec<&String> = img.tags.iter().filter(|t| !claimed.contains(*t)).collect();
    if img.tags.is_empty() && img.repo_digests.is_empty() {
        return vec![row("<none>".into(), "<none>".into(), "<none>".into())];
    }
    if tags.is_empty() && !img.tags.is_empty() {
        // Every tag names an index listed on its own row.
        return Vec::new();
    }
    let mut digests: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for rd in &img.repo_digests {
        if let Some((repo, d)) = split_repo_digest(rd) {
            digests.entry(repo).or_default().push(d);
        }
    }
    let mut rows = Vec::new();
    for t in tags {
        let (repo, tag) = split_tag(t);
        match digests.get(&repo).filter(|_| show_digests) {
            Some(ds) => {
                for d in ds {
                    rows.push(row(repo.clone(), tag.clone(), d.clone()));
                }
            }
            None => rows.push(row(repo, tag, "<none>".into())),
        }
    }
    for (repo, ds) in digests {
        if rows.iter().any(|r| r.repo == repo) {
            continue;
        }
        if show_digests {
            for d in ds {
                rows.push(row(repo.clone(), "<none>".into(), d));
            }
        } else {
            rows.push(row(repo, "<none>".into(), "<none>".into()));
        }
    }
    rows
}

/// One row per tag naming an index with several fetched platforms, as
/// Docker with the containerd image store shows a multi-platform image: the
/// index digest as its ID, SIZE counting every fetched platform's layers.
/// Also gives the tags those rows show, which the platforms' rows leave out.
fn index_rows<'a>(
    store: &hoist_store::Store,
    images: &'a [ImageRecord],
    show_digests: bool,
) -> Result<(Vec<Row<'a>>, BTreeSet<String>), Error> {
    let mut rows = Vec::new();
    let mut claimed = BTreeSet::new();
    for t in store.index().tags()? {
        let Some(idx) = store.index().index(&t.target)? else {
            continue;
        };
        let platforms: Vec<&ImageRecord> = idx
            .fetched
            .iter()
            .filter_map(|m| store.index().manifest(m).ok().flatten())
            .filter_map(|m| images.iter().find(|i| i.id == m.image))
            .collect();
        if platforms.len() < 2 {
            continue;
        }
        let Some(image) = images.iter().find(|i| i.id == t.image) else {
            continue;
        };
        let (repo, tag) = split_tag(&t.name);
        claimed.insert(t.name.clone());
        let digest = store
            .index()
            .repo_digests_of(&idx.digest)?
            .iter()
            .filter_map(|rd| split_repo_digest(rd))
            .find(|(r, _)| *r == repo && show_digests)
            .map_or_else(|| "<none>".to_owned(), |(_, d)| d);
        rows.push(Row {
            image,
            id: idx.digest.clone(),
            platforms,
            repo,
            tag,
            digest,
            dangling: false,
        });
    }
    Ok((rows, claimed))
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
    let images = store.index().images()?;
    let (mut rows, claimed) = index_rows(&store, &images, args.digests)?;
    rows.extend(
        images
            .iter()
            .flat_map(|img| image_rows(img, &claimed, args.digests)),
    );
    // Docker lists the newest image first, by creation time (not load order).
    rows.sort_by_key(|r| std::cmp::Reverse(created_unix(r.image)));
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
                rows.retain(|r| r.dangling == want);
            }
            "reference" => rows.retain(|r| {
                // Dangling images have no reference to match.
                !r.dangling
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
    let values: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| Ok(row_value(r, row_size(&store, r)?, !args.no_trunc)))
        .collect::<Result<_, Error>>()?;
    fmt.print(&headers(), &values)?;
    Ok(ExitCode::SUCCESS)
}

/// An image's size as `docker images` counts it: its layers' content
/// (files' bytes, as Docker's overlay2 measures it), not their tar bytes.
pub fn image_size(store: &Store, img: &ImageRecord) -> Result<u64, Error> {
    Ok(store.content_sizes(img)?.iter().sum())
}

/// A row's SIZE: the content of every distinct layer of its images.
fn row_size(store: &Store, r: &Row) -> Result<u64, Error> {
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for img in &r.platforms {
        for (l, n) in img.layers.iter().zip(store.content_sizes(img)?) {
            if seen.insert(&l.layer.chain_id) {
                total += n;
            }
        }
    }
    Ok(total)
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
fn row_value(r: &Row, size: u64, trunc: bool) -> serde_json::Value {
    let id = if trunc {
        r.id.short().to_owned()
    } else {
        r.id.to_string()
    };
    // Docker's CLI: Size with 3 digits (HumanSizeWithPrecision), VirtualSize with HumanSize's 4.
    let virtual_size = human_size_precision(size, 4);
    let size = human_size(size);
    serde_json::json!({
        // hoist has no containers; `docker images` says N/A for the counts it does not compute.
        "Containers": "N/A",
        "CreatedAt": go_time_string(r.image.created.as_deref()),
        "CreatedSince": ago(r.image.created.as_deref()),
        // From RepoDigests, which only a pull or push records; a load has none.
        "Digest": r.digest,
        "ID": id,
        "Repository": r.repo,
        "SharedSize": "N/A",
        "Size": size,
        "Tag": r.tag,
        "UniqueSize": "N/A",
        "VirtualSize": virtual_size,
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
