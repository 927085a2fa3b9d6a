//! `hoist copy` with `docker-root:` and `docker-daemon:` against real
//! dockerds: a second overlay2 dockerd that the test starts, fills and
//! stops (its data-root read without it), and the suite's dockerd (started
//! by scripts/test.sh) spoken to over its Engine API socket.
//! Run: `bash scripts/test.sh --exec cargo test -p hoist --test docker_root_copy_interop`.

use hoist_testkit::*;
use std::path::Path;

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// The app image's Dockerfile from scripts/test.sh: a whiteout, an opaque
/// directory, a symlink and a hardlink, and a command that checks them.
/// Built in the second dockerd, its layers are new to the suite's dockerd,
/// so loading there imports hoist's rebuilt tars rather than reusing layers.
const APP_DOCKERFILE: &str = r#"FROM hoist-test/base:latest
RUN mkdir -p /data/old && echo gone > /data/gone && echo keep > /data/keep && echo old > /data/old/f
RUN rm /data/gone && rm -rf /data/old && mkdir /data/old && echo new > /data/old/g \
 && ln -s keep /data/link && ln /data/keep /data/hard
CMD ["/bin/sh", "-c", "test ! -e /data/gone && test ! -e /data/old/f && test \"$(cat /data/old/g)\" = new && test \"$(readlink /data/link)\" = keep && test \"$(cat /data/hard)\" = keep && echo hoist-test-ok || { echo hoist-test-broken-layers >&2; exit 1; }"]
"#;

/// A hoist command on `store` aimed at the suite's dockerd.
fn hoist_docker(store: &TempStore, d: &Docker, args: &[&str]) -> std::process::Output {
    store
        .command()
        .env("DOCKER_HOST", d.host())
        .args(args)
        .output()
        .expect("run hoist")
}

#[test]
fn docker_root_images_copy_out_with_dockers_id_run_and_a_changed_file_is_named() {
    let suite = docker();
    let scratch = scratch_dir();
    let base = scratch.path().join("base.tar");
    suite.save(BASE_IMAGE, &base);

    // A short directory for the second daemon (unix socket paths are limited).
    let dir = tempfile::Builder::new()
        .prefix("hx-")
        .tempdir_in("/tmp")
        .unwrap();
    let mut second = SecondDockerd::start(dir.path(), suite.cli());
    second.client.load(&base);
    let ctx = scratch.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), APP_DOCKERFILE).unwrap();
    let built = format!("hoist-test/{}:latest", unique_name("rootcopy"));
    second.client.run_ok([
        "build".as_ref(),
        "-q".as_ref(),
        "--network".as_ref(),
        "none".as_ref(),
        "-t".as_ref(),
        built.as_ref(),
        ctx.as_os_str(),
    ]);
    let second_id = second.client.image_id(&built);
    // The same image through the running daemon's API (DOCKER_HOST names it).
    let store = TempStore::with_bin(hoist_bin!());
    let via_daemon = scratch.path().join("via-daemon");
    let out = hoist_docker(
        &store,
        &second.client,
        &[
            "copy",
            "-q",
            &format!("docker-daemon:{built}"),
            &format!("oci:{}", p(&via_daemon)),
        ],
    );
    assert_success(
        "hoist copy docker-daemon: oci: from the second dockerd",
        &out,
    );
    second.stop();
    let data_root = second.data_root();
    let src = format!("docker-root:{}:{built}", p(&data_root));
    let via_root = scratch.path().join("via-root");
    store.hoist_ok(["copy", "-q", &src, &format!("oci:{}", p(&via_root))]);
    assert_eq!(
        top_manifest(&via_root),
        top_manifest(&via_daemon),
        "docker-root: and docker-daemon: describe the image differently"
    );

    // docker-root: → store, then hoist save | docker load into the suite's dockerd.
    store.hoist_ok(["copy", "-q", &src, &format!("store:{built}")]);
    let ids = store.hoist_ok(["images", "-q", "--no-trunc", &built]);
    assert_eq!(ids.trim(), second_id, "the store's image ID");
    let saved = scratch.path().join("saved.tar");
    store.hoist_ok(["save", "-o", p(&saved), &built]);
    suite.load(&saved);
    assert_eq!(
        suite.image_id(&built),
        second_id,
        "the image ID differs from the second dockerd's"
    );
    suite.assert_runs_app(&built);
    suite.rmi(&built);

    // docker-root: → docker-archive: loads as it is.
    let archive = scratch.path().join("root.tar");
    store.hoist_ok([
        "copy",
        "-q",
        &src,
        &format!("docker-archive:{}:{built}", p(&archive)),
    ]);
    suite.load(&archive);
    assert_eq!(suite.image_id(&built), second_id);
    suite.assert_runs_app(&built);
    suite.rmi(&built);

    // A file changed in the layer's diff directory since Docker stored it.
    let top = suite_layerdb_top(&data_root, &second_id);
    let cache_id = std::fs::read_to_string(top.join("cache-id")).unwrap();
    let file = data_root
        .join("overlay2")
        .join(cache_id.trim())
        .join("diff/data/old/g");
    assert_eq!(std::fs::read(&file).unwrap(), b"new\n");
    std::fs::write(&file, b"NEW\n").unwrap();
    let fresh = TempStore::with_bin(hoist_bin!());
    let err = fresh.hoist_err(["copy", "-q", &src, &format!("store:{built}")]);
    assert!(
        err.contains("data/old/g") && err.contains("changed since Docker stored it"),
        "{err}"
    );
    assert!(
        fresh.hoist_ok(["images", "-q"]).trim().is_empty(),
        "a refused copy left an image"
    );
    fresh.hoist_ok(["fsck"]);
    // Into a daemon, the load is aborted: Docker takes nothing.
    let refused = format!("hoist-test/{}:latest", unique_name("refused"));
    let out = hoist_docker(
        &fresh,
        &suite,
        &["copy", "-q", &src, &format!("docker-daemon:{refused}")],
    );
    let err = assert_failure("hoist copy of a changed layer into the daemon", &out);
    assert!(err.contains("data/old/g"), "{err}");
    assert!(
        !suite.has_image(&refused),
        "the daemon loaded an image from an aborted copy"
    );
}

/// The manifest an OCI layout's index names first.
fn top_manifest(layout: &Path) -> serde_json::Value {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    let bytes = std::fs::read(
        layout
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap()),
    )
    .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The layer database directory of the image's top layer (its last chainID).
fn suite_layerdb_top(data_root: &Path, id: &str) -> std::path::PathBuf {
    let hex = id.strip_prefix("sha256:").unwrap();
    let config = std::fs::read(
        data_root
            .join("image/overlay2/imagedb/content/sha256")
            .join(hex),
    )
    .unwrap();
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    let mut chain = String::new();
    for d in config["rootfs"]["diff_ids"].as_array().unwrap() {
        let d = d.as_str().unwrap();
        chain = if chain.is_empty() {
            d.to_owned()
        } else {
            hoist_oci::Digest::sha256(format!("{chain} {d}").as_bytes()).to_string()
        };
    }
    data_root
        .join("image/overlay2/layerdb/sha256")
        .join(chain.strip_prefix("sha256:").unwrap())
}

#[test]
fn docker_daemon_is_a_copy_source_and_destination() {
    let d = docker();
    let img = d.tag_unique(APP_IMAGE);
    let id = d.image_id(&img);
    let scratch = scratch_dir();
    let store = TempStore::with_bin(hoist_bin!());

    // docker-daemon: → oci:, then the layout names Docker's config.
    let layout = scratch.path().join("layout");
    let out = hoist_docker(
        &store,
        &d,
        &[
            "copy",
            "-q",
            &format!("docker-daemon:{img}"),
            &format!("oci:{}:app", p(&layout)),
        ],
    );
    assert_success("hoist copy docker-daemon: oci:", &out);
    let manifest = top_manifest(&layout);
    assert_eq!(manifest["config"]["digest"].as_str(), Some(id.as_str()));

    // docker-daemon: → store, then store: → docker-daemon: under a new name.
    let out = hoist_docker(
        &store,
        &d,
        &[
            "copy",
            "-q",
            &format!("docker-daemon:{img}"),
            &format!("store:{img}"),
        ],
    );
    assert_success("hoist copy docker-daemon: store:", &out);
    d.rmi(&img);
    let back = format!("hoist-test/{}:latest", unique_name("daemon-back"));
    let out = hoist_docker(
        &store,
        &d,
        &[
            "copy",
            "-q",
            &format!("store:{img}"),
            &format!("docker-daemon:{back}"),
        ],
    );
    assert_success("hoist copy store: docker-daemon:", &out);
    assert_eq!(d.image_id(&back), id, "image ID changed through the daemon");
    d.assert_runs_app(&back);
    d.rmi(&back);

    // A missing image: the daemon's answer, naming the socket.
    let out = hoist_docker(
        &store,
        &d,
        &[
            "copy",
            "-q",
            "docker-daemon:hoist-test/no-such-image:latest",
            &format!("oci:{}", p(&scratch.path().join("none"))),
        ],
    );
    let err = assert_failure("hoist copy of a missing image", &out);
    assert!(
        err.contains(&d.socket().display().to_string()) && err.contains("no-such-image"),
        "{err}"
    );
}

#[test]
fn docker_root_and_a_daemon_name_with_a_digest_are_refused_as_destinations() {
    let store = TempStore::with_bin(hoist_bin!());
    let scratch = scratch_dir();
    let layout = format!("oci:{}", p(&scratch.path().join("layout")));
    let err = store.hoist_err(["copy", &layout, "docker-root:/var/lib/docker:x"]);
    assert!(err.contains("read-only"), "{err}");
    let by_digest = format!("docker-daemon:busybox@sha256:{}", "a".repeat(64));
    let err = store.hoist_err(["copy", &layout, &by_digest]);
    assert!(err.contains("not a digest"), "{err}");
}

/// Writes `bytes` as a blob of `layout` and returns its descriptor's digest and size.
fn put_blob(layout: &Path, bytes: &[u8]) -> (String, u64) {
    let digest = hoist_oci::Digest::sha256(bytes);
    std::fs::write(layout.join("blobs/sha256").join(digest.hex()), bytes).unwrap();
    (digest.to_string(), bytes.len() as u64)
}

#[test]
fn a_daemon_that_refuses_the_archive_gives_its_reason() {
    let d = docker();
    let img = d.tag_unique(APP_IMAGE);
    let scratch = scratch_dir();
    let store = TempStore::with_bin(hoist_bin!());
    let layout = scratch.path().join("layout");
    let out = hoist_docker(
        &store,
        &d,
        &[
            "copy",
            "-q",
            &format!("docker-daemon:{img}"),
            &format!("oci:{}", p(&layout)),
        ],
    );
    assert_success("hoist copy docker-daemon: oci:", &out);
    d.rmi(&img);

    // A config whose first diffID names no layer of the image: only Docker checks it.
    let mut manifest = top_manifest(&layout);
    let config_digest = manifest["config"]["digest"].as_str().unwrap().to_owned();
    let config = std::fs::read(
        layout
            .join("blobs/sha256")
            .join(config_digest.strip_prefix("sha256:").unwrap()),
    )
    .unwrap();
    let mut config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    let fake = format!("sha256:{}", "e".repeat(64));
    config["rootfs"]["diff_ids"][0] = serde_json::json!(fake);
    let (digest, size) = put_blob(&layout, &serde_json::to_vec(&config).unwrap());
    manifest["config"]["digest"] = serde_json::json!(digest);
    manifest["config"]["size"] = serde_json::json!(size);
    let (digest, size) = put_blob(&layout, &serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": size,
        }],
    });
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();

    let refused = format!("hoist-test/{}:latest", unique_name("refused"));
    let out = hoist_docker(
        &store,
        &d,
        &[
            "copy",
            "-q",
            &format!("oci:{}", p(&layout)),
            &format!("docker-daemon:{refused}"),
        ],
    );
    let err = assert_failure("hoist copy of a broken image into the daemon", &out);
    assert!(
        err.contains(&d.socket().display().to_string()) && err.contains("diffID"),
        "{err}"
    );
    assert!(!d.has_image(&refused), "the daemon kept a refused image");
}
