//! `hoist sync` and `hoist copy --all` of a two-platform index against the
//! real peers: the CNCF distribution registry (`docker-registry`), `hoist
//! serve`, dockerd (which pushes the images) and skopeo (which reads what
//! hoist wrote).

use hoist_testkit::serve::HoistServe;
use hoist_testkit::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

fn skopeo(args: &[&str]) -> std::process::Output {
    Command::new(require_tool("skopeo"))
        .arg("--insecure-policy")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run skopeo")
}

/// This machine's architecture as OCI spells it, and another one.
fn host_and_other_arch() -> (&'static str, &'static str) {
    match std::env::consts::ARCH {
        "aarch64" => ("arm64", "amd64"),
        _ => ("amd64", "arm64"),
    }
}

/// The manifest digest the registry gives for `reference` (docker://…).
fn remote_digest(store: &TempStore, reference: &str) -> String {
    store.hoist_ok(["digest", reference]).trim().to_owned()
}

/// The ref names of an OCI layout and the digests they name.
fn layout_refs(dir: &Path) -> Vec<(String, String)> {
    let idx: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("index.json"))
            .expect("index.json is JSON");
    let mut refs: Vec<(String, String)> = idx["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter_map(|d| {
            Some((
                d["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()?
                    .to_owned(),
                d["digest"].as_str()?.to_owned(),
            ))
        })
        .collect();
    refs.sort();
    refs
}

/// Every file under `dir`'s blobs, with its modification time.
fn blob_files(dir: &Path) -> Vec<(String, std::time::SystemTime)> {
    let mut out = Vec::new();
    for alg in std::fs::read_dir(dir.join("blobs")).expect("blobs") {
        for f in std::fs::read_dir(alg.expect("entry").path()).expect("blobs/alg") {
            let f = f.expect("entry");
            let m = f.metadata().expect("metadata");
            out.push((f.path().display().to_string(), m.modified().expect("mtime")));
        }
    }
    out.sort();
    out
}

/// Who puts the images of a source repository into the registry.
#[derive(Clone, Copy)]
enum Pusher {
    /// `docker push`: Docker v2 schema 2 manifests.
    Docker,
    /// `skopeo copy --format oci` from dockerd: OCI manifests.
    SkopeoOci,
}

/// A source repository `addr/REPO` with tags `v1` (APP_IMAGE) and `v2`
/// (BASE_IMAGE) pushed by `pusher`, `multi` (an OCI index of both, this
/// machine's platform first, pushed by `hoist copy --all`) and `extra`
/// (APP_IMAGE again, for `--tags`). Returns the repository and the index digest.
fn source_repo(store: &TempStore, addr: &str, scratch: &Path, pusher: Pusher) -> (String, String) {
    let d = docker();
    let repo = format!("{addr}/{}", unique_name("sync-src"));
    for (image, tag) in [(APP_IMAGE, "v1"), (BASE_IMAGE, "v2"), (APP_IMAGE, "extra")] {
        let name = format!("{repo}:{tag}");
        match pusher {
            Pusher::Docker => {
                d.tag(image, &name);
                d.run_ok(["push", &name]);
                d.rmi(&name);
            }
            Pusher::SkopeoOci => {
                let [hflag, host] = d.skopeo_host_args("src");
                let out = skopeo(&[
                    "copy",
                    &hflag,
                    &host,
                    "--format",
                    "oci",
                    "--dest-tls-verify=false",
                    &format!("docker-daemon:{image}"),
                    &format!("docker://{name}"),
                ]);
                assert_success("skopeo copy --format oci into the registry", &out);
            }
        }
    }
    let layout = scratch.join("build-index");
    for tag in ["v1", "v2"] {
        store.hoist_ok([
            "copy",
            "-q",
            &format!("docker://{repo}:{tag}"),
            &format!("oci:{}:{tag}", p(&layout)),
        ]);
    }
    let named = |tag: &str| -> Value {
        let idx: Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json"))
                .expect("JSON");
        idx["manifests"]
            .as_array()
            .expect("manifests")
            .iter()
            .find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .cloned()
            .expect("tag in the layout")
    };
    let (host, other) = host_and_other_arch();
    let entry = |tag: &str, arch: &str| {
        let e = named(tag);
        json!({
            "mediaType": e["mediaType"],
            "digest": e["digest"],
            "size": e["size"],
            "platform": {"architecture": arch, "os": "linux"},
        })
    };
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry("v1", host), entry("v2", other)],
    }))
    .expect("index bytes");
    let digest = hoist_oci::Digest::sha256(&index);
    std::fs::write(layout.join("blobs/sha256").join(digest.hex()), &index)
        .expect("write the index blob");
    let mut top: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json"))
            .expect("JSON");
    top["manifests"]
        .as_array_mut()
        .expect("manifests")
        .push(json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": digest.to_string(),
            "size": index.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }));
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&top).expect("JSON"),
    )
    .expect("write index.json");
    store.hoist_ok([
        "copy",
        "-q",
        "--all",
        &format!("oci:{}:multi", p(&layout)),
        &format!("docker://{repo}:multi"),
    ]);
    assert_eq!(
        remote_digest(store, &format!("docker://{repo}:multi")),
        digest.to_string()
    );
    (repo, digest.to_string())
}

/// registry → `oci:` → registry with `--all`: the index and both manifests
/// keep their digests, and skopeo reads each image of the copy.
fn index_survives_copy_all(addr: &str) {
    let scratch = scratch_dir();
    let store = TempStore::with_bin(hoist_bin!());
    let (repo, index) = source_repo(&store, addr, scratch.path(), Pusher::Docker);
    let out_dir = scratch.path().join("out");
    store.hoist_ok([
        "copy",
        "-q",
        "--all",
        &format!("docker://{repo}:multi"),
        &format!("oci:{}:multi", p(&out_dir)),
    ]);
    assert_eq!(
        layout_refs(&out_dir),
        vec![("multi".to_owned(), index.clone())]
    );
    let back = format!("{addr}/{}:multi", unique_name("sync-back"));
    store.hoist_ok([
        "copy",
        "-q",
        "--all",
        &format!("oci:{}:multi", p(&out_dir)),
        &format!("docker://{back}"),
    ]);
    assert_eq!(remote_digest(&store, &format!("docker://{back}")), index);
    let a = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{back}"),
    ]);
    let b = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{repo}:multi"),
    ]);
    assert_eq!(
        assert_success("skopeo inspect --raw of the copy", &a),
        assert_success("skopeo inspect --raw of the source", &b),
        "the index bytes changed"
    );
    for tag in ["v1", "v2"] {
        let child = remote_digest(&store, &format!("docker://{repo}:{tag}"));
        let back_repo = back.trim_end_matches(":multi");
        let out = skopeo(&[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{back_repo}@{child}"),
        ]);
        assert_success("skopeo inspect of an image of the copied index", &out);
    }
}

#[test]
fn two_platform_index_survives_copy_all_through_docker_registry() {
    let reg = Registry::start();
    index_survives_copy_all(reg.addr());
}

#[test]
fn two_platform_index_survives_copy_all_through_hoist_serve() {
    let scratch = scratch_dir();
    let s = HoistServe::start(&scratch.path().join("registry"), &[]);
    index_survives_copy_all(&s.addr);
}

/// `hoist sync --all --tags` from docker-registry into `hoist serve`: the
/// chosen tags arrive under their names with the source's digests; a second
/// run moves nothing and says so.
#[test]
fn sync_registry_to_registry_twice_moves_nothing_the_second_time() {
    let reg = Registry::start();
    let scratch = scratch_dir();
    let serve = HoistServe::start(&scratch.path().join("registry"), &[]);
    let store = TempStore::with_bin(hoist_bin!());
    let (repo, index) = source_repo(&store, reg.addr(), scratch.path(), Pusher::Docker);
    let dst = format!("{}/{}", serve.addr, unique_name("sync-dst"));
    let src_url = format!("docker://{repo}");
    let dst_url = format!("docker://{dst}");
    let args = [
        "sync",
        "-q",
        "--all",
        "--tags",
        "^(v1|v2|multi)$",
        &src_url,
        &dst_url,
    ];

    let out = store.hoist_ok(args);
    assert_eq!(out.matches("Copied image ref ").count(), 3, "{out}");
    // Tags are checked several at once, but their lines come in order.
    let at = |n: usize| {
        out.find(&format!("image ref {n}/3 "))
            .expect("a line per tag")
    };
    assert!(at(1) < at(2) && at(2) < at(3), "{out}");
    assert!(out.contains("3 copied, 0 already present"), "{out}");
    for tag in ["v1", "v2", "multi"] {
        assert_eq!(
            remote_digest(&store, &format!("docker://{dst}:{tag}")),
            remote_digest(&store, &format!("docker://{repo}:{tag}")),
            "tag {tag}"
        );
    }
    assert_eq!(
        remote_digest(&store, &format!("docker://{dst}:multi")),
        index
    );
    let tags: Value =
        serde_json::from_str(&store.hoist_ok(["list-tags", &dst_url])).expect("list-tags JSON");
    let mut tags: Vec<&str> = tags["Tags"]
        .as_array()
        .expect("Tags")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    tags.sort();
    assert_eq!(
        tags,
        ["multi", "v1", "v2"],
        "--tags let through a tag it does not match"
    );

    let again = store.hoist_ok(args);
    assert_eq!(again.matches("Skipped image ref ").count(), 3, "{again}");
    assert!(again.contains("0 copied, 3 already present"), "{again}");
    assert!(!again.contains("Copied image ref"), "{again}");

    let json: Value = serde_json::from_str(
        &store.hoist_ok(["sync", "--format", "json", "--all", &src_url, &dst_url]),
    )
    .expect("sync --format json");
    // `extra` (not synced before) is copied; its layers are already there.
    assert_eq!(json["copied"], 1, "{json}");
    assert_eq!(json["skipped"], 3, "{json}");
    let extra = json["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .find(|t| t["tag"] == "extra")
        .expect("extra in the summary");
    assert_eq!(extra["status"], "copied");
    assert_eq!(
        extra["bytesSent"], 0,
        "layers the destination has moved again: {extra}"
    );
}

/// `hoist sync` from `hoist serve` into one OCI layout: each tag is a ref
/// name (an index resolved to this machine's image), skopeo reads each, and
/// a second run rewrites no blob; synced back into a registry, each ref
/// name is a tag with the same digest. The images are OCI-typed: skopeo's `oci:`
/// ignores layout entries with Docker media types, which hoist keeps as received.
#[test]
fn sync_registry_to_oci_layout_names_each_tag() {
    let scratch = scratch_dir();
    let serve = HoistServe::start(&scratch.path().join("registry"), &[]);
    let store = TempStore::with_bin(hoist_bin!());
    let (repo, _) = source_repo(&store, &serve.addr, scratch.path(), Pusher::SkopeoOci);
    let layout = scratch.path().join("synced");
    let src_url = format!("docker://{repo}");
    let dst_url = format!("oci:{}", p(&layout));

    let out = store.hoist_ok(["sync", "-q", &src_url, &dst_url]);
    assert!(out.contains("4 copied, 0 already present"), "{out}");
    let v1 = remote_digest(&store, &format!("docker://{repo}:v1"));
    let v2 = remote_digest(&store, &format!("docker://{repo}:v2"));
    assert_eq!(
        layout_refs(&layout),
        vec![
            ("extra".to_owned(), v1.clone()),
            ("multi".to_owned(), v1.clone()),
            ("v1".to_owned(), v1),
            ("v2".to_owned(), v2.clone()),
        ]
    );
    // One tag, the other platform's image of the index.
    let picked = scratch.path().join("picked");
    let (_, other) = host_and_other_arch();
    store.hoist_ok([
        "sync",
        "-q",
        "--platform",
        &format!("linux/{other}"),
        &format!("docker://{repo}:multi"),
        &format!("oci:{}", p(&picked)),
    ]);
    assert_eq!(layout_refs(&picked), vec![("multi".to_owned(), v2)]);
    for tag in ["v1", "v2", "multi", "extra"] {
        let out = skopeo(&["inspect", &format!("oci:{}:{tag}", p(&layout))]);
        assert_success("skopeo inspect of a synced ref name", &out);
    }

    let before = blob_files(&layout);
    let again = store.hoist_ok(["sync", "-q", &src_url, &dst_url]);
    assert_eq!(again.matches("Skipped image ref ").count(), 4, "{again}");
    assert!(again.contains("nothing moved"), "{again}");
    assert_eq!(blob_files(&layout), before, "a second sync rewrote blobs");

    // And back: the layout's ref names become tags of another repository.
    let back = format!("{}/{}", serve.addr, unique_name("sync-back"));
    let out = store.hoist_ok(["sync", "-q", &dst_url, &format!("docker://{back}")]);
    assert!(out.contains("4 copied, 0 already present"), "{out}");
    for (tag, digest) in layout_refs(&layout) {
        assert_eq!(
            remote_digest(&store, &format!("docker://{back}:{tag}")),
            digest
        );
    }
    let again = store.hoist_ok(["sync", "-q", &dst_url, &format!("docker://{back}")]);
    assert!(again.contains("0 copied, 4 already present"), "{again}");
}

#[test]
fn sync_refuses_bad_ends_and_regex_and_names_a_failing_tag() {
    let store = TempStore::with_bin(hoist_bin!());
    let err = store.hoist_err([
        "sync",
        "docker://127.0.0.1:1/a",
        "docker://127.0.0.1:1/b:v1",
    ]);
    assert!(err.contains("without a tag or ref"), "{err}");
    let err = store.hoist_err(["sync", "docker://127.0.0.1:1/a", "oci:/tmp/x:v1"]);
    assert!(err.contains("without a tag or ref"), "{err}");
    let missing = scratch_dir();
    let err = store.hoist_err([
        "sync",
        &format!("oci:{}", p(&missing.path().join("none"))),
        "docker://127.0.0.1:1/b",
    ]);
    assert!(err.contains("not an OCI image layout"), "{err}");

    // A ref name whose manifest is missing: the error names the tag.
    let broken = missing.path().join("broken");
    std::fs::create_dir_all(broken.join("blobs/sha256")).expect("mkdir");
    let gone = hoist_oci::Digest::sha256(b"no such manifest");
    std::fs::write(
        broken.join("index.json"),
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": gone.to_string(),
                "size": 16,
                "annotations": {"org.opencontainers.image.ref.name": "bad"},
            }],
        }))
        .expect("JSON"),
    )
    .expect("write index.json");
    let out = missing.path().join("out");
    let err = store.hoist_err([
        "sync",
        &format!("oci:{}", p(&broken)),
        &format!("oci:{}", p(&out)),
    ]);
    assert!(
        err.contains(&format!("oci:{}:bad (tag 1/1)", p(&broken))) && err.contains(gone.hex()),
        "{err}"
    );
    let err = store.hoist_err([
        "sync",
        "--tags",
        "(",
        "docker://127.0.0.1:1/a",
        "oci:/tmp/x",
    ]);
    assert!(err.contains("--tags"), "{err}");
}

/// `--dest-creds` and `--src-creds` against docker-registry with htpasswd:
/// refused without them; within one registry the layers are mounted, not sent.
#[test]
fn sync_with_credentials_and_mounts_within_one_registry() {
    let plain = Registry::start();
    let auth = Registry::start_with_htpasswd("alice", "alice-pw");
    let scratch = scratch_dir();
    let store = TempStore::with_bin(hoist_bin!());
    let (repo, _) = source_repo(&store, plain.addr(), scratch.path(), Pusher::Docker);
    let src_url = format!("docker://{repo}");
    let first = format!("docker://{}/alice/first", auth.addr());
    let second = format!("docker://{}/alice/second", auth.addr());

    let e = store.hoist_err(["sync", "-q", "--tags", "^v1$", &src_url, &first]);
    assert!(
        e.contains("401") || e.to_lowercase().contains("unauthorized"),
        "{e}"
    );
    let out = store.hoist_ok([
        "sync",
        "-q",
        "--all",
        "--dest-creds",
        "alice:alice-pw",
        &src_url,
        &first,
    ]);
    assert!(out.contains("4 copied, 0 already present"), "{out}");

    let json: Value = serde_json::from_str(&store.hoist_ok([
        "sync",
        "--format",
        "json",
        "--tags",
        "^v",
        "--src-creds",
        "alice:alice-pw",
        "--dest-creds",
        "alice:alice-pw",
        &first,
        &second,
    ]))
    .expect("sync --format json");
    assert_eq!(json["copied"], 2, "{json}");
    for t in json["tags"].as_array().expect("tags") {
        assert_eq!(t["bytesSent"], 0, "a layer was sent, not mounted: {t}");
        assert_ne!(t["layersPresent"], 0, "{t}");
        assert_eq!(
            remote_digest(
                &store,
                &format!("docker://{repo}:{}", t["tag"].as_str().expect("tag"))
            ),
            t["digest"].as_str().expect("digest"),
        );
    }
}
