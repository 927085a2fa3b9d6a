//! `docker://REGISTRY/REPOSITORY[:TAG|@DIGEST]`: a registry as a source
//! and as a destination, over the registry client's blocking facade (it
//! owns the tokio runtime; these traits stay blocking, see the crate docs).
//!
//! As a source, manifests are verified against what names them; a small
//! blob is a stream the destination verifies as it writes, a large one is
//! fetched first as several bounded ranges at once into a scratch file
//! (resumed after a cut, digest and size checked) and handed over as a
//! file. Given the store's ingest (a pull), every layer is fetched into a
//! resumable partial blob there instead: a pull killed at any moment goes
//! on from the last checkpoint next time, and the finished blob is handed
//! over staged, with its diffID measured, for the store to commit by rename. As a destination, a blob the repository has is skipped, one that
//! another repository of the same registry has is mounted, and the rest is
//! uploaded (the registry checks digest and size); manifests go by digest,
//! then the tags.

use crate::blobio::{bomb_limit, measure_diff};
use crate::destination::ImageDestination;
use crate::referrers::{add_to_tag_index, referrer_entry};
use crate::source::{BlobBody, ImageSource, RawManifest};
use crate::TransportError;
use hoist_archive::compression;
use hoist_oci::media_type::{self, Compression};
use hoist_oci::{Descriptor, Digest, Reference};
use hoist_registry_client::blocking::RegistryClient;
use hoist_registry_client::{Error as ClientError, Options, Partial, PrefixHash, UploadBody};
use hoist_store::{Ingest, ResumableBlob, Store, StoreError};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Told the bytes of a blob as they arrive, for blobs fetched whole before
/// the copy engine sees them (the engine reports streamed ones itself).
pub type FetchProgress = Arc<dyn Fn(&Descriptor, u64) + Send + Sync>;

/// Told each blob a destination mounted and the repository it came from.
pub type MountReport = Arc<dyn Fn(&Descriptor, &str) + Send + Sync>;

/// How often a blob another process is receiving is looked at again.
const BUSY_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Blobs at least this large are fetched as parallel ranges into a scratch file.
const RANGED_FETCH_MIN: u64 = 64 << 20;

/// A registry error as a transport error: "no such image" stays one, the
/// rest keeps the client's wording (registry, repository, its code).
fn client_error(what: &str, e: ClientError) -> TransportError {
    if e.is_not_found() {
        return TransportError::NoSuchImage(format!("{what} ({e})"));
    }
    TransportError::io(what, std::io::Error::other(e))
}

/// The manifest reference a `docker://` reference asks for.
fn manifest_ref(r: &Reference) -> String {
    match (r.digest(), r.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_owned(),
        (None, None) => "latest".to_owned(),
    }
}

/// An image in a registry.
pub struct RegistrySource {
    client: RegistryClient,
    name: String,
    repo: String,
    top: RawManifest,
    scratch: PathBuf,
    /// The store's ingest and root, for resumable fetches.
    store: Option<(Ingest, PathBuf)>,
    fetched: Option<FetchProgress>,
}

impl RegistrySource {
    /// The image `r` names, its manifest or index fetched (and checked).
    pub fn open(r: &Reference, opts: &Options) -> Result<Self, TransportError> {
        let name = format!("docker://{r}");
        let client = RegistryClient::new(r.domain(), opts).map_err(|e| client_error(&name, e))?;
        let m = client
            .get_manifest(r.path(), &manifest_ref(r))
            .map_err(|e| client_error(&name, e))?;
        Ok(RegistrySource {
            client,
            repo: r.path().to_owned(),
            top: RawManifest {
                bytes: m.bytes,
                media_type: m.media_type,
                digest: m.digest,
            },
            name,
            scratch: std::env::temp_dir(),
            store: None,
            fetched: None,
        })
    }

    /// The registry (`host[:port]`), to tell a copy within one registry.
    pub fn registry(&self) -> &str {
        self.client.registry()
    }

    /// The repository, for a destination on the same registry to mount from.
    pub fn repository(&self) -> &str {
        &self.repo
    }

    /// Where large blobs are fetched before they are handed over (default the temp dir).
    pub fn with_scratch(mut self, dir: &Path) -> Self {
        self.scratch = dir.to_owned();
        self
    }

    /// Fetches layers resumably into `store`'s ingest (see the module docs).
    pub fn with_store(mut self, store: &Store) -> Self {
        self.store = Some((store.ingest(), store.root().to_owned()));
        self
    }

    /// Reports the bytes of blobs fetched whole before they are handed over.
    pub fn with_progress(mut self, f: FetchProgress) -> Self {
        self.fetched = Some(f);
        self
    }

    /// Fetches `d` as parallel ranges into an unlinked scratch file.
    fn fetch_to_file(&self, d: &Descriptor) -> Result<BlobBody, TransportError> {
        let what = format!("{} blob {}", self.name, d.digest);
        let file = tempfile::tempfile_in(&self.scratch)
            .map_err(|e| TransportError::io(self.scratch.display().to_string(), e))?;
        let mut partial = Partial::new(d.digest.algorithm());
        self.client
            .fetch_blob(&self.repo, d, &file, &mut partial, &|n| self.report(d, n))
            .map_err(|e| client_error(&what, e))?;
        Ok(BlobBody::File {
            file,
            offset: 0,
            len: d.size,
        })
    }

    fn report(&self, d: &Descriptor, n: u64) {
        if let Some(f) = &self.fetched {
            f(d, n);
        }
    }

    /// Fetches layer `d` into its resumable partial blob in `ingest`, from
    /// where an earlier attempt stopped, and hands it over staged.
    fn fetch_resumable(
        &self,
        ingest: &Ingest,
        root: &Path,
        d: &Descriptor,
    ) -> Result<BlobBody, TransportError> {
        let what = format!("{} blob {}", self.name, d.digest);
        // Another hoist receiving the same blob holds it until its copy
        // commits: wait, then take what it committed (the destination
        // verifies it again), or go on from where it stopped.
        let committed = root
            .join("blobs")
            .join(d.digest.algorithm().as_str())
            .join(d.digest.hex());
        let blob = loop {
            if let Ok(file) = std::fs::File::open(&committed) {
                self.report(d, d.size);
                return Ok(BlobBody::File {
                    file,
                    offset: 0,
                    len: d.size,
                });
            }
            match ingest.resume(&d.digest) {
                Err(StoreError::Busy(_)) => std::thread::sleep(BUSY_POLL),
                other => break other?,
            }
        };
        let file = blob.data_file()?;
        let start = blob.offset();
        if start > 0 {
            self.report(d, start);
        }
        let shared = Arc::new(Mutex::new(blob));
        let failed = Arc::new(Mutex::new(None));
        let mut partial = Partial::resume(
            start,
            Box::new(StoreHash {
                blob: shared.clone(),
                failed: failed.clone(),
            }),
        );
        let fetched = self
            .client
            .fetch_blob(&self.repo, d, &file, &mut partial, &|n| self.report(d, n));
        drop(partial);
        if let Some(e) = lock(&failed).take() {
            return Err(e.into());
        }
        let mut blob = Arc::try_unwrap(shared)
            .map_err(|_| TransportError::Archive(format!("{what}: the fetch kept its blob")))?
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        if let Err(e) = fetched {
            // Wrong bytes (digest or size): the partial blob cannot be
            // resumed from; finishing it fails its check and removes it.
            // A cut or a refusal keeps it for the next attempt.
            if matches!(e, ClientError::Invalid { .. }) {
                let _ = blob.finish(Some(d.size));
            }
            return Err(client_error(&what, e));
        }
        // A registry that ignored Range sent the blob again from its start,
        // into the same file: hash what the blob has not seen yet.
        blob.hash_through(d.size)?;
        let staged = blob.finish(Some(d.size))?;
        let mut head = [0u8; 8];
        let n = file
            .read_at(&mut head[..d.size.min(8) as usize], 0)
            .map_err(|e| TransportError::io(what.clone(), e))?;
        let diff_id = if compression::detect(&head[..n]) == Compression::None {
            (d.digest.clone(), d.size)
        } else {
            let f = std::fs::File::open(staged.path())
                .map_err(|e| TransportError::io(staged.path().display().to_string(), e))?;
            measure_diff(f, bomb_limit(d.size)).map_err(|f| f.into_error(&d.digest.to_string()))?
        };
        Ok(BlobBody::Staged {
            blob: staged,
            diff_id: Some(diff_id),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The store's resumable blob as the client's prefix hash: the client
/// writes ranges into the blob's file, and as the verified prefix grows the
/// blob hashes it (read back from the page cache) and checkpoints, so a
/// killed pull resumes from the last checkpoint.
struct StoreHash {
    blob: Arc<Mutex<ResumableBlob>>,
    /// The first error of the store (the client's trait cannot return one).
    failed: Arc<Mutex<Option<StoreError>>>,
}

impl PrefixHash for StoreHash {
    fn update(&mut self, bytes: &[u8]) {
        let mut b = lock(&self.blob);
        let end = b.offset() + bytes.len() as u64;
        if let Err(e) = b.hash_through(end) {
            lock(&self.failed).get_or_insert(e);
        }
    }

    fn digest(&self) -> Digest {
        lock(&self.blob).digest()
    }
}

impl ImageSource for RegistrySource {
    fn top(&self) -> Result<RawManifest, TransportError> {
        Ok(self.top.clone())
    }

    fn manifest(&self, d: &Descriptor) -> Result<RawManifest, TransportError> {
        let what = format!("{} manifest {}", self.name, d.digest);
        let m = self
            .client
            .get_manifest(&self.repo, &d.digest.to_string())
            .map_err(|e| client_error(&what, e))?;
        RawManifest::verified(m.bytes, d, &what)
    }

    fn referrers(&self, d: &Descriptor) -> Result<Vec<Descriptor>, TransportError> {
        let what = format!("{} referrers of {}", self.name, d.digest);
        self.client
            .referrers(&self.repo, &d.digest, None)
            .map_err(|e| client_error(&what, e))
    }

    fn blob(&self, d: &Descriptor, offset: u64) -> Result<BlobBody, TransportError> {
        if let Some((ingest, root)) = &self.store {
            if offset == 0 && !media_type::is_config(&d.media_type) {
                return self.fetch_resumable(ingest, root, d);
            }
        }
        if offset == 0 && d.size >= RANGED_FETCH_MIN {
            return self.fetch_to_file(d);
        }
        let what = format!("{} blob {}", self.name, d.digest);
        let r = self
            .client
            .open_blob(&self.repo, &d.digest, offset)
            .map_err(|e| client_error(&what, e))?;
        Ok(BlobBody::Stream(Box::new(r)))
    }
}

/// A repository of a registry, written into.
pub struct RegistryDestination {
    client: RegistryClient,
    name: String,
    repo: String,
    tag: Option<String>,
    mount_from: Vec<String>,
    mounted: Option<MountReport>,
}

impl RegistryDestination {
    /// Writes into the repository `r` names; its tag (if any) is the
    /// default name of what is copied.
    pub fn new(r: &Reference, opts: &Options) -> Result<Self, TransportError> {
        let name = format!("docker://{r}");
        let client = RegistryClient::new(r.domain(), opts).map_err(|e| client_error(&name, e))?;
        Ok(RegistryDestination {
            client,
            name,
            repo: r.path().to_owned(),
            tag: r.tag().map(str::to_owned),
            mount_from: Vec::new(),
            mounted: None,
        })
    }

    /// The registry (`host[:port]`).
    pub fn registry(&self) -> &str {
        self.client.registry()
    }

    /// Repositories of the same registry that blobs may be mounted from
    /// (the source's repository, when copying within one registry).
    pub fn with_mount_from(mut self, repos: Vec<String>) -> Self {
        self.mount_from = repos;
        self
    }

    /// Tells `f` each blob mounted, and from which repository.
    pub fn with_mount_report(mut self, f: MountReport) -> Self {
        self.mounted = Some(f);
        self
    }
}

impl ImageDestination for RegistryDestination {
    fn has_blob(&self, d: &Descriptor) -> Result<bool, TransportError> {
        let what = format!("{} blob {}", self.name, d.digest);
        Ok(self
            .client
            .blob_size(&self.repo, &d.digest)
            .map_err(|e| client_error(&what, e))?
            .is_some())
    }

    fn mount_blob(&self, d: &Descriptor) -> Result<bool, TransportError> {
        for from in self.mount_from.iter().filter(|f| **f != self.repo) {
            let what = format!("{} blob {} from {from}", self.name, d.digest);
            if self
                .client
                .mount_blob(&self.repo, &d.digest, from)
                .map_err(|e| client_error(&what, e))?
            {
                if let Some(f) = &self.mounted {
                    f(d, from);
                }
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn put_blob(
        &self,
        d: &Descriptor,
        _diff_id: Option<&Digest>,
        body: BlobBody,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), TransportError> {
        let what = format!("{} blob {}", self.name, d.digest);
        // A file region is re-read on a retry; the registry checks the
        // digest and size at the final PUT.
        let upload = match body {
            BlobBody::File { file, offset, len } => UploadBody::File { file, offset, len },
            BlobBody::Stream(s) => UploadBody::Reader(s),
            BlobBody::Staged { blob, .. } => UploadBody::File {
                file: std::fs::File::open(blob.path())
                    .map_err(|e| TransportError::io(blob.path().display().to_string(), e))?,
                offset: 0,
                len: blob.size(),
            },
        };
        self.client
            .push_blob(&self.repo, d, upload, progress)
            .map_err(|e| client_error(&what, e))
    }

    fn put_manifest(&self, m: &RawManifest) -> Result<(), TransportError> {
        let what = format!("{} manifest {}", self.name, m.digest);
        let Some((subject, entry)) = referrer_entry(m) else {
            self.client
                .put_manifest(&self.repo, &m.digest.to_string(), &m.bytes, &m.media_type)
                .map_err(|e| client_error(&what, e))?;
            return Ok(());
        };
        let indexed = self
            .client
            .put_referrer(&self.repo, &m.bytes, &m.media_type)
            .map_err(|e| client_error(&what, e))?;
        if !indexed {
            add_to_tag_index(&self.client, &self.repo, &subject, entry)
                .map_err(|e| client_error(&format!("{what}: the referrers tag of {subject}"), e))?;
        }
        Ok(())
    }

    fn tag(&self, top: &RawManifest, tags: &[String]) -> Result<(), TransportError> {
        let own: Vec<String> = self.tag.iter().cloned().collect();
        let tags = if tags.is_empty() { &own[..] } else { tags };
        for t in tags {
            let what = format!("{} tag {t}", self.name);
            self.client
                .put_manifest(&self.repo, t, &top.bytes, &top.media_type)
                .map_err(|e| client_error(&what, e))?;
        }
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<(), TransportError> {
        // A registry makes each manifest visible as it is put.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{copy, CopyOptions, NoProgress};
    use hoist_oci::media_type;
    use std::collections::HashMap;
    use std::io::Read;

    /// A hand-made one-layer image in memory.
    struct Mem {
        top: RawManifest,
        blobs: HashMap<Digest, Vec<u8>>,
    }

    impl Mem {
        fn new() -> Mem {
            let layer: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
            let config = serde_json::json!({
                "architecture": "amd64", "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [Digest::sha256(&layer)]},
            })
            .to_string()
            .into_bytes();
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": media_type::OCI_MANIFEST,
                "config": {"mediaType": media_type::OCI_CONFIG, "digest": Digest::sha256(&config), "size": config.len()},
                "layers": [{"mediaType": media_type::OCI_LAYER_TAR, "digest": Digest::sha256(&layer), "size": layer.len()}],
            })
            .to_string()
            .into_bytes();
            Mem {
                top: RawManifest::new(manifest, media_type::OCI_MANIFEST),
                blobs: HashMap::from([
                    (Digest::sha256(&layer), layer),
                    (Digest::sha256(&config), config),
                ]),
            }
        }
    }

    impl ImageSource for Mem {
        fn top(&self) -> Result<RawManifest, TransportError> {
            Ok(self.top.clone())
        }
        fn manifest(&self, d: &Descriptor) -> Result<RawManifest, TransportError> {
            Err(TransportError::NoSuchImage(d.digest.to_string()))
        }
        fn blob(&self, d: &Descriptor, offset: u64) -> Result<BlobBody, TransportError> {
            Ok(BlobBody::bytes(
                self.blobs[&d.digest][offset as usize..].to_vec(),
            ))
        }
    }

    fn opts() -> Options {
        Options {
            docker_config: Some("/nonexistent/config.json".into()),
            certs_dirs: Vec::new(),
            ..Options::default()
        }
    }

    #[test]
    fn an_image_goes_to_docker_registry_and_comes_back_byte_for_byte() {
        let reg = hoist_testkit::Registry::start();
        let mem = Mem::new();
        let r = Reference::parse(&format!("{}/t/app:v1", reg.addr())).unwrap();
        let dst = RegistryDestination::new(&r, &opts()).unwrap();
        let copied = copy(
            &mem,
            Box::new(dst),
            &[],
            &CopyOptions::default(),
            &NoProgress,
        )
        .unwrap();
        assert_eq!(copied.top, mem.top);

        let src = RegistrySource::open(&r, &opts()).unwrap();
        assert_eq!(src.top().unwrap(), mem.top);
        for (d, bytes) in &mem.blobs {
            let desc = Descriptor::new(media_type::OCI_LAYER_TAR, d.clone(), bytes.len() as u64);
            let mut got = Vec::new();
            match src.blob(&desc, 0).unwrap() {
                BlobBody::Stream(mut s) => s.read_to_end(&mut got).unwrap(),
                _ => panic!("a small blob comes as a stream"),
            };
            assert!(got == *bytes, "blob {d} differs");
        }

        // Into another repository of the same registry: tagged by the copy's
        // own names, blobs mounted from the first.
        let r2 = Reference::parse(&format!("{}/t/other", reg.addr())).unwrap();
        let dst = RegistryDestination::new(&r2, &opts()).unwrap();
        assert_eq!(dst.registry(), src.registry());
        let dst = dst.with_mount_from(vec![src.repository().to_owned()]);
        copy(
            &src,
            Box::new(dst),
            &["x".into(), "y".into()],
            &CopyOptions::default(),
            &NoProgress,
        )
        .unwrap();
        let c = RegistryClient::new(reg.addr(), &opts()).unwrap();
        assert_eq!(c.list_tags("t/other", None).unwrap(), ["x", "y"]);

        let missing = Reference::parse(&format!("{}/t/app:nope", reg.addr())).unwrap();
        match RegistrySource::open(&missing, &opts()) {
            Err(TransportError::NoSuchImage(m)) => assert!(m.contains("t/app:nope"), "{m}"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a missing tag opened"),
        }
    }
}
