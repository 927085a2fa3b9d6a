//! Test support: an in-process `hoist serve` (the real registry server on a
//! loopback port) and a tiny image to push into it.

#![allow(dead_code)]

use hoist_oci::{media_type, Descriptor, Digest};
use hoist_registry_client::Options;
use std::path::Path;
use tokio::sync::oneshot;

/// A running in-process `hoist serve`; stopped on drop.
pub struct Serve {
    pub addr: String,
    _stop: oneshot::Sender<()>,
}

pub async fn serve(root: &Path) -> Serve {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let cfg = hoist_registry::ServerConfig::new(root.to_path_buf());
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(hoist_registry::serve(listener, cfg, async {
        let _ = rx.await;
    }));
    Serve { addr, _stop: tx }
}

/// Options for tests: fast retries, small ranges so a 1 MiB blob is many.
pub fn opts() -> Options {
    Options {
        retries: 3,
        backoff: std::time::Duration::from_millis(20),
        range_size: 64 << 10,
        parallel_ranges: 4,
        certs_dirs: Vec::new(),
        docker_config: Some("/nonexistent/config.json".into()),
        ..Options::default()
    }
}

/// A tiny image: its config, one layer and the manifest naming them.
pub struct Image {
    pub config: Vec<u8>,
    pub layer: Vec<u8>,
    pub manifest: Vec<u8>,
}

impl Image {
    pub fn new(layer_len: usize) -> Image {
        let layer: Vec<u8> = (0..layer_len).map(|i| (i * 7 % 251) as u8).collect();
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
                .to_vec();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_MANIFEST,
            "config": {"mediaType": media_type::OCI_CONFIG, "digest": Digest::sha256(&config), "size": config.len()},
            "layers": [{"mediaType": media_type::OCI_LAYER_GZIP, "digest": Digest::sha256(&layer), "size": layer.len()}],
        })
        .to_string()
        .into_bytes();
        Image {
            config,
            layer,
            manifest,
        }
    }

    pub fn config_desc(&self) -> Descriptor {
        Descriptor::new(
            media_type::OCI_CONFIG,
            Digest::sha256(&self.config),
            self.config.len() as u64,
        )
    }

    pub fn layer_desc(&self) -> Descriptor {
        Descriptor::new(
            media_type::OCI_LAYER_GZIP,
            Digest::sha256(&self.layer),
            self.layer.len() as u64,
        )
    }

    pub fn manifest_digest(&self) -> Digest {
        Digest::sha256(&self.manifest)
    }
}
