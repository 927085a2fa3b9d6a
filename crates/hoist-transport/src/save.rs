//! `save`: write images from the store as a `docker save` archive (the
//! layout Docker 25+ writes: an OCI layout plus `manifest.json` and
//! `repositories`, which every Docker since 1.10 loads) or as an OCI archive.
//! Blobs are written byte for byte as stored, so digests and the image ID
//! never change; file-to-file copies go through `copy_file_range`.

use crate::TransportError;
use hoist_oci::{media_type, Descriptor, Digest, Index, Reference};
use hoist_store::{ImageRecord, Store};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Write};

/// The archive layout to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveFormat {
    /// `docker save`: OCI layout plus manifest.json and repositories.
    Docker,
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
struct ManifestEntry<'a> {
    config: String,
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
    #[serde(skip)]
    _p: std::marker::PhantomData<&'a ()>,
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
        let mut f = store.open_blob(d)?;
        let size = f
            .metadata()
            .map_err(|e| TransportError::io(d.to_string(), e))?
            .len();
        let io_err = |e| TransportError::io(format!("writing blob {d}"), e);
        self.header(&member(d), size).map_err(io_err)?;
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

/// Writes `items` as one archive; blobs shared by several images are written once.
pub fn save(
    store: &Store,
    items: &[SaveItem],
    format: SaveFormat,
    out: SaveOutput<'_>,
) -> Result<(), TransportError> {
    let mut tar = TarOut { out };
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
            _p: std::marker::PhantomData,
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
    let json = |v: &dyn erased::Json| v.to_vec();
    let io_err = |e| TransportError::io("writing the archive", e);
    tar.bytes("index.json", &json(&index)).map_err(io_err)?;
    tar.bytes("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
        .map_err(io_err)?;
    if format == SaveFormat::Docker {
        tar.bytes("manifest.json", &json(&manifest_json))
            .map_err(io_err)?;
        if !repositories.is_empty() {
            tar.bytes("repositories", &json(&repositories))
                .map_err(io_err)?;
        }
    }
    // Two zero blocks end a tar archive.
    tar.write_all(&[0u8; 1024]).map_err(io_err)?;
    Ok(())
}

mod erased {
    /// Serialises what hoist itself creates (never documents it received).
    pub trait Json {
        fn to_vec(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_vec(&self) -> Vec<u8> {
            serde_json::to_vec(self).unwrap_or_default()
        }
    }
}
