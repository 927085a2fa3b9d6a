//! Stores hoist cannot write (#16.2) and stores that do not exist (#16.8):
//! reading commands read (or read as empty) and create nothing; writing
//! commands say the store is read-only and how to fix it, never to throw a
//! healthy index away.

#[path = "common/imagegen.rs"]
mod imagegen;

use imagegen::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

const TAG: &str = "hoist-test/ro:1";

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn reading_commands_on_a_missing_store_create_nothing() {
    let fx = Fixture::new();
    let root = fx.scratch.path().join("nonexistent/deep/store");
    let run = |args: &[&str]| {
        hoist_testkit::hoist_command(&hoist_bin(), &root)
            .args(args)
            .output()
            .expect("run hoist")
    };
    let images = run(&["images"]);
    assert!(images.status.success(), "{}", stderr(&images));
    assert!(String::from_utf8_lossy(&images.stdout).starts_with("REPOSITORY"));
    for args in [&["system", "df"][..], &["fsck"]] {
        let o = run(args);
        assert!(o.status.success(), "hoist {args:?}: {}", stderr(&o));
    }
    let inspect = run(&["inspect", "nothing:here"]);
    assert!(!inspect.status.success());
    assert!(
        stderr(&inspect).contains("No such image"),
        "{}",
        stderr(&inspect)
    );
    assert!(
        !fx.scratch.path().join("nonexistent").exists(),
        "a reading command created the store"
    );
}

/// Makes `dir` and everything under it readable (not writable) by others.
fn open_up(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            open_up(&p);
        } else {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}

/// `hoist ARGS…` on `root` as the unprivileged user `nobody`.
fn as_nobody(bin: &Path, root: &Path, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(bin)
        .args(args)
        .env("HOIST_ROOT", root)
        .env("NO_COLOR", "1")
        .env("HOME", "/nonexistent")
        .output()
        .expect("run setpriv")
}

#[test]
fn another_user_reads_a_root_owned_store_and_is_told_why_it_cannot_write() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || Command::new("setpriv").arg("--help").output().is_err() {
        eprintln!("skipped: needs root and setpriv");
        return;
    }
    let fx = Fixture::new();
    let img = Image::new(Some(TAG), vec![Layer::random(41, 1 << 16, true)]);
    let archive = fx.archive("ro.tar", &docker_members(std::slice::from_ref(&img)));
    fx.load_ok(&archive, Via::File);
    // nobody may traverse to the store and read it, but write nowhere in it;
    // the binary is copied where nobody can run it.
    std::fs::set_permissions(fx.scratch.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    open_up(fx.scratch.path());
    let bin = fx.scratch.path().join("hoist");
    std::fs::copy(hoist_bin(), &bin).unwrap();
    let out_dir = fx.scratch.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::set_permissions(&out_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let before = tree(&fx.root, None);

    let images = as_nobody(
        &bin,
        &fx.root,
        &["images", "--format", "json", "--no-trunc"],
    );
    assert!(images.status.success(), "images: {}", stderr(&images));
    assert!(String::from_utf8_lossy(&images.stdout).contains(&img.id()));
    for args in [
        vec!["inspect", TAG],
        vec!["history", TAG],
        vec!["system", "df"],
        vec!["fsck"],
        vec!["save", "-o", out_dir.join("ro.tar").to_str().unwrap(), TAG],
    ] {
        let o = as_nobody(&bin, &fx.root, &args);
        assert!(
            o.status.success(),
            "hoist {args:?} as nobody: {}",
            stderr(&o)
        );
    }
    assert!(out_dir.join("ro.tar").metadata().unwrap().len() > 0);

    for args in [vec!["tag", TAG, "hoist-test/ro:2"], vec!["rmi", TAG]] {
        let o = as_nobody(&bin, &fx.root, &args);
        assert!(!o.status.success(), "hoist {args:?} as nobody succeeded");
        let err = stderr(&o);
        assert!(
            err.contains("read-only") && err.contains("permission denied"),
            "{err}"
        );
        assert!(!err.contains("move it away"), "{err}");
    }
    assert_eq!(tree(&fx.root, None), before, "the store changed");
}

#[test]
fn a_registry_directory_is_refused_as_an_image_store() {
    let fx = Fixture::new();
    let registry = fx.scratch.path().join("registry");
    std::fs::create_dir_all(registry.join("docker/registry/v2/repositories")).unwrap();
    for args in [&["images"][..], &["tag", "a", "b"]] {
        let o = hoist_testkit::hoist_command(&hoist_bin(), &registry)
            .args(args)
            .output()
            .expect("run hoist");
        assert!(
            !o.status.success(),
            "hoist {args:?} on a registry directory"
        );
        assert!(stderr(&o).contains("docker/registry/v2"), "{}", stderr(&o));
    }
    assert!(!registry.join("index.db").exists() && !registry.join("blobs").exists());
}
