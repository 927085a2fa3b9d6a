//! Moving one blob while verifying it in the same pass: its digest and size,
//! and for a layer its diffID (the sha256 of the uncompressed tar), hashed
//! beside an in-kernel copy when both ends are files, or inline as a stream
//! flows. Every destination writes through these.

use crate::source::BlobBody;
use crate::TransportError;
use hoist_archive::{compression, HashingReader, LimitedReader};
use hoist_oci::media_type::Compression;
use hoist_oci::{Algorithm, Descriptor, Digest};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;

/// Decompressed layers may be at most this many times their compressed size…
pub(crate) const BOMB_RATIO: u64 = 1000;
/// …or this size, whichever is larger.
pub(crate) const BOMB_FLOOR: u64 = 1 << 30;
/// Bytes read per step when hashing beside a kernel copy or pumping a stream.
const CHUNK: usize = 1 << 20;

/// The most a layer of `compressed` bytes may decompress to.
pub(crate) fn bomb_limit(compressed: u64) -> u64 {
    BOMB_FLOOR.max(compressed.saturating_mul(BOMB_RATIO))
}

/// Why a layer's uncompressed digest could not be measured.
#[derive(Debug, Clone)]
pub(crate) enum DiffFail {
    /// It decompresses past the bomb limit.
    Bomb(u64),
    /// It does not decompress.
    Corrupt(String),
}

impl DiffFail {
    /// The error naming the layer `what`.
    pub(crate) fn into_error(self, what: &str) -> TransportError {
        match self {
            DiffFail::Bomb(limit) => TransportError::Bomb {
                path: what.to_owned(),
                limit,
                ratio: BOMB_RATIO,
            },
            DiffFail::Corrupt(e) => TransportError::Archive(format!(
                "layer {what} does not decompress: {e}; the archive is truncated or corrupt"
            )),
        }
    }
}

/// A layer's diffID and uncompressed size, or why it has none.
pub(crate) type DiffResult = Result<(Digest, u64), DiffFail>;

/// Reads `r` to its end and measures its diffID: the sha256 and size of the
/// bytes once decompressed (as they are when not compressed), bounded by
/// `limit`. Whatever follows the compressed stream is read too, so a caller
/// hashing `r`'s raw bytes sees all of them.
pub(crate) fn measure_diff(r: impl Read + Send, limit: u64) -> DiffResult {
    let (comp, sniffed) = compression::sniff(r).map_err(|e| DiffFail::Corrupt(e.to_string()))?;
    let mut rest: Box<dyn Read + Send + '_> = Box::new(sniffed);
    let result = {
        let dec = compression::decompress_reader(&mut rest, comp)
            .map_err(|e| DiffFail::Corrupt(e.to_string()))?;
        let mut h = HashingReader::new(LimitedReader::new(dec, limit), Algorithm::Sha256);
        match io::copy(&mut h, &mut io::sink()) {
            Ok(_) => Ok(h.finish()),
            Err(e) => {
                let bomb = e
                    .get_ref()
                    .and_then(|i| i.downcast_ref::<hoist_archive::Error>())
                    .is_some_and(|i| matches!(i, hoist_archive::Error::TooLarge { .. }));
                Err(if bomb {
                    DiffFail::Bomb(limit)
                } else {
                    DiffFail::Corrupt(e.to_string())
                })
            }
        }
    };
    if comp != Compression::None {
        // Trailing bytes after the compressed stream still belong to the blob.
        io::copy(&mut rest, &mut io::sink()).map_err(|e| DiffFail::Corrupt(e.to_string()))?;
    }
    result
}

/// Reads a byte range of a file with positioned reads (no shared cursor).
pub(crate) struct SpanReader<'a> {
    pub(crate) file: &'a File,
    pub(crate) pos: u64,
    pub(crate) end: u64,
}

impl Read for SpanReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.pos;
        if left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(left as usize);
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file ended inside the blob",
            ));
        }
        self.pos += n as u64;
        Ok(n)
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

/// Writes every byte read through it to `out` as well.
struct Tee<'a, R> {
    inner: R,
    out: &'a mut (dyn Write + Send),
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// What a verified copy measured.
pub(crate) struct Measured {
    /// The digest of the bytes, with the descriptor's algorithm.
    pub(crate) digest: Digest,
    /// How many bytes.
    pub(crate) size: u64,
    /// The diffID and uncompressed size, when asked for.
    pub(crate) diff: Option<DiffResult>,
}

/// Copies `len` bytes at `offset` of `src` to `dst` (at its position) in the
/// kernel, while a second thread hashes the same range from the page cache
/// (and decompresses it for the diffID when `want_diff`): the copy costs
/// max(hash, write) rather than their sum.
pub(crate) fn kernel_copy_hashed(
    src: &File,
    offset: u64,
    len: u64,
    dst: &File,
    algorithm: Algorithm,
    want_diff: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> io::Result<Measured> {
    let (copied, measured) = std::thread::scope(|s| {
        let hasher = s.spawn(|| measure_span(src, offset, len, algorithm, want_diff, progress));
        let copied = hoist_archive::kcopy::copy_range(src, offset, dst, len);
        let measured = hasher
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("hashing thread panicked")));
        (copied, measured)
    });
    copied?;
    measured
}

/// Hashes (and optionally measures the diffID of) a file range.
pub(crate) fn measure_span(
    src: &File,
    offset: u64,
    len: u64,
    algorithm: Algorithm,
    want_diff: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> io::Result<Measured> {
    let span = SpanReader {
        file: src,
        pos: offset,
        end: offset + len,
    };
    let mut h = HashingReader::new(
        io::BufReader::with_capacity(
            CHUNK,
            Reporting {
                inner: span,
                progress,
            },
        ),
        algorithm,
    );
    let diff = if want_diff {
        Some(measure_diff(&mut h, bomb_limit(len)))
    } else {
        None
    };
    // A failed decompression may stop early: the raw digest still covers every byte.
    io::copy(&mut h, &mut io::sink())?;
    let (digest, size) = h.finish();
    Ok(Measured { digest, size, diff })
}

/// Reads a stream to its end into `out`, hashing it with `algorithm` (when
/// given; a writer that hashes itself needs none) and measuring the diffID
/// (bounded by `diff_limit`) when one is given, all in one pass.
pub(crate) fn pump(
    r: impl Read + Send,
    out: &mut (dyn Write + Send),
    algorithm: Option<Algorithm>,
    diff_limit: Option<u64>,
    progress: &(dyn Fn(u64) + Sync),
) -> io::Result<(Option<Digest>, u64, Option<DiffResult>)> {
    let reporting = Reporting { inner: r, progress };
    let mut h = HashingReader::new(
        io::BufReader::with_capacity(CHUNK, reporting),
        algorithm.unwrap_or(Algorithm::Sha256),
    );
    let mut tee = Tee { inner: &mut h, out };
    let diff = diff_limit.map(|limit| measure_diff(&mut tee, limit));
    let mut buf = vec![0u8; CHUNK];
    loop {
        match tee.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let (digest, size) = h.finish();
    Ok((algorithm.map(|_| digest), size, diff))
}

/// Checks what a copy measured against the descriptor and the expected diffID.
pub(crate) fn check(
    what: &str,
    d: &Descriptor,
    digest: &Digest,
    size: u64,
    diff_id: Option<&Digest>,
    diff: Option<DiffResult>,
) -> Result<Option<u64>, TransportError> {
    if digest != &d.digest {
        return Err(TransportError::DigestMismatch {
            path: what.to_owned(),
            expected: d.digest.clone(),
            actual: digest.clone(),
        });
    }
    if size != d.size {
        return Err(TransportError::SizeMismatch {
            what: what.to_owned(),
            expected: d.size,
            actual: size,
        });
    }
    match (diff_id, diff) {
        (Some(want), Some(got)) => {
            let (actual, usize) = got.map_err(|f| f.into_error(what))?;
            if &actual != want {
                return Err(TransportError::DiffIdMismatch {
                    path: what.to_owned(),
                    expected: want.clone(),
                    actual,
                });
            }
            Ok(Some(usize))
        }
        _ => Ok(None),
    }
}

/// Writes a blob body to `dst` at its position, verifying it against `d`
/// (and `diff_id`) in the same pass; returns the uncompressed size when a
/// diffID was checked.
pub(crate) fn write_verified(
    what: &str,
    body: BlobBody,
    dst: &mut File,
    d: &Descriptor,
    diff_id: Option<&Digest>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Option<u64>, TransportError> {
    let alg = d.digest.algorithm();
    let io_err = |e| TransportError::io(format!("copying {what}"), e);
    match body {
        BlobBody::File { file, offset, len } => {
            let m = kernel_copy_hashed(&file, offset, len, dst, alg, diff_id.is_some(), progress)
                .map_err(io_err)?;
            check(what, d, &m.digest, m.size, diff_id, m.diff)
        }
        BlobBody::Staged { blob, .. } => {
            let file = File::open(blob.path()).map_err(io_err)?;
            let len = blob.size();
            let m = kernel_copy_hashed(&file, 0, len, dst, alg, diff_id.is_some(), progress)
                .map_err(io_err)?;
            check(what, d, &m.digest, m.size, diff_id, m.diff)
        }
        BlobBody::Stream(r) => {
            let (digest, size, diff) = pump(
                r,
                dst,
                Some(alg),
                diff_id.map(|_| bomb_limit(d.size)),
                progress,
            )
            .map_err(io_err)?;
            let digest = digest.ok_or_else(|| TransportError::Archive("no digest".into()))?;
            check(what, d, &digest, size, diff_id, diff)
        }
    }
}

/// Reads a whole small body (a config), refusing more than `limit` bytes.
pub(crate) fn read_small(
    body: BlobBody,
    limit: u64,
    what: &str,
) -> Result<Vec<u8>, TransportError> {
    let mut buf = Vec::new();
    let io_err = |e| TransportError::io(format!("reading {what}"), e);
    match body {
        BlobBody::File { file, offset, len } => {
            if len > limit {
                return Err(too_big(what, len, limit));
            }
            SpanReader {
                file: &file,
                pos: offset,
                end: offset + len,
            }
            .read_to_end(&mut buf)
            .map_err(io_err)?;
        }
        BlobBody::Staged { blob, .. } => {
            if blob.size() > limit {
                return Err(too_big(what, blob.size(), limit));
            }
            buf = std::fs::read(blob.path()).map_err(io_err)?;
        }
        BlobBody::Stream(r) => {
            r.take(limit + 1).read_to_end(&mut buf).map_err(io_err)?;
            if buf.len() as u64 > limit {
                return Err(too_big(what, buf.len() as u64, limit));
            }
        }
    }
    Ok(buf)
}

fn too_big(what: &str, size: u64, limit: u64) -> TransportError {
    TransportError::Archive(format!(
        "{what} is {size} bytes, more than the {limit} bytes a JSON document may have here"
    ))
}
