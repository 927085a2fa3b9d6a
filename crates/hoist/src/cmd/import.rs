//! `hoist import FILE|- [REF]`: a rootfs tarball becomes a one-layer image, like `docker import`.

use super::{Context, Error, Format};
use crate::resolve::familiar;
use hoist_oci::Platform;
use hoist_transport::ImportOptions;
use std::io::Read;
use std::process::ExitCode;

/// Arguments of `hoist import`.
#[derive(clap::Args)]
pub struct Args {
    /// Apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR).
    #[arg(short, long)]
    change: Vec<String>,
    /// Set the commit message (the history comment) of the imported image.
    #[arg(short, long)]
    message: Option<String>,
    /// Record this platform (os/arch[/variant]) instead of the host's.
    #[arg(long)]
    platform: Option<String>,
    /// Output format: table (the image ID, as Docker prints it) or json.
    #[arg(long, default_value = "table")]
    format: Format,
    /// The tarball (plain, gzip or zstd), or `-` for stdin.
    file: String,
    /// The reference to tag the image with.
    reference: Option<String>,
}

/// Runs `hoist import`.
pub fn run(ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    let platform = args
        .platform
        .as_deref()
        .map(|p| {
            Platform::parse(p).ok_or_else(|| {
                Error::Msg(format!(
                    "invalid --platform {p:?}: expected os/arch[/variant], e.g. linux/amd64"
                ))
            })
        })
        .transpose()?;
    let input: Box<dyn Read + Send> = if args.file == "-" {
        if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            return Err(Error::Msg(
                "requested import from stdin, but stdin is a terminal; pipe a tarball in or give a FILE".into(),
            ));
        }
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(&args.file)
                .map_err(|e| Error::Msg(format!("open {}: {e}", args.file)))?,
        )
    };
    let opts = ImportOptions {
        source_name: args.file.clone(),
        reference: args.reference.clone(),
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        platform,
        changes: args.change.clone(),
        message: args.message.clone(),
    };
    let mut store = ctx.store()?;
    let imported =
        hoist_transport::import(&mut store, input, &opts).map_err(|e| Error::Msg(e.to_string()))?;
    if args.format == Format::Json {
        let v = serde_json::json!({
            "ID": imported.id.to_string(),
            "RepoTags": imported.reference.iter().map(|r| r.familiar()).collect::<Vec<_>>(),
            "Layer": imported.layer.to_string(),
            "DiffID": imported.diff_id.to_string(),
        });
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    if let (Some(r), Some(old)) = (&imported.reference, &imported.moved) {
        // Docker says nothing here, but a silently moved tag is easy to miss.
        eprintln!(
            "The tag {} moved from {old} to the imported image",
            familiar(&r.to_string())
        );
    }
    println!("{}", imported.id);
    Ok(ExitCode::SUCCESS)
}
