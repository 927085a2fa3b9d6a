//! `hoist serve` and `hoist registry gc` against real peers: skopeo pushes
//! and pulls (single images, multi-arch indexes, tags, deletes), the CNCF
//! distribution registry (`docker-registry`) serves what hoist wrote and
//! hoist serves what it wrote, and a real dockerd pushes, pulls and runs.

use hoist_testkit::serve::HoistServe;
use hoist_testkit::{assert_success, hoist_bin, http_status, require_tool, scratch_dir, Registry};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A plain HTTP/1.1 request; returns (status, headers lower-cased, body).
fn http(addr: &str, method: &str, path: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&out[..split]).to_lowercase();
    let mut body = out[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        let mut dec = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap().trim(), 16)
                .unwrap();
            if n == 0 {
                break;
            }
            dec.extend_from_slice(&rest[nl + 2..nl + 2 + n]);
            rest = &rest[nl + 4 + n..];
        }
        body = dec;
    }
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head, body)
}

fn get_json(addr: &str, path: &str) -> serde_json::Value {
    let (st, _, body) = http(addr, "GET", path);
    assert_eq!(st, 200, "GET {path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

/// `skopeo copy --all` of `src` (a `docker://` reference on plain HTTP)
/// into a fresh OCI layout `out`; returns the digest of what it stored.
fn skopeo_pull_all(src: &str, out: &Path) -> String {
    skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        src,
        &format!("oci:{}:v1", out.display()),
    ]);
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    idx["manifests"][0]["digest"]
        .as_str()
        .expect("a digest in index.json")
        .to_owned()
}

fn sha256_hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    let d = hoist_oci::Digest::sha256(b);
    let mut s = String::new();
    write!(s, "{}", d.hex()).unwrap();
    s
}

fn skopeo(args: &[&str]) -> String {
    let bin = require_tool("skopeo");
    let out = Command::new(&bin)
        .args(["--insecure-policy"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_success(&format!("skopeo {}", args.join(" ")), &out)
}

/// A one-file uncompressed layer.
fn layer_tar(name: &str, content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, name, content).unwrap();
    b.into_inner().unwrap()
}

fn config_json(arch: &str, layer: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux",
        "config": { "Cmd": ["/hello"] },
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{}", sha256_hex(layer))] },
        "history": [{ "created_by": "hand made" }]
    }))
    .unwrap()
}

/// A `docker save`-style archive with one hand-made image.
fn docker_archive(path: &Path, repo_tag: &str, content: &[u8]) {
    let layer = layer_tar("hello.txt", content);
    let config = config_json("amd64", &layer);
    let lhex = sha256_hex(&layer);
    let chex = sha256_hex(&config);
    let manifest = serde_json::json!([{
        "Config": format!("{chex}.json"),
        "RepoTags": [repo_tag],
        "Layers": [format!("{lhex}/layer.tar")]
    }]);
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
    };
    add(&format!("{chex}.json"), &config);
    add(&format!("{lhex}/layer.tar"), &layer);
    add("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    b.finish().unwrap();
}

/// An OCI layout holding a two-platform index tagged `v1`. Returns the
/// index digest.
fn oci_multiarch_layout(dir: &Path) -> String {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| -> (String, usize) {
        let hex = sha256_hex(b);
        std::fs::write(blobs.join(&hex), b).unwrap();
        (format!("sha256:{hex}"), b.len())
    };
    let mut children = Vec::new();
    for arch in ["amd64", "arm64"] {
        let layer = layer_tar("arch.txt", arch.as_bytes());
        let config = config_json(arch, &layer);
        // gzip, so that no copier recompresses it and digests stay put.
        let mut gz = hoist_archive::compression::compress_writer(
            Vec::new(),
            hoist_archive::Compression::Gzip,
            None,
        )
        .unwrap();
        gz.write_all(&layer).unwrap();
        let layer = gz.finish().unwrap();
        let (ld, ls) = put(&layer);
        let (cd, cs) = put(&config);
        let m = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs },
            "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": ls }]
        }))
        .unwrap();
        let (md, ms) = put(&m);
        children.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md, "size": ms,
            "platform": { "os": "linux", "architecture": arch }
        }));
    }
    let idx = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": children
    }))
    .unwrap();
    let (id, is) = put(&idx);
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": id, "size": is,
                "annotations": { "org.opencontainers.image.ref.name": "v1" }
            }]
        }))
        .unwrap(),
    )
    .unwrap();
    id
}

/// The content of `name` in the single layer of the image in an OCI layout.
fn file_in_oci_layout(dir: &Path, name: &str) -> Vec<u8> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let blob = |d: &str| {
        std::fs::read(
            dir.join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let m: serde_json::Value =
        serde_json::from_slice(&blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    let layer = blob(m["layers"][0]["digest"].as_str().unwrap());
    // skopeo compresses layers on the way; hoist-archive sniffs which way.
    let (_, plain) = hoist_archive::compression::decompress_auto(&layer[..]).unwrap();
    let mut a = tar::Archive::new(plain);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_string_lossy().trim_start_matches("./") == name {
            let mut v = Vec::new();
            e.read_to_end(&mut v).unwrap();
            return v;
        }
    }
    panic!("{name} not in the layer")
}

#[test]
fn skopeo_pushes_and_pulls_images_and_indexes() {
    let scratch = scratch_dir();
    let root = scratch.path().join("root");
    let s = HoistServe::start(&root, &[]);
    let archive = scratch.path().join("img.tar");
    docker_archive(&archive, "hand/made:v1", b"hello from a hand-made layer\n");

    // Push a Docker image (Schema 2), then again as OCI under another tag.
    let dest = format!("docker://{}/hand/made:v1", s.addr);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("docker-archive:{}", archive.display()),
        &dest,
    ]);
    let dest_oci = format!("docker://{}/hand/made:oci", s.addr);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--format",
        "oci",
        &format!("docker-archive:{}", archive.display()),
        &dest_oci,
    ]);
    let inspect: serde_json::Value =
        serde_json::from_str(&skopeo(&["inspect", "--tls-verify=false", &dest])).unwrap();
    assert_eq!(inspect["Architecture"], "amd64");
    let tags: serde_json::Value = serde_json::from_str(&skopeo(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{}/hand/made", s.addr),
    ]))
    .unwrap();
    assert_eq!(tags["Tags"], serde_json::json!(["oci", "v1"]));
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &dest_oci]);
    assert!(
        raw.contains("application/vnd.oci.image.manifest.v1+json"),
        "{raw}"
    );

    // Pull both back and compare the file.
    for (tag, out) in [("v1", "pulled-docker"), ("oci", "pulled-oci")] {
        let out = scratch.path().join(out);
        skopeo(&[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{}/hand/made:{tag}", s.addr),
            &format!("oci:{}:x", out.display()),
        ]);
        assert_eq!(
            file_in_oci_layout(&out, "hello.txt"),
            b"hello from a hand-made layer\n"
        );
    }

    // A multi-platform index with --all, byte for byte.
    let layout = scratch.path().join("multi");
    let idx = oci_multiarch_layout(&layout);
    let dest = format!("docker://{}/multi/arch:v1", s.addr);
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.display()),
        &dest,
    ]);
    let (st, head, body) = http(&s.addr, "GET", "/v2/multi/arch/manifests/v1");
    assert_eq!(st, 200);
    assert!(head.contains("content-type: application/vnd.oci.image.index.v1+json"));
    assert_eq!(format!("sha256:{}", sha256_hex(&body)), idx);
    let back = scratch.path().join("multi-back");
    skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        &dest,
        &format!("oci:{}:v1", back.display()),
    ]);
    assert!(back
        .join("blobs/sha256")
        .join(idx.trim_start_matches("sha256:"))
        .is_file());
    // The arm64 child alone.
    let arm = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--override-arch",
        "arm64",
        &dest,
    ]);
    assert!(arm.contains("\"Architecture\": \"arm64\""), "{arm}");

    // Delete through skopeo (by digest, which drops the tag too).
    skopeo(&[
        "delete",
        "--tls-verify=false",
        &format!("docker://{}/hand/made:v1", s.addr),
    ]);
    assert_eq!(http(&s.addr, "GET", "/v2/hand/made/manifests/v1").0, 404);
    assert!(s.stop(), "hoist serve did not exit cleanly on SIGTERM");
}

#[test]
fn docker_registry_serves_what_hoist_wrote_and_back() {
    let scratch = scratch_dir();
    let archive = scratch.path().join("img.tar");
    docker_archive(&archive, "x/y:z", b"written by one, read by the other\n");
    let layout = scratch.path().join("multi");
    let idx = oci_multiarch_layout(&layout);

    // hoist writes; docker-registry reads.
    let root = scratch.path().join("hoist-root");
    let s = HoistServe::start(&root, &[]);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("docker-archive:{}", archive.display()),
        &format!("docker://{}/from/hoist:v1", s.addr),
    ]);
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.display()),
        &format!("docker://{}/from/hoist:multi", s.addr),
    ]);
    let hoist_tags = get_json(&s.addr, "/v2/from/hoist/tags/list");
    assert_eq!(hoist_tags["tags"], serde_json::json!(["multi", "v1"]));
    let hoist_manifest = http(&s.addr, "GET", "/v2/from/hoist/manifests/v1").2;
    assert!(s.stop());
    let reg = Registry::start_with_root(&root);
    assert_eq!(
        get_json(reg.addr(), "/v2/_catalog")["repositories"],
        serde_json::json!(["from/hoist"])
    );
    // docker-registry lists tags in directory order; compare as sets.
    assert_eq!(
        sorted_tags(get_json(reg.addr(), "/v2/from/hoist/tags/list")),
        hoist_tags
    );
    let (st, _, body) = http(reg.addr(), "GET", "/v2/from/hoist/manifests/v1");
    assert_eq!(st, 200);
    assert_eq!(body, hoist_manifest);
    let (_, _, body) = http(reg.addr(), "GET", "/v2/from/hoist/manifests/multi");
    assert_eq!(format!("sha256:{}", sha256_hex(&body)), idx);
    let out = scratch.path().join("via-registry");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/from/hoist:v1", reg.addr()),
        &format!("oci:{}:x", out.display()),
    ]);
    assert_eq!(
        file_in_oci_layout(&out, "hello.txt"),
        b"written by one, read by the other\n"
    );
    // docker-registry adds to the same directory.
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("docker-archive:{}", archive.display()),
        &format!("docker://{}/from/registry:r1", reg.addr()),
    ]);
    drop(reg);

    // ... and hoist serves what docker-registry wrote.
    let s = HoistServe::start(&root, &[]);
    assert_eq!(
        get_json(&s.addr, "/v2/_catalog")["repositories"],
        serde_json::json!(["from/hoist", "from/registry"])
    );
    let out = scratch.path().join("via-hoist");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/from/registry:r1", s.addr),
        &format!("oci:{}:x", out.display()),
    ]);
    assert_eq!(
        file_in_oci_layout(&out, "hello.txt"),
        b"written by one, read by the other\n"
    );
    drop(s);

    // A directory that only docker-registry ever wrote.
    let reg = Registry::start();
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("docker-archive:{}", archive.display()),
        &format!("docker://{}/only/registry:t", reg.addr()),
    ]);
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.display()),
        &format!("docker://{}/only/registry:multi", reg.addr()),
    ]);
    let reg_root = reg.root().to_path_buf();
    let reg_manifest = http(reg.addr(), "GET", "/v2/only/registry/manifests/t").2;
    let reg_tags = get_json(reg.addr(), "/v2/only/registry/tags/list");
    // Keep the directory: the Registry value owns its temp dir.
    let keep = scratch.path().join("registry-copy");
    copy_dir(&reg_root, &keep);
    drop(reg);
    let s = HoistServe::start(&keep, &[]);
    assert_eq!(
        get_json(&s.addr, "/v2/only/registry/tags/list"),
        sorted_tags(reg_tags)
    );
    let (st, head, body) = http(&s.addr, "GET", "/v2/only/registry/manifests/t");
    assert_eq!(st, 200);
    assert_eq!(body, reg_manifest);
    assert!(head.contains("content-type: application/vnd.docker.distribution.manifest.v2+json"));
    let (_, _, body) = http(&s.addr, "GET", "/v2/only/registry/manifests/multi");
    assert_eq!(format!("sha256:{}", sha256_hex(&body)), idx);
    let out = scratch.path().join("via-hoist-2");
    skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        &format!("docker://{}/only/registry:multi", s.addr),
        &format!("oci:{}:x", out.display()),
    ]);
    // hoist's collector on docker-registry's directory: nothing in use goes.
    drop(s);
    let gc = Command::new(hoist_bin())
        .args(["registry", "gc", "--grace", "0s", "--root"])
        .arg(&keep)
        .output()
        .unwrap();
    assert_success("hoist registry gc", &gc);
    let s = HoistServe::start(&keep, &[]);
    let out = scratch.path().join("after-gc");
    skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        &format!("docker://{}/only/registry:multi", s.addr),
        &format!("oci:{}:x", out.display()),
    ]);
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/only/registry:t", s.addr),
        &format!("oci:{}:y", out.display()),
    ]);
}

fn sorted_tags(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(t) = v["tags"].as_array_mut() {
        t.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    }
    v
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), t).unwrap();
        }
    }
}

#[test]
fn docker_registry_resumes_hoist_hash_states_format() {
    // docker-registry stores the SHA-256 state of an upload in progress
    // (Go's marshaled form); hoist reads it back exactly.
    let reg = Registry::start();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let mut s = TcpStream::connect(reg.addr()).unwrap();
    write!(
        s,
        "POST /v2/hs/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    let loc = head
        .lines()
        .find_map(|l| l.strip_prefix("Location: "))
        .unwrap()
        .trim()
        .to_owned();
    let path = loc
        .split_once(reg.addr())
        .map(|x| x.1.to_owned())
        .unwrap_or(loc.clone());
    let mut s = TcpStream::connect(reg.addr()).unwrap();
    write!(
        s,
        "PATCH {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        33_333
    )
    .unwrap();
    s.write_all(&data[..33_333]).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    assert!(
        String::from_utf8_lossy(&out).starts_with("HTTP/1.1 202"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let uploads = reg
        .root()
        .join("docker/registry/v2/repositories/hs/_uploads");
    let id = std::fs::read_dir(&uploads)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let state =
        std::fs::read(id.join("hashstates/sha256/33333")).expect("docker-registry hash state");
    let mut ours = hoist_archive::hashstate::Sha256State::new();
    ours.update(&data[..33_333]);
    assert_eq!(state, ours.marshal(), "hash state format differs from Go's");
    let mut theirs = hoist_archive::hashstate::Sha256State::unmarshal(&state).unwrap();
    theirs.update(&data[33_333..]);
    assert_eq!(theirs.digest(), hoist_oci::Digest::sha256(&data));
}

#[test]
fn serve_flags_and_gc_cli() {
    let scratch = scratch_dir();
    let root = scratch.path().join("root");
    let archive = scratch.path().join("img.tar");
    docker_archive(&archive, "g/c:v1", b"gc me maybe\n");
    let s = HoistServe::start(&root, &[]);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("docker-archive:{}", archive.display()),
        &format!("docker://{}/g/c:v1", s.addr),
    ]);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--format",
        "oci",
        &format!("docker-archive:{}", archive.display()),
        &format!("docker://{}/g/c:v2", s.addr),
    ]);
    // Untag v2: its manifest becomes untagged.
    assert_eq!(http(&s.addr, "DELETE", "/v2/g/c/manifests/v2").0, 202);
    // Past the collector's allowance for clock granularity (2 s).
    std::thread::sleep(Duration::from_secs(3));

    let gc = |args: &[&str]| {
        let out = Command::new(hoist_bin())
            .args(["registry", "gc", "--root"])
            .arg(&root)
            .args(args)
            .output()
            .unwrap();
        assert_success("hoist registry gc", &out)
    };
    // With the default grace period (1h) nothing just pushed goes.
    let out = gc(&["--delete-untagged"]);
    assert!(out.contains("deleted 0 manifests and 0 blobs"), "{out}");
    let out = gc(&["--delete-untagged", "--dry-run", "--grace", "0s"]);
    assert!(out.contains("would delete manifest g/c@sha256:"), "{out}");
    assert!(
        out.contains("would delete 1 manifests and 2 blobs"),
        "{out}"
    );
    let out = gc(&["--delete-untagged", "--grace", "0s"]);
    assert!(out.contains("deleted manifest g/c@sha256:"), "{out}");
    // The OCI manifest's bytes and its OCI config go; the layer is v1's too.
    assert!(out.contains("deleted 1 manifests and 2 blobs"), "{out}");
    let out = scratch.path().join("after");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/g/c:v1", s.addr),
        &format!("oci:{}:x", out.display()),
    ]);
    assert!(s.stop());

    // Read-only and no-delete.
    let s = HoistServe::start(&root, &["--read-only"]);
    assert_eq!(http(&s.addr, "POST", "/v2/g/c/blobs/uploads/").0, 405);
    assert_eq!(http(&s.addr, "GET", "/v2/g/c/manifests/v1").0, 200);
    drop(s);
    let s = HoistServe::start(&root, &["--no-delete"]);
    assert_eq!(http(&s.addr, "DELETE", "/v2/g/c/manifests/v1").0, 405);
    assert_eq!(http(&s.addr, "POST", "/v2/g/c/blobs/uploads/").0, 202);
    let log = s.log_path().to_owned();
    assert!(s.stop());
    let log = std::fs::read_to_string(log).unwrap();
    assert!(log.contains("listening on http://127.0.0.1:"), "{log}");
    // HOIST_LOG=info: one access line per request.
    assert!(log.contains("hoist_registry::access"), "{log}");
    let _ = Path::new(&root);
}

#[test]
fn dockerd_pushes_pulls_and_runs() {
    let docker = hoist_testkit::docker();
    let scratch = scratch_dir();
    let root = scratch.path().join("root");
    let s = HoistServe::start(&root, &[]);
    // 127.0.0.0/8 is an insecure registry for dockerd by default.
    let name = format!("{}/{}:v1", s.addr, hoist_testkit::unique_name("app"));
    docker.push_pull_and_run(&name, "hoist serve");
}

/// `hoist serve --proxy` in front of a real `docker-registry`: dockerd
/// pulls through it and runs the image, pulls again from the cache once the
/// upstream is gone, pushes a new image to it and pulls that back; a tag
/// never cached is a clear 502 naming the upstream.
#[test]
fn dockerd_pulls_through_the_proxy_and_from_its_cache_when_upstream_is_down() {
    let docker = hoist_testkit::docker();
    let upstream = Registry::start();
    let repo = hoist_testkit::unique_name("mirrored");
    let seeded = format!("{}/{repo}:v1", upstream.addr());
    docker.tag(hoist_testkit::APP_IMAGE, &seeded);
    docker.run_ok(["push", &seeded]);
    docker.rmi(&seeded);
    let id = docker.image_id(hoist_testkit::APP_IMAGE);

    let scratch = scratch_dir();
    let root = scratch.path().join("root");
    let up_url = upstream.url();
    let s = HoistServe::start(&root, &["--proxy", &up_url]);
    let through = format!("{}/{repo}:v1", s.addr);
    docker.run_ok(["pull", &through]);
    assert_eq!(
        docker.image_id(&through),
        id,
        "image ID changed through the proxy"
    );
    docker.assert_runs_app(&through);
    docker.rmi(&through);

    drop(upstream);
    docker.run_ok(["pull", &through]);
    assert_eq!(docker.image_id(&through), id);
    docker.assert_runs_app(&through);
    docker.rmi(&through);
    let log = std::fs::read_to_string(s.log_path()).unwrap();
    assert!(log.contains("serving the cached tag"), "{log}");

    let (st, _, body) = http(&s.addr, "GET", "/v2/never/cached/manifests/v1");
    let body = String::from_utf8_lossy(&body);
    assert_eq!(st, 502, "{body}");
    assert!(
        body.contains("UNAVAILABLE") && body.contains(&up_url),
        "{body}"
    );

    // Pushes still work (the upstream is down, too) and come back intact.
    let pushed = format!("{}/{}:v1", s.addr, hoist_testkit::unique_name("local"));
    docker.push_pull_and_run(&pushed, "a proxy whose upstream is down");
}

/// skopeo copies a multi-arch index through a `PREFIX=URL` proxy (children
/// fetched by digest), then again from the cache with the upstream gone.
#[test]
fn skopeo_copies_an_index_through_a_prefixed_proxy() {
    let scratch = scratch_dir();
    let layout = scratch.path().join("layout");
    let index_digest = oci_multiarch_layout(&layout);
    let reg = Registry::start();
    let up_addr = reg.addr().to_owned();
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.display()),
        &format!("docker://{up_addr}/multi/arch:v1"),
    ]);
    let root = scratch.path().join("root");
    let s = HoistServe::start(&root, &["--proxy", &format!("mirror.test={}", reg.url())]);
    let mut upstream = Some(reg);
    let src = format!("docker://{}/mirror.test/multi/arch:v1", s.addr);
    for round in ["through", "cached"] {
        let out = scratch.path().join(format!("out-{round}"));
        assert_eq!(
            skopeo_pull_all(&src, &out),
            index_digest,
            "{round}: the index changed on the way"
        );
        // The second round has no upstream.
        drop(upstream.take());
        assert_eq!(http_status(&up_addr, "/v2/"), None);
    }
}

/// The proxy logs in to an upstream that wants basic auth (a real
/// `docker-registry` with htpasswd) with the credentials of its URL, keeps
/// them out of its log, and names the upstream when they are wrong.
#[test]
fn the_proxy_logs_in_to_a_basic_auth_upstream() {
    let scratch = scratch_dir();
    let layout = scratch.path().join("layout");
    let index_digest = oci_multiarch_layout(&layout);
    let password = "s3cr:t@pw";
    let reg = Registry::start_with_htpasswd("alice", password);
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        "--dest-creds",
        &format!("alice:{password}"),
        &format!("oci:{}:v1", layout.display()),
        &format!("docker://{}/private/img:v1", reg.addr()),
    ]);
    let root = scratch.path().join("root");
    // user:password@ in the URL, percent-encoded where needed.
    let with_creds = format!("http://alice:s3cr%3At%40pw@{}", reg.addr());
    let s = HoistServe::start(&root, &["--proxy", &with_creds]);
    let out = scratch.path().join("out");
    let src = format!("docker://{}/private/img:v1", s.addr);
    assert_eq!(skopeo_pull_all(&src, &out), index_digest);
    let log = std::fs::read_to_string(s.log_path()).unwrap();
    assert!(
        !log.contains("s3cr"),
        "the password leaked into the log:\n{log}"
    );
    drop(s);

    let wrong = format!("http://alice:wrong@{}", reg.addr());
    let s = HoistServe::start(&scratch.path().join("root2"), &["--proxy", &wrong]);
    let (st, _, body) = http(&s.addr, "GET", "/v2/private/img/manifests/v1");
    let body = String::from_utf8_lossy(&body);
    assert_eq!(st, 502, "{body}");
    assert!(
        body.contains("UNAUTHORIZED") && body.contains(&reg.url()),
        "{body}"
    );
    assert!(!body.contains("wrong"), "{body}");
}

/// `openssl ARGS…` with `input` on stdin; its stdout.
fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
    let bin = require_tool("openssl");
    let mut child = Command::new(&bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_success(&format!("openssl {}", args.join(" ")), &out);
    out.stdout
}

fn base64(b: &[u8]) -> String {
    let out = openssl(&["base64", "-A"], b);
    String::from_utf8(out).unwrap().trim().to_owned()
}

fn base64url(b: &[u8]) -> String {
    base64(b)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

fn query_decode(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// A token issuer for `docker-registry`'s token auth (it ships none): signs
/// RS256 JWTs with a throw-away certificate (in the `x5c` header, and the
/// registry's `rootcertbundle`) granting what each `scope` asks, to callers
/// presenting `user:password` with basic auth. Counts the tokens it issued.
struct TokenIssuer {
    addr: String,
    cert: PathBuf,
    issued: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl TokenIssuer {
    fn start(dir: &Path, user: &str, password: &str) -> TokenIssuer {
        let key = dir.join("issuer.key");
        let cert = dir.join("issuer.pem");
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=hoist-test-issuer",
                "-keyout",
                key.to_str().unwrap(),
                "-out",
                cert.to_str().unwrap(),
            ],
            b"",
        );
        let der = openssl(
            &["x509", "-in", cert.to_str().unwrap(), "-outform", "DER"],
            b"",
        );
        let x5c = base64(&der);
        let expected = format!("Basic {}", base64(format!("{user}:{password}").as_bytes()));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let issued = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = issued.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut c) = conn else { continue };
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&req).into_owned();
                let authorized = head.lines().any(|l| {
                    l.split_once(':').is_some_and(|(k, v)| {
                        k.eq_ignore_ascii_case("authorization") && v.trim() == expected
                    })
                });
                let target = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
                let mut access = Vec::new();
                for kv in query.split('&') {
                    if let Some(scope) = kv.strip_prefix("scope=") {
                        let scope = query_decode(scope);
                        let parts: Vec<&str> = scope.split(':').collect();
                        if let [kind, name, actions] = parts[..] {
                            access.push(serde_json::json!({
                                "type": kind, "name": name,
                                "actions": actions.split(',').collect::<Vec<_>>()
                            }));
                        }
                    }
                }
                let resp = if authorized {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs();
                    let header = serde_json::json!({ "alg": "RS256", "typ": "JWT", "x5c": [x5c] });
                    let claims = serde_json::json!({
                        "iss": "hoist-test-issuer", "sub": "alice", "aud": "hoist-test",
                        "exp": now + 300, "nbf": now - 10, "iat": now,
                        "jti": format!("{now}-{}", count.load(std::sync::atomic::Ordering::SeqCst)),
                        "access": access,
                    });
                    let signing = format!(
                        "{}.{}",
                        base64url(header.to_string().as_bytes()),
                        base64url(claims.to_string().as_bytes())
                    );
                    let sig = openssl(
                        &["dgst", "-sha256", "-sign", key.to_str().unwrap()],
                        signing.as_bytes(),
                    );
                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let body = serde_json::json!({
                        "token": format!("{signing}.{}", base64url(&sig)),
                        "expires_in": 300
                    })
                    .to_string();
                    format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                } else {
                    "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_owned()
                };
                let _ = c.write_all(resp.as_bytes());
            }
        });
        TokenIssuer { addr, cert, issued }
    }

    /// The `auth:` section that makes a `docker-registry` trust this issuer.
    fn registry_auth(&self) -> String {
        format!(
            "  token:\n    realm: http://{}/token\n    service: hoist-test\n    issuer: hoist-test-issuer\n    rootcertbundle: {}\n",
            self.addr,
            self.cert.display()
        )
    }

    fn issued(&self) -> usize {
        self.issued.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The bearer-token flow against a real `docker-registry` with token auth:
/// its challenge (realm, service, scope) is answered with a token fetched
/// with the proxy's credentials, and the pull goes through.
#[test]
fn the_proxy_follows_a_bearer_token_challenge() {
    let scratch = scratch_dir();
    let issuer = TokenIssuer::start(scratch.path(), "alice", "tokenpw");
    let reg = Registry::start_with_auth_config(&issuer.registry_auth());
    let layout = scratch.path().join("layout");
    let index_digest = oci_multiarch_layout(&layout);
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:tokenpw",
        &format!("oci:{}:v1", layout.display()),
        &format!("docker://{}/tok/img:v1", reg.addr()),
    ]);
    let before = issuer.issued();
    let root = scratch.path().join("root");
    let s = HoistServe::start(
        &root,
        &["--proxy", &format!("http://alice:tokenpw@{}", reg.addr())],
    );
    let out = scratch.path().join("out");
    let src = format!("docker://{}/tok/img:v1", s.addr);
    assert_eq!(skopeo_pull_all(&src, &out), index_digest);
    // One token for the repository's pull scope, reused for every request.
    assert_eq!(issuer.issued() - before, 1, "tokens were not cached");
    let log = std::fs::read_to_string(s.log_path()).unwrap();
    assert!(!log.contains("tokenpw"), "{log}");
}

/// Bad `--proxy` values stop `hoist serve` before it listens, with a message
/// naming the flag and the fix, and without echoing a password.
#[test]
fn serve_refuses_bad_proxy_flags() {
    let scratch = scratch_dir();
    let root = scratch.path().join("root");
    let cases: [(&[&str], &str); 4] = [
        (&["--proxy", "ftp://me:hunter2@host"], "http or https"),
        (&["--proxy", "Bad_Prefix=http://host"], "bad prefix"),
        (&["--proxy", "http://host/some/path"], "no path"),
        (
            &["--proxy", "a=http://x", "--proxy", "a=http://y"],
            "two upstreams for prefix a",
        ),
    ];
    for (args, want) in cases {
        let out = Command::new(hoist_bin())
            .args(["serve", "--addr", "127.0.0.1:0", "--root"])
            .arg(&root)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = hoist_testkit::assert_failure(&format!("hoist serve {args:?}"), &out);
        assert!(
            err.contains("--proxy") && err.contains(want),
            "{args:?}: {err}"
        );
        assert!(!err.contains("hunter2"), "the password was echoed: {err}");
    }
}

/// Six clients at once ask the proxy for the same big blob it lacks: each
/// gets it intact, and the upstream (another `hoist serve`) is asked once.
#[test]
fn concurrent_pulls_of_one_blob_make_one_upstream_fetch() {
    let scratch = scratch_dir();
    let up = HoistServe::start(&scratch.path().join("up"), &[]);
    let archive = scratch.path().join("big.tar");
    let mut content = vec![0u8; 24 << 20];
    rand::fill(&mut content[..]);
    docker_archive(&archive, "big/img:v1", &content);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("docker-archive:{}", archive.display()),
        &format!("docker://{}/big/img:v1", up.addr),
    ]);
    let px = HoistServe::start(
        &scratch.path().join("px"),
        &["--proxy", &format!("http://{}", up.addr)],
    );
    let m = get_json(&px.addr, "/v2/big/img/manifests/v1");
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_owned();
    let path = format!("/v2/big/img/blobs/{layer}");
    let clients: Vec<_> = (0..6)
        .map(|_| {
            let (addr, path) = (px.addr.clone(), path.clone());
            std::thread::spawn(move || http(&addr, "GET", &path))
        })
        .collect();
    for c in clients {
        let (st, _, body) = c.join().unwrap();
        assert_eq!(st, 200);
        assert_eq!(
            format!("sha256:{}", sha256_hex(&body)),
            layer,
            "corrupt blob"
        );
    }
    let log = std::fs::read_to_string(up.log_path()).unwrap();
    let fetches = log
        .lines()
        .filter(|l| l.contains("method=GET") && l.contains(&path))
        .count();
    assert_eq!(fetches, 1, "the upstream was asked {fetches} times:\n{log}");
}

/// The config.yml that docker-registry runs with runs `hoist serve`
/// unchanged: same storage, same address, distribution's defaults (no
/// deletes unless enabled), the keys hoist has no use for named, the access
/// log off as the file asks; and a broken file is refused, named.
#[test]
fn serve_runs_the_config_file_docker_registry_runs() {
    let scratch = scratch_dir();
    let root = scratch.path().join("root");
    let archive = scratch.path().join("img.tar");
    docker_archive(&archive, "c/f:v1", b"configured\n");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let config = scratch.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\n  fields:\n    \
             service: registry\nstorage:\n  cache:\n    blobdescriptor: inmemory\n  filesystem:\n    \
             rootdirectory: {}\nhttp:\n  addr: {addr}\n  headers:\n    X-Content-Type-Options: \
             [nosniff]\nhealth:\n  storagedriver:\n    enabled: true\n    interval: 10s\n    \
             threshold: 3\n",
            root.display()
        ),
    )
    .unwrap();

    let wait_up = |child: &mut Child, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while http_status(&addr, "/v2/") != Some(200) {
            assert!(
                Instant::now() < deadline && matches!(child.try_wait(), Ok(None)),
                "{what} did not come up on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let mut registry = Command::new(require_tool("docker-registry"))
        .arg("serve")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_up(&mut registry, "docker-registry");
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("docker-archive:{}", archive.display()),
        &format!("docker://{addr}/c/f:v1"),
    ]);
    let _ = registry.kill();
    let _ = registry.wait();

    let log = scratch.path().join("serve.log");
    let logf = std::fs::File::create(&log).unwrap();
    let child = Command::new(hoist_bin())
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env_remove("HOIST_LOG")
        .stdin(Stdio::null())
        .stdout(logf.try_clone().unwrap())
        .stderr(logf)
        .spawn()
        .unwrap();
    let s = HoistServe::adopt(child, &addr, &log);
    assert_eq!(http(&addr, "GET", "/v2/c/f/manifests/v1").0, 200);
    assert_eq!(http(&addr, "DELETE", "/v2/c/f/manifests/v1").0, 405);
    assert!(s.stop());
    let text = std::fs::read_to_string(&log).unwrap();
    for key in ["health", "log.fields", "storage.cache", "http.headers"] {
        assert!(text.contains(&format!("ignoring {key} ")), "{key}: {text}");
    }
    assert!(!text.contains("hoist_registry::access"), "{text}");

    std::fs::write(&config, "storage:\n  filesystem: [oops\n").unwrap();
    let out = Command::new(hoist_bin())
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.yml is not valid"), "{err}");
}
