//! `--referrers`: an image's referrers (an SBOM, and a signature of that
//! SBOM) come along with it, into docker-registry (no referrers API: the
//! `<alg>-<hex>` tag schema is kept) and `hoist serve` (referrers API),
//! and from one registry to the other, byte for byte.

use hoist_oci::{media_type, Descriptor, Digest, Reference};
use hoist_registry_client::{blocking::RegistryClient, Options};
use hoist_testkit::serve::HoistServe;
use hoist_testkit::Registry;
use hoist_transport::{
    copy, BlobBody, CopyOptions, ImageSource, NoProgress, OciDirDestination, OciDirSource,
    RawManifest, RegistryDestination, RegistrySource, TransportError,
};
use std::collections::HashMap;

const SBOM: &str = "application/vnd.example.sbom";
const SIG: &str = "application/vnd.example.signature";

/// An image, an SBOM naming it, and a signature naming the SBOM, in memory.
struct Mem {
    top: RawManifest,
    manifests: HashMap<Digest, RawManifest>,
    blobs: HashMap<Digest, Vec<u8>>,
    referrers: HashMap<Digest, Vec<Descriptor>>,
}

impl Mem {
    fn put(&mut self, b: &[u8], mt: &str) -> serde_json::Value {
        let d = Digest::sha256(b);
        self.blobs.insert(d.clone(), b.to_vec());
        serde_json::json!({ "mediaType": mt, "digest": d, "size": b.len() })
    }

    /// An artifact of `artifact_type` whose subject is `subject`.
    fn artifact(&mut self, subject: &RawManifest, artifact_type: &str, body: &[u8]) -> RawManifest {
        let config = self.put(b"{}", media_type::OCI_EMPTY);
        let layer = self.put(body, "application/octet-stream");
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": config,
            "layers": [layer],
            "subject": subject.descriptor(),
            "annotations": { "org.opencontainers.image.created": "2026-12-05T00:00:00Z" },
        });
        let raw = RawManifest::new(serde_json::to_vec(&m).unwrap(), media_type::OCI_MANIFEST);
        let mut entry = raw.descriptor();
        entry.artifact_type = Some(artifact_type.to_owned());
        self.referrers
            .entry(subject.digest.clone())
            .or_default()
            .push(entry);
        self.manifests.insert(raw.digest.clone(), raw.clone());
        raw
    }

    fn new() -> Mem {
        let mut mem = Mem {
            top: RawManifest::new(Vec::new(), ""),
            manifests: HashMap::new(),
            blobs: HashMap::new(),
            referrers: HashMap::new(),
        };
        let layer: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [Digest::sha256(&layer)]},
        })
        .to_string();
        let config = mem.put(config.as_bytes(), media_type::OCI_CONFIG);
        let layer = mem.put(&layer, media_type::OCI_LAYER_TAR);
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_MANIFEST,
            "config": config,
            "layers": [layer],
        });
        mem.top = RawManifest::new(serde_json::to_vec(&m).unwrap(), media_type::OCI_MANIFEST);
        let top = mem.top.clone();
        let sbom = mem.artifact(&top, SBOM, b"{\"spdxVersion\":\"SPDX-2.3\"}");
        mem.artifact(&sbom, SIG, b"signature bytes");
        mem
    }
}

impl ImageSource for Mem {
    fn top(&self) -> Result<RawManifest, TransportError> {
        Ok(self.top.clone())
    }
    fn manifest(&self, d: &Descriptor) -> Result<RawManifest, TransportError> {
        self.manifests
            .get(&d.digest)
            .cloned()
            .ok_or_else(|| TransportError::NoSuchImage(d.digest.to_string()))
    }
    fn blob(&self, d: &Descriptor, offset: u64) -> Result<BlobBody, TransportError> {
        Ok(BlobBody::bytes(
            self.blobs[&d.digest][offset as usize..].to_vec(),
        ))
    }
    fn referrers(&self, d: &Descriptor) -> Result<Vec<Descriptor>, TransportError> {
        Ok(self.referrers.get(&d.digest).cloned().unwrap_or_default())
    }
}

fn opts() -> Options {
    Options {
        docker_config: Some("/nonexistent/config.json".into()),
        certs_dirs: Vec::new(),
        ..Options::default()
    }
}

fn with_referrers() -> CopyOptions {
    CopyOptions {
        referrers: true,
        ..CopyOptions::default()
    }
}

/// Checks that `addr/repo` holds the image and both referrers, found
/// through the referrers API or its tag schema; returns whether the tag
/// schema was used.
fn check(mem: &Mem, addr: &str, repo: &str) -> bool {
    let client = RegistryClient::new(addr, &opts()).unwrap();
    let got = client.get_manifest(repo, "v1").unwrap();
    assert_eq!(got.bytes, mem.top.bytes);
    let mut subject = mem.top.digest.clone();
    for want in [SBOM, SIG] {
        let found = client.referrers(repo, &subject, None).unwrap();
        assert_eq!(found.len(), 1, "referrers of {subject} in {addr}/{repo}");
        assert_eq!(found[0].artifact_type.as_deref(), Some(want));
        let m = client
            .get_manifest(repo, &found[0].digest.to_string())
            .unwrap();
        assert_eq!(m.bytes, mem.manifests[&found[0].digest].bytes);
        subject = found[0].digest.clone();
    }
    let tag = format!("sha256-{}", mem.top.digest.hex());
    client.list_tags(repo, None).unwrap().contains(&tag)
}

#[test]
fn referrers_come_along_through_docker_registry_and_hoist_serve() {
    let mem = Mem::new();
    let reg = Registry::start();
    let serve_root = tempfile::tempdir().unwrap();
    let serve = HoistServe::start(&serve_root.path().join("root"), &[]);
    let reg2 = Registry::start();

    // Into docker-registry, which has no referrers API: the tag schema.
    let r1 = Reference::parse(&format!("{}/t/app:v1", reg.addr())).unwrap();
    let dst = RegistryDestination::new(&r1, &opts()).unwrap();
    copy(&mem, Box::new(dst), &[], &with_referrers(), &NoProgress).unwrap();
    assert!(
        check(&mem, reg.addr(), "t/app"),
        "docker-registry keeps the tag schema"
    );

    // docker-registry → hoist serve, which indexes referrers itself.
    let r2 = Reference::parse(&format!("{}/u/app:v1", serve.addr)).unwrap();
    let src = RegistrySource::open(&r1, &opts()).unwrap();
    let dst = RegistryDestination::new(&r2, &opts()).unwrap();
    copy(&src, Box::new(dst), &[], &with_referrers(), &NoProgress).unwrap();
    assert!(
        !check(&mem, &serve.addr, "u/app"),
        "hoist serve needs no tag schema"
    );

    // hoist serve → docker-registry again.
    let r3 = Reference::parse(&format!("{}/w/app:v1", reg2.addr())).unwrap();
    let src = RegistrySource::open(&r2, &opts()).unwrap();
    let dst = RegistryDestination::new(&r3, &opts()).unwrap();
    copy(&src, Box::new(dst), &[], &with_referrers(), &NoProgress).unwrap();
    assert!(check(&mem, reg2.addr(), "w/app"));
}

#[test]
fn without_the_flag_referrers_stay_behind() {
    let mem = Mem::new();
    let reg = Registry::start();
    let r = Reference::parse(&format!("{}/t/app:v1", reg.addr())).unwrap();
    let dst = RegistryDestination::new(&r, &opts()).unwrap();
    copy(
        &mem,
        Box::new(dst),
        &[],
        &CopyOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let client = RegistryClient::new(reg.addr(), &opts()).unwrap();
    assert!(client
        .referrers("t/app", &mem.top.digest, None)
        .unwrap()
        .is_empty());
}

#[test]
fn referrers_go_through_an_oci_layout() {
    let mem = Mem::new();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("layout");
    let dst = OciDirDestination::new(&dir).unwrap();
    copy(
        &mem,
        Box::new(dst),
        &["v1".to_owned()],
        &with_referrers(),
        &NoProgress,
    )
    .unwrap();
    // The image tagged, its two referrers listed untagged.
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let entries = idx["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{idx}");
    let types: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["artifactType"].as_str())
        .collect();
    assert_eq!(types, [SBOM, SIG]);

    let reg = Registry::start();
    let r = Reference::parse(&format!("{}/t/app:v1", reg.addr())).unwrap();
    let src = OciDirSource::open(&dir, Some("v1")).unwrap();
    let dst = RegistryDestination::new(&r, &opts()).unwrap();
    copy(&src, Box::new(dst), &[], &with_referrers(), &NoProgress).unwrap();
    assert!(check(&mem, reg.addr(), "t/app"));
}
