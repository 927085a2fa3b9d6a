//! Compressing layers during a copy, and the manifests that then change.
//!
//! A layer to compress is read once: its raw bytes hashed against its
//! descriptor, decompressed when it was compressed, its diffID hashed and
//! checked against the config, and compressed into an unlinked temporary
//! file whose digest and size become the layer's new descriptor (a registry
//! needs both before the upload ends). The config does not change: diffIDs
//! name the uncompressed bytes. Each manifest naming a compressed layer is
//! rewritten (new bytes, new digest), and so is each index naming such a
//! manifest.

use crate::blobio::{bomb_limit, check, DiffFail};
use crate::source::{BlobBody, RawManifest};
use crate::TransportError;
use hoist_archive::{
    compression, pgzip, CountingReader, HashingReader, HashingWriter, LimitedReader,
};
use hoist_oci::media_type::{self, Compression};
use hoist_oci::{Algorithm, Descriptor, Digest, Document};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};

/// A compression a copy can write layers in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompressFormat {
    /// gzip (deterministic parallel, pigz-style).
    Gzip,
    /// zstd.
    Zstd,
}

impl std::str::FromStr for CompressFormat {
    type Err = String;

    /// `gzip` or `zstd`, as `--dest-compress-format` takes it.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gzip" => Ok(CompressFormat::Gzip),
            "zstd" => Ok(CompressFormat::Zstd),
            _ => Err(format!("{s:?}: expected gzip or zstd")),
        }
    }
}

impl CompressFormat {
    fn compression(self) -> Compression {
        match self {
            CompressFormat::Gzip => Compression::Gzip,
            CompressFormat::Zstd => Compression::Zstd,
        }
    }
}

/// Which layers a copy compresses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compress {
    /// None: every blob travels as it is.
    #[default]
    Keep,
    /// Only uncompressed layers, into this format (what `push` does, as `docker push`).
    Uncompressed(CompressFormat),
    /// Every layer not already in this format, recompressing compressed ones
    /// (`--dest-compress-format`).
    All(CompressFormat),
}

impl Compress {
    /// The format layer `d` must be written in; None to copy it as it is.
    pub(crate) fn target(&self, d: &Descriptor) -> Option<CompressFormat> {
        // Foreign layers are fetched from their URLs, never re-sent.
        if !d.urls.is_empty() {
            return None;
        }
        let have = media_type::layer_compression(&d.media_type)?;
        match *self {
            Compress::Keep => None,
            Compress::Uncompressed(f) => (have == Compression::None).then_some(f),
            Compress::All(f) => (have != f.compression()).then_some(f),
        }
    }
}

/// The gzip level hoist writes by default: zlib's default, as `docker push` uses.
const GZIP_LEVEL: i32 = 6;
/// The zstd level hoist writes: zstd's default.
const ZSTD_LEVEL: i32 = hoist_archive::compression::ZSTD_DEFAULT_LEVEL;

/// How to compress one layer.
pub(crate) struct Encoding {
    /// gzip or zstd.
    pub(crate) format: CompressFormat,
    /// The level; None takes the format's default.
    pub(crate) level: Option<i32>,
    /// Threads compressing it; the bytes do not depend on how many.
    pub(crate) threads: usize,
}

impl Encoding {
    /// The level to use, refused when the format has no such level.
    fn level(&self) -> Result<i32, TransportError> {
        let (format, default, range, levels) = match self.format {
            CompressFormat::Gzip => ("gzip", GZIP_LEVEL, "0 to 9", 0..=9),
            CompressFormat::Zstd => ("zstd", ZSTD_LEVEL, "1 to 22", 1..=22),
        };
        match self.level.unwrap_or(default) {
            l if levels.contains(&l) => Ok(l),
            level => Err(TransportError::BadLevel {
                format,
                level,
                range,
            }),
        }
    }
}

/// A layer compressed into a temporary file.
pub(crate) struct Compressed {
    /// The new layer's descriptor.
    pub(crate) desc: Descriptor,
    /// Its bytes (unlinked: gone once closed).
    pub(crate) file: File,
}

impl Compressed {
    /// The layer as a body a destination verifies while writing it.
    pub(crate) fn body(self) -> BlobBody {
        BlobBody::File {
            file: self.file,
            offset: 0,
            len: self.desc.size,
        }
    }
}

/// The uncompressed stream: hashed for its diffID, or only counted when
/// the diffID is the raw digest.
enum Plain<R> {
    Hashed(Box<HashingReader<R>>),
    Counted(CountingReader<R>),
}

/// What [`Plain`] measured.
enum Measured {
    Hashed(Digest, u64),
    Counted(u64),
}

impl<R: Read> Plain<R> {
    fn finish(self) -> Measured {
        match self {
            Plain::Hashed(h) => {
                let (d, n) = h.finish();
                Measured::Hashed(d, n)
            }
            Plain::Counted(c) => Measured::Counted(c.count()),
        }
    }
}

impl<R: Read> Read for Plain<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Plain::Hashed(h) => h.read(buf),
            Plain::Counted(c) => c.read(buf),
        }
    }
}

/// Reports each read's byte count.
struct Reporting<'a, R> {
    inner: R,
    progress: &'a (dyn Fn(u64) + Sync),
}

impl<R: Read> Read for Reporting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.progress)(n as u64);
        Ok(n)
    }
}

/// Compresses layer `d` (read from `body`) as `enc` says, checking its
/// digest, size and (when known) diffID on the way.
/// `progress` gets the layer's raw bytes as they are read.
pub(crate) fn compress_layer(
    what: &str,
    body: BlobBody,
    d: &Descriptor,
    diff_id: Option<&Digest>,
    enc: &Encoding,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Compressed, TransportError> {
    let io_err = |e| TransportError::io(format!("compressing {what}"), e);
    let level = enc.level()?;
    let raw = body.into_reader()?;
    let mut raw = HashingReader::new(
        Reporting {
            inner: raw,
            progress,
        },
        d.digest.algorithm(),
    );
    let file = tempfile::tempfile().map_err(|e| TransportError::io("a temporary file", e))?;
    let mut out = HashingWriter::new(BufWriter::with_capacity(1 << 20, file), Algorithm::Sha256);
    let diff = {
        let (comp, mut sniffed) = compression::sniff(&mut raw).map_err(io_err)?;
        let dec = compression::decompress_reader(&mut sniffed, comp).map_err(io_err)?;
        let limited = LimitedReader::new(dec, bomb_limit(d.size));
        // A plain sha256 layer's diffID is its digest, hashed already.
        let mut plain = if comp == Compression::None && d.digest.algorithm() == Algorithm::Sha256 {
            Plain::Counted(CountingReader::new(limited))
        } else {
            Plain::Hashed(Box::new(HashingReader::new(limited, Algorithm::Sha256)))
        };
        let written = match enc.format {
            CompressFormat::Gzip => pgzip::gzip(&mut plain, &mut out, level as u32, enc.threads),
            CompressFormat::Zstd => {
                compression::zstd_parallel(&mut plain, &mut out, level, enc.threads)
            }
        }
        .map(|_| ());
        let measured = plain.finish();
        let diff = match written {
            Ok(()) => Ok(measured),
            Err(e) if is_bomb(&e) => Err(DiffFail::Bomb(bomb_limit(d.size))),
            Err(e) => Err(DiffFail::Corrupt(e.to_string())),
        };
        if comp != Compression::None && diff.is_ok() {
            // Trailing bytes after the compressed stream still belong to the blob.
            io::copy(&mut sniffed, &mut io::sink()).map_err(io_err)?;
        }
        diff
    };
    if let Err(DiffFail::Corrupt(_)) = &diff {
        // The raw digest decides whether the source or its bytes are to blame.
        io::copy(&mut raw, &mut io::sink()).map_err(io_err)?;
    }
    let (digest, size) = raw.finish();
    let diff = diff.map(|m| match m {
        Measured::Hashed(digest, n) => (digest, n),
        Measured::Counted(n) => (digest.clone(), n),
    });
    let diff = diff.map_err(|f| match f {
        DiffFail::Corrupt(_) if digest != d.digest => TransportError::DigestMismatch {
            path: what.to_owned(),
            expected: d.digest.clone(),
            actual: digest.clone(),
        },
        f => f.into_error(what),
    })?;
    let diff_id = diff_id.unwrap_or(&diff.0).clone();
    check(what, d, &digest, size, Some(&diff_id), Some(Ok(diff)))?;
    out.flush().map_err(io_err)?;
    let (buf, new_digest, new_size) = out.finish();
    let file = buf.into_inner().map_err(|e| io_err(e.into_error()))?;
    let mut desc = d.clone();
    desc.media_type = layer_type(&d.media_type, enc.format).to_owned();
    desc.digest = new_digest;
    desc.size = new_size;
    Ok(Compressed { desc, file })
}

/// True when the error is the bomb limit being crossed.
fn is_bomb(e: &io::Error) -> bool {
    e.get_ref()
        .and_then(|i| i.downcast_ref::<hoist_archive::Error>())
        .is_some_and(|i| matches!(i, hoist_archive::Error::TooLarge { .. }))
}

/// The media type of layer type `mt` once compressed with `format`: Docker's
/// own when it has one (gzip), else OCI's (the manifest then becomes OCI).
fn layer_type(mt: &str, format: CompressFormat) -> &'static str {
    use media_type::*;
    let nondist = matches!(
        mt,
        OCI_LAYER_NONDIST_TAR | OCI_LAYER_NONDIST_GZIP | OCI_LAYER_NONDIST_ZSTD
    );
    let docker = matches!(mt, DOCKER_LAYER_TAR | DOCKER_LAYER_GZIP);
    match (format, nondist, docker) {
        (CompressFormat::Gzip, true, _) => OCI_LAYER_NONDIST_GZIP,
        (CompressFormat::Zstd, true, _) => OCI_LAYER_NONDIST_ZSTD,
        (CompressFormat::Gzip, false, true) => DOCKER_LAYER_GZIP,
        (f, false, _) => oci_layer(f.compression()),
    }
}

/// The OCI type for a Docker layer type (a manifest turning OCI takes these).
fn oci_equivalent(mt: &str) -> Option<&'static str> {
    use media_type::*;
    match mt {
        DOCKER_LAYER_TAR => Some(OCI_LAYER_TAR),
        DOCKER_LAYER_GZIP => Some(OCI_LAYER_GZIP),
        DOCKER_LAYER_FOREIGN_GZIP => Some(OCI_LAYER_NONDIST_GZIP),
        DOCKER_CONFIG => Some(OCI_CONFIG),
        DOCKER_MANIFEST => Some(OCI_MANIFEST),
        DOCKER_MANIFEST_LIST => Some(OCI_INDEX),
        _ => None,
    }
}

/// True for types only OCI documents may name (a Docker manifest has no zstd).
fn oci_only(mt: &str) -> bool {
    use media_type::*;
    matches!(
        mt,
        OCI_LAYER_ZSTD | OCI_LAYER_NONDIST_ZSTD | OCI_MANIFEST | OCI_INDEX
    )
}

fn to_oci(mt: &mut String) {
    if let Some(o) = oci_equivalent(mt) {
        *mt = o.to_owned();
    }
}

/// `raw` with the blobs and manifests it names replaced by what `new` maps
/// their digests to; None when it names none of them. A Docker document
/// that would then name an OCI-only type (zstd) becomes OCI, as skopeo
/// converts it.
pub(crate) fn rewrite(
    raw: &RawManifest,
    new: &HashMap<Digest, Descriptor>,
) -> Result<Option<RawManifest>, TransportError> {
    let what = format!("manifest {}", raw.digest);
    let doc = Document::parse(&raw.bytes, Some(&raw.media_type)).map_err(|source| {
        TransportError::Document {
            what: what.clone(),
            source,
        }
    })?;
    let swap = |d: &mut Descriptor| match new.get(&d.digest) {
        Some(n) => {
            d.media_type.clone_from(&n.media_type);
            d.digest = n.digest.clone();
            d.size = n.size;
            true
        }
        None => false,
    };
    let (bytes, media_type) = match doc {
        Document::Manifest(mut m) => {
            let mut changed = false;
            for l in &mut m.layers {
                changed |= swap(l);
            }
            // A referrer follows its subject to the subject's new digest.
            if let Some(s) = &mut m.subject {
                changed |= swap(s);
            }
            if !changed {
                return Ok(None);
            }
            let mut mt = raw.media_type.clone();
            if mt == media_type::DOCKER_MANIFEST && m.layers.iter().any(|l| oci_only(&l.media_type))
            {
                to_oci(&mut mt);
                m.media_type = Some(mt.clone());
                to_oci(&mut m.config.media_type);
                for l in &mut m.layers {
                    to_oci(&mut l.media_type);
                }
            }
            (serde_json::to_vec(&m), mt)
        }
        Document::Index(mut idx) => {
            let mut changed = false;
            for e in &mut idx.manifests {
                changed |= swap(e);
            }
            if let Some(s) = &mut idx.subject {
                changed |= swap(s);
            }
            if !changed {
                return Ok(None);
            }
            let mut mt = raw.media_type.clone();
            if mt == media_type::DOCKER_MANIFEST_LIST
                && idx.manifests.iter().any(|e| oci_only(&e.media_type))
            {
                to_oci(&mut mt);
                idx.media_type = Some(mt.clone());
                for e in &mut idx.manifests {
                    to_oci(&mut e.media_type);
                }
            }
            (serde_json::to_vec(&idx), mt)
        }
    };
    let bytes = bytes.map_err(|e| TransportError::Archive(format!("{what}: rewriting: {e}")))?;
    Ok(Some(RawManifest::new(bytes, media_type)))
}
