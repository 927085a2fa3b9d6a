//! Hostile input (issue 2, section 6): crafted archives loaded with
//! `hoist load -i FILE` and through stdin, and malformed references on the
//! command line. Each must fail with a non-zero exit and an error that names
//! the problem, and leave the store exactly as it was: the same
//! `hoist images --format json`, the same files under `blobs/`, nothing left
//! in `ingest/` and nothing written next to the store.

#[path = "common/imagegen.rs"]
mod imagegen;

use imagegen::*;
use std::io::{BufWriter, Write};
use std::path::Path;

/// A store holding one image, `hoist-test/seed:1`, so that "as before" is
/// not trivially "empty".
fn seeded() -> Fixture {
    let fx = Fixture::new();
    let seed = Image::new(
        Some("hoist-test/seed:1"),
        vec![
            Layer::random(1, 4096, false),
            Layer::random(2, 64 * 1024, true),
        ],
    );
    let a = fx.archive("seed.tar", &docker_members(&[seed]));
    fx.load_ok(&a, Via::File);
    fx
}

/// The image the hostile archives are made of: a small plain layer and a
/// gzip layer bigger than what a streamed load keeps in memory (so stdin
/// loads stage it into `ingest/`). Its layers are not in the seeded store.
fn victim(seed: u64) -> Image {
    Image::new(
        Some("hoist-test/victim:1"),
        vec![
            Layer::random(seed * 10 + 1, 8 * 1024, false),
            Layer::random(seed * 10 + 2, 2 << 20, true),
        ],
    )
}

/// Loads `archive` from a file and from stdin: both must fail, with every
/// one of `words` in stderr, and leave the store, `ingest/` and the scratch
/// directory around the store as they were.
fn assert_refused(fx: &Fixture, archive: &Path, words: &[&str]) {
    let before = fx.state();
    let outside = fx.outside();
    for via in [Via::File, Via::Stdin] {
        let what = format!(
            "hoist load of {} via {via:?}",
            archive.file_name().unwrap().to_string_lossy()
        );
        let out = run_load(fx.command(), archive, via);
        let stderr = hoist_testkit::assert_failure(&what, &out);
        assert!(
            !stderr.contains("panicked"),
            "{what}: hoist panicked instead of refusing:\n{}",
            head(&stderr)
        );
        for w in words {
            assert!(
                stderr.contains(w),
                "{what}: stderr does not say {w:?}:\n{}",
                head(&stderr)
            );
        }
        assert_eq!(fx.state(), before, "{what} changed the store");
        assert!(
            fx.ingest().is_empty(),
            "{what} left files in ingest/: {:?}",
            fx.ingest()
        );
        assert_eq!(fx.outside(), outside, "{what} wrote next to the store");
    }
}

/// A `manifest.json` with one entry, exactly as given.
fn manifest_json(config: &str, layers: &[&str], tags: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!([{
        "Config": config,
        "RepoTags": tags,
        "Layers": layers,
    }]))
    .unwrap()
}

/// Replaces `manifest.json` in `members`.
fn set_manifest_json(members: &mut Vec<Member>, bytes: Vec<u8>) {
    members.retain(|m| m.name != "manifest.json");
    members.push(Member::file("manifest.json", bytes));
}

/// At most the first 2000 bytes of `s`, for assertion messages.
fn head(s: &str) -> &str {
    let mut end = s.len().min(2000);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[test]
fn member_with_dotdot_path_is_refused() {
    let fx = seeded();
    let img = victim(1);

    // A stray member climbing out of the archive.
    let mut m = docker_members(std::slice::from_ref(&img));
    m.push(Member::file("../../escape.txt", b"owned".to_vec()));
    let a = fx.archive("dotdot-extra.tar", &m);
    assert_refused(&fx, &a, &["\"../../escape.txt\"", "\"..\" component"]);

    // A layer stored under a climbing name that manifest.json lists.
    let mut m = docker_members(std::slice::from_ref(&img));
    let bad = format!("x/../../{}", img.docker_layer_member(1));
    member_mut(&mut m, &img.docker_layer_member(1)).name = bad.clone();
    let layers = [img.docker_layer_member(0), bad.clone()];
    set_manifest_json(
        &mut m,
        manifest_json(
            &img.docker_config_member(),
            &[&layers[0], &layers[1]],
            &["hoist-test/victim:1"],
        ),
    );
    let a = fx.archive("dotdot-layer.tar", &m);
    assert_refused(&fx, &a, &[&format!("{bad:?}"), "\"..\" component"]);
}

#[test]
fn member_with_absolute_path_is_refused() {
    let fx = seeded();
    let target = std::env::temp_dir().join(format!(
        "hoist-hostile-{}-{}/evil.txt",
        std::process::id(),
        rand::random::<u32>()
    ));
    let name = target.to_str().unwrap().to_owned();
    let mut m = docker_members(&[victim(2)]);
    m.insert(0, Member::file(name.clone(), b"owned".to_vec()));
    let a = fx.archive("absolute.tar", &m);
    assert_refused(&fx, &a, &[&format!("{name:?}"), "absolute path"]);
    assert!(!target.exists(), "{} was written", target.display());
    assert!(!target.parent().unwrap().exists());
}

#[test]
fn manifest_naming_files_outside_the_archive_is_refused() {
    let fx = seeded();
    let img = victim(3);
    let l0 = img.docker_layer_member(0);

    let mut m = docker_members(std::slice::from_ref(&img));
    set_manifest_json(
        &mut m,
        manifest_json(
            &img.docker_config_member(),
            &[&l0, "../../etc/passwd"],
            &["hoist-test/victim:1"],
        ),
    );
    let a = fx.archive("manifest-dotdot-layer.tar", &m);
    assert_refused(&fx, &a, &["\"../../etc/passwd\"", "\"..\" component"]);

    let mut m = docker_members(std::slice::from_ref(&img));
    set_manifest_json(
        &mut m,
        manifest_json("/etc/passwd", &[&l0], &["hoist-test/victim:1"]),
    );
    let a = fx.archive("manifest-absolute-config.tar", &m);
    assert_refused(&fx, &a, &["\"/etc/passwd\"", "absolute path"]);

    let mut m = docker_members(std::slice::from_ref(&img));
    set_manifest_json(
        &mut m,
        manifest_json(
            &img.docker_config_member(),
            &[&l0, "/etc/passwd"],
            &["hoist-test/victim:1"],
        ),
    );
    let a = fx.archive("manifest-absolute-layer.tar", &m);
    assert_refused(&fx, &a, &["\"/etc/passwd\"", "absolute path"]);
}

#[test]
fn symlink_member_pointing_outside_is_refused() {
    let fx = seeded();
    let img = victim(4);
    let layer = img.docker_layer_member(1);

    let mut m = docker_members(std::slice::from_ref(&img));
    *member_mut(&mut m, &layer) = Member::symlink(layer.clone(), "../../../../etc/passwd");
    let a = fx.archive("symlink-relative.tar", &m);
    assert_refused(
        &fx,
        &a,
        &[
            &format!("{layer:?}"),
            "\"../../../../etc/passwd\"",
            "outside the archive",
        ],
    );

    let mut m = docker_members(std::slice::from_ref(&img));
    *member_mut(&mut m, &layer) = Member::symlink(layer.clone(), "/etc/passwd");
    let a = fx.archive("symlink-absolute.tar", &m);
    assert_refused(
        &fx,
        &a,
        &[
            &format!("{layer:?}"),
            "\"/etc/passwd\"",
            "outside the archive",
        ],
    );

    let mut m = docker_members(std::slice::from_ref(&img));
    *member_mut(&mut m, &layer) = Member::hardlink(layer.clone(), "../outside/layer.tar");
    let a = fx.archive("hardlink-dotdot.tar", &m);
    assert_refused(&fx, &a, &["\"../outside/layer.tar\"", "\"..\" component"]);
}

#[test]
fn diff_id_mismatch_is_refused() {
    let fx = seeded();
    let img = victim(5);
    let wrong = sha256(b"not this layer");
    // Once for the gzip layer (checked when decompressed), once for the plain one.
    for (i, name) in [(1, "diffid-gzip.tar"), (0, "diffid-plain.tar")] {
        let mut ids: Vec<&str> = img.layers.iter().map(|l| l.diff_id.as_str()).collect();
        ids[i] = &wrong;
        let bad = Image {
            config: config_json(&ids),
            ..img.clone()
        };
        let a = fx.archive(name, &docker_members(std::slice::from_ref(&bad)));
        assert_refused(
            &fx,
            &a,
            &[
                "diffID mismatch",
                &bad.docker_layer_member(i),
                &wrong,
                &img.layers[i].diff_id,
            ],
        );
    }
}

#[test]
fn oci_blob_not_matching_its_digest_is_refused() {
    let fx = seeded();
    let img = victim(6);
    let manifest = sha256(&img.manifest());
    for (what, digest) in [
        ("layer", img.layers[1].digest.clone()),
        ("config", img.id()),
        ("manifest", manifest),
    ] {
        let mut m = oci_members(std::slice::from_ref(&img));
        let path = blob_path(&digest);
        let data = member_mut(&mut m, &path).data_mut();
        let mid = data.len() / 2;
        data[mid] ^= 0x20;
        let a = fx.archive(&format!("oci-bad-{what}.tar"), &m);
        assert_refused(&fx, &a, &["digest mismatch", &path, &digest]);
    }

    // Right digest, wrong size.
    let mut m = oci_members(std::slice::from_ref(&img));
    let mut man: serde_json::Value = serde_json::from_slice(&img.manifest()).unwrap();
    let size = img.layers[1].blob.len();
    man["layers"][1]["size"] = (size + 1).into();
    set_oci_manifest(&mut m, &img, serde_json::to_vec(&man).unwrap());
    let a = fx.archive("oci-bad-size.tar", &m);
    assert_refused(
        &fx,
        &a,
        &[
            "size mismatch",
            &blob_path(&img.layers[1].digest),
            &size.to_string(),
        ],
    );
}

#[test]
fn truncated_tar_is_refused() {
    let fx = seeded();
    let img = victim(7);
    // The big gzip layer last, so that cutting the archive lands in its data.
    let mut m = docker_members(std::slice::from_ref(&img));
    let big = img.docker_layer_member(1);
    let pos = m.iter().position(|x| x.name == big).unwrap();
    let layer = m.remove(pos);
    m.push(layer);
    let a = fx.archive("truncated.tar", &m);
    let len = std::fs::metadata(&a).unwrap().len();
    let cut = len - 1024 - img.layers[1].blob.len() as u64 / 2;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&a)
        .unwrap()
        .set_len(cut)
        .unwrap();
    assert_refused(&fx, &a, &["truncated"]);
}

#[test]
fn truncated_gzip_layer_is_refused() {
    let fx = seeded();
    let img = victim(8);
    let mut m = docker_members(std::slice::from_ref(&img));
    let member = img.docker_layer_member(1);
    let data = member_mut(&mut m, &member).data_mut();
    data.truncate(data.len() / 2);
    let a = fx.archive("truncated-gzip.tar", &m);
    assert_refused(&fx, &a, &[&member, "does not decompress", "truncated"]);
}

#[test]
fn gzip_bomb_layer_is_refused() {
    let fx = seeded();
    // One gzip member of 16 MiB of zeros, repeated: a multi-member gzip
    // stream (which decoders must read through) of ~1.3 MiB that inflates
    // past both 1 GiB and 1000x its size, written without holding either.
    const CHUNK: u64 = 16 << 20;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&vec![0u8; CHUNK as usize]).unwrap();
    let zeros = e.finish().unwrap();
    let inner = layer_tar(&[]);
    let head = gzip(&inner[..512]);
    let n = (1u64 << 30) / CHUNK + 8;
    let compressed = head.len() as u64 + n * zeros.len() as u64;
    let inflated = 512 + n * CHUNK;
    assert!(
        inflated > (1 << 30) && inflated > compressed * 1000,
        "the bomb must cross load's limit: {compressed} bytes inflating to {inflated}"
    );

    let layer_member = "bomb/layer.tar";
    let config = config_json(&[&sha256(b"never reached")]);
    let config_member = format!("{}.json", hex(&sha256(&config)));
    let a = fx.work.join("bomb.tar");
    let mut t = RawTar::new(BufWriter::new(std::fs::File::create(&a).unwrap()));
    t.data(
        "manifest.json",
        &manifest_json(&config_member, &[layer_member], &["hoist-test/bomb:1"]),
    )
    .unwrap();
    t.data(&config_member, &config).unwrap();
    t.header(layer_member, tar::EntryType::Regular, compressed, "")
        .unwrap();
    t.write(&head).unwrap();
    for _ in 0..n {
        t.write(&zeros).unwrap();
    }
    t.pad(compressed).unwrap();
    t.finish().unwrap().flush().unwrap();

    assert_refused(&fx, &a, &[layer_member, "decompression bomb"]);
}

/// Writes an archive of `members` followed by a member `name` of `size`
/// bytes that starts with `head` and is a hole after (a sparse file).
fn archive_with_sparse(
    fx: &Fixture,
    file: &str,
    members: &[Member],
    name: &str,
    head: &[u8],
    size: u64,
) -> std::path::PathBuf {
    let a = fx.work.join(file);
    let mut t = RawTar::new(BufWriter::new(std::fs::File::create(&a).unwrap()));
    for m in members {
        t.member(m).unwrap();
    }
    t.sparse(name, head, size).unwrap();
    t.finish().unwrap().flush().unwrap();
    a
}

#[test]
fn huge_manifest_json_is_refused() {
    let fx = seeded();
    let mut m = docker_members(&[victim(9)]);
    m.retain(|x| x.name != "manifest.json");
    let a = archive_with_sparse(
        &fx,
        "huge-manifest.tar",
        &m,
        "manifest.json",
        b"[{\"Config\":\"",
        100 << 20,
    );
    assert!(std::fs::metadata(&a).unwrap().len() > 100 << 20);
    assert_refused(&fx, &a, &["manifest.json", "104857600 bytes", "16777216"]);
}

#[test]
fn huge_oci_index_json_is_refused() {
    let fx = seeded();
    let mut m = oci_members(&[victim(10)]);
    m.retain(|x| x.name != "index.json");
    let a = archive_with_sparse(
        &fx,
        "huge-index.tar",
        &m,
        "index.json",
        b"{\"manifests\":[",
        100 << 20,
    );
    assert_refused(&fx, &a, &["index.json", "104857600 bytes", "16777216"]);
}

#[test]
fn invalid_json_in_manifest_json_is_refused() {
    let fx = seeded();
    let img = victim(11);
    for (name, bytes) in [
        (
            "manifest-cut.tar",
            &b"[{\"Config\": \"abc.json\", \"Layers\": [\"a/la"[..],
        ),
        ("manifest-shape.tar", &b"{\"Config\": \"abc.json\"}"[..]),
    ] {
        let mut m = docker_members(std::slice::from_ref(&img));
        set_manifest_json(&mut m, bytes.to_vec());
        let a = fx.archive(name, &m);
        assert_refused(&fx, &a, &["manifest.json", "not a valid"]);
    }
}

#[test]
fn invalid_json_in_config_is_refused() {
    let fx = seeded();
    let img = victim(12);
    let mut m = docker_members(std::slice::from_ref(&img));
    let member = img.docker_config_member();
    member_mut(&mut m, &member)
        .data_mut()
        .truncate(img.config.len() / 2);
    let a = fx.archive("config-cut.tar", &m);
    assert_refused(&fx, &a, &[&member, "JSON"]);
}

#[test]
fn malformed_digest_in_oci_index_is_refused() {
    let fx = seeded();
    let img = victim(13);
    let good = sha256(&img.manifest());
    for (name, bad) in [
        ("index-dotdot.tar", "sha256:../../x".to_owned()),
        (
            "index-upper.tar",
            good.to_uppercase().replace("SHA256", "sha256"),
        ),
        ("index-short.tar", good[..20].to_owned()),
    ] {
        let mut m = oci_members(std::slice::from_ref(&img));
        let index = String::from_utf8(oci_index_json(std::slice::from_ref(&img)))
            .unwrap()
            .replace(&good, &bad);
        *member_mut(&mut m, "index.json").data_mut() = index.into_bytes();
        let a = fx.archive(name, &m);
        assert_refused(
            &fx,
            &a,
            &["index.json", "invalid digest", &format!("{bad:?}")],
        );
    }
}

#[test]
fn malformed_digest_in_oci_manifest_is_refused() {
    let fx = seeded();
    let img = victim(14);
    let layer = img.layers[1].digest.clone();
    for (name, bad) in [
        (
            "manifest-dotdot.tar",
            "sha256:../../../etc/passwd".to_owned(),
        ),
        (
            "manifest-upper.tar",
            layer.to_uppercase().replace("SHA256", "sha256"),
        ),
    ] {
        let mut m = oci_members(std::slice::from_ref(&img));
        let man = String::from_utf8(img.manifest())
            .unwrap()
            .replace(&layer, &bad);
        set_oci_manifest(&mut m, &img, man.into_bytes());
        let a = fx.archive(name, &m);
        assert_refused(&fx, &a, &["invalid digest", &format!("{bad:?}")]);
    }
}

#[test]
fn document_both_manifest_and_index_is_refused() {
    let fx = seeded();
    let img = victim(15);

    // The manifest also has "manifests".
    let mut m = oci_members(std::slice::from_ref(&img));
    let mut man: serde_json::Value = serde_json::from_slice(&img.manifest()).unwrap();
    man["manifests"] = serde_json::json!([]);
    set_oci_manifest(&mut m, &img, serde_json::to_vec(&man).unwrap());
    let a = fx.archive("manifest-and-index.tar", &m);
    assert_refused(&fx, &a, &["ambiguous"]);

    // index.json also has "config" and "layers".
    let mut m = oci_members(std::slice::from_ref(&img));
    let mut index: serde_json::Value =
        serde_json::from_slice(&oci_index_json(std::slice::from_ref(&img))).unwrap();
    index["config"] = man["config"].clone();
    index["layers"] = man["layers"].clone();
    *member_mut(&mut m, "index.json").data_mut() = serde_json::to_vec(&index).unwrap();
    let a = fx.archive("index-and-manifest.tar", &m);
    assert_refused(&fx, &a, &["index.json", "ambiguous"]);
}

#[test]
fn config_with_fewer_diff_ids_than_layers_is_refused() {
    let fx = seeded();
    let img = victim(16);
    let short = Image {
        config: config_json(&[&img.layers[0].diff_id]),
        ..img.clone()
    };
    let a = fx.archive(
        "fewer-diffids.tar",
        &docker_members(std::slice::from_ref(&short)),
    );
    assert_refused(
        &fx,
        &a,
        &[
            &short.docker_config_member(),
            "rootfs.diff_ids",
            "lists 1 layers",
            "lists 2",
        ],
    );
    let a = fx.archive(
        "fewer-diffids-oci.tar",
        &oci_members(std::slice::from_ref(&short)),
    );
    assert_refused(
        &fx,
        &a,
        &[
            &blob_path(&short.id()),
            "rootfs.diff_ids",
            "lists 1 layers",
            "lists 2",
        ],
    );
}

#[test]
fn invalid_repo_tag_in_manifest_json_is_refused() {
    let fx = seeded();
    let img = victim(17);
    let layers: Vec<String> = (0..2).map(|i| img.docker_layer_member(i)).collect();
    let mut m = docker_members(std::slice::from_ref(&img));
    set_manifest_json(
        &mut m,
        manifest_json(
            &img.docker_config_member(),
            &[&layers[0], &layers[1]],
            &["../../etc:passwd"],
        ),
    );
    let a = fx.archive("bad-repotag.tar", &m);
    assert_refused(
        &fx,
        &a,
        &["RepoTags", "invalid reference", "\"../../etc:passwd\""],
    );
}

#[test]
fn malformed_references_are_refused_by_save_tag_rmi() {
    let fx = seeded();
    let before = fx.state();
    let out_file = fx.work.join("out.tar");
    let out = out_file.to_str().unwrap();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["tag", "hoist-test/seed:1", "bad/Name:1"],
            &["invalid reference", "\"Name\""],
        ),
        (
            &["tag", "hoist-test/seed:1", "name:-tag"],
            &["invalid reference", "tag \"-tag\""],
        ),
        (
            &["tag", "hoist-test/seed:1", "name@sha256:abc"],
            &["invalid reference", "invalid digest", "\"sha256:abc\""],
        ),
        (
            &["tag", "hoist-test/SEED:1", "ok:1"],
            &["invalid reference", "\"SEED\""],
        ),
        (
            &["tag", "hoist-test/seed:1", "a//b"],
            &["invalid reference", "\"a//b\""],
        ),
        (
            &["save", "-o", out, "hoist-test/seed:1", "UPPER:1"],
            &["invalid reference", "\"UPPER\""],
        ),
        (
            &["save", "-o", out, "seed:bad tag"],
            &["invalid reference", "tag \"bad tag\""],
        ),
        (
            &["rmi", "hoist-test/Seed:1"],
            &["invalid reference", "\"Seed\""],
        ),
        (
            &["rmi", "hoist-test/seed@sha256:../../x"],
            &["invalid reference", "invalid digest", "\"sha256:../../x\""],
        ),
    ];
    for (args, words) in cases {
        let what = format!("hoist {}", args.join(" "));
        let stderr = hoist_testkit::assert_failure(&what, &fx.hoist(args));
        for w in *words {
            assert!(
                stderr.contains(w),
                "{what}: stderr does not say {w:?}:\n{}",
                head(&stderr)
            );
        }
        assert_eq!(fx.state(), before, "{what} changed the store");
        assert!(!out_file.exists(), "{what} wrote {out}");
    }
}

/// Runs `hoist load` to the end like [`run_load`]; also returns the peak
/// resident memory of the hoist process, in bytes.
fn run_load_peak_rss(fx: &Fixture, archive: &Path, via: Via) -> (std::process::Output, u64) {
    use std::io::Read;
    let (mut child, feeder) = spawn_load(fx.command(), archive, via);
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to be filled in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, with valid pointers; `child` is not waited on again.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4");
    if let Some(f) = feeder {
        f.join().unwrap();
    }
    let output = std::process::Output {
        status: std::os::unix::process::ExitStatusExt::from_raw(status),
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    };
    (output, usage.ru_maxrss as u64 * 1024)
}

#[test]
fn giant_tar_extension_headers_are_refused_in_bounded_memory() {
    let fx = seeded();
    let members = docker_members(&[victim(18)]);
    let before = fx.state();
    // A GNU long name ('L') and a PAX header ('x') that claim 1 GiB, sparse on disk.
    for (kind, file) in [
        (tar::EntryType::GNULongName, "giant-longname.tar"),
        (tar::EntryType::XHeader, "giant-pax.tar"),
    ] {
        let a = fx.work.join(file);
        let mut t = RawTar::new(BufWriter::new(std::fs::File::create(&a).unwrap()));
        t.header("././@LongLink", kind, 1 << 30, "").unwrap();
        t.write(b"30 path=").unwrap();
        t.sparse_data(1 << 30, 8).unwrap();
        for m in &members {
            t.member(m).unwrap();
        }
        t.finish().unwrap().flush().unwrap();
        for via in [Via::File, Via::Stdin] {
            let what = format!("hoist load of {file} via {via:?}");
            let (out, peak) = run_load_peak_rss(&fx, &a, via);
            let stderr = hoist_testkit::assert_failure(&what, &out);
            assert!(
                stderr.contains("header") && stderr.contains("1073741824"),
                "{what}: stderr does not name the giant header:\n{}",
                head(&stderr)
            );
            assert!(
                peak < 256 << 20,
                "{what}: hoist's peak RSS was {} MiB",
                peak >> 20
            );
            assert_eq!(fx.state(), before, "{what} changed the store");
            assert!(fx.ingest().is_empty(), "{what} left files in ingest/");
        }
    }
}

#[test]
fn gzip_compressed_archive_bomb_is_refused() {
    let fx = seeded();
    // A .tar.gz holding a good image and a 1.5 GiB member of zeros: ~1.5 MiB
    // of gzip (one gzip member per 16 MiB of zeros) that would fill ingest/.
    const CHUNK: u64 = 16 << 20;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&vec![0u8; CHUNK as usize]).unwrap();
    let zeros = e.finish().unwrap();
    let n = 96;
    let mut head = RawTar::new(Vec::new());
    head.header("junk.bin", tar::EntryType::Regular, n * CHUNK, "")
        .unwrap();
    let mut rest = RawTar::new(Vec::new());
    for m in docker_members(&[victim(19)]) {
        rest.member(&m).unwrap();
    }
    let a = fx.work.join("bomb.tar.gz");
    let mut f = BufWriter::new(std::fs::File::create(&a).unwrap());
    let head = gzip(&head.into_inner());
    f.write_all(&head).unwrap();
    for _ in 0..n {
        f.write_all(&zeros).unwrap();
    }
    f.write_all(&gzip(&rest.finish().unwrap())).unwrap();
    f.flush().unwrap();
    // The bytes up to the end of the zeros inflate past 1 GiB and 1000x.
    let compressed = head.len() as u64 + n * zeros.len() as u64;
    assert!(n * CHUNK > (1 << 30) && n * CHUNK > compressed * 1000);
    assert_refused(&fx, &a, &["decompression bomb"]);
}
