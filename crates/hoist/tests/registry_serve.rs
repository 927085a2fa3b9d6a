//! `hoist serve` and `hoist registry gc` find their directory as a first
//! user expects: `--root` or `HOIST_REGISTRY_ROOT`, never the image store's
//! `HOIST_ROOT`; an image store is refused; with nothing set, `./registry`;
//! `--addr :PORT` listens on every address; the start message says where it
//! stores and how to push and browse. No peer tool needed.

use hoist_testkit::serve::HoistServe;
use hoist_testkit::{http_status, scratch_dir, TempStore};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

fn hoist() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hoist"));
    c.env_remove("HOIST_ROOT")
        .env_remove("HOIST_REGISTRY_ROOT")
        .env_remove("HOIST_LOG");
    c
}

/// A real image store: one image imported from a one-file tarball.
fn image_store() -> TempStore {
    let st = TempStore::with_bin(env!("CARGO_BIN_EXE_hoist"));
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_path("hello").unwrap();
    h.set_size(3);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &b"hi\n"[..]).unwrap();
    let tar = st.path().with_extension("tar");
    std::fs::write(&tar, b.into_inner().unwrap()).unwrap();
    st.hoist_ok(["import", tar.to_str().unwrap(), "imp/one:v1"]);
    assert!(st.path().join("index.db").is_file() && st.path().join("blobs").is_dir());
    st
}

/// `hoist serve` started with `setup` (which may set env, cwd and flags)
/// on a free loopback port.
fn serve(log: &Path, setup: impl Fn(&mut Command)) -> HoistServe {
    HoistServe::start_with(log, |cmd, _| {
        cmd.env_remove("HOIST_ROOT")
            .env_remove("HOIST_REGISTRY_ROOT");
        setup(cmd);
    })
}

fn has_registry_layout(dir: &Path) -> bool {
    dir.join("docker/registry/v2").is_dir()
}

#[test]
fn serve_reads_hoist_registry_root_and_never_hoist_root() {
    let scratch = scratch_dir();
    let images = scratch.path().join("images");
    let reg = scratch.path().join("reg");
    std::fs::create_dir(&images).unwrap();
    let s = serve(&scratch.path().join("serve.log"), |c| {
        c.env("HOIST_ROOT", &images)
            .env("HOIST_REGISTRY_ROOT", &reg)
            .current_dir(scratch.path());
    });
    assert_eq!(http_status(&s.addr, "/v2/"), Some(200));
    assert!(has_registry_layout(&reg), "{}", s.log());
    assert!(
        !has_registry_layout(&images),
        "HOIST_ROOT leaked into serve"
    );
    assert!(!scratch.path().join("registry").exists());
    assert!(s.stop());

    // A typed --root wins over HOIST_REGISTRY_ROOT, wherever it is typed.
    let typed = scratch.path().join("typed");
    let s = serve(&scratch.path().join("serve2.log"), |c| {
        c.env("HOIST_REGISTRY_ROOT", &reg).arg("--root").arg(&typed);
    });
    assert!(has_registry_layout(&typed), "{}", s.log());
    assert!(s.stop());
}

#[test]
fn serve_without_a_root_stores_in_dot_registry_and_says_how_to_push_and_browse() {
    let scratch = scratch_dir();
    let images = scratch.path().join("images");
    std::fs::create_dir(&images).unwrap();
    let s = serve(&scratch.path().join("serve.log"), |c| {
        c.env("HOIST_ROOT", &images).current_dir(scratch.path());
    });
    assert_eq!(http_status(&s.addr, "/v2/"), Some(200));
    let dot_registry = scratch.path().join("registry");
    assert!(has_registry_layout(&dot_registry), "{}", s.log());
    assert!(!has_registry_layout(&images));
    let log = s.log();
    let abs = std::fs::canonicalize(&dot_registry).unwrap();
    assert!(
        log.contains(&format!("storing in {}", abs.display())),
        "{log}"
    );
    assert!(
        log.contains(&format!("docker push {}/NAME", s.addr)),
        "{log}"
    );
    assert!(
        log.contains(&format!("hoist push {}/NAME", s.addr)),
        "{log}"
    );
    assert!(log.contains(&format!("http://{}/", s.addr)), "{log}");
    assert!(s.stop());
}

#[test]
fn serve_and_gc_refuse_an_image_store() {
    let st = image_store();
    let root = st.path().to_str().unwrap();
    let out = hoist()
        .args(["serve", "--addr", "127.0.0.1:0", "--root", root])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("image store"), "{err}");
    assert!(!has_registry_layout(st.path()));

    let out = hoist()
        .args(["registry", "gc", "--root", root])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("image store"), "{err}");

    let out = hoist()
        .args(["registry", "gc"])
        .env("HOIST_REGISTRY_ROOT", root)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("image store"));
    assert!(!has_registry_layout(st.path()));
}

#[test]
fn gc_reads_hoist_registry_root_and_never_hoist_root() {
    let scratch = scratch_dir();
    let reg = scratch.path().join("reg");
    std::fs::create_dir_all(reg.join("docker/registry/v2")).unwrap();
    let out = hoist()
        .args(["registry", "gc", "--grace", "0s"])
        .env("HOIST_ROOT", &reg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "HOIST_ROOT was taken for gc: {err}");
    assert!(err.contains("HOIST_REGISTRY_ROOT"), "{err}");

    let out = hoist()
        .args(["registry", "gc", "--grace", "0s"])
        .env("HOIST_REGISTRY_ROOT", &reg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("0 repositories"), "{text}");
}

#[test]
fn serve_on_colon_port_listens_on_every_address() {
    let scratch = scratch_dir();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = scratch.path().join("serve.log");
    let child = hoist()
        .args(["serve", "--addr", &format!(":{port}"), "--root"])
        .arg(scratch.path().join("reg"))
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let s = HoistServe::adopt(child, &format!("127.0.0.1:{port}"), &log);
    assert_eq!(http_status(&format!("127.0.0.1:{port}"), "/v2/"), Some(200));
    // IPv6 too where the host has it (a dual-stack socket takes both).
    if TcpListener::bind("[::1]:0").is_ok() {
        assert_eq!(http_status(&format!("[::1]:{port}"), "/v2/"), Some(200));
    }
    assert!(s.stop());
}

/// One keep-alive HTTP/1.1 connection: requests go one after another on the
/// same socket, so a test sees whether the server kept it.
struct Conn {
    s: std::net::TcpStream,
    addr: String,
}

impl Conn {
    fn open(addr: &str) -> Conn {
        let s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        Conn {
            s,
            addr: addr.to_owned(),
        }
    }

    /// `GET path` with basic credentials `user:password`; the status.
    fn get(&mut self, path: &str, user: &str, password: &str) -> u16 {
        use std::io::{Read, Write};
        let cred = base64(format!("{user}:{password}").as_bytes());
        write!(
            self.s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {cred}\r\n\r\n",
            self.addr
        )
        .expect("the server kept the connection");
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = self.s.read(&mut b).expect("read a response");
            assert_eq!(n, 1, "the server closed the connection");
            head.push(b[0]);
        }
        let head = String::from_utf8_lossy(&head).to_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        let mut body = vec![0u8; len];
        self.s.read_exact(&mut body).unwrap();
        head.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

/// Standard base64 with padding (a basic `Authorization` header).
fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn htpasswd_line(user: &str, password: &str) -> String {
    let out = hoist_testkit::tool("htpasswd")
        .args(["-nbB", user, password])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned() + "\n"
}

fn hangup(s: &HoistServe) {
    let st = Command::new("kill")
        .args(["-HUP", &s.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

/// Polls `check` for up to 10 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !check() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn sighup_reloads_auth_files_keeps_connections_and_keeps_the_old_files_when_a_new_one_is_bad() {
    let scratch = scratch_dir();
    let htpasswd = scratch.path().join("htpasswd");
    let acl = scratch.path().join("acl");
    std::fs::write(&htpasswd, htpasswd_line("alice", "alice-pw")).unwrap();
    std::fs::write(&acl, "alice * pull\n").unwrap();
    let s = serve(&scratch.path().join("serve.log"), |c| {
        c.arg("--root")
            .arg(scratch.path().join("reg"))
            .arg("--htpasswd")
            .arg(&htpasswd)
            .arg("--acl")
            .arg(&acl);
    });
    let tags = "/v2/some/repo/tags/list";
    let mut kept = Conn::open(&s.addr);
    // 404: allowed to pull, and the repository does not exist.
    assert_eq!(kept.get(tags, "alice", "alice-pw"), 404);
    assert_eq!(kept.get(tags, "bob", "bob-pw"), 401);

    // New users and rights: bob in, alice out, bob may pull only under bob/.
    let mut both = htpasswd_line("bob", "bob-pw");
    both.push_str(&htpasswd_line("carol", "carol-pw"));
    std::fs::write(&htpasswd, both).unwrap();
    std::fs::write(&acl, "bob bob/* pull\ncarol * pull\n").unwrap();
    hangup(&s);
    eventually("SIGHUP did not reload the htpasswd file", || {
        Conn::open(&s.addr).get(tags, "carol", "carol-pw") == 404
    });
    // The connection opened before the reload still serves, with the new files.
    assert_eq!(kept.get(tags, "alice", "alice-pw"), 401);
    assert_eq!(kept.get("/v2/bob/x/tags/list", "bob", "bob-pw"), 404);
    assert_eq!(kept.get(tags, "bob", "bob-pw"), 403);

    // A bad file: the previous ones stay, and the log says why.
    std::fs::write(&htpasswd, "this is not an htpasswd line\n").unwrap();
    hangup(&s);
    eventually("the failed reload was not logged", || {
        s.log().contains("auth files not reloaded")
    });
    assert!(s.log().contains("htpasswd"), "{}", s.log());
    assert_eq!(kept.get(tags, "carol", "carol-pw"), 404);
    assert_eq!(kept.get("/v2/bob/x/tags/list", "bob", "bob-pw"), 404);
    assert!(s.stop(), "hoist serve did not stop cleanly after SIGHUPs");
}

#[test]
fn sighup_without_auth_does_not_stop_the_server() {
    let scratch = scratch_dir();
    let s = serve(&scratch.path().join("serve.log"), |c| {
        c.arg("--root").arg(scratch.path().join("reg"));
    });
    hangup(&s);
    eventually("SIGHUP was not handled", || {
        s.log().contains("no auth files to reload")
    });
    assert_eq!(http_status(&s.addr, "/v2/"), Some(200));
    assert!(s.stop());
}
