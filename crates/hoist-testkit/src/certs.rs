//! A throw-away certificate authority and a server certificate for
//! `127.0.0.1`/`localhost`, made with the real `openssl` CLI.

use crate::{assert_success, require_tool};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// PEM files of a test CA and a server certificate it signed.
pub struct TestCerts {
    /// The CA certificate (`ca.crt`), what clients trust.
    pub ca: PathBuf,
    /// The server certificate chain (`server.crt`: leaf, then the CA).
    pub cert: PathBuf,
    /// The server's PKCS#8 private key (`server.key`).
    pub key: PathBuf,
    /// A second key, matching neither certificate (`other.key`).
    pub other_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new(require_tool("openssl"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert_success(&format!("openssl {}", args.join(" ")), &out);
}

impl TestCerts {
    /// Makes an EC P-256 CA and an RSA-2048 server key and certificate
    /// valid for `127.0.0.1`, `::1` and `localhost`, in `dir`.
    pub fn generate(dir: &Path) -> TestCerts {
        std::fs::create_dir_all(dir).expect("create cert dir");
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        openssl(
            dir,
            &[
                &[
                    "req",
                    "-x509",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=hoist test CA",
                ][..],
                &ec[..],
                &["-keyout", "ca.key", "-out", "ca.crt"][..],
            ]
            .concat(),
        );
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        );
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n",
        )
        .expect("write ext.cnf");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
                "-out",
                "leaf.crt",
            ],
        );
        openssl(
            dir,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                "other.key",
            ],
        );
        let chain = [
            std::fs::read(dir.join("leaf.crt")).expect("read leaf.crt"),
            std::fs::read(dir.join("ca.crt")).expect("read ca.crt"),
        ]
        .concat();
        std::fs::write(dir.join("server.crt"), chain).expect("write server.crt");
        TestCerts {
            ca: dir.join("ca.crt"),
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
            other_key: dir.join("other.key"),
        }
    }
}
