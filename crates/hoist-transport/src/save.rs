//! `save`: write images from the store as a `docker save` archive — the
//! layout Docker 25+ writes (an OCI layout plus `manifest.json` and
//! `repositories`, which every Docker since 1.10 loads) or the classic one
//! (`<id>/layer.tar`, `<id>/json`, `<id>/VERSION`) — or as an OCI archive.
//! Blobs are written byte for byte as stored, so digests and the image ID
//! never change; they move in the kernel (`copy_file_range`/`sendfile`).

use crate::TransportError;
use hoist_oci::{media_type, Descriptor, Digest, Index, Reference};
use hoist_store::{ImageRecord, Store};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read, Write};

/// The archive layout to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveFormat {
    /// `docker save` as Docker 25+ writes it: OCI layout plus manifest.json and repositories.
    Docker,
    /// `docker save` as Docker before 25 wrote it: one directory per layer with an uncompressed `layer.tar`.
    DockerClassic,
    /// An OCI image layout tar (`oci-archive:`).
    Oci,
}

/// Where the archive goes.
pub enum SaveOutput<'a> {
    /// A file: blobs are copied in the kernel.
    File(&'a mut File),
    /// Any stream (stdout).
    Stream(&'a mut dyn Write),
}

/// One image to save and the names to record for it.
pub struct SaveItem {
    /// The image.
    pub image: ImageRecord,
    /// Names to record (none when saved by ID).
    pub names: Vec<Reference>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// The legacy per-layer `json` of the classic layout (ignored by loaders that read manifest.json).
#[derive(Serialize)]
struct LegacyLayerJson<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<&'a str>,
    created: &'a str,
    os: &'a str,
}

/// Serialises what hoist itself creates (never documents it received).
fn json(v: &impl Serialize) -> io::Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(io::Error::other)
}

fn member(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm().as_str(), d.hex())
}

struct TarOut<'a> {
    out: SaveOutput<'a>,
}

impl TarOut<'_> {
    fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        match &mut self.out {
            SaveOutput::File(f) => f.write_all(b),
            SaveOutput::Stream(w) => w.write_all(b),
        }
    }

    fn header(&mut self, path: &str, size: u64) -> io::Result<()> {
        // Names over 100 bytes (sha512 blobs) need a GNU long-name record first.
        let mut h = tar::Header::new_gnu();
        if path.len() > 100 {
            let mut long = tar::Header::new_gnu();
            long.as_gnu_mut()
                .map(|g| g.name[..13].copy_from_slice(b"././@LongLink"))
                .ok_or_else(|| io::Error::other("gnu header"))?;
            long.set_entry_type(tar::EntryType::GNULongName);
            long.set_size(path.len() as u64 + 1);
            long.set_mode(0o644);
            long.set_cksum();
            self.write_all(long.as_bytes())?;
            let mut name = path.as_bytes().to_vec();
            name.push(0);
            self.write_all(&name)?;
            self.pad(name.len() as u64)?;
            let g = h
                .as_gnu_mut()
                .ok_or_else(|| io::Error::other("gnu header"))?;
            g.name.copy_from_slice(&path.as_bytes()[..100]);
        } else {
            h.set_path(path)?;
        }
        h.set_size(size);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        self.write_all(h.as_bytes())
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let rem = (512 - size % 512) % 512;
        self.write_all(&[0u8; 512][..rem as usize])
    }

    fn bytes(&mut self, path: &str, data: &[u8]) -> io::Result<()> {
        self.header(path, data.len() as u64)?;
        self.write_all(data)?;
        self.pad(data.len() as u64)
    }

    fn blob(&mut self, store: &Store, d: &Digest) -> Result<(), TransportError> {
        self.blob_as(store, d, &member(d))
    }

    /// Writes a stored blob byte for byte as the member `path`.
    fn blob_as(&mut self, store: &Store, d: &Digest, path: &str) -> Result<(), TransportError> {
        let mut f = store.open_blob(d)?;
        let size = f
            .metadata()
            .map_err(|e| TransportError::io(d.to_string(), e))?
            .len();
        let io_err = |e| TransportError::io(format!("writing blob {d}"), e);
        self.header(path, size).map_err(io_err)?;
        let n = match &mut self.out {
            SaveOutput::File(out) => {
                hoist_archive::kcopy::copy_range(&f, 0, out, size).map(|()| size)
            }
            SaveOutput::Stream(w) => crate::archive::copy_big(&mut f, *w),
        }
        .map_err(io_err)?;
        if n != size {
            return Err(TransportError::Archive(format!(
                "blob {d} changed size while being saved ({size} → {n}); run `hoist fsck`"
            )));
        }
        self.pad(size).map_err(io_err)
    }
}

impl TarOut<'_> {
    /// Writes a layer as an uncompressed `layer.tar`, decompressing a compressed blob on the way.
    fn uncompressed_layer(
        &mut self,
        store: &Store,
        path: &str,
        layer: &hoist_store::NewLayer,
    ) -> Result<(), TransportError> {
        let comp = hoist_oci::media_type::layer_compression(&layer.media_type);
        if comp == Some(hoist_oci::media_type::Compression::None) {
            return self.blob_as(store, &layer.blob, path);
        }
        let f = store.open_blob(&layer.blob)?;
        let (_, mut r) = hoist_archive::compression::decompress_auto(f)
            .map_err(|e| TransportError::io(format!("decompressing layer {}", layer.blob), e))?;
        let io_err = |e| TransportError::io(format!("writing layer {}", layer.blob), e);
        self.header(path, layer.layer.size).map_err(io_err)?;
        let mut limited = (&mut r).take(layer.layer.size);
        let n = match &mut self.out {
            SaveOutput::File(out) => crate::archive::copy_big(&mut limited, *out),
            SaveOutput::Stream(w) => crate::archive::copy_big(&mut limited, *w),
        }
        .map_err(io_err)?;
        if n != layer.layer.size {
            return Err(TransportError::Archive(format!(
                "layer {} decompresses to {n} bytes but the store recorded {}; run `hoist fsck`",
                layer.blob, layer.layer.size
            )));
        }
        self.pad(n).map_err(io_err)
    }
}

/// Writes `items` as one classic `docker save` archive.
fn save_classic(
    store: &Store,
    items: &[SaveItem],
    tar: &mut TarOut<'_>,
) -> Result<(), TransportError> {
    let io_err = |e| TransportError::io("writing the archive", e);
    let mut written: BTreeSet<String> = BTreeSet::new();
    let mut manifest_json = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for item in items {
        let img = &item.image;
        let mut layers = Vec::new();
        // A layer directory is named by its chainID: the same stack prefix, the same directory.
        for (i, l) in img.layers.iter().enumerate() {
            let dir = l.layer.chain_id.hex().to_owned();
            if written.insert(dir.clone()) {
                let parent = i.checked_sub(1).map(|p| img.layers[p].layer.chain_id.hex());
                let legacy = LegacyLayerJson {
                    id: &dir,
                    parent,
                    created: "1970-01-01T00:00:00Z",
                    os: "linux",
                };
                tar.bytes(&format!("{dir}/VERSION"), b"1.0")
                    .map_err(io_err)?;
                tar.bytes(&format!("{dir}/json"), &json(&legacy).map_err(io_err)?)
                    .map_err(io_err)?;
                tar.uncompressed_layer(store, &format!("{dir}/layer.tar"), l)?;
            }
            layers.push(format!("{dir}/layer.tar"));
        }
        let config = format!("{}.json", img.id.hex());
        if written.insert(config.clone()) {
            tar.bytes(&config, &store.read_blob(&img.id, crate::MAX_JSON)?)
                .map_err(io_err)?;
        }
        for n in &item.names {
            if let (Some(t), Some(top)) = (n.tag(), img.layers.last()) {
                repositories
                    .entry(n.familiar_name())
                    .or_default()
                    .insert(t.to_owned(), top.layer.chain_id.hex().to_owned());
            }
        }
        manifest_json.push(ManifestEntry {
            config,
            repo_tags: (!item.names.is_empty())
                .then(|| item.names.iter().map(Reference::familiar).collect()),
            layers,
        });
    }
    tar.bytes("manifest.json", &json(&manifest_json).map_err(io_err)?)
        .map_err(io_err)?;
    if !repositories.is_empty() {
        tar.bytes("repositories", &json(&repositories).map_err(io_err)?)
            .map_err(io_err)?;
    }
    tar.write_all(&[0u8; 1024]).map_err(io_err)
}

/// Writes `items` as one archive; blobs shared by several images are written once.
pub fn save(
    store: &Store,
    items: &[SaveItem],
    format: SaveFormat,
    out: SaveOutput<'_>,
) -> Result<(), TransportError> {
    let mut tar = TarOut { out };
    if format == SaveFormat::DockerClassic {
        return save_classic(store, items, &mut tar);
    }
    let mut written: BTreeSet<Digest> = BTreeSet::new();
    let mut index_entries = Vec::new();
    let mut manifest_json = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for item in items {
        let img = &item.image;
        let mut blobs = vec![img.id.clone()];
        blobs.extend(img.layers.iter().map(|l| l.blob.clone()));
        blobs.push(img.manifest.clone());
        for b in blobs {
            if written.insert(b.clone()) {
                tar.blob(store, &b)?;
            }
        }
        let manifest_size = store
            .open_blob(&img.manifest)?
            .metadata()
            .map_err(|e| TransportError::io(img.manifest.to_string(), e))?
            .len();
        let desc = |annotations: BTreeMap<String, String>| Descriptor {
            annotations,
            ..Descriptor::new(
                &img.manifest_media_type,
                img.manifest.clone(),
                manifest_size,
            )
        };
        if item.names.is_empty() {
            index_entries.push(desc(BTreeMap::new()));
        }
        for n in &item.names {
            let mut a = BTreeMap::new();
            a.insert("io.containerd.image.name".to_owned(), n.to_string());
            if let Some(t) = n.tag() {
                a.insert("org.opencontainers.image.ref.name".to_owned(), t.to_owned());
                if let Some(top) = img.layers.last() {
                    repositories
                        .entry(n.familiar_name())
                        .or_default()
                        .insert(t.to_owned(), top.blob.hex().to_owned());
                }
            }
            index_entries.push(desc(a));
        }
        manifest_json.push(ManifestEntry {
            config: member(&img.id),
            repo_tags: (!item.names.is_empty())
                .then(|| item.names.iter().map(Reference::familiar).collect()),
            layers: img.layers.iter().map(|l| member(&l.blob)).collect(),
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
    let io_err = |e| TransportError::io("writing the archive", e);
    tar.bytes("index.json", &json(&index).map_err(io_err)?)
        .map_err(io_err)?;
    tar.bytes("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
        .map_err(io_err)?;
    if format == SaveFormat::Docker {
        tar.bytes("manifest.json", &json(&manifest_json).map_err(io_err)?)
            .map_err(io_err)?;
        if !repositories.is_empty() {
            tar.bytes("repositories", &json(&repositories).map_err(io_err)?)
                .map_err(io_err)?;
        }
    }
    // Two zero blocks end a tar archive.
    tar.write_all(&[0u8; 1024]).map_err(io_err)?;
    Ok(())
}
