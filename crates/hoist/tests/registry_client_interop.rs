//! hoist's registry client and its commands (login, logout, list-tags,
//! catalog, digest, inspect docker://, delete) against the real
//! `docker-registry` (plain, htpasswd, token) with hoist serve as the token
//! issuer. No dockerd needed.

use bytes::Bytes;
use hoist_oci::{media_type, Descriptor, Digest};
use hoist_registry_client::blocking::RegistryClient;
use hoist_registry_client::{Credentials, Options, Partial, UploadBody};
use hoist_testkit::serve::HoistServe;
use hoist_testkit::{
    assert_failure, assert_success, issuer_key, require_tool, scratch_dir, Registry,
};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Client options for tests: a private config.json, small ranges.
fn opts(config: &Path) -> Options {
    Options {
        docker_config: Some(config.join("config.json")),
        certs_dirs: Vec::new(),
        range_size: 256 << 10,
        ..Options::default()
    }
}

struct Image {
    config: Vec<u8>,
    layer: Vec<u8>,
    manifest: Vec<u8>,
}

impl Image {
    fn new(layer_len: usize, salt: u8) -> Image {
        let layer: Vec<u8> = (0..layer_len)
            .map(|i| (i * 31 % 253) as u8 ^ salt)
            .collect();
        Image::with_layer(layer)
    }

    /// An image whose layer really is gzip (peers look inside).
    fn gzipped(salt: u8) -> Image {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let raw: Vec<u8> = (0..400_000u32).map(|i| (i % 97) as u8 ^ salt).collect();
        gz.write_all(&raw).unwrap();
        Image::with_layer(gz.finish().unwrap())
    }

    fn with_layer(layer: Vec<u8>) -> Image {
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
            "config": {"Env": ["PATH=/bin"], "Labels": {"org.example": "yes"}},
            "rootfs": {"type": "layers", "diff_ids": [Digest::sha256(&layer)]},
        })
        .to_string()
        .into_bytes();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::DOCKER_MANIFEST,
            "config": {"mediaType": media_type::DOCKER_CONFIG, "digest": Digest::sha256(&config), "size": config.len()},
            "layers": [{"mediaType": media_type::DOCKER_LAYER_GZIP, "digest": Digest::sha256(&layer), "size": layer.len()}],
        })
        .to_string()
        .into_bytes();
        Image {
            config,
            layer,
            manifest,
        }
    }
    fn config_desc(&self) -> Descriptor {
        Descriptor::new(
            media_type::DOCKER_CONFIG,
            Digest::sha256(&self.config),
            self.config.len() as u64,
        )
    }
    fn layer_desc(&self) -> Descriptor {
        Descriptor::new(
            media_type::DOCKER_LAYER_GZIP,
            Digest::sha256(&self.layer),
            self.layer.len() as u64,
        )
    }
    fn push(&self, c: &RegistryClient, repo: &str, tag: &str) {
        c.push_blob(
            repo,
            &self.config_desc(),
            UploadBody::Bytes(Bytes::from(self.config.clone())),
            &|_| {},
        )
        .unwrap();
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, &self.layer).unwrap();
        let body = UploadBody::File {
            file: f,
            offset: 0,
            len: self.layer.len() as u64,
        };
        c.push_blob_chunked(repo, &self.layer_desc(), body, 300_000)
            .unwrap();
        c.put_manifest(repo, tag, &self.manifest, media_type::DOCKER_MANIFEST)
            .unwrap();
    }
    fn pull_layer(&self, c: &RegistryClient, repo: &str) {
        let f = tempfile::tempfile().unwrap();
        let mut p = Partial::new(hoist_oci::Algorithm::Sha256);
        c.fetch_blob(repo, &self.layer_desc(), &f, &mut p, &|_| {})
            .unwrap();
        let mut got = vec![0u8; self.layer.len()];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut got, 0).unwrap();
        assert!(got == self.layer, "the pulled layer differs");
    }
}

/// Runs hoist with DOCKER_CONFIG=`config`.
fn hoist(config: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = Command::new(hoist_testkit::hoist_bin!());
    c.env("DOCKER_CONFIG", config)
        .env("HOIST_ROOT", config.join("store"))
        .env("HOIST_CONFIG", config.join("hoist-config.json"))
        .args(args);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = c.spawn().unwrap();
    if let (Some(s), Some(mut i)) = (stdin, child.stdin.take()) {
        std::io::Write::write_all(&mut i, s.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[test]
fn push_pull_mount_pages_and_delete_on_docker_registry() {
    let scratch = scratch_dir();
    let reg = Registry::start();
    let c = RegistryClient::new(reg.addr(), &opts(scratch.path())).unwrap();
    let img = Image::new(2 << 20, 0);
    img.push(&c, "lib/app", "v1");
    for t in ["v2", "v3", "v4"] {
        c.put_manifest("lib/app", t, &img.manifest, media_type::DOCKER_MANIFEST)
            .unwrap();
    }
    let m = c.get_manifest("lib/app", "v1").unwrap();
    assert_eq!(m.bytes, img.manifest);
    assert_eq!(m.media_type, media_type::DOCKER_MANIFEST);
    assert_eq!(c.get_manifest("lib/app", &m.digest.to_string()).unwrap(), m);
    img.pull_layer(&c, "lib/app");
    assert!(c
        .mount_blob("other/app", &img.layer_desc().digest, "lib/app")
        .unwrap());
    assert_eq!(
        c.blob_size("other/app", &img.layer_desc().digest).unwrap(),
        Some(2 << 20)
    );
    // One tag a page: every tag once (distribution 2.8 pages them unsorted).
    let mut paged = c.list_tags("lib/app", Some(1)).unwrap();
    paged.sort();
    assert_eq!(paged, ["v1", "v2", "v3", "v4"]);
    assert_eq!(c.catalog(Some(1)).unwrap(), ["lib/app", "other/app"]);
    // No referrers API in distribution 2.8: the tag schema answers (none).
    assert!(c.referrers("lib/app", &m.digest, None).unwrap().is_empty());
    let sig_bytes = serde_json::json!({
        "schemaVersion": 2, "mediaType": media_type::OCI_MANIFEST,
        "artifactType": "application/vnd.example.sig",
        "config": img.config_desc(), "layers": [],
        "subject": {"mediaType": media_type::DOCKER_MANIFEST, "digest": m.digest, "size": m.bytes.len()},
    })
    .to_string();
    let sig_digest = c
        .put_manifest(
            "lib/app",
            &Digest::sha256(sig_bytes.as_bytes()).to_string(),
            sig_bytes.as_bytes(),
            media_type::OCI_MANIFEST,
        )
        .unwrap();
    let sig = Descriptor {
        artifact_type: Some("application/vnd.example.sig".into()),
        ..Descriptor::new(media_type::OCI_MANIFEST, sig_digest, sig_bytes.len() as u64)
    };
    let fallback = serde_json::json!({
        "schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": [sig],
    })
    .to_string();
    let tag = format!("sha256-{}", m.digest.hex());
    c.put_manifest("lib/app", &tag, fallback.as_bytes(), media_type::OCI_INDEX)
        .unwrap();
    assert_eq!(c.referrers("lib/app", &m.digest, None).unwrap(), [sig]);
    assert!(c
        .referrers("lib/app", &m.digest, Some("application/other"))
        .unwrap()
        .is_empty());
    c.delete_manifest("lib/app", &Digest::sha256(fallback.as_bytes()))
        .unwrap();

    // The commands, skopeo's conventions.
    let cfg = scratch.path();
    let repo = format!("docker://{}/lib/app", reg.addr());
    let out = assert_success("hoist list-tags", &hoist(cfg, &["list-tags", &repo], None));
    let v = json(&out);
    assert_eq!(v["Repository"], format!("{}/lib/app", reg.addr()));
    assert_eq!(v["Tags"].as_array().unwrap().len(), 4, "{v}");
    let out = assert_success("hoist catalog", &hoist(cfg, &["catalog", reg.addr()], None));
    assert_eq!(out.lines().collect::<Vec<_>>(), ["lib/app", "other/app"]);
    let out = assert_success(
        "hoist digest",
        &hoist(cfg, &["digest", &format!("{repo}:v2")], None),
    );
    assert_eq!(out.trim(), m.digest.to_string());
    let out = assert_success(
        "hoist inspect docker://",
        &hoist(cfg, &["inspect", &format!("{repo}:v1")], None),
    );
    let v = json(&out);
    assert_eq!(v["Digest"], m.digest.to_string());
    assert_eq!(v["Layers"][0], img.layer_desc().digest.to_string());
    assert_eq!(v["Labels"]["org.example"], "yes");
    assert_eq!(v["Env"][0], "PATH=/bin");
    assert_eq!(v["RepoTags"].as_array().unwrap().len(), 4);
    let raw = hoist(cfg, &["inspect", "--raw", &format!("{repo}:v1")], None);
    assert_success("hoist inspect --raw", &raw);
    assert_eq!(
        raw.stdout, img.manifest,
        "--raw is not the registry's bytes"
    );
    let out = assert_success(
        "hoist inspect --config",
        &hoist(cfg, &["inspect", "--config", &format!("{repo}:v1")], None),
    );
    assert_eq!(json(&out)["architecture"], "amd64");
    // An index: inspect shows this machine's image, --raw the index itself.
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": [
            {"mediaType": media_type::DOCKER_MANIFEST, "digest": m.digest, "size": img.manifest.len(),
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": media_type::DOCKER_MANIFEST, "digest": m.digest, "size": img.manifest.len(),
             "platform": {"os": "linux", "architecture": "arm64"}},
        ],
    })
    .to_string()
    .into_bytes();
    let idx = c
        .put_manifest("lib/app", "multi", &index, media_type::OCI_INDEX)
        .unwrap();
    let multi = format!("{repo}:multi");
    let out = assert_success("inspect an index", &hoist(cfg, &["inspect", &multi], None));
    let v = json(&out);
    assert_eq!(v["Digest"], idx.to_string());
    assert_eq!(v["Layers"][0], img.layer_desc().digest.to_string());
    let raw = hoist(cfg, &["inspect", "--raw", &multi], None);
    assert_success("inspect --raw of an index", &raw);
    assert_eq!(raw.stdout, index);

    assert_success(
        "hoist delete",
        &hoist(cfg, &["delete", &format!("{repo}:v1")], None),
    );
    let e = c
        .get_manifest("lib/app", &m.digest.to_string())
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
    let err = assert_failure(
        "hoist digest of a deleted tag",
        &hoist(cfg, &["digest", &format!("{repo}:v1")], None),
    );
    assert!(
        err.contains("no such manifest") || err.contains("404"),
        "{err}"
    );
}

#[test]
fn login_logout_and_basic_auth_on_docker_registry() {
    let scratch = scratch_dir();
    let cfg = scratch.path();
    let reg = Registry::start_with_htpasswd("alice", "alice-pw");
    let repo = format!("docker://{}/alice/app", reg.addr());
    // Anonymous: refused with the registry's code and the fix.
    let err = assert_failure(
        "list-tags without login",
        &hoist(cfg, &["list-tags", &repo], None),
    );
    assert!(err.contains("401") && err.contains("hoist login"), "{err}");
    let err = assert_failure(
        "login with a wrong password",
        &hoist(
            cfg,
            &["login", "-u", "alice", "--password-stdin", reg.addr()],
            Some("nope\n"),
        ),
    );
    assert!(err.contains("login to") && err.contains("401"), "{err}");
    assert!(
        !cfg.join("config.json").exists(),
        "a failed login wrote credentials"
    );
    let out = assert_success(
        "hoist login",
        &hoist(
            cfg,
            &["login", "-u", "alice", "--password-stdin", reg.addr()],
            Some("alice-pw\n"),
        ),
    );
    assert_eq!(out.trim(), "Login Succeeded");
    let written = json(&std::fs::read_to_string(cfg.join("config.json")).unwrap());
    assert_eq!(
        written["auths"][reg.addr()]["auth"],
        "YWxpY2U6YWxpY2UtcHc=",
        "not Docker's base64 user:password"
    );
    // The client reads what login wrote.
    let c = RegistryClient::new(reg.addr(), &opts(cfg)).unwrap();
    let img = Image::new(100_000, 1);
    img.push(&c, "alice/app", "v1");
    img.pull_layer(&c, "alice/app");
    let out = assert_success(
        "list-tags after login",
        &hoist(cfg, &["list-tags", &repo], None),
    );
    assert_eq!(json(&out)["Tags"], serde_json::json!(["v1"]));
    let out = assert_success("hoist logout", &hoist(cfg, &["logout", reg.addr()], None));
    assert!(out.contains("Removing login credentials"), "{out}");
    assert_failure(
        "list-tags after logout",
        &hoist(cfg, &["list-tags", &repo], None),
    );
    // --creds instead of config.json.
    let out = hoist(
        cfg,
        &["list-tags", "--creds", "alice:alice-pw", &repo],
        None,
    );
    assert_success("list-tags --creds", &out);
}

#[test]
fn bearer_tokens_for_pull_push_and_mount_on_docker_registry() {
    let scratch = scratch_dir();
    let dir = scratch.path();
    let htpasswd = dir.join("htpasswd");
    let out = Command::new(require_tool("htpasswd"))
        .args(["-Bbc"])
        .arg(&htpasswd)
        .args(["alice", "alice-pw"])
        .output()
        .unwrap();
    assert_success("htpasswd", &out);
    let (key, crt) = issuer_key(dir);
    // hoist serve as the token issuer, docker-registry trusting it.
    let issuer = HoistServe::start_with(&dir.join("issuer.log"), |cmd, addr| {
        cmd.arg("--root").arg(dir.join("issuer-root"));
        cmd.args([
            "--token-realm",
            &format!("http://{addr}/token"),
            "--token-service",
            "hoist-test",
        ]);
        cmd.args([
            "--token-issuer",
            "hoist-test-issuer",
            "--token-rootcertbundle",
        ])
        .arg(&crt);
        cmd.arg("--token-key")
            .arg(&key)
            .arg("--htpasswd")
            .arg(&htpasswd);
    });
    let reg = Registry::start_with_auth_config(&format!(
        "  token:\n    realm: http://{}/token\n    service: hoist-test\n    issuer: hoist-test-issuer\n    rootcertbundle: {}\n",
        issuer.addr,
        crt.display()
    ));
    let o = Options {
        credentials: Some(Credentials::new("alice", "alice-pw")),
        ..opts(dir)
    };
    let c = RegistryClient::new(reg.addr(), &o).unwrap();
    let img = Image::new(600_000, 2);
    img.push(&c, "team/a", "v1");
    img.pull_layer(&c, "team/a");
    // A mount needs one token for two repositories (push on b, pull on a).
    assert!(c
        .mount_blob("team/b", &img.layer_desc().digest, "team/a")
        .unwrap());
    assert_eq!(c.list_tags("team/a", None).unwrap(), ["v1"]);
    // Wrong credentials: the token server's refusal, named.
    let bad = Options {
        credentials: Some(Credentials::new("alice", "wrong")),
        ..opts(dir)
    };
    let e = RegistryClient::new(reg.addr(), &bad)
        .unwrap()
        .list_tags("team/a", None)
        .unwrap_err();
    let t = e.to_string();
    assert!(t.contains("token server") && t.contains("401"), "{t}");
    // Login through the token flow writes config.json.
    let out = assert_success(
        "hoist login (token)",
        &hoist(
            dir,
            &["login", "-u", "alice", "-p", "alice-pw", reg.addr()],
            None,
        ),
    );
    assert!(out.contains("Login Succeeded"), "{out}");
    let out = assert_success(
        "hoist digest (token)",
        &hoist(
            dir,
            &["digest", &format!("docker://{}/team/a:v1", reg.addr())],
            None,
        ),
    );
    assert_eq!(out.trim(), Digest::sha256(&img.manifest).to_string());
}

/// HTTPS with a CA from Docker's `certs.d/HOST/ca.crt`: trusted with it,
/// refused (with the TLS reason) without it, accepted with --tls-verify=false.
#[test]
fn tls_with_a_certs_d_ca() {
    let scratch = scratch_dir();
    let dir = scratch.path();
    let certs = hoist_testkit::certs::TestCerts::generate(&dir.join("certs"));
    let s = HoistServe::start(
        &dir.join("root"),
        &[
            "--tls-cert",
            certs.cert.to_str().unwrap(),
            "--tls-key",
            certs.key.to_str().unwrap(),
        ],
    );
    let certs_d = dir.join("certs.d");
    let o = |with_ca: bool, verify: bool| Options {
        certs_dirs: if with_ca {
            vec![certs_d.clone()]
        } else {
            Vec::new()
        },
        tls_verify: verify,
        ..opts(dir)
    };
    let e = RegistryClient::new(&s.addr, &o(false, true))
        .unwrap()
        .ping()
        .unwrap_err();
    let t = e.to_string();
    assert!(
        t.contains(&format!("https://{}", s.addr)) && t.to_lowercase().contains("certificate"),
        "{t}"
    );
    std::fs::create_dir_all(certs_d.join(&s.addr)).unwrap();
    std::fs::copy(&certs.ca, certs_d.join(&s.addr).join("ca.crt")).unwrap();
    let c = RegistryClient::new(&s.addr, &o(true, true)).unwrap();
    c.ping().unwrap();
    let img = Image::new(10_000, 3);
    img.push(&c, "tls/app", "v1");
    assert_eq!(c.get_manifest("tls/app", "v1").unwrap().bytes, img.manifest);
    RegistryClient::new(&s.addr, &o(false, false))
        .unwrap()
        .ping()
        .unwrap();
    // The CLI: refused, then trusted as an insecure registry of hoist's config file.
    let repo = format!("docker://{}/tls/app", s.addr);
    let err = assert_failure(
        "list-tags over untrusted TLS",
        &hoist(dir, &["list-tags", &repo], None),
    );
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    std::fs::write(
        dir.join("hoist-config.json"),
        serde_json::json!({ "insecure-registries": [s.addr] }).to_string(),
    )
    .unwrap();
    let out = assert_success(
        "list-tags, insecure registry",
        &hoist(dir, &["list-tags", &repo], None),
    );
    assert_eq!(json(&out)["Tags"], serde_json::json!(["v1"]));
}

/// What hoist pushes skopeo copies, and what skopeo pushes hoist reads,
/// byte for byte (skopeo, a real peer, between the two).
#[test]
fn skopeo_reads_what_hoist_pushed_and_hoist_reads_what_skopeo_pushed() {
    let scratch = scratch_dir();
    let reg = Registry::start();
    let c = RegistryClient::new(reg.addr(), &opts(scratch.path())).unwrap();
    let img = Image::gzipped(4);
    img.push(&c, "from/hoist", "v1");
    let out = Command::new(require_tool("skopeo"))
        .args([
            "--insecure-policy",
            "copy",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
        ])
        .arg(format!("docker://{}/from/hoist:v1", reg.addr()))
        .arg(format!("docker://{}/from/skopeo:v1", reg.addr()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_success("skopeo copy", &out);
    let m = c.get_manifest("from/skopeo", "v1").unwrap();
    assert_eq!(m.bytes, img.manifest, "skopeo changed the manifest");
    img.pull_layer(&c, "from/skopeo");
    let cfg = scratch.path();
    let out = assert_success(
        "hoist digest of skopeo's push",
        &hoist(
            cfg,
            &["digest", &format!("docker://{}/from/skopeo:v1", reg.addr())],
            None,
        ),
    );
    assert_eq!(out.trim(), Digest::sha256(&img.manifest).to_string());
}
