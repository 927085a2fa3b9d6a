//! `hoist serve --tls-cert/--tls-key` against real peers: skopeo pushes to
//! and pulls from it over HTTPS, trusting a test CA made by `openssl`; and
//! bad certificate or key files stop it at startup with the file named.

#[path = "common/ocilayout.rs"]
mod ocilayout;

use hoist_testkit::certs::TestCerts;
use hoist_testkit::serve::HoistServe;
use hoist_testkit::{assert_failure, assert_success, hoist_bin, scratch_dir, tool};
use std::path::Path;

fn skopeo(args: &[&str]) -> std::process::Output {
    tool("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("run skopeo")
}

/// A directory holding only `ca.crt`, as skopeo's `--*-cert-dir` wants it.
fn cert_dir(certs: &TestCerts, dir: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(&certs.ca, dir.join("ca.crt")).unwrap();
    dir.to_str().unwrap().to_owned()
}

#[test]
fn skopeo_copies_to_and_from_hoist_serve_over_tls() {
    let scratch = scratch_dir();
    let certs = TestCerts::generate(&scratch.path().join("certs"));
    let ca_dir = cert_dir(&certs, &scratch.path().join("trust"));
    let s = HoistServe::start(
        &scratch.path().join("root"),
        &[
            "--tls-cert",
            certs.cert.to_str().unwrap(),
            "--tls-key",
            certs.key.to_str().unwrap(),
        ],
    );
    assert!(s.log().contains("listening on https://"), "{}", s.log());
    let src = scratch.path().join("src");
    let built = ocilayout::write_layout(
        &src,
        "v1",
        &["linux/amd64", "linux/arm64"],
        4096,
        serde_json::json!([{ "created_by": "made by hand" }]),
    );
    let dest = format!("docker://{}/tls/img:v1", s.addr);

    // Without the CA, skopeo refuses the server's certificate.
    let out = skopeo(&["copy", "--all", &format!("oci:{}:v1", src.display()), &dest]);
    let err = assert_failure("skopeo copy without the CA", &out);
    assert!(
        err.contains("certificate") || err.contains("x509"),
        "not a certificate error: {err}"
    );

    // With it, the copy goes both ways and the digests stay put.
    assert_success(
        "skopeo copy to hoist serve over TLS",
        &skopeo(&[
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-cert-dir",
            &ca_dir,
            &format!("oci:{}:v1", src.display()),
            &dest,
        ]),
    );
    let back = scratch.path().join("back");
    assert_success(
        "skopeo copy from hoist serve over TLS",
        &skopeo(&[
            "copy",
            "--all",
            "--preserve-digests",
            "--src-cert-dir",
            &ca_dir,
            &dest,
            &format!("oci:{}:v1", back.display()),
        ]),
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(back.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], built.top.as_str());
    for img in &built.images {
        for (d, _) in &img.layers {
            let p = back
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:"));
            assert!(p.is_file(), "layer {d} of {} not pulled back", img.platform);
        }
    }
    let raw = skopeo(&["inspect", "--raw", "--cert-dir", &ca_dir, &dest]);
    let raw = assert_success("skopeo inspect over TLS", &raw);
    assert!(
        raw.contains("application/vnd.oci.image.index.v1+json"),
        "{raw}"
    );
    assert!(
        s.stop(),
        "hoist serve over TLS did not stop cleanly on SIGTERM"
    );
}

#[test]
fn bad_tls_files_stop_serve_at_startup_naming_the_file() {
    let scratch = scratch_dir();
    let certs = TestCerts::generate(&scratch.path().join("certs"));
    let root = scratch.path().join("root");
    let serve = |cert: &Path, key: &Path| {
        std::process::Command::new(hoist_bin())
            .args(["serve", "--addr", "127.0.0.1:0", "--root"])
            .arg(&root)
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let missing = scratch.path().join("missing.crt");
    let err = assert_failure("serve with a missing cert", &serve(&missing, &certs.key));
    assert!(
        err.contains("missing.crt") && err.contains("certificate"),
        "{err}"
    );
    let err = assert_failure("serve with the key as cert", &serve(&certs.key, &certs.key));
    assert!(
        err.contains("server.key") && err.contains("BEGIN CERTIFICATE"),
        "{err}"
    );
    let err = assert_failure(
        "serve with a foreign key",
        &serve(&certs.cert, &certs.other_key),
    );
    assert!(err.contains("other.key"), "{err}");
    // --tls-cert alone is refused by the argument parser.
    let out = std::process::Command::new(hoist_bin())
        .args(["serve", "--addr", "127.0.0.1:0", "--root"])
        .arg(&root)
        .arg("--tls-cert")
        .arg(&certs.cert)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = assert_failure("serve with --tls-cert alone", &out);
    assert!(err.contains("--tls-key"), "{err}");
}

/// One distribution-style config.yml turns on TLS (`http.tls`), basic auth
/// (`auth.htpasswd`, a file written by Apache's `htpasswd -B`) and `/metrics`
/// on the debug address (`http.debug.prometheus`): skopeo pushes and pulls
/// with credentials over HTTPS, an anonymous client is challenged, and the
/// metrics address answers while the main one no longer serves `/metrics`.
#[test]
fn a_config_file_turns_on_tls_basic_auth_and_the_metrics_address() {
    let scratch = scratch_dir();
    let certs = TestCerts::generate(&scratch.path().join("certs"));
    let ca_dir = cert_dir(&certs, &scratch.path().join("trust"));
    let users = scratch.path().join("users");
    let out = tool("htpasswd")
        .args(["-B", "-b", "-c"])
        .arg(&users)
        .args(["ci", "s3cret"])
        .output()
        .unwrap();
    assert_success("htpasswd -B", &out);
    let maddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let config = scratch.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /unused\n\
             http:\n  addr: :5000\n  tls:\n    certificate: {}\n    key: {}\n  debug:\n    \
             addr: {maddr}\n    prometheus:\n      enabled: true\n      path: /metrics\n\
             auth:\n  htpasswd:\n    realm: ci\n    path: {}\n",
            certs.cert.display(),
            certs.key.display(),
            users.display()
        ),
    )
    .unwrap();
    // --root and --addr on the command line win over the file's.
    let s = HoistServe::start(
        &scratch.path().join("root"),
        &["--config", config.to_str().unwrap()],
    );
    assert!(s.log().contains("listening on https://"), "{}", s.log());
    let src = scratch.path().join("src");
    ocilayout::write_layout(
        &src,
        "v1",
        &["linux/amd64"],
        1024,
        serde_json::json!([{ "created_by": "configured" }]),
    );
    let dest = format!("docker://{}/conf/img:v1", s.addr);
    let out = skopeo(&[
        "copy",
        "--dest-cert-dir",
        &ca_dir,
        &format!("oci:{}:v1", src.display()),
        &dest,
    ]);
    let err = assert_failure("skopeo copy without credentials", &out);
    assert!(err.contains("401") || err.contains("nauthorized"), "{err}");
    let out = skopeo(&[
        "copy",
        "--dest-cert-dir",
        &ca_dir,
        "--dest-creds",
        "ci:s3cret",
        &format!("oci:{}:v1", src.display()),
        &dest,
    ]);
    assert_success("skopeo copy with credentials over TLS", &out);
    let out = skopeo(&[
        "inspect",
        "--cert-dir",
        &ca_dir,
        "--creds",
        "ci:s3cret",
        &dest,
    ]);
    assert_success("skopeo inspect", &out);

    let curl = |url: &str, extra: &[&str]| {
        let out = tool("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&certs.ca)
            .args(extra)
            .arg(url)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(curl(&format!("https://{}/v2/", s.addr), &[]), "401");
    let creds = ["-u", "ci:s3cret"];
    assert_eq!(curl(&format!("https://{}/v2/", s.addr), &creds), "200");
    assert_eq!(curl(&format!("https://{}/metrics", s.addr), &creds), "404");
    assert_eq!(curl(&format!("http://{maddr}/metrics"), &[]), "200");
    assert!(s.stop());
}
