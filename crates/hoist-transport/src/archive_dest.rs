//! `docker-archive:` and `oci-archive:` as copy destinations: one tar,
//! written in order. Blobs go out byte for byte as `blobs/<alg>/<hex>`,
//! moved in the kernel (`copy_file_range`/`sendfile`) while a second thread
//! hashes the same bytes, so nothing damaged leaves unnoticed; `commit`
//! writes `index.json`, `oci-layout` and, for Docker, `manifest.json` and
//! `repositories` (the layout Docker 25+ writes, which every Docker since
//! 1.10 loads).

use crate::blobio::{check, kernel_copy_hashed, pump};
use crate::destination::ImageDestination;
use crate::source::{BlobBody, RawManifest};
use crate::{choose, TransportError};
use hoist_archive::{Entry, EntryKind};
use hoist_oci::{media_type, Descriptor, Digest, Document, Index, Platform, Reference};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, Write};
use std::sync::Mutex;

/// Where an archive goes.
pub enum SaveOutput<'a> {
    /// A file (or a pipe as a file): blobs are copied in the kernel.
    File(&'a mut File),
    /// Any stream.
    Stream(&'a mut (dyn Write + Send)),
    /// Any stream the archive owns (a request body to the Docker daemon).
    Owned(Box<dyn Write + Send + 'a>),
}

/// Which archive to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveKind {
    /// `docker save` as Docker 25+ writes it: an OCI layout plus `manifest.json` and `repositories`.
    Docker,
    /// An OCI image layout tar.
    Oci,
}

/// A tar being written in order.
pub(crate) struct TarOut<'a> {
    pub(crate) out: SaveOutput<'a>,
}

impl TarOut<'_> {
    pub(crate) fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        match &mut self.out {
            SaveOutput::File(f) => f.write_all(b),
            SaveOutput::Stream(w) => w.write_all(b),
            SaveOutput::Owned(w) => w.write_all(b),
        }
    }

    /// A regular file's header, as `hoist-archive`'s writer makes it
    /// (USTAR, PAX for long names); the data is moved by the caller.
    pub(crate) fn header(&mut self, path: &str, size: u64) -> io::Result<()> {
        let mut e = Entry::new(path, EntryKind::File);
        e.size = size;
        let h = hoist_archive::entry_header(&e).map_err(io::Error::other)?;
        self.write_all(&h)
    }

    pub(crate) fn pad(&mut self, size: u64) -> io::Result<()> {
        self.write_all(&[0u8; 512][..hoist_archive::padding(size) as usize])
    }

    pub(crate) fn bytes(&mut self, path: &str, data: &[u8]) -> io::Result<()> {
        self.header(path, data.len() as u64)?;
        self.write_all(data)?;
        self.pad(data.len() as u64)
    }

    /// Writes a blob body as member `path`, verified against `d` as it goes.
    pub(crate) fn blob(
        &mut self,
        path: &str,
        d: &Descriptor,
        body: BlobBody,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), TransportError> {
        let what = d.digest.to_string();
        let io_err = |e| TransportError::io(format!("writing {path}"), e);
        self.header(path, d.size).map_err(io_err)?;
        let alg = d.digest.algorithm();
        let (digest, size) = match (&mut self.out, body) {
            (SaveOutput::File(out), BlobBody::File { file, offset, len }) => {
                let m =
                    kernel_copy_hashed(&file, offset, len.min(d.size), out, alg, false, progress)
                        .map_err(|e| TransportError::io(format!("copying {what}"), e))?;
                (m.digest, m.size)
            }
            (out, body) => {
                let r = io::Read::take(body.into_reader()?, d.size);
                let w: &mut (dyn Write + Send) = match out {
                    SaveOutput::File(f) => *f,
                    SaveOutput::Stream(w) => *w,
                    SaveOutput::Owned(w) => w.as_mut(),
                };
                let (digest, size, _) = pump(r, w, Some(alg), None, progress)
                    .map_err(|e| TransportError::io(format!("copying {what}"), e))?;
                (digest.unwrap_or_else(|| d.digest.clone()), size)
            }
        };
        check(&what, d, &digest, size, None, None)?;
        self.pad(size).map_err(io_err)
    }
}

/// The member a blob is written as.
pub(crate) fn member(d: &Digest) -> String {
    d.layout_path()
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Serialises what hoist itself creates (never documents it received).
pub(crate) fn json(v: &impl Serialize) -> io::Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(io::Error::other)
}

struct State<'a> {
    tar: TarOut<'a>,
    written: HashSet<Digest>,
    manifests: Vec<RawManifest>,
    tops: Vec<(RawManifest, Vec<Reference>)>,
}

/// Writes a `docker-archive:` or `oci-archive:` tar.
pub struct ArchiveDestination<'a> {
    kind: ArchiveKind,
    state: Mutex<State<'a>>,
}

impl<'a> ArchiveDestination<'a> {
    /// An archive of `kind` written to `out`.
    pub fn new(out: SaveOutput<'a>, kind: ArchiveKind) -> Self {
        ArchiveDestination {
            kind,
            state: Mutex::new(State {
                tar: TarOut { out },
                written: HashSet::new(),
                manifests: Vec::new(),
                tops: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<'a>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn parse(m: &RawManifest) -> Result<Document, TransportError> {
    Document::parse(&m.bytes, Some(&m.media_type)).map_err(|source| TransportError::Document {
        what: format!("manifest {}", m.digest),
        source,
    })
}

impl ImageDestination for ArchiveDestination<'_> {
    fn has_blob(&self, d: &Descriptor) -> Result<bool, TransportError> {
        Ok(self.lock().written.contains(&d.digest))
    }

    fn put_blob(
        &self,
        d: &Descriptor,
        _diff_id: Option<&Digest>,
        body: BlobBody,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), TransportError> {
        let mut st = self.lock();
        if st.written.contains(&d.digest) {
            return Ok(());
        }
        st.tar.blob(&member(&d.digest), d, body, progress)?;
        st.written.insert(d.digest.clone());
        Ok(())
    }

    fn put_manifest(&self, m: &RawManifest) -> Result<(), TransportError> {
        let mut st = self.lock();
        if st.written.insert(m.digest.clone()) {
            st.tar
                .bytes(&member(&m.digest), &m.bytes)
                .map_err(|e| TransportError::io("writing the archive", e))?;
            st.manifests.push(m.clone());
        }
        Ok(())
    }

    fn tag(&self, top: &RawManifest, tags: &[String]) -> Result<(), TransportError> {
        let mut refs = Vec::new();
        for t in tags {
            refs.push(
                Reference::parse(t)
                    .map(Reference::with_default_tag)
                    .map_err(|e| TransportError::BadReference(format!("{t}: {e}")))?,
            );
        }
        self.lock().tops.push((top.clone(), refs));
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<(), TransportError> {
        let kind = self.kind;
        let st = self.state.into_inner().unwrap_or_else(|e| e.into_inner());
        let State {
            mut tar,
            manifests,
            tops,
            ..
        } = st;
        let io_err = |e| TransportError::io("writing the archive", e);
        let mut index_entries = Vec::new();
        let mut manifest_json = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (top, names) in &tops {
            let desc = |annotations: BTreeMap<String, String>| Descriptor {
                annotations,
                ..top.descriptor()
            };
            if names.is_empty() {
                index_entries.push(desc(BTreeMap::new()));
            }
            // manifest.json lists images: an index stands for the host's.
            let image = match parse(top)? {
                Document::Manifest(m) => *m,
                Document::Index(idx) => {
                    let put: Vec<Descriptor> = idx
                        .manifests
                        .into_iter()
                        .filter(|d| manifests.iter().any(|m| m.digest == d.digest))
                        .collect();
                    let pick =
                        choose(&put, &Platform::host())
                            .or(put.first())
                            .ok_or_else(|| {
                                TransportError::NoSuchImage(format!(
                                    "index {} names no image that was copied",
                                    top.digest
                                ))
                            })?;
                    match manifests
                        .iter()
                        .find(|m| m.digest == pick.digest)
                        .map(parse)
                    {
                        Some(Ok(Document::Manifest(m))) => *m,
                        _ => {
                            return Err(TransportError::Archive(format!(
                                "index {} names {} which is not an image manifest",
                                top.digest, pick.digest
                            )))
                        }
                    }
                }
            };
            for n in names {
                let mut a = BTreeMap::new();
                a.insert("io.containerd.image.name".to_owned(), n.to_string());
                if let Some(t) = n.tag() {
                    a.insert("org.opencontainers.image.ref.name".to_owned(), t.to_owned());
                    if let Some(top_layer) = image.layers.last() {
                        repositories
                            .entry(n.familiar_name())
                            .or_default()
                            .insert(t.to_owned(), top_layer.digest.hex().to_owned());
                    }
                }
                index_entries.push(desc(a));
            }
            manifest_json.push(ManifestEntry {
                config: member(&image.config.digest),
                repo_tags: (!names.is_empty())
                    .then(|| names.iter().map(Reference::familiar).collect()),
                layers: image.layers.iter().map(|l| member(&l.digest)).collect(),
            });
        }
        let index = Index {
            schema_version: 2,
            media_type: Some(media_type::OCI_INDEX.to_owned()),
            artifact_type: None,
            manifests: index_entries,
            subject: None,
            annotations: BTreeMap::new(),
        };
        tar.bytes("index.json", &json(&index).map_err(io_err)?)
            .map_err(io_err)?;
        tar.bytes("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
            .map_err(io_err)?;
        if kind == ArchiveKind::Docker {
            tar.bytes("manifest.json", &json(&manifest_json).map_err(io_err)?)
                .map_err(io_err)?;
            if !repositories.is_empty() {
                tar.bytes("repositories", &json(&repositories).map_err(io_err)?)
                    .map_err(io_err)?;
            }
        }
        // Two zero blocks end a tar archive.
        tar.write_all(&[0u8; 1024]).map_err(io_err)
    }
}
