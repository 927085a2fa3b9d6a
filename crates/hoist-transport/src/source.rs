//! The source half of the seam: what any transport hands the copy engine.

use crate::TransportError;
use hoist_oci::{Algorithm, Descriptor, Digest, Digester};
use std::fs::File;
use std::io::Read;

/// Manifest or index bytes exactly as received, with their media type and digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawManifest {
    /// The bytes, never re-serialised.
    pub bytes: Vec<u8>,
    /// The media type (from the descriptor or the document itself).
    pub media_type: String,
    /// The digest of `bytes`.
    pub digest: Digest,
}

/// The digest of `bytes` under `algorithm`.
pub fn digest_of(algorithm: Algorithm, bytes: &[u8]) -> Digest {
    let mut d = Digester::new(algorithm);
    d.update(bytes);
    d.finish()
}

impl RawManifest {
    /// Bytes named by their sha256 (documents hoist made or a transport found unnamed).
    pub fn new(bytes: Vec<u8>, media_type: impl Into<String>) -> Self {
        RawManifest {
            digest: Digest::sha256(&bytes),
            bytes,
            media_type: media_type.into(),
        }
    }

    /// Bytes that a descriptor names: refused unless they hash (with the
    /// descriptor's algorithm) to its digest and have its size.
    pub fn verified(bytes: Vec<u8>, d: &Descriptor, what: &str) -> Result<Self, TransportError> {
        let actual = digest_of(d.digest.algorithm(), &bytes);
        if actual != d.digest {
            return Err(TransportError::DigestMismatch {
                path: what.to_owned(),
                expected: d.digest.clone(),
                actual,
            });
        }
        if d.size != bytes.len() as u64 {
            return Err(TransportError::SizeMismatch {
                what: what.to_owned(),
                expected: d.size,
                actual: bytes.len() as u64,
            });
        }
        let media_type = if d.media_type.is_empty() {
            sniff_media_type(&bytes).unwrap_or_default()
        } else {
            d.media_type.clone()
        };
        Ok(RawManifest {
            bytes,
            media_type,
            digest: d.digest.clone(),
        })
    }

    /// A descriptor of these bytes.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            &self.media_type,
            self.digest.clone(),
            self.bytes.len() as u64,
        )
    }
}

/// The `mediaType` a manifest or index declares inside itself, if any.
pub(crate) fn sniff_media_type(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<Head>(bytes).ok()?.media_type
}

/// A blob's bytes as a source has them.
pub enum BlobBody {
    /// `len` bytes at `offset` of a file: file-to-file copies stay in the kernel.
    File {
        /// The file holding the blob.
        file: File,
        /// Where the blob starts.
        offset: u64,
        /// How many bytes it has (from `offset`).
        len: u64,
    },
    /// Any stream (a network body, a decompressor, memory).
    Stream(Box<dyn Read + Send>),
    /// Already written into the store's `ingest/` and hashed as it arrived (a
    /// piped archive is read once, in its own order): a store destination
    /// commits it by rename, any other reads the file. `diff_id` is the
    /// uncompressed digest and size found in that same pass, when it was
    /// computed.
    Staged {
        /// The staged blob.
        blob: hoist_store::StagedBlob,
        /// The diffID and uncompressed size measured while staging.
        diff_id: Option<(Digest, u64)>,
    },
}

impl BlobBody {
    /// A body over bytes in memory.
    pub fn bytes(b: Vec<u8>) -> Self {
        BlobBody::Stream(Box::new(std::io::Cursor::new(b)))
    }

    /// The body as one stream, for destinations that send bytes over a
    /// socket (a registry upload) rather than into a file.
    pub fn into_reader(self) -> Result<Box<dyn Read + Send>, TransportError> {
        Ok(match self {
            BlobBody::File { file, offset, len } => Box::new(OwnedSpan::new(file, offset, len)),
            BlobBody::Staged { blob, .. } => {
                // An open descriptor keeps the bytes even once the staged file is removed.
                let f = File::open(blob.path())
                    .map_err(|e| TransportError::io(blob.path().display().to_string(), e))?;
                Box::new(f)
            }
            BlobBody::Stream(r) => r,
        })
    }
}

/// Where images come from: a registry, a directory, an archive, the store.
///
/// Blocking on purpose (see the crate docs): the engine calls it from
/// several scoped threads at once.
pub trait ImageSource: Send + Sync {
    /// The manifest or index the source's reference names.
    fn top(&self) -> Result<RawManifest, TransportError>;
    /// A manifest an index names (the bytes are verified against `d`).
    fn manifest(&self, d: &Descriptor) -> Result<RawManifest, TransportError>;
    /// A blob (config or layer), from `offset` when the source can seek.
    fn blob(&self, d: &Descriptor, offset: u64) -> Result<BlobBody, TransportError>;
    /// The manifests that name `d` as their subject (signatures, SBOMs…);
    /// the default: none.
    fn referrers(&self, _d: &Descriptor) -> Result<Vec<Descriptor>, TransportError> {
        Ok(Vec::new())
    }
    /// Rewords an error about blob `d` in the source's own terms (an
    /// archive names its member); the default keeps it.
    fn blame(&self, _d: &Descriptor, e: TransportError) -> TransportError {
        e
    }
}

/// A file range read with positioned reads, owning its file.
pub(crate) struct OwnedSpan {
    file: File,
    pos: u64,
    end: u64,
}

impl OwnedSpan {
    /// `len` bytes at `offset` of `file`.
    pub(crate) fn new(file: File, offset: u64, len: u64) -> Self {
        OwnedSpan {
            file,
            pos: offset,
            end: offset + len,
        }
    }
}

impl Read for OwnedSpan {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.end - self.pos;
        if left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = std::os::unix::fs::FileExt::read_at(&self.file, &mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file ended inside the blob",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}
