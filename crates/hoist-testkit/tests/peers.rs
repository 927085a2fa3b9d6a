//! The test environment itself: the private dockerd and its fixture images,
//! skopeo, docker-registry, umoci and crun all work together. When one of
//! these fails, the interop tests of hoist cannot be trusted either.

use hoist_testkit::*;
use std::path::Path;

#[test]
fn fixture_images_run_in_the_private_dockerd() {
    let docker = docker();
    docker.assert_runs_app(APP_IMAGE);
    let id = docker.image_id(APP_IMAGE);
    assert!(id.starts_with("sha256:") && id.len() == 71, "image id {id}");
    let app = docker.inspect(APP_IMAGE);
    let layers = app["RootFS"]["Layers"].as_array().expect("RootFS.Layers");
    assert!(layers.len() >= 3, "{APP_IMAGE} has {} layers", layers.len());
    let base = docker.inspect(BASE_IMAGE);
    assert_eq!(
        base["RootFS"]["Layers"][0], layers[0],
        "app is built on base"
    );
}

#[test]
fn docker_save_rmi_load_keeps_the_image_id() {
    let docker = docker();
    let img = docker.tag_unique(APP_IMAGE);
    let id = docker.image_id(&img);
    let scratch = scratch_dir();
    let archive = scratch.path().join("app.tar");
    docker.save(&img, &archive);
    docker.rmi(&img);
    assert!(!docker.has_image(&img));
    let out = docker.load(&archive);
    assert!(
        out.contains(&format!("Loaded image: {img}")),
        "docker load said: {out}"
    );
    assert_eq!(docker.image_id(&img), id);
    docker.assert_runs_app(&img);
    docker.rmi(&img);
}

fn run_ok(what: &str, cmd: &mut std::process::Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    assert_success(what, &out)
}

#[test]
fn skopeo_registry_umoci_and_crun_take_the_app_image() {
    let docker = docker();
    let registry = Registry::start();
    let scratch = scratch_dir();
    let remote = format!("docker://{}/hoist-test/app:peers", registry.addr());

    // docker-daemon: -> registry (skopeo ignores DOCKER_HOST)
    run_ok(
        "skopeo copy docker-daemon: -> docker://",
        tool("skopeo")
            .args(["copy", "-q", "--dest-tls-verify=false"])
            .args(docker.skopeo_host_args("src"))
            .arg(format!("docker-daemon:{APP_IMAGE}"))
            .arg(&remote),
    );
    let inspect = run_ok(
        "skopeo inspect docker://",
        tool("skopeo").args(["inspect", "--tls-verify=false", &remote]),
    );
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert!(v["Layers"].as_array().unwrap().len() >= 3, "{inspect}");
    assert!(registry
        .root()
        .join("docker/registry/v2/repositories/hoist-test/app/_manifests/tags/peers/current/link")
        .is_file());

    // registry -> oci: layout -> umoci unpack
    let layout = scratch.path().join("oci");
    run_ok(
        "skopeo copy docker:// -> oci:",
        tool("skopeo")
            .args(["copy", "-q", "--src-tls-verify=false", &remote])
            .arg(format!("oci:{}:app", layout.display())),
    );
    let bundle = scratch.path().join("bundle");
    run_ok(
        "umoci unpack",
        tool("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:app", layout.display()))
            .arg(&bundle),
    );
    let rootfs = bundle.join("rootfs");
    assert!(!rootfs.join("data/gone").exists(), "whiteout not applied");
    assert!(
        !rootfs.join("data/old/f").exists(),
        "opaque directory not applied"
    );
    assert_eq!(
        std::fs::read_link(rootfs.join("data/link")).unwrap(),
        Path::new("keep")
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("data/hard")).unwrap(),
        "keep\n"
    );

    // crun runs the bundle (no terminal: the test has none)
    let config_path = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["process"]["terminal"] = false.into();
    std::fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();
    let id = unique_name("hoist-peers");
    let out = crun()
        .arg("run")
        .arg("--bundle")
        .arg(&bundle)
        .arg(&id)
        .output()
        .unwrap();
    let _ = crun().args(["delete", "-f", &id]).output();
    let stdout = assert_success("crun run", &out);
    assert_eq!(stdout.trim(), APP_OUTPUT);
}
