//! `hoist pull [--platform P | --all-platforms] [-a] [-q] REF`: a copy from
//! `docker://REF` into the store, printed as `docker pull` prints it.

use super::remote::{parse_docker, registry_error, RemoteOpts};
use super::{Context, Error};
use crate::docker_progress::{Announcing, DockerProgress, Verb};
use hoist_oci::{Platform, Reference};
use hoist_registry_client::blocking::RegistryClient;
use hoist_registry_client::Options;
use hoist_store::{Store, TagTarget};
use hoist_transport::{
    copy, CopyOptions, ImageSource, Platforms, RegistrySource, StoreDestination,
};
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `hoist pull`.
#[derive(clap::Args)]
pub struct Args {
    /// The image of a multi-platform image to pull (os/arch[/variant]); default: this machine's.
    #[arg(long, conflicts_with = "all_platforms")]
    platform: Option<String>,
    /// Pull every platform of a multi-platform image, and its index.
    #[arg(long)]
    all_platforms: bool,
    /// Pull every tagged image of the repository.
    #[arg(short = 'a', long)]
    all_tags: bool,
    /// Print only the image's name.
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    remote: RemoteOpts,
    /// NAME[:TAG|@DIGEST], as Docker writes it (`alpine`, `localhost:5000/app:1`).
    reference: String,
}

/// Runs `hoist pull`.
pub fn run(ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    let r = parse_docker(&args.reference, true)?;
    let opts = args
        .remote
        .options()
        .with_config_file()
        .map_err(registry_error)?;
    let copy_opts = CopyOptions {
        platforms: if args.all_platforms {
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
    let untagged = r.tag().is_none() && r.digest().is_none();
    let refs = if args.all_tags {
        if !untagged {
            return Err(Error::Msg(format!(
                "{}: a tag or digest cannot be used with --all-tags/-a",
                args.reference
            )));
        }
        let client = RegistryClient::new(r.domain(), &opts).map_err(registry_error)?;
        let tags = client.list_tags(r.path(), None).map_err(registry_error)?;
        if tags.is_empty() {
            return Err(Error::Msg(format!(
                "{}: the repository has no tags",
                r.name()
            )));
        }
        tags.iter().map(|t| r.with_tag(t)).collect()
    } else {
        if untagged && !args.quiet {
            println!("Using default tag: latest");
        }
        vec![r.clone().with_default_tag()]
    };
    let store = ctx.store()?;
    let mut newer = false;
    for one in &refs {
        newer |= pull_one(&store, one, &opts, &copy_opts, args.quiet)?;
    }
    let shown = if args.all_tags {
        r.clone()
    } else {
        refs[0].clone()
    };
    if !args.quiet {
        let status = if newer {
            "Downloaded newer image for"
        } else {
            "Image is up to date for"
        };
        println!("Status: {status} {}", shown.familiar());
    }
    println!("{shown}");
    Ok(ExitCode::SUCCESS)
}

/// Pulls one reference into the store; true when its tag moved (a newer image).
fn pull_one(
    store: &Store,
    r: &Reference,
    opts: &Options,
    copy_opts: &CopyOptions,
    quiet: bool,
) -> Result<bool, Error> {
    let name = r.to_string();
    if !quiet {
        let what = match (r.tag(), r.digest()) {
            (_, Some(d)) => d.to_string(),
            (Some(t), None) => t.to_owned(),
            (None, None) => "latest".to_owned(),
        };
        println!("{what}: Pulling from {}", r.path());
    }
    // What the name stood for before: the same digest after means "up to date".
    let before = match r.digest() {
        Some(d) => (store.index().manifest(d)?.is_some() || store.index().index(d)?.is_some())
            .then(|| d.clone()),
        None => match store.index().tag_target(&name)? {
            Some(TagTarget::Manifest { digest, .. }) | Some(TagTarget::Index(digest)) => {
                Some(digest)
            }
            None => None,
        },
    };
    let progress = Arc::new(DockerProgress::new(Verb::Pull, quiet));
    let src = {
        let p = progress.clone();
        RegistrySource::open(r, opts)?
            .with_store(store)
            .with_progress(Arc::new(move |d, n| p.fetched(d, n)))
    };
    // The store's index is not shared across threads: ask the file system.
    let blobs = store.root().join("blobs");
    let present =
        |d: &hoist_oci::Digest| blobs.join(d.algorithm().as_str()).join(d.hex()).is_file();
    let progress_ref: &DockerProgress = &progress;
    let announcing = Announcing::new(&src, progress_ref, &present);
    // A pull by digest keeps the image untagged, as Docker does.
    let tags: Vec<String> = if r.digest().is_some() {
        Vec::new()
    } else {
        vec![name.clone()]
    };
    let copied = copy(
        &announcing,
        Box::new(StoreDestination::new(store)?),
        &tags,
        copy_opts,
        progress_ref,
    )?;
    progress_ref.complete();
    let top = src.top()?;
    if !quiet {
        println!("Digest: {}", top.digest);
    }
    Ok(before.as_ref() != Some(&copied.top.digest) && before.as_ref() != Some(&top.digest))
}
