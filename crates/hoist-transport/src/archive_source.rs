//! `docker-archive:` and `oci-archive:` as copy sources: every image an
//! archive holds, each with its top manifest (the original bytes when the
//! archive has them, else one made from `manifest.json` exactly as hoist
//! always made it) and its names.

use crate::archive::ArchiveFiles;
use crate::blobio::measure_span;
use crate::source::{BlobBody, ImageSource, RawManifest};
use crate::{Progress, TransportError, MAX_JSON};
use hoist_archive::compression;
use hoist_oci::media_type::{self, Compression};
use hoist_oci::{Algorithm, Config, Descriptor, Digest, Document, Manifest, Platform, Reference};
use hoist_store::Store;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;

/// What to do with a tarball that is not an image archive.
const IMPORT_HINT: &str =
    "to make an image of a root filesystem tarball, use `hoist import FILE [REPOSITORY[:TAG]]`";
/// Where an archive comes from.
pub enum LoadInput {
    /// A file: read in place, members by offset.
    File(File),
    /// A stream (stdin): read once.
    Stream(Box<dyn Read + Send>),
}

/// One image of an archive.
#[derive(Clone, Debug)]
pub struct ArchiveImage {
    /// Its manifest (or index).
    pub top: RawManifest,
    /// The names the archive gives it.
    pub tags: Vec<Reference>,
}

/// An opened `docker save` or OCI archive.
pub struct ArchiveSource {
    files: ArchiveFiles,
    images: Vec<ArchiveImage>,
    /// Manifests made here (no bytes in the archive), by digest.
    made: HashMap<Digest, RawManifest>,
    /// Blobs whose member is not `blobs/<alg>/<hex>`, by digest.
    members: HashMap<Digest, String>,
    /// Layer digests taken from the config's diffID (an uncompressed member
    /// is its own diffID): a mismatch is the config's diffID being wrong.
    assumed: HashSet<Digest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn doc_err(what: &str) -> impl FnOnce(hoist_oci::DocumentError) -> TransportError + '_ {
    move |source| TransportError::Document {
        what: what.to_owned(),
        source,
    }
}

pub(crate) fn blob_member(d: &Digest) -> String {
    d.layout_path()
}

fn parse_ref(s: &str, what: &str) -> Result<Reference, TransportError> {
    Reference::parse(s)
        .map(Reference::with_default_tag)
        .map_err(|e| TransportError::Archive(format!("{what}: {e}")))
}

/// The references an OCI layout's `index.json` entry names its image by, as
/// `docker load` reads them: containerd's image name, else a ref name that is
/// a full reference (as skopeo writes); a bare tag (`v1`) names nothing.
pub(crate) fn oci_entry_tags(d: &Descriptor) -> Result<Vec<Reference>, TransportError> {
    let mut tags = Vec::new();
    if let Some(name) = d.annotations.get("io.containerd.image.name") {
        tags.push(parse_ref(name, "index.json io.containerd.image.name")?);
    } else if let Some(name) = d.annotations.get(crate::oci_dir::REF_NAME) {
        if name.contains(':') {
            if let Ok(r) = Reference::parse(name) {
                tags.push(r.with_default_tag());
            }
        }
    }
    Ok(tags)
}

/// Opens the input and indexes its members, undoing any outer compression.
fn open_input(
    input: LoadInput,
    store: &Store,
    progress: &dyn Progress,
) -> Result<ArchiveFiles, TransportError> {
    match input {
        LoadInput::File(f) => {
            let mut head = [0u8; 8];
            let n = f
                .read_at(&mut head, 0)
                .map_err(|e| TransportError::io("reading the archive", e))?;
            match compression::detect(&head[..n]) {
                Compression::None => ArchiveFiles::scan_file(f),
                c => {
                    ArchiveFiles::scan_stream(decompress_archive(Box::new(f), c)?, store, progress)
                }
            }
        }
        LoadInput::Stream(r) => {
            // A pipe may hand over fewer bytes than the magic needs: sniff loops until it has them.
            let br = BufReader::with_capacity(1 << 20, r);
            let (comp, sniffed) =
                compression::sniff(br).map_err(|e| TransportError::io("reading the archive", e))?;
            if sniffed.get_ref().0.get_ref().is_empty() {
                return Err(TransportError::Archive(
                    "the input is empty; give an archive with -i FILE or on stdin".into(),
                ));
            }
            match comp {
                Compression::None => ArchiveFiles::scan_stream(sniffed, store, progress),
                c => ArchiveFiles::scan_stream(
                    decompress_archive(Box::new(sniffed), c)?,
                    store,
                    progress,
                ),
            }
        }
    }
}

/// Undoes a compressed archive's outer compression, held to the same bound
/// as a layer's: past the floor, at most the bomb ratio of bytes out per byte
/// in so far. Without it a small .tar.gz could fill the disk via `ingest/`.
fn decompress_archive(
    r: Box<dyn Read + Send>,
    c: Compression,
) -> Result<Box<dyn Read + Send>, TransportError> {
    use crate::blobio::{BOMB_FLOOR, BOMB_RATIO};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    struct Counted<R>(R, Arc<AtomicU64>);
    impl<R: Read> Read for Counted<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.read(buf)?;
            self.1.fetch_add(n as u64, Ordering::Relaxed);
            Ok(n)
        }
    }
    struct Bounded(Box<dyn Read + Send>, Arc<AtomicU64>, u64);
    impl Read for Bounded {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.read(buf)?;
            self.2 += n as u64;
            let read = self.1.load(Ordering::Relaxed);
            let limit = BOMB_FLOOR.max(read.saturating_mul(BOMB_RATIO));
            if self.2 > limit {
                return Err(std::io::Error::other(format!(
                    "the archive decompresses to more than {limit} bytes ({BOMB_RATIO}x its compressed size): refusing a likely decompression bomb"
                )));
            }
            Ok(n)
        }
    }
    let read = Arc::new(AtomicU64::new(0));
    let inner = compression::decompress_reader(Box::new(Counted(r, read.clone())), c)
        .map_err(|e| TransportError::Archive(format!("cannot start {c:?} decompression: {e}")))?;
    Ok(Box::new(Bounded(inner, read, 0)))
}

impl ArchiveSource {
    /// Opens an archive (a file read in place, or a stream read once with its
    /// big members staged into `store`'s ingest, progress reported as they arrive).
    pub fn open(
        input: LoadInput,
        store: &Store,
        progress: &dyn Progress,
    ) -> Result<Self, TransportError> {
        let files = open_input(input, store, progress)?;
        let mut src = ArchiveSource {
            files,
            images: Vec::new(),
            made: HashMap::new(),
            members: HashMap::new(),
            assumed: HashSet::new(),
        };
        if src.files.contains("manifest.json") {
            src.plan_docker()?;
        } else if src.files.contains("index.json") {
            src.plan_oci()?;
        } else if src.files.is_empty() {
            return Err(TransportError::Archive(format!(
                "the input is empty (no file in it): `hoist load` takes a `docker save` or OCI archive; {IMPORT_HINT}"
            )));
        } else {
            return Err(TransportError::Archive(format!(
                "neither manifest.json (docker save) nor index.json (OCI layout) is in the archive; {IMPORT_HINT}"
            )));
        }
        Ok(src)
    }

    /// The images, in the archive's order.
    pub fn images(&self) -> &[ArchiveImage] {
        &self.images
    }

    /// Image `i` as a copy source.
    pub fn image(&self, i: usize) -> ArchiveImageSource<'_> {
        ArchiveImageSource { archive: self, i }
    }

    /// The image named `name` (`repo:tag`, or an OCI ref name), or the only
    /// one when `name` is None.
    pub fn find(&self, name: Option<&str>) -> Result<ArchiveImageSource<'_>, TransportError> {
        let i = match name {
            None if self.images.len() == 1 => 0,
            None => {
                return Err(TransportError::BadReference(format!(
                    "the archive holds {} images; name one (ARCHIVE:REF)",
                    self.images.len()
                )))
            }
            Some(n) => {
                let want = Reference::parse(n).ok().map(Reference::with_default_tag);
                self.images
                    .iter()
                    .position(|img| {
                        img.tags.iter().any(|t| {
                            Some(t) == want.as_ref() || t.tag() == Some(n) || t.familiar() == n
                        })
                    })
                    .ok_or_else(|| TransportError::NoSuchImage(format!("{n} in the archive")))?
            }
        };
        Ok(self.image(i))
    }

    /// The member holding blob `d`.
    fn member_of(&self, d: &Digest) -> String {
        self.members
            .get(d)
            .cloned()
            .unwrap_or_else(|| blob_member(d))
    }

    fn read_manifest(&self, d: &Descriptor) -> Result<RawManifest, TransportError> {
        if let Some(m) = self.made.get(&d.digest) {
            return Ok(m.clone());
        }
        let member = blob_member(&d.digest);
        if !self.files.contains(&member) {
            return Err(TransportError::Archive(format!(
                "the archive names manifest {} but {member} is not in it",
                d.digest
            )));
        }
        let bytes = self.files.read_small(&member, MAX_JSON)?;
        RawManifest::verified(bytes, d, &member)
    }

    /// Reads the manifest a descriptor names, descending into indexes for the host platform.
    fn resolve_manifest(
        &self,
        desc: &Descriptor,
        depth: usize,
    ) -> Result<Option<(RawManifest, Manifest)>, TransportError> {
        let member = blob_member(&desc.digest);
        if depth > 4 || !self.files.contains(&member) {
            return Ok(None);
        }
        let raw = self.read_manifest(desc)?;
        match Document::parse(&raw.bytes, Some(&desc.media_type)).map_err(doc_err(&member))? {
            Document::Manifest(m) => Ok(Some((raw, *m))),
            Document::Index(idx) => match crate::choose(&idx.manifests, &Platform::host()) {
                Some(d) => self.resolve_manifest(d, depth + 1),
                None => Ok(None),
            },
        }
    }

    fn plan_docker(&mut self) -> Result<(), TransportError> {
        let raw = self.files.read_small("manifest.json", MAX_JSON)?;
        let entries: Vec<ManifestEntry> = serde_json::from_slice(&raw).map_err(|e| {
            TransportError::Archive(format!(
                "manifest.json is not a valid docker save manifest: {e}"
            ))
        })?;
        if entries.is_empty() {
            return Err(TransportError::Archive(
                "manifest.json lists no images".into(),
            ));
        }
        // Docker 25+ also writes an OCI index whose manifests keep the original bytes.
        let mut originals: HashMap<Digest, (RawManifest, Manifest)> = HashMap::new();
        if self.files.contains("index.json") {
            let idx = self.files.read_small("index.json", MAX_JSON)?;
            if let Ok(Document::Index(idx)) = Document::parse(&idx, None) {
                for d in &idx.manifests {
                    if let Some((raw, m)) = self.resolve_manifest(d, 0)? {
                        originals.insert(m.config.digest.clone(), (raw, m));
                    }
                }
            }
        }
        for e in entries {
            let mut tags = Vec::new();
            for t in e.repo_tags.clone().unwrap_or_default() {
                tags.push(parse_ref(&t, "manifest.json RepoTags")?);
            }
            let config = self.files.read_small(&e.config, MAX_JSON)?;
            let id = Digest::sha256(&config);
            let config_key = self.files.resolve(&e.config)?;
            let mut top = None;
            if let Some((raw, m)) = originals.remove(&id) {
                let same = m.layers.len() == e.layers.len()
                    && m.layers.iter().zip(&e.layers).all(|(d, l)| {
                        self.files.resolve(l).ok()
                            == self.files.resolve(&blob_member(&d.digest)).ok()
                    });
                if same {
                    top = Some(raw);
                }
            }
            let top = match top {
                Some(t) => t,
                None => self.synthesize(&e, &config, &config_key)?,
            };
            self.members.insert(id, config_key);
            self.images.push(ArchiveImage { top, tags });
        }
        Ok(())
    }

    /// Makes the OCI manifest of an image that arrived without one, from
    /// its config and its layer members, as hoist always made it.
    fn synthesize(
        &mut self,
        e: &ManifestEntry,
        config: &[u8],
        config_member: &str,
    ) -> Result<RawManifest, TransportError> {
        let parsed = Config::parse(config).map_err(doc_err(config_member))?;
        let diff_ids = &parsed.rootfs.diff_ids;
        if diff_ids.len() != e.layers.len() {
            return Err(TransportError::Archive(format!(
                "{config_member}: the config lists {} layers (rootfs.diff_ids) but the manifest lists {}",
                diff_ids.len(),
                e.layers.len()
            )));
        }
        let mut layers = Vec::with_capacity(e.layers.len());
        for (l, diff_id) in e.layers.iter().zip(diff_ids) {
            let key = self.files.resolve(l)?;
            let size = self.files.content(&key)?.1.size();
            let mut head = Vec::with_capacity(8);
            self.files
                .open(&key)?
                .take(8)
                .read_to_end(&mut head)
                .map_err(|e| TransportError::io(key.clone(), e))?;
            let comp = compression::detect(&head);
            let digest = match self.files.known_digest(&key) {
                Some(d) => d,
                None if comp == Compression::None => {
                    self.assumed.insert(diff_id.clone());
                    diff_id.clone()
                }
                // A compressed member named by nothing: its digest takes a read.
                None => match self.files.body(&key, None)? {
                    BlobBody::File { file, offset, len } => {
                        measure_span(&file, offset, len, Algorithm::Sha256, false, &|_| {})
                            .map_err(|e| TransportError::io(key.clone(), e))?
                            .digest
                    }
                    _ => {
                        let mut h = hoist_archive::HashingReader::new(
                            self.files.open(&key)?,
                            Algorithm::Sha256,
                        );
                        std::io::copy(&mut h, &mut std::io::sink())
                            .map_err(|e| TransportError::io(key.clone(), e))?;
                        h.finish().0
                    }
                },
            };
            self.members.insert(digest.clone(), key);
            layers.push(Descriptor::new(media_type::oci_layer(comp), digest, size));
        }
        let m = Manifest {
            schema_version: 2,
            media_type: Some(media_type::OCI_MANIFEST.to_owned()),
            artifact_type: None,
            config: Descriptor::new(
                media_type::OCI_CONFIG,
                Digest::sha256(config),
                config.len() as u64,
            ),
            layers,
            subject: None,
            annotations: Default::default(),
        };
        let bytes = serde_json::to_vec(&m)
            .map_err(|e| TransportError::Archive(format!("cannot serialise the manifest: {e}")))?;
        let raw = RawManifest::new(bytes, media_type::OCI_MANIFEST);
        self.made.insert(raw.digest.clone(), raw.clone());
        Ok(raw)
    }

    fn plan_oci(&mut self) -> Result<(), TransportError> {
        let raw = self.files.read_small("index.json", MAX_JSON)?;
        let idx = match Document::parse(&raw, None).map_err(doc_err("index.json"))? {
            Document::Index(i) => i,
            Document::Manifest(_) => {
                return Err(TransportError::Archive(
                    "index.json is a manifest, not an image index".into(),
                ))
            }
        };
        for d in &idx.manifests {
            let top = self.read_manifest(d)?;
            let tags = oci_entry_tags(d)?;
            self.images.push(ArchiveImage { top, tags });
        }
        Ok(())
    }
}

/// One image of an archive as a copy source.
pub struct ArchiveImageSource<'a> {
    archive: &'a ArchiveSource,
    i: usize,
}

impl ImageSource for ArchiveImageSource<'_> {
    fn top(&self) -> Result<RawManifest, TransportError> {
        Ok(self.archive.images[self.i].top.clone())
    }

    fn manifest(&self, d: &Descriptor) -> Result<RawManifest, TransportError> {
        self.archive.read_manifest(d)
    }

    fn blob(&self, d: &Descriptor, offset: u64) -> Result<BlobBody, TransportError> {
        let member = self.archive.member_of(&d.digest);
        let key = self.archive.files.resolve(&member).map_err(|_| {
            TransportError::Archive(format!(
                "the manifest names blob {} but {member} is not in the archive",
                d.digest
            ))
        })?;
        match self.archive.files.body(&key, Some(d))? {
            BlobBody::File {
                file,
                offset: o,
                len,
            } if offset <= len => Ok(BlobBody::File {
                file,
                offset: o + offset,
                len: len - offset,
            }),
            body if offset == 0 => Ok(body),
            _ => Err(TransportError::Archive(format!(
                "{member}: cannot read from offset {offset}"
            ))),
        }
    }

    fn blame(&self, d: &Descriptor, e: TransportError) -> TransportError {
        let member = self.archive.member_of(&d.digest);
        match e {
            TransportError::DigestMismatch {
                expected, actual, ..
            } if self.archive.assumed.contains(&expected) => TransportError::DiffIdMismatch {
                path: member,
                expected,
                actual,
            },
            e => e.renamed(&d.digest.to_string(), &member),
        }
    }
}
