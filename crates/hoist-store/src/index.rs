//! The transactional index in `index.db` (SQLite, WAL): images by config
//! digest, their layer stacks, layers by chainID, and tags. SQLite gives
//! several hoist processes one consistent view and atomic updates.

use crate::StoreError;
use hoist_oci::Digest;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;


/// The index database.
pub struct Db {
    conn: Connection,
    path: PathBuf,
}

/// A layer of the store, by chainID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerRecord {
    /// The chainID naming this stack prefix.
    pub chain_id: Digest,
    /// The diffID (sha256 of the uncompressed tar).
    pub diff_id: Digest,
    /// The chainID below, if any.
    pub parent: Option<Digest>,
    /// Uncompressed size in bytes.
    pub size: u64,
}

/// One layer of one image: the chain and the blob that carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewLayer {
    /// The layer record (inserted if the chainID is new).
    pub layer: LayerRecord,
    /// The blob (compressed or not) the image's manifest names.
    pub blob: Digest,
    /// The blob's media type.
    pub media_type: String,
    /// The blob's size.
    pub blob_size: u64,
}

/// An image to add to the index.
#[derive(Clone, Debug)]
pub struct NewImage {
    /// Config digest: the image ID.
    pub id: Digest,
    /// The config's size.
    pub config_size: u64,
    /// The manifest blob describing it.
    pub manifest: Digest,
    /// The manifest's media type.
    pub manifest_media_type: String,
    /// The config's `created`.
    pub created: Option<String>,
    /// The layers, base first.
    pub layers: Vec<NewLayer>,
    /// Full references to point at this image.
    pub tags: Vec<String>,
}

/// An image as the index knows it.
#[derive(Clone, Debug)]
pub struct ImageRecord {
    /// Config digest: the image ID.
    pub id: Digest,
    /// The config's size.
    pub config_size: u64,
    /// The manifest blob.
    pub manifest: Digest,
    /// The manifest's media type.
    pub manifest_media_type: String,
    /// The config's `created`.
    pub created: Option<String>,
    /// Unix time it was added.
    pub added: i64,
    /// Its layers, base first.
    pub layers: Vec<NewLayer>,
    /// Its tags (full references), sorted.
    pub tags: Vec<String>,
}

impl ImageRecord {
    /// Uncompressed size of all layers.
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.layer.size).sum()
    }
}

/// A tag and the image it points to.
#[derive(Clone, Debug)]
pub struct TagRecord {
    /// The full reference.
    pub name: String,
    /// The image ID.
    pub image: Digest,
}

/// What removing an image did, for Docker-style `Untagged:`/`Deleted:` lines.
#[derive(Clone, Debug, Default)]
pub struct RemovedImage {
    /// References untagged.
    pub untagged: Vec<String>,
    /// The image ID, when the image itself was deleted.
    pub deleted_image: Option<Digest>,
    /// Layer chainIDs no image uses any more, now deleted from the index.
    pub deleted_layers: Vec<Digest>,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn parse_digest(s: String) -> Result<Digest, StoreError> {
    s.parse()
        .map_err(|e| StoreError::Corrupt(format!("bad digest in index: {e}")))
}

impl Db {
    /// Opens or creates the index.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |source| StoreError::Db {
            path: path.to_owned(),
            source,
        };
        let mut conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(120)).map_err(err)?;
        // Turning a new database to WAL needs it alone and fails at once with
        // SQLITE_BUSY, busy timeout or not, while another process opens it
        // too: retry, as the busy timeout would.
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            match conn.pragma_update(None, "journal_mode", "WAL") {
                Ok(()) => break,
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(err(e)),
            }
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err)?;
        crate::schema::migrate(&mut conn, path)?;
        Ok(Db {
            conn,
            path: path.to_owned(),
        })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            source,
        }
    }

    /// The first column of every row `sql` gives, as text.
    fn column(&self, sql: &str, p: impl rusqlite::Params) -> Result<Vec<String>, StoreError> {
        let mut st = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let rows = st
            .query_map(p, |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// The layer with this chainID, if indexed.
    pub fn layer(&self, chain_id: &Digest) -> Result<Option<LayerRecord>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT diff_id, parent, size FROM layers WHERE chain_id = ?1",
                params![chain_id.to_string()],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.err(e))?;
        row.map(|(d, p, s)| {
            Ok(LayerRecord {
                chain_id: chain_id.clone(),
                diff_id: parse_digest(d)?,
                parent: p.map(parse_digest).transpose()?,
                size: s as u64,
            })
        })
        .transpose()
    }

    /// A blob some image already uses for this chainID (so a reload can reuse it).
    pub fn layer_blob(&self, chain_id: &Digest) -> Result<Option<NewLayer>, StoreError> {
        let Some(layer) = self.layer(chain_id)? else {
            return Ok(None);
        };
        let row = self
            .conn
            .query_row(
                "SELECT blob, media_type, blob_size FROM image_layers WHERE chain_id = ?1 LIMIT 1",
                params![chain_id.to_string()],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.err(e))?;
        row.map(|(b, mt, s)| {
            Ok(NewLayer {
                layer: layer.clone(),
                blob: parse_digest(b)?,
                media_type: mt,
                blob_size: s as u64,
            })
        })
        .transpose()
    }

    /// Adds an image, its layers and tags in one transaction. Returns, for each
    /// tag that moved, the reference and the image it pointed to before.
    pub fn add_image(&mut self, img: &NewImage) -> Result<Vec<(String, Digest)>, StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError::Db {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        for l in &img.layers {
            tx.execute(
                "INSERT OR IGNORE INTO layers(chain_id, diff_id, parent, size) VALUES(?1, ?2, ?3, ?4)",
                params![
                    l.layer.chain_id.to_string(),
                    l.layer.diff_id.to_string(),
                    l.layer.parent.as_ref().map(|p| p.to_string()),
                    l.layer.size as i64
                ],
            )
            .map_err(err)?;
        }
        let id = img.id.to_string();
        let exists: bool = tx
            .query_row(
                "SELECT 1 FROM images WHERE id = ?1",
                params![id],
                |_| Ok(()),
            )
            .optional()
            .map_err(err)?
            .is_some();
        if !exists {
            tx.execute(
                "INSERT INTO images(id, manifest, manifest_media_type, config_size, created, added) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    id,
                    img.manifest.to_string(),
                    img.manifest_media_type,
                    img.config_size as i64,
                    img.created,
                    now()
                ],
            )
            .map_err(err)?;
            for (i, l) in img.layers.iter().enumerate() {
                tx.execute(
                    "INSERT INTO image_layers(image, position, chain_id, blob, media_type, blob_size) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        id,
                        i as i64,
                        l.layer.chain_id.to_string(),
                        l.blob.to_string(),
                        l.media_type,
                        l.blob_size as i64
                    ],
                )
                .map_err(err)?;
            }
        }
        let mut moved = Vec::new();
        for t in &img.tags {
            let prev: Option<String> = tx
                .query_row("SELECT image FROM tags WHERE name = ?1", params![t], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(err)?;
            if let Some(p) = prev {
                if p != id {
                    moved.push((t.clone(), parse_digest(p)?));
                }
            }
            tx.execute(
                "INSERT INTO tags(name, image, updated) VALUES(?1, ?2, ?3) ON CONFLICT(name) DO UPDATE SET image = excluded.image, updated = excluded.updated",
                params![t, id, now()],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(moved)
    }

    /// Points `name` at an existing image. Returns the image it pointed to before.
    pub fn set_tag(&mut self, name: &str, image: &Digest) -> Result<Option<Digest>, StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError::Db {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let exists = tx
            .query_row(
                "SELECT 1 FROM images WHERE id = ?1",
                params![image.to_string()],
                |_| Ok(()),
            )
            .optional()
            .map_err(err)?
            .is_some();
        if !exists {
            return Err(StoreError::NoSuchImage(image.to_string()));
        }
        let prev: Option<String> = tx
            .query_row(
                "SELECT image FROM tags WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)?;
        tx.execute(
            "INSERT INTO tags(name, image, updated) VALUES(?1, ?2, ?3) ON CONFLICT(name) DO UPDATE SET image = excluded.image, updated = excluded.updated",
            params![name, image.to_string(), now()],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        prev.map(parse_digest).transpose()
    }

    /// The image a tag points to.
    pub fn tag(&self, name: &str) -> Result<Option<Digest>, StoreError> {
        self.conn
            .query_row(
                "SELECT image FROM tags WHERE name = ?1",
                params![name],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(|e| self.err(e))?
            .map(parse_digest)
            .transpose()
    }

    /// Every tag.
    pub fn tags(&self) -> Result<Vec<TagRecord>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT name, image FROM tags ORDER BY name")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (name, image) = row.map_err(|e| self.err(e))?;
            out.push(TagRecord {
                name,
                image: parse_digest(image)?,
            });
        }
        Ok(out)
    }

    /// IDs of all images, newest first.
    pub fn image_ids(&self) -> Result<Vec<Digest>, StoreError> {
        let ids = self.column("SELECT id FROM images ORDER BY added DESC, id", [])?;
        ids.into_iter().map(parse_digest).collect()
    }

    /// IDs of images whose hex starts with `prefix`.
    pub fn images_with_prefix(&self, prefix: &str) -> Result<Vec<Digest>, StoreError> {
        let ids = self.column(
            "SELECT id FROM images WHERE substr(id, 8, ?2) = ?1",
            params![prefix, prefix.len() as i64],
        )?;
        ids.into_iter().map(parse_digest).collect()
    }

    /// One image with its layers and tags.
    pub fn image(&self, id: &Digest) -> Result<Option<ImageRecord>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT manifest, manifest_media_type, config_size, created, added FROM images WHERE id = ?1",
                params![id.to_string()],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((manifest, mmt, config_size, created, added)) = row else {
            return Ok(None);
        };
        let mut st = self
            .conn
            .prepare(
                "SELECT il.chain_id, l.diff_id, l.parent, l.size, il.blob, il.media_type, il.blob_size
                 FROM image_layers il JOIN layers l ON l.chain_id = il.chain_id
                 WHERE il.image = ?1 ORDER BY il.position",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![id.to_string()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, i64>(6)?,
                ))
            })
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        let mut layers = Vec::with_capacity(rows.len());
        for (c, d, p, s, b, mt, bs) in rows {
            layers.push(NewLayer {
                layer: LayerRecord {
                    chain_id: parse_digest(c)?,
                    diff_id: parse_digest(d)?,
                    parent: p.map(parse_digest).transpose()?,
                    size: s as u64,
                },
                blob: parse_digest(b)?,
                media_type: mt,
                blob_size: bs as u64,
            });
        }
        let tags = self.column(
            "SELECT name FROM tags WHERE image = ?1 ORDER BY name",
            params![id.to_string()],
        )?;
        Ok(Some(ImageRecord {
            id: id.clone(),
            config_size: config_size as u64,
            manifest: parse_digest(manifest)?,
            manifest_media_type: mmt,
            created,
            added,
            layers,
            tags,
        }))
    }

    /// Every image with layers and tags, newest first.
    pub fn images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        let mut out = Vec::new();
        for id in self.image_ids()? {
            if let Some(img) = self.image(&id)? {
                out.push(img);
            }
        }
        Ok(out)
    }

    /// Removes a tag; then, if `image` has no tags left (or `untag_all`), the
    /// image itself and every layer no other image uses. One transaction.
    pub fn remove(
        &mut self,
        image: &Digest,
        tags: &[String],
        delete_if_untagged: bool,
    ) -> Result<RemovedImage, StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError::Db {
            path: path.clone(),
            source,
        };
        let id = image.to_string();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let mut out = RemovedImage::default();
        for t in tags {
            let n = tx
                .execute(
                    "DELETE FROM tags WHERE name = ?1 AND image = ?2",
                    params![t, id],
                )
                .map_err(err)?;
            if n > 0 {
                out.untagged.push(t.clone());
            }
        }
        let left: i64 = tx
            .query_row(
                "SELECT count(*) FROM tags WHERE image = ?1",
                params![id],
                |r| r.get(0),
            )
            .map_err(err)?;
        if left == 0 && delete_if_untagged {
            let chains: Vec<String> = {
                let mut st = tx
                    .prepare(
                        "SELECT chain_id FROM image_layers WHERE image = ?1 ORDER BY position DESC",
                    )
                    .map_err(err)?;
                let v = st
                    .query_map(params![id], |r| r.get::<_, String>(0))
                    .map_err(err)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(err)?;
                v
            };
            tx.execute("DELETE FROM image_layers WHERE image = ?1", params![id])
                .map_err(err)?;
            let n = tx
                .execute("DELETE FROM images WHERE id = ?1", params![id])
                .map_err(err)?;
            if n > 0 {
                out.deleted_image = Some(image.clone());
            }
            for c in chains {
                let used: i64 = tx
                    .query_row(
                        "SELECT count(*) FROM image_layers WHERE chain_id = ?1",
                        params![c],
                        |r| r.get(0),
                    )
                    .map_err(err)?;
                if used == 0 {
                    let n = tx
                        .execute("DELETE FROM layers WHERE chain_id = ?1", params![c])
                        .map_err(err)?;
                    if n > 0 {
                        out.deleted_layers.push(parse_digest(c)?);
                    }
                }
            }
        }
        tx.commit().map_err(err)?;
        Ok(out)
    }

    /// Deletes layer records no image uses (left by a crash between steps).
    pub fn drop_unused_layers(&mut self) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "DELETE FROM layers WHERE chain_id NOT IN (SELECT chain_id FROM image_layers)",
                [],
            )
            .map_err(|e| self.err(e))
    }

    /// Every blob the index refers to: configs, manifests and layer blobs.
    pub fn referenced_blobs(&self) -> Result<BTreeSet<Digest>, StoreError> {
        let v = self.column("SELECT id FROM images UNION SELECT manifest FROM images UNION SELECT blob FROM image_layers", [])?;
        v.into_iter().map(parse_digest).collect()
    }

    /// Runs SQLite's own integrity check; returns its complaints.
    pub fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        let v = self.column("PRAGMA integrity_check", [])?;
        Ok(v.into_iter().filter(|s| s != "ok").collect())
    }

    /// Deletes an image whatever its tags (fsck --repair of a broken image).
    pub fn purge_image(&mut self, image: &Digest) -> Result<RemovedImage, StoreError> {
        let tags: Vec<String> = self
            .tags()?
            .into_iter()
            .filter(|t| &t.image == image)
            .map(|t| t.name)
            .collect();
        self.remove(image, &tags, true)
    }
}
