//! Valid images (JSON config and manifest, plain-tar layers) committed
//! through the store writer, for tests that run fsck.

use hoist_oci::{chain_ids, Digest};
use hoist_store::{LayerRecord, NewImage, NewLayer, Store};

/// Commits a valid one-layer image (plain tar layer) tagged `tag`.
pub fn add_image(store: &Store, layer: &[u8], tag: &str) -> Digest {
    let diff = Digest::sha256(layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff.to_string()]},
    }))
    .unwrap();
    let id = Digest::sha256(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": hoist_oci::media_type::OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": id.to_string(), "size": config.len()},
        "layers": [{"mediaType": hoist_oci::media_type::OCI_LAYER_TAR, "digest": diff.to_string(), "size": layer.len()}],
    }))
    .unwrap();
    let w = store.begin().unwrap();
    w.put_bytes(layer, None).unwrap();
    w.put_bytes(&config, None).unwrap();
    let manifest_digest = w.put_bytes(&manifest, None).unwrap();
    w.add_image(
        NewImage {
            id: id.clone(),
            config_size: config.len() as u64,
            manifest: manifest_digest,
            manifest_media_type: hoist_oci::media_type::OCI_MANIFEST.into(),
            created: None,
            layers: vec![NewLayer {
                layer: LayerRecord {
                    chain_id: chain_ids(std::slice::from_ref(&diff)).remove(0),
                    diff_id: diff.clone(),
                    parent: None,
                    size: layer.len() as u64,
                },
                blob: diff,
                media_type: hoist_oci::media_type::OCI_LAYER_TAR.into(),
                blob_size: layer.len() as u64,
            }],
            tags: vec![tag.into()],
        },
        None,
    )
    .unwrap();
    w.commit().unwrap();
    id
}
