//! `hoist sync [--all] [--tags REGEX] SRC DST`, SRC and DST each
//! `docker://REG/REPO` or `oci:DIR`: every tag of a repository to another
//! registry under the same names, or into one OCI layout with each tag as
//! its ref name (and a layout's ref names back into a repository), as
//! `skopeo sync` does.
//! Digests are compared first: a tag whose destination already names the
//! same manifest moves nothing.

use super::copy::client_options;
use super::remote::{parse_docker, print_json, registry_error};
use super::{Context, Error, Format};
use crate::progress::Bars;
use hoist_oci::{Digest, Document, Platform, Reference};
use hoist_registry_client::blocking::RegistryClient;
use hoist_registry_client::Options;
use hoist_transport::{
    choose, copy, layout_refs, CopyOptions, ImageDestination, ImageSource, NoProgress,
    OciDirDestination, OciDirSource, Platforms, Progress, RegistryDestination, RegistrySource,
};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

/// Arguments of `hoist sync`.
#[derive(clap::Args)]
pub struct Args {
    /// Copy every image of an index, and the index itself (default: this machine's image).
    #[arg(long, conflicts_with = "platform")]
    all: bool,
    /// The image of an index to copy (os/arch[/variant]); default: this machine's.
    #[arg(long)]
    platform: Option<String>,
    /// Only the tags this regular expression matches (unanchored, as skopeo's `tags-regex`: write `^v1$`).
    #[arg(long, value_name = "REGEX")]
    tags: Option<String>,
    /// Suppress the progress bars.
    #[arg(short, long)]
    quiet: bool,
    /// `table` (one line per tag, the default) or `json` (one summary document).
    #[arg(long, default_value = "table")]
    format: Format,
    /// Credentials `USER[:PASSWORD]` for the source registry, instead of those in config.json.
    #[arg(long, value_name = "USER[:PASSWORD]")]
    src_creds: Option<String>,
    /// Credentials `USER[:PASSWORD]` for the destination registry, instead of those in config.json.
    #[arg(long, value_name = "USER[:PASSWORD]")]
    dest_creds: Option<String>,
    /// The source needs HTTPS with verified certificates (`=false`: neither).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    src_tls_verify: bool,
    /// The destination needs HTTPS with verified certificates (`=false`: neither).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    dest_tls_verify: bool,
    /// The source: docker://REGISTRY/REPOSITORY or oci:DIR (a tag or ref name syncs only that one).
    src: String,
    /// The destination: docker://REGISTRY/REPOSITORY or oci:DIR.
    dst: String,
}

/// One end of a sync: a repository (each tag keeps its name) or one OCI
/// layout (each tag is a ref name).
enum End {
    Registry {
        repo: Reference,
        opts: Box<Options>,
        client: RegistryClient,
    },
    Layout(PathBuf),
}

impl End {
    /// Parses `docker://REGISTRY/REPOSITORY[:TAG]` or `oci:DIR[:REF]`, with
    /// the one tag it names (a destination names none: tags keep their names).
    fn parse(s: &str, opts: Options, source: bool) -> Result<(Self, Option<String>), Error> {
        let no_tag = || {
            Error::Msg(format!(
                "{s:?}: sync copies tags under their own names; give the destination without a tag or ref"
            ))
        };
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, one) = match rest.split_once(':') {
                Some((d, r)) => (d, Some(r.to_owned())),
                None => (rest, None),
            };
            if dir.is_empty() || one.as_deref() == Some("") {
                return Err(Error::Msg(format!("{s:?}: expected oci:DIR[:REF]")));
            }
            if !source && one.is_some() {
                return Err(no_tag());
            }
            let dir = PathBuf::from(dir);
            if source && !dir.join("index.json").is_file() {
                return Err(Error::Msg(format!(
                    "{s:?}: {} is not an OCI image layout (no index.json)",
                    dir.display()
                )));
            }
            return Ok((End::Layout(dir), one));
        }
        if s.starts_with("docker://") {
            let r = parse_docker(s, false)?;
            if r.digest().is_some() {
                return Err(Error::Msg(format!(
                    "{s:?}: sync copies tags; give the repository (or one tag), not a digest"
                )));
            }
            let one = r.tag().map(str::to_owned);
            if !source && one.is_some() {
                return Err(no_tag());
            }
            let repo = Reference::parse(&r.name())?;
            let client = RegistryClient::new(repo.domain(), &opts).map_err(registry_error)?;
            return Ok((
                End::Registry {
                    repo,
                    opts: Box::new(opts),
                    client,
                },
                one,
            ));
        }
        Err(Error::Msg(format!(
            "{s:?}: sync takes docker://REGISTRY/REPOSITORY or oci:DIR"
        )))
    }

    /// The end itself, for messages.
    fn name(&self) -> String {
        match self {
            End::Registry { repo, .. } => format!("docker://{}", repo.name()),
            End::Layout(dir) => format!("oci:{}", dir.display()),
        }
    }

    /// How this end names `tag`, for messages.
    fn tag_name(&self, tag: &str) -> String {
        match self {
            End::Registry { repo, .. } => format!("docker://{}", repo.with_tag(tag)),
            End::Layout(dir) => format!("oci:{}:{tag}", dir.display()),
        }
    }

    /// Every tag (ref name) this end holds.
    fn tags(&self) -> Result<Vec<String>, Error> {
        match self {
            End::Registry { repo, client, .. } => {
                client.list_tags(repo.path(), None).map_err(registry_error)
            }
            End::Layout(dir) => Ok(layout_refs(dir)?.into_keys().collect()),
        }
    }

    /// What this end's `tag` names now, if anything.
    fn current(&self, tag: &str) -> Result<Option<Digest>, Error> {
        match self {
            End::Registry { repo, client, .. } => Ok(client
                .head_manifest(repo.path(), tag)
                .map_err(registry_error)?
                .map(|d| d.digest)),
            End::Layout(dir) => Ok(layout_refs(dir)?.remove(tag)),
        }
    }

    /// The image this end names `tag`, as a source.
    fn source(&self, tag: &str) -> Result<Box<dyn ImageSource>, Error> {
        Ok(match self {
            End::Registry { repo, opts, .. } => {
                Box::new(RegistrySource::open(&repo.with_tag(tag), opts)?)
            }
            End::Layout(dir) => Box::new(OciDirSource::open(dir, Some(tag))?),
        })
    }

    /// A destination for `tag`, mounting from `from` when both are in one registry.
    fn destination(&self, tag: &str, from: &End) -> Result<Box<dyn ImageDestination>, Error> {
        Ok(match self {
            End::Registry { repo, opts, .. } => {
                let d = RegistryDestination::new(&repo.with_tag(tag), opts)?;
                Box::new(match from {
                    End::Registry { repo: src, .. } if src.domain() == repo.domain() => {
                        d.with_mount_from(vec![src.path().to_owned()])
                    }
                    _ => d,
                })
            }
            End::Layout(dir) => Box::new(OciDirDestination::new(dir)?),
        })
    }
}

/// Whether a tag moved.
#[derive(serde::Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Status {
    Copied,
    /// The destination already named the digest: nothing moved.
    Skipped,
}

/// What happened to one tag.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Outcome {
    tag: String,
    source: String,
    destination: String,
    digest: String,
    status: Status,
    layers_sent: u64,
    layers_present: u64,
    bytes_sent: u64,
}

/// Counts what the engine moves, passing it on to the bars.
struct Tally<'a> {
    inner: &'a dyn Progress,
    sent: AtomicU64,
    present: AtomicU64,
    bytes: AtomicU64,
}

impl Progress for Tally<'_> {
    fn start(&self, id: &str, total: u64) {
        self.inner.start(id, total);
    }
    fn advance(&self, id: &str, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
        self.inner.advance(id, n);
    }
    fn finish(&self, id: &str, skipped: bool) {
        let c = if skipped { &self.present } else { &self.sent };
        c.fetch_add(1, Ordering::Relaxed);
        self.inner.finish(id, skipped);
    }
}

/// The digest the destination will name after copying `src`: the index with
/// `--all`, else the image chosen for the platform (as the engine chooses).
fn wanted(src: &dyn ImageSource, platforms: &Platforms) -> Result<Digest, Error> {
    let top = src.top()?;
    let want = match platforms {
        Platforms::All => return Ok(top.digest),
        Platforms::Only(p) => p.clone(),
        Platforms::Host => Platform::host(),
    };
    match Document::parse(&top.bytes, Some(&top.media_type)) {
        Ok(Document::Index(idx)) => choose(&idx.manifests, &want)
            .map(|d| d.digest.clone())
            .ok_or_else(|| {
                Error::Msg(format!(
                    "index {} has no image for {want}; choose one with --platform or sync them all with --all",
                    top.digest
                ))
            }),
        _ => Ok(top.digest),
    }
}

/// The tags to sync: the one the source names, else those it holds that the regex matches.
fn tags(args: &Args, src: &End, one: Option<String>) -> Result<Vec<String>, Error> {
    let re = match &args.tags {
        Some(t) => {
            Some(regex::Regex::new(t).map_err(|e| Error::Msg(format!("--tags {t:?}: {e}")))?)
        }
        None => None,
    };
    let all = match one {
        Some(t) => vec![t],
        None => src.tags()?,
    };
    Ok(all
        .into_iter()
        .filter(|t| re.as_ref().is_none_or(|re| re.is_match(t)))
        .collect())
}

/// Runs `hoist sync`.
pub fn run(_ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    let (src, one) = End::parse(
        &args.src,
        client_options(&args.src_creds, args.src_tls_verify)?,
        true,
    )?;
    let (dst, _) = End::parse(
        &args.dst,
        client_options(&args.dest_creds, args.dest_tls_verify)?,
        false,
    )?;
    let opts = CopyOptions {
        platforms: if args.all {
            Platforms::All
        } else if let Some(p) = &args.platform {
            Platforms::Only(Platform::parse(p).ok_or_else(|| {
                Error::Msg(format!("--platform {p:?}: expected os/arch[/variant]"))
            })?)
        } else {
            Platforms::Host
        },
        ..CopyOptions::default()
    };
    let bars = if args.quiet || args.format == Format::Json {
        None
    } else {
        Bars::new("Copying blob")
    };
    let shown: &dyn Progress = match &bars {
        Some(b) => b,
        None => &NoProgress,
    };

    let tags = tags(&args, &src, one)?;
    let outcomes = sync_all(
        &src,
        &dst,
        &tags,
        &opts,
        shown,
        args.format == Format::Table,
    )?;
    let copied = outcomes
        .iter()
        .filter(|o| o.status == Status::Copied)
        .count();
    match args.format {
        Format::Table => println!(
            "Synced {} tags from {} to {}: {copied} copied, {} already present",
            outcomes.len(),
            src.name(),
            dst.name(),
            outcomes.len() - copied
        ),
        Format::Json => print_json(&serde_json::json!({
            "source": src.name(),
            "destination": dst.name(),
            "copied": copied,
            "skipped": outcomes.len() - copied,
            "tags": outcomes,
        }))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Tags checked at once: a check is round trips (the source's manifest, the
/// destination's HEAD) that overlap well. Copies go one tag at a time (each
/// with the engine's parallel blobs): when two tags uploaded a shared layer
/// into one docker-registry repository at once, a manifest was once refused
/// with MANIFEST_BLOB_UNKNOWN (cause not isolated), and one at a time
/// uploads each shared layer once.
const CHECKS_AT_ONCE: usize = 4;

/// Checks every tag, several at once, and copies those the destination
/// lacks, in order, while later tags are being checked; with `lines`,
/// prints each tag's line as it is done. The first failure ends the sync.
fn sync_all(
    src: &End,
    dst: &End,
    tags: &[String],
    opts: &CopyOptions,
    shown: &dyn Progress,
    lines: bool,
) -> Result<Vec<Outcome>, Error> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let checked: Mutex<Vec<Option<Result<Outcome, Error>>>> =
        Mutex::new((0..tags.len()).map(|_| None).collect());
    let ready = Condvar::new();
    let named = |i: usize, e: Error| {
        Error::Msg(format!(
            "{} (tag {}/{}): {e}; run the sync again to finish (synced tags are skipped)",
            src.tag_name(&tags[i]),
            i + 1,
            tags.len()
        ))
    };
    std::thread::scope(|s| {
        for _ in 0..CHECKS_AT_ONCE.min(tags.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= tags.len() || stop.load(Ordering::Relaxed) {
                    break;
                }
                let r = check(src, dst, &tags[i], &opts.platforms);
                checked.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                ready.notify_all();
            });
        }
        let mut outcomes = Vec::with_capacity(tags.len());
        for (i, tag) in tags.iter().enumerate() {
            let mut c = checked.lock().unwrap_or_else(|e| e.into_inner());
            let r = loop {
                if let Some(r) = c[i].take() {
                    break r;
                }
                c = ready.wait(c).unwrap_or_else(|e| e.into_inner());
            };
            drop(c);
            let done = r.and_then(|o| match o.status {
                Status::Skipped => Ok(o),
                Status::Copied => copy_tag(src, dst, tag, o, opts, shown),
            });
            match done {
                Ok(o) => {
                    if lines {
                        println!("{}", line(i + 1, tags.len(), &o));
                    }
                    outcomes.push(o);
                }
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(named(i, e));
                }
            }
        }
        Ok(outcomes)
    })
}

/// What `tag` needs: `Copied` when the destination does not name the
/// digest it would get, else `Skipped`.
fn check(src: &End, dst: &End, tag: &str, platforms: &Platforms) -> Result<Outcome, Error> {
    let digest = wanted(src.source(tag)?.as_ref(), platforms)?;
    let status = if dst.current(tag)?.as_ref() == Some(&digest) {
        Status::Skipped
    } else {
        Status::Copied
    };
    Ok(Outcome {
        tag: tag.to_owned(),
        source: src.tag_name(tag),
        destination: dst.tag_name(tag),
        digest: digest.to_string(),
        status,
        layers_sent: 0,
        layers_present: 0,
        bytes_sent: 0,
    })
}

/// Copies `tag`, counting the layers it sent and found present.
fn copy_tag(
    src: &End,
    dst: &End,
    tag: &str,
    mut o: Outcome,
    opts: &CopyOptions,
    shown: &dyn Progress,
) -> Result<Outcome, Error> {
    let tally = Tally {
        inner: shown,
        sent: AtomicU64::new(0),
        present: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
    };
    let copied = copy(
        src.source(tag)?.as_ref(),
        dst.destination(tag, src)?,
        &[tag.to_owned()],
        opts,
        &tally,
    )?;
    // The tag may have moved between the check and the copy.
    o.digest = copied.top.digest.to_string();
    o.layers_sent = tally.sent.into_inner();
    o.layers_present = tally.present.into_inner();
    o.bytes_sent = tally.bytes.into_inner();
    Ok(o)
}

/// One tag's line, as `skopeo sync` logs each image ref.
fn line(n: usize, of: usize, o: &Outcome) -> String {
    match o.status {
        Status::Copied => format!(
            "Copied image ref {n}/{of} {} to {} ({}; {} layers sent, {} already present)",
            o.source, o.destination, o.digest, o.layers_sent, o.layers_present
        ),
        Status::Skipped => format!(
            "Skipped image ref {n}/{of} {}: {} already is {} (nothing moved)",
            o.source, o.destination, o.digest
        ),
    }
}
