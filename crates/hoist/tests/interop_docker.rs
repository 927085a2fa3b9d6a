//! Interop with real peers: a private dockerd (started by scripts/test.sh),
//! skopeo and umoci. Images must survive hoist's load and save byte for byte:
//! same image ID, and Docker runs what hoist saved.

use hoist_testkit::*;
use std::fs::File;
use std::path::Path;

fn hoist_store() -> TempStore {
    TempStore::with_bin(hoist_bin!())
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

#[test]
fn docker_save_hoist_load_save_docker_load_runs_with_same_id() {
    let d = docker();
    let img = d.tag_unique(APP_IMAGE);
    let id = d.image_id(&img);
    let s = scratch_dir();
    let from_docker = s.path().join("docker.tar");
    d.save(&img, &from_docker);

    let store = hoist_store();
    let out = store.hoist_ok(["load", "-i", p(&from_docker)]);
    assert!(out.contains(&format!("Loaded image: {img}")), "{out}");
    let listed = store.hoist_ok(["images", "--format", "json", "--no-trunc"]);
    assert!(listed.contains(&id), "hoist images lacks {id}: {listed}");

    let from_hoist = s.path().join("hoist.tar");
    store.hoist_ok(["save", "-o", p(&from_hoist), &img]);
    d.rmi(&img);
    assert!(!d.has_image(&img));
    let loaded = d.load(&from_hoist);
    assert!(loaded.contains(&img), "docker load said: {loaded}");
    assert_eq!(d.image_id(&img), id, "image ID changed through hoist");
    d.assert_runs_app(&img);
    d.rmi(&img);
}

#[test]
fn hoist_save_to_stdout_pipes_into_docker_load() {
    let d = docker();
    let img = d.tag_unique(APP_IMAGE);
    let id = d.image_id(&img);
    let s = scratch_dir();
    let tar = s.path().join("in.tar");
    d.save(&img, &tar);
    d.rmi(&img);
    let store = hoist_store();
    store.hoist_ok(["load", "-i", p(&tar)]);
    let piped = s.path().join("piped.tar");
    let out = store
        .command()
        .args(["save", &img])
        .stdout(File::create(&piped).expect("create"))
        .output()
        .expect("run hoist save");
    assert_success("hoist save > file", &out);
    d.load(&piped);
    assert_eq!(d.image_id(&img), id);
    d.assert_runs_app(&img);
    d.rmi(&img);
}

/// The member names of a tar archive.
fn member_names(archive: &Path) -> Vec<String> {
    tar::Archive::new(File::open(archive).expect("open"))
        .entries()
        .expect("entries")
        .map(|e| {
            e.expect("entry")
                .path()
                .expect("path")
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// Rewrites a docker save archive keeping only manifest.json, the config and the layer files.
fn strip_legacy_files(src: &Path, dst: &Path) {
    let mut ar = tar::Archive::new(File::open(src).expect("open"));
    let mut b = tar::Builder::new(File::create(dst).expect("create"));
    for e in ar.entries().expect("entries") {
        let mut e = e.expect("entry");
        let path = e.path().expect("path").to_string_lossy().into_owned();
        let keep = path == "manifest.json"
            || path.ends_with("/layer.tar")
            || (path.ends_with(".json") && !path.contains('/'));
        if keep {
            let mut h = e.header().clone();
            b.append_data(&mut h, &path, &mut e).expect("append");
        }
    }
    b.finish().expect("finish");
}

#[test]
fn archive_without_legacy_files_loads_and_saves_back_into_docker() {
    let d = docker();
    let img = d.tag_unique(APP_IMAGE);
    let id = d.image_id(&img);
    let s = scratch_dir();
    let full = s.path().join("full.tar");
    d.save(&img, &full);
    let minimal = s.path().join("minimal.tar");
    strip_legacy_files(&full, &minimal);
    let names = member_names(&minimal);
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with("/json") || n.ends_with("VERSION") || n == "repositories"),
        "{names:?}"
    );

    let store = hoist_store();
    store.hoist_ok(["load", "-i", p(&minimal)]);
    let back = s.path().join("back.tar");
    store.hoist_ok(["save", "-o", p(&back), &img]);
    d.rmi(&img);
    d.load(&back);
    assert_eq!(d.image_id(&img), id);
    d.assert_runs_app(&img);
    d.rmi(&img);
}

#[test]
fn skopeo_and_umoci_read_hoist_oci_archive() {
    let d = docker();
    require_tool("skopeo");
    require_tool("umoci");
    let img = d.tag_unique(APP_IMAGE);
    let id = d.image_id(&img);
    let s = scratch_dir();
    let tar = s.path().join("in.tar");
    d.save(&img, &tar);
    d.rmi(&img);
    let store = hoist_store();
    store.hoist_ok(["load", "-i", p(&tar)]);
    let oci = s.path().join("image.oci.tar");
    store.hoist_ok(["save", "--format", "oci", "-o", p(&oci), &img]);

    let out = tool("skopeo")
        .args(["inspect", "--config", &format!("oci-archive:{}", p(&oci))])
        .output()
        .expect("skopeo");
    let config = assert_success("skopeo inspect --config oci-archive:", &out);
    let config: serde_json::Value = serde_json::from_str(&config).expect("config json");
    assert_eq!(config["os"], "linux");

    let layout = s.path().join("layout");
    let out = tool("skopeo")
        .args([
            "copy",
            &format!("oci-archive:{}", p(&oci)),
            &format!("oci:{}:app", p(&layout)),
        ])
        .output()
        .expect("skopeo copy");
    assert_success("skopeo copy oci-archive: oci:", &out);
    let bundle = s.path().join("bundle");
    let out = tool("umoci")
        .args([
            "unpack",
            "--image",
            &format!("{}:app", p(&layout)),
            p(&bundle),
        ])
        .output()
        .expect("umoci");
    assert_success("umoci unpack", &out);
    assert!(
        bundle.join("rootfs/bin/busybox").exists(),
        "umoci rootfs lacks bin/busybox"
    );
    // The image ID is the config digest, whatever the layout.
    let out = tool("skopeo")
        .args(["inspect", "--raw", &format!("oci:{}:app", p(&layout))])
        .output()
        .expect("skopeo raw");
    let manifest = assert_success("skopeo inspect --raw", &out);
    assert!(
        manifest.contains(&id),
        "manifest does not name config {id}: {manifest}"
    );
}

#[test]
fn hoist_loads_what_skopeo_writes_and_docker_runs_it_after() {
    let d = docker();
    require_tool("skopeo");
    let img = d.tag_unique(APP_IMAGE);
    let s = scratch_dir();
    let host = d.skopeo_host_args("src");
    for kind in ["docker-archive", "oci-archive", "oci"] {
        let path = s.path().join(format!("skopeo-{kind}"));
        let dest = format!("{kind}:{}:{img}", p(&path));
        let out = tool("skopeo")
            .arg("copy")
            .args(&host)
            .args([&format!("docker-daemon:{img}"), &dest])
            .output()
            .expect("skopeo copy");
        assert_success(&format!("skopeo copy to {kind}"), &out);
        let archive = if kind == "oci" {
            // An OCI layout directory loads once it is tarred, as an oci-archive.
            let t = s.path().join("layout.tar");
            let mut b = tar::Builder::new(File::create(&t).expect("create"));
            b.append_dir_all(".", &path).expect("tar layout");
            b.finish().expect("finish");
            t
        } else {
            path
        };
        // skopeo may rewrite the config when it converts to OCI: the ID to
        // expect is the digest of the config it wrote, as it reports it.
        let out = tool("skopeo")
            .args(["inspect", "--raw", "--config", &dest])
            .output()
            .expect("skopeo inspect");
        assert_success("skopeo inspect --raw --config", &out);
        let id = hoist_oci::Digest::sha256(&out.stdout).to_string();
        let store = hoist_store();
        store.hoist_ok(["load", "-i", p(&archive)]);
        let listed = store.hoist_ok(["images", "-q", "--no-trunc"]);
        assert!(
            listed.contains(&id),
            "{kind}: hoist loaded another ID: {listed}"
        );
        let back = s.path().join(format!("{kind}-back.tar"));
        store.hoist_ok(["save", "-o", p(&back), &id]);
        d.rmi(&img);
        let loaded = d.load(&back);
        assert!(
            loaded.contains(&id["sha256:".len()..]) || loaded.contains(&id),
            "{loaded}"
        );
        d.tag(&id, &img);
        d.assert_runs_app(&img);
    }
    d.rmi(&img);
}

#[test]
fn classic_layout_from_compressed_layers_loads_and_runs_in_docker() {
    let d = docker();
    require_tool("skopeo");
    let img = d.tag_unique(APP_IMAGE);
    let s = scratch_dir();
    // skopeo's oci-archive carries gzip layers: the classic layout needs them uncompressed.
    let oci = s.path().join("gz.oci.tar");
    let out = tool("skopeo")
        .arg("copy")
        .args(d.skopeo_host_args("src"))
        .args([
            &format!("docker-daemon:{img}"),
            &format!("oci-archive:{}:{img}", p(&oci)),
        ])
        .output()
        .expect("skopeo copy");
    assert_success("skopeo copy to oci-archive", &out);
    let store = hoist_store();
    store.hoist_ok(["load", "-i", p(&oci)]);
    let inspect = store.hoist_ok(["inspect", &img]);
    assert!(
        inspect.contains("tar+gzip"),
        "expected gzip layers: {inspect}"
    );
    let id = store
        .hoist_ok(["images", "-q", "--no-trunc"])
        .trim()
        .to_owned();
    let classic = s.path().join("classic.tar");
    store.hoist_ok([
        "save",
        "--format",
        "docker-classic",
        "-o",
        p(&classic),
        &img,
    ]);
    let names = member_names(&classic);
    assert!(names.iter().any(|n| n.ends_with("/layer.tar")), "{names:?}");
    assert!(names.iter().any(|n| n.ends_with("/VERSION")), "{names:?}");
    d.rmi(&img);
    d.load(&classic);
    assert_eq!(
        d.image_id(&img),
        id,
        "image ID changed through the classic layout"
    );
    d.assert_runs_app(&img);
    d.rmi(&img);
}
