//! Test support for hoist (dev-only, never published).
//!
//! * [`docker()`]: the private `dockerd` that `scripts/test.sh` starts for the
//!   whole run. Panics — never skips — when the test is not run under that
//!   script, so an interop test can not silently pass without its peer.
//! * [`hoist_bin()`] / [`hoist_bin!`]: the built `hoist` binary.
//! * [`TempStore`], [`run_hoist`]: a throw-away `HOIST_ROOT` and running hoist in it.
//! * [`require_tool`]: a peer tool (`skopeo`, `umoci`, `crun`, …) that must be there.
//! * [`Registry`]: a throw-away `docker-registry` (the CNCF distribution
//!   registry) on a loopback port.
//! * [`certs::TestCerts`]: a test CA and server certificate (`openssl`).
//! * [`browser`]: headless Chromium dumping a page's DOM.
//! * [`serve::HoistServe`]: a `hoist serve` process on a loopback port.
//! * [`S3Server`]: a throw-away S3 server (`s3s-fs`) on a loopback port.
//! * [`SecondDockerd`]: a second dockerd with its own data-root.
//!
//! The fixture images built by `scripts/test.sh` are [`BASE_IMAGE`] (busybox
//! rootfs, one layer, `docker import`) and [`APP_IMAGE`] (three layers with a
//! whiteout, an opaque directory, a symlink and a hardlink) whose command
//! prints [`APP_OUTPUT`] only when its layers are stacked correctly. Tests
//! run in parallel and share the daemon: never `rmi` or re-tag the fixtures;
//! make a private copy with [`Docker::tag_unique`] and work on that.
//!
//! ```no_run
//! use hoist_testkit::*;
//! let docker = docker();
//! let store = TempStore::new();
//! let img = docker.tag_unique(APP_IMAGE);
//! let scratch = scratch_dir();
//! let archive = scratch.path().join("app.tar");
//! docker.save(&img, &archive);
//! store.hoist_ok(["load", "-i", archive.to_str().unwrap()]);
//! ```

pub mod browser;
pub mod certs;
pub mod serve;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod s3;
pub use s3::{s3s_fs_bin, S3Server, S3_ACCESS_KEY, S3_SECRET_KEY};
mod second_dockerd;
pub use second_dockerd::SecondDockerd;

/// `docker import` of a busybox-static rootfs: one layer, `CMD ["/bin/sh"]`.
pub const BASE_IMAGE: &str = "hoist-test/base:latest";
/// Three layers on [`BASE_IMAGE`]: a deleted file (whiteout), a replaced
/// directory (opaque whiteout), a symlink and a hardlink. `docker run` prints
/// [`APP_OUTPUT`] (and exits 0) only if those came through intact.
pub const APP_IMAGE: &str = "hoist-test/app:latest";
/// What `docker run --rm APP_IMAGE` prints (one line).
pub const APP_OUTPUT: &str = "hoist-test-ok";

const RUN_UNDER_SCRIPT: &str =
    "interop tests need the private dockerd that scripts/test.sh starts; run bash scripts/test.sh";

/// A name unique in this machine and run: `<prefix>-<pid>-<n>-<nanos>`,
/// lower case so it is also a valid repository name.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

fn display_args<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    args.into_iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Panics, showing the command, exit status, stdout and stderr, unless `out`
/// is a success. Returns stdout as a string.
pub fn assert_success(what: &str, out: &Output) -> String {
    if !out.status.success() {
        panic!(
            "{what} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Panics unless `out` is a failure; returns stderr as a string.
pub fn assert_failure(what: &str, out: &Output) -> String {
    if out.status.success() {
        panic!(
            "{what} succeeded but should have failed\n--- stdout ---\n{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// ------------------------------------------------------------------ docker

/// The private dockerd of this test run, with the client that works with it.
#[derive(Debug, Clone)]
pub struct Docker {
    cli: PathBuf,
    host: String,
}

/// The private dockerd that `scripts/test.sh` started (`DOCKER_HOST`), and the
/// client it chose (`HOIST_TEST_DOCKER_CLI`, default `/usr/bin/docker`).
///
/// Panics with a clear message when `HOIST_TEST_DOCKER` is unset: interop
/// tests never skip silently.
pub fn docker() -> Docker {
    match std::env::var_os("HOIST_TEST_DOCKER") {
        Some(v) if !v.is_empty() && v != "0" => {}
        _ => panic!("HOIST_TEST_DOCKER is not set: {RUN_UNDER_SCRIPT}"),
    }
    let host = std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| panic!("DOCKER_HOST is not set: {RUN_UNDER_SCRIPT}"));
    let cli = std::env::var_os("HOIST_TEST_DOCKER_CLI")
        .filter(|c| !c.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/docker"));
    if !cli.exists() {
        panic!(
            "docker client {} not found: {RUN_UNDER_SCRIPT}",
            cli.display()
        );
    }
    Docker { cli, host }
}

/// A client for another dockerd that a test started itself (`host` is
/// `unix:///…/docker.sock`), with the client binary `cli`.
pub fn docker_at(cli: &Path, host: &str) -> Docker {
    Docker {
        cli: cli.to_path_buf(),
        host: host.to_owned(),
    }
}

impl Docker {
    /// Path of the docker client.
    pub fn cli(&self) -> &Path {
        &self.cli
    }

    /// `unix:///…/docker.sock` of the private daemon.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// skopeo does NOT read `DOCKER_HOST`: pass the host explicitly, as
    /// `skopeo inspect --daemon-host HOST docker-daemon:REF` or
    /// `skopeo copy --src-daemon-host HOST` / `--dest-daemon-host HOST`.
    /// This returns `["--src-daemon-host", host]`, etc. for `kind` = "src",
    /// "dest" or "" (inspect).
    pub fn skopeo_host_args(&self, kind: &str) -> [String; 2] {
        let flag = if kind.is_empty() {
            "--daemon-host".to_owned()
        } else {
            format!("--{kind}-daemon-host")
        };
        [flag, self.host.clone()]
    }

    /// The socket path (the part after `unix://`), for talking to the Engine
    /// API directly (hoist's `docker-daemon:` transport).
    pub fn socket(&self) -> PathBuf {
        PathBuf::from(self.host.strip_prefix("unix://").unwrap_or(&self.host))
    }

    /// A `docker` command aimed at the private daemon; stdin is null.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.cli);
        c.env("DOCKER_HOST", &self.host)
            .env("DOCKER_BUILDKIT", "0")
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null());
        c
    }

    /// Runs `docker ARGS…` and returns its output, whatever the exit status.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        self.command().args(&args).output().unwrap_or_else(|e| {
            panic!(
                "cannot start {} {}: {e}",
                self.cli.display(),
                display_args(&args)
            )
        })
    }

    /// Runs `docker ARGS…`, panics (showing stderr) unless it succeeds, and
    /// returns stdout.
    pub fn run_ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let out = self.run(&args);
        assert_success(&format!("docker {}", display_args(&args)), &out)
    }

    /// `docker save -o PATH IMAGE`.
    pub fn save(&self, image: &str, path: &Path) {
        self.save_many(&[image], path)
    }

    /// `docker save -o PATH IMAGE…` (several images in one archive).
    pub fn save_many(&self, images: &[&str], path: &Path) {
        let mut args = vec![OsStr::new("save"), OsStr::new("-o"), path.as_os_str()];
        args.extend(images.iter().map(OsStr::new));
        self.run_ok(args);
    }

    /// `docker load -i PATH`; returns its stdout (`Loaded image: …` lines).
    pub fn load(&self, path: &Path) -> String {
        self.run_ok([OsStr::new("load"), OsStr::new("-i"), path.as_os_str()])
    }

    /// The image ID (`sha256:<config digest>`) of `reference`; panics if the
    /// daemon does not have it.
    pub fn image_id(&self, reference: &str) -> String {
        self.try_image_id(reference)
            .unwrap_or_else(|| panic!("the private dockerd has no image {reference}"))
    }

    /// The image ID of `reference`, or `None` when the daemon does not have it.
    pub fn try_image_id(&self, reference: &str) -> Option<String> {
        let out = self.run(["image", "inspect", "--format", "{{.Id}}", reference]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Whether the daemon has `reference`.
    pub fn has_image(&self, reference: &str) -> bool {
        self.try_image_id(reference).is_some()
    }

    /// `docker image inspect REF` as JSON (the one object, not the array).
    pub fn inspect(&self, reference: &str) -> serde_json::Value {
        let out = self.run_ok(["image", "inspect", reference]);
        let mut v: serde_json::Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("docker image inspect {reference}: bad JSON: {e}\n{out}"));
        v.get_mut(0).map(serde_json::Value::take).unwrap_or(v)
    }

    /// `docker rmi -f REF`; a missing image is not an error. Never use it on
    /// the shared fixtures ([`BASE_IMAGE`], [`APP_IMAGE`]).
    pub fn rmi(&self, reference: &str) {
        let out = self.run(["rmi", "-f", reference]);
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            if !err.contains("No such image") {
                panic!("docker rmi -f {reference} failed: {err}");
            }
        }
    }

    /// `docker tag SRC DST`.
    pub fn tag(&self, src: &str, dst: &str) {
        self.run_ok(["tag", src, dst]);
    }

    /// Tags `src` as a fresh `hoist-test/<unique>:latest` and returns that
    /// reference: a private name for one test to save, load and remove.
    pub fn tag_unique(&self, src: &str) -> String {
        let dst = format!("hoist-test/{}:latest", unique_name("t"));
        self.tag(src, &dst);
        dst
    }

    /// `docker run --rm --network none [EXTRA…] IMAGE`; returns the output.
    pub fn run_image<I, S>(&self, image: &str, extra: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut args: Vec<std::ffi::OsString> = ["run", "--rm", "--network", "none"]
            .iter()
            .map(Into::into)
            .collect();
        args.extend(extra.into_iter().map(|a| a.as_ref().to_owned()));
        args.push(image.into());
        self.run(args)
    }

    /// Runs `image` with its own command and panics unless it prints exactly
    /// [`APP_OUTPUT`] — for images derived from [`APP_IMAGE`].
    pub fn assert_runs_app(&self, image: &str) {
        let out = self.run_image(image, std::iter::empty::<&str>());
        let stdout = assert_success(&format!("docker run --rm {image}"), &out);
        assert_eq!(
            stdout.trim(),
            APP_OUTPUT,
            "docker run --rm {image} printed the wrong thing"
        );
    }

    /// Tags [`APP_IMAGE`] as `name` (a reference into a registry), pushes
    /// it, removes it, pulls it back and runs it: the image ID must survive
    /// the round trip through `via` (named in the failure).
    pub fn push_pull_and_run(&self, name: &str, via: &str) {
        self.tag(APP_IMAGE, name);
        self.run_ok(["push", name]);
        let id = self.image_id(name);
        self.rmi(name);
        assert!(!self.has_image(name));
        self.run_ok(["pull", name]);
        assert_eq!(self.image_id(name), id, "image ID changed through {via}");
        self.assert_runs_app(name);
        self.rmi(name);
    }
}

// ------------------------------------------------------------------ hoist

/// The built `hoist` binary, for tests of any crate. In order:
/// `CARGO_BIN_EXE_hoist` or `HOIST_BIN` in the environment at run time, else
/// `<target>/<profile>/hoist` next to the running test executable
/// (`<target>/<profile>/deps/…`). Panics if it is not built (in the `hoist`
/// crate's own integration tests prefer [`hoist_bin!`], which cargo makes sure
/// is built and fresh).
pub fn hoist_bin() -> PathBuf {
    for var in ["CARGO_BIN_EXE_hoist", "HOIST_BIN"] {
        if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent();
    while let Some(d) = dir {
        let candidate = d.join(format!("hoist{}", std::env::consts::EXE_SUFFIX));
        if candidate.is_file() && d.file_name() != Some(OsStr::new("deps")) {
            return candidate;
        }
        if d.file_name() == Some(OsStr::new("target")) {
            break;
        }
        dir = d.parent();
    }
    panic!(
        "the hoist binary is not built (looked next to {}); run `cargo build -p hoist` \
         or bash scripts/test.sh, or set HOIST_BIN",
        exe.display()
    )
}

/// `hoist_bin!()`: in the `hoist` crate's integration tests, the binary cargo
/// built for them (`env!("CARGO_BIN_EXE_hoist")` at the caller), elsewhere
/// [`hoist_bin()`].
#[macro_export]
macro_rules! hoist_bin {
    () => {
        match option_env!("CARGO_BIN_EXE_hoist") {
            Some(p) => ::std::path::PathBuf::from(p),
            None => $crate::hoist_bin(),
        }
    };
}

/// A `hoist` command with `HOIST_ROOT=root`, stdin null, no colour.
pub fn hoist_command(bin: &Path, root: &Path) -> Command {
    let mut c = Command::new(bin);
    c.env("HOIST_ROOT", root)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    c
}

/// Runs [`hoist_bin()`] `ARGS…` with `HOIST_ROOT=root`; returns its output
/// whatever the exit status.
pub fn run_hoist<I, S>(root: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_hoist_with(&hoist_bin(), root, args)
}

/// Like [`run_hoist`] with an explicit binary (e.g. `env!("CARGO_BIN_EXE_hoist")`).
pub fn run_hoist_with<I, S>(bin: &Path, root: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    hoist_command(bin, root)
        .args(&args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} {}: {e}",
                bin.display(),
                display_args(&args)
            )
        })
}

/// A temporary directory to use as `HOIST_ROOT`, removed on drop, with the
/// hoist binary to run in it.
#[derive(Debug)]
pub struct TempStore {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Default for TempStore {
    fn default() -> Self {
        Self::new()
    }
}

impl TempStore {
    /// A fresh store run with [`hoist_bin()`].
    pub fn new() -> TempStore {
        TempStore::with_bin(hoist_bin())
    }

    /// A fresh store run with `bin` (e.g. `hoist_bin!()`).
    pub fn with_bin(bin: impl Into<PathBuf>) -> TempStore {
        let dir = tempfile::Builder::new()
            .prefix("hoist-store-")
            .tempdir()
            .expect("create temporary HOIST_ROOT");
        TempStore {
            dir,
            bin: bin.into(),
        }
    }

    /// The `HOIST_ROOT` directory. It exists (empty); hoist decides what goes
    /// in it. Keep scratch files (archives…) in a [`scratch_dir()`] when the
    /// test compares the store's contents before and after.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The hoist binary this store runs.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// A `hoist` command on this store (to pipe stdin, set env, spawn…).
    pub fn command(&self) -> Command {
        hoist_command(&self.bin, self.path())
    }

    /// Runs `hoist ARGS…` on this store; returns the output.
    pub fn hoist<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_hoist_with(&self.bin, self.path(), args)
    }

    /// Runs `hoist ARGS…`, panics (showing stderr) unless it succeeds, returns stdout.
    pub fn hoist_ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let out = self.hoist(&args);
        assert_success(&format!("hoist {}", display_args(&args)), &out)
    }

    /// Runs `hoist ARGS…`, panics unless it fails, returns stderr.
    pub fn hoist_err<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let out = self.hoist(&args);
        assert_failure(&format!("hoist {}", display_args(&args)), &out)
    }
}

/// A scratch directory (removed on drop) outside any store.
pub fn scratch_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("hoist-scratch-")
        .tempdir()
        .expect("create scratch dir")
}

// ------------------------------------------------------------------ tools

/// The path of a peer tool (`skopeo`, `umoci`, `crun`, `docker-registry`, …)
/// found on `PATH` (or in `/usr/sbin`, `/sbin`). Panics with a clear message
/// if it is missing: scripts/test.sh installs them all.
pub fn require_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from));
    for d in dirs {
        let p = d.join(name);
        if is_executable(&p) {
            return p;
        }
    }
    panic!(
        "{name} is not installed but this test needs it; bash scripts/test.sh installs the \
         peers (apt-get install docker.io skopeo umoci crun docker-registry busybox-static openssl \
         chromium)"
    )
}

/// A token issuer's EC P-256 key (PKCS#8) and its self-signed certificate, made by openssl in `dir`.
pub fn issuer_key(dir: &Path) -> (PathBuf, PathBuf) {
    let openssl = require_tool("openssl");
    let (key, crt) = (dir.join("issuer.key"), dir.join("issuer.crt"));
    let out = Command::new(&openssl)
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&key)
        .output()
        .expect("run openssl");
    assert_success("openssl genpkey", &out);
    let out = Command::new(&openssl)
        .args([
            "req",
            "-new",
            "-x509",
            "-subj",
            "/CN=hoist-test-issuer",
            "-days",
            "2",
            "-key",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("run openssl");
    assert_success("openssl req -x509", &out);
    (key, crt)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A `Command` for a required peer tool, stdin null.
pub fn tool(name: &str) -> Command {
    let mut c = Command::new(require_tool(name));
    c.stdin(Stdio::null());
    c
}

/// A `crun` command that works on this machine. On a host with hybrid
/// cgroups whose cgroup2 hierarchy holds controllers (this VM: `hugetlb` in
/// `/sys/fs/cgroup/unified`), crun 1.8 refuses to run ("cgroups in hybrid mode
/// not supported, drop all controllers from cgroupv2"); there the command
/// runs crun in a private mount namespace with `/sys/fs/cgroup/unified`
/// unmounted, which crun then treats as plain cgroup v1. Append crun's
/// arguments with `.args(..)`. stdin is null.
pub fn crun() -> Command {
    let crun = require_tool("crun");
    let mut c = if cgroup_hybrid_with_v2_controllers() {
        let mut c = Command::new(require_tool("unshare"));
        c.args(["-m", "--propagation", "private", "sh", "-c"])
            .arg("umount /sys/fs/cgroup/unified && exec \"$0\" \"$@\"")
            .arg(crun);
        c
    } else {
        Command::new(crun)
    };
    c.stdin(Stdio::null());
    c
}

/// Whether cgroups are in hybrid mode (v1 hierarchies plus a cgroup2 at
/// `/sys/fs/cgroup/unified`) with controllers on the cgroup2 side.
pub fn cgroup_hybrid_with_v2_controllers() -> bool {
    std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
        .map(|c| !c.trim().is_empty())
        .unwrap_or(false)
}

// ------------------------------------------------------------------ registry

/// A private `docker-registry` (distribution 2.8) on `127.0.0.1:<free port>`,
/// filesystem storage in a temp dir (or a given dir), deletes enabled, no
/// auth (or htpasswd basic auth), plain HTTP. Killed on drop.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    addr: String,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry with its storage in a fresh temporary directory.
    pub fn start() -> Registry {
        Registry::start_inner(None)
    }

    /// Starts a registry whose filesystem storage is `root` (the directory
    /// holding `docker/registry/v2/…`), e.g. to read what hoist wrote.
    pub fn start_with_root(root: &Path) -> Registry {
        Registry::start_inner(Some(root.to_path_buf()))
    }

    /// Starts a registry that wants basic auth: `user` with `password`
    /// (bcrypt, written by `htpasswd` from apache2-utils).
    pub fn start_with_htpasswd(user: &str, password: &str) -> Registry {
        let htpasswd = require_tool("htpasswd");
        let out = Command::new(&htpasswd)
            .args(["-Bbn", user, password])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", htpasswd.display()));
        let line = assert_success("htpasswd -Bbn", &out);
        Registry::start_auth(None, Some(Auth::Htpasswd(line.trim())))
    }

    /// Starts a registry with `auth:` set to `yaml` (indented by two spaces,
    /// e.g. `  token:\n    realm: …`), for token auth with a test issuer.
    pub fn start_with_auth_config(yaml: &str) -> Registry {
        Registry::start_auth(None, Some(Auth::Yaml(yaml)))
    }

    fn start_inner(root: Option<PathBuf>) -> Registry {
        Registry::start_auth(root, None)
    }

    fn start_auth(root: Option<PathBuf>, auth: Option<Auth<'_>>) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("hoist-registry-")
            .tempdir()
            .expect("registry temp dir");
        let root = root.unwrap_or_else(|| dir.path().join("storage"));
        std::fs::create_dir_all(&root).expect("registry storage dir");
        let auth = match auth {
            Some(Auth::Htpasswd(line)) => {
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, format!("{line}\n")).expect("write htpasswd");
                format!(
                    "auth:\n  htpasswd:\n    realm: hoist-test\n    path: {}\n",
                    file.display()
                )
            }
            Some(Auth::Yaml(yaml)) => format!("auth:\n{yaml}"),
            None => String::new(),
        };
        Registry::launch(
            dir,
            &format!("  filesystem:\n    rootdirectory: {}\n", root.display()),
            &auth,
            root,
        )
    }

    /// Runs `docker-registry` in `dir` on a free port, with `storage` (the
    /// lines under `storage:`, deletes enabled on top) and `extra` (more
    /// top-level sections); up once `/v2/` answers. `root` is where its data
    /// can be read as files.
    pub(crate) fn launch(
        dir: tempfile::TempDir,
        storage: &str,
        extra: &str,
        root: PathBuf,
    ) -> Registry {
        let bin = require_tool("docker-registry");
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("find a free port")
                .port();
            let addr = format!("127.0.0.1:{port}");
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                     storage:\n{storage}  delete:\n    enabled: true\n\
                     http:\n  addr: {addr}\n{extra}"
                ),
            )
            .expect("write registry config");
            let log_path = dir.path().join("registry.log");
            let log = std::fs::File::create(&log_path).expect("registry log");
            let mut child = Command::new(&bin)
                .arg("serve")
                .arg(&config)
                // The AWS SDK refuses a custom CA bundle with its transport
                // (the s3 driver); plain HTTP on loopback needs none.
                .env_remove("AWS_CA_BUNDLE")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                // 401: up, and wanting the credentials it was given.
                if matches!(http_status(&addr, "/v2/"), Some(200 | 401)) {
                    return Registry {
                        child,
                        addr,
                        root,
                        _dir: dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
        }
        panic!("docker-registry did not come up; its log:\n{last_log}")
    }

    /// `127.0.0.1:PORT`, for references such as `127.0.0.1:PORT/repo:tag`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The storage root directory (holds `docker/registry/v2/…`).
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// How a test registry authenticates.
enum Auth<'a> {
    /// One `htpasswd` line.
    Htpasswd(&'a str),
    /// The body of the `auth:` section.
    Yaml(&'a str),
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The HTTP status of `GET path` on `addr` (plain HTTP/1.1), or `None`.
pub fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        match s.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return None,
        }
    }
    let head = std::str::from_utf8(&buf[..n]).ok()?;
    head.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ() {
        let a = unique_name("t");
        let b = unique_name("t");
        assert_ne!(a, b);
        assert!(a.starts_with("t-"));
        assert_eq!(a, a.to_lowercase());
    }

    #[test]
    fn http_status_of_closed_port_is_none() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert_eq!(http_status(&format!("127.0.0.1:{port}"), "/"), None);
    }
}
