//! `docker-daemon:` against the suite's real dockerd, through its socket only.

use hoist_oci::Digest;
use hoist_testkit::{docker, scratch_dir, unique_name, APP_IMAGE};
use hoist_transport::docker_daemon::DockerDaemon;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// Every member of a tar file, by name.
fn members(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    let mut out = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        out.insert(name, bytes);
    }
    out
}

#[test]
fn inspect_export_and_load_go_through_the_socket() {
    let suite = docker();
    let daemon = DockerDaemon::from_env().unwrap();
    assert_eq!(daemon.socket(), suite.socket());

    let image = daemon.inspect(APP_IMAGE).unwrap();
    assert_eq!(image.id.to_string(), suite.image_id(APP_IMAGE));
    assert!(
        image.repo_tags.iter().any(|t| t == APP_IMAGE),
        "{:?}",
        image.repo_tags
    );
    let docker_layers: Vec<Digest> =
        serde_json::from_value(suite.inspect(APP_IMAGE)["RootFS"]["Layers"].clone()).unwrap();
    assert_eq!(image.diff_ids, docker_layers);

    // The export streams a `docker save` tar whose layers hash to the diffIDs.
    let scratch = scratch_dir();
    let saved = scratch.path().join("app.tar");
    let mut stream = daemon.export(&[APP_IMAGE]).unwrap();
    let n = std::io::copy(&mut stream, &mut std::fs::File::create(&saved).unwrap()).unwrap();
    assert!(n > 0);
    let files = members(&saved);
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let entries = manifest.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{manifest}");
    assert_eq!(entries[0]["RepoTags"], serde_json::json!([APP_IMAGE]));
    let layers = entries[0]["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), image.diff_ids.len());
    for (path, diff_id) in layers.iter().zip(&image.diff_ids) {
        let bytes = &files[path.as_str().unwrap()];
        assert_eq!(Digest::sha256(bytes), *diff_id, "{path}");
    }
    let config = entries[0]["Config"].as_str().unwrap();
    assert_eq!(Digest::sha256(&files[config]), image.id);

    // Loaded back under a new tag, it is the same image.
    let tag = format!("hoist-test/{}:latest", unique_name("daemonload"));
    let retagged = scratch.path().join("retagged.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&retagged).unwrap());
    for (name, bytes) in &files {
        let bytes = if name == "manifest.json" {
            let mut m = manifest.clone();
            m[0]["RepoTags"] = serde_json::json!([tag]);
            serde_json::to_vec(&m).unwrap()
        } else if name == "repositories" {
            continue;
        } else {
            bytes.clone()
        };
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, bytes.as_slice()).unwrap();
    }
    b.into_inner().unwrap();
    let loaded = daemon
        .load(std::fs::File::open(&retagged).unwrap())
        .unwrap();
    assert_eq!(loaded, vec![tag.clone()]);
    assert_eq!(suite.image_id(&tag), image.id.to_string());
    assert_eq!(daemon.inspect(&tag).unwrap().id, image.id);
    suite.assert_runs_app(&tag);
    suite.rmi(&tag);
}

#[test]
fn the_daemons_refusals_come_back_with_its_message_and_the_socket() {
    let suite = docker();
    let daemon = DockerDaemon::from_env().unwrap();
    let socket = format!("unix://{}", suite.socket().display());

    let missing = format!("hoist-test/{}:nope", unique_name("missing"));
    let err = daemon.inspect(&missing).unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("No such image") && msg.contains(&socket),
        "{msg}"
    );

    let err = daemon
        .export(&[&missing])
        .err()
        .expect("exporting a missing image fails");
    assert!(err.to_string().contains(&socket), "{err}");

    let err = daemon.load(&b"this is not a tar archive"[..]).unwrap_err();
    let msg = err.to_string();
    // The daemon reads the body before it can tell: its error comes in the message stream.
    assert!(msg.contains(&socket) && msg.contains("tar"), "{msg}");
}
