//! Manifests, indexes and image configs.
//!
//! These are hoist's own serde types rather than `oci-spec`'s: hoist reads
//! Docker documents too (Schema 2, manifest lists, Docker configs with extra
//! fields), needs its strict [`Digest`] in every descriptor, and only ever
//! parses documents to read them — the stored bytes stay the truth — so the
//! types keep just the fields hoist uses and ignore the rest.

use crate::{media_type, Digest, Platform};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Why bytes are not a valid manifest, index or config.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// Not JSON, or JSON of the wrong shape.
    #[error("invalid {what} JSON: {source}")]
    Json {
        /// Which kind of document was expected.
        what: &'static str,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// Has both `manifests` and `layers`/`config`, so it could be read either way.
    #[error("ambiguous document: it has both \"manifests\" (index) and \"layers\"/\"config\" (manifest); refusing to guess")]
    Ambiguous,
    /// Neither a manifest nor an index.
    #[error("document is neither an image manifest nor an index (mediaType {0:?})")]
    Unknown(Option<String>),
    /// The `mediaType` inside disagrees with the one it was served or described as.
    #[error("document declares mediaType {found:?} but was described as {declared:?}")]
    MediaTypeMismatch {
        /// What the descriptor or Content-Type said.
        declared: String,
        /// What the document says.
        found: String,
    },
    /// `schemaVersion` is not 2.
    #[error("unsupported schemaVersion {0} (hoist reads schema version 2)")]
    SchemaVersion(i64),
    /// A config whose rootfs is not of type `layers`.
    #[error("image config rootfs.type is {0:?}, expected \"layers\"")]
    RootFsType(String),
}

/// A content descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the content.
    pub media_type: String,
    /// Digest of the content's bytes.
    pub digest: Digest,
    /// Size of the content in bytes.
    pub size: u64,
    /// Where else the content may be fetched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The platform, in an index entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// The artifact type, for artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// A descriptor with just the three required fields.
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.to_owned(),
            digest,
            size,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            platform: None,
            artifact_type: None,
        }
    }
}

/// An image manifest, OCI or Docker Schema 2.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: i64,
    /// The manifest's media type, when it states it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Artifact type, for artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, base first.
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image index or Docker manifest list.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: i64,
    /// The index's media type, when it states it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Artifact type, for artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The manifests (or nested indexes) it lists.
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A parsed manifest or index.
#[derive(Clone, Debug)]
pub enum Document {
    /// An image manifest.
    Manifest(Box<Manifest>),
    /// An index or manifest list.
    Index(Box<Index>),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    layers: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    config: Option<serde::de::IgnoredAny>,
}

impl Document {
    /// Parses a manifest or index, refusing anything that could be read as both.
    /// `declared` is the media type from a descriptor or Content-Type, if known.
    pub fn parse(bytes: &[u8], declared: Option<&str>) -> Result<Self, DocumentError> {
        let probe: Probe = serde_json::from_slice(bytes).map_err(|source| DocumentError::Json {
            what: "manifest",
            source,
        })?;
        let has_index = probe.manifests.is_some();
        let has_manifest = probe.layers.is_some() || probe.config.is_some();
        if has_index && has_manifest {
            return Err(DocumentError::Ambiguous);
        }
        if let (Some(d), Some(f)) = (declared, probe.media_type.as_deref()) {
            let generic =
                d.is_empty() || d == "application/json" || d == "application/octet-stream";
            if !generic && d != f {
                return Err(DocumentError::MediaTypeMismatch {
                    declared: d.to_owned(),
                    found: f.to_owned(),
                });
            }
        }
        let mt = probe.media_type.as_deref().or(declared);
        let is_index = match mt {
            Some(m) if media_type::is_index(m) => true,
            Some(m) if media_type::is_manifest(m) => false,
            _ if has_index => true,
            _ if has_manifest => false,
            _ => return Err(DocumentError::Unknown(probe.media_type)),
        };
        if is_index {
            if has_manifest {
                return Err(DocumentError::Ambiguous);
            }
            let idx: Index =
                serde_json::from_slice(bytes).map_err(|source| DocumentError::Json {
                    what: "index",
                    source,
                })?;
            if idx.schema_version != 2 {
                return Err(DocumentError::SchemaVersion(idx.schema_version));
            }
            Ok(Document::Index(Box::new(idx)))
        } else {
            if has_index {
                return Err(DocumentError::Ambiguous);
            }
            let m: Manifest =
                serde_json::from_slice(bytes).map_err(|source| DocumentError::Json {
                    what: "manifest",
                    source,
                })?;
            if m.schema_version != 2 {
                return Err(DocumentError::SchemaVersion(m.schema_version));
            }
            Ok(Document::Manifest(Box::new(m)))
        }
    }

    /// The media type a document of this shape has, defaulting to OCI's.
    pub fn media_type(&self) -> &str {
        match self {
            Document::Manifest(m) => m.media_type.as_deref().unwrap_or(media_type::OCI_MANIFEST),
            Document::Index(i) => i.media_type.as_deref().unwrap_or(media_type::OCI_INDEX),
        }
    }
}

/// The execution parameters of an image (the config's `config` object).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    /// User to run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Ports to expose, as `port/proto` keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    /// Environment, `KEY=value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// Entrypoint argv.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Default arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Volumes, as path keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Signal to stop the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
}

/// The rootfs section: the layer stack as diffIDs, base first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The diffIDs, base first.
    pub diff_ids: Vec<Digest>,
}

/// One history entry of an image config.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When the step ran (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The command that made the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Who made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// A comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// True when the step added no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// An image config (OCI or Docker).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// When the image was made (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Who made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Docker's image comment (`docker import -m`), shown by `inspect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// CPU architecture.
    #[serde(default)]
    pub architecture: String,
    /// Operating system.
    #[serde(default)]
    pub os: String,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Execution parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ImageConfig>,
    /// The layer stack.
    pub rootfs: RootFs,
    /// Build history.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
}

impl Config {
    /// Parses and checks an image config.
    pub fn parse(bytes: &[u8]) -> Result<Self, DocumentError> {
        let c: Config = serde_json::from_slice(bytes).map_err(|source| DocumentError::Json {
            what: "image config",
            source,
        })?;
        if c.rootfs.kind != "layers" {
            return Err(DocumentError::RootFsType(c.rootfs.kind));
        }
        Ok(c)
    }

    /// The platform the image is for.
    pub fn platform(&self) -> Platform {
        Platform {
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            variant: self.variant.clone(),
            os_version: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_docker_schema2_manifest() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{D}","size":0}},"layers":[{{"mediaType":"{}","digest":"{D}","size":0}}]}}"#,
            media_type::DOCKER_MANIFEST,
            media_type::DOCKER_CONFIG,
            media_type::DOCKER_LAYER_GZIP
        );
        match Document::parse(m.as_bytes(), None).unwrap() {
            Document::Manifest(m) => assert_eq!(m.layers.len(), 1),
            Document::Index(_) => panic!("read as index"),
        }
    }

    #[test]
    fn parses_index_without_media_type() {
        let i = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{D}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            media_type::OCI_MANIFEST
        );
        assert!(matches!(
            Document::parse(i.as_bytes(), None).unwrap(),
            Document::Index(_)
        ));
    }

    #[test]
    fn rejects_document_that_is_both_manifest_and_index() {
        let both = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"x","digest":"{D}","size":0}},"layers":[],"manifests":[]}}"#
        );
        assert!(matches!(
            Document::parse(both.as_bytes(), None),
            Err(DocumentError::Ambiguous)
        ));
        let both = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","layers":[],"manifests":[]}}"#,
            media_type::OCI_INDEX
        );
        assert!(matches!(
            Document::parse(both.as_bytes(), None),
            Err(DocumentError::Ambiguous)
        ));
    }

    #[test]
    fn rejects_media_type_mismatch_and_bad_digest() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"x","digest":"{D}","size":0}},"layers":[]}}"#,
            media_type::OCI_MANIFEST
        );
        assert!(matches!(
            Document::parse(m.as_bytes(), Some(media_type::DOCKER_MANIFEST)),
            Err(DocumentError::MediaTypeMismatch { .. })
        ));
        let bad = r#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:../x","size":0},"layers":[]}"#;
        assert!(Document::parse(bad.as_bytes(), None).is_err());
    }

    #[test]
    fn parses_config_and_checks_rootfs() {
        let c = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{D}"]}},"config":{{"Cmd":["sh"]}},"container_config":{{}}}}"#
        );
        let c = Config::parse(c.as_bytes()).unwrap();
        assert_eq!(c.rootfs.diff_ids.len(), 1);
        assert_eq!(c.config.unwrap().cmd.unwrap(), vec!["sh"]);
        let bad = r#"{"rootfs":{"type":"other","diff_ids":[]}}"#;
        assert!(Config::parse(bad.as_bytes()).is_err());
    }
}
