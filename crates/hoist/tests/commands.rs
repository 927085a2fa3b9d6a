//! The image commands end to end, through the built binary on a throw-away
//! store: import, history, images filters, rmi, image prune, system df and
//! fsck. Test archives are built here in Rust; no peer tool is needed.

use hoist_archive::{compress_writer, Compression};
use hoist_oci::{Digest, Platform};
use hoist_testkit::TempStore;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

// ------------------------------------------------------------------ helpers

fn store() -> TempStore {
    TempStore::with_bin(env!("CARGO_BIN_EXE_hoist"))
}

fn sha256(b: &[u8]) -> String {
    Digest::sha256(b).to_string()
}

/// A deterministic layer tar holding `files` (path, content).
fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).expect("tar path");
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, *data).expect("tar append");
    }
    b.into_inner().expect("tar finish")
}

/// `n` bytes that compress poorly, so that sizes differ clearly between layers.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn compress(data: &[u8], c: Compression) -> Vec<u8> {
    let mut w = compress_writer(Vec::new(), c, None).expect("compressor");
    w.write_all(data).expect("compress");
    w.finish().expect("compress finish")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write scratch file");
    p
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// One image for [`docker_archive`]: plain layer tars, history `(created_by, empty_layer)`, tags.
struct Img<'a> {
    layers: Vec<Vec<u8>>,
    history: Vec<(&'a str, bool)>,
    tags: Vec<&'a str>,
}

/// A classic `docker save` archive (manifest.json, `<id>.json`, `<diffid>/layer.tar`).
fn docker_archive(images: &[Img]) -> Vec<u8> {
    let host = Platform::host();
    let mut b = tar::Builder::new(Vec::new());
    let add = |b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).expect("tar path");
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        b.append(&h, data).expect("tar append");
    };
    let mut manifest = Vec::new();
    let mut written = std::collections::BTreeSet::new();
    for img in images {
        let diff_ids: Vec<String> = img.layers.iter().map(|l| sha256(l)).collect();
        let history: Vec<Value> = img
            .history
            .iter()
            .map(|(by, empty)| {
                let mut h =
                    serde_json::json!({"created": "2024-01-02T03:04:05Z", "created_by": by});
                if *empty {
                    h["empty_layer"] = Value::Bool(true);
                }
                h
            })
            .collect();
        let config = serde_json::json!({
            "architecture": host.architecture,
            "os": host.os,
            "created": "2024-01-02T03:04:05Z",
            "config": {"Cmd": ["sh"], "Labels": {"tags": img.tags.join(",")}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        });
        let config = serde_json::to_vec(&config).expect("config json");
        let config_name = format!("{}.json", &sha256(&config)[7..]);
        add(&mut b, &config_name, &config);
        let mut layer_names = Vec::new();
        for (l, d) in img.layers.iter().zip(&diff_ids) {
            let name = format!("{}/layer.tar", &d[7..]);
            if written.insert(name.clone()) {
                add(&mut b, &name, l);
            }
            layer_names.push(name);
        }
        manifest.push(serde_json::json!({
            "Config": config_name,
            "RepoTags": img.tags,
            "Layers": layer_names,
        }));
    }
    add(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).expect("manifest json"),
    );
    b.into_inner().expect("tar finish")
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// JSON lines (one object per line, as `--format json` prints lists).
fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(json)
        .collect()
}

fn inspect(st: &TempStore, name: &str) -> Value {
    let v = json(&st.hoist_ok(["inspect", name]));
    v[0].clone()
}

/// Every file under `blobs/` and `ingest/` with its size, to compare a store before and after.
fn files(st: &TempStore) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for dir in ["blobs/sha256", "blobs/sha512", "ingest"] {
        let Ok(rd) = std::fs::read_dir(st.path().join(dir)) else {
            continue;
        };
        for e in rd.flatten() {
            let len = e.metadata().map(|m| m.len()).unwrap_or(0);
            out.insert(format!("{dir}/{}", e.file_name().to_string_lossy()), len);
        }
    }
    out
}

fn blob_size(st: &TempStore, digest: &str) -> u64 {
    std::fs::metadata(blob_file(st, digest))
        .expect("blob exists")
        .len()
}

fn blob_file(st: &TempStore, digest: &str) -> PathBuf {
    st.path()
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").expect("sha256 digest"))
}

/// The digests an image's blobs have: config, manifest, layers.
fn image_blobs(st: &TempStore, name: &str) -> (String, String, Vec<String>) {
    let v = inspect(st, name);
    let layers = v["Layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["Digest"].as_str().expect("digest").to_owned())
        .collect();
    (
        v["Id"].as_str().expect("id").to_owned(),
        v["Manifest"]["Digest"]
            .as_str()
            .expect("manifest")
            .to_owned(),
        layers,
    )
}

fn import_id(out: &str) -> String {
    let id = out.trim().to_owned();
    assert!(
        id.starts_with("sha256:") && id.len() == 71,
        "import prints sha256:<id>, got {out:?}"
    );
    id
}

// ------------------------------------------------------------------ import

#[test]
fn import_stores_the_tarball_as_given_with_the_right_media_type_and_diff_id() {
    let st = store();
    let scratch = tempfile::tempdir().expect("scratch");
    let tar = layer_tar(&[
        ("bin/hello", b"#!/bin/sh\necho hi\n"),
        ("etc/motd", &noise(1, 4000)),
    ]);
    for (c, name, mt) in [
        (
            Compression::None,
            "root.tar",
            "application/vnd.oci.image.layer.v1.tar",
        ),
        (
            Compression::Gzip,
            "root.tar.gz",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ),
        (
            Compression::Zstd,
            "root.tar.zst",
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
    ] {
        let bytes = compress(&tar, c);
        let path = write(scratch.path(), name, &bytes);
        let reference = format!("imp/{}:v1", name.replace('.', "-"));
        let id = import_id(&st.hoist_ok(["import", s(&path), &reference]));
        let v = inspect(&st, &reference);
        assert_eq!(v["Id"], id.as_str());
        let layer = &v["Layers"][0];
        assert_eq!(layer["MediaType"], mt, "{name}");
        assert_eq!(
            layer["Digest"],
            sha256(&bytes).as_str(),
            "{name}: stored as given"
        );
        assert_eq!(
            layer["DiffID"],
            sha256(&tar).as_str(),
            "{name}: diffID of the plain tar"
        );
        assert_eq!(layer["UncompressedSize"], tar.len() as u64);
        assert_eq!(v["RootFS"]["Layers"][0], sha256(&tar).as_str());
        assert_eq!(
            std::fs::read(blob_file(&st, &sha256(&bytes))).expect("layer blob"),
            bytes,
            "{name}: the blob is the input byte for byte"
        );
        let host = Platform::host();
        assert_eq!(v["Os"], host.os.as_str());
        assert_eq!(v["Architecture"], host.architecture.as_str());
        assert_eq!(v["Comment"], format!("Imported from {}", s(&path)).as_str());
        assert_eq!(
            v["Manifest"]["MediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        // The config is the blob named by the ID, and its history is Docker-like.
        let config: Value =
            serde_json::from_slice(&std::fs::read(blob_file(&st, &id)).expect("config blob"))
                .expect("config JSON");
        assert_eq!(config["history"][0]["created_by"], "hoist import");
        assert_eq!(config["history"][0]["created"], config["created"]);
    }
    assert!(
        files(&st).keys().all(|f| !f.starts_with("ingest/")),
        "nothing left in ingest/"
    );
    let fsck = st.hoist(["fsck"]);
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
}

#[test]
fn import_from_stdin_applies_changes_message_and_platform() {
    let st = store();
    let tar = compress(&layer_tar(&[("a", b"a")]), Compression::Gzip);
    let mut child = st
        .command()
        .args([
            "import",
            "-",
            "stdin/img",
            "--change",
            r#"CMD ["/bin/app", "--flag"]"#,
            "-c",
            "ENTRYPOINT /entry.sh run",
            "-c",
            r#"ENV A=1 B="two words""#,
            "-c",
            "EXPOSE 80 53/udp",
            "-c",
            r#"LABEL org.example.k="v v""#,
            "-c",
            "WORKDIR /srv",
            "-c",
            "USER 1000",
            "-c",
            "VOLUME /data",
            "-c",
            "STOPSIGNAL SIGINT",
            "-m",
            "my message",
            "--platform",
            "linux/arm64/v8",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hoist import");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&tar)
        .expect("feed stdin");
    let out = child.wait_with_output().expect("hoist import");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    import_id(&String::from_utf8_lossy(&out.stdout));
    let v = inspect(&st, "stdin/img:latest");
    let c = &v["Config"];
    assert_eq!(c["Cmd"], serde_json::json!(["/bin/app", "--flag"]));
    assert_eq!(
        c["Entrypoint"],
        serde_json::json!(["/bin/sh", "-c", "/entry.sh run"])
    );
    assert_eq!(c["Env"], serde_json::json!(["A=1", "B=two words"]));
    assert_eq!(
        c["ExposedPorts"],
        serde_json::json!({"53/udp": {}, "80/tcp": {}})
    );
    assert_eq!(c["Labels"]["org.example.k"], "v v");
    assert_eq!(c["WorkingDir"], "/srv");
    assert_eq!(c["User"], "1000");
    assert_eq!(c["Volumes"], serde_json::json!({"/data": {}}));
    assert_eq!(c["StopSignal"], "SIGINT");
    assert_eq!(v["Comment"], "my message");
    assert_eq!(v["Architecture"], "arm64");
    assert_eq!(v["Os"], "linux");
    assert!(v["Variant"].is_null(), "arm64's v8 is the default variant");
}

#[test]
fn import_refuses_bad_input_and_leaves_the_store_as_it_was() {
    let st = store();
    let scratch = tempfile::tempdir().expect("scratch");
    let good = layer_tar(&[("etc/x", &noise(2, 3000))]);
    let good_path = write(scratch.path(), "good.tar", &good);
    st.hoist_ok(["import", s(&good_path), "keep:1"]);
    let before_files = files(&st);
    // Every column but CREATED, whose "N seconds ago" moves with the clock.
    let list = "{{.Repository}} {{.Tag}} {{.ID}} {{.CreatedAt}} {{.Size}}";
    let before_images = st.hoist_ok(["images", "--format", list]);

    let gz = compress(&good, Compression::Gzip);
    let mut escape = layer_tar(&[("xxevil", b"boom")]);
    // The tar crate refuses to write `..`; patch the name in the header and fix its checksum.
    escape[..6].copy_from_slice(b"../evi");
    let mut h = tar::Header::new_old();
    h.as_mut_bytes().copy_from_slice(&escape[..512]);
    h.set_cksum();
    escape[..512].copy_from_slice(h.as_bytes());
    let cases: Vec<(&str, Vec<u8>, Vec<&str>, &str)> = vec![
        (
            "text.tar",
            b"this is not a tarball\n".repeat(40),
            vec![],
            "not a tar header",
        ),
        ("empty.tar", Vec::new(), vec![], "empty"),
        (
            "cut.tar.gz",
            gz[..gz.len() / 2].to_vec(),
            vec![],
            "truncated",
        ),
        ("escape.tar", escape, vec![], "climb out"),
        (
            "ok.tar",
            good.clone(),
            vec!["-c", "RUN make"],
            "RUN is not supported",
        ),
        (
            "ok2.tar",
            good.clone(),
            vec!["-c", "EXPOSE 70000"],
            "not a port",
        ),
        (
            "ok3.tar",
            good.clone(),
            vec!["--platform", "linux"],
            "--platform",
        ),
    ];
    for (name, bytes, extra, needle) in cases {
        let path = write(scratch.path(), name, &bytes);
        let mut args = vec!["import", s(&path), "bad:1"];
        args.extend(extra);
        let err = st.hoist_err(&args);
        assert!(
            err.contains(needle),
            "{name}: {err:?} should mention {needle:?}"
        );
        assert_eq!(files(&st), before_files, "{name}: the store changed");
        assert_eq!(
            st.hoist_ok(["images", "--format", list]),
            before_images,
            "{name}: images changed"
        );
    }
    let err = st.hoist_err(["import", s(&good_path), "Bad/UPPER"]);
    assert!(err.contains("Bad/UPPER"), "{err}");
    assert_eq!(files(&st), before_files);
}

#[test]
fn import_save_load_round_trip_keeps_the_image_id() {
    let st = store();
    let scratch = tempfile::tempdir().expect("scratch");
    let tar = layer_tar(&[("bin/tool", &noise(3, 10_000))]);
    for (c, format) in [(Compression::Gzip, "docker"), (Compression::Zstd, "oci")] {
        let file = write(scratch.path(), "rootfs", &compress(&tar, c));
        let reference = format!("round/trip:{format}");
        let id =
            import_id(&st.hoist_ok(["import", s(&file), &reference, "-c", "CMD [\"/bin/tool\"]"]));
        let archive = scratch.path().join(format!("{format}.tar"));
        st.hoist_ok(["save", "-o", s(&archive), "--format", format, &reference]);
        let other = store();
        let out = other.hoist_ok(["load", "-i", s(&archive)]);
        assert!(out.contains(&format!("Loaded image: {reference}")), "{out}");
        let a = inspect(&st, &reference);
        let b = inspect(&other, &reference);
        assert_eq!(b["Id"], id.as_str());
        assert_eq!(a["Manifest"]["Digest"], b["Manifest"]["Digest"]);
        assert_eq!(a["Layers"], b["Layers"]);
        assert_eq!(
            st.hoist_ok(["history", "--no-trunc", &reference]),
            other.hoist_ok(["history", "--no-trunc", &reference])
        );
        let fsck = other.hoist(["fsck"]);
        assert!(
            fsck.status.success(),
            "{}",
            String::from_utf8_lossy(&fsck.stdout)
        );
    }
}

// ------------------------------------------------------------------ history

#[test]
fn history_maps_non_empty_entries_to_layers_newest_first() {
    let st = store();
    let scratch = tempfile::tempdir().expect("scratch");
    let base = layer_tar(&[("base", &noise(4, 3000))]);
    let app = layer_tar(&[("app", &noise(5, 9000))]);
    let long = "/bin/sh -c apt-get update && apt-get install -y something-rather-long";
    let archive = docker_archive(&[Img {
        layers: vec![base.clone(), app.clone()],
        history: vec![
            ("/bin/sh -c #(nop) ADD file:abc in /", false),
            ("/bin/sh -c #(nop)  CMD [\"sh\"]", true),
            (long, false),
            ("/bin/sh -c #(nop)  LABEL a=b", true),
        ],
        tags: vec!["hist/app:1"],
    }]);
    let path = write(scratch.path(), "a.tar", &archive);
    st.hoist_ok(["load", "-i", s(&path)]);
    let id = inspect(&st, "hist/app:1")["Id"]
        .as_str()
        .expect("id")
        .to_owned();

    let out = st.hoist_ok(["history", "hist/app:1"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(
        lines[0].starts_with("IMAGE")
            && lines[0].contains("CREATED BY")
            && lines[0].contains("COMMENT")
    );
    assert!(lines[1].starts_with(&id[7..19]), "{out}");
    assert!(
        lines[2..].iter().all(|l| l.starts_with("<missing>")),
        "{out}"
    );
    assert!(
        out.contains("/bin/sh -c apt-get update && apt-get install…"),
        "{out}"
    );
    assert!(!out.contains(long));

    let rows = json_lines(&st.hoist_ok([
        "history",
        "--format",
        "json",
        "--no-trunc",
        "--human=false",
        "hist/app:1",
    ]));
    let sizes: Vec<u64> = rows
        .iter()
        .map(|r| r["Size"].as_str().expect("size").parse().expect("bytes"))
        .collect();
    // Docker's SIZE: the files' bytes, not the layer tars' (headers and padding).
    assert_eq!(sizes, [0, 9000, 0, 3000]);
    assert!(app.len() > 9000 && base.len() > 3000);
    assert_eq!(rows[1]["CreatedBy"], long);
    assert_eq!(rows[0]["ID"], id.as_str());
    assert_eq!(rows[2]["ID"], "<missing>");

    let q = st.hoist_ok(["history", "-q", "hist/app:1"]);
    assert_eq!(q.lines().count(), 4);
    let raw = st.hoist_ok(["history", "--human=false", "hist/app:1"]);
    assert!(
        raw.contains("   9000   ") && raw.contains("2024-01-02T03:04:05Z"),
        "{raw}"
    );
    // The management-command spelling is the same command.
    assert_eq!(st.hoist_ok(["image", "history", "hist/app:1"]), out);
    assert!(st
        .hoist_err(["history", "no/such:image"])
        .contains("No such image"));
}

// ------------------------------------------------------------------ images, rmi

#[test]
fn images_filters_dangling_and_reference() {
    let st = store();
    let scratch = tempfile::tempdir().expect("scratch");
    let file = write(scratch.path(), "r.tar", &layer_tar(&[("f", b"x")]));
    st.hoist_ok(["import", s(&file), "alpha/one:1"]);
    st.hoist_ok(["import", s(&file), "beta:2", "-m", "differs"]);
    let dangling = import_id(&st.hoist_ok(["import", s(&file), "-m", "untagged"]));

    let rows =
        json_lines(&st.hoist_ok(["images", "--filter", "dangling=true", "--format", "json"]));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["Repository"], "<none>");
    assert_eq!(rows[0]["ID"], &dangling[7..19]);
    let rows =
        json_lines(&st.hoist_ok(["images", "--filter", "dangling=false", "--format", "json"]));
    assert_eq!(rows.len(), 2);
    let rows = json_lines(&st.hoist_ok([
        "images",
        "--filter",
        "reference=alpha/*",
        "--format",
        "json",
    ]));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["Repository"], "alpha/one");
    assert_eq!(rows[0]["Tag"], "1");
    let rows =
        json_lines(&st.hoist_ok(["images", "--filter", "reference=*:2", "--format", "json"]));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["Repository"], "beta");
    assert_eq!(st.hoist_ok(["image", "ls", "-q"]).lines().count(), 3);
}

#[test]
fn rmi_keeps_layers_another_image_still_uses() {
    let st = store();
    let scratch = tempfile::tempdir().expect("scratch");
    let base = layer_tar(&[("base", &noise(6, 5000))]);
    let one = layer_tar(&[("one", &noise(7, 2000))]);
    let two = layer_tar(&[("two", &noise(8, 2000))]);
    let archive = docker_archive(&[
        Img {
            layers: vec![base.clone(), one.clone()],
            history: vec![("base", false), ("one", false)],
            tags: vec!["shared/one:1"],
        },
        Img {
            layers: vec![base.clone(), two.clone()],
            history: vec![("base", false), ("two", false)],
            tags: vec!["shared/two:1"],
        },
    ]);
    let path = write(scratch.path(), "two.tar", &archive);
    st.hoist_ok(["load", "-i", s(&path)]);
    let (one_id, one_manifest, _) = image_blobs(&st, "shared/one:1");
    let base_blob = sha256(&base);
    let one_blob = sha256(&one);
    let one_chain = Digest::sha256(format!("{base_blob} {one_blob}").as_bytes()).to_string();

    let out = st.hoist_ok(["rmi", "shared/one:1"]);
    assert!(out.contains("Untagged: shared/one:1"), "{out}");
    assert!(out.contains(&format!("Deleted: {one_id}")), "{out}");
    assert!(out.contains(&format!("Deleted: {one_chain}")), "{out}");
    assert!(
        !out.contains(&format!("Deleted: {base_blob}")),
        "the shared base stays: {out}"
    );
    for gone in [&one_id, &one_manifest, &one_blob] {
        assert!(!blob_file(&st, gone).exists(), "{gone} should be deleted");
    }
    assert!(
        blob_file(&st, &base_blob).exists(),
        "the shared base layer must stay"
    );
    let fsck = st.hoist(["fsck"]);
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    // The other image is whole: it saves and loads elsewhere.
    let saved = scratch.path().join("out.tar");
    st.hoist_ok(["save", "-o", s(&saved), "shared/two:1"]);
    let other = store();
    other.hoist_ok(["load", "-i", s(&saved)]);
    assert_eq!(
        inspect(&other, "shared/two:1")["Layers"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    // `image rm` is the same command.
    let out = st.hoist_ok(["image", "rm", "shared/two:1"]);
    assert!(out.contains(&format!("Deleted: {base_blob}")), "{out}");
    assert!(files(&st).is_empty(), "all blobs gone: {:?}", files(&st));
}

// ------------------------------------------------------------------ prune

#[test]
fn image_prune_removes_dangling_images_then_everything_with_all() {
    let st = store();
    let scratch = tempfile::tempdir().expect("scratch");
    let tar = layer_tar(&[("p", &noise(9, 4000))]);
    let plain = write(scratch.path(), "p.tar", &tar);
    let zst = write(
        scratch.path(),
        "p.tar.zst",
        &compress(&tar, Compression::Zstd),
    );
    st.hoist_ok(["import", s(&plain), "kept:1"]);
    let dangling_shared = import_id(&st.hoist_ok(["import", s(&plain), "-m", "same layer"]));
    let dangling_own = import_id(&st.hoist_ok(["import", s(&zst)]));
    // Leftovers a killed writer could leave: an ingest file and a committed but unindexed blob.
    std::fs::write(st.path().join("ingest/leftover"), noise(10, 100)).expect("ingest file");
    let orphan = noise(11, 300);
    std::fs::write(blob_file(&st, &sha256(&orphan)), &orphan).expect("orphan blob");

    // Without -f the question is asked; stdin is empty, so the answer is no.
    let before = files(&st);
    st.hoist_ok(["image", "prune"]);
    assert_eq!(files(&st), before);

    let out = json(&st.hoist_ok(["image", "prune", "-f", "--format", "json"]));
    let after = files(&st);
    let freed: u64 = before
        .iter()
        .filter(|(f, _)| !after.contains_key(*f))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(out["SpaceReclaimed"].as_u64(), Some(freed));
    let deleted: Vec<&str> = out["ImagesDeleted"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|e| e["Deleted"].as_str())
        .collect();
    assert!(
        deleted.contains(&dangling_shared.as_str()) && deleted.contains(&dangling_own.as_str()),
        "{out}"
    );
    assert!(!blob_file(&st, &sha256(&orphan)).exists());
    assert!(!st.path().join("ingest/leftover").exists());
    assert!(
        blob_file(&st, &sha256(&tar)).exists(),
        "the layer kept:1 uses stays"
    );
    assert!(!blob_file(&st, &sha256(&compress(&tar, Compression::Zstd))).exists());
    let rows = json_lines(&st.hoist_ok(["images", "--format", "json"]));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["Repository"], "kept");

    // Nothing dangling left: nothing to do, Docker's line all the same.
    assert_eq!(
        st.hoist_ok(["image", "prune", "-f"]).trim(),
        "Total reclaimed space: 0B"
    );

    let out = st.hoist_ok(["image", "prune", "-a", "-f"]);
    assert!(
        out.starts_with("Deleted Images:\nuntagged: kept:1\ndeleted: sha256:"),
        "{out}"
    );
    assert!(out.contains("\n\nTotal reclaimed space: "), "{out}");
    assert!(files(&st).is_empty(), "{:?}", files(&st));
    let fsck = st.hoist(["fsck"]);
    assert!(fsck.status.success());
}

#[test]
fn image_prune_filters_by_label() {
    let st = store();
    let scratch = tempfile::tempdir().expect("scratch");
    let file = write(scratch.path(), "l.tar", &layer_tar(&[("l", b"l")]));
    let keep = import_id(&st.hoist_ok(["import", s(&file), "-c", "LABEL keep=yes"]));
    let drop = import_id(&st.hoist_ok(["import", s(&file), "-c", "LABEL keep=no"]));
    let out = st.hoist_ok(["image", "prune", "-f", "--filter", "label=keep=no"]);
    assert!(out.contains(&format!("deleted: {drop}")), "{out}");
    assert!(!out.contains(&keep), "{out}");
    let out = st.hoist_ok(["image", "prune", "-f", "--filter", "until=1h"]);
    assert!(
        !out.contains(&keep),
        "made just now, so not before an hour ago: {out}"
    );
    assert!(st
        .hoist_err(["image", "prune", "-f", "--filter", "bogus=1"])
        .contains("invalid filter"));
}

// ------------------------------------------------------------------ system df

#[test]
fn system_df_counts_blob_bytes_shared_and_unique() {
    let st = store();
    let scratch = tempfile::tempdir().expect("scratch");
    let base = layer_tar(&[("base", &noise(12, 8000))]);
    let one = layer_tar(&[("one", &noise(13, 3000))]);
    let two = layer_tar(&[("two", &noise(14, 1000))]);
    let archive = docker_archive(&[
        Img {
            layers: vec![base.clone(), one.clone()],
            history: vec![],
            tags: vec!["df/one:1"],
        },
        Img {
            layers: vec![base.clone(), two.clone()],
            history: vec![],
            tags: vec!["df/two:1"],
        },
    ]);
    let path = write(scratch.path(), "df.tar", &archive);
    st.hoist_ok(["load", "-i", s(&path)]);
    let gz = write(
        scratch.path(),
        "d.tar.gz",
        &compress(&layer_tar(&[("d", &noise(15, 500))]), Compression::Gzip),
    );
    let dangling = import_id(&st.hoist_ok(["import", s(&gz)]));

    let size = |d: &str| blob_size(&st, d);
    let (one_id, one_m, one_l) = image_blobs(&st, "df/one:1");
    let (two_id, two_m, two_l) = image_blobs(&st, "df/two:1");
    let (d_id, d_m, d_l) = image_blobs(&st, &dangling);
    let one_size = size(&one_id) + size(&one_m) + size(&one_l[0]) + size(&one_l[1]);
    let two_size = size(&two_id) + size(&two_m) + size(&two_l[0]) + size(&two_l[1]);
    let d_size = size(&d_id) + size(&d_m) + size(&d_l[0]);
    let total_all: u64 = files(&st).values().sum();
    let base_size = size(&sha256(&base));
    assert_eq!(
        total_all,
        one_size + two_size + d_size - base_size,
        "the base is stored once"
    );

    let rows = json_lines(&st.hoist_ok(["system", "df", "--format", "json"]));
    let row = |t: &str| rows.iter().find(|r| r["Type"] == t).cloned().expect("row");
    let images = row("Images");
    assert_eq!(images["TotalCount"], "3");
    assert_eq!(images["Active"], "2");
    assert_eq!(images["SizeBytes"].as_u64(), Some(total_all));
    assert_eq!(images["ReclaimableBytes"].as_u64(), Some(d_size));
    let layers = row("Layers");
    assert_eq!(
        layers["TotalCount"], "4",
        "base, base+one, base+two, the import"
    );
    assert_eq!(layers["Active"], "3");
    assert_eq!(
        layers["SizeBytes"].as_u64(),
        Some(base_size + size(&one_l[1]) + size(&two_l[1]) + size(&d_l[0]))
    );
    assert_eq!(layers["ReclaimableBytes"].as_u64(), Some(size(&d_l[0])));
    assert_eq!(row("Unreferenced blobs")["SizeBytes"].as_u64(), Some(0));

    let v = json(&st.hoist_ok(["system", "df", "-v", "--format", "json"]));
    let img = |repo: &str| {
        v["Images"]
            .as_array()
            .expect("images")
            .iter()
            .find(|i| i["Repository"] == repo)
            .cloned()
            .expect("image row")
    };
    let one_row = img("df/one");
    assert_eq!(one_row["SizeBytes"].as_u64(), Some(one_size));
    assert_eq!(one_row["SharedSizeBytes"].as_u64(), Some(base_size));
    assert_eq!(
        one_row["UniqueSizeBytes"].as_u64(),
        Some(one_size - base_size)
    );
    let d_row = img("<none>");
    assert_eq!(d_row["SharedSizeBytes"].as_u64(), Some(0));
    assert_eq!(d_row["UniqueSizeBytes"].as_u64(), Some(d_size));

    let table = st.hoist_ok(["system", "df"]);
    let first: Vec<&str> = table
        .lines()
        .next()
        .expect("header")
        .split_whitespace()
        .collect();
    assert_eq!(first, ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]);
    assert!(
        table
            .lines()
            .nth(1)
            .expect("images row")
            .starts_with("Images "),
        "{table}"
    );
    let verbose = st.hoist_ok(["system", "df", "-v"]);
    assert!(verbose.starts_with("Images space usage:"), "{verbose}");
    assert!(
        verbose.contains("SHARED SIZE") && verbose.contains("UNIQUE SIZE"),
        "{verbose}"
    );
}

// ------------------------------------------------------------------ fsck

#[test]
fn fsck_reports_leftovers_as_reclaimable_not_as_errors() {
    let st = store();
    let scratch = tempfile::tempdir().expect("scratch");
    let file = write(scratch.path(), "f.tar", &layer_tar(&[("f", b"f")]));
    st.hoist_ok(["import", s(&file), "clean:1"]);
    let out = st.hoist_ok(["fsck"]);
    assert!(out.contains("clean"), "{out}");
    std::fs::write(st.path().join("ingest/partial"), b"half a blob").expect("ingest");
    let orphan = b"committed but never indexed".to_vec();
    std::fs::write(blob_file(&st, &sha256(&orphan)), &orphan).expect("orphan");
    let out = st.hoist_ok(["fsck"]);
    assert!(out.contains("reclaimable"), "{out}");
    let v = json(&st.hoist_ok(["fsck", "--format", "json"]));
    assert_eq!(v["Clean"], true);
    assert_eq!(
        v["Reclaimable"]["Blobs"][0]["Digest"],
        sha256(&orphan).as_str()
    );
    assert_eq!(v["Reclaimable"]["Ingest"].as_array().map(Vec::len), Some(1));
}

#[test]
fn fsck_finds_corrupt_and_missing_blobs_and_repair_makes_the_store_clean() {
    let st = store();
    let scratch = tempfile::tempdir().expect("scratch");
    let base = layer_tar(&[("base", &noise(16, 6000))]);
    let one = layer_tar(&[("one", &noise(17, 2000))]);
    let two = layer_tar(&[("two", &noise(18, 2000))]);
    let archive = docker_archive(&[
        Img {
            layers: vec![base.clone(), one.clone()],
            history: vec![],
            tags: vec!["fsck/one:1"],
        },
        Img {
            layers: vec![base.clone(), two.clone()],
            history: vec![],
            tags: vec!["fsck/two:1"],
        },
    ]);
    let path = write(scratch.path(), "f.tar", &archive);
    st.hoist_ok(["load", "-i", s(&path)]);
    let healthy = write(
        scratch.path(),
        "h.tar.gz",
        &compress(&layer_tar(&[("h", b"h")]), Compression::Gzip),
    );
    st.hoist_ok(["import", s(&healthy), "fsck/healthy:1"]);
    let (one_id, _, _) = image_blobs(&st, "fsck/one:1");
    let (two_id, _, _) = image_blobs(&st, "fsck/two:1");
    assert!(st.hoist(["fsck"]).status.success());

    // Flip one byte of one:1's own layer; delete two:1's config.
    let one_blob = sha256(&one);
    let p = blob_file(&st, &one_blob);
    let mut bytes = std::fs::read(&p).expect("layer blob");
    bytes[700] ^= 0x20;
    std::fs::write(&p, &bytes).expect("corrupt it");
    std::fs::remove_file(blob_file(&st, &two_id)).expect("delete config");

    let out = st.hoist(["fsck"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let problems: Vec<&str> = text.lines().filter(|l| l.contains("; fix: ")).collect();
    assert_eq!(problems.len(), 2, "{text}");
    let corrupt = problems
        .iter()
        .find(|l| l.starts_with(&format!("blob {one_blob}")))
        .expect("corrupt line");
    assert!(
        corrupt.contains("corrupt") && corrupt.contains(&one_id) && corrupt.contains("fsck/one:1"),
        "{corrupt}"
    );
    assert!(corrupt.contains("hoist fsck --repair"), "{corrupt}");
    let missing = problems
        .iter()
        .find(|l| l.contains(&two_id))
        .expect("missing line");
    assert!(
        missing.contains("config blob") && missing.contains("missing"),
        "{missing}"
    );
    let v = json(&String::from_utf8_lossy(
        &st.hoist(["fsck", "--format", "json"]).stdout,
    ));
    assert_eq!(v["Clean"], false);
    let kinds: Vec<&str> = v["Problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(|p| p["Kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"CorruptBlob") && kinds.contains(&"BrokenImage"),
        "{kinds:?}"
    );

    let out = st.hoist_ok(["fsck", "--repair"]);
    assert!(
        out.contains(&format!("repaired: deleted corrupt blob {one_blob}")),
        "{out}"
    );
    assert!(
        out.contains(&format!("repaired: dropped image {one_id} (fsck/one:1)")),
        "{out}"
    );
    assert!(
        out.contains(&format!("repaired: dropped image {two_id} (fsck/two:1)")),
        "{out}"
    );
    let out = st.hoist_ok(["fsck"]);
    assert!(out.contains("clean"), "{out}");
    assert!(
        !out.contains("reclaimable"),
        "repair swept the leftovers: {out}"
    );
    let rows = json_lines(&st.hoist_ok(["images", "--format", "json"]));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["Repository"], "fsck/healthy");
    // The store works on: the dropped images load again.
    st.hoist_ok(["load", "-i", s(&path)]);
    assert!(st.hoist(["fsck"]).status.success());
}

#[test]
fn fsck_flags_stray_files_and_tampered_manifests() {
    let st = store();
    let scratch = tempfile::tempdir().expect("scratch");
    let file = write(scratch.path(), "t.tar", &layer_tar(&[("t", b"t")]));
    st.hoist_ok(["import", s(&file), "tamper:1"]);
    let (id, manifest, _) = image_blobs(&st, "tamper:1");
    std::fs::write(st.path().join("blobs/sha256/not-a-digest"), b"x").expect("stray");
    // Rewrite the manifest blob in place: still valid JSON, but its bytes no
    // longer hash to its name, so fsck must call it corrupt and name the image.
    let mut m: Value =
        serde_json::from_slice(&std::fs::read(blob_file(&st, &manifest)).expect("manifest"))
            .expect("json");
    m["config"]["size"] = Value::from(1);
    let bytes = serde_json::to_vec(&m).expect("json");
    std::fs::write(blob_file(&st, &manifest), &bytes).expect("tamper");
    let out = st.hoist(["fsck"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("not-a-digest"), "{text}");
    assert!(
        text.contains(&format!("blob {manifest}")) && text.contains("tamper:1"),
        "{text}"
    );
    let out = st.hoist_ok(["fsck", "--repair"]);
    assert!(out.contains(&format!("dropped image {id}")), "{out}");
    assert!(!st.path().join("blobs/sha256/not-a-digest").exists());
    assert!(st.hoist(["fsck"]).status.success());
}

#[test]
fn image_group_spells_the_top_level_commands() {
    let st = store();
    let scratch = tempfile::tempdir().expect("scratch");
    let file = write(scratch.path(), "g.tar", &layer_tar(&[("g", b"g")]));
    let id = import_id(&st.hoist_ok(["image", "import", s(&file), "group/a:1"]));
    st.hoist_ok(["image", "tag", "group/a:1", "group/b:2"]);
    let v = json(&st.hoist_ok(["image", "inspect", "group/b:2"]));
    assert_eq!(v[0]["Id"], id.as_str());
    // One line per tag, as `docker images -q` prints.
    assert_eq!(
        st.hoist_ok(["image", "list", "-q"]),
        format!("{0}\n{0}\n", &id[7..19])
    );
    let archive = scratch.path().join("g-save.tar");
    st.hoist_ok(["image", "save", "-o", s(&archive), "group/a:1"]);
    let other = store();
    other.hoist_ok(["image", "load", "-i", s(&archive)]);
    assert_eq!(inspect(&other, "group/a:1")["Id"], id.as_str());
    let out = st.hoist_ok(["image", "rm", "group/a:1", "group/b:2"]);
    assert!(out.contains(&format!("Deleted: {id}")), "{out}");
}

// ------------------------------------------------------------ repo digests

/// What a pull or push records (here through the store's API, as those
/// commands do) is Docker's RepoDigests: `images --digests` rows and
/// `inspect`'s `RepoDigests`; without one the digest is `<none>`.
#[test]
fn recorded_repo_digests_show_in_images_and_inspect() {
    let st = store();
    let scratch = tempfile::tempdir().expect("scratch");
    let archive = docker_archive(&[Img {
        layers: vec![layer_tar(&[("f", &noise(7, 100))])],
        history: vec![],
        tags: vec!["rd/app:1"],
    }]);
    let path = write(scratch.path(), "a.tar", &archive);
    st.hoist_ok(["load", "-i", s(&path)]);
    let fmt = [
        "images",
        "--digests",
        "--format",
        "{{.Repository}} {{.Tag}} {{.Digest}}",
    ];
    assert_eq!(st.hoist_ok(fmt), "rd/app 1 <none>\n");
    let id: Digest = inspect(&st, "rd/app:1")["Id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("digest");
    let pushed = Digest::sha256(b"the manifest as the registry has it");
    let mut store = hoist_store::Store::open(st.path()).expect("store");
    store
        .index_mut()
        .add_repo_digest(&id, "docker.io/rd/app", &pushed)
        .expect("record");
    drop(store);
    assert_eq!(st.hoist_ok(fmt), format!("rd/app 1 {pushed}\n"));
    // Without --digests Docker leaves the column out of its rows.
    assert_eq!(
        st.hoist_ok(["images", "--format", "{{.Digest}}"]),
        "<none>\n"
    );
    assert_eq!(
        inspect(&st, "rd/app:1")["RepoDigests"],
        serde_json::json!([format!("rd/app@{pushed}")])
    );
}
