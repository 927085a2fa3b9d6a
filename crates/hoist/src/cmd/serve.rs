//! `hoist serve`: an OCI distribution registry on a directory laid out as
//! the CNCF distribution registry lays out its `rootdirectory`.

use super::{Context, Error};
use hoist_registry::{Auth, AuthConfig, IssueConfig, ServerConfig, TokenConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `hoist serve`. The directory is the global `--root`
/// (distribution's `storage.filesystem.rootdirectory`).
#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:5000")]
    addr: String,
    /// Refuse every push and delete.
    #[arg(long)]
    read_only: bool,
    /// Refuse deletes of manifests, tags and blobs (pushes still work).
    #[arg(long)]
    no_delete: bool,
    /// Mount blobs across repositories only when the client names `from`.
    #[arg(long)]
    no_auto_mount: bool,
    /// Require basic auth from this htpasswd file (bcrypt, `htpasswd -B`);
    /// with --token-* it authenticates users at the built-in token issuer.
    #[arg(long, value_name = "FILE")]
    htpasswd: Option<PathBuf>,
    /// Per-repository rights: lines `USER REPO-GLOB ACTIONS` (see README).
    #[arg(long, value_name = "FILE")]
    acl: Option<PathBuf>,
    /// Realm of the basic auth challenge.
    #[arg(long, value_name = "NAME", default_value = "hoist registry")]
    auth_realm: String,
    /// Require bearer tokens; clients get them at this URL.
    #[arg(long, value_name = "URL")]
    token_realm: Option<String>,
    /// Service name: the audience tokens must be issued for.
    #[arg(long, value_name = "NAME", requires = "token_realm")]
    token_service: Option<String>,
    /// Issuer name tokens must carry in `iss`.
    #[arg(long, value_name = "NAME", requires = "token_realm")]
    token_issuer: Option<String>,
    /// PEM certificates or public keys whose keys sign tokens.
    #[arg(long, value_name = "FILE", requires = "token_realm")]
    token_rootcertbundle: Option<PathBuf>,
    /// Serve the token issuer on the realm URL's path, signing with this
    /// PEM private key (PKCS#8 EC or RSA) whose certificate is in the bundle.
    #[arg(long, value_name = "FILE", requires = "token_realm")]
    token_key: Option<PathBuf>,
    /// Lifetime of issued tokens, in seconds.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 300,
        requires = "token_key"
    )]
    token_expiration: u64,
}

/// The auth settings from the flags, or None when auth is off.
fn auth_config(args: &Args) -> Result<Option<AuthConfig>, Error> {
    let token = match &args.token_realm {
        None => None,
        Some(realm) => {
            let need = |v: &Option<String>, flag: &str| {
                v.clone()
                    .ok_or_else(|| Error::Msg(format!("--token-realm needs --{flag} too")))
            };
            let bundle = args.token_rootcertbundle.clone().ok_or_else(|| {
                Error::Msg("--token-realm needs --token-rootcertbundle too".into())
            })?;
            let issue = match &args.token_key {
                None => None,
                Some(key) => Some(IssueConfig {
                    key: key.clone(),
                    path: hoist_registry::auth::url_path(realm)
                        .filter(|p| p.len() > 1)
                        .ok_or_else(|| {
                            Error::Msg(format!(
                                "--token-realm {realm:?} must be a URL with a path, such as \
                                 http://HOST:5000/token, for the issuer to serve on"
                            ))
                        })?
                        .to_owned(),
                    ttl: std::time::Duration::from_secs(args.token_expiration.max(1)),
                }),
            };
            Some(TokenConfig {
                realm: realm.clone(),
                service: need(&args.token_service, "token-service")?,
                issuer: need(&args.token_issuer, "token-issuer")?,
                rootcertbundle: bundle,
                issue,
            })
        }
    };
    if token.is_none() && args.htpasswd.is_none() {
        if args.acl.is_some() {
            return Err(Error::Msg(
                "--acl needs --htpasswd or --token-realm: rights are per user".into(),
            ));
        }
        return Ok(None);
    }
    Ok(Some(AuthConfig {
        realm: args.auth_realm.clone(),
        htpasswd: args.htpasswd.clone(),
        acl: args.acl.clone(),
        token,
    }))
}

/// Runs `hoist serve` until SIGINT or SIGTERM.
pub fn run(ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    let mut cfg = ServerConfig::new(ctx.registry_root("hoist serve")?.to_owned());
    cfg.read_only = args.read_only;
    cfg.delete_enabled = !args.no_delete;
    cfg.auto_mount = !args.no_auto_mount;
    if let Some(a) = auth_config(&args)? {
        let auth = Auth::load(&a).map_err(|e| Error::Msg(format!("hoist serve: {e}")))?;
        cfg.auth = Some(Arc::new(auth));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Msg(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.addr)
            .await
            .map_err(|e| Error::Msg(format!("cannot listen on {}: {e}", args.addr)))?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::Msg(format!("cannot listen on {}: {e}", args.addr)))?;
        eprintln!(
            "hoist serve: listening on http://{local}, storage {}",
            cfg.root.display()
        );
        if let Some(a) = &cfg.auth {
            eprintln!("hoist serve: auth {}", a.describe());
        }
        hoist_registry::serve(listener, cfg, hoist_registry::shutdown_signal())
            .await
            .map_err(|e| Error::Msg(format!("registry server failed: {e}")))
    })?;
    eprintln!("hoist serve: stopped");
    Ok(ExitCode::SUCCESS)
}
