//! The transactional index in `index.db` (SQLite, WAL): images by config
//! digest, their layer stacks, layers by chainID, the manifests and indexes
//! that describe them, and tags naming a manifest or an index. SQLite gives
//! several hoist processes one consistent view and atomic updates.

use crate::StoreError;
use hoist_oci::Digest;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
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
    /// Its layers, base first (with the blobs of its first manifest).
    pub layers: Vec<NewLayer>,
    /// Its tags (full references), sorted: those naming one of its
    /// manifests or an index that lists one.
    pub tags: Vec<String>,
    /// Every manifest of it, first one first.
    pub manifests: Vec<ManifestRecord>,
    /// Its repository digests (`REPO@DIGEST`, full repository names),
    /// sorted: what pulls and pushes recorded, as Docker's `RepoDigests`.
    pub repo_digests: Vec<String>,
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
    /// The image ID (for an index, the image of the platform this host
    /// runs, else of its first fetched child); the target itself when it
    /// names nothing in the index.
    pub image: Digest,
    /// The manifest or index digest the tag names.
    pub target: Digest,
}

/// One manifest of an image: the config with one choice of layer blobs.
#[derive(Clone, Debug)]
pub struct ManifestRecord {
    /// The manifest's digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// The image (config digest) it describes.
    pub image: Digest,
    /// The platform an index listed it for (`os/arch[/variant]`), if any.
    pub platform: Option<String>,
    /// Its layers, base first, with this manifest's blobs.
    pub layers: Vec<NewLayer>,
}

/// One entry of an index, fetched or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexChild {
    /// The child manifest's digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// The platform the index lists it for (`os/arch[/variant]`).
    pub platform: Option<String>,
}

/// An index to add: its bytes are a blob; the children are its entries.
#[derive(Clone, Debug)]
pub struct NewIndex {
    /// The index's digest (its bytes are committed as a blob).
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Every entry, in the index's order.
    pub children: Vec<IndexChild>,
}

/// An index as the index database knows it.
#[derive(Clone, Debug)]
pub struct IndexRecord {
    /// The index's digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Every entry, in order.
    pub children: Vec<IndexChild>,
    /// The children whose manifests are in the store (the fetched platforms).
    pub fetched: Vec<Digest>,
    /// Tags naming it, sorted.
    pub tags: Vec<String>,
}

/// What a tag names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagTarget {
    /// An image manifest of this image.
    Manifest {
        /// The manifest's digest.
        digest: Digest,
        /// The image (config digest) it describes.
        image: Digest,
    },
    /// An index.
    Index(Digest),
}

/// What removing an image did, for Docker-style `Untagged:`/`Deleted:` lines.
#[derive(Clone, Debug, Default)]
pub struct RemovedImage {
    /// References untagged.
    pub untagged: Vec<String>,
    /// The image ID, when the image itself was deleted.
    pub deleted_image: Option<Digest>,
    /// Other images deleted with it: the platforms of an index whose last tag went.
    pub deleted_images: Vec<Digest>,
    /// Indexes whose last tag went, now deleted.
    pub deleted_indexes: Vec<Digest>,
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
        let err = |source| StoreError::db(path, source);
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

    /// Opens an existing index without writing to it or beside it. The
    /// file is opened read-only (`mode=ro`), or as immutable when SQLite
    /// cannot share its WAL index with writers (a directory this user cannot
    /// write). An index with an older schema is copied into memory and
    /// upgraded there: readers see it as this program would, and the file
    /// is left for the next writable open to upgrade.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let uri = file_uri(path);
        let open = |query: &str| -> rusqlite::Result<Connection> {
            let c = Connection::open_with_flags(
                format!("{uri}?{query}"),
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_URI
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            c.busy_timeout(Duration::from_secs(120))?;
            c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })?;
            Ok(c)
        };
        let (conn, query) = match open("mode=ro") {
            Ok(c) => (c, "mode=ro"),
            Err(first) => match open("immutable=1") {
                Ok(c) => (c, "immutable=1"),
                Err(_) => return Err(StoreError::db(path, first)),
            },
        };
        let version = crate::schema::version(&conn, path)?;
        if version > crate::schema::SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: path.to_owned(),
                found: version,
                supported: crate::schema::SCHEMA_VERSION,
            });
        }
        if version == crate::schema::SCHEMA_VERSION {
            return Ok(Db {
                conn,
                path: path.to_owned(),
            });
        }
        drop(conn);
        let err = |source| StoreError::db(path, source);
        let mut mem = Connection::open_with_flags(
            ":memory:",
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        copy_schema_and_rows(&mem, &format!("{uri}?{query}")).map_err(err)?;
        crate::schema::migrate(&mut mem, path)?;
        mem.pragma_update(None, "query_only", true).map_err(err)?;
        Ok(Db {
            conn: mem,
            path: path.to_owned(),
        })
    }

    /// An empty index in memory: what a store that does not exist reads as.
    pub fn empty() -> Result<Self, StoreError> {
        let path = Path::new(":memory:");
        let mut conn = Connection::open_in_memory().map_err(|e| StoreError::db(path, e))?;
        crate::schema::migrate(&mut conn, path)?;
        conn.pragma_update(None, "query_only", true)
            .map_err(|e| StoreError::db(path, e))?;
        Ok(Db {
            conn,
            path: path.to_owned(),
        })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::db(&self.path, source)
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
        let batch = Batch {
            images: vec![(img.clone(), None)],
            indexes: Vec::new(),
            tags: img
                .tags
                .iter()
                .map(|t| (t.clone(), img.manifest.clone()))
                .collect(),
        };
        self.apply(&batch)
    }

    /// Adds an image with a manifest an index listed for `platform`
    /// (`os/arch[/variant]`); `img.tags` name that manifest.
    pub fn add_platform_image(
        &mut self,
        img: &NewImage,
        platform: &str,
    ) -> Result<Vec<(String, Digest)>, StoreError> {
        let batch = Batch {
            images: vec![(img.clone(), Some(platform.to_owned()))],
            indexes: Vec::new(),
            tags: img
                .tags
                .iter()
                .map(|t| (t.clone(), img.manifest.clone()))
                .collect(),
        };
        self.apply(&batch)
    }

    /// Adds an index (its bytes already committed as a blob) and points
    /// `tags` at it. Returns the tags that moved, as [`Db::add_image`].
    pub fn add_index(
        &mut self,
        idx: &NewIndex,
        tags: &[String],
    ) -> Result<Vec<(String, Digest)>, StoreError> {
        self.apply(&Batch {
            images: Vec::new(),
            indexes: vec![idx.clone()],
            tags: tags
                .iter()
                .map(|t| (t.clone(), idx.digest.clone()))
                .collect(),
        })
    }

    /// Adds images, indexes and tags in one transaction (what a store writer
    /// commits). Returns, for each tag that moved, the reference and the image
    /// it pointed to before.
    pub(crate) fn apply(&mut self, batch: &Batch) -> Result<Vec<(String, Digest)>, StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError::db(&path, source);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        for (img, platform) in &batch.images {
            insert_image(&tx, img, platform.as_deref()).map_err(err)?;
        }
        for idx in &batch.indexes {
            insert_index(&tx, idx).map_err(err)?;
        }
        let mut moved = Vec::new();
        for (name, target) in &batch.tags {
            let target = target.to_string();
            let known = resolve_image(&tx, &target).map_err(err)?.is_some()
                || exists(&tx, "SELECT 1 FROM indexes WHERE digest = ?1", &target).map_err(err)?;
            if !known {
                return Err(StoreError::NoSuchImage(target));
            }
            if let Some(prev) = put_tag(&tx, name, &target).map_err(err)? {
                if prev != target {
                    let before = resolve_image(&tx, &prev).map_err(err)?.unwrap_or(prev);
                    moved.push((name.clone(), parse_digest(before)?));
                }
            }
        }
        tx.commit().map_err(err)?;
        Ok(moved)
    }

    /// Points `name` at an existing image (its first manifest). Returns the
    /// image it pointed to before.
    pub fn set_tag(&mut self, name: &str, image: &Digest) -> Result<Option<Digest>, StoreError> {
        let manifest = self
            .column(
                "SELECT manifest FROM images WHERE id = ?1",
                params![image.to_string()],
            )?
            .pop()
            .ok_or_else(|| StoreError::NoSuchImage(image.to_string()))?;
        self.set_tag_target(name, &parse_digest(manifest)?)
    }

    /// Points `name` at a manifest or an index in the store. Returns the
    /// image it resolved to before.
    pub fn set_tag_target(
        &mut self,
        name: &str,
        target: &Digest,
    ) -> Result<Option<Digest>, StoreError> {
        let prev = self.tag(name)?;
        self.apply(&Batch {
            tags: vec![(name.to_owned(), target.clone())],
            ..Batch::default()
        })?;
        Ok(prev)
    }

    /// The image a tag points to (for an index, the host's platform, else
    /// its first fetched child).
    pub fn tag(&self, name: &str) -> Result<Option<Digest>, StoreError> {
        let Some(target) = self
            .column("SELECT target FROM tags WHERE name = ?1", params![name])?
            .pop()
        else {
            return Ok(None);
        };
        resolve_image(&self.conn, &target)
            .map_err(|e| self.err(e))?
            .map(parse_digest)
            .transpose()
    }

    /// The image a manifest or index digest names (for an index, the host's
    /// platform, else its first fetched child).
    pub fn resolve(&self, target: &Digest) -> Result<Option<Digest>, StoreError> {
        resolve_image(&self.conn, &target.to_string())
            .map_err(|e| self.err(e))?
            .map(parse_digest)
            .transpose()
    }

    /// What a tag names: a manifest (and its image) or an index.
    pub fn tag_target(&self, name: &str) -> Result<Option<TagTarget>, StoreError> {
        let Some(target) = self
            .column("SELECT target FROM tags WHERE name = ?1", params![name])?
            .pop()
        else {
            return Ok(None);
        };
        if let Some(image) = self
            .column(
                "SELECT image FROM manifests WHERE digest = ?1",
                params![target],
            )?
            .pop()
        {
            return Ok(Some(TagTarget::Manifest {
                digest: parse_digest(target)?,
                image: parse_digest(image)?,
            }));
        }
        if exists(
            &self.conn,
            "SELECT 1 FROM indexes WHERE digest = ?1",
            &target,
        )
        .map_err(|e| self.err(e))?
        {
            return Ok(Some(TagTarget::Index(parse_digest(target)?)));
        }
        Ok(None)
    }

    /// Every tag.
    pub fn tags(&self) -> Result<Vec<TagRecord>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT name, target FROM tags ORDER BY name")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for (name, target) in rows {
            let image = resolve_image(&self.conn, &target)
                .map_err(|e| self.err(e))?
                .unwrap_or_else(|| target.clone());
            out.push(TagRecord {
                name,
                image: parse_digest(image)?,
                target: parse_digest(target)?,
            });
        }
        Ok(out)
    }

    /// The layers of one manifest, base first.
    fn manifest_layers(&self, image: &str, manifest: &str) -> Result<Vec<NewLayer>, StoreError> {
        self.layers_query(
            "SELECT il.chain_id, l.diff_id, l.parent, l.size, ml.blob, ml.media_type, ml.blob_size
             FROM image_layers il JOIN layers l ON l.chain_id = il.chain_id
             JOIN manifest_layers ml ON ml.manifest = ?2 AND ml.position = il.position
             WHERE il.image = ?1 ORDER BY il.position",
            params![image, manifest],
        )
    }

    /// Layers from a query giving chain ID, diffID, parent, size, blob, media type and blob size.
    fn layers_query(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<NewLayer>, StoreError> {
        let mut st = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let rows = st
            .query_map(args, |r| {
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
        rows.into_iter()
            .map(|(c, d, p, s, b, mt, bs)| {
                Ok(NewLayer {
                    layer: LayerRecord {
                        chain_id: parse_digest(c)?,
                        diff_id: parse_digest(d)?,
                        parent: p.map(parse_digest).transpose()?,
                        size: s as u64,
                    },
                    blob: parse_digest(b)?,
                    media_type: mt,
                    blob_size: bs as u64,
                })
            })
            .collect()
    }

    /// One manifest with its layers.
    pub fn manifest(&self, digest: &Digest) -> Result<Option<ManifestRecord>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT media_type, image, platform FROM manifests WHERE digest = ?1",
                params![digest.to_string()],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((media_type, image, platform)) = row else {
            return Ok(None);
        };
        let layers = self.manifest_layers(&image, &digest.to_string())?;
        Ok(Some(ManifestRecord {
            digest: digest.clone(),
            media_type,
            image: parse_digest(image)?,
            platform,
            layers,
        }))
    }

    /// One index with its children, which of them were fetched, and its tags.
    pub fn index(&self, digest: &Digest) -> Result<Option<IndexRecord>, StoreError> {
        let d = digest.to_string();
        let Some(media_type) = self
            .column(
                "SELECT media_type FROM indexes WHERE digest = ?1",
                params![d],
            )?
            .pop()
        else {
            return Ok(None);
        };
        let mut st = self
            .conn
            .prepare(
                "SELECT digest, media_type, size, platform FROM index_children WHERE idx = ?1 ORDER BY position",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![d], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            })
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        let mut children = Vec::new();
        for (digest, media_type, size, platform) in rows {
            children.push(IndexChild {
                digest: parse_digest(digest)?,
                media_type,
                size: size as u64,
                platform,
            });
        }
        let fetched = self
            .column(
                "SELECT c.digest FROM index_children c JOIN manifests m ON m.digest = c.digest
                 WHERE c.idx = ?1 ORDER BY c.position",
                params![d],
            )?
            .into_iter()
            .map(parse_digest)
            .collect::<Result<_, _>>()?;
        let tags = self.column(
            "SELECT name FROM tags WHERE target = ?1 ORDER BY name",
            params![d],
        )?;
        Ok(Some(IndexRecord {
            digest: digest.clone(),
            media_type,
            children,
            fetched,
            tags,
        }))
    }

    /// Digests of every index, oldest first.
    pub fn index_digests(&self) -> Result<Vec<Digest>, StoreError> {
        let v = self.column("SELECT digest FROM indexes ORDER BY added, digest", [])?;
        v.into_iter().map(parse_digest).collect()
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
        let layers = self.layers_query(
            "SELECT il.chain_id, l.diff_id, l.parent, l.size, il.blob, il.media_type, il.blob_size
             FROM image_layers il JOIN layers l ON l.chain_id = il.chain_id
             WHERE il.image = ?1 ORDER BY il.position",
            params![id.to_string()],
        )?;
        let tags = self.column(REACHING_TAGS, params![id.to_string()])?;
        let repo_digests = self.column(
            "SELECT repo || '@' || digest FROM repo_digests WHERE image = ?1 ORDER BY repo, added, digest",
            params![id.to_string()],
        )?;
        let mut manifests = Vec::new();
        for m in self.column(
            "SELECT digest FROM manifests WHERE image = ?1 ORDER BY digest = (SELECT manifest FROM images WHERE id = ?1) DESC, added, digest",
            params![id.to_string()],
        )? {
            if let Some(m) = self.manifest(&parse_digest(m)?)? {
                manifests.push(m);
            }
        }
        Ok(Some(ImageRecord {
            id: id.clone(),
            config_size: config_size as u64,
            manifest: parse_digest(manifest)?,
            manifest_media_type: mmt,
            created,
            added,
            layers,
            tags,
            manifests,
            repo_digests,
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

    /// Removes tags that reach `image` (naming one of its manifests or an
    /// index listing one); then, if `delete_if_untagged`: every index among
    /// those tags' targets that has no tag left, and `image` and those
    /// indexes' other images when no tag reaches them any more, with every
    /// layer no other image uses. One transaction.
    pub fn remove(
        &mut self,
        image: &Digest,
        tags: &[String],
        delete_if_untagged: bool,
    ) -> Result<RemovedImage, StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError::db(&path, source);
        let id = image.to_string();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let mut out = RemovedImage::default();
        let reaching: BTreeSet<String> = query_column(&tx, REACHING_TAGS, params![id])
            .map_err(err)?
            .into_iter()
            .collect();
        let mut targets = BTreeSet::new();
        for t in tags.iter().filter(|t| reaching.contains(*t)) {
            if let Some(target) =
                query_column(&tx, "SELECT target FROM tags WHERE name = ?1", params![t])
                    .map_err(err)?
                    .pop()
            {
                tx.execute("DELETE FROM tags WHERE name = ?1", params![t])
                    .map_err(err)?;
                out.untagged.push(t.clone());
                targets.insert(target);
            }
        }
        if !delete_if_untagged {
            tx.commit().map_err(err)?;
            return Ok(out);
        }
        // Images to delete once nothing reaches them: this one, and the
        // platforms of every index that lost its last tag.
        let mut candidates = vec![id.clone()];
        for target in &targets {
            let is_index =
                exists(&tx, "SELECT 1 FROM indexes WHERE digest = ?1", target).map_err(err)?;
            let still_tagged =
                exists(&tx, "SELECT 1 FROM tags WHERE target = ?1", target).map_err(err)?;
            if !is_index || still_tagged {
                continue;
            }
            let images = query_column(
                &tx,
                "SELECT DISTINCT m.image FROM index_children c JOIN manifests m ON m.digest = c.digest WHERE c.idx = ?1",
                params![target],
            )
            .map_err(err)?;
            candidates.extend(images.into_iter().filter(|i| i != &id));
            tx.execute("DELETE FROM indexes WHERE digest = ?1", params![target])
                .map_err(err)?;
            out.deleted_indexes.push(parse_digest(target.clone())?);
        }
        for img in candidates {
            let left = query_column(&tx, REACHING_TAGS, params![img]).map_err(err)?;
            if !left.is_empty() {
                continue;
            }
            if delete_image(&tx, &img, &mut out.deleted_layers).map_err(err)? {
                if img == id {
                    out.deleted_image = Some(image.clone());
                } else {
                    out.deleted_images.push(parse_digest(img)?);
                }
            }
        }
        tx.commit().map_err(err)?;
        Ok(out)
    }

    /// A layer's content size as Docker counts it (files' bytes), when
    /// measured; see [`crate::Store::content_sizes`].
    pub fn content_size(&self, chain_id: &Digest) -> Result<Option<u64>, StoreError> {
        let v: Option<Option<i64>> = self
            .conn
            .query_row(
                "SELECT content_size FROM layers WHERE chain_id = ?1",
                params![chain_id.to_string()],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(v.flatten().map(|n| n as u64))
    }

    /// Records layers' content sizes (chainID, bytes) in one transaction.
    pub fn set_content_sizes(&mut self, sizes: &[(Digest, u64)]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError::db(&path, source);
        let tx = self.conn.transaction().map_err(err)?;
        for (chain, size) in sizes {
            tx.execute(
                "UPDATE layers SET content_size = ?2 WHERE chain_id = ?1",
                params![chain.to_string(), *size as i64],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    /// Records that repository `repo` (a full name such as
    /// `docker.io/library/nginx`) holds `image` as `digest`: the digest of
    /// the manifest or index as the registry has it, learnt by a pull or a
    /// push. Shown as Docker's `RepoDigests` and by `images --digests`.
    pub fn add_repo_digest(
        &mut self,
        image: &Digest,
        repo: &str,
        digest: &Digest,
    ) -> Result<(), StoreError> {
        let id = image.to_string();
        if !exists(&self.conn, "SELECT 1 FROM images WHERE id = ?1", &id)
            .map_err(|e| self.err(e))?
        {
            return Err(StoreError::NoSuchImage(id));
        }
        self.conn
            .execute(
                "INSERT INTO repo_digests(image, repo, digest, added) VALUES(?1, ?2, ?3, ?4)
                 ON CONFLICT(image, repo, digest) DO UPDATE SET added = excluded.added",
                params![id, repo, digest.to_string(), now()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The repository digests recorded as `digest` (`REPO@DIGEST`), sorted:
    /// those of an index are its own, not its platforms'.
    pub fn repo_digests_of(&self, digest: &Digest) -> Result<Vec<String>, StoreError> {
        self.column(
            "SELECT DISTINCT repo || '@' || digest FROM repo_digests WHERE digest = ?1 ORDER BY 1",
            params![digest.to_string()],
        )
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
        let v = self.column(
            "SELECT id FROM images UNION SELECT manifest FROM images UNION SELECT blob FROM image_layers
             UNION SELECT digest FROM manifests UNION SELECT blob FROM manifest_layers
             UNION SELECT digest FROM indexes",
            [],
        )?;
        v.into_iter().map(parse_digest).collect()
    }

    /// Runs SQLite's own integrity check; returns its complaints.
    pub fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        let v = self.column("PRAGMA integrity_check", [])?;
        Ok(v.into_iter().filter(|s| s != "ok").collect())
    }

    /// Deletes an image whatever its tags (fsck --repair of a broken image).
    pub fn purge_image(&mut self, image: &Digest) -> Result<RemovedImage, StoreError> {
        let tags = self.column(REACHING_TAGS, params![image.to_string()])?;
        self.remove(image, &tags, true)
    }

    /// Deletes an index and the tags naming it (fsck --repair of an index
    /// whose bytes are gone); its platforms' images stay. Returns the tags.
    pub fn purge_index(&mut self, digest: &Digest) -> Result<Vec<String>, StoreError> {
        let d = digest.to_string();
        let tags = self.column(
            "SELECT name FROM tags WHERE target = ?1 ORDER BY name",
            params![d],
        )?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| StoreError::db(&self.path, e))?;
        let err = |e| StoreError::db(&self.path, e);
        tx.execute("DELETE FROM tags WHERE target = ?1", params![d])
            .map_err(err)?;
        tx.execute("DELETE FROM indexes WHERE digest = ?1", params![d])
            .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(tags)
    }

    /// Deletes a tag by name, whatever it names (fsck --repair of a tag
    /// naming nothing). True when it existed.
    pub fn drop_tag(&mut self, name: &str) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute("DELETE FROM tags WHERE name = ?1", params![name])
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }
}

/// Tags that reach image `?1`: naming one of its manifests, or an index that
/// lists one; or naming the image ID itself (a v1 tag whose image was gone).
const REACHING_TAGS: &str = "SELECT name FROM tags WHERE target = ?1
  OR target IN (SELECT digest FROM manifests WHERE image = ?1)
  OR target IN (SELECT c.idx FROM index_children c JOIN manifests m ON m.digest = c.digest WHERE m.image = ?1)
  ORDER BY name";

/// Images, indexes and tags to add in one transaction.
#[derive(Clone, Debug, Default)]
pub(crate) struct Batch {
    /// Images with the platform their manifest is for.
    pub(crate) images: Vec<(NewImage, Option<String>)>,
    /// Indexes.
    pub(crate) indexes: Vec<NewIndex>,
    /// Tag name → manifest or index digest.
    pub(crate) tags: Vec<(String, Digest)>,
}

fn query_column(
    c: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
) -> rusqlite::Result<Vec<String>> {
    let mut st = c.prepare(sql)?;
    let rows = st.query_map(p, |r| r.get::<_, String>(0))?;
    rows.collect()
}

fn exists(c: &Connection, sql: &str, key: &str) -> rusqlite::Result<bool> {
    Ok(c.query_row(sql, params![key], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The image a manifest or index digest resolves to: a manifest's image; for
/// an index, the fetched child for this host's platform, else the first fetched.
fn resolve_image(c: &Connection, target: &str) -> rusqlite::Result<Option<String>> {
    let host = hoist_oci::Platform::host().to_string();
    c.query_row(
        "SELECT image FROM (
           SELECT image, 0 AS rank, 0 AS position FROM manifests WHERE digest = ?1
           UNION ALL
           SELECT m.image, CASE WHEN c.platform = ?2 THEN 1 ELSE 2 END, c.position
           FROM index_children c JOIN manifests m ON m.digest = c.digest WHERE c.idx = ?1
         ) ORDER BY rank, position LIMIT 1",
        params![target, host],
        |r| r.get(0),
    )
    .optional()
}

/// Points a tag at a target; returns the target it had before.
fn put_tag(c: &Connection, name: &str, target: &str) -> rusqlite::Result<Option<String>> {
    let prev = c
        .query_row(
            "SELECT target FROM tags WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )
        .optional()?;
    c.execute(
        "INSERT INTO tags(name, target, updated) VALUES(?1, ?2, ?3) ON CONFLICT(name) DO UPDATE SET target = excluded.target, updated = excluded.updated",
        params![name, target, now()],
    )?;
    Ok(prev)
}

/// Inserts an image (if new), its layers (if new) and this manifest (if new).
fn insert_image(c: &Connection, img: &NewImage, platform: Option<&str>) -> rusqlite::Result<()> {
    for l in &img.layers {
        c.execute(
            "INSERT OR IGNORE INTO layers(chain_id, diff_id, parent, size) VALUES(?1, ?2, ?3, ?4)",
            params![
                l.layer.chain_id.to_string(),
                l.layer.diff_id.to_string(),
                l.layer.parent.as_ref().map(|p| p.to_string()),
                l.layer.size as i64
            ],
        )?;
    }
    let id = img.id.to_string();
    if !exists(c, "SELECT 1 FROM images WHERE id = ?1", &id)? {
        c.execute(
            "INSERT INTO images(id, manifest, manifest_media_type, config_size, created, added) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                id,
                img.manifest.to_string(),
                img.manifest_media_type,
                img.config_size as i64,
                img.created,
                now()
            ],
        )?;
        for (i, l) in img.layers.iter().enumerate() {
            c.execute(
                "INSERT INTO image_layers(image, position, chain_id, blob, media_type, blob_size) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    id,
                    i as i64,
                    l.layer.chain_id.to_string(),
                    l.blob.to_string(),
                    l.media_type,
                    l.blob_size as i64
                ],
            )?;
        }
    }
    let manifest = img.manifest.to_string();
    if !exists(c, "SELECT 1 FROM manifests WHERE digest = ?1", &manifest)? {
        c.execute(
            "INSERT INTO manifests(digest, media_type, image, platform, added) VALUES(?1, ?2, ?3, ?4, ?5)",
            params![manifest, img.manifest_media_type, id, platform, now()],
        )?;
        for (i, l) in img.layers.iter().enumerate() {
            c.execute(
                "INSERT INTO manifest_layers(manifest, position, blob, media_type, blob_size) VALUES(?1, ?2, ?3, ?4, ?5)",
                params![
                    manifest,
                    i as i64,
                    l.blob.to_string(),
                    l.media_type,
                    l.blob_size as i64
                ],
            )?;
        }
    } else if let Some(p) = platform {
        c.execute(
            "UPDATE manifests SET platform = ?2 WHERE digest = ?1 AND platform IS NULL",
            params![manifest, p],
        )?;
    }
    Ok(())
}

/// Inserts an index (if new) and its children.
fn insert_index(c: &Connection, idx: &NewIndex) -> rusqlite::Result<()> {
    let d = idx.digest.to_string();
    if exists(c, "SELECT 1 FROM indexes WHERE digest = ?1", &d)? {
        return Ok(());
    }
    c.execute(
        "INSERT INTO indexes(digest, media_type, added) VALUES(?1, ?2, ?3)",
        params![d, idx.media_type, now()],
    )?;
    for (i, ch) in idx.children.iter().enumerate() {
        c.execute(
            "INSERT INTO index_children(idx, position, digest, media_type, size, platform) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                d,
                i as i64,
                ch.digest.to_string(),
                ch.media_type,
                ch.size as i64,
                ch.platform
            ],
        )?;
    }
    Ok(())
}

/// Deletes an image, its manifests and every layer record no other image
/// uses (appending those chainIDs to `deleted_layers`). True when it existed.
fn delete_image(
    c: &Connection,
    id: &str,
    deleted_layers: &mut Vec<Digest>,
) -> Result<bool, rusqlite::Error> {
    let chains = query_column(
        c,
        "SELECT chain_id FROM image_layers WHERE image = ?1 ORDER BY position DESC",
        params![id],
    )?;
    c.execute("DELETE FROM manifests WHERE image = ?1", params![id])?;
    c.execute("DELETE FROM image_layers WHERE image = ?1", params![id])?;
    let n = c.execute("DELETE FROM images WHERE id = ?1", params![id])?;
    for ch in chains {
        if !exists(c, "SELECT 1 FROM image_layers WHERE chain_id = ?1", &ch)?
            && c.execute("DELETE FROM layers WHERE chain_id = ?1", params![ch])? > 0
        {
            // A chainID read back from the index: a bad one is left unreported.
            if let Ok(d) = ch.parse() {
                deleted_layers.push(d);
            }
        }
    }
    Ok(n > 0)
}

/// `path` as an SQLite URI filename (`file:` with `%`, `?` and `#` escaped).
fn file_uri(path: &Path) -> String {
    let mut out = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3f"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out
}

/// Copies every table (schema and rows), index and the `user_version` of the
/// database at `uri` into `mem`.
fn copy_schema_and_rows(mem: &Connection, uri: &str) -> rusqlite::Result<()> {
    mem.execute("ATTACH DATABASE ?1 AS old", params![uri])?;
    let objects: Vec<(String, String, String)> = {
        let mut st = mem.prepare(
            "SELECT type, name, sql FROM old.sqlite_master
             WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'
             ORDER BY type = 'table' DESC",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (kind, name, sql) in objects {
        mem.execute_batch(&sql)?;
        if kind == "table" {
            let quoted = name.replace('"', "\"\"");
            mem.execute_batch(&format!(
                "INSERT INTO main.\"{quoted}\" SELECT * FROM old.\"{quoted}\""
            ))?;
        }
    }
    let version: i64 = mem.query_row("PRAGMA old.user_version", [], |r| r.get(0))?;
    mem.pragma_update(None, "user_version", version)?;
    mem.execute_batch("DETACH DATABASE old")
}
