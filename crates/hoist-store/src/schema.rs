//! The index's schema version (`PRAGMA user_version`) and its migrations.
//!
//! Version 1 is the schema hoist wrote before versions existed (its
//! `user_version` is 0, but its tables are there). Each migration takes the
//! schema one version up; all pending ones run on open in one `IMMEDIATE`
//! transaction, so two processes opening an old store at once upgrade it once,
//! and a crash mid-way leaves the old version intact.

use crate::StoreError;
use rusqlite::{Connection, TransactionBehavior};
use std::path::Path;

/// The schema hoist wrote before the index had a version. Kept verbatim: it is
/// the starting point of every migration, and a new store is created by
/// running all of them.
pub(crate) const V1: &str = "
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

/// Version 2: manifests and indexes as themselves. An image (config) can
/// have several manifests (the same config with gzip or zstd layers), each
/// with its own layer blobs; an index lists its children and the platforms
/// they are for; a tag names a manifest or an index. `images.manifest` and
/// `image_layers`' blob columns stay: they are the image's first manifest,
/// what `save` writes when nothing else is asked for.
const V2: &str = "
CREATE TABLE manifests(
  digest TEXT PRIMARY KEY,
  media_type TEXT NOT NULL,
  image TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  platform TEXT,
  added INTEGER NOT NULL
);
CREATE INDEX manifests_image ON manifests(image);
CREATE TABLE manifest_layers(
  manifest TEXT NOT NULL REFERENCES manifests(digest) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  blob TEXT NOT NULL,
  media_type TEXT NOT NULL,
  blob_size INTEGER NOT NULL,
  PRIMARY KEY(manifest, position)
);
CREATE INDEX manifest_layers_blob ON manifest_layers(blob);
CREATE TABLE indexes(
  digest TEXT PRIMARY KEY,
  media_type TEXT NOT NULL,
  added INTEGER NOT NULL
);
CREATE TABLE index_children(
  idx TEXT NOT NULL REFERENCES indexes(digest) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  digest TEXT NOT NULL,
  media_type TEXT NOT NULL,
  size INTEGER NOT NULL,
  platform TEXT,
  PRIMARY KEY(idx, position)
);
CREATE INDEX index_children_digest ON index_children(digest);
INSERT INTO manifests(digest, media_type, image, platform, added)
  SELECT manifest, manifest_media_type, id, NULL, added FROM images;
INSERT INTO manifest_layers(manifest, position, blob, media_type, blob_size)
  SELECT i.manifest, il.position, il.blob, il.media_type, il.blob_size
  FROM image_layers il JOIN images i ON i.id = il.image;
CREATE TABLE tags_v2(
  name TEXT PRIMARY KEY,
  target TEXT NOT NULL,
  updated INTEGER NOT NULL
);
INSERT INTO tags_v2(name, target, updated)
  SELECT t.name, COALESCE(i.manifest, t.image), t.updated
  FROM tags t LEFT JOIN images i ON i.id = t.image;
DROP TABLE tags;
ALTER TABLE tags_v2 RENAME TO tags;
CREATE INDEX tags_target ON tags(target);
";

/// Version 3: each layer's content size as Docker counts it (files' bytes,
/// for `images`/`history` SIZE; NULL until measured from the blob, which
/// reading commands do on first need), and the repository digests a pull or
/// push recorded (Docker's `RepoDigests`: the digest of the manifest or
/// index as the registry has it, per repository; a push that recompressed
/// layers names a manifest the store does not hold, hence the image column).
const V3: &str = "
ALTER TABLE layers ADD COLUMN content_size INTEGER;
CREATE TABLE repo_digests(
  image TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  repo TEXT NOT NULL,
  digest TEXT NOT NULL,
  added INTEGER NOT NULL,
  PRIMARY KEY(image, repo, digest)
);
CREATE INDEX repo_digests_digest ON repo_digests(digest);
";

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[V1, V2, V3];

/// The schema version this program writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

fn db_err(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::db(path, source)
}

/// The schema version of an open index: `user_version`, or 1 for a
/// pre-version store that already has its tables.
pub(crate) fn version(conn: &Connection, path: &Path) -> Result<u32, StoreError> {
    let err = db_err(path);
    let v: u32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(&err)?;
    if v > 0 {
        return Ok(v);
    }
    let has_images: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'images'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(&err)?
        > 0;
    Ok(u32::from(has_images))
}

/// Brings the index up to [`SCHEMA_VERSION`] in one transaction; refuses an
/// index written by a newer hoist.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let err = db_err(path);
    // Cheap check first: an up-to-date index needs no write lock. (A
    // pre-version store is stamped with its version even when nothing else
    // changes.)
    let stamped: u32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(&err)?;
    if stamped == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(&err)?;
    let from = version(&tx, path)?;
    if from > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found: from,
            supported: SCHEMA_VERSION,
        });
    }
    for m in &MIGRATIONS[from as usize..] {
        tx.execute_batch(m).map_err(&err)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(&err)?;
    tx.commit().map_err(&err)
}
