//! The registry's storage: blobs, repository links, manifests, tags, the
//! catalog and referrers, in distribution's layout on a storage driver (the
//! filesystem or an S3 bucket, see [`crate::driver`]).
//!
//! Every method is blocking (plain `std::fs` on the filesystem); the HTTP
//! layer calls them on tokio's blocking pool. Nothing is kept in memory that
//! the storage does not also say, except caches of immutable,
//! content-addressed data, so another process (a garbage collector,
//! `docker-registry`) can work on the same root.
//!
//! The garbage-collection protocol (see [`crate::gc`] and
//! [`crate::claims`]): whoever makes a blob newly referenced (commits it,
//! links it, mounts it, or names it in a manifest) first claims it (its
//! "last used" time becomes now) and only then checks that it exists. The
//! collector deletes a blob only when it was last used before the
//! collection's start, re-checked after moving it aside, so a blob
//! referenced during a collection is either kept or the referencing request
//! fails cleanly with "blob unknown".

use crate::claims;
use crate::driver::{self, Driver, ListVersion, StorageConfig};
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::names::{ManifestRef, RepoName, Tag, UploadId};
use crate::upload::{UploadWriter, Uploads};

mod catalog;
mod referrers;
use bytes::Bytes;
use hoist_oci::{media_type, Algorithm, Digest, Digester, Document};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The largest manifest accepted on PUT (the distribution-spec's suggested limit).
pub const MAX_MANIFEST_SIZE: usize = 4 << 20;
/// The largest stored manifest read back (another writer may have stored bigger).
const MAX_STORED_MANIFEST: u64 = 32 << 20;
/// Memory budget of the manifest cache.
const MANIFEST_CACHE_BYTES: usize = 64 << 20;

/// A blob as found in the store.
#[derive(Clone, Debug)]
pub struct BlobInfo {
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Its `data` file (a layout path; on object storage, its key).
    pub path: PathBuf,
}

/// A manifest's stored bytes and what they are.
#[derive(Clone, Debug)]
pub struct ManifestData {
    /// The digest of the bytes.
    pub digest: Digest,
    /// The media type the document declares or, failing that, its shape implies.
    pub media_type: String,
    /// The exact stored bytes.
    pub bytes: Bytes,
}

/// What a manifest PUT stored.
#[derive(Clone, Debug)]
pub struct PutManifest {
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest's `subject`, for the `OCI-Subject` header.
    pub subject: Option<Digest>,
}

#[derive(Default)]
struct ManifestCache {
    map: HashMap<Digest, Arc<ManifestData>>,
    bytes: usize,
}

/// The storage of one registry root.
pub struct Store {
    pub(crate) layout: Layout,
    pub(crate) driver: Arc<dyn Driver>,
    manifests: Mutex<ManifestCache>,
    summaries: referrers::Summaries,
    /// Tag lists by repository, valid while the tags directory's
    /// [`ListVersion`] is unchanged (a tags list is one `stat` then).
    tag_lists: Mutex<HashMap<RepoName, CachedTags>>,
    uploads: Arc<Uploads>,
}

/// A repository's sorted tags and the tags directory's version they match.
type CachedTags = (ListVersion, Arc<Vec<String>>);

/// Most repositories whose tag lists are kept (bounds memory; the cache is
/// emptied when full).
const TAG_LISTS_CACHED: usize = 1024;

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("base", &self.layout.base())
            .finish()
    }
}

/// The media type of stored manifest bytes: the document's own `mediaType`,
/// else what its shape says (as distribution decides on GET).
pub fn stored_media_type(bytes: &[u8]) -> String {
    match Document::parse(bytes, None) {
        Ok(doc) => doc.media_type().to_owned(),
        Err(_) => {
            #[derive(serde::Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Probe {
                #[serde(default)]
                media_type: Option<String>,
                #[serde(default)]
                schema_version: Option<i64>,
            }
            match serde_json::from_slice::<Probe>(bytes) {
                Ok(Probe {
                    media_type: Some(m),
                    ..
                }) => m,
                Ok(Probe {
                    schema_version: Some(1),
                    ..
                }) => "application/vnd.docker.distribution.manifest.v1+prettyjws".to_owned(),
                _ => "application/json".to_owned(),
            }
        }
    }
}

/// Strips parameters (`; charset=...`) and whitespace from a Content-Type.
fn bare_media_type(ct: &str) -> &str {
    ct.split(';').next().unwrap_or("").trim()
}

impl Store {
    /// Opens (and creates if needed) a registry root on the filesystem.
    pub fn open(root: &Path) -> Result<Self> {
        Self::open_storage(&StorageConfig::Filesystem(root.to_owned()))
    }

    /// Opens the storage a configuration names. S3 storage must be opened
    /// on a thread that may block inside a tokio runtime (`spawn_blocking`).
    pub fn open_storage(cfg: &StorageConfig) -> Result<Self> {
        let driver = driver::open(cfg)?;
        Ok(Store {
            layout: driver.layout().clone(),
            uploads: Arc::new(Uploads::new(driver.clone())),
            driver,
            manifests: Mutex::new(ManifestCache::default()),
            summaries: Mutex::new(HashMap::new()),
            tag_lists: Mutex::new(HashMap::new()),
        })
    }

    /// The path layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// True when blobs are local files (the server then reads them itself).
    pub fn is_local(&self) -> bool {
        self.driver.is_local()
    }

    /// Streams part of a blob's `data` from storage; `None` when the
    /// storage [`is_local`](Store::is_local) and the caller reads `info.path`.
    pub fn blob_stream(
        &self,
        info: &BlobInfo,
        start: u64,
        len: u64,
    ) -> Result<Option<driver::ByteStream>> {
        if self.driver.is_local() {
            return Ok(None);
        }
        self.driver.stream(&info.path, start, len).map(Some)
    }

    /// Reads a link file (`sha256:<hex>`). A missing link, and one whose
    /// content is not a digest (say, torn by a crash of another writer),
    /// both read as absent: the registry then answers "unknown" rather than
    /// failing.
    fn read_link(&self, path: &Path) -> Result<Option<Digest>> {
        let Some(bytes) = self.driver.get(path, 256)? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&bytes);
        match text.trim().parse::<Digest>() {
            Ok(d) => Ok(Some(d)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring malformed link file");
                Ok(None)
            }
        }
    }

    /// Writes a link file unless it already holds `d`. Returns true if written.
    pub(crate) fn write_link(&self, path: &Path, d: &Digest) -> Result<bool> {
        if self.read_link(path)?.as_ref() == Some(d) {
            // Garbage collection reads it as "in use now".
            claims::refresh(&*self.driver, path);
            return Ok(false);
        }
        self.driver.put(path, d.to_string().as_bytes())?;
        Ok(true)
    }

    /// True when the repository exists (has a directory).
    pub fn repo_exists(&self, name: &RepoName) -> Result<bool> {
        self.driver.is_dir(&self.layout.repo(name))
    }

    /// The blob's `data` file size, if the global blob store has it.
    pub fn blob_data_size(&self, d: &Digest) -> Result<Option<u64>> {
        Ok(self.driver.stat(&self.layout.blob_data(d))?.map(|i| i.size))
    }

    /// True when `name` links `d` as a layer blob.
    fn layer_linked(&self, name: &RepoName, d: &Digest) -> Result<bool> {
        Ok(self.read_link(&self.layout.layer_link(name, d))?.as_ref() == Some(d))
    }

    /// True when `name` has the manifest revision `d`.
    pub fn revision_linked(&self, name: &RepoName, d: &Digest) -> Result<bool> {
        Ok(self
            .read_link(&self.layout.revision_link(name, d))?
            .as_ref()
            == Some(d))
    }

    /// Finds a blob of a repository: linked there (as a layer, or as a
    /// manifest revision) and present in the blob store.
    pub fn blob_stat(&self, name: &RepoName, d: &Digest) -> Result<BlobInfo> {
        if !(self.layer_linked(name, d)? || self.revision_linked(name, d)?) {
            return Err(Error::BlobUnknown(d.clone()));
        }
        match self.blob_data_size(d)? {
            Some(size) => Ok(BlobInfo {
                digest: d.clone(),
                size,
                path: self.layout.blob_data(d),
            }),
            None => Err(Error::BlobUnknown(d.clone())),
        }
    }

    /// Marks a blob as just referenced (see the module docs) and reports
    /// whether it exists.
    pub(crate) fn claim_blob(&self, d: &Digest) -> Result<bool> {
        claims::claim(&*self.driver, &self.layout.blob_data(d))
    }

    /// Links an existing blob into a repository.
    pub(crate) fn link_blob(&self, name: &RepoName, d: &Digest) -> Result<()> {
        self.write_link(&self.layout.layer_link(name, d), d)?;
        Ok(())
    }

    /// Cross-repository mount: links `d` into `name` if `from` has it (or,
    /// with `from` absent, if the registry has it at all). `None` when not.
    pub fn mount_blob(
        &self,
        name: &RepoName,
        d: &Digest,
        from: Option<&RepoName>,
    ) -> Result<Option<BlobInfo>> {
        if let Some(from) = from {
            if !self.layer_linked(from, d)? {
                return Ok(None);
            }
        }
        if !self.claim_blob(d)? {
            return Ok(None);
        }
        self.link_blob(name, d)?;
        self.blob_stat(name, d).map(Some)
    }

    /// Removes a blob from a repository (its link; the bytes go at the next
    /// garbage collection if nothing else uses them).
    pub fn delete_blob(&self, name: &RepoName, d: &Digest) -> Result<()> {
        let link = self.layout.layer_link(name, d);
        if self.read_link(&link)?.as_ref() != Some(d) {
            return Err(Error::BlobUnknown(d.clone()));
        }
        claims::delete(&*self.driver, &link)?;
        if let Some(dir) = link.parent() {
            self.driver
                .prune_empty_dirs(dir, &self.layout.layers_dir(name));
        }
        Ok(())
    }

    /// Makes a verified, committed upload's `data` file blob `d` (unless the
    /// store already has `d`).
    pub(crate) fn commit_blob_upload(&self, data: &Path, d: &Digest) -> Result<()> {
        if self.claim_blob(d)? {
            return Ok(());
        }
        let blob = self.layout.blob_data(d);
        if !self.driver.rename(data, &blob)? {
            return Err(Error::Io {
                op: "rename",
                path: data.to_owned(),
                source: std::io::ErrorKind::NotFound.into(),
            });
        }
        // A rename in place keeps the file's old time (its first byte's):
        // make it "now" so a collection that started meanwhile keeps it.
        if self.driver.can_touch() {
            claims::refresh(&*self.driver, &blob);
        }
        Ok(())
    }

    /// Starts an upload session.
    pub fn start_upload(&self, name: &RepoName) -> Result<UploadId> {
        self.uploads.start(name)
    }

    /// How many bytes an upload session has received.
    pub fn upload_status(&self, name: &RepoName, id: &UploadId) -> Result<u64> {
        self.uploads.status(name, id)
    }

    /// Cancels an upload session and deletes what it received.
    pub fn cancel_upload(&self, name: &RepoName, id: &UploadId) -> Result<()> {
        self.uploads.cancel(name, id)
    }

    /// Opens a session for appending. With `start`, the chunk must begin
    /// exactly where the session ends (else [`Error::RangeInvalid`]).
    pub fn upload_writer(
        &self,
        name: &RepoName,
        id: &UploadId,
        start: Option<u64>,
    ) -> Result<UploadWriter> {
        self.uploads.writer(name, id, start)
    }

    /// Finishes an upload: checks the digest of everything received and
    /// commits it as a blob of the session's repository. On a mismatch the
    /// session is deleted and nothing is committed.
    pub fn commit_upload(&self, w: UploadWriter, expected: &Digest) -> Result<BlobInfo> {
        let mut w = w;
        let data = w.verify(expected)?;
        let name = w.name().clone();
        let info = self
            .commit_blob_upload(&data, expected)
            .and_then(|()| self.link_blob(&name, expected))
            .and_then(|()| self.blob_stat(&name, expected))?;
        w.discard()?;
        Ok(info)
    }

    /// Stores bytes as blob `d` (already verified) unless present.
    pub(crate) fn put_blob_bytes(&self, d: &Digest, bytes: &[u8]) -> Result<()> {
        if self.claim_blob(d)? {
            return Ok(());
        }
        self.driver.put(&self.layout.blob_data(d), bytes)
    }

    /// Resolves a tag to the digest its `current/link` names.
    pub fn resolve_tag(&self, name: &RepoName, tag: &Tag) -> Result<Option<Digest>> {
        self.read_link(&self.layout.tag_current(name, tag))
    }

    /// Reads a manifest by tag or digest.
    pub fn get_manifest(&self, name: &RepoName, r: &ManifestRef) -> Result<Arc<ManifestData>> {
        let unknown = || Error::ManifestUnknown {
            name: name.clone(),
            reference: r.to_string(),
        };
        let d = match r {
            ManifestRef::Digest(d) => d.clone(),
            ManifestRef::Tag(t) => self.resolve_tag(name, t)?.ok_or_else(unknown)?,
        };
        if !self.revision_linked(name, &d)? {
            return Err(unknown());
        }
        self.manifest_by_digest(&d)?.ok_or_else(unknown)
    }

    /// A manifest's bytes from the blob store (cached: content-addressed,
    /// so a cached entry can never be stale).
    fn manifest_by_digest(&self, d: &Digest) -> Result<Option<Arc<ManifestData>>> {
        if let Some(m) = self.lock_manifests().map.get(d) {
            return Ok(Some(m.clone()));
        }
        let path = self.layout.blob_data(d);
        let Some(bytes) = self.driver.get(&path, MAX_STORED_MANIFEST)? else {
            return Ok(None);
        };
        let data = Arc::new(ManifestData {
            digest: d.clone(),
            media_type: stored_media_type(&bytes),
            bytes: Bytes::from(bytes),
        });
        let mut cache = self.lock_manifests();
        if cache.bytes + data.bytes.len() > MANIFEST_CACHE_BYTES {
            cache.map.clear();
            cache.bytes = 0;
        }
        cache.bytes += data.bytes.len();
        cache.map.insert(d.clone(), data.clone());
        Ok(Some(data))
    }

    fn lock_manifests(&self) -> std::sync::MutexGuard<'_, ManifestCache> {
        // A panic while holding the lock cannot leave the cache inconsistent
        // in a harmful way (worst case a stale byte count), so poison is ignored.
        self.manifests.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Validates and stores a manifest, then points the tag at it.
    pub fn put_manifest(
        &self,
        name: &RepoName,
        r: &ManifestRef,
        content_type: Option<&str>,
        bytes: Bytes,
    ) -> Result<PutManifest> {
        if bytes.len() > MAX_MANIFEST_SIZE {
            return Err(Error::ManifestTooLarge(MAX_MANIFEST_SIZE));
        }
        let alg = match r {
            ManifestRef::Digest(d) => d.algorithm(),
            ManifestRef::Tag(_) => Algorithm::Sha256,
        };
        let mut h = Digester::new(alg);
        h.update(&bytes);
        let digest = h.finish();
        if let ManifestRef::Digest(expected) = r {
            if *expected != digest {
                return Err(Error::DigestMismatch {
                    expected: expected.clone(),
                    actual: digest,
                });
            }
        }
        let declared = content_type.map(bare_media_type).filter(|c| !c.is_empty());
        let doc =
            Document::parse(&bytes, declared).map_err(|e| Error::ManifestInvalid(e.to_string()))?;
        let mt = doc.media_type().to_owned();
        if !(media_type::is_manifest(&mt) || media_type::is_index(&mt)) {
            return Err(Error::ManifestInvalid(format!(
                "unsupported manifest media type {mt:?}"
            )));
        }
        if let Some(ct) = declared {
            let generic = ct == "application/json" || ct == "application/octet-stream";
            if !generic && ct != mt {
                return Err(Error::ManifestInvalid(format!(
                    "Content-Type {ct:?} does not match the document's media type {mt:?}"
                )));
            }
        }
        let subject = match &doc {
            Document::Manifest(m) => {
                for desc in std::iter::once(&m.config).chain(&m.layers) {
                    // Foreign layers live elsewhere (their `urls`); the
                    // registry is not expected to hold them.
                    if !desc.urls.is_empty() {
                        continue;
                    }
                    if !self.claim_blob(&desc.digest)? || !self.layer_linked(name, &desc.digest)? {
                        return Err(Error::ManifestBlobUnknown(desc.digest.clone()));
                    }
                }
                m.subject.as_ref().map(|s| s.digest.clone())
            }
            Document::Index(i) => {
                for desc in &i.manifests {
                    if !self.revision_linked(name, &desc.digest)?
                        || !self.claim_blob(&desc.digest)?
                    {
                        return Err(Error::ManifestBlobUnknown(desc.digest.clone()));
                    }
                }
                i.subject.as_ref().map(|s| s.digest.clone())
            }
        };
        self.put_blob_bytes(&digest, &bytes)?;
        self.write_link(&self.layout.revision_link(name, &digest), &digest)?;
        if let ManifestRef::Tag(tag) = r {
            self.write_link(&self.layout.tag_index_link(name, tag, &digest), &digest)?;
            self.write_link(&self.layout.tag_current(name, tag), &digest)?;
        }
        Ok(PutManifest { digest, subject })
    }

    /// Deletes a tag alone, or a manifest by digest (with the tags that point
    /// at it, as distribution does).
    pub fn delete_manifest(&self, name: &RepoName, r: &ManifestRef) -> Result<()> {
        let unknown = || Error::ManifestUnknown {
            name: name.clone(),
            reference: r.to_string(),
        };
        match r {
            ManifestRef::Tag(tag) => {
                let current = self.layout.tag_current(name, tag);
                // Removing current/link first makes the tag vanish at once;
                // the rest of its directory is bookkeeping.
                if !claims::delete(&*self.driver, &current)? {
                    return Err(unknown());
                }
                claims::delete_tree(&*self.driver, &self.layout.tag_dir(name, tag))
            }
            ManifestRef::Digest(d) => {
                let link = self.layout.revision_link(name, d);
                if self.read_link(&link)?.as_ref() != Some(d) {
                    return Err(unknown());
                }
                for tag in self.tags(name)? {
                    let Ok(tag) = Tag::new(&tag) else { continue };
                    if self.resolve_tag(name, &tag)?.as_ref() == Some(d) {
                        claims::delete(&*self.driver, &self.layout.tag_current(name, &tag))?;
                        claims::delete_tree(&*self.driver, &self.layout.tag_dir(name, &tag))?;
                    }
                }
                claims::delete(&*self.driver, &link)?;
                if let (Some(dir), Some(stop)) =
                    (link.parent(), link.parent().and_then(Path::parent))
                {
                    self.driver.prune_empty_dirs(dir, stop);
                }
                Ok(())
            }
        }
    }

    /// All tags of a repository, sorted.
    pub fn tags(&self, name: &RepoName) -> Result<Vec<String>> {
        self.tags_shared(name).map(|t| t.as_ref().clone())
    }

    /// All tags of a repository, sorted, shared with the cache.
    pub fn tags_shared(&self, name: &RepoName) -> Result<Arc<Vec<String>>> {
        let dir = self.layout.tags_dir(name);
        let version = self.driver.list_version(&dir);
        if let Some(v) = version {
            let cache = self.tag_lists.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((cv, tags)) = cache.get(name) {
                if *cv == v {
                    return Ok(tags.clone());
                }
            }
        }
        if !self.repo_exists(name)? {
            return Err(Error::NameUnknown(name.clone()));
        }
        let mut tags: Vec<String> = self
            .driver
            .list(&dir)?
            .into_iter()
            .filter(|(n, is_dir)| *is_dir && Tag::new(n).is_ok())
            .map(|(n, _)| n)
            .collect();
        tags.sort_unstable();
        let tags = Arc::new(tags);
        // The version was taken before the listing: a change in between
        // gives a newer version next time, never a stale hit.
        if let Some(v) = version {
            let mut cache = self.tag_lists.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= TAG_LISTS_CACHED {
                cache.clear();
            }
            cache.insert(name.clone(), (v, tags.clone()));
        }
        Ok(tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_of_stored_bytes() {
        assert_eq!(
            stored_media_type(br#"{"schemaVersion":2,"manifests":[]}"#),
            media_type::OCI_INDEX
        );
        assert_eq!(
            stored_media_type(br#"{"schemaVersion":1,"name":"x"}"#),
            "application/vnd.docker.distribution.manifest.v1+prettyjws"
        );
        assert_eq!(stored_media_type(b"nonsense"), "application/json");
    }
}
