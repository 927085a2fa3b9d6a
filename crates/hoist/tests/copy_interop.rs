//! `hoist copy` against the real dockerd (started by scripts/test.sh).

use hoist_testkit::*;
use std::path::Path;

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

#[test]
fn store_to_docker_archive_loads_and_runs_in_docker() {
    let d = docker();
    let img = d.tag_unique(APP_IMAGE);
    let id = d.image_id(&img);
    let s = scratch_dir();
    let from_docker = s.path().join("docker.tar");
    d.save(&img, &from_docker);
    let store = TempStore::with_bin(hoist_bin!());
    store.hoist_ok(["load", "-i", p(&from_docker)]);
    d.rmi(&img);

    let out = s.path().join("copied.tar");
    store.hoist_ok([
        "copy",
        "-q",
        &format!("store:{img}"),
        &format!("docker-archive:{}:{img}", p(&out)),
    ]);
    let loaded = d.load(&out);
    assert!(loaded.contains(&img), "docker load said: {loaded}");
    assert_eq!(d.image_id(&img), id, "image ID changed through hoist copy");
    d.assert_runs_app(&img);
    d.rmi(&img);
}
