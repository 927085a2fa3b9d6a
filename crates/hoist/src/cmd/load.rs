//! `hoist load`: images from a `docker save` or OCI archive into the store.

use super::{Context, Error, Format};
use crate::progress::Bars;
use crate::resolve::familiar;
use hoist_transport::{LoadInput, NoProgress, Progress};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `hoist load`.
#[derive(clap::Args)]
pub struct Args {
    /// Read from this archive instead of stdin.
    #[arg(short, long)]
    input: Option<PathBuf>,
    /// Suppress the progress output.
    #[arg(short, long)]
    quiet: bool,
    /// Output format: table (Docker's lines) or json.
    #[arg(long, default_value = "table")]
    format: Format,
}

/// Runs `hoist load`.
pub fn run(ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    // An OCI layout directory (what `hoist copy … oci:DIR` and skopeo write), else an archive.
    let input = match args.input.as_deref().filter(|p| p.is_dir()) {
        Some(dir) => Err(dir),
        None => Ok(open_input(args.input.as_deref())?),
    };
    let mut store = ctx.store()?;
    let bars = if args.quiet || args.format == Format::Json {
        None
    } else {
        Bars::new("Loading layer")
    };
    let progress: &dyn Progress = match &bars {
        Some(b) => b,
        None => &NoProgress,
    };
    let loaded = match input {
        Ok(archive) => hoist_transport::load(&mut store, archive, progress)?,
        Err(dir) => hoist_transport::load_dir(&mut store, dir, progress)?,
    };
    if args.format == Format::Json {
        let v: Vec<_> = loaded
            .iter()
            .map(|l| {
                serde_json::json!({
                    "ID": l.id.to_string(),
                    "RepoTags": l.tags.iter().map(|t| t.familiar()).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(ExitCode::SUCCESS);
    }
    for l in &loaded {
        for (tag, old) in &l.moved {
            println!(
                "The image {} already exists, renaming the old one with ID {old} to empty string",
                familiar(tag)
            );
        }
        if l.tags.is_empty() {
            println!("Loaded image ID: {}", l.id);
        }
        for t in &l.tags {
            println!("Loaded image: {}", t.familiar());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The archive to load: the file named, else stdin (a file when it is one,
/// so it loads as fast; a pipe streamed).
fn open_input(input: Option<&std::path::Path>) -> Result<LoadInput, Error> {
    Ok(match input {
        Some(p) if p.as_os_str() != "-" => LoadInput::File(
            std::fs::File::open(p).map_err(|e| Error::Msg(format!("open {}: {e}", p.display())))?,
        ),
        _ => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                return Err(Error::Msg(
                    "requested load from stdin, but stdin is empty (a terminal); use -i FILE or pipe an archive in".into(),
                ));
            }
            let stdin = std::io::stdin();
            let fd = std::os::fd::AsFd::as_fd(&stdin)
                .try_clone_to_owned()
                .map_err(|e| Error::Msg(format!("stdin: {e}")))?;
            let file = std::fs::File::from(fd);
            if file.metadata().is_ok_and(|m| m.is_file()) {
                // `hoist load < FILE`: read the file in place, as with -i.
                LoadInput::File(file)
            } else {
                // SAFETY: fcntl on stdin; failure (not a pipe) only costs speed.
                unsafe {
                    libc::fcntl(0, libc::F_SETPIPE_SZ, 1 << 20);
                }
                LoadInput::Stream(Box::new(stdin))
            }
        }
    })
}
