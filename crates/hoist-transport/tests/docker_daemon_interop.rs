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
    let archive = retagged_app(&daemon, &tag, scratch.path());
    let loaded = daemon.load(archive.as_slice()).unwrap();
    assert_eq!(loaded, vec![tag.clone()]);
    assert_eq!(suite.image_id(&tag), image.id.to_string());
    assert_eq!(daemon.inspect(&tag).unwrap().id, image.id);
    suite.assert_runs_app(&tag);
    suite.rmi(&tag);
}

/// The retagged archive of [`APP_IMAGE`] as exported through the socket.
fn retagged_app(daemon: &DockerDaemon, tag: &str, dir: &Path) -> Vec<u8> {
    let saved = dir.join(format!("{}.tar", unique_name("export")));
    let mut stream = daemon.export(&[APP_IMAGE]).unwrap();
    std::io::copy(&mut stream, &mut std::fs::File::create(&saved).unwrap()).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    for (name, bytes) in members(&saved) {
        let bytes = match name.as_str() {
            "repositories" => continue,
            "manifest.json" => {
                let mut m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                m[0]["RepoTags"] = serde_json::json!([tag]);
                serde_json::to_vec(&m).unwrap()
            }
            _ => bytes,
        };
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, &name, bytes.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn a_load_writer_loads_what_is_written_and_an_abandoned_one_loads_nothing() {
    use std::io::Write;
    let suite = docker();
    let daemon = DockerDaemon::from_env().unwrap();
    let scratch = scratch_dir();
    let id = suite.image_id(APP_IMAGE);

    let tag = format!("hoist-test/{}:latest", unique_name("writer"));
    let archive = retagged_app(&daemon, &tag, scratch.path());
    let mut w = daemon.load_writer().unwrap();
    // Small writes, as a tar writer makes them.
    for piece in archive.chunks(1000) {
        w.write_all(piece).unwrap();
    }
    assert_eq!(w.finish().unwrap(), vec![tag.clone()]);
    assert_eq!(suite.image_id(&tag), id);
    suite.rmi(&tag);

    // Without its two end blocks the archive still loads when the body ends
    // cleanly (Docker takes EOF at a header for the end) ...
    let cut = &archive[..archive.len() - 1024];
    let clean = format!("hoist-test/{}:latest", unique_name("cut"));
    let cut_clean = retagged_app(&daemon, &clean, scratch.path());
    let mut w = daemon.load_writer().unwrap();
    w.write_all(&cut_clean[..cut_clean.len() - 1024]).unwrap();
    assert_eq!(w.finish().unwrap(), vec![clean.clone()]);
    assert_eq!(suite.image_id(&clean), id);
    suite.rmi(&clean);

    // ... so a writer dropped there must abort the request, not end it.
    let mut w = daemon.load_writer().unwrap();
    w.write_all(cut).unwrap();
    w.flush().unwrap();
    drop(w);
    // The daemon answers an aborted request at once; give it a moment to
    // have (not) registered the image.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(
        !suite.has_image(&tag),
        "an abandoned load left {tag} in the daemon"
    );
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
