//! `hoist serve --storage s3` against real peers: a real S3 server (`s3s-fs`)
//! holds the data, a real dockerd pushes, pulls and runs, skopeo copies to
//! and from it and deletes, `hoist registry gc` sweeps the bucket; and the
//! command line names what is missing.

use hoist_testkit::serve::HoistServe;
use hoist_testkit::{
    assert_failure, assert_success, hoist_bin, require_tool, scratch_dir, S3Server,
};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const BUCKET: &str = "images";

/// `hoist serve --storage s3` on the bucket, the registry under `prefix`.
fn serve_s3(s3: &S3Server, log: &Path, prefix: &str) -> HoistServe {
    HoistServe::start_with(log, |cmd, _| {
        cmd.args(["--storage", "s3", "--s3-bucket", BUCKET])
            .args(["--s3-endpoint", &s3.endpoint(), "--s3-region", "us-east-1"])
            .args(["--s3-prefix", prefix])
            .envs(s3.env());
    })
}

/// Keys of blob `data` objects the bucket holds under the `reg` prefix.
fn blob_keys(s3: &S3Server) -> Vec<String> {
    let dir = s3
        .bucket_dir(BUCKET)
        .join("reg/docker/registry/v2/blobs/sha256");
    let mut out = Vec::new();
    for prefix in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        for blob in std::fs::read_dir(prefix.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if blob.path().join("data").is_file() {
                out.push(blob.file_name().to_string_lossy().into_owned());
            }
        }
    }
    out
}

#[test]
fn dockerd_pushes_pulls_and_runs_through_s3_storage() {
    let docker = hoist_testkit::docker();
    let scratch = scratch_dir();
    let s3 = S3Server::start(&[BUCKET]);
    let s = serve_s3(&s3, &scratch.path().join("serve.log"), "reg");
    // 127.0.0.0/8 is an insecure registry for dockerd by default.
    let name = format!("{}/{}:v1", s.addr, hoist_testkit::unique_name("s3app"));
    docker.push_pull_and_run(&name, "S3 storage");
    // Config, layers and manifest are objects in the bucket, in
    // distribution's layout.
    assert!(blob_keys(&s3).len() >= 3, "{:?}", blob_keys(&s3));
}

fn skopeo(args: &[&str]) -> String {
    let out = Command::new(require_tool("skopeo"))
        .arg("--insecure-policy")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_success(&format!("skopeo {}", args.join(" ")), &out)
}

/// Writes an OCI layout at `src` holding one image tagged `v1` (one
/// uncompressed layer with one file); returns the layer's bytes.
fn oci_layout(src: &Path) -> Vec<u8> {
    let layer = {
        let mut b = tar::Builder::new(Vec::new());
        let content = b"hello through s3\n";
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "hello.txt", &content[..]).unwrap();
        b.into_inner().unwrap()
    };
    let layer_digest = hoist_oci::Digest::sha256(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": [layer_digest.to_string()] }
    }))
    .unwrap();
    let config_digest = hoist_oci::Digest::sha256(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest.to_string(), "size": config.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar",
                     "digest": layer_digest.to_string(), "size": layer.len() }]
    }))
    .unwrap();
    let manifest_digest = hoist_oci::Digest::sha256(&manifest);
    let blobs = src.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    for (d, b) in [
        (&layer_digest, &layer),
        (&config_digest, &config),
        (&manifest_digest, &manifest),
    ] {
        std::fs::write(blobs.join(d.hex()), b).unwrap();
    }
    std::fs::write(src.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        src.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{ "mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "digest": manifest_digest.to_string(), "size": manifest.len(),
                            "annotations": { "org.opencontainers.image.ref.name": "v1" } }]
        }))
        .unwrap(),
    )
    .unwrap();

    layer
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn skopeo_copies_to_and_from_s3_storage() {
    let scratch = scratch_dir();
    let s3 = S3Server::start(&[BUCKET]);
    let s = serve_s3(&s3, &scratch.path().join("serve.log"), "reg");

    let src = scratch.path().join("src");
    let layer = oci_layout(&src);
    let remote = format!("docker://{}/skopeo/s3:v1", s.addr);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", src.display()),
        &remote,
    ]);
    // skopeo may compress the layer on the way: read what the registry got.
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &remote]);
    let pushed: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let pushed_layer: hoist_oci::Digest = pushed["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let keys = blob_keys(&s3);
    for d in [&pushed_layer, &hoist_oci::Digest::sha256(raw.as_bytes())] {
        assert!(keys.contains(&d.hex().to_owned()), "{d} not in {keys:?}");
    }
    let stored = std::fs::read(s3.bucket_dir(BUCKET).join(format!(
        "reg/docker/registry/v2/blobs/sha256/{}/{}/data",
        &pushed_layer.hex()[..2],
        pushed_layer.hex()
    )))
    .unwrap();

    let back = scratch.path().join("back");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &remote,
        &format!("oci:{}:v1", back.display()),
    ]);
    let got = std::fs::read(back.join("blobs/sha256").join(pushed_layer.hex())).unwrap();
    assert!(got == stored, "the layer came back byte for byte");
    let mut tar_bytes = Vec::new();
    if got.starts_with(&[0x1f, 0x8b]) {
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&got[..]), &mut tar_bytes)
            .unwrap();
    } else {
        tar_bytes = got;
    }
    assert_eq!(tar_bytes.len(), layer.len());
    assert!(tar_bytes == layer, "the layer's tar is the one pushed");

    // Delete the image, then `hoist registry gc` on the bucket sweeps its
    // blobs (once they are older than the collector's clock slop).
    skopeo(&["delete", "--tls-verify=false", &remote]);
    std::thread::sleep(Duration::from_millis(3500));
    let out = Command::new(hoist_bin())
        .args(["registry", "gc", "--grace", "0s", "--storage", "s3"])
        .args(["--s3-bucket", BUCKET, "--s3-endpoint", &s3.endpoint()])
        .args(["--s3-prefix", "reg"])
        .envs(s3.env())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let report = assert_success("hoist registry gc --storage s3", &out);
    assert!(
        report.contains(&format!("deleted blob {pushed_layer}")),
        "{report}"
    );
    assert!(blob_keys(&s3).is_empty(), "{:?}", blob_keys(&s3));
}

/// The bucket is distribution's: `docker-registry` with its `s3` driver
/// serves what hoist wrote there, and hoist serves a tree docker-registry
/// wrote (on its filesystem driver, whose paths its s3 driver shares: s3s-fs
/// lacks the multipart listing that docker-registry's s3 uploads need).
#[test]
fn docker_registry_serves_the_bucket_hoist_wrote_and_back() {
    let scratch = scratch_dir();
    let s3 = S3Server::start(&[BUCKET]);
    let src = scratch.path().join("src");
    let layer = oci_layout(&src);

    let h = serve_s3(&s3, &scratch.path().join("serve.log"), "reg");
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/x/y:v1", h.addr),
    ]);
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/x/y:v1", h.addr),
    ]);
    let reg = s3.docker_registry(BUCKET, "reg");
    let from_reg = format!("docker://{}/x/y:v1", reg.addr());
    assert_eq!(
        skopeo(&["inspect", "--raw", "--tls-verify=false", &from_reg]),
        raw
    );
    let tags: serde_json::Value = serde_json::from_str(&skopeo(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{}/x/y", reg.addr()),
    ]))
    .unwrap();
    assert_eq!(tags["Tags"], serde_json::json!(["v1"]));
    let back = scratch.path().join("back");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &from_reg,
        &format!("oci:{}:v1", back.display()),
    ]);
    assert!(back.join("index.json").is_file());

    // The other way: a tree docker-registry wrote, in the bucket.
    let fsreg = hoist_testkit::Registry::start();
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/p/q:v2", fsreg.addr()),
    ]);
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/p/q:v2", fsreg.addr()),
    ]);
    copy_dir(
        &fsreg.root().join("docker"),
        &s3.bucket_dir(BUCKET).join("fromreg/docker"),
    );
    let h2 = serve_s3(&s3, &scratch.path().join("serve2.log"), "fromreg");
    let from_hoist = format!("docker://{}/p/q:v2", h2.addr);
    assert_eq!(
        skopeo(&["inspect", "--raw", "--tls-verify=false", &from_hoist]),
        raw
    );
    let back2 = scratch.path().join("back2");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &from_hoist,
        &format!("oci:{}:v2", back2.display()),
    ]);
    let pushed: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let layer_digest: hoist_oci::Digest = pushed["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let got = std::fs::read(back2.join("blobs/sha256").join(layer_digest.hex())).unwrap();
    assert_eq!(hoist_oci::Digest::sha256(&got), layer_digest);
    assert!(!layer.is_empty());
}

#[test]
fn serve_s3_flags_name_what_is_missing() {
    let s3 = S3Server::start(&[BUCKET]);
    let run = |args: &[&str], creds: bool| {
        let mut c = Command::new(hoist_bin());
        c.arg("serve").args(["--addr", "127.0.0.1:0"]).args(args);
        c.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .stdin(Stdio::null());
        if creds {
            c.envs(s3.env());
        }
        c.output().unwrap()
    };
    let e = assert_failure("no bucket", &run(&["--storage", "s3"], true));
    assert!(e.contains("--s3-bucket"), "{e}");
    let e = assert_failure(
        "no credentials",
        &run(&["--storage", "s3", "--s3-bucket", BUCKET], false),
    );
    assert!(
        e.contains("AWS_ACCESS_KEY_ID") && e.contains("AWS_SECRET_ACCESS_KEY"),
        "{e}"
    );
    let e = assert_failure(
        "s3 flag on the filesystem",
        &run(&["--root", "/tmp/x", "--s3-bucket", BUCKET], true),
    );
    assert!(e.contains("--storage s3"), "{e}");
    let endpoint = s3.endpoint();
    let e = assert_failure(
        "missing bucket",
        &run(
            &[
                "--storage",
                "s3",
                "--s3-bucket",
                "absent",
                "--s3-endpoint",
                &endpoint,
            ],
            true,
        ),
    );
    assert!(
        e.contains("s3://absent/") && e.contains("does not answer"),
        "{e}"
    );
}
