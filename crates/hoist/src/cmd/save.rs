//! `hoist save`: images from the store into one archive.

use super::{Context, Error};
use crate::resolve;
use hoist_transport::{SaveFormat, SaveItem, SaveOutput};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `hoist save`.
#[derive(clap::Args)]
pub struct Args {
    /// Write to this file instead of stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Archive layout: docker (as Docker 25+ writes it), docker-classic (as Docker before 25 did), or oci (an OCI image layout tar).
    #[arg(long, default_value = "docker", value_parser = ["docker", "docker-classic", "oci"])]
    format: String,
    /// Images to save, by reference or ID.
    #[arg(required = true)]
    images: Vec<String>,
}

/// Runs `hoist save`.
pub fn run(ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    let store = ctx.store_read()?;
    let mut items: Vec<SaveItem> = Vec::new();
    for name in &args.images {
        let r = resolve::image(&store, name)?;
        match items.iter_mut().find(|i| i.image.id == r.image.id) {
            Some(item) => item.names.extend(r.reference),
            None => items.push(SaveItem {
                names: r.reference.into_iter().collect(),
                image: r.image,
            }),
        }
    }
    let format = match args.format.as_str() {
        "oci" => SaveFormat::Oci,
        "docker-classic" => SaveFormat::DockerClassic,
        _ => SaveFormat::Docker,
    };
    match &args.output {
        Some(path) if path.as_os_str() != "-" => save_to_file(&store, &items, format, path)?,
        _ => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                return Err(Error::Msg(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect".into(),
                ));
            }
            // As a File, stdout gets the kernel's file-to-pipe splice for blobs.
            let fd = std::os::fd::AsFd::as_fd(&stdout)
                .try_clone_to_owned()
                .map_err(|e| Error::Msg(format!("stdout: {e}")))?;
            let mut out = std::fs::File::from(fd);
            grow_pipe(&out);
            hoist_transport::save(&store, &items, format, SaveOutput::File(&mut out))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes next to the target, fsyncs, then renames: never a half-written archive under its name.
fn save_to_file(
    store: &hoist_store::Store,
    items: &[SaveItem],
    format: SaveFormat,
    path: &std::path::Path,
) -> Result<(), Error> {
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
    let io = |what: &str, p: &std::path::Path, e: std::io::Error| {
        Error::Msg(format!("{what} {}: {e}", p.display()))
    };
    let mut f = std::fs::File::create(&tmp).map_err(|e| io("create", &tmp, e))?;
    let result = hoist_transport::save(store, items, format, SaveOutput::File(&mut f))
        .map_err(Error::from)
        .and_then(|()| f.sync_all().map_err(|e| io("fsync", &tmp, e)))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| io("rename to", path, e)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Asks for a 1 MiB pipe buffer (when stdout is a pipe) so fewer, larger
/// transfers cross to the reader; failure only costs speed.
fn grow_pipe(f: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl on a descriptor we own; errors are ignored on purpose.
    unsafe {
        libc::fcntl(f.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20);
    }
}
