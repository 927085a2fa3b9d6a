//! `hoist serve`: an OCI distribution registry on a directory laid out as
//! the CNCF distribution registry lays out its `rootdirectory`, or on an S3
//! bucket holding the same layout.

use super::storage::StorageArgs;
use super::{Context, Error};
use hoist_registry::config::{FileConfig, Loaded};
use hoist_registry::{Auth, AuthConfig, IssueConfig, ServerConfig, TokenConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Where `hoist serve` listens when neither `--addr` nor the config file says.
const DEFAULT_ADDR: &str = "127.0.0.1:5000";

/// Arguments of `hoist serve`. The directory is the global `--root`
/// (distribution's `storage.filesystem.rootdirectory`) unless `--storage s3`.
#[derive(clap::Args)]
pub struct Args {
    /// A distribution-style config.yml (the file docker-registry runs with);
    /// flags given on the command line win over it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on, HOST:PORT [default: 127.0.0.1:5000].
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
pub fn run(ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    let loaded = match &args.config {
        Some(path) => {
            let l = FileConfig::read(path)
                .and_then(|f| f.load(path))
                .map_err(|e| Error::Msg(e.to_string()))?;
            for key in &l.ignored {
                eprintln!(
                    "hoist serve: {}: ignoring {key} (hoist has no use for it)",
                    path.display()
                );
            }
            Some(l)
        }
        None => None,
    };
    // The file gives the base; every flag given on the command line wins.
    let Loaded {
        server: mut cfg,
        addr: file_addr,
        tls: file_tls,
        metrics_addr: file_metrics,
        auth: file_auth,
        ..
    } = match loaded {
        Some(mut l) => {
            if args.storage.given(ctx) {
                l.server.storage = args.storage.config(ctx, "hoist serve")?;
            }
            l
        }
        None => Loaded {
            server: ServerConfig::with_storage(args.storage.config(ctx, "hoist serve")?),
            addr: None,
            tls: None,
            metrics_addr: None,
            auth: None,
            log_level: None,
            ignored: Vec::new(),
        },
    };
    let addr = args
        .addr
        .clone()
        .or(file_addr)
        .unwrap_or_else(|| DEFAULT_ADDR.to_owned());
    cfg.read_only |= args.read_only;
    if args.no_delete {
        cfg.delete_enabled = false;
    }
    if args.no_auto_mount {
        cfg.auto_mount = false;
    }
    let (metrics_addr, metrics_from) = match &args.metrics_addr {
        Some(a) => (Some(a.clone()), "--metrics-addr"),
        None => (file_metrics, "http.debug.addr"),
    };
    cfg.metrics_on_main = metrics_addr.is_none();
    // Read the certificate before binding, so a bad file fails at once.
    let tls_files = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        _ => file_tls,
    };
    let tls = match tls_files {
        Some((cert, key)) => Some(Arc::new(
            hoist_registry::tls::load_server_config(&cert, &key)
                .map_err(|e| Error::Msg(e.to_string()))?,
        )),
        None => None,
    };
    let auth = match auth_config(&args)? {
        Some(a) => Some(a),
        None => file_auth,
    };
    if let Some(a) = auth {
        let auth = Auth::load(&a).map_err(|e| Error::Msg(format!("hoist serve: {e}")))?;
        cfg.auth = Some(Arc::new(auth));
    }
    if !args.proxy.is_empty() {
        let proxy = hoist_registry::ProxyConfig::from_specs(&args.proxy)
            .map_err(|e| Error::Msg(e.to_string()))?;
        cfg.proxy = Some(proxy);
    }
    // Blocking work is short file I/O (or one S3 request): a few threads per
    // core keep the disk busy, where tokio's default of 512 would let a burst
    // of clients start hundreds, each keeping its stack and malloc arena.
    let blocking_threads = std::thread::available_parallelism().map_or(2, |n| n.get()) * 8;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(blocking_threads)
        .build()
        .map_err(|e| Error::Msg(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| Error::Msg(format!("cannot listen on {addr}: {e}")))?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::Msg(format!("cannot listen on {addr}: {e}")))?;
        if let Some(maddr) = &metrics_addr {
            let ml = tokio::net::TcpListener::bind(maddr).await.map_err(|e| {
                Error::Msg(format!("cannot listen on {maddr} ({metrics_from}): {e}"))
            })?;
            let mlocal = ml
                .local_addr()
                .map_err(|e| Error::Msg(format!("cannot listen on {maddr}: {e}")))?;
            eprintln!("hoist serve: metrics on http://{mlocal}/metrics");
            let metrics = cfg.metrics.clone();
            tokio::spawn(async move {
                if let Err(e) = hoist_registry::metrics::serve_metrics(ml, metrics).await {
                    tracing::error!(error = %e, "metrics server failed");
                }
            });
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        eprintln!(
            "hoist serve: listening on {scheme}://{local}, storage {}",
            cfg.storage
        );
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
        let shutdown = hoist_registry::shutdown_signal();
        match tls {
            Some(tls) => {
                let listener = hoist_registry::tls::TlsListener::new(listener, tls)
                    .map_err(|e| Error::Msg(format!("cannot listen on {addr}: {e}")))?;
                hoist_registry::serve(listener, cfg, shutdown).await
            }
            None => hoist_registry::serve(listener, cfg, shutdown).await,
        }
        .map_err(|e| Error::Msg(format!("registry server failed: {e}")))
    })?;
    eprintln!("hoist serve: stopped");
    Ok(ExitCode::SUCCESS)
}
