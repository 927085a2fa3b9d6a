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
    assert!(log.contains("hoist push IMAGE"), "{log}");
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
