//! `hoist serve`: an OCI distribution registry on a directory laid out as
//! the CNCF distribution registry lays out its `rootdirectory`, or on an S3
//! bucket holding the same layout.

use super::storage::StorageArgs;
use super::Error;
use hoist_registry::config::FileConfig;
use hoist_registry::{
    AuthConfig, BuildError, IssueConfig, ProxyConfig, Registry, RegistryBuilder, StorageConfig,
    TokenConfig,
};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where `hoist serve` stores when neither `--root`, `HOIST_REGISTRY_ROOT`
/// nor a config file says: a directory of its own beside the caller, never
/// the image store.
const DEFAULT_ROOT: &str = "./registry";

/// Arguments of `hoist serve`. The directory is `--root` or
/// `HOIST_REGISTRY_ROOT` (distribution's `storage.filesystem.rootdirectory`,
/// default `./registry`) unless `--storage s3`.
#[derive(clap::Args)]
pub struct Args {
    /// A distribution-style config.yml (the file docker-registry runs with);
    /// flags given on the command line win over it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on, HOST:PORT, or :PORT for every address
    /// [default: 127.0.0.1:5000].
    #[arg(long)]
    addr: Option<String>,
    /// Refuse every push and delete.
    #[arg(long)]
    read_only: bool,
    /// Refuse deletes of manifests, tags and blobs (pushes still work).
    #[arg(long)]
    no_delete: bool,
    /// Mount blobs across repositories only when the client names `from`.
    #[arg(long)]
    no_auto_mount: bool,
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, RSA or EC).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve Prometheus `/metrics` (plain HTTP) on this HOST:PORT instead of
    /// on --addr.
    #[arg(long, value_name = "HOST:PORT")]
    metrics_addr: Option<String>,
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
    /// Pull-through cache: fetch repositories that are not local from an
    /// upstream registry. `URL` mirrors every repository; `PREFIX=URL`
    /// mirrors PREFIX/<repo> as <repo> (repeatable). Credentials go in the
    /// URL: https://user:password@host.
    #[arg(long = "proxy", value_name = "[PREFIX=]URL")]
    proxy: Vec<String>,
    #[command(flatten)]
    storage: StorageArgs,
}

impl Args {
    /// The log filter the config file asks for (`log.level`, and access
    /// lines off with `log.accesslog.disabled`), read before logging starts.
    /// A file that cannot be read gives none here; `run` reports it.
    pub fn log_filter(&self) -> Option<String> {
        let file = FileConfig::read(self.config.as_ref()?).ok()?;
        let level = file.log.level.as_deref().unwrap_or("warn");
        Some(if file.log.accesslog.disabled {
            format!("{level},hoist_registry::access=off")
        } else {
            level.to_owned()
        })
    }
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
pub fn run(args: Args) -> Result<ExitCode, Error> {
    let err = |e: BuildError| Error::Msg(format!("hoist serve: {e}"));
    let default_root = Path::new(DEFAULT_ROOT);
    // The file gives the base; every flag given on the command line wins.
    let mut b = match &args.config {
        Some(path) => {
            let mut b = RegistryBuilder::from_config_file(path).map_err(err)?;
            for key in b.ignored_keys() {
                eprintln!(
                    "hoist serve: {}: ignoring {key} (hoist has no use for it)",
                    path.display()
                );
            }
            if args.storage.given() {
                let storage = args.storage.config("hoist serve", Some(default_root))?;
                b = b.with_storage(storage).map_err(err)?;
            }
            b
        }
        None => {
            let storage = args.storage.config("hoist serve", Some(default_root))?;
            RegistryBuilder::new(storage).map_err(err)?
        }
    };
    if let Some(a) = &args.addr {
        b = b.with_addr(a).map_err(err)?;
    }
    if args.read_only {
        b = b.with_read_only(true);
    }
    if args.no_delete {
        b = b.with_delete(false);
    }
    if args.no_auto_mount {
        b = b.with_auto_mount(false);
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        b = b.with_tls(cert, key).map_err(err)?;
    }
    if let Some(m) = &args.metrics_addr {
        b = b.with_metrics_addr(m).map_err(err)?;
    }
    if let Some(a) = auth_config(&args)? {
        b = b.with_auth(a).map_err(err)?;
    }
    if !args.proxy.is_empty() {
        let proxy = ProxyConfig::from_specs(&args.proxy).map_err(|e| Error::Msg(e.to_string()))?;
        b = b.with_proxy(proxy).map_err(err)?;
    }
    let registry = b.build().map_err(err)?;
    print_start(&registry);
    registry.run().map_err(err)?;
    eprintln!("hoist serve: stopped");
    Ok(ExitCode::SUCCESS)
}

/// Says where the registry stores, how to push to it and browse it.
fn print_start(registry: &Registry) {
    let cfg = registry.config();
    let url = registry.url();
    eprintln!(
        "hoist serve: listening on {}://{}, storage {}",
        registry.scheme(),
        registry.local_addr(),
        cfg.storage
    );
    if let Some(m) = registry.metrics_addr() {
        eprintln!("hoist serve: metrics on http://{m}/metrics");
    }
    match &cfg.storage {
        StorageConfig::Filesystem(root) => {
            let abs = std::path::absolute(root).unwrap_or_else(|_| root.clone());
            eprintln!(
                "hoist serve: storing in {} (distribution's layout, docker/registry/v2)",
                abs.display()
            );
        }
        StorageConfig::S3(s3) => eprintln!("hoist serve: storing in {s3}"),
        StorageConfig::Memory(_) => eprintln!("hoist serve: storing in memory (lost at exit)"),
    }
    for up in cfg.proxy.iter().flat_map(|p| &p.upstreams) {
        // The URL holds no credentials (they were split off when parsed).
        match &up.prefix {
            Some(p) => eprintln!("hoist serve: {p}/* is a pull-through cache of {}", up.url),
            None => eprintln!("hoist serve: pull-through cache of {}", up.url),
        }
    }
    if let Some(a) = &cfg.auth {
        eprintln!("hoist serve: auth {}", a.describe());
    }
    let host = url.split_once("://").map_or(url.as_str(), |(_, h)| h);
    if !cfg.read_only {
        eprintln!(
            "hoist serve: push with  docker tag IMAGE {host}/NAME && docker push {host}/NAME"
        );
        eprintln!("hoist serve:        or  hoist tag IMAGE {host}/NAME && hoist push {host}/NAME");
    }
    eprintln!("hoist serve: browse at  {url}/");
    eprintln!("hoist serve: Ctrl-C stops it");
}
