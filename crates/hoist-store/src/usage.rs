//! Disk usage of the store, for `hoist system df`: what images and layers
//! take on disk, what they share, and what a prune would give back.
//!
//! Every size here is the size of blob files on disk (compressed layers as
//! stored, configs, manifests), counted once however many images use a blob:
//! the real disk usage, not Docker's uncompressed "virtual" size.

use crate::{ImageRecord, Store, StoreError};
use hoist_oci::Digest;
use std::collections::{BTreeMap, BTreeSet};

/// One image's share of the disk.
#[derive(Clone, Debug)]
pub struct ImageUsage {
    /// The image.
    pub image: ImageRecord,
    /// Bytes of its config, manifest and layer blobs (each blob once).
    pub size: u64,
    /// Bytes of its layer blobs that another image also uses, by blob or by chainID.
    pub shared: u64,
    /// `size - shared`: about what deleting only this image frees.
    pub unique: u64,
}

/// One layer (chainID) and what it takes.
#[derive(Clone, Debug)]
pub struct LayerUsage {
    /// The chainID.
    pub chain_id: Digest,
    /// Its diffID.
    pub diff_id: Digest,
    /// Bytes of the blobs carrying it (usually one; several when images
    /// carry the same layer compressed differently).
    pub size: u64,
    /// How many images use it.
    pub images: usize,
    /// How many tagged images use it.
    pub tagged_images: usize,
}

/// Counts for one row of `system df`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsageSummary {
    /// How many there are.
    pub total: usize,
    /// How many are in use (tagged images; layers of tagged images).
    pub active: usize,
    /// Bytes on disk.
    pub size: u64,
    /// Bytes `hoist image prune` would free.
    pub reclaimable: u64,
}

/// The whole store's disk usage.
#[derive(Clone, Debug, Default)]
pub struct Usage {
    /// Per image, newest first.
    pub images: Vec<ImageUsage>,
    /// Per layer, by chainID.
    pub layers: Vec<LayerUsage>,
    /// Images: all, tagged, blob bytes, bytes only dangling images use.
    pub images_summary: UsageSummary,
    /// Layers: all, used by a tagged image, layer blob bytes, bytes only dangling images use.
    pub layers_summary: UsageSummary,
    /// Blobs no image refers to and `ingest/` leftovers, all reclaimable.
    pub unreferenced_summary: UsageSummary,
    /// Partial pulls kept in `ingest/` to resume (counted in `unreferenced_summary` too).
    pub partials: Vec<crate::PartialBlob>,
}

/// The blobs an image refers to: config, every manifest and its layers.
fn image_blobs(img: &ImageRecord) -> BTreeSet<&Digest> {
    let mut s: BTreeSet<&Digest> = img.layers.iter().map(|l| &l.blob).collect();
    s.insert(&img.id);
    s.insert(&img.manifest);
    for m in &img.manifests {
        s.insert(&m.digest);
        s.extend(m.layers.iter().map(|l| &l.blob));
    }
    s
}

impl Store {
    /// Measures what images, layers and leftovers take on disk.
    pub fn usage(&self) -> Result<Usage, StoreError> {
        let images = self.index().images()?;
        let mut sizes: BTreeMap<Digest, u64> = BTreeMap::new();
        let mut size_of = |d: &Digest| -> u64 {
            *sizes.entry(d.clone()).or_insert_with(|| {
                // A missing blob takes no space; fsck is the one to report it.
                std::fs::metadata(self.blob_path(d)).map_or(0, |m| m.len())
            })
        };
        // Which images use each blob and each chain, and whether any of them is tagged.
        let mut blob_users: BTreeMap<&Digest, (usize, bool)> = BTreeMap::new();
        let mut chain_users: BTreeMap<&Digest, (usize, bool)> = BTreeMap::new();
        let mut chain_blobs: BTreeMap<&Digest, (&Digest, BTreeSet<&Digest>)> = BTreeMap::new();
        let mut layer_blobs: BTreeSet<&Digest> = BTreeSet::new();
        for img in &images {
            let tagged = !img.tags.is_empty();
            for b in image_blobs(img) {
                let e = blob_users.entry(b).or_default();
                e.0 += 1;
                e.1 |= tagged;
            }
            let chains: BTreeSet<&Digest> = img.layers.iter().map(|l| &l.layer.chain_id).collect();
            for c in chains {
                let e = chain_users.entry(c).or_default();
                e.0 += 1;
                e.1 |= tagged;
            }
            for l in &img.layers {
                layer_blobs.insert(&l.blob);
                chain_blobs
                    .entry(&l.layer.chain_id)
                    .or_insert_with(|| (&l.layer.diff_id, BTreeSet::new()))
                    .1
                    .insert(&l.blob);
            }
        }

        let mut out = Usage::default();
        for (b, &(_, tagged)) in &blob_users {
            let n = size_of(b);
            out.images_summary.size += n;
            if !tagged {
                out.images_summary.reclaimable += n;
            }
            if layer_blobs.contains(b) {
                out.layers_summary.size += n;
                if !tagged {
                    out.layers_summary.reclaimable += n;
                }
            }
        }
        out.images_summary.total = images.len();
        out.images_summary.active = images.iter().filter(|i| !i.tags.is_empty()).count();
        out.layers_summary.total = chain_users.len();
        out.layers_summary.active = chain_users.values().filter(|u| u.1).count();

        for (chain, (diff_id, blobs)) in &chain_blobs {
            let (n, tagged_n) = images.iter().fold((0, 0), |(n, t), img| {
                if img.layers.iter().any(|l| &&l.layer.chain_id == chain) {
                    (n + 1, t + usize::from(!img.tags.is_empty()))
                } else {
                    (n, t)
                }
            });
            out.layers.push(LayerUsage {
                chain_id: (*chain).clone(),
                diff_id: (*diff_id).clone(),
                size: blobs.iter().map(|b| size_of(b)).sum(),
                images: n,
                tagged_images: tagged_n,
            });
        }

        for img in &images {
            let mut size = 0;
            for b in image_blobs(img) {
                size += size_of(b);
            }
            let mut shared_blobs: BTreeSet<&Digest> = BTreeSet::new();
            for l in &img.layers {
                let by_blob = blob_users.get(&l.blob).is_some_and(|u| u.0 > 1);
                let by_chain = chain_users.get(&l.layer.chain_id).is_some_and(|u| u.0 > 1);
                if by_blob || by_chain {
                    shared_blobs.insert(&l.blob);
                }
            }
            let shared: u64 = shared_blobs.iter().map(|b| size_of(b)).sum();
            out.images.push(ImageUsage {
                image: img.clone(),
                size,
                shared,
                unique: size.saturating_sub(shared),
            });
        }

        // Files with names that are not digests are not blobs: fsck reports them.
        let (all, _) = self.list_blobs()?;
        for d in all.iter().filter(|d| !blob_users.contains_key(d)) {
            out.unreferenced_summary.total += 1;
            out.unreferenced_summary.size += size_of(d);
        }
        let ingest = self.root().join("ingest");
        let leftovers = std::fs::read_dir(&ingest)
            .map_err(|e| StoreError::io(&ingest, e))?
            .flatten()
            .map(|e| e.path());
        for p in leftovers {
            out.unreferenced_summary.total += 1;
            out.unreferenced_summary.size += std::fs::metadata(&p).map_or(0, |m| m.len());
        }
        out.unreferenced_summary.reclaimable = out.unreferenced_summary.size;
        out.partials = self.ingest().partials()?;
        Ok(out)
    }
}
