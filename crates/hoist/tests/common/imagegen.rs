//! Image archives built in the test, hostile ones included, and a store
//! that can be compared before and after a command.
//!
//! * [`RawTar`] writes tar headers byte by byte, so it writes what the `tar`
//!   crate refuses to (`../x`, `/abs`, links leaving the archive, members
//!   whose declared size is a lie) and sparse members that take no disk.
//! * [`Layer`], [`Image`], [`docker_members`], [`oci_members`]: images made
//!   of generated layers, as a `docker save` or an OCI archive, as a list of
//!   [`Member`]s a test may tamper with before [`write_tar`].
//! * [`Fixture`]: a store nested in a scratch directory, so that a test can
//!   prove that nothing changed in the store nor next to it.
//!
//! Used by `hostile.rs` and `crash.rs` through `#[path]`.

#![allow(dead_code)]

use hoist_oci::{Digest, Digester};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    Digest::sha256(bytes).to_string()
}

/// The hex part of `sha256:<hex>`.
pub fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").expect("a sha256 digest")
}

/// `blobs/sha256/<hex>`: where an OCI layout keeps a blob.
pub fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}", hex(digest))
}

// ------------------------------------------------------------------ tar

/// What a tar member is.
#[derive(Clone, Debug)]
pub enum Body {
    /// A regular file.
    Data(Vec<u8>),
    /// A symbolic link to this target.
    Symlink(String),
    /// A hard link to this (earlier) member.
    Hardlink(String),
}

/// One tar member; the name is written as is.
#[derive(Clone, Debug)]
pub struct Member {
    /// The raw name in the header.
    pub name: String,
    /// What it holds.
    pub body: Body,
}

impl Member {
    /// A regular file.
    pub fn file(name: impl Into<String>, data: impl Into<Vec<u8>>) -> Member {
        Member {
            name: name.into(),
            body: Body::Data(data.into()),
        }
    }

    /// A symbolic link.
    pub fn symlink(name: impl Into<String>, target: impl Into<String>) -> Member {
        Member {
            name: name.into(),
            body: Body::Symlink(target.into()),
        }
    }

    /// A hard link.
    pub fn hardlink(name: impl Into<String>, target: impl Into<String>) -> Member {
        Member {
            name: name.into(),
            body: Body::Hardlink(target.into()),
        }
    }

    /// The data of a regular file member.
    pub fn data_mut(&mut self) -> &mut Vec<u8> {
        match &mut self.body {
            Body::Data(d) => d,
            other => panic!("{} is not a regular file: {other:?}", self.name),
        }
    }
}

/// The member called `name` in `members`.
pub fn member_mut<'a>(members: &'a mut [Member], name: &str) -> &'a mut Member {
    members
        .iter_mut()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no member {name}"))
}

/// A tar writer that writes any header: names are not checked nor cleaned.
pub struct RawTar<W: Write> {
    out: W,
}

impl<W: Write> RawTar<W> {
    /// Starts a tar stream.
    pub fn new(out: W) -> Self {
        RawTar { out }
    }

    /// Writes one ustar header naming `name` (at most 100 bytes), with
    /// `size` as the declared data size.
    pub fn header(
        &mut self,
        name: &str,
        kind: tar::EntryType,
        size: u64,
        link: &str,
    ) -> io::Result<()> {
        assert!(
            name.len() <= 100,
            "name too long for a ustar header: {name}"
        );
        assert!(
            link.len() <= 100,
            "link too long for a ustar header: {link}"
        );
        let mut h = tar::Header::new_ustar();
        {
            let u = h.as_ustar_mut().expect("ustar header");
            u.name[..name.len()].copy_from_slice(name.as_bytes());
            u.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_577_836_800);
        h.set_size(size);
        h.set_entry_type(kind);
        h.set_cksum();
        self.out.write_all(h.as_bytes())
    }

    /// Zeros up to the next 512-byte block after `size` bytes of data.
    pub fn pad(&mut self, size: u64) -> io::Result<()> {
        let rem = (size % 512) as usize;
        if rem != 0 {
            self.out.write_all(&[0u8; 512][..512 - rem])?;
        }
        Ok(())
    }

    /// Raw bytes, as they are (data after a [`RawTar::header`]).
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)
    }

    /// A regular file.
    pub fn data(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        self.header(name, tar::EntryType::Regular, data.len() as u64, "")?;
        self.out.write_all(data)?;
        self.pad(data.len() as u64)
    }

    /// A regular file of `size` bytes read from `r`, never held whole.
    pub fn stream(&mut self, name: &str, size: u64, r: &mut impl Read) -> io::Result<()> {
        self.header(name, tar::EntryType::Regular, size, "")?;
        let n = io::copy(&mut r.take(size), &mut self.out)?;
        assert_eq!(n, size, "{name}: the reader ended early");
        self.pad(size)
    }

    /// Any member.
    pub fn member(&mut self, m: &Member) -> io::Result<()> {
        match &m.body {
            Body::Data(d) => self.data(&m.name, d),
            Body::Symlink(t) => self.header(&m.name, tar::EntryType::Symlink, 0, t),
            Body::Hardlink(t) => self.header(&m.name, tar::EntryType::Link, 0, t),
        }
    }

    /// The writer, without end-of-archive blocks (more members may follow).
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Writes the end-of-archive blocks; returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; 1024])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl RawTar<BufWriter<File>> {
    /// A member of `size` bytes: `head`, then a hole of zeros that takes no
    /// disk (the file is sparse).
    pub fn sparse(&mut self, name: &str, head: &[u8], size: u64) -> io::Result<()> {
        self.header(name, tar::EntryType::Regular, size, "")?;
        self.out.write_all(head)?;
        self.sparse_data(size, head.len() as u64)
    }

    /// The rest of a member's `size` bytes of data (of which `written` are
    /// written already) as a hole, then its padding.
    pub fn sparse_data(&mut self, size: u64, written: u64) -> io::Result<()> {
        let padded = size - written + (512 - size % 512) % 512;
        self.out.seek(SeekFrom::Current(padded as i64))?;
        Ok(())
    }
}

/// Writes `members` as a tar file at `path`.
pub fn write_tar(path: &Path, members: &[Member]) {
    let mut t = RawTar::new(BufWriter::new(File::create(path).expect("create archive")));
    for m in members {
        t.member(m).expect("write member");
    }
    t.finish().expect("finish archive");
}

/// An uncompressed layer tar holding `files` (path, content), deterministic.
pub fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_577_836_800);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, *data).expect("layer member");
    }
    b.into_inner().expect("layer tar")
}

/// `len` pseudo-random bytes from `seed` (xorshift64*); `alphabet` limits
/// each byte to that many values, so that 256 is incompressible and 16
/// compresses about 2:1.
pub fn noise(seed: u64, len: usize, alphabet: u16) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        let v = s.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        if alphabet >= 256 {
            out.extend_from_slice(&v);
        } else {
            out.extend(v.iter().map(|b| b'a' + (*b as u16 % alphabet) as u8));
        }
    }
    out.truncate(len);
    out
}

/// gzip of `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

// ------------------------------------------------------------------ images

/// One layer: its blob as stored in the archive, and both of its names.
#[derive(Clone, Debug)]
pub struct Layer {
    /// The bytes in the archive (a tar, or a gzip of one).
    pub blob: Vec<u8>,
    /// sha256 of the uncompressed tar.
    pub diff_id: String,
    /// sha256 of `blob`.
    pub digest: String,
    /// The OCI media type.
    pub media_type: &'static str,
}

impl Layer {
    /// A layer stored as a plain tar.
    pub fn plain(tar: Vec<u8>) -> Layer {
        let d = sha256(&tar);
        Layer {
            diff_id: d.clone(),
            digest: d,
            blob: tar,
            media_type: "application/vnd.oci.image.layer.v1.tar",
        }
    }

    /// A layer stored gzip-compressed.
    pub fn gzip(tar: Vec<u8>) -> Layer {
        let blob = gzip(&tar);
        Layer {
            diff_id: sha256(&tar),
            digest: sha256(&blob),
            blob,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
        }
    }

    /// A layer of one file of `size` pseudo-random bytes from `seed`; gzip
    /// layers get compressible bytes.
    pub fn random(seed: u64, size: usize, gzipped: bool) -> Layer {
        let data = noise(seed, size, if gzipped { 16 } else { 256 });
        let name = format!("data/{seed}.bin");
        let tar = layer_tar(&[(&name, &data)]);
        if gzipped {
            Layer::gzip(tar)
        } else {
            Layer::plain(tar)
        }
    }
}

/// The OCI architecture name of this machine.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// An image config listing `diff_ids`, created at a fixed date (so that
/// `hoist images` prints the same thing minutes apart).
pub fn config_json(diff_ids: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": host_arch(),
        "os": "linux",
        "created": "2020-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": diff_ids.iter().map(|_| serde_json::json!({"created_by": "test"})).collect::<Vec<_>>(),
    }))
    .expect("config json")
}

/// An image: a tag (if any), a config and its layers.
#[derive(Clone, Debug)]
pub struct Image {
    /// `repo:tag` to record in the archive.
    pub tag: Option<String>,
    /// The config's exact bytes.
    pub config: Vec<u8>,
    /// Base first.
    pub layers: Vec<Layer>,
}

impl Image {
    /// An image of `layers` whose config lists their diffIDs.
    pub fn new(tag: Option<&str>, layers: Vec<Layer>) -> Image {
        let ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
        Image {
            tag: tag.map(str::to_owned),
            config: config_json(&ids),
            layers,
        }
    }

    /// The image ID (config digest).
    pub fn id(&self) -> String {
        sha256(&self.config)
    }

    /// Its OCI manifest.
    pub fn manifest(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": self.id(),
                "size": self.config.len(),
            },
            "layers": self.layers.iter().map(|l| serde_json::json!({
                "mediaType": l.media_type,
                "digest": l.digest,
                "size": l.blob.len(),
            })).collect::<Vec<_>>(),
        }))
        .expect("manifest json")
    }

    /// Where the classic `docker save` layout keeps layer `i`.
    pub fn docker_layer_member(&self, i: usize) -> String {
        format!("{}/layer.tar", hex(&self.layers[i].digest))
    }

    /// Where the classic `docker save` layout keeps the config.
    pub fn docker_config_member(&self) -> String {
        format!("{}.json", hex(&self.id()))
    }
}

fn push_unique(members: &mut Vec<Member>, m: Member) {
    if !members.iter().any(|x| x.name == m.name) {
        members.push(m);
    }
}

/// The `manifest.json` of a classic `docker save` of `images`.
pub fn docker_manifest_json(images: &[Image]) -> Vec<u8> {
    let entries: Vec<_> = images
        .iter()
        .map(|img| {
            serde_json::json!({
                "Config": img.docker_config_member(),
                "RepoTags": img.tag.iter().collect::<Vec<_>>(),
                "Layers": (0..img.layers.len()).map(|i| img.docker_layer_member(i)).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::to_vec(&entries).expect("manifest.json")
}

/// A classic `docker save` archive of `images` (`<config hex>.json`,
/// `<layer>/layer.tar`, `manifest.json`; no per-layer json, no `repositories`).
pub fn docker_members(images: &[Image]) -> Vec<Member> {
    let mut m = Vec::new();
    for img in images {
        push_unique(
            &mut m,
            Member::file(img.docker_config_member(), img.config.clone()),
        );
        for (i, l) in img.layers.iter().enumerate() {
            push_unique(
                &mut m,
                Member::file(img.docker_layer_member(i), l.blob.clone()),
            );
        }
    }
    m.push(Member::file("manifest.json", docker_manifest_json(images)));
    m
}

/// The `index.json` of an OCI archive of `images`.
pub fn oci_index_json(images: &[Image]) -> Vec<u8> {
    let manifests: Vec<_> = images
        .iter()
        .map(|img| (img.manifest(), img.tag.as_deref()))
        .collect();
    oci_index_for(&manifests)
}

/// An `index.json` naming these manifests (exact bytes, and a tag for each).
pub fn oci_index_for(manifests: &[(Vec<u8>, Option<&str>)]) -> Vec<u8> {
    let manifests: Vec<_> = manifests
        .iter()
        .map(|(m, tag)| {
            let mut d = serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": sha256(m),
                "size": m.len(),
            });
            if let Some(t) = tag {
                d["annotations"] = serde_json::json!({ "io.containerd.image.name": t });
            }
            d
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }))
    .expect("index.json")
}

/// An OCI image layout archive of `images`.
pub fn oci_members(images: &[Image]) -> Vec<Member> {
    let mut m = vec![Member::file(
        "oci-layout",
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    )];
    for img in images {
        let man = img.manifest();
        push_unique(&mut m, Member::file(blob_path(&sha256(&man)), man));
        push_unique(
            &mut m,
            Member::file(blob_path(&img.id()), img.config.clone()),
        );
        for l in &img.layers {
            push_unique(&mut m, Member::file(blob_path(&l.digest), l.blob.clone()));
        }
    }
    m.push(Member::file("index.json", oci_index_json(images)));
    m
}

/// Replaces the manifest of the (only) image of an OCI archive by `manifest`,
/// stored under its own digest and named by `index.json`.
pub fn set_oci_manifest(members: &mut Vec<Member>, img: &Image, manifest: Vec<u8>) {
    let old = blob_path(&sha256(&img.manifest()));
    members.retain(|m| m.name != old && m.name != "index.json");
    let index = oci_index_for(&[(manifest.clone(), img.tag.as_deref())]);
    members.push(Member::file(blob_path(&sha256(&manifest)), manifest));
    members.push(Member::file("index.json", index));
}

// ------------------------------------------------------------------ running hoist

/// The hoist binary under test.
pub fn hoist_bin() -> PathBuf {
    hoist_testkit::hoist_bin!()
}

/// How `hoist load` gets its archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// `-i FILE`: the file is read in place.
    File,
    /// Piped into stdin: streamed.
    Stdin,
}

/// Starts `hoist load` of `archive` from `cmd` (a hoist command for some
/// store); with [`Via::Stdin`] a thread pipes the archive in. Join the
/// returned thread after the child is gone.
pub fn spawn_load(
    mut cmd: Command,
    archive: &Path,
    via: Via,
) -> (Child, Option<std::thread::JoinHandle<()>>) {
    cmd.arg("load").arg("-q");
    if via == Via::File {
        cmd.arg("-i").arg(archive);
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    if via == Via::Stdin {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().expect("spawn hoist load");
    let feeder = child.stdin.take().map(|mut stdin| {
        let archive = archive.to_owned();
        std::thread::spawn(move || {
            let mut f = File::open(&archive).expect("open archive");
            // hoist may stop reading (a refused archive, a kill): not our failure.
            let _ = io::copy(&mut f, &mut stdin);
        })
    });
    (child, feeder)
}

/// Runs `hoist load` of `archive` to the end; returns its output.
pub fn run_load(cmd: Command, archive: &Path, via: Via) -> Output {
    let (child, feeder) = spawn_load(cmd, archive, via);
    let out = child.wait_with_output().expect("wait for hoist load");
    if let Some(f) = feeder {
        f.join().expect("stdin feeder");
    }
    out
}

/// Every file under `dir` (relative path → size), skipping `skip`.
pub fn tree(dir: &Path, skip: Option<&Path>) -> BTreeMap<PathBuf, u64> {
    fn walk(base: &Path, dir: &Path, skip: Option<&Path>, out: &mut BTreeMap<PathBuf, u64>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if Some(p.as_path()) == skip {
                continue;
            }
            let md = std::fs::symlink_metadata(&p).expect("stat");
            let rel = p.strip_prefix(base).expect("under base").to_owned();
            if md.is_dir() {
                out.insert(rel.join(""), 0);
                walk(base, &p, skip, out);
            } else {
                out.insert(rel, md.len());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, skip, &mut out);
    out
}

/// What a store looks like from outside: what `hoist images --format json`
/// prints and which files are under `blobs/`.
#[derive(Debug, PartialEq, Eq)]
pub struct StoreState {
    /// `hoist images --format json`.
    pub images: String,
    /// Files under `blobs/`, with their sizes.
    pub blobs: BTreeMap<PathBuf, u64>,
}

/// A store at `<scratch>/nest/a/b/store` (so that a `../../x` from the store
/// lands in the scratch directory, where it would be seen), archives in
/// `<scratch>/work`, and hoist run with `<scratch>/nest/a/b` as its cwd.
pub struct Fixture {
    /// The scratch directory, removed on drop.
    pub scratch: tempfile::TempDir,
    /// `HOIST_ROOT`.
    pub root: PathBuf,
    /// Where the test writes archives.
    pub work: PathBuf,
    /// hoist's working directory.
    pub cwd: PathBuf,
    bin: PathBuf,
}

impl Fixture {
    /// An empty store (not created until hoist first runs).
    pub fn new() -> Fixture {
        let scratch = tempfile::Builder::new()
            .prefix("hoist-fixture-")
            .tempdir()
            .expect("scratch dir");
        let cwd = scratch.path().join("nest/a/b");
        let root = cwd.join("store");
        let work = scratch.path().join("work");
        std::fs::create_dir_all(&cwd).expect("mkdir");
        std::fs::create_dir_all(&work).expect("mkdir");
        Fixture {
            scratch,
            root,
            work,
            cwd,
            bin: hoist_bin(),
        }
    }

    /// A hoist command on this store.
    pub fn command(&self) -> Command {
        let mut c = hoist_testkit::hoist_command(&self.bin, &self.root);
        c.current_dir(&self.cwd);
        c
    }

    /// Runs `hoist ARGS…`; returns the output whatever the status.
    pub fn hoist(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run hoist")
    }

    /// Runs `hoist ARGS…`, which must succeed; returns stdout.
    pub fn hoist_ok(&self, args: &[&str]) -> String {
        hoist_testkit::assert_success(&format!("hoist {}", args.join(" ")), &self.hoist(args))
    }

    /// Writes `members` as `<work>/<name>`; returns the path.
    pub fn archive(&self, name: &str, members: &[Member]) -> PathBuf {
        let p = self.work.join(name);
        write_tar(&p, members);
        p
    }

    /// `hoist load` of `archive`, which must succeed.
    pub fn load_ok(&self, archive: &Path, via: Via) -> String {
        let out = run_load(self.command(), archive, via);
        hoist_testkit::assert_success(
            &format!("hoist load {} via {via:?}", archive.display()),
            &out,
        )
    }

    /// `hoist images --format json` and the files under `blobs/`.
    pub fn state(&self) -> StoreState {
        StoreState {
            images: self.hoist_ok(&["images", "--format", "json"]),
            blobs: tree(&self.root.join("blobs"), None),
        }
    }

    /// Files left in `ingest/`.
    pub fn ingest(&self) -> BTreeMap<PathBuf, u64> {
        tree(&self.root.join("ingest"), None)
    }

    /// Every file of the scratch directory outside the store.
    pub fn outside(&self) -> BTreeMap<PathBuf, u64> {
        tree(self.scratch.path(), Some(&self.root))
    }

    /// `hoist fsck`, which must exit 0 (clean); returns its stdout.
    pub fn fsck_clean(&self, when: &str) -> String {
        let out = self.hoist(&["fsck"]);
        hoist_testkit::assert_success(&format!("hoist fsck ({when})"), &out)
    }
}

/// The sha256 of everything `r` yields.
pub fn sha256_reader(r: &mut impl Read) -> String {
    let mut d = Digester::new(hoist_oci::Algorithm::Sha256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf).expect("read");
        if n == 0 {
            return d.finish().to_string();
        }
        d.update(&buf[..n]);
    }
}
