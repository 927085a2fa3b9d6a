//! `hoist serve` auth against real peers: a real dockerd logs in, pushes,
//! pulls and runs through basic auth and through the token flow; skopeo
//! copies with `--creds`; `htpasswd -B` writes the users file; `openssl`
//! makes the issuer's key and certificate; a second `hoist serve` and the
//! CNCF distribution registry (`docker-registry`) validate tokens issued by
//! a `hoist serve`.

use hoist_testkit::{
    assert_failure, assert_success, hoist_bin, http_status, issuer_key, require_tool, scratch_dir,
};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process (hoist serve or docker-registry) on a free loopback
/// port, up once `/healthz` or `/` answers; killed on drop.
struct Server {
    child: Child,
    addr: String,
    log: PathBuf,
}

fn free_addr() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

impl Server {
    fn spawn(mut cmd: Command, addr: String, log: PathBuf, probe: &str) -> Server {
        let logf = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .expect("start the server");
        let mut s = Server { child, addr, log };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = s.child.try_wait() {
                panic!("server exited ({st}): {}", s.log_text());
            }
            if http_status(&s.addr, probe).is_some() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("server did not come up: {}", s.log_text())
    }

    /// `hoist serve --addr ADDR --root ROOT` plus `extra(ADDR)`.
    fn hoist(root: &Path, extra: impl FnOnce(&str) -> Vec<String>) -> Server {
        let addr = free_addr();
        let mut cmd = Command::new(hoist_bin());
        cmd.args(["serve", "--addr", &addr, "--root"])
            .arg(root)
            .args(extra(&addr))
            .env("HOIST_LOG", "info");
        Server::spawn(cmd, addr, root.with_extension("log"), "/healthz")
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An htpasswd file written by Apache's own `htpasswd -B`.
fn htpasswd_file(dir: &Path, users: &[(&str, &str)]) -> PathBuf {
    let bin = require_tool("htpasswd");
    let path = dir.join("htpasswd");
    for (i, (u, p)) in users.iter().enumerate() {
        let mut c = Command::new(&bin);
        c.arg(if i == 0 { "-Bbc" } else { "-Bb" });
        let out = c.arg(&path).args([u, p]).output().unwrap();
        assert_success("htpasswd -B", &out);
    }
    path
}

fn token_flags(issuer_addr: &str, crt: &Path) -> Vec<String> {
    vec![
        "--token-realm".into(),
        format!("http://{issuer_addr}/token"),
        "--token-service".into(),
        "hoist-test".into(),
        "--token-issuer".into(),
        "hoist-test-issuer".into(),
        "--token-rootcertbundle".into(),
        crt.display().to_string(),
    ]
}

/// A docker client with its own config directory (credentials land there).
fn docker_with_config<'a>(
    docker: &'a hoist_testkit::Docker,
    config: &Path,
) -> impl Fn(&[&str]) -> std::process::Output + 'a {
    let config = config.to_path_buf();
    move |args: &[&str]| {
        docker
            .command()
            .env("DOCKER_CONFIG", &config)
            .args(args)
            .output()
            .unwrap()
    }
}

/// docker login, push, rmi, pull, run, against `addr`, as alice; bob (pull
/// only on alice/*) can pull but not push. Used for basic and token auth.
fn docker_round_trip(addr: &str, scratch: &Path) {
    let docker = hoist_testkit::docker();
    let alice = docker_with_config(&docker, &scratch.join("docker-alice"));
    let bob = docker_with_config(&docker, &scratch.join("docker-bob"));
    let name = format!("{addr}/alice/{}:v1", hoist_testkit::unique_name("app"));
    docker.tag(hoist_testkit::APP_IMAGE, &name);
    // Not logged in: the push is refused.
    let e = assert_failure("docker push without login", &alice(&["push", &name]));
    assert!(
        e.contains("no basic auth credentials")
            || e.contains("unauthorized")
            || e.contains("authentication required"),
        "{e}"
    );
    let e = assert_failure(
        "docker login with a wrong password",
        &alice(&["login", "-u", "alice", "-p", "wrong", addr]),
    );
    assert!(e.contains("unauthorized") || e.contains("401"), "{e}");
    let out = assert_success(
        "docker login",
        &alice(&["login", "-u", "alice", "-p", "alice-pw", addr]),
    );
    assert!(out.contains("Login Succeeded"), "{out}");
    assert_success("docker push", &alice(&["push", &name]));
    let id = docker.image_id(&name);
    docker.rmi(&name);
    assert_success(
        "docker login bob",
        &bob(&["login", "-u", "bob", "-p", "bob-pw", addr]),
    );
    assert_success("docker pull as bob", &bob(&["pull", &name]));
    assert_eq!(
        docker.image_id(&name),
        id,
        "image ID changed through hoist serve"
    );
    docker.assert_runs_app(&name);
    let other = format!("{addr}/alice/{}:v1", hoist_testkit::unique_name("bob"));
    docker.tag(hoist_testkit::APP_IMAGE, &other);
    let e = assert_failure("docker push as bob (pull only)", &bob(&["push", &other]));
    assert!(
        e.to_lowercase().contains("denied")
            || e.contains("insufficient_scope")
            || e.contains("unauthorized"),
        "{e}"
    );
    docker.rmi(&name);
    docker.rmi(&other);
}

const ACL: &str = "alice alice/* *\nbob alice/* pull\n";

#[test]
fn dockerd_logs_in_pushes_pulls_and_runs_with_htpasswd() {
    let scratch = scratch_dir();
    let h = htpasswd_file(scratch.path(), &[("alice", "alice-pw"), ("bob", "bob-pw")]);
    let acl = scratch.path().join("acl");
    std::fs::write(&acl, ACL).unwrap();
    let s = Server::hoist(&scratch.path().join("root"), |_| {
        vec![
            "--htpasswd".into(),
            h.display().to_string(),
            "--acl".into(),
            acl.display().to_string(),
        ]
    });
    assert_eq!(http_status(&s.addr, "/v2/"), Some(401));
    docker_round_trip(&s.addr, scratch.path());
}

#[test]
fn dockerd_goes_through_the_built_in_token_issuer() {
    let scratch = scratch_dir();
    let h = htpasswd_file(scratch.path(), &[("alice", "alice-pw"), ("bob", "bob-pw")]);
    let acl = scratch.path().join("acl");
    std::fs::write(&acl, ACL).unwrap();
    let (key, crt) = issuer_key(scratch.path());
    let s = Server::hoist(&scratch.path().join("root"), |addr| {
        let mut f = token_flags(addr, &crt);
        f.extend(["--token-key".into(), key.display().to_string()]);
        f.extend(["--htpasswd".into(), h.display().to_string()]);
        f.extend(["--acl".into(), acl.display().to_string()]);
        f
    });
    docker_round_trip(&s.addr, scratch.path());
    assert!(s.log_text().contains("token issued"), "{}", s.log_text());
}

fn skopeo(args: &[&str]) -> std::process::Output {
    Command::new(require_tool("skopeo"))
        .arg("--insecure-policy")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// skopeo copies APP_IMAGE from dockerd to `dest` (docker://…) with
/// `creds`, then back out to an OCI layout; without creds it is refused.
fn skopeo_round_trip(dest: &str, creds: &str, scratch: &Path) {
    let docker = hoist_testkit::docker();
    let [hflag, host] = docker.skopeo_host_args("src");
    let src = format!("docker-daemon:{}", hoist_testkit::APP_IMAGE);
    let e = assert_failure(
        "skopeo copy without creds",
        &skopeo(&["copy", &hflag, &host, "--dest-tls-verify=false", &src, dest]),
    );
    assert!(
        e.contains("401") || e.contains("unauthorized") || e.contains("authentication required"),
        "{e}"
    );
    assert_success(
        "skopeo copy --dest-creds",
        &skopeo(&[
            "copy",
            &hflag,
            &host,
            "--dest-tls-verify=false",
            "--dest-creds",
            creds,
            &src,
            dest,
        ]),
    );
    let out = scratch.join(format!("out-{}", hoist_testkit::unique_name("oci")));
    let oci = format!("oci:{}:v1", out.display());
    assert_success(
        "skopeo copy --src-creds",
        &skopeo(&[
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            creds,
            dest,
            &oci,
        ]),
    );
    assert!(out.join("index.json").is_file());
}

#[test]
fn skopeo_copies_with_creds_and_htpasswd_files_from_apache() {
    let scratch = scratch_dir();
    let h = htpasswd_file(scratch.path(), &[("alice", "alice-pw")]);
    let s = Server::hoist(&scratch.path().join("root"), |_| {
        vec!["--htpasswd".into(), h.display().to_string()]
    });
    let dest = format!("docker://{}/alice/app:v1", s.addr);
    skopeo_round_trip(&dest, "alice:alice-pw", scratch.path());
    let out = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        "alice:not-it",
        &dest,
    ]);
    assert_failure("skopeo inspect with a wrong password", &out);
}

#[test]
fn tokens_of_one_hoist_serve_are_validated_by_another_and_by_docker_registry() {
    let scratch = scratch_dir();
    let dir = scratch.path();
    let h = htpasswd_file(dir, &[("alice", "alice-pw")]);
    let (key, crt) = issuer_key(dir);
    // The issuer: a hoist serve whose only job here is /token.
    let issuer = Server::hoist(&dir.join("issuer-root"), |addr| {
        let mut f = token_flags(addr, &crt);
        f.extend(["--token-key".into(), key.display().to_string()]);
        f.extend(["--htpasswd".into(), h.display().to_string()]);
        f
    });
    // A second hoist serve that only validates, with the certificate.
    let flags = token_flags(&issuer.addr, &crt);
    let validator = Server::hoist(&dir.join("validator-root"), |_| flags.clone());
    assert_eq!(
        http_status(&validator.addr, "/token"),
        Some(401),
        "no issuer here"
    );
    let docker = hoist_testkit::docker();
    let cli = docker_with_config(&docker, &dir.join("docker-config"));
    let name = format!(
        "{}/alice/{}:v1",
        validator.addr,
        hoist_testkit::unique_name("ext")
    );
    docker.tag(hoist_testkit::APP_IMAGE, &name);
    assert_success(
        "docker login",
        &cli(&["login", "-u", "alice", "-p", "alice-pw", &validator.addr]),
    );
    assert_success("docker push", &cli(&["push", &name]));
    docker.rmi(&name);
    assert_success("docker pull", &cli(&["pull", &name]));
    docker.assert_runs_app(&name);
    docker.rmi(&name);

    // The CNCF distribution registry trusts the same certificate: it finds
    // the key by hoist's libtrust `kid` and checks the signature.
    let reg_addr = free_addr();
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {reg_addr}\nauth:\n  token:\n    realm: http://{}/token\n    service: hoist-test\n    issuer: hoist-test-issuer\n    rootcertbundle: {}\n",
            dir.join("dr-root").display(),
            issuer.addr,
            crt.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(require_tool("docker-registry"));
    cmd.arg("serve").arg(&config);
    let dr = Server::spawn(cmd, reg_addr, dir.join("docker-registry.log"), "/");
    skopeo_round_trip(
        &format!("docker://{}/alice/app:v1", dr.addr),
        "alice:alice-pw",
        dir,
    );
}

/// Runs `hoist serve ARGS` expecting it to refuse to start; returns stderr.
fn serve_refuses(root: &Path, args: &[&str]) -> String {
    let mut child = Command::new(hoist_bin())
        .args(["serve", "--addr", &free_addr(), "--root"])
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("hoist serve {args:?} started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert_failure(&format!("hoist serve {args:?}"), &out)
}

#[test]
fn serve_refuses_bad_auth_settings_with_clear_errors() {
    let scratch = scratch_dir();
    let dir = scratch.path();
    let root = dir.join("root");
    let md5 = dir.join("md5");
    std::fs::write(&md5, "alice:$apr1$abcdefgh$0123456789012345678901\n").unwrap();
    let e = serve_refuses(&root, &["--htpasswd", md5.to_str().unwrap()]);
    assert!(
        e.contains(&format!("{}:1", md5.display())) && e.contains("htpasswd -B"),
        "{e}"
    );
    let e = serve_refuses(&root, &["--acl", md5.to_str().unwrap()]);
    assert!(e.contains("--acl needs --htpasswd"), "{e}");
    let e = serve_refuses(&root, &["--token-realm", "http://127.0.0.1:1/token"]);
    assert!(e.contains("--token-rootcertbundle"), "{e}");
    let (key, crt) = issuer_key(dir);
    let mut args: Vec<String> = token_flags("127.0.0.1:1", &crt);
    args.extend(["--token-key".into(), crt.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = serve_refuses(&root, &args);
    assert!(e.contains("not a PEM private key"), "{e}");
    let e = serve_refuses(&root, &["--token-key", key.to_str().unwrap()]);
    assert!(e.contains("--token-realm"), "{e}");
}
