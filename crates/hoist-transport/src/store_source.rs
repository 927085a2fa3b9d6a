//! One image of the local store as a copy source. Blobs are handed out as
//! files, so a copy into a file or pipe stays in the kernel; the destination
//! verifies each on its way out. Manifests are checked here.

use crate::source::{digest_of, BlobBody, ImageSource, RawManifest};
use crate::{TransportError, MAX_JSON};
use hoist_oci::{Descriptor, Digest};
use hoist_store::{ImageRecord, Store, StoreError, TagTarget};
use std::fs::File;
use std::path::PathBuf;

/// An image of the store, read without holding the index.
pub struct StoreSource {
    root: PathBuf,
    top: RawManifest,
}

impl StoreSource {
    /// The image `image` of `store`, its manifest read and verified now.
    pub fn new(store: &Store, image: &ImageRecord) -> Result<Self, TransportError> {
        let bytes = store.read_blob(&image.manifest, MAX_JSON)?;
        let top = checked(bytes, &image.manifest, &image.manifest_media_type)?;
        Ok(StoreSource {
            root: store.root().to_owned(),
            top,
        })
    }

    /// What the full reference `name` tags in `store` (a manifest or an
    /// index), or None when no tag has that name.
    pub fn tagged(store: &Store, name: &str) -> Result<Option<Self>, TransportError> {
        let (digest, media_type) = match store.index().tag_target(name)? {
            None => return Ok(None),
            Some(TagTarget::Manifest { digest, .. }) => {
                let mt = store
                    .index()
                    .manifest(&digest)?
                    .map(|m| m.media_type)
                    .unwrap_or_default();
                (digest, mt)
            }
            Some(TagTarget::Index(digest)) => {
                let mt = store
                    .index()
                    .index(&digest)?
                    .map(|i| i.media_type)
                    .unwrap_or_default();
                (digest, mt)
            }
        };
        let bytes = store.read_blob(&digest, MAX_JSON)?;
        let top = checked(bytes, &digest, &media_type)?;
        Ok(Some(StoreSource {
            root: store.root().to_owned(),
            top,
        }))
    }

    fn path(&self, d: &Digest) -> PathBuf {
        self.root.join(d.layout_path())
    }

    fn open(&self, d: &Digest) -> Result<File, TransportError> {
        let p = self.path(d);
        File::open(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StoreError::MissingBlob(d.clone()).into()
            } else {
                TransportError::io(p.display().to_string(), e)
            }
        })
    }
}

/// Stored bytes must still hash to their name.
fn checked(bytes: Vec<u8>, d: &Digest, media_type: &str) -> Result<RawManifest, TransportError> {
    let actual = digest_of(d.algorithm(), &bytes);
    if &actual != d {
        return Err(TransportError::StoreCorrupt {
            digest: d.clone(),
            actual: format!("its bytes hash to {actual}"),
        });
    }
    Ok(RawManifest {
        bytes,
        media_type: media_type.to_owned(),
        digest: d.clone(),
    })
}

impl ImageSource for StoreSource {
    fn top(&self) -> Result<RawManifest, TransportError> {
        Ok(self.top.clone())
    }

    fn manifest(&self, d: &Descriptor) -> Result<RawManifest, TransportError> {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(self.open(&d.digest)?, MAX_JSON + 1),
            &mut bytes,
        )
        .map_err(|e| TransportError::io(d.digest.to_string(), e))?;
        checked(bytes, &d.digest, &d.media_type)
    }

    fn blob(&self, d: &Descriptor, offset: u64) -> Result<BlobBody, TransportError> {
        let file = self.open(&d.digest)?;
        let len = file
            .metadata()
            .map_err(|e| TransportError::io(d.digest.to_string(), e))?
            .len();
        if len != d.size {
            return Err(TransportError::StoreCorrupt {
                digest: d.digest.clone(),
                actual: format!("it has {len} bytes instead of {}", d.size),
            });
        }
        Ok(BlobBody::File {
            file,
            offset,
            len: len.saturating_sub(offset),
        })
    }

    fn blame(&self, d: &Descriptor, e: TransportError) -> TransportError {
        // Anything wrong with a blob's bytes on the way out is the store's damage.
        match e {
            TransportError::DigestMismatch { actual, .. } => TransportError::StoreCorrupt {
                digest: d.digest.clone(),
                actual: format!("its bytes hash to {actual}"),
            },
            TransportError::SizeMismatch { actual, .. } => TransportError::StoreCorrupt {
                digest: d.digest.clone(),
                actual: format!("it has {actual} bytes instead of {}", d.size),
            },
            e => e,
        }
    }
}
