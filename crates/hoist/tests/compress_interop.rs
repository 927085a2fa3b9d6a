//! `hoist copy --dest-compress-format` against the real peers (dockerd
//! started by scripts/test.sh, skopeo): the compressed images load and run
//! in Docker with the same image ID (the config, and so the diffIDs, do not
//! change).

use hoist_testkit::*;
use std::path::Path;

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// The layer media types of the image `oci:DIR:REF` names, as skopeo reads them.
fn layer_types(dir: &Path, r: &str) -> Vec<String> {
    let out = tool("skopeo")
        .args(["inspect", "--raw", &format!("oci:{}:{r}", p(dir))])
        .output()
        .expect("run skopeo");
    let raw = assert_success("skopeo inspect --raw", &out);
    let m: serde_json::Value = serde_json::from_str(&raw).expect("manifest JSON");
    m["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn gzip_and_zstd_copies_load_and_run_in_docker_with_the_same_id() {
    let d = docker();
    let img = d.tag_unique(APP_IMAGE);
    let id = d.image_id(&img);
    let s = scratch_dir();
    let saved = s.path().join("docker.tar");
    d.save(&img, &saved);
    d.rmi(&img);
    let store = TempStore::with_bin(hoist_bin!());
    store.hoist_ok(["load", "-i", p(&saved)]);

    // gzip into a docker-archive, through docker load.
    let gz = s.path().join("gzip.tar");
    store.hoist_ok([
        "copy",
        "-q",
        "--dest-compress-format",
        "gzip",
        &format!("store:{img}"),
        &format!("docker-archive:{}:{img}", p(&gz)),
    ]);
    let loaded = d.load(&gz);
    assert!(loaded.contains(&img), "docker load said: {loaded}");
    assert_eq!(d.image_id(&img), id, "image ID changed through gzip");
    d.assert_runs_app(&img);
    d.rmi(&img);

    // zstd into an OCI layout, through skopeo into the daemon.
    let oci = s.path().join("oci");
    store.hoist_ok([
        "copy",
        "-q",
        "--dest-compress-format",
        "zstd",
        &format!("store:{img}"),
        &format!("oci:{}:v1", p(&oci)),
    ]);
    let types = layer_types(&oci, "v1");
    assert!(!types.is_empty());
    assert!(
        types
            .iter()
            .all(|t| t == "application/vnd.oci.image.layer.v1.tar+zstd"),
        "{types:?}"
    );
    // A Docker image cannot hold zstd: skopeo decompresses our layers into
    // gzip ones first, then hands the image to the daemon, which checks
    // every diffID.
    let regz = s.path().join("regz");
    let out = tool("skopeo")
        .args(["copy", "-q", "--dest-compress-format", "gzip"])
        .args([
            &format!("oci:{}:v1", p(&oci)),
            &format!("oci:{}:v1", p(&regz)),
        ])
        .output()
        .expect("run skopeo");
    assert_success("skopeo copy --dest-compress-format gzip", &out);
    let out = tool("skopeo")
        .args(["copy", "-q"])
        .args(d.skopeo_host_args("dest"))
        .args([
            &format!("oci:{}:v1", p(&regz)),
            &format!("docker-daemon:{img}"),
        ])
        .output()
        .expect("run skopeo");
    assert_success("skopeo copy oci: docker-daemon:", &out);
    assert_eq!(d.image_id(&img), id, "image ID changed through zstd");
    d.assert_runs_app(&img);
    d.rmi(&img);
}
