//! `hoist push [--all-tags] [-q] REF`: a copy from the store to
//! `docker://REF`, printed as `docker push` prints it.

use super::remote::{parse_docker, registry_error, RemoteOpts};
use super::{Context, Error};
use crate::docker_progress::{Announcing, DockerProgress, Verb};
use hoist_oci::Reference;
use hoist_registry_client::Options;
use hoist_store::Store;
use hoist_transport::{
    copy, Compress, CompressFormat, CopyOptions, Platforms, RegistryDestination, StoreSource,
};
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `hoist push`.
#[derive(clap::Args)]
pub struct Args {
    /// Push every tag of the repository that the store holds.
    #[arg(short = 'a', long)]
    all_tags: bool,
    /// Print only the image's name.
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    remote: RemoteOpts,
    /// NAME[:TAG], as Docker writes it (`localhost:5000/app:1`).
    reference: String,
}

/// Runs `hoist push`.
pub fn run(ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    let r = parse_docker(&args.reference, true)?;
    if r.digest().is_some() {
        return Err(Error::Msg(format!(
            "{}: push takes a tag, not a digest",
            args.reference
        )));
    }
    let opts = args
        .remote
        .options()
        .with_config_file()
        .map_err(registry_error)?;
    let store = ctx.store_read()?;
    let refs: Vec<Reference> = if args.all_tags {
        if r.tag().is_some() {
            return Err(Error::Msg(format!(
                "{}: a tag cannot be used with --all-tags/-a",
                args.reference
            )));
        }
        let name = r.name();
        let mut refs = Vec::new();
        for t in store.index().tags()? {
            if let Ok(tr) = Reference::parse(&t.name) {
                if tr.name() == name && tr.tag().is_some() {
                    refs.push(tr);
                }
            }
        }
        if refs.is_empty() {
            return Err(Error::Msg(format!(
                "An image does not exist locally with the name: {}",
                r.familiar_name()
            )));
        }
        refs
    } else {
        if r.tag().is_none() && !args.quiet {
            println!("Using default tag: latest");
        }
        vec![r.clone().with_default_tag()]
    };
    if !args.quiet {
        println!("The push refers to repository [{}]", r.name());
    }
    let mounts = mount_candidates(&store, &r)?;
    for one in &refs {
        push_one(&store, one, &opts, &mounts, args.quiet)?;
    }
    if args.quiet {
        println!("{}", if args.all_tags { &r } else { &refs[0] });
    }
    Ok(ExitCode::SUCCESS)
}

/// Repositories a blob is tried to be mounted from, as Docker tries at most three.
const MAX_MOUNT_SOURCES: usize = 3;

/// Other repositories of the same registry that the store has tags of:
/// what was pulled from or pushed to them can be mounted rather than sent.
fn mount_candidates(store: &Store, r: &Reference) -> Result<Vec<String>, Error> {
    let mut repos: Vec<String> = Vec::new();
    for t in store.index().tags()? {
        if let Ok(tr) = Reference::parse(&t.name) {
            if tr.domain() == r.domain()
                && tr.path() != r.path()
                && !repos.iter().any(|x| x == tr.path())
            {
                repos.push(tr.path().to_owned());
            }
        }
    }
    repos.truncate(MAX_MOUNT_SOURCES);
    Ok(repos)
}

/// Pushes one tag of the store.
fn push_one(
    store: &Store,
    r: &Reference,
    opts: &Options,
    mounts: &[String],
    quiet: bool,
) -> Result<(), Error> {
    let src = StoreSource::tagged(store, &r.to_string())?.ok_or_else(|| {
        Error::Msg(format!(
            "An image does not exist locally with the tag: {}",
            r.familiar()
        ))
    })?;
    let progress = Arc::new(DockerProgress::new(Verb::Push, quiet));
    let dst = {
        let p = progress.clone();
        RegistryDestination::new(r, opts)?
            .with_mount_from(mounts.to_vec())
            .with_mount_report(Arc::new(move |d, from| p.mounted(d, from)))
    };
    let absent = |_: &hoist_oci::Digest| false;
    let announcing = Announcing::new(&src, &progress, &absent);
    // What the tag names goes whole: an index with every image the store has of it.
    // Layers stored uncompressed (loaded, imported) go out gzipped, as `docker push` sends them.
    let copy_opts = CopyOptions {
        platforms: Platforms::All,
        compress: Compress::Uncompressed(CompressFormat::Gzip),
        ..CopyOptions::default()
    };
    let copied = copy(
        &announcing,
        Box::new(dst),
        &[],
        &copy_opts,
        progress.as_ref(),
    )?;
    if !quiet {
        println!(
            "{}: digest: {} size: {}",
            r.tag().unwrap_or("latest"),
            copied.top.digest,
            copied.top.bytes.len()
        );
    }
    Ok(())
}
