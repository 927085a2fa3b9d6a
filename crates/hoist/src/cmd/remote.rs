//! What the registry commands share: `docker://` references, the client
//! options every one of them takes (skopeo's flags), and error wording.

use super::Error;
use hoist_oci::Reference;
use hoist_registry_client::blocking::RegistryClient;
use hoist_registry_client::{Credentials, Options};
use std::path::PathBuf;

/// Flags of every command that talks to a registry (as skopeo spells them).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct RemoteOpts {
    /// Require HTTPS and verify certificates (`--tls-verify=false`: neither).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify: bool,
    /// Credentials `USER[:PASSWORD]` instead of those in config.json.
    #[arg(long, value_name = "USER[:PASSWORD]")]
    pub creds: Option<String>,
    /// The Docker config.json holding credentials (default $DOCKER_CONFIG/config.json, else ~/.docker/config.json).
    #[arg(long, value_name = "PATH")]
    pub authfile: Option<PathBuf>,
}

impl RemoteOpts {
    /// The client options these flags describe.
    pub fn options(&self) -> Options {
        Options {
            tls_verify: self.tls_verify,
            credentials: self.creds.as_ref().map(|c| match c.split_once(':') {
                Some((u, p)) => Credentials::new(u, p),
                None => Credentials::new(c.as_str(), ""),
            }),
            docker_config: self.authfile.clone(),
            ..Options::default()
        }
    }

    /// A client for `registry` (insecure registries also from hoist's config file).
    pub fn client(&self, registry: &str) -> Result<RegistryClient, Error> {
        let opts = self.options().with_config_file().map_err(registry_error)?;
        RegistryClient::new(registry, &opts).map_err(registry_error)
    }
}

/// A registry error as the command line says it.
pub fn registry_error(e: hoist_registry_client::Error) -> Error {
    Error::Msg(e.to_string())
}

/// Parses `docker://REF` (the prefix required unless `bare_ok`), normalised
/// as Docker does (`docker://alpine` is `docker.io/library/alpine`).
pub fn parse_docker(s: &str, bare_ok: bool) -> Result<Reference, Error> {
    let rest = match s.strip_prefix("docker://") {
        Some(r) => r,
        None if bare_ok => s,
        None => {
            return Err(Error::Msg(format!(
                "{s:?}: expected a registry reference docker://REGISTRY/REPOSITORY[:TAG|@DIGEST]"
            )))
        }
    };
    Ok(Reference::parse(rest.trim_start_matches('/'))?)
}

/// The manifest reference to ask for: the digest, else the tag, else `latest`.
pub fn manifest_ref(r: &Reference) -> String {
    match (r.digest(), r.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_owned(),
        (None, None) => "latest".to_owned(),
    }
}

/// Prints `v` as skopeo does: indented JSON.
pub fn print_json(v: &serde_json::Value) -> Result<(), Error> {
    let s = serde_json::to_string_pretty(v).map_err(|e| Error::Msg(e.to_string()))?;
    print_lines([s])
}

/// Prints lines to stdout; a closed pipe (`| head`) ends quietly.
pub fn print_lines<I: IntoIterator<Item = S>, S: AsRef<str>>(lines: I) -> Result<(), Error> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for l in lines {
        match writeln!(out, "{}", l.as_ref()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(Error::Msg(format!("stdout: {e}"))),
        }
    }
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::Msg(format!("stdout: {e}")))
        }
        _ => Ok(()),
    }
}
