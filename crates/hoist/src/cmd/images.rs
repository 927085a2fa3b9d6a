//! `hoist images`: the images of the store, one row per tag.

use super::{Context, Error, Format};
use crate::output::{ago, human_size, table};
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
    /// Output format: table or json (one object per line, as Docker prints).
    #[arg(long, default_value = "table")]
    format: Format,
    /// Only images of this repository[:tag].
    repository: Option<String>,
}

struct Row<'a> {
    image: &'a ImageRecord,
    repo: String,
    tag: String,
}

/// Shell-style `*` and `?` matching, enough for Docker's reference filter.
fn glob(pattern: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Runs `hoist images`.
pub fn run(ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    let store = ctx.store_read()?;
    let images = store.index().images()?;
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
    let added_of =
        |name: &str| -> Result<i64, Error> { Ok(crate::resolve::image(&store, name)?.image.added) };
    for f in &args.filter {
        let (k, v) = f.split_once('=').ok_or_else(|| {
            Error::Msg(format!("bad format of filter {f:?} (expected name=value)"))
        })?;
        match k {
            "dangling" => {
                let want = match v {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(Error::Msg(format!("invalid filter 'dangling={v}'"))),
                };
                rows.retain(|r| r.image.tags.is_empty() == want);
            }
            "reference" => {
                rows.retain(|r| glob(v, &r.repo) || glob(v, &format!("{}:{}", r.repo, r.tag)))
            }
            "label" => {
                let (lk, lv) = match v.split_once('=') {
                    Some((a, b)) => (a, Some(b)),
                    None => (v, None),
                };
                rows.retain(|r| {
                    let l = crate::resolve::labels(&store, r.image);
                    l.get(lk).is_some_and(|x| lv.is_none_or(|lv| lv == x))
                });
            }
            "before" => {
                let t = added_of(v)?;
                rows.retain(|r| r.image.added < t);
            }
            "since" => {
                let t = added_of(v)?;
                rows.retain(|r| r.image.added > t);
            }
            _ => return Err(Error::Msg(format!("invalid filter '{k}'"))),
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
    let id_of = |img: &ImageRecord| {
        if args.no_trunc {
            img.id.to_string()
        } else {
            img.id.short().to_owned()
        }
    };
    if args.quiet {
        let mut seen = std::collections::HashSet::new();
        for r in &rows {
            if seen.insert(&r.image.id) {
                println!("{}", id_of(r.image));
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.format == Format::Json {
        for r in &rows {
            let v = serde_json::json!({
                "Repository": r.repo,
                "Tag": r.tag,
                "ID": id_of(r.image),
                "Digest": r.image.manifest.to_string(),
                "CreatedAt": r.image.created.clone().unwrap_or_default(),
                "CreatedSince": ago(r.image.created.as_deref()),
                "Size": human_size(r.image.size()),
                "VirtualSize": human_size(r.image.size()),
                "SizeBytes": r.image.size(),
                "Containers": "N/A",
                "SharedSize": "N/A",
                "UniqueSize": "N/A",
            });
            println!("{v}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut header = vec!["REPOSITORY", "TAG"];
    if args.digests {
        header.push("DIGEST");
    }
    header.extend(["IMAGE ID", "CREATED", "SIZE"]);
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut v = vec![r.repo.clone(), r.tag.clone()];
            if args.digests {
                v.push(r.image.manifest.to_string());
            }
            v.extend([
                id_of(r.image),
                ago(r.image.created.as_deref()),
                human_size(r.image.size()),
            ]);
            v
        })
        .collect();
    table(&header, &body);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn glob_matches_docker_reference_patterns() {
        assert!(glob("busy*", "busybox"));
        assert!(glob("*:latest", "busybox:latest"));
        assert!(!glob("busy*", "alpine"));
        assert!(glob("a?c", "abc"));
    }
}
