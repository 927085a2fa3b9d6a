//! `hoist copy --referrers` between OCI layouts, with no peer: an image's
//! referrer (listed untagged in index.json, as oras writes it) comes along,
//! and follows its subject to a new digest when the copy recompresses.

#[path = "common/ocilayout.rs"]
mod ocilayout;

use hoist_testkit::*;
use std::path::Path;

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

fn index(dir: &Path) -> Vec<serde_json::Value> {
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    idx["manifests"].as_array().unwrap().clone()
}

fn blob(dir: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(
        dir.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap()
}

/// Adds to the layout an SBOM whose subject is the manifest `subject`.
fn add_sbom(dir: &Path, subject: &str) {
    let put = |b: &[u8]| -> String {
        let d = hoist_oci::Digest::sha256(b);
        std::fs::write(dir.join("blobs/sha256").join(d.hex()), b).unwrap();
        d.to_string()
    };
    let subject_size = blob(dir, subject).len();
    let sbom = br#"{"spdxVersion":"SPDX-2.3"}"#;
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/spdx+json",
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": put(b"{}"), "size": 2 },
        "layers": [{ "mediaType": "application/spdx+json", "digest": put(sbom), "size": sbom.len() }],
        "subject": { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": subject_size },
    }))
    .unwrap();
    let md = put(&m);
    let mut idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    idx["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md, "size": m.len(), "artifactType": "application/spdx+json",
        }));
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&idx).unwrap()).unwrap();
}

/// The subject digest of the referrer listed in `dir`'s index.json, if any.
fn referrer_subject(dir: &Path) -> Option<String> {
    let e = index(dir)
        .into_iter()
        .find(|e| e["artifactType"] == "application/spdx+json")?;
    let m: serde_json::Value =
        serde_json::from_slice(&blob(dir, e["digest"].as_str().unwrap())).unwrap();
    Some(m["subject"]["digest"].as_str().unwrap().to_owned())
}

#[test]
fn a_referrer_comes_along_and_follows_its_recompressed_subject() {
    let s = scratch_dir();
    let src = s.path().join("src");
    let built = ocilayout::write_layout(&src, "v1", &["linux/amd64"], 4096, serde_json::json!([]));
    add_sbom(&src, &built.top);
    let store = TempStore::with_bin(hoist_bin!());

    let plain = s.path().join("plain");
    store.hoist_ok([
        "copy",
        "-q",
        &format!("oci:{}:v1", p(&src)),
        &format!("oci:{}:v1", p(&plain)),
    ]);
    assert_eq!(
        referrer_subject(&plain),
        None,
        "no referrers without --referrers"
    );

    let same = s.path().join("same");
    store.hoist_ok([
        "copy",
        "-q",
        "--referrers",
        &format!("oci:{}:v1", p(&src)),
        &format!("oci:{}:v1", p(&same)),
    ]);
    assert_eq!(referrer_subject(&same).as_deref(), Some(built.top.as_str()));

    let zstd = s.path().join("zstd");
    store.hoist_ok([
        "copy",
        "-q",
        "--referrers",
        "--dest-compress-format",
        "zstd",
        &format!("oci:{}:v1", p(&src)),
        &format!("oci:{}:v1", p(&zstd)),
    ]);
    let top = index(&zstd)
        .into_iter()
        .find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == "v1")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(top, built.top, "recompressed layers make a new manifest");
    assert_eq!(referrer_subject(&zstd), Some(top));
}
