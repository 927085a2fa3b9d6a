//! `docker-root:`: images read straight from a stopped Docker's overlay2
//! data-root, without dockerd.
//!
//! The image database (`image/overlay2/imagedb/content/sha256/<id>`) holds
//! each config under its digest, `repositories.json` maps tags to image IDs,
//! and the layer database (`image/overlay2/layerdb/sha256/<chainID>/`) gives
//! each layer's diffID and the overlay2 directory (`cache-id`) of its files.
//! Docker keeps no layer tar: it keeps the tar's headers and padding in
//! `tar-split.json.gz`, and this module rebuilds the tar byte for byte from
//! them and the files, so that it hashes to the diffID the config lists.
//! A file changed since Docker stored it is refused by name.

mod beneath;
mod crc64;
mod error;
mod tarsplit;

pub use error::DockerRootError;
pub use tarsplit::LayerTar;

use hoist_oci::{chain_ids, media_type, Config, Descriptor, Digest, Manifest, Reference};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The storage driver whose data-roots this module reads.
const DRIVER: &str = "overlay2";
/// Largest metadata file read (`repositories.json`, a config).
const MAX_JSON: u64 = crate::MAX_JSON;
/// Largest one-line layer database file (`diff`, `parent`, `cache-id`, `size`).
const MAX_SMALL: u64 = 4096;

/// An image of the data-root: its ID and the references naming it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootImage {
    /// The image ID: the digest of its config.
    pub id: Digest,
    /// `name:tag` references, as `repositories.json` spells them.
    pub tags: Vec<String>,
    /// `name@sha256:…` references (the registry manifests it came from).
    pub digests: Vec<String>,
}

/// One layer of an image, base first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootLayer {
    /// The sha256 of the uncompressed layer tar (from the config).
    pub diff_id: Digest,
    /// The chainID naming the stack up to this layer (the layer database's key).
    pub chain_id: Digest,
    /// The length of the rebuilt tar, in bytes.
    pub size: u64,
}

/// A stopped Docker's overlay2 data-root, opened for reading.
#[derive(Debug)]
pub struct DockerRoot {
    root: PathBuf,
    /// `image/overlay2`.
    db: PathBuf,
}

#[derive(serde::Deserialize)]
struct Repositories {
    #[serde(rename = "Repositories", default)]
    repositories: BTreeMap<String, BTreeMap<String, String>>,
}

impl DockerRoot {
    /// Opens the data-root `dir` (what dockerd's `--data-root` names).
    /// Data-roots of other storage drivers are refused by name.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, DockerRootError> {
        let root = dir.as_ref().to_path_buf();
        let image = root.join("image");
        let db = image.join(DRIVER);
        if db.is_dir() {
            return Ok(DockerRoot { root, db });
        }
        if !root.is_dir() {
            return Err(DockerRootError::io(
                &root,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        let drivers: Vec<String> = match std::fs::read_dir(&image) {
            Ok(rd) => rd
                .filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DockerRootError::NotADataRoot { root })
            }
            Err(e) => return Err(DockerRootError::io(image, e)),
        };
        if drivers.is_empty() {
            return Err(DockerRootError::NotADataRoot { root });
        }
        let mut drivers = drivers;
        drivers.sort();
        Err(DockerRootError::UnsupportedDriver {
            root,
            driver: drivers.join(", "),
        })
    }

    /// The data-root's directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    fn content_dir(&self) -> PathBuf {
        self.db.join("imagedb/content/sha256")
    }

    fn layer_dir(&self, chain_id: &Digest) -> PathBuf {
        self.db
            .join("layerdb")
            .join(chain_id.algorithm().as_str())
            .join(chain_id.hex())
    }

    /// The IDs in the image database, sorted.
    fn ids(&self) -> Result<Vec<Digest>, DockerRootError> {
        let dir = self.content_dir();
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(DockerRootError::io(dir, e)),
        };
        let mut ids = Vec::new();
        for e in rd {
            let e = e.map_err(|e| DockerRootError::io(&dir, e))?;
            // Docker leaves nothing else here; anything that is not a digest is not an image.
            if let Ok(d) = format!("sha256:{}", e.file_name().to_string_lossy()).parse::<Digest>() {
                ids.push(d);
            }
        }
        ids.sort_by(|a, b| a.hex().cmp(b.hex()));
        Ok(ids)
    }

    /// `repositories.json`: every reference with the image ID it names.
    fn references(&self) -> Result<Vec<(String, Digest)>, DockerRootError> {
        let path = self.db.join("repositories.json");
        let bytes = match read_limited(&path, MAX_JSON) {
            Ok(b) => b,
            Err(DockerRootError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(Vec::new())
            }
            Err(e) => return Err(e),
        };
        let repos: Repositories = serde_json::from_slice(&bytes)
            .map_err(|e| DockerRootError::corrupt(&path, format!("bad JSON: {e}")))?;
        let mut out = Vec::new();
        for refs in repos.repositories.into_values() {
            for (reference, id) in refs {
                let id = id.parse::<Digest>().map_err(|e| {
                    DockerRootError::corrupt(&path, format!("{reference}: bad image ID: {e}"))
                })?;
                out.push((reference, id));
            }
        }
        Ok(out)
    }

    /// Every image of the image database with the references naming it.
    pub fn images(&self) -> Result<Vec<RootImage>, DockerRootError> {
        let refs = self.references()?;
        Ok(self
            .ids()?
            .into_iter()
            .map(|id| {
                let mut tags = Vec::new();
                let mut digests = Vec::new();
                for (r, _) in refs.iter().filter(|(_, i)| *i == id) {
                    if r.contains('@') {
                        digests.push(r.clone());
                    } else {
                        tags.push(r.clone());
                    }
                }
                tags.sort();
                digests.sort();
                RootImage { id, tags, digests }
            })
            .collect())
    }

    /// The image ID `reference` names: a tag (`name`, `name:tag`,
    /// `name@digest`, normalised as Docker does), a full image ID
    /// (`sha256:…` or bare hex) or a unique prefix of one.
    pub fn resolve(&self, reference: &str) -> Result<Digest, DockerRootError> {
        let ids = self.ids()?;
        let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
        let is_hex = !hex.is_empty() && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if is_hex && hex.len() == 64 {
            return ids
                .into_iter()
                .find(|d| d.hex() == hex)
                .ok_or_else(|| DockerRootError::NoSuchImage(reference.to_owned()));
        }
        if let Ok(wanted) = Reference::parse(reference) {
            let wanted = wanted.with_default_tag();
            for (r, id) in self.references()? {
                if Reference::parse(&r).is_ok_and(|r| r.with_default_tag() == wanted) {
                    return Ok(id);
                }
            }
        }
        if is_hex {
            let matches: Vec<Digest> = ids
                .into_iter()
                .filter(|d| d.hex().starts_with(hex))
                .collect();
            return match matches.len() {
                1 => Ok(matches.into_iter().next().expect("one match")),
                0 => Err(DockerRootError::NoSuchImage(reference.to_owned())),
                count => Err(DockerRootError::Ambiguous {
                    prefix: reference.to_owned(),
                    count,
                }),
            };
        }
        Err(DockerRootError::NoSuchImage(reference.to_owned()))
    }

    /// The config bytes of image `id`, checked against the ID.
    pub fn config(&self, id: &Digest) -> Result<Vec<u8>, DockerRootError> {
        let path = self.content_dir().join(id.hex());
        let bytes = match read_limited(&path, MAX_JSON) {
            Err(DockerRootError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Err(DockerRootError::NoSuchImage(id.to_string()))
            }
            other => other?,
        };
        let actual = Digest::sha256(&bytes);
        if actual != *id {
            return Err(DockerRootError::ConfigMismatch {
                id: id.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// The layers of image `id`, base first, each checked in the layer
    /// database and sized from its tar-split record.
    pub fn layers(&self, id: &Digest) -> Result<Vec<RootLayer>, DockerRootError> {
        let bytes = self.config(id)?;
        let config = Config::parse(&bytes).map_err(|e| {
            DockerRootError::corrupt(self.content_dir().join(id.hex()), e.to_string())
        })?;
        let diff_ids = config.rootfs.diff_ids;
        let chains = chain_ids(&diff_ids);
        let mut out = Vec::with_capacity(diff_ids.len());
        for (diff_id, chain_id) in diff_ids.into_iter().zip(chains) {
            let recorded = self.layer_diff_id(&chain_id).map_err(|e| match e {
                DockerRootError::Io { source, .. }
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    DockerRootError::MissingLayer {
                        chain_id: chain_id.clone(),
                        diff_id: diff_id.clone(),
                    }
                }
                e => e,
            })?;
            if recorded != diff_id {
                return Err(DockerRootError::corrupt(
                    self.layer_dir(&chain_id).join("diff"),
                    format!(
                        "records diffID {recorded}, but image {id} lists {diff_id} for this chain"
                    ),
                ));
            }
            let size = tarsplit::tar_size(self.tar_split(&chain_id)?)?;
            out.push(RootLayer {
                diff_id,
                chain_id,
                size,
            });
        }
        Ok(out)
    }

    /// An OCI manifest for image `id`, made here since Docker keeps none for
    /// what it stores: the config as it is and each layer as its uncompressed
    /// tar (`digest` = diffID, `size` = the rebuilt length), as hoist's load
    /// describes a classic `docker save` image.
    pub fn manifest(&self, id: &Digest) -> Result<Vec<u8>, DockerRootError> {
        let config_len = self.config(id)?.len() as u64;
        self.manifest_of(id, config_len, &self.layers(id)?)
    }

    /// The manifest [`manifest`](Self::manifest) makes, from the config's
    /// length and the layers already read.
    pub(crate) fn manifest_of(
        &self,
        id: &Digest,
        config_len: u64,
        layers: &[RootLayer],
    ) -> Result<Vec<u8>, DockerRootError> {
        let m = Manifest {
            schema_version: 2,
            media_type: Some(media_type::OCI_MANIFEST.to_owned()),
            artifact_type: None,
            config: Descriptor::new(media_type::OCI_CONFIG, id.clone(), config_len),
            layers: layers
                .iter()
                .map(|l| Descriptor::new(media_type::OCI_LAYER_TAR, l.diff_id.clone(), l.size))
                .collect(),
            subject: None,
            annotations: Default::default(),
        };
        serde_json::to_vec(&m).map_err(|e| {
            DockerRootError::corrupt(
                self.content_dir().join(id.hex()),
                format!("cannot make a manifest: {e}"),
            )
        })
    }

    /// The layer's tar, rebuilt from its tar-split record and overlay2 diff
    /// directory, checked as it streams (see [`LayerTar`]).
    pub fn layer_tar(&self, chain_id: &Digest) -> Result<LayerTar, DockerRootError> {
        let diff_id = self.layer_diff_id(chain_id)?;
        let entries = self.tar_split(chain_id)?;
        let cache_path = self.layer_dir(chain_id).join("cache-id");
        let cache_id = read_line(&cache_path)?;
        // The cache-id becomes a path component: it must be one plain name.
        if cache_id.is_empty()
            || !cache_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(DockerRootError::corrupt(
                cache_path,
                format!("{cache_id:?} is not an overlay2 directory name"),
            ));
        }
        let drv = self.root.join(DRIVER);
        let top = beneath::open_dir(&drv).map_err(|e| DockerRootError::io(&drv, e))?;
        let diff_path = drv.join(&cache_id).join("diff");
        let dir = beneath::open_dir_at(std::os::fd::AsFd::as_fd(&top), cache_id.as_ref())
            .and_then(|d| beneath::open_dir_at(std::os::fd::AsFd::as_fd(&d), "diff".as_ref()))
            .map_err(|e| DockerRootError::io(&diff_path, e))?;
        Ok(LayerTar::new(
            chain_id.clone(),
            diff_id,
            entries,
            beneath::Beneath::new(dir),
        ))
    }

    /// The diffID the layer database records for `chain_id`.
    fn layer_diff_id(&self, chain_id: &Digest) -> Result<Digest, DockerRootError> {
        let path = self.layer_dir(chain_id).join("diff");
        let line = read_line(&path)?;
        line.parse()
            .map_err(|e| DockerRootError::corrupt(&path, format!("bad diffID: {e}")))
    }

    fn tar_split(&self, chain_id: &Digest) -> Result<tarsplit::Entries, DockerRootError> {
        let path = self.layer_dir(chain_id).join("tar-split.json.gz");
        let file = File::open(&path).map_err(|e| DockerRootError::io(&path, e))?;
        tarsplit::Entries::new(chain_id.clone(), file)
    }
}

/// Reads a whole file of at most `limit` bytes.
fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, DockerRootError> {
    let file = File::open(path).map_err(|e| DockerRootError::io(path, e))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| DockerRootError::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(DockerRootError::corrupt(
            path,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(bytes)
}

/// Reads a one-line layer database file, trimmed.
fn read_line(path: &Path) -> Result<String, DockerRootError> {
    let bytes = read_limited(path, MAX_SMALL)?;
    String::from_utf8(bytes)
        .map(|s| s.trim().to_owned())
        .map_err(|_| DockerRootError::corrupt(path, "not UTF-8"))
}

#[cfg(test)]
mod tests;
