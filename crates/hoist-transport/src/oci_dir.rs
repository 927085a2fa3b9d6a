//! `oci:DIR[:REF]`: an OCI image layout directory (`oci-layout`,
//! `index.json`, `blobs/<alg>/<hex>`), as a source and as a destination.
//! An image is named in `index.json` by the `org.opencontainers.image.ref.name`
//! annotation of its entry. Blobs are written under a temporary name,
//! verified as they are copied (in the kernel when the source is a file),
//! fsync'd and renamed; `index.json` is replaced atomically at commit.

use crate::blobio::write_verified;
use crate::destination::ImageDestination;
use crate::referrers::referrer_entry;
use crate::source::{BlobBody, ImageSource, RawManifest};
use crate::{TransportError, MAX_JSON};
use hoist_oci::{media_type, Descriptor, Digest, Document, Index};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The annotation naming an image in a layout's `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

fn blob_path(dir: &Path, d: &Digest) -> PathBuf {
    dir.join("blobs").join(d.algorithm().as_str()).join(d.hex())
}

fn read_index(dir: &Path) -> Result<Option<Index>, TransportError> {
    let p = dir.join("index.json");
    let bytes = match File::open(&p) {
        Ok(f) => {
            let mut b = Vec::new();
            f.take(MAX_JSON + 1)
                .read_to_end(&mut b)
                .map_err(|e| TransportError::io(p.display().to_string(), e))?;
            b
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(TransportError::io(p.display().to_string(), e)),
    };
    let what = p.display().to_string();
    match Document::parse(&bytes, None).map_err(|source| TransportError::Document {
        what: what.clone(),
        source,
    })? {
        Document::Index(i) => Ok(Some(*i)),
        Document::Manifest(_) => Err(TransportError::Archive(format!(
            "{what} is a manifest, not an image index"
        ))),
    }
}

/// An image of an OCI layout directory.
pub struct OciDirSource {
    dir: PathBuf,
    top: RawManifest,
}

impl OciDirSource {
    /// The image `reference` names in `dir` (the only one when None).
    pub fn open(dir: &Path, reference: Option<&str>) -> Result<Self, TransportError> {
        let idx = read_index(dir)?.ok_or_else(|| {
            TransportError::BadReference(format!(
                "{}: not an OCI image layout (no index.json)",
                dir.display()
            ))
        })?;
        let desc = match reference {
            Some(r) => idx
                .manifests
                .iter()
                .find(|d| d.annotations.get(REF_NAME).map(String::as_str) == Some(r))
                .ok_or_else(|| TransportError::NoSuchImage(format!("oci:{}:{r}", dir.display())))?,
            None => match idx.manifests.as_slice() {
                [one] => one,
                [] => {
                    return Err(TransportError::NoSuchImage(format!(
                        "oci:{} (index.json lists no image)",
                        dir.display()
                    )))
                }
                many => {
                    let names: Vec<&str> = many
                        .iter()
                        .filter_map(|d| d.annotations.get(REF_NAME).map(String::as_str))
                        .collect();
                    return Err(TransportError::BadReference(format!(
                        "oci:{} holds {} images; name one as oci:DIR:REF (refs: {})",
                        dir.display(),
                        many.len(),
                        names.join(", ")
                    )));
                }
            },
        };
        let mut src = OciDirSource {
            dir: dir.to_owned(),
            top: RawManifest::new(Vec::new(), ""),
        };
        src.top = src.manifest(desc)?;
        Ok(src)
    }
}

impl ImageSource for OciDirSource {
    fn top(&self) -> Result<RawManifest, TransportError> {
        Ok(self.top.clone())
    }

    fn manifest(&self, d: &Descriptor) -> Result<RawManifest, TransportError> {
        let p = blob_path(&self.dir, &d.digest);
        let what = p.display().to_string();
        let mut bytes = Vec::new();
        File::open(&p)
            .and_then(|f| f.take(MAX_JSON + 1).read_to_end(&mut bytes))
            .map_err(|e| TransportError::io(what.clone(), e))?;
        RawManifest::verified(bytes, d, &what)
    }

    fn blob(&self, d: &Descriptor, offset: u64) -> Result<BlobBody, TransportError> {
        let p = blob_path(&self.dir, &d.digest);
        let file = File::open(&p).map_err(|e| TransportError::io(p.display().to_string(), e))?;
        let len = file
            .metadata()
            .map_err(|e| TransportError::io(p.display().to_string(), e))?
            .len();
        Ok(BlobBody::File {
            file,
            offset,
            len: len.saturating_sub(offset),
        })
    }

    /// The layout's manifests whose subject is `d`: a layout lists
    /// referrers in index.json, untagged, as oras writes them.
    fn referrers(&self, d: &Descriptor) -> Result<Vec<Descriptor>, TransportError> {
        let mut found = Vec::new();
        for e in read_index(&self.dir)?
            .map(|i| i.manifests)
            .unwrap_or_default()
        {
            if e.digest == d.digest || !media_type::is_manifest(&e.media_type) {
                continue;
            }
            let raw = self.manifest(&e)?;
            if let Some((subject, entry)) = referrer_entry(&raw) {
                if subject == d.digest
                    && !found.iter().any(|f: &Descriptor| f.digest == entry.digest)
                {
                    found.push(entry);
                }
            }
        }
        Ok(found)
    }

    fn blame(&self, d: &Descriptor, e: TransportError) -> TransportError {
        let p = blob_path(&self.dir, &d.digest);
        e.renamed(&d.digest.to_string(), &p.display().to_string())
    }
}

/// Writes images into an OCI layout directory (created if missing).
pub struct OciDirDestination {
    dir: PathBuf,
    tops: Mutex<Vec<Descriptor>>,
}

/// Temporary names unique within the process.
static TMP: AtomicU64 = AtomicU64::new(0);

impl OciDirDestination {
    /// A destination writing into `dir`.
    pub fn new(dir: &Path) -> Result<Self, TransportError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| TransportError::io(dir.display().to_string(), e))?;
        Ok(OciDirDestination {
            dir: dir.to_owned(),
            tops: Mutex::new(Vec::new()),
        })
    }

    fn tmp(&self, d: &Digest) -> Result<(PathBuf, File), TransportError> {
        let dir = self.dir.join("blobs").join(d.algorithm().as_str());
        std::fs::create_dir_all(&dir)
            .map_err(|e| TransportError::io(dir.display().to_string(), e))?;
        let p = dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            TMP.fetch_add(1, Ordering::Relaxed)
        ));
        let f = File::create(&p).map_err(|e| TransportError::io(p.display().to_string(), e))?;
        Ok((p, f))
    }

    /// fsyncs and renames a verified temporary file to its digest's name.
    fn place(&self, tmp: &Path, f: File, d: &Digest) -> Result<(), TransportError> {
        let dest = blob_path(&self.dir, d);
        f.sync_data()
            .and_then(|()| std::fs::rename(tmp, &dest))
            .map_err(|e| TransportError::io(dest.display().to_string(), e))
    }

    fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), TransportError> {
        let p = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.tmp-{}", std::process::id()));
        std::fs::write(&tmp, bytes)
            .and_then(|()| File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &p))
            .map_err(|e| TransportError::io(p.display().to_string(), e))
    }
}

impl ImageDestination for OciDirDestination {
    fn has_blob(&self, d: &Descriptor) -> Result<bool, TransportError> {
        Ok(std::fs::metadata(blob_path(&self.dir, &d.digest))
            .is_ok_and(|m| m.is_file() && m.len() == d.size))
    }

    fn put_blob(
        &self,
        d: &Descriptor,
        diff_id: Option<&Digest>,
        body: BlobBody,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), TransportError> {
        let (tmp, mut f) = self.tmp(&d.digest)?;
        let r = write_verified(&d.digest.to_string(), body, &mut f, d, diff_id, progress)
            .and_then(|_| self.place(&tmp, f, &d.digest));
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        r
    }

    fn put_manifest(&self, m: &RawManifest) -> Result<(), TransportError> {
        let d = m.descriptor();
        if let Some((_, entry)) = referrer_entry(m) {
            // Listed untagged in index.json, where a layout's referrers are found.
            self.tops
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(entry);
        }
        if self.has_blob(&d)? {
            return Ok(());
        }
        self.put_blob(&d, None, BlobBody::bytes(m.bytes.clone()), &|_| {})
    }

    fn tag(&self, top: &RawManifest, tags: &[String]) -> Result<(), TransportError> {
        let mut tops = self.tops.lock().unwrap_or_else(|e| e.into_inner());
        let base = top.descriptor();
        if tags.is_empty() {
            tops.push(base.clone());
        }
        for t in tags {
            let mut d = base.clone();
            d.annotations.insert(REF_NAME.to_owned(), t.clone());
            tops.push(d);
        }
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<(), TransportError> {
        let tops = std::mem::take(&mut *self.tops.lock().unwrap_or_else(|e| e.into_inner()));
        let mut idx = read_index(&self.dir)?.unwrap_or(Index {
            schema_version: 2,
            media_type: Some(media_type::OCI_INDEX.to_owned()),
            artifact_type: None,
            manifests: Vec::new(),
            subject: None,
            annotations: BTreeMap::new(),
        });
        // A name moves to the new image; an unnamed entry is not repeated.
        idx.manifests.retain(|old| {
            !tops.iter().any(|new| match new.annotations.get(REF_NAME) {
                Some(n) => old.annotations.get(REF_NAME) == Some(n),
                None => old.digest == new.digest && !old.annotations.contains_key(REF_NAME),
            })
        });
        idx.manifests.extend(tops);
        let bytes = serde_json::to_vec(&idx)
            .map_err(|e| TransportError::Archive(format!("cannot serialise index.json: {e}")))?;
        self.write_file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        self.write_file("index.json", &bytes)
    }
}
