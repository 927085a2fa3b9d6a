//! Readers and writers that hash, count or bound the bytes flowing through
//! them, so that a blob is verified in the same pass that consumes it.

use crate::error::Error;
use hoist_oci::{Algorithm, Digest, Digester};
use std::io::{self, Read, Write};

/// A reader that feeds every byte it yields into a [`Digester`] and counts them.
pub struct HashingReader<R> {
    inner: R,
    digester: Digester,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    /// Hashes what is read from `inner` with `algorithm`.
    pub fn new(inner: R, algorithm: Algorithm) -> Self {
        HashingReader {
            inner,
            digester: Digester::new(algorithm),
            count: 0,
        }
    }

    /// How many bytes have been read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The digest of the bytes read so far (the hash state goes on).
    pub fn digest(&self) -> Digest {
        self.digester.clone().finish()
    }

    /// Ends hashing: the digest and the byte count.
    pub fn finish(self) -> (Digest, u64) {
        (self.digester.finish(), self.count)
    }

    /// Ends hashing and gives the inner reader back with the digest and count.
    pub fn into_parts(self) -> (R, Digest, u64) {
        (self.inner, self.digester.finish(), self.count)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digester.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that feeds every byte it accepts into a [`Digester`] and counts them.
pub struct HashingWriter<W> {
    inner: W,
    digester: Digester,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Hashes what is written to `inner` with `algorithm`.
    pub fn new(inner: W, algorithm: Algorithm) -> Self {
        HashingWriter {
            inner,
            digester: Digester::new(algorithm),
            count: 0,
        }
    }

    /// How many bytes have been written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The digest of the bytes written so far (the hash state goes on).
    pub fn digest(&self) -> Digest {
        self.digester.clone().finish()
    }

    /// A mutable reference to the inner writer (bytes written to it directly are not hashed).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Ends hashing: the inner writer, the digest and the byte count.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, self.digester.finish(), self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Hash only what the inner writer accepted, so a short write stays exact.
        let n = self.inner.write(buf)?;
        self.digester.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that counts the bytes it yields.
pub struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: Read> CountingReader<R> {
    /// Counts what is read from `inner`.
    pub fn new(inner: R) -> Self {
        CountingReader { inner, count: 0 }
    }

    /// How many bytes have been read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Gives the inner reader back.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// A reader that fails with [`Error::TooLarge`] once more than `limit` bytes come.
///
/// Put it after a decompressor when the caller knows a bound on the
/// uncompressed size, to stop a gzip bomb before it fills the disk. Exactly
/// `limit` bytes are fine; the error comes only when byte `limit + 1` exists.
/// The error travels inside an `io::Error`; this crate's functions unwrap it
/// back into [`Error::TooLarge`].
pub struct LimitedReader<R> {
    inner: R,
    limit: u64,
    count: u64,
}

impl<R: Read> LimitedReader<R> {
    /// Bounds `inner` to `limit` bytes.
    pub fn new(inner: R, limit: u64) -> Self {
        LimitedReader {
            inner,
            limit,
            count: 0,
        }
    }

    /// How many bytes have been read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Gives the inner reader back.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let remaining = self.limit - self.count;
        if remaining == 0 {
            // At the limit: the stream is fine only if it ends here, so probe
            // for one more byte rather than trusting the caller to stop.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(Error::TooLarge { limit: self.limit }.into_io()),
            };
        }
        let want = buf
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::take_inner;

    #[test]
    fn hashing_reader_matches_digest_of_bytes() {
        let mut r = HashingReader::new(&b"hello world"[..], Algorithm::Sha256);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(r.count(), 11);
        assert_eq!(r.digest(), Digest::sha256(b"hello world"));
        let (d, n) = r.finish();
        assert_eq!((d, n), (Digest::sha256(b"hello world"), 11));
    }

    #[test]
    fn hashing_writer_matches_digest_of_bytes() {
        let mut w = HashingWriter::new(Vec::new(), Algorithm::Sha512);
        w.write_all(b"abc").unwrap();
        let (inner, d, n) = w.finish();
        assert_eq!(inner, b"abc");
        assert_eq!(n, 3);
        assert_eq!(d.algorithm(), Algorithm::Sha512);
        assert!(d.hex().starts_with("ddaf35a193617aba"));
    }

    #[test]
    fn counting_reader_counts() {
        let mut r = CountingReader::new(&[0u8; 1000][..]);
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(r.count(), 1000);
    }

    #[test]
    fn limited_reader_allows_exactly_the_limit() {
        let mut r = LimitedReader::new(&[7u8; 100][..], 100);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 100);
    }

    #[test]
    fn limited_reader_fails_past_the_limit_with_a_typed_error() {
        let mut r = LimitedReader::new(&[7u8; 101][..], 100);
        let err = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(matches!(
            take_inner(err),
            Ok(Error::TooLarge { limit: 100 })
        ));
    }
}
