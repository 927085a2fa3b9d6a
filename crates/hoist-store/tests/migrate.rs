//! A store written before the index had a schema version opens with today's
//! code and keeps every image, tag and layer.
//!
//! The fixture is built here with the exact SQL and rows the first hoist
//! wrote (its `index.rs`, which had no `user_version`), never through the
//! store's own code: a fixture made by the code under test would change with
//! it and prove nothing.

use hoist_oci::{chain_ids, Digest};
use hoist_store::{Store, TagTarget, SCHEMA_VERSION};
use std::path::Path;

/// `index.rs`'s `SCHEMA` as hoist shipped it before schema versions.
const V1_SQL: &str = "
CREATE TABLE IF NOT EXISTS images(
  id TEXT PRIMARY KEY,
  manifest TEXT NOT NULL,
  manifest_media_type TEXT NOT NULL,
  config_size INTEGER NOT NULL,
  created TEXT,
  added INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS layers(
  chain_id TEXT PRIMARY KEY,
  diff_id TEXT NOT NULL,
  parent TEXT,
  size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS image_layers(
  image TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  chain_id TEXT NOT NULL REFERENCES layers(chain_id),
  blob TEXT NOT NULL,
  media_type TEXT NOT NULL,
  blob_size INTEGER NOT NULL,
  PRIMARY KEY(image, position)
);
CREATE INDEX IF NOT EXISTS image_layers_chain ON image_layers(chain_id);
CREATE TABLE IF NOT EXISTS tags(
  name TEXT PRIMARY KEY,
  image TEXT NOT NULL REFERENCES images(id),
  updated INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tags_image ON tags(image);
";

const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// One v1 image as the fixture holds it.
struct Fixture {
    id: Digest,
    manifest: Digest,
    layers: Vec<Digest>,
    tags: Vec<&'static str>,
}

fn put_blob(root: &Path, bytes: &[u8]) -> Digest {
    let d = Digest::sha256(bytes);
    std::fs::write(root.join("blobs/sha256").join(d.hex()), bytes).unwrap();
    d
}

/// Writes an image's blobs (plain-tar layers, so diffID = digest) and its v1 rows.
fn v1_image(
    root: &Path,
    conn: &rusqlite::Connection,
    layers: &[&[u8]],
    created: &str,
    tags: &[&'static str],
) -> Fixture {
    let diffs: Vec<Digest> = layers.iter().map(|l| put_blob(root, l)).collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": created,
        "rootfs": {"type": "layers", "diff_ids": diffs.iter().map(|d| d.to_string()).collect::<Vec<_>>()},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let id = put_blob(root, &config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": id.to_string(), "size": config.len()},
        "layers": layers.iter().zip(&diffs).map(|(l, d)| serde_json::json!({"mediaType": LAYER_TAR, "digest": d.to_string(), "size": l.len()})).collect::<Vec<_>>(),
    });
    let manifest = put_blob(root, &serde_json::to_vec(&manifest).unwrap());
    conn.execute(
        "INSERT INTO images(id, manifest, manifest_media_type, config_size, created, added) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
        rusqlite::params![id.to_string(), manifest.to_string(), "application/vnd.oci.image.manifest.v1+json", config.len() as i64, created, 1_700_000_000i64],
    )
    .unwrap();
    let chains = chain_ids(&diffs);
    for (i, (l, c)) in layers.iter().zip(&chains).enumerate() {
        conn.execute(
            "INSERT OR IGNORE INTO layers(chain_id, diff_id, parent, size) VALUES(?1, ?2, ?3, ?4)",
            rusqlite::params![
                c.to_string(),
                diffs[i].to_string(),
                i.checked_sub(1).map(|p| chains[p].to_string()),
                l.len() as i64
            ],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO image_layers(image, position, chain_id, blob, media_type, blob_size) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
            rusqlite::params![id.to_string(), i as i64, c.to_string(), diffs[i].to_string(), LAYER_TAR, l.len() as i64],
        )
        .unwrap();
    }
    for t in tags {
        conn.execute(
            "INSERT INTO tags(name, image, updated) VALUES(?1, ?2, ?3)",
            rusqlite::params![t, id.to_string(), 1_700_000_000i64],
        )
        .unwrap();
    }
    Fixture {
        id,
        manifest,
        layers: diffs,
        tags: tags.to_vec(),
    }
}

/// A v1 store: two images sharing a base layer, one with two tags, one dangling image.
fn v1_store(root: &Path) -> Vec<Fixture> {
    for d in ["blobs/sha256", "blobs/sha512", "ingest"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let conn = rusqlite::Connection::open(root.join("index.db")).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute_batch(V1_SQL).unwrap();
    let base: &[u8] = b"base layer bytes";
    vec![
        v1_image(
            root,
            &conn,
            &[base, b"app layer"],
            "2024-01-01T00:00:00Z",
            &["docker.io/library/app:latest", "docker.io/library/app:v1"],
        ),
        v1_image(
            root,
            &conn,
            &[base, b"tool layer"],
            "2024-02-01T00:00:00Z",
            &["example.com/team/tool:1.0"],
        ),
        v1_image(root, &conn, &[b"lonely"], "2024-03-01T00:00:00Z", &[]),
    ]
}

#[test]
fn store_written_before_schema_versions_opens_and_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = v1_store(dir.path());
    let store = Store::open(dir.path()).unwrap();
    let version: u32 = rusqlite::Connection::open(dir.path().join("index.db"))
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);

    assert_eq!(store.index().images().unwrap().len(), fixtures.len());
    for f in &fixtures {
        let img = store.index().image(&f.id).unwrap().expect("image kept");
        assert_eq!(img.manifest, f.manifest);
        let blobs: Vec<Digest> = img.layers.iter().map(|l| l.blob.clone()).collect();
        assert_eq!(blobs, f.layers);
        let mut tags: Vec<String> = f.tags.iter().map(|t| t.to_string()).collect();
        tags.sort();
        assert_eq!(img.tags, tags);
        for t in &f.tags {
            assert_eq!(store.index().tag(t).unwrap(), Some(f.id.clone()));
            assert_eq!(
                store.index().tag_target(t).unwrap(),
                Some(TagTarget::Manifest {
                    digest: f.manifest.clone(),
                    image: f.id.clone()
                })
            );
        }
        assert_eq!(img.manifests.len(), 1);
        assert_eq!(img.manifests[0].layers, img.layers);
        for c in chain_ids(&f.layers) {
            assert!(store.index().layer(&c).unwrap().is_some(), "layer {c} kept");
        }
    }
    let report = store.fsck().unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert!(report.unreferenced_blobs.is_empty());
}

#[test]
fn migrated_store_opens_again_without_change() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = v1_store(dir.path());
    drop(Store::open(dir.path()).unwrap());
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.index().images().unwrap().len(), fixtures.len());
    assert_eq!(store.index().tags().unwrap().len(), 3);
}

#[test]
fn index_from_a_newer_hoist_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    let conn = rusqlite::Connection::open(dir.path().join("index.db")).unwrap();
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(conn);
    let err = Store::open(dir.path()).err().expect("refused");
    assert!(err.to_string().contains("upgrade hoist"), "{err}");
}
