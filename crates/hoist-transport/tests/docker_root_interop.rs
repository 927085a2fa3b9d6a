//! `docker-root:` against a real Docker: a second overlay2 dockerd with its
//! own data-root takes the suite's images, is stopped, and its data-root is
//! read without it. The images must come out with Docker's image IDs and
//! diffIDs, and load and run in the suite's dockerd.

use hoist_oci::Digest;
use hoist_testkit::{docker, scratch_dir, unique_name, SecondDockerd, APP_IMAGE, BASE_IMAGE};
use hoist_transport::docker_root::{DockerRoot, DockerRootError};
use std::io::Read;
use std::path::Path;

fn read_layer(root: &DockerRoot, chain_id: &Digest) -> Vec<u8> {
    let mut tar = Vec::new();
    root.layer_tar(chain_id)
        .unwrap()
        .read_to_end(&mut tar)
        .unwrap_or_else(|e| panic!("layer {chain_id}: {e}"));
    tar
}

/// A classic `docker save` archive of image `id` from `root`, tagged `tag`,
/// with each layer streamed from its rebuilt tar.
fn write_docker_save(root: &DockerRoot, id: &Digest, tag: &str, path: &Path) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut append = |name: &str, size: u64, data: &mut dyn Read| {
        let mut h = tar::Header::new_ustar();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
    };
    let config = root.config(id).unwrap();
    let config_name = format!("{}.json", id.hex());
    append(&config_name, config.len() as u64, &mut config.as_slice());
    let mut layer_names = Vec::new();
    for l in root.layers(id).unwrap() {
        let name = format!("{}/layer.tar", l.chain_id.hex());
        append(&name, l.size, &mut root.layer_tar(&l.chain_id).unwrap());
        layer_names.push(name);
    }
    let manifest =
        serde_json::json!([{ "Config": config_name, "RepoTags": [tag], "Layers": layer_names }]);
    let manifest = serde_json::to_vec(&manifest).unwrap();
    append(
        "manifest.json",
        manifest.len() as u64,
        &mut manifest.as_slice(),
    );
    b.into_inner().unwrap();
}

#[test]
fn images_of_a_stopped_overlay2_docker_come_out_with_dockers_ids_and_run() {
    let suite = docker();
    let scratch = scratch_dir();
    let archive = scratch.path().join("images.tar");
    suite.save_many(&[BASE_IMAGE, APP_IMAGE], &archive);
    let app_id = suite.image_id(APP_IMAGE);
    let base_id = suite.image_id(BASE_IMAGE);

    // A short directory for the second daemon (unix socket paths are limited).
    let dir = tempfile::Builder::new()
        .prefix("hx-")
        .tempdir_in("/tmp")
        .unwrap();
    let mut second = SecondDockerd::start(dir.path(), suite.cli());
    second.client.load(&archive);
    assert_eq!(second.client.image_id(APP_IMAGE), app_id);
    second.stop();

    let root = DockerRoot::open(second.data_root()).unwrap();
    let images = root.images().unwrap();
    let tagged = |id: &str| {
        images
            .iter()
            .find(|i| i.id.to_string() == id)
            .map(|i| i.tags.clone())
    };
    assert_eq!(tagged(&app_id), Some(vec![APP_IMAGE.to_owned()]));
    assert_eq!(tagged(&base_id), Some(vec![BASE_IMAGE.to_owned()]));

    for (image, docker_id) in [(APP_IMAGE, &app_id), (BASE_IMAGE, &base_id)] {
        let id = root.resolve(image).unwrap();
        assert_eq!(
            id.to_string(),
            *docker_id,
            "{image}: image ID differs from Docker's"
        );
        assert_eq!(Digest::sha256(&root.config(&id).unwrap()), id);
        let layers = root.layers(&id).unwrap();
        let docker_layers = suite.inspect(image)["RootFS"]["Layers"].clone();
        let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
        assert_eq!(
            serde_json::json!(diff_ids),
            docker_layers,
            "{image}: diffIDs"
        );
        let manifest: hoist_oci::Manifest =
            serde_json::from_slice(&root.manifest(&id).unwrap()).unwrap();
        assert_eq!(manifest.config.digest, id);
        let described: Vec<(Digest, u64)> = manifest
            .layers
            .iter()
            .map(|d| (d.digest.clone(), d.size))
            .collect();
        let listed: Vec<(Digest, u64)> =
            layers.iter().map(|l| (l.diff_id.clone(), l.size)).collect();
        assert_eq!(described, listed, "{image}: manifest layers");
        for l in &layers {
            let tar = read_layer(&root, &l.chain_id);
            assert_eq!(tar.len() as u64, l.size, "layer {}: size", l.chain_id);
            assert_eq!(
                Digest::sha256(&tar),
                l.diff_id,
                "layer {}: rebuilt tar",
                l.chain_id
            );
        }
    }

    // What came out loads into the suite's dockerd with the same ID and runs.
    let app = root.resolve(APP_IMAGE).unwrap();
    let tag = format!("hoist-test/{}:latest", unique_name("dockerroot"));
    let saved = scratch.path().join("from-root.tar");
    write_docker_save(&root, &app, &tag, &saved);
    suite.load(&saved);
    assert_eq!(suite.image_id(&tag), app_id);
    suite.assert_runs_app(&tag);
    suite.rmi(&tag);
}

/// The app image's Dockerfile from scripts/test.sh: a whiteout, an opaque
/// directory, a symlink and a hardlink, and a command that checks them.
const APP_DOCKERFILE: &str = r#"FROM hoist-test/base:latest
RUN mkdir -p /data/old && echo gone > /data/gone && echo keep > /data/keep && echo old > /data/old/f
RUN rm /data/gone && rm -rf /data/old && mkdir /data/old && echo new > /data/old/g \
 && ln -s keep /data/link && ln /data/keep /data/hard
CMD ["/bin/sh", "-c", "test ! -e /data/gone && test ! -e /data/old/f && test \"$(cat /data/old/g)\" = new && test \"$(readlink /data/link)\" = keep && test \"$(cat /data/hard)\" = keep && echo hoist-test-ok || { echo hoist-test-broken-layers >&2; exit 1; }"]
"#;

#[test]
fn layers_docker_committed_from_containers_rebuild_to_their_diff_ids_and_run() {
    // Loaded layers keep the tar they came in; built ones are Docker's own
    // diff of a container (whiteouts as 0/0 devices, opaque directories as
    // xattrs in the diff directory).
    let suite = docker();
    let scratch = scratch_dir();
    let archive = scratch.path().join("base.tar");
    suite.save(BASE_IMAGE, &archive);

    let dir = tempfile::Builder::new()
        .prefix("hx-")
        .tempdir_in("/tmp")
        .unwrap();
    let mut second = SecondDockerd::start(dir.path(), suite.cli());
    second.client.load(&archive);
    let ctx = scratch.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), APP_DOCKERFILE).unwrap();
    let built = format!("hoist-test/{}:latest", unique_name("built"));
    second.client.run_ok([
        "build".as_ref(),
        "-q".as_ref(),
        "--network".as_ref(),
        "none".as_ref(),
        "-t".as_ref(),
        built.as_ref(),
        ctx.as_os_str(),
    ]);
    let inspect = second.client.inspect(&built);
    second.stop();

    let root = DockerRoot::open(second.data_root()).unwrap();
    let id = root.resolve(&built).unwrap();
    assert_eq!(serde_json::json!(id.to_string()), inspect["Id"]);
    let layers = root.layers(&id).unwrap();
    let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
    assert_eq!(serde_json::json!(diff_ids), inspect["RootFS"]["Layers"]);
    for l in &layers {
        let tar = read_layer(&root, &l.chain_id);
        assert_eq!(
            Digest::sha256(&tar),
            l.diff_id,
            "layer {}: rebuilt tar",
            l.chain_id
        );
    }

    let saved = scratch.path().join("built.tar");
    write_docker_save(&root, &id, &built, &saved);
    suite.load(&saved);
    assert_eq!(serde_json::json!(suite.image_id(&built)), inspect["Id"]);
    suite.assert_runs_app(&built);
    suite.rmi(&built);
}

#[test]
fn a_file_changed_in_a_stopped_dockers_layer_is_refused_by_name() {
    let suite = docker();
    let scratch = scratch_dir();
    let archive = scratch.path().join("app.tar");
    suite.save(APP_IMAGE, &archive);

    let dir = tempfile::Builder::new()
        .prefix("hx-")
        .tempdir_in("/tmp")
        .unwrap();
    let mut second = SecondDockerd::start(dir.path(), suite.cli());
    second.client.load(&archive);
    second.stop();

    let root = DockerRoot::open(second.data_root()).unwrap();
    let id = root.resolve(APP_IMAGE).unwrap();
    // The top layer wrote data/old/g ("new\n"); change its bytes, not its size.
    let top = root.layers(&id).unwrap().pop().unwrap();
    let layerdb = second
        .data_root()
        .join("image/overlay2/layerdb/sha256")
        .join(top.chain_id.hex());
    let cache_id = std::fs::read_to_string(layerdb.join("cache-id")).unwrap();
    let file = second
        .data_root()
        .join("overlay2")
        .join(cache_id.trim())
        .join("diff/data/old/g");
    assert_eq!(std::fs::read(&file).unwrap(), b"new\n");
    std::fs::write(&file, b"NEW\n").unwrap();
    let mut out = Vec::new();
    let err = root
        .layer_tar(&top.chain_id)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap_err();
    let msg = DockerRootError::from_io(&err)
        .map(ToString::to_string)
        .unwrap_or_else(|| err.to_string());
    assert!(
        msg.contains("data/old/g") && msg.contains("CRC-64"),
        "{msg}"
    );
}

#[test]
fn a_vfs_data_root_is_refused_by_name() {
    let suite = docker();
    let scratch = scratch_dir();
    let archive = scratch.path().join("base.tar");
    suite.save(BASE_IMAGE, &archive);
    let dir = tempfile::Builder::new()
        .prefix("hx-")
        .tempdir_in("/tmp")
        .unwrap();
    let mut second = SecondDockerd::start_with(dir.path(), suite.cli(), "vfs");
    second.client.load(&archive);
    second.stop();
    let err = DockerRoot::open(second.data_root()).unwrap_err();
    assert!(
        matches!(err, DockerRootError::UnsupportedDriver { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("vfs storage driver"), "{err}");
}
