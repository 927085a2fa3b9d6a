//! Detecting and undoing layer compression (gzip, zstd or none), and
//! compressing on the way out.

use crate::error::{Error, Result};
use hoist_oci::media_type::Compression;
use std::io::{self, Read, Write};

/// The gzip magic bytes (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The zstd frame magic number, little-endian (RFC 8878).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// How many bytes [`detect`] needs to tell every format apart.
pub const MAGIC_LEN: usize = 4;

/// Tells the compression of a stream from its first bytes (plain when unknown).
pub fn detect(prefix: &[u8]) -> Compression {
    if prefix.starts_with(&GZIP_MAGIC) {
        Compression::Gzip
    } else if prefix.starts_with(&ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// A reader that replays the sniffed prefix and then continues with the rest.
pub type Sniffed<R> = io::Chain<io::Cursor<Vec<u8>>, R>;

/// Peeks at the first bytes of `reader` to detect its compression, without losing them.
pub fn sniff<R: Read>(mut reader: R) -> io::Result<(Compression, Sniffed<R>)> {
    let mut prefix = vec![0u8; MAGIC_LEN];
    let mut got = 0;
    // A single read may return fewer bytes than asked (pipes, network), so loop
    // until we have enough to decide or the stream ends.
    while got < MAGIC_LEN {
        match reader.read(&mut prefix[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    prefix.truncate(got);
    Ok((detect(&prefix), io::Cursor::new(prefix).chain(reader)))
}

/// Wraps `reader` so that it yields the uncompressed bytes.
///
/// Gzip streams may have several members (as `pigz` and some registries write
/// them); all are decoded in turn. Zstd streams may have several frames.
pub fn decompress_reader<'a, R: Read + Send + 'a>(
    reader: R,
    compression: Compression,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(reader)?),
    })
}

/// Detects the compression of `reader` and returns the uncompressed stream.
pub fn decompress_auto<'a, R: Read + Send + 'a>(
    reader: R,
) -> io::Result<(Compression, Box<dyn Read + Send + 'a>)> {
    let (compression, sniffed) = sniff(reader)?;
    Ok((compression, decompress_reader(sniffed, compression)?))
}

/// A writer that compresses into `W`; call [`Compressor::finish`] to write the trailer.
pub enum Compressor<W: Write> {
    /// No compression: bytes go straight through.
    None(W),
    /// gzip, one member.
    Gzip(flate2::write::GzEncoder<W>),
    /// zstd, one frame.
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

/// The default gzip level, as Docker and containerd use.
pub const GZIP_DEFAULT_LEVEL: i32 = 6;
/// The default zstd level, zstd's own default.
pub const ZSTD_DEFAULT_LEVEL: i32 = 3;

/// Input bytes per zstd job in [`zstd_parallel`].
const ZSTD_JOB_SIZE: u32 = 2 << 20;

/// Compresses `input` into `out` as one zstd frame at `level` with
/// `threads` workers; returns the number of uncompressed bytes. zstd's
/// multithreaded mode cuts its jobs by level, never by worker count, so the
/// bytes are the same for any `threads` (always at least one worker: the
/// single-threaded mode writes different bytes).
pub fn zstd_parallel(
    input: &mut (dyn Read + Send),
    out: &mut (dyn Write + Send),
    level: i32,
    threads: usize,
) -> io::Result<u64> {
    let mut enc = zstd::stream::write::Encoder::new(out, level)?;
    enc.multithread(u32::try_from(threads.max(1)).unwrap_or(u32::MAX))?;
    // Smaller jobs than zstd's default (4 windows) keep memory flat; the
    // size is fixed, so the bytes still do not depend on the thread count.
    enc.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB_SIZE))?;
    // Big reads: each write into the encoder costs a round of its job queue.
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        match input.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => {
                enc.write_all(&buf[..k])?;
                n += k as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    enc.finish()?;
    Ok(n)
}

/// Starts compressing into `writer`; `level` `None` takes the algorithm's default.
pub fn compress_writer<W: Write>(
    writer: W,
    compression: Compression,
    level: Option<i32>,
) -> Result<Compressor<W>> {
    Ok(match compression {
        Compression::None => Compressor::None(writer),
        Compression::Gzip => {
            let level = level.unwrap_or(GZIP_DEFAULT_LEVEL);
            let valid = 0..=9;
            let Some(l) = u32::try_from(level).ok().filter(|l| valid.contains(l)) else {
                return Err(Error::BadLevel {
                    compression: "gzip",
                    level,
                    min: 0,
                    max: 9,
                });
            };
            Compressor::Gzip(flate2::write::GzEncoder::new(
                writer,
                flate2::Compression::new(l),
            ))
        }
        Compression::Zstd => {
            let level = level.unwrap_or(ZSTD_DEFAULT_LEVEL);
            let range = zstd::compression_level_range();
            if !range.contains(&level) {
                return Err(Error::BadLevel {
                    compression: "zstd",
                    level,
                    min: *range.start(),
                    max: *range.end(),
                });
            }
            let encoder = zstd::stream::write::Encoder::new(writer, level)
                .map_err(|e| Error::io(e, || "starting the zstd encoder".into()))?;
            Compressor::Zstd(encoder)
        }
    })
}

impl<W: Write> Compressor<W> {
    /// Writes the compression trailer and gives the inner writer back.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Compressor::None(w) => Ok(w),
            Compressor::Gzip(e) => e.finish(),
            Compressor::Zstd(e) => e.finish(),
        }
    }

    /// The compression this writer applies.
    pub fn compression(&self) -> Compression {
        match self {
            Compressor::None(_) => Compression::None,
            Compressor::Gzip(_) => Compression::Gzip,
            Compressor::Zstd(_) => Compression::Zstd,
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::None(w) => w.write(buf),
            Compressor::Gzip(e) => e.write(buf),
            Compressor::Zstd(e) => e.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Compressor::None(w) => w.write_all(buf),
            Compressor::Gzip(e) => e.write_all(buf),
            Compressor::Zstd(e) => e.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::None(w) => w.flush(),
            Compressor::Gzip(e) => e.flush(),
            Compressor::Zstd(e) => e.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compress(c: Compression, data: &[u8]) -> Vec<u8> {
        let mut w = compress_writer(Vec::new(), c, None).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn zstd_parallel_gives_the_same_bytes_whatever_the_thread_count() {
        // Several of zstd's jobs (8 MiB each at level 3), so the workers share them.
        let data: Vec<u8> = (0..5_000_000u32)
            .flat_map(|i| (i % 10_007).wrapping_mul(i / 64).to_le_bytes())
            .collect();
        let z = |threads| {
            let mut out = Vec::new();
            let n = zstd_parallel(&mut &data[..], &mut out, ZSTD_DEFAULT_LEVEL, threads).unwrap();
            assert_eq!(n, data.len() as u64);
            out
        };
        let one = z(1);
        assert_eq!(one, z(2));
        assert_eq!(one, z(4));
        let mut back = Vec::new();
        decompress_reader(&one[..], Compression::Zstd)
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert!(
            back == data,
            "zstd_parallel's output decompresses to its input"
        );
    }

    #[test]
    fn detects_by_magic() {
        assert_eq!(detect(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(detect(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
        assert_eq!(detect(b"usta"), Compression::None);
        assert_eq!(detect(&[0x1f]), Compression::None);
        assert_eq!(detect(&[]), Compression::None);
    }

    #[test]
    fn round_trips_every_compression_through_sniff() {
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let packed = compress(c, &data);
            let (got, mut r) = decompress_auto(&packed[..]).unwrap();
            assert_eq!(got, c);
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out, data, "{c:?}");
        }
    }

    #[test]
    fn sniff_keeps_short_streams_whole() {
        for input in [&b""[..], b"a", b"abc", b"abcd", b"abcdefgh"] {
            let (c, mut r) = sniff(input).unwrap();
            assert_eq!(c, Compression::None);
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out, input);
        }
    }

    #[test]
    fn decodes_multi_member_gzip() {
        let mut packed = compress(Compression::Gzip, b"hello ");
        packed.extend(compress(Compression::Gzip, b"world"));
        let mut out = String::new();
        decompress_reader(&packed[..], Compression::Gzip)
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "hello world");
    }

    #[test]
    fn rejects_bad_levels() {
        assert!(matches!(
            compress_writer(Vec::new(), Compression::Gzip, Some(10)),
            Err(Error::BadLevel { .. })
        ));
        assert!(matches!(
            compress_writer(Vec::new(), Compression::Zstd, Some(99)),
            Err(Error::BadLevel { .. })
        ));
    }
}
