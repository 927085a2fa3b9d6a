//! Turning what a user typed (a reference, a full or short image ID) into an
//! image of the store, as Docker does.

use crate::cmd::Error;
use hoist_oci::{Digest, Reference};
use hoist_store::{ImageRecord, Store, StoreError};

/// What a user's name resolved to.
pub struct Resolved {
    /// The image.
    pub image: ImageRecord,
    /// The reference used, when the name was a reference that matched a tag.
    pub reference: Option<Reference>,
}

fn looks_like_id(s: &str) -> Option<&str> {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    (!hex.is_empty()
        && hex.len() <= 64
        && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    .then_some(hex)
}

/// Resolves a name or ID to one image.
pub fn image(store: &Store, name: &str) -> Result<Resolved, Error> {
    if let Ok(r) = Reference::parse(name) {
        let r = r.with_default_tag();
        if let Some(d) = r.digest() {
            // name@digest: by manifest or index digest, or image ID.
            let id = store.index().resolve(d)?.unwrap_or_else(|| d.clone());
            if let Some(img) = store.index().image(&id)? {
                return Ok(Resolved {
                    image: img,
                    reference: None,
                });
            }
        } else if let Some(id) = store.index().tag(&r.to_string())? {
            let image = store.index().image(&id)?.ok_or_else(|| {
                StoreError::Corrupt(format!("tag {r} points to missing image {id}"))
            })?;
            return Ok(Resolved {
                image,
                reference: Some(r),
            });
        }
    }
    if let Some(hex) = looks_like_id(name) {
        let found: Vec<Digest> = store.index().images_with_prefix(hex)?;
        match found.len() {
            0 => {}
            1 => {
                let image = store
                    .index()
                    .image(&found[0])?
                    .ok_or_else(|| StoreError::NoSuchImage(name.to_owned()))?;
                return Ok(Resolved {
                    image,
                    reference: None,
                });
            }
            n => return Err(StoreError::Ambiguous(name.to_owned(), n).into()),
        }
    }
    if let Err(e) = Reference::parse(name) {
        if looks_like_id(name).is_none() {
            return Err(e.into());
        }
    }
    Err(StoreError::NoSuchImage(name.to_owned()).into())
}

/// Shows a stored full reference the way Docker does (`nginx:latest`).
pub fn familiar(full: &str) -> String {
    Reference::parse(full).map_or_else(|_| full.to_owned(), |r| r.familiar())
}

/// An image's labels from its config (none when the config cannot be read).
pub fn labels(store: &Store, img: &ImageRecord) -> std::collections::BTreeMap<String, String> {
    store
        .read_blob(&img.id, hoist_transport::MAX_JSON)
        .ok()
        .and_then(|b| hoist_oci::Config::parse(&b).ok())
        .and_then(|c| c.config)
        .and_then(|c| c.labels)
        .unwrap_or_default()
}
