//! `save`: write images from the store as a `docker save` archive — the
//! layout Docker 25+ writes (an OCI layout plus `manifest.json` and
//! `repositories`, which every Docker since 1.10 loads) or the classic one
//! (`<id>/layer.tar`, `<id>/json`, `<id>/VERSION`) — or as an OCI archive.
//! Blobs are written byte for byte as stored, so digests and the image ID
//! never change; they move in the kernel (`copy_file_range`/`sendfile`).

use crate::archive_dest::{json, ArchiveDestination, ArchiveKind, SaveOutput, TarOut};
use crate::{copy_image, CopyOptions, ImageDestination, NoProgress, StoreSource, TransportError};
use hoist_oci::{Descriptor, Digest, Reference};
use hoist_store::{ImageRecord, LockMode, Store};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

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

impl TarOut<'_> {
    /// Writes a stored blob byte for byte as the member `path`, verified on its way out.
    fn stored_blob(
        &mut self,
        store: &Store,
        d: &Digest,
        size: u64,
        path: &str,
    ) -> Result<(), TransportError> {
        let desc = Descriptor::new("", d.clone(), size);
        let file = store.open_blob(d)?;
        let body = crate::BlobBody::File {
            file,
            offset: 0,
            len: size,
        };
        self.blob(path, &desc, body, &|_| {})
            .map_err(|e| corrupt(d, e))
    }

    /// Writes a layer as an uncompressed `layer.tar`, decompressing a
    /// compressed blob on the way and checking its diffID.
    fn uncompressed_layer(
        &mut self,
        store: &Store,
        path: &str,
        layer: &hoist_store::NewLayer,
    ) -> Result<(), TransportError> {
        let comp = hoist_oci::media_type::layer_compression(&layer.media_type);
        if comp == Some(hoist_oci::media_type::Compression::None) {
            return self.stored_blob(store, &layer.blob, layer.blob_size, path);
        }
        let f = store.open_blob(&layer.blob)?;
        let (_, r) = hoist_archive::compression::decompress_auto(f)
            .map_err(|e| TransportError::io(format!("decompressing layer {}", layer.blob), e))?;
        let io_err = |e| TransportError::io(format!("writing layer {}", layer.blob), e);
        self.header(path, layer.layer.size).map_err(io_err)?;
        let mut hashed = hoist_archive::HashingReader::new(
            r.take(layer.layer.size),
            hoist_oci::Algorithm::Sha256,
        );
        let n = match &mut self.out {
            SaveOutput::File(out) => crate::archive::copy_big(&mut hashed, *out),
            SaveOutput::Stream(w) => crate::archive::copy_big(&mut hashed, *w),
            SaveOutput::Owned(w) => crate::archive::copy_big(&mut hashed, w),
        }
        .map_err(io_err)?;
        let (diff_id, _) = hashed.finish();
        if n != layer.layer.size || diff_id != layer.layer.diff_id {
            return Err(TransportError::StoreCorrupt {
                digest: layer.blob.clone(),
                actual: format!(
                    "it decompresses to {n} bytes hashing to {diff_id}, not the {} bytes of {} recorded",
                    layer.layer.size, layer.layer.diff_id
                ),
            });
        }
        self.pad(n).map_err(io_err)
    }
}

/// A stored blob failing its check on the way out is damage in the store.
fn corrupt(d: &Digest, e: TransportError) -> TransportError {
    match e {
        TransportError::DigestMismatch { actual, .. } => TransportError::StoreCorrupt {
            digest: d.clone(),
            actual: format!("its bytes hash to {actual}"),
        },
        TransportError::SizeMismatch {
            expected, actual, ..
        } => TransportError::StoreCorrupt {
            digest: d.clone(),
            actual: format!("it has {actual} bytes instead of {expected}"),
        },
        e => e,
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
            tar.stored_blob(store, &img.id, img.config_size, &config)?;
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

/// Writes `items` as one archive; blobs shared by several images are written
/// once, and each is verified on its way out: a damaged blob stops the save
/// with its digest and `hoist fsck` named.
pub fn save(
    store: &Store,
    items: &[SaveItem],
    format: SaveFormat,
    out: SaveOutput<'_>,
) -> Result<(), TransportError> {
    // Shared: an rmi cannot delete a blob under a running save.
    let _lock = store.lock(LockMode::Shared)?;
    let kind = match format {
        SaveFormat::DockerClassic => {
            return save_classic(store, items, &mut TarOut { out });
        }
        SaveFormat::Docker => ArchiveKind::Docker,
        SaveFormat::Oci => ArchiveKind::Oci,
    };
    let dst = Box::new(ArchiveDestination::new(out, kind));
    let opts = CopyOptions::default();
    for item in items {
        let src = StoreSource::new(store, &item.image)?;
        let copied = copy_image(&src, dst.as_ref(), &opts, &NoProgress)?;
        let names: Vec<String> = item.names.iter().map(|n| n.to_string()).collect();
        dst.tag(&copied.top, &names)?;
    }
    dst.commit()
}
