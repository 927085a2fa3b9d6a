//! `hoist version`: the program's version, as `docker version` shows its client.

use super::Error;
use crate::output::Formatter;
use std::process::ExitCode;

/// Arguments of `hoist version`.
#[derive(clap::Args)]
pub struct Args {
    /// Format output: json or a Go template (`{{.Client.Version}}`).
    #[arg(short, long, default_value = "")]
    format: String,
}

/// The Go name of this machine's architecture, as Docker prints it.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// What `--format` sees: Docker's `{Client, Server}`; hoist has no server.
fn value() -> serde_json::Value {
    serde_json::json!({
        "Client": {
            "Version": env!("CARGO_PKG_VERSION"),
            "Os": std::env::consts::OS,
            "Arch": go_arch(),
        },
        "Server": null,
    })
}

/// Runs `hoist version`.
pub fn run(args: Args) -> Result<ExitCode, Error> {
    let v = value();
    if !args.format.is_empty() {
        Formatter::new(&args.format, "")?.print(&serde_json::Value::Null, &[v])?;
        return Ok(ExitCode::SUCCESS);
    }
    // Docker's version template through a tabwriter of minimum width 20: one
    // column of labels, padded to 20.
    println!("Client:");
    println!(" {:<19}{}", "Version:", env!("CARGO_PKG_VERSION"));
    println!(" {:<19}{}/{}", "OS/Arch:", std::env::consts::OS, go_arch());
    Ok(ExitCode::SUCCESS)
}
