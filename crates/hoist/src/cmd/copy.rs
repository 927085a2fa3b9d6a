//! `hoist copy [--all] [--platform P] SRC DST`: one image from any transport
//! to any other, over the copy engine.

use super::remote::{parse_docker, registry_error, RemoteOpts};
use super::{Context, Error};
use crate::progress::Bars;
use crate::resolve;
use hoist_oci::{Descriptor, Digest, Platform, Reference};
use hoist_registry_client::Options;
use hoist_transport::{
    copy, ArchiveDestination, ArchiveKind, ArchiveSource, CopyOptions, FetchProgress, ImageSource,
    LoadInput, NoProgress, OciDirDestination, OciDirSource, Platforms, Progress,
    RegistryDestination, RegistrySource, SaveOutput, StoreDestination, StoreSource,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

/// Arguments of `hoist copy`.
#[derive(clap::Args)]
pub struct Args {
    /// Copy every image of an index, and the index itself.
    #[arg(long, conflicts_with = "platform")]
    all: bool,
    /// The image of an index to copy (os/arch[/variant]); default: this machine's.
    #[arg(long)]
    platform: Option<String>,
    /// Compress every layer to gzip or zstd, recompressing those in another format.
    #[arg(long, value_name = "FORMAT")]
    dest_compress_format: Option<hoist_transport::CompressFormat>,
    /// The level for --dest-compress-format (gzip 0-9, default 6; zstd 1-22, default 3).
    #[arg(long, value_name = "LEVEL", requires = "dest_compress_format")]
    dest_compress_level: Option<i32>,
    /// Copy the referrers (signatures, SBOMs…) of each manifest copied along with it.
    #[arg(long)]
    referrers: bool,
    /// Suppress the progress output.
    #[arg(short, long)]
    quiet: bool,
    /// Credentials `USER[:PASSWORD]` for a docker:// source, instead of those in config.json.
    #[arg(long, value_name = "USER[:PASSWORD]")]
    src_creds: Option<String>,
    /// Credentials `USER[:PASSWORD]` for a docker:// destination, instead of those in config.json.
    #[arg(long, value_name = "USER[:PASSWORD]")]
    dest_creds: Option<String>,
    /// A docker:// source needs HTTPS with verified certificates (`=false`: neither).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    src_tls_verify: bool,
    /// A docker:// destination needs HTTPS with verified certificates (`=false`: neither).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    dest_tls_verify: bool,
    /// Source: docker://REF, oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:REF] or store:REF.
    src: String,
    /// Destination: docker://REF, oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:REF] or store:REF.
    dst: String,
}

impl Args {
    /// The registry client options of the source's end.
    fn src_options(&self) -> Result<Options, Error> {
        client_options(&self.src_creds, self.src_tls_verify)
    }

    /// The registry client options of the destination's end.
    fn dest_options(&self) -> Result<Options, Error> {
        client_options(&self.dest_creds, self.dest_tls_verify)
    }
}

fn client_options(creds: &Option<String>, tls_verify: bool) -> Result<Options, Error> {
    RemoteOpts {
        tls_verify,
        creds: creds.clone(),
        authfile: None,
    }
    .options()
    .with_config_file()
    .map_err(registry_error)
}

/// A parsed transport reference.
enum Transport {
    Docker(Reference),
    Oci(PathBuf, Option<String>),
    Archive(ArchiveKind, PathBuf, Option<String>),
    Store(String),
}

/// Splits `PATH[:REF]` at the first colon, as skopeo does for `oci:`.
fn path_ref(rest: &str) -> (PathBuf, Option<String>) {
    match rest.split_once(':') {
        Some((p, r)) if !r.is_empty() => (PathBuf::from(p), Some(r.to_owned())),
        Some((p, _)) => (PathBuf::from(p), None),
        None => (PathBuf::from(rest), None),
    }
}

fn parse(s: &str) -> Result<Transport, Error> {
    let (kind, rest) = s.split_once(':').ok_or_else(|| {
        Error::Msg(format!(
            "{s:?}: give a transport: docker://REF, oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:REF] or store:REF"
        ))
    })?;
    if rest.is_empty() {
        return Err(Error::Msg(format!("{s:?}: nothing after {kind}:")));
    }
    Ok(match kind {
        "docker" => Transport::Docker(parse_docker(s, false)?),
        "oci" => {
            let (p, r) = path_ref(rest);
            Transport::Oci(p, r)
        }
        "oci-archive" => {
            let (p, r) = path_ref(rest);
            Transport::Archive(ArchiveKind::Oci, p, r)
        }
        "docker-archive" => {
            let (p, r) = path_ref(rest);
            Transport::Archive(ArchiveKind::Docker, p, r)
        }
        "store" => Transport::Store(rest.to_owned()),
        other => {
            return Err(Error::Msg(format!(
                "{s:?}: unknown transport {other:?}; hoist copy knows docker://, oci:, oci-archive:, docker-archive: and store:"
            )))
        }
    })
}

/// Runs `hoist copy`.
pub fn run(ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    let src = parse(&args.src)?;
    let dst = parse(&args.dst)?;
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
        compress: args.dest_compress_format.map_or(
            hoist_transport::Compress::Keep,
            hoist_transport::Compress::All,
        ),
        referrers: args.referrers,
        compress_level: args.dest_compress_level,
        ..CopyOptions::default()
    };
    let bars = if args.quiet {
        None
    } else {
        Bars::new("Copying blob").map(Arc::new)
    };
    let progress: &dyn Progress = match &bars {
        Some(b) => b.as_ref(),
        None => &NoProgress,
    };
    if matches!((&src, &dst), (Transport::Store(_), Transport::Store(_))) {
        return Err(Error::Msg(
            "both ends are the store: use `hoist tag SOURCE TARGET`".into(),
        ));
    }
    // The store is opened only when an end is the store or an archive must be staged.
    let needs_store = matches!(src, Transport::Store(_) | Transport::Archive(..))
        || matches!(dst, Transport::Store(_));
    let mut store = if needs_store {
        Some(ctx.store()?)
    } else {
        None
    };

    let copied = {
        let archive;
        let source: Box<dyn ImageSource + '_>;
        match &src {
            Transport::Docker(r) => {
                source = Box::new(RegistrySource::open(r, &args.src_options()?)?)
            }
            Transport::Oci(dir, r) => source = Box::new(OciDirSource::open(dir, r.as_deref())?),
            Transport::Archive(_, file, r) => {
                let f = std::fs::File::open(file)
                    .map_err(|e| Error::Msg(format!("open {}: {e}", file.display())))?;
                let st = store
                    .as_ref()
                    .ok_or_else(|| Error::Msg("no store".into()))?;
                archive = ArchiveSource::open(LoadInput::File(f), st, progress)?;
                source = Box::new(archive.find(r.as_deref())?);
            }
            Transport::Store(name) => {
                let st = store
                    .as_ref()
                    .ok_or_else(|| Error::Msg("no store".into()))?;
                source = Box::new(store_source(st, name)?);
            }
        }
        match &dst {
            Transport::Docker(r) => {
                let mut d = RegistryDestination::new(&destination_ref(r), &args.dest_options()?)?;
                // Within one registry, blobs are mounted rather than sent.
                if let Transport::Docker(s) = &src {
                    if s.domain() == r.domain() {
                        d = d.with_mount_from(vec![s.path().to_owned()]);
                    }
                }
                copy(source.as_ref(), Box::new(d), &[], &opts, progress)?
            }
            Transport::Oci(dir, r) => {
                let tags: Vec<String> = r.iter().cloned().collect();
                copy(
                    source.as_ref(),
                    Box::new(OciDirDestination::new(dir)?),
                    &tags,
                    &opts,
                    progress,
                )?
            }
            Transport::Archive(kind, file, r) => {
                let tags: Vec<String> = r.iter().cloned().collect();
                write_atomically(file, |f| {
                    let d = ArchiveDestination::new(SaveOutput::File(f), *kind);
                    copy(source.as_ref(), Box::new(d), &tags, &opts, progress).map_err(Error::from)
                })?
            }
            Transport::Store(name) => {
                drop(source);
                let fetched = bars.as_ref().map(fetch_bars);
                return copy_into_store(ctx, &args, name, &opts, progress, fetched);
            }
        }
    };
    drop(store.take());
    if !args.quiet {
        println!("Copied {}", copied.top.digest);
    }
    Ok(ExitCode::SUCCESS)
}

/// Bars for layers a registry source fetches into the store's ingest
/// before the engine sees them (it shows only what it streams itself).
fn fetch_bars(bars: &Arc<Bars>) -> FetchProgress {
    let bars = bars.clone();
    let done: Mutex<HashMap<Digest, u64>> = Mutex::new(HashMap::new());
    Arc::new(move |d: &Descriptor, n: u64| {
        let id: String = d.digest.hex().chars().take(12).collect();
        let mut done = done.lock().unwrap_or_else(|e| e.into_inner());
        let got = done.entry(d.digest.clone()).or_insert_with(|| {
            bars.start(&id, d.size);
            0
        });
        *got += n;
        bars.advance(&id, n);
        if *got >= d.size {
            bars.finish(&id, false);
        }
    })
}

/// A destination reference names a tag: Docker's `latest` when it gives neither tag nor digest.
fn destination_ref(r: &Reference) -> Reference {
    if r.digest().is_some() {
        r.clone()
    } else {
        r.clone().with_default_tag()
    }
}

/// What `name` tags in the store (an index stays an index), else the image it names by ID.
fn store_source(store: &hoist_store::Store, name: &str) -> Result<StoreSource, Error> {
    if let Ok(r) = hoist_oci::Reference::parse(name) {
        if let Some(s) = StoreSource::tagged(store, &r.with_default_tag().to_string())? {
            return Ok(s);
        }
    }
    let img = resolve::image(store, name)?;
    Ok(StoreSource::new(store, &img.image)?)
}

/// Copies into the store: the source is opened again with the store borrowed for writing.
fn copy_into_store(
    ctx: &Context,
    args: &Args,
    name: &str,
    opts: &CopyOptions,
    progress: &dyn Progress,
    fetched: Option<FetchProgress>,
) -> Result<ExitCode, Error> {
    let store = ctx.store()?;
    let tag = vec![name.to_owned()];
    let copied = match parse(&args.src)? {
        Transport::Docker(r) => {
            let mut src = RegistrySource::open(&r, &args.src_options()?)?.with_store(&store);
            if let Some(f) = fetched {
                src = src.with_progress(f);
            }
            copy(
                &src,
                Box::new(StoreDestination::new(&store)?),
                &tag,
                opts,
                progress,
            )?
        }
        Transport::Oci(dir, r) => {
            let src = OciDirSource::open(&dir, r.as_deref())?;
            copy(
                &src,
                Box::new(StoreDestination::new(&store)?),
                &tag,
                opts,
                progress,
            )?
        }
        Transport::Archive(_, file, r) => {
            let f = std::fs::File::open(&file)
                .map_err(|e| Error::Msg(format!("open {}: {e}", file.display())))?;
            let archive = ArchiveSource::open(LoadInput::File(f), &store, progress)?;
            let src = archive.find(r.as_deref())?;
            copy(
                &src,
                Box::new(StoreDestination::new(&store)?),
                &tag,
                opts,
                progress,
            )?
        }
        Transport::Store(_) => {
            return Err(Error::Msg(
                "both ends are the store: use `hoist tag SOURCE TARGET`".into(),
            ))
        }
    };
    if !args.quiet {
        println!("Copied {}", copied.top.digest);
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes next to the target, fsyncs, then renames: never a half-written archive under its name.
fn write_atomically<T>(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> Result<T, Error>,
) -> Result<T, Error> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::Msg(format!("{}: not a file name", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.hoist-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let io = |what: &str, p: &Path, e: std::io::Error| {
        Error::Msg(format!("{what} {}: {e}", p.display()))
    };
    let mut f = std::fs::File::create(&tmp).map_err(|e| io("create", &tmp, e))?;
    let result = write(&mut f).and_then(|v| {
        f.sync_all()
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| io("write", path, e))
            .map(|()| v)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
