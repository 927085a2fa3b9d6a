//! `hoist copy` between OCI layouts, archives and the store, with no peer:
//! what it copies keeps every digest.

#[path = "common/ocilayout.rs"]
mod ocilayout;

use hoist_testkit::*;
use std::collections::BTreeMap;
use std::path::Path;

fn hoist_store() -> TempStore {
    TempStore::with_bin(hoist_bin!())
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// Every blob of a layout, by file name, with its bytes.
fn blobs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// The digest `index.json` of a layout names under `tag`.
fn named(dir: &Path, tag: &str) -> String {
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no {tag} in {idx}"))["digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_two_platform_index_survives_oci_store_oci_byte_for_byte() {
    let s = scratch_dir();
    let (src, dst) = (s.path().join("src"), s.path().join("dst"));
    let built = ocilayout::write_layout(
        &src,
        "v1",
        &["linux/amd64", "linux/arm64"],
        300_000,
        serde_json::json!([{ "created_by": "test" }]),
    );
    let store = hoist_store();
    let name = "example.com/multi:v1";
    store.hoist_ok([
        "copy",
        "-q",
        "--all",
        &format!("oci:{}:v1", p(&src)),
        &format!("store:{name}"),
    ]);
    store.hoist_ok([
        "copy",
        "-q",
        "--all",
        &format!("store:{name}"),
        &format!("oci:{}:v2", p(&dst)),
    ]);
    assert_eq!(named(&dst, "v2"), built.top, "the index digest changed");
    assert_eq!(blobs(&src), blobs(&dst), "a blob changed or went missing");
}

#[test]
fn one_platform_of_an_index_copies_as_its_manifest() {
    let s = scratch_dir();
    let (src, dst) = (s.path().join("src"), s.path().join("dst"));
    let built = ocilayout::write_layout(
        &src,
        "v1",
        &["linux/amd64", "linux/arm64"],
        100_000,
        serde_json::json!([]),
    );
    let store = hoist_store();
    store.hoist_ok([
        "copy",
        "-q",
        "--platform",
        "linux/arm64",
        &format!("oci:{}:v1", p(&src)),
        &format!("oci:{}:arm", p(&dst)),
    ]);
    let arm = built
        .images
        .iter()
        .find(|i| i.platform == "linux/arm64")
        .unwrap();
    assert_eq!(named(&dst, "arm"), arm.manifest);
    let got = blobs(&dst);
    for (d, _) in &arm.layers {
        assert!(
            got.contains_key(d.trim_start_matches("sha256:")),
            "layer {d} missing"
        );
    }
    let out = store.hoist([
        "copy",
        "--platform",
        "linux/s390x",
        &format!("oci:{}:v1", p(&src)),
        &format!("oci:{}:x", p(&dst)),
    ]);
    let err = assert_failure("copy of a platform the index lacks", &out);
    assert!(err.contains("no image for linux/s390x"), "{err}");
}

#[test]
fn oci_to_docker_archive_to_store_keeps_the_image_id() {
    let s = scratch_dir();
    let src = s.path().join("src");
    let built =
        ocilayout::write_layout(&src, "v1", &["linux/amd64"], 100_000, serde_json::json!([]));
    let archive = s.path().join("a.tar");
    let store = hoist_store();
    store.hoist_ok([
        "copy",
        "-q",
        &format!("oci:{}:v1", p(&src)),
        &format!("docker-archive:{}:example.com/one:v1", p(&archive)),
    ]);
    let out = store.hoist_ok(["load", "-i", p(&archive)]);
    assert!(out.contains("Loaded image: example.com/one:v1"), "{out}");
    let inspect = store.hoist_ok(["inspect", "example.com/one:v1"]);
    assert!(inspect.contains(&built.images[0].config), "{inspect}");
}

#[test]
fn a_two_platform_index_survives_an_oci_archive_byte_for_byte() {
    let s = scratch_dir();
    let (src, dst) = (s.path().join("src"), s.path().join("dst"));
    let archive = s.path().join("multi.tar");
    let built = ocilayout::write_layout(
        &src,
        "v1",
        &["linux/amd64", "linux/arm/v7"],
        100_000,
        serde_json::json!([]),
    );
    let store = hoist_store();
    store.hoist_ok([
        "copy",
        "-q",
        "--all",
        &format!("oci:{}:v1", p(&src)),
        &format!("oci-archive:{}:example.com/multi:v1", p(&archive)),
    ]);
    store.hoist_ok([
        "copy",
        "-q",
        "--all",
        &format!("oci-archive:{}", p(&archive)),
        &format!("oci:{}:v1", p(&dst)),
    ]);
    assert_eq!(named(&dst, "v1"), built.top, "the index digest changed");
    assert_eq!(blobs(&src), blobs(&dst), "a blob changed or went missing");
}

/// `images` shows an index copied with `--all` as one row, as Docker with
/// the containerd image store does: the index digest as its ID, and SIZE the
/// content of every fetched platform's layers.
#[test]
fn a_two_platform_index_is_one_row_of_images() {
    let s = scratch_dir();
    let src = s.path().join("src");
    let built = ocilayout::write_layout(
        &src,
        "v1",
        &["linux/amd64", "linux/arm64"],
        300_000,
        serde_json::json!([]),
    );
    let store = hoist_store();
    store.hoist_ok([
        "copy",
        "-q",
        "--all",
        &format!("oci:{}:v1", p(&src)),
        "store:example.com/multi:v1",
    ]);
    let out = store.hoist_ok(["images", "--no-trunc", "--format", "{{.ID}} {{.Size}}"]);
    let layers: std::collections::BTreeSet<&String> = built
        .images
        .iter()
        .flat_map(|i| i.layers.iter().map(|(d, _)| d))
        .collect();
    let mb = layers.len() as f64 * 300_000.0 / 1e6;
    assert_eq!(out, format!("{} {mb}MB\n", built.top), "{out}");
    let short = store.hoist_ok(["images", "-q"]);
    assert_eq!(short.trim(), &built.top["sha256:".len()..][..12]);
}

/// `load -i DIR` takes an OCI layout directory as `docker load` takes an
/// OCI archive: a ref name that is a full reference tags the image, a bare
/// one (`v1`) names nothing; a directory that is no layout says so.
#[test]
fn load_takes_an_oci_layout_directory() {
    let s = scratch_dir();
    let (named, bare, empty) = (
        s.path().join("named"),
        s.path().join("bare"),
        s.path().join("empty"),
    );
    let one = ocilayout::write_layout(
        &named,
        "example.com/app:v1",
        &["linux/amd64"],
        1000,
        serde_json::json!([]),
    );
    ocilayout::write_layout(
        &bare,
        "v1",
        &["linux/amd64", "linux/arm64"],
        1000,
        serde_json::json!([]),
    );
    std::fs::create_dir(&empty).unwrap();
    let store = hoist_store();
    assert_eq!(
        store.hoist_ok(["load", "-i", p(&named)]),
        "Loaded image: example.com/app:v1\n"
    );
    let id = store.hoist_ok(["inspect", "-f", "{{.Id}}", "example.com/app:v1"]);
    assert_eq!(id.trim(), one.images[0].config);
    let out = store.hoist_ok(["load", "-i", p(&bare)]);
    assert!(out.starts_with("Loaded image ID: sha256:"), "{out}");
    let err = assert_failure(
        "load of a plain directory",
        &store.hoist(["load", "-i", p(&empty)]),
    );
    assert!(err.contains("not an OCI image layout"), "{err}");
}
