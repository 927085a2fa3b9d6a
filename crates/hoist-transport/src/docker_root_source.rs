//! `docker-root:DIR:REF` as a copy source: one image of a stopped Docker's
//! overlay2 data-root, read without dockerd.
//!
//! The image keeps Docker's ID: its config travels as the bytes the image
//! database holds. Docker stores no manifest and no layer tar, so the
//! manifest is made here and each layer is rebuilt from its tar-split as it
//! streams, uncompressed.
//!
//! The manifest is OCI (`application/vnd.oci.image.manifest.v1+json`) with
//! `application/vnd.oci.image.layer.v1.tar` layers named by their diffIDs,
//! not Docker's schema 2: schema 2 has no uncompressed layer type (its
//! layers are `…diff.tar.gzip`), and recompressing to fit it would cost a
//! pass over every byte and change the digests. It is also, byte for byte,
//! the manifest Docker 28's `docker save` writes for an overlay2 image
//! (`docker-daemon:`) and the one hoist's load makes for a classic `docker
//! save` archive, so every way of taking an image out of Docker gives the
//! same manifest digest (both are tested). A push compresses the layers as
//! `docker push` does.

use crate::docker_root::{DockerRoot, DockerRootError};
use crate::source::{BlobBody, ImageSource, RawManifest};
use crate::TransportError;
use hoist_oci::{media_type, Descriptor, Digest};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// One image of a stopped Docker's data-root, as a copy source.
pub struct DockerRootSource {
    root: DockerRoot,
    id: Digest,
    config: Vec<u8>,
    top: RawManifest,
    /// The chainID whose layer database entry rebuilds each layer, by diffID.
    chains: HashMap<Digest, Digest>,
}

impl DockerRootSource {
    /// Opens image `reference` (a tag, an image ID or a unique prefix of
    /// one) of the data-root `dir`; with no reference, its only image.
    pub fn open(dir: impl AsRef<Path>, reference: Option<&str>) -> Result<Self, TransportError> {
        let root = DockerRoot::open(dir)?;
        let id = match reference {
            Some(r) => root.resolve(r)?,
            None => {
                let mut images = root.images()?;
                if images.len() != 1 {
                    let names: Vec<String> = images
                        .iter()
                        .map(|i| i.tags.first().cloned().unwrap_or_else(|| i.id.to_string()))
                        .collect();
                    return Err(TransportError::BadReference(format!(
                        "{} holds {} images ({}); name one: docker-root:{}:REF",
                        root.path().display(),
                        images.len(),
                        names.join(", "),
                        root.path().display()
                    )));
                }
                images.remove(0).id
            }
        };
        let config = root.config(&id)?;
        let layers = root.layers(&id)?;
        let bytes = root.manifest_of(&id, config.len() as u64, &layers)?;
        let mut chains = HashMap::new();
        for l in layers {
            // A diffID stacked twice rebuilds to the same bytes from either chain.
            chains.entry(l.diff_id).or_insert(l.chain_id);
        }
        Ok(DockerRootSource {
            top: RawManifest::new(bytes, media_type::OCI_MANIFEST),
            root,
            id,
            config,
            chains,
        })
    }

    /// The image ID (Docker's, the digest of the config as stored).
    pub fn id(&self) -> &Digest {
        &self.id
    }
}

impl ImageSource for DockerRootSource {
    fn top(&self) -> Result<RawManifest, TransportError> {
        Ok(self.top.clone())
    }

    fn manifest(&self, d: &Descriptor) -> Result<RawManifest, TransportError> {
        if d.digest == self.top.digest {
            return Ok(self.top.clone());
        }
        Err(TransportError::NoSuchImage(format!(
            "manifest {} in {} (image {} has only {})",
            d.digest,
            self.root.path().display(),
            self.id,
            self.top.digest
        )))
    }

    fn blob(&self, d: &Descriptor, offset: u64) -> Result<BlobBody, TransportError> {
        if d.digest == self.id {
            let from = usize::try_from(offset)
                .ok()
                .filter(|&o| o <= self.config.len())
                .ok_or_else(|| {
                    TransportError::BadReference(format!(
                        "config {}: offset {offset} is past its {} bytes",
                        self.id,
                        self.config.len()
                    ))
                })?;
            return Ok(BlobBody::bytes(self.config[from..].to_vec()));
        }
        let chain = self.chains.get(&d.digest).ok_or_else(|| {
            TransportError::NoSuchImage(format!(
                "blob {} in image {} of {}",
                d.digest,
                self.id,
                self.root.path().display()
            ))
        })?;
        let mut tar = self.root.layer_tar(chain)?;
        if offset > 0 {
            // The tar is rebuilt in order: a resume reads up to the offset again.
            let skipped = std::io::copy(&mut (&mut tar).take(offset), &mut std::io::sink())
                .map_err(|e| unwrap_root(TransportError::io(format!("layer {chain}"), e)))?;
            if skipped != offset {
                return Err(TransportError::SizeMismatch {
                    what: format!("layer {chain}"),
                    expected: offset,
                    actual: skipped,
                });
            }
        }
        Ok(BlobBody::Stream(Box::new(tar)))
    }

    fn blame(&self, _d: &Descriptor, e: TransportError) -> TransportError {
        unwrap_root(e)
    }
}

/// A rebuilt layer's failure (a tampered entry, a diffID mismatch) reaches
/// the destination as an I/O error: it is given back as itself, naming the
/// layer and the entry.
fn unwrap_root(e: TransportError) -> TransportError {
    match e {
        TransportError::Io { what, source } if DockerRootError::from_io(&source).is_some() => {
            match source.into_inner().map(|b| b.downcast::<DockerRootError>()) {
                Some(Ok(inner)) => TransportError::DockerRoot(*inner),
                Some(Err(other)) => TransportError::io(what, std::io::Error::other(other)),
                None => TransportError::io(what, std::io::ErrorKind::Other.into()),
            }
        }
        e => e,
    }
}
