//! `hoist login` and `hoist logout`: credentials in Docker's config.json
//! (or its credential helper), checked with the registry first, as
//! `docker login` does.

use super::remote::{registry_error, RemoteOpts};
use super::{Context, Error};
use hoist_registry_client::{normalize_registry, Credentials, DockerConfig};
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

/// Arguments of `hoist login`.
#[derive(clap::Args)]
pub struct Args {
    /// User name.
    #[arg(short, long)]
    username: Option<String>,
    /// Password (visible to other users in the process list; prefer --password-stdin).
    #[arg(short, long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password from stdin.
    #[arg(long)]
    password_stdin: bool,
    /// Verify the registry's certificate and require HTTPS (`=false`: neither).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    tls_verify: bool,
    /// The registry (default Docker Hub).
    #[arg(default_value = "docker.io")]
    registry: String,
}

/// Arguments of `hoist logout`.
#[derive(clap::Args)]
pub struct LogoutArgs {
    /// The registry (default Docker Hub).
    #[arg(default_value = "docker.io")]
    registry: String,
}

fn prompt(what: &str) -> Result<String, Error> {
    eprint!("{what}: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::Msg(format!("reading the {what}: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Reads a password from the terminal without echoing it.
fn prompt_hidden(what: &str) -> Result<String, Error> {
    // SAFETY: termios calls on stdin with a zeroed struct they fill.
    let mut old: libc::termios = unsafe { std::mem::zeroed() };
    let saved = unsafe { libc::tcgetattr(0, &mut old) } == 0;
    if saved {
        let mut quiet = old;
        quiet.c_lflag &= !libc::ECHO;
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &quiet) };
    }
    let r = prompt(what);
    if saved {
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &old) };
        eprintln!();
    }
    r
}

/// Runs `hoist login`.
pub fn run(_ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    let registry = normalize_registry(&args.registry);
    let tty = std::io::stdin().is_terminal();
    let username = match args.username {
        Some(u) => u,
        None if tty && !args.password_stdin => prompt("Username")?,
        None => {
            return Err(Error::Msg(
                "hoist login: give the user with -u USER (and -p PASS or --password-stdin)".into(),
            ))
        }
    };
    let password = match (args.password, args.password_stdin) {
        (Some(p), _) => p,
        (None, true) => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .map_err(|e| Error::Msg(format!("reading the password from stdin: {e}")))?;
            s.trim_end_matches(['\r', '\n']).to_owned()
        }
        (None, false) if tty => prompt_hidden("Password")?,
        (None, false) => {
            return Err(Error::Msg(
                "hoist login: give the password with -p PASS or --password-stdin".into(),
            ))
        }
    };
    if username.is_empty() || password.is_empty() {
        return Err(Error::Msg(
            "hoist login: the user and password must not be empty".into(),
        ));
    }
    let creds = Credentials::new(username, password);
    let opts = RemoteOpts {
        tls_verify: args.tls_verify,
        creds: None,
        authfile: None,
    };
    let mut o = opts.options().with_config_file().map_err(registry_error)?;
    o.credentials = Some(creds.clone());
    let client = hoist_registry_client::blocking::RegistryClient::new(&registry, &o)
        .map_err(registry_error)?;
    client
        .ping()
        .map_err(|e| Error::Msg(format!("login to {registry} failed: {e}")))?;
    let mut cfg = DockerConfig::load().map_err(registry_error)?;
    cfg.store_credentials(&registry, &creds)
        .map_err(registry_error)?;
    super::remote::print_lines(["Login Succeeded"])?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `hoist logout`.
pub fn run_logout(_ctx: &Context, args: LogoutArgs) -> Result<ExitCode, Error> {
    let registry = normalize_registry(&args.registry);
    let mut cfg = DockerConfig::load().map_err(registry_error)?;
    if cfg.erase_credentials(&registry).map_err(registry_error)? {
        super::remote::print_lines([format!("Removing login credentials for {registry}")])?;
    } else {
        super::remote::print_lines([format!("Not logged in to {registry}")])?;
    }
    Ok(ExitCode::SUCCESS)
}
