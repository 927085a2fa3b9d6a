//! Hand-made overlay2 data-roots: a layer is written as Docker keeps it (files
//! in `overlay2/<cache-id>/diff`, headers in `tar-split.json.gz`) together
//! with the tar it must rebuild to.

use super::*;
use base64::Engine as _;
use std::io::Write;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// One member of a hand-made layer.
enum Member<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
}

/// Writes a layer into `root` (diff directory and layer database) and
/// returns its diffID and the tar it stands for.
fn write_layer(
    root: &Path,
    parent: Option<&Digest>,
    cache_id: &str,
    members: &[Member],
) -> (Digest, Digest, Vec<u8>) {
    let diff = root.join("overlay2").join(cache_id).join("diff");
    std::fs::create_dir_all(&diff).unwrap();
    let mut tar = Vec::new();
    let mut lines = String::new();
    let mut pos = 0;
    let segment = |bytes: &[u8], lines: &mut String, pos: &mut i32| {
        lines.push_str(&format!(
            "{{\"type\":2,\"payload\":\"{}\",\"position\":{pos}}}\n",
            B64.encode(bytes)
        ));
        *pos += 1;
    };
    for m in members {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        let (name, content): (&str, &[u8]) = match m {
            Member::Dir(n) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                std::fs::create_dir_all(diff.join(n)).unwrap();
                (n, b"")
            }
            Member::File(n, c) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(c.len() as u64);
                std::fs::write(diff.join(n), c).unwrap();
                (n, c)
            }
            Member::Symlink(n, t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                h.set_link_name(t).unwrap();
                std::os::unix::fs::symlink(t, diff.join(n)).unwrap();
                (n, b"")
            }
        };
        h.set_path(name).unwrap();
        h.set_cksum();
        tar.extend_from_slice(h.as_bytes());
        segment(h.as_bytes(), &mut lines, &mut pos);
        let mut crc = super::crc64::Crc64::new();
        crc.update(content);
        lines.push_str(&format!(
            "{{\"type\":1,\"name\":{},\"size\":{},\"payload\":{},\"position\":{pos}}}\n",
            serde_json::to_string(name).unwrap(),
            content.len(),
            if content.is_empty() {
                "null".to_owned()
            } else {
                format!("\"{}\"", B64.encode(crc.sum()))
            },
        ));
        pos += 1;
        tar.extend_from_slice(content);
        let pad = (512 - content.len() % 512) % 512;
        if pad > 0 {
            tar.extend_from_slice(&vec![0; pad]);
            segment(&vec![0; pad], &mut lines, &mut pos);
        }
    }
    tar.extend_from_slice(&[0; 1024]);
    segment(&[0; 1024], &mut lines, &mut pos);

    let diff_id = Digest::sha256(&tar);
    let chain = hoist_oci::chain_id(parent, &diff_id);
    let ldir = root.join("image/overlay2/layerdb/sha256").join(chain.hex());
    std::fs::create_dir_all(&ldir).unwrap();
    std::fs::write(ldir.join("diff"), diff_id.to_string()).unwrap();
    std::fs::write(ldir.join("cache-id"), cache_id).unwrap();
    std::fs::write(ldir.join("size"), "123").unwrap();
    if let Some(p) = parent {
        std::fs::write(ldir.join("parent"), p.to_string()).unwrap();
    }
    write_tar_split(root, &chain, lines.as_bytes());
    (diff_id, chain, tar)
}

fn write_tar_split(root: &Path, chain: &Digest, lines: &[u8]) {
    let path = root
        .join("image/overlay2/layerdb/sha256")
        .join(chain.hex())
        .join("tar-split.json.gz");
    let mut w = hoist_archive::compress_writer(
        File::create(path).unwrap(),
        hoist_archive::Compression::Gzip,
        None,
    )
    .unwrap();
    w.write_all(lines).unwrap();
    w.finish().unwrap();
}

fn read_tar_split(root: &Path, chain: &Digest) -> String {
    let path = root
        .join("image/overlay2/layerdb/sha256")
        .join(chain.hex())
        .join("tar-split.json.gz");
    let mut r = hoist_archive::decompress_reader(
        File::open(path).unwrap(),
        hoist_archive::Compression::Gzip,
    )
    .unwrap();
    let mut s = String::new();
    r.read_to_string(&mut s).unwrap();
    s
}

/// Writes the image with `diff_ids` under `tag`; returns its ID.
fn write_image(root: &Path, diff_ids: &[Digest], tag: &str) -> Digest {
    let ids: Vec<String> = diff_ids.iter().map(|d| format!("\"{d}\"")).collect();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["/bin/sh"]}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        ids.join(",")
    );
    let id = Digest::sha256(config.as_bytes());
    let content = root.join("image/overlay2/imagedb/content/sha256");
    std::fs::create_dir_all(&content).unwrap();
    std::fs::write(content.join(id.hex()), &config).unwrap();
    let name = tag.split(':').next().unwrap();
    std::fs::write(
        root.join("image/overlay2/repositories.json"),
        format!(r#"{{"Repositories":{{"{name}":{{"{tag}":"{id}"}}}}}}"#),
    )
    .unwrap();
    id
}

struct Fixture {
    dir: tempfile::TempDir,
    id: Digest,
    chains: Vec<Digest>,
    tars: Vec<Vec<u8>>,
}

impl Fixture {
    fn root(&self) -> &Path {
        self.dir.path()
    }
    fn diff(&self, layer: usize) -> PathBuf {
        self.root()
            .join("overlay2")
            .join(format!("cache{layer}"))
            .join("diff")
    }
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let (d0, c0, t0) = write_layer(
        dir.path(),
        None,
        "cache0",
        &[
            Member::Dir("etc"),
            Member::File("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
            Member::Dir("bin"),
            Member::File("bin/big", &big),
            Member::Symlink("bin/sh", "big"),
        ],
    );
    let (d1, c1, t1) = write_layer(
        dir.path(),
        Some(&c0),
        "cache1",
        &[Member::Dir("etc"), Member::File("etc/motd", b"hello\n")],
    );
    let id = write_image(dir.path(), &[d0, d1], "example.com/app:v1");
    Fixture {
        dir,
        id,
        chains: vec![c0, c1],
        tars: vec![t0, t1],
    }
}

fn read_all(r: &mut LayerTar) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.read_to_end(&mut out).map(|_| out)
}

fn err_of(r: std::io::Result<Vec<u8>>) -> String {
    let e = r.expect_err("the rebuilt layer should have been refused");
    DockerRootError::from_io(&e)
        .map(ToString::to_string)
        .unwrap_or_else(|| e.to_string())
}

#[test]
fn rebuilds_each_layer_byte_for_byte_and_resolves_tags_ids_and_prefixes() {
    let f = fixture();
    let root = DockerRoot::open(f.root()).unwrap();
    assert_eq!(root.resolve("example.com/app:v1").unwrap(), f.id);
    assert_eq!(root.resolve(&f.id.to_string()).unwrap(), f.id);
    assert_eq!(root.resolve(f.id.hex()).unwrap(), f.id);
    assert_eq!(root.resolve(&f.id.hex()[..10]).unwrap(), f.id);
    assert!(matches!(
        root.resolve("example.com/app:v2"),
        Err(DockerRootError::NoSuchImage(_))
    ));
    let images = root.images().unwrap();
    assert_eq!(
        images,
        vec![RootImage {
            id: f.id.clone(),
            tags: vec!["example.com/app:v1".into()],
            digests: vec![]
        }]
    );
    assert_eq!(Digest::sha256(&root.config(&f.id).unwrap()), f.id);
    let layers = root.layers(&f.id).unwrap();
    assert_eq!(layers.len(), 2);
    for (i, l) in layers.iter().enumerate() {
        assert_eq!(l.chain_id, f.chains[i]);
        assert_eq!(l.size, f.tars[i].len() as u64);
        let tar = read_all(&mut root.layer_tar(&l.chain_id).unwrap()).unwrap();
        assert_eq!(tar, f.tars[i], "layer {i} rebuilt differently");
        assert_eq!(Digest::sha256(&tar), l.diff_id);
    }
    let manifest: hoist_oci::Manifest =
        serde_json::from_slice(&root.manifest(&f.id).unwrap()).unwrap();
    assert_eq!(manifest.config.digest, f.id);
    assert_eq!(
        manifest.config.media_type,
        hoist_oci::media_type::OCI_CONFIG
    );
    let described: Vec<(Digest, u64)> = manifest
        .layers
        .iter()
        .map(|d| (d.digest.clone(), d.size))
        .collect();
    let rebuilt: Vec<(Digest, u64)> = f
        .tars
        .iter()
        .map(|t| (Digest::sha256(t), t.len() as u64))
        .collect();
    assert_eq!(described, rebuilt);
    assert!(manifest
        .layers
        .iter()
        .all(|d| d.media_type == hoist_oci::media_type::OCI_LAYER_TAR));
}

#[test]
fn a_file_changed_in_the_diff_directory_is_refused_by_name() {
    let f = fixture();
    // Same size, other bytes: only the CRC-64 can tell.
    std::fs::write(
        f.diff(0).join("etc/passwd"),
        b"root:x:0:0:root:/root:/bin/zz\n",
    )
    .unwrap();
    let root = DockerRoot::open(f.root()).unwrap();
    let msg = err_of(read_all(&mut root.layer_tar(&f.chains[0]).unwrap()));
    assert!(
        msg.contains("\"etc/passwd\"") && msg.contains("CRC-64"),
        "{msg}"
    );
}

#[test]
fn a_file_of_another_size_is_refused_before_it_is_read() {
    let f = fixture();
    std::fs::write(f.diff(0).join("bin/big"), b"short").unwrap();
    let root = DockerRoot::open(f.root()).unwrap();
    let msg = err_of(read_all(&mut root.layer_tar(&f.chains[0]).unwrap()));
    assert!(
        msg.contains("\"bin/big\"") && msg.contains("size is 5 bytes"),
        "{msg}"
    );
}

#[test]
fn a_tampered_tar_split_fails_the_diff_id_check() {
    let f = fixture();
    // Change one raw header (the motd file's mode) and keep the file entry intact.
    let lines = read_tar_split(f.root(), &f.chains[1]);
    let mut out = String::new();
    let mut changed = false;
    for line in lines.lines() {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        if !changed && v["type"] == 2 {
            let mut bytes = B64.decode(v["payload"].as_str().unwrap()).unwrap();
            if bytes.len() == 512 && bytes.starts_with(b"etc/motd") {
                bytes[100..108].copy_from_slice(b"0000600\0");
                v["payload"] = B64.encode(&bytes).into();
                changed = true;
            }
        }
        out.push_str(&v.to_string());
        out.push('\n');
    }
    assert!(changed);
    write_tar_split(f.root(), &f.chains[1], out.as_bytes());
    let root = DockerRoot::open(f.root()).unwrap();
    let e = read_all(&mut root.layer_tar(&f.chains[1]).unwrap()).unwrap_err();
    match DockerRootError::from_io(&e) {
        Some(DockerRootError::DiffIdMismatch { chain_id, .. }) => {
            assert_eq!(*chain_id, f.chains[1])
        }
        other => panic!("expected a diffID mismatch, got {other:?} ({e})"),
    }
}

#[test]
fn a_tar_split_naming_a_file_outside_the_layer_is_refused() {
    let f = fixture();
    let lines = read_tar_split(f.root(), &f.chains[1]).replace(
        "\"name\":\"etc/motd\"",
        "\"name\":\"../cache0/diff/etc/motd\"",
    );
    write_tar_split(f.root(), &f.chains[1], lines.as_bytes());
    let root = DockerRoot::open(f.root()).unwrap();
    let msg = err_of(read_all(&mut root.layer_tar(&f.chains[1]).unwrap()));
    assert!(
        msg.contains("\"../cache0/diff/etc/motd\"") && msg.contains("leaves the layer"),
        "{msg}"
    );
}

#[test]
fn a_symlink_in_the_diff_directory_is_never_followed() {
    let f = fixture();
    let outside = f.root().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("passwd"), b"root:x:0:0:root:/root:/bin/sh\n").unwrap();
    // The file itself replaced by a symlink to a file with the same bytes.
    std::fs::remove_file(f.diff(0).join("etc/passwd")).unwrap();
    std::os::unix::fs::symlink(outside.join("passwd"), f.diff(0).join("etc/passwd")).unwrap();
    let root = DockerRoot::open(f.root()).unwrap();
    let msg = err_of(read_all(&mut root.layer_tar(&f.chains[0]).unwrap()));
    assert!(
        msg.contains("\"etc/passwd\"") && msg.contains("symlink"),
        "{msg}"
    );
    // A parent directory replaced by a symlink to a directory outside.
    std::fs::remove_dir_all(f.diff(1).join("etc")).unwrap();
    std::fs::write(outside.join("motd"), b"hello\n").unwrap();
    std::os::unix::fs::symlink(&outside, f.diff(1).join("etc")).unwrap();
    let msg = err_of(read_all(&mut root.layer_tar(&f.chains[1]).unwrap()));
    assert!(
        msg.contains("\"etc/motd\"") && msg.contains("symlink"),
        "{msg}"
    );
}

#[test]
fn a_missing_cache_id_names_the_file() {
    let f = fixture();
    let path = f
        .root()
        .join("image/overlay2/layerdb/sha256")
        .join(f.chains[0].hex())
        .join("cache-id");
    std::fs::remove_file(&path).unwrap();
    let root = DockerRoot::open(f.root()).unwrap();
    let msg = root
        .layer_tar(&f.chains[0])
        .err()
        .expect("no cache-id must fail")
        .to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}

#[test]
fn a_cache_id_that_is_a_path_is_refused() {
    let f = fixture();
    let path = f
        .root()
        .join("image/overlay2/layerdb/sha256")
        .join(f.chains[0].hex())
        .join("cache-id");
    std::fs::write(&path, "../../etc").unwrap();
    let root = DockerRoot::open(f.root()).unwrap();
    let msg = root
        .layer_tar(&f.chains[0])
        .err()
        .expect("a path must fail")
        .to_string();
    assert!(msg.contains("not an overlay2 directory name"), "{msg}");
}

#[test]
fn a_changed_config_is_refused() {
    let f = fixture();
    let path = f
        .root()
        .join("image/overlay2/imagedb/content/sha256")
        .join(f.id.hex());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.push(b' ');
    std::fs::write(&path, bytes).unwrap();
    let root = DockerRoot::open(f.root()).unwrap();
    assert!(matches!(
        root.config(&f.id),
        Err(DockerRootError::ConfigMismatch { .. })
    ));
}

#[test]
fn other_storage_drivers_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("image/vfs/imagedb")).unwrap();
    let msg = DockerRoot::open(dir.path()).unwrap_err().to_string();
    assert!(
        msg.contains("vfs storage driver") && msg.contains("only overlay2"),
        "{msg}"
    );
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        DockerRoot::open(empty.path()),
        Err(DockerRootError::NotADataRoot { .. })
    ));
}

#[test]
fn names_given_as_name_raw_are_decoded() {
    // tar-split writes `name_raw` (base64) for names that are not UTF-8.
    let f = fixture();
    let raw = B64.encode(b"etc/motd");
    let lines = read_tar_split(f.root(), &f.chains[1])
        .replace("\"name\":\"etc/motd\"", &format!("\"name_raw\":\"{raw}\""));
    write_tar_split(f.root(), &f.chains[1], lines.as_bytes());
    let root = DockerRoot::open(f.root()).unwrap();
    let tar = read_all(&mut root.layer_tar(&f.chains[1]).unwrap()).unwrap();
    assert_eq!(tar, f.tars[1]);
}

#[test]
fn layers_stream_on_other_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<DockerRoot>();
    send::<LayerTar>();
}

#[test]
fn a_fifo_in_place_of_a_file_is_refused_without_blocking() {
    let f = fixture();
    let path = f.diff(0).join("etc/passwd");
    std::fs::remove_file(&path).unwrap();
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let root = DockerRoot::open(f.root()).unwrap();
    let msg = err_of(read_all(&mut root.layer_tar(&f.chains[0]).unwrap()));
    assert!(
        msg.contains("\"etc/passwd\"") && msg.contains("not a regular file"),
        "{msg}"
    );
}

#[test]
fn a_tar_split_that_is_not_one_is_refused_naming_the_layer() {
    let f = fixture();
    let path = f
        .root()
        .join("image/overlay2/layerdb/sha256")
        .join(f.chains[0].hex())
        .join("tar-split.json.gz");
    std::fs::write(&path, b"not gzip at all").unwrap();
    let root = DockerRoot::open(f.root()).unwrap();
    let msg = root.layers(&f.id).unwrap_err().to_string();
    assert!(
        msg.contains(&f.chains[0].to_string()) && msg.contains("tar-split"),
        "{msg}"
    );

    write_tar_split(f.root(), &f.chains[1], b"{\"type\":7,\"position\":0}\n");
    let msg = err_of(read_all(&mut root.layer_tar(&f.chains[1]).unwrap()));
    assert!(msg.contains("unknown entry type 7"), "{msg}");
}

#[test]
fn a_failed_layer_gives_its_error_again_on_every_later_read() {
    let f = fixture();
    std::fs::write(
        f.diff(0).join("etc/passwd"),
        b"root:x:0:0:root:/root:/bin/zz\n",
    )
    .unwrap();
    let root = DockerRoot::open(f.root()).unwrap();
    let mut tar = root.layer_tar(&f.chains[0]).unwrap();
    let first = err_of(read_all(&mut tar));
    let again = err_of(read_all(&mut tar));
    assert_eq!(first, again);
    assert!(again.contains("\"etc/passwd\""), "{again}");
}

#[test]
fn an_image_copies_through_the_engine_with_its_id_and_rebuilt_layers() {
    use crate::{copy, CopyOptions, DockerRootSource, NoProgress, OciDirDestination};
    let f = fixture();
    // The only image is taken when none is named.
    let src = DockerRootSource::open(f.root(), None).unwrap();
    assert_eq!(src.id(), &f.id);
    let out = tempfile::tempdir().unwrap();
    let copied = copy(
        &src,
        Box::new(OciDirDestination::new(out.path()).unwrap()),
        &["v1".to_owned()],
        &CopyOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(copied.images[0].config, f.id);
    let blob = |d: &Digest| std::fs::read(out.path().join("blobs/sha256").join(d.hex())).unwrap();
    assert_eq!(Digest::sha256(&blob(&f.id)), f.id);
    for t in &f.tars {
        assert_eq!(&blob(&Digest::sha256(t)), t);
    }
    // A resume from an offset rebuilds the rest of the layer.
    let d = hoist_oci::Descriptor::new(
        hoist_oci::media_type::OCI_LAYER_TAR,
        Digest::sha256(&f.tars[0]),
        f.tars[0].len() as u64,
    );
    let mut rest = Vec::new();
    crate::ImageSource::blob(&src, &d, 1000)
        .unwrap()
        .into_reader()
        .unwrap()
        .read_to_end(&mut rest)
        .unwrap();
    assert_eq!(rest, f.tars[0][1000..]);
}

#[test]
fn a_changed_file_fails_a_copy_with_the_layer_and_entry_named() {
    use crate::{copy, CopyOptions, DockerRootSource, NoProgress, OciDirDestination};
    let f = fixture();
    std::fs::write(f.diff(1).join("etc/motd"), b"HELLO\n").unwrap();
    let src = DockerRootSource::open(f.root(), Some("example.com/app:v1")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let store = hoist_store::Store::open(out.path().join("store")).unwrap();
    let into_layout = Box::new(OciDirDestination::new(&out.path().join("layout")).unwrap());
    let into_store = Box::new(crate::StoreDestination::new(&store).unwrap());
    for dst in [into_layout as Box<dyn crate::ImageDestination>, into_store] {
        let err = copy(&src, dst, &[], &CopyOptions::default(), &NoProgress)
            .expect_err("the copy should fail");
        assert!(
            matches!(
                &err,
                crate::TransportError::DockerRoot(DockerRootError::Tampered { entry, chain_id, .. })
                    if entry == "etc/motd" && *chain_id == f.chains[1]
            ),
            "{err}"
        );
    }
}

#[test]
fn the_manifest_is_the_one_load_makes_for_a_classic_docker_save_of_the_image() {
    use crate::{ArchiveSource, DockerRootSource, ImageSource, LoadInput, NoProgress};
    let f = fixture();
    let src = DockerRootSource::open(f.root(), Some("example.com/app:v1")).unwrap();
    // The archive `docker save` wrote before Docker 25: <id>.json, <layer>/layer.tar, manifest.json.
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("classic.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
    let mut append = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
    };
    let config_name = format!("{}.json", f.id.hex());
    append(
        &config_name,
        &std::fs::read(
            f.root()
                .join("image/overlay2/imagedb/content/sha256")
                .join(f.id.hex()),
        )
        .unwrap(),
    );
    let mut layers = Vec::new();
    for (i, t) in f.tars.iter().enumerate() {
        let name = format!("l{i}/layer.tar");
        append(&name, t);
        layers.push(name);
    }
    let manifest = serde_json::json!([{ "Config": config_name, "RepoTags": ["example.com/app:v1"], "Layers": layers }]);
    append("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    b.into_inner().unwrap();
    let store = hoist_store::Store::open(out.path().join("store")).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let archive = ArchiveSource::open(LoadInput::File(file), &store, &NoProgress).unwrap();
    assert_eq!(
        archive.images()[0].top,
        src.top().unwrap(),
        "docker-root: and load of a classic archive describe the image differently"
    );
}

#[test]
fn an_unnamed_image_of_a_data_root_with_several_is_refused_listing_them() {
    let f = fixture();
    let other = write_image(
        f.root(),
        &[Digest::sha256(&f.tars[0])],
        "example.com/base:v1",
    );
    let err = crate::DockerRootSource::open(f.root(), None)
        .err()
        .expect("two images: one must be named");
    let msg = err.to_string();
    assert!(msg.contains("holds 2 images"), "{msg}");
    // write_image rewrites repositories.json: the first image is now untagged, shown by ID.
    assert!(
        msg.contains("example.com/base:v1") && msg.contains(&f.id.to_string()),
        "{msg}"
    );
    let src = crate::DockerRootSource::open(f.root(), Some("example.com/base:v1")).unwrap();
    assert_eq!(src.id(), &other);
}
