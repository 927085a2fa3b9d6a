//! `hoist sync [--all] [--tags REGEX] docker://REG/REPO (docker://REG2/REPO2 | oci:DIR)`:
//! every tag of a repository to another registry under the same names, or
//! into one OCI layout with each tag as its ref name, as `skopeo sync` does.
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
    OciDirDestination, Platforms, Progress, RegistryDestination, RegistrySource,
};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

/// Arguments of `hoist sync`.
#[derive(clap::Args)]
pub struct Args {
    /// Copy every image of an index, and the index itself (default: this machine's image).
    #[arg(long)]
    all: bool,
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
    /// The source repository: docker://REGISTRY/REPOSITORY (a tag syncs only that tag).
    src: String,
    /// The destination: docker://REGISTRY/REPOSITORY or oci:DIR.
    dst: String,
}

/// Where a sync writes.
enum Target {
    /// A repository; each tag keeps its name.
    Registry(Reference, Box<Options>),
    /// One OCI layout; each tag becomes a ref name.
    Layout(PathBuf),
}

impl Target {
    fn parse(s: &str, opts: Options) -> Result<Self, Error> {
        if let Some(dir) = s.strip_prefix("oci:") {
            if dir.is_empty() || dir.contains(':') {
                return Err(Error::Msg(format!(
                    "{s:?}: sync writes into oci:DIR (each tag becomes a ref name); give no ref"
                )));
            }
            return Ok(Target::Layout(PathBuf::from(dir)));
        }
        if s.starts_with("docker://") {
            let r = parse_docker(s, false)?;
            if r.tag().is_some() || r.digest().is_some() {
                return Err(Error::Msg(format!(
                    "{s:?}: sync copies tags under their own names; give the repository without a tag"
                )));
            }
            return Ok(Target::Registry(r, Box::new(opts)));
        }
        Err(Error::Msg(format!(
            "{s:?}: sync writes into docker://REGISTRY/REPOSITORY or oci:DIR"
        )))
    }

    /// How the destination names `tag`, for messages.
    fn name(&self, tag: &str) -> String {
        match self {
            Target::Registry(r, _) => format!("docker://{}", r.with_tag(tag)),
            Target::Layout(dir) => format!("oci:{}:{tag}", dir.display()),
        }
    }

    /// What the destination's `tag` names now, if anything.
    fn current(&self, client: Option<&RegistryClient>, tag: &str) -> Result<Option<Digest>, Error> {
        match (self, client) {
            (Target::Registry(r, _), Some(c)) => Ok(c
                .head_manifest(r.path(), tag)
                .map_err(registry_error)?
                .map(|d| d.digest)),
            (Target::Layout(dir), _) => Ok(layout_refs(dir)?.remove(tag)),
            (Target::Registry(..), None) => Ok(None),
        }
    }

    /// A destination for `tag`, mounting from `src` when both are in one registry.
    fn open(&self, tag: &str, src: &Reference) -> Result<Box<dyn ImageDestination>, Error> {
        Ok(match self {
            Target::Registry(r, opts) => {
                let d = RegistryDestination::new(&r.with_tag(tag), opts)?;
                Box::new(if src.domain() == r.domain() {
                    d.with_mount_from(vec![src.path().to_owned()])
                } else {
                    d
                })
            }
            Target::Layout(dir) => Box::new(OciDirDestination::new(dir)?),
        })
    }
}

/// What happened to one tag.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Outcome {
    tag: String,
    source: String,
    destination: String,
    digest: String,
    /// `copied` or `skipped` (the destination already named this digest).
    status: &'static str,
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
    if *platforms == Platforms::All {
        return Ok(top.digest);
    }
    match Document::parse(&top.bytes, Some(&top.media_type)) {
        Ok(Document::Index(idx)) => {
            let host = Platform::host();
            choose(&idx.manifests, &host)
                .map(|d| d.digest.clone())
                .ok_or_else(|| {
                    Error::Msg(format!(
                        "index {} has no image for {host}; sync them all with --all",
                        top.digest
                    ))
                })
        }
        _ => Ok(top.digest),
    }
}

/// The tags to sync: the one the source names, else those of the repository the regex matches.
fn tags(args: &Args, src: &Reference, client: &RegistryClient) -> Result<Vec<String>, Error> {
    let re = match &args.tags {
        Some(t) => {
            Some(regex::Regex::new(t).map_err(|e| Error::Msg(format!("--tags {t:?}: {e}")))?)
        }
        None => None,
    };
    let all = match src.tag() {
        Some(t) => vec![t.to_owned()],
        None => client.list_tags(src.path(), None).map_err(registry_error)?,
    };
    Ok(all
        .into_iter()
        .filter(|t| re.as_ref().is_none_or(|re| re.is_match(t)))
        .collect())
}

/// Runs `hoist sync`.
pub fn run(_ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    let src = parse_docker(&args.src, false)?;
    if src.digest().is_some() {
        return Err(Error::Msg(format!(
            "{}: sync copies tags; give the repository (or one tag), not a digest",
            args.src
        )));
    }
    let src_opts = client_options(&args.src_creds, args.src_tls_verify)?;
    let target = Target::parse(
        &args.dst,
        client_options(&args.dest_creds, args.dest_tls_verify)?,
    )?;
    let src_client = RegistryClient::new(src.domain(), &src_opts).map_err(registry_error)?;
    let dst_client = match &target {
        Target::Registry(r, o) => Some(RegistryClient::new(r.domain(), o).map_err(registry_error)?),
        Target::Layout(_) => None,
    };
    let opts = CopyOptions {
        platforms: if args.all {
            Platforms::All
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

    let tags = tags(&args, &src, &src_client)?;
    let mut outcomes = Vec::with_capacity(tags.len());
    for (i, tag) in tags.iter().enumerate() {
        let from = src.with_tag(tag);
        let source = RegistrySource::open(&from, &src_opts)?;
        let digest = wanted(&source, &opts.platforms)?;
        let mut o = Outcome {
            tag: tag.clone(),
            source: format!("docker://{from}"),
            destination: target.name(tag),
            digest: digest.to_string(),
            status: "skipped",
            layers_sent: 0,
            layers_present: 0,
            bytes_sent: 0,
        };
        if target.current(dst_client.as_ref(), tag)?.as_ref() != Some(&digest) {
            let tally = Tally {
                inner: shown,
                sent: AtomicU64::new(0),
                present: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
            };
            copy(
                &source,
                target.open(tag, &src)?,
                std::slice::from_ref(tag),
                &opts,
                &tally,
            )?;
            o.status = "copied";
            o.layers_sent = tally.sent.into_inner();
            o.layers_present = tally.present.into_inner();
            o.bytes_sent = tally.bytes.into_inner();
        }
        if args.format == Format::Table {
            println!("{}", line(i + 1, tags.len(), &o));
        }
        outcomes.push(o);
    }
    let copied = outcomes.iter().filter(|o| o.status == "copied").count();
    match args.format {
        Format::Table => println!(
            "Synced {} tags from docker://{} to {}: {copied} copied, {} already present",
            outcomes.len(),
            src.name(),
            args.dst,
            outcomes.len() - copied
        ),
        Format::Json => print_json(&serde_json::json!({
            "source": format!("docker://{}", src.name()),
            "destination": args.dst,
            "copied": copied,
            "skipped": outcomes.len() - copied,
            "tags": outcomes,
        }))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// One tag's line, as `skopeo sync` logs each image ref.
fn line(n: usize, of: usize, o: &Outcome) -> String {
    match o.status {
        "copied" => format!(
            "Copied image ref {n}/{of} {} to {} ({}; {} layers sent, {} already present)",
            o.source, o.destination, o.digest, o.layers_sent, o.layers_present
        ),
        _ => format!(
            "Skipped image ref {n}/{of} {}: {} already is {} (nothing moved)",
            o.source, o.destination, o.digest
        ),
    }
}
