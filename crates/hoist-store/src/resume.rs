//! Resumable ingest: a blob being pulled is written to
//! `ingest/partial-<alg>-<hex>`, named by the digest it is expected to have,
//! beside `…​.state` holding how far it got and the SHA-256 state there. A
//! pull killed half-way starts again from that offset; the bytes are verified
//! only once the blob is complete.
//!
//! The writer holds an exclusive `flock` on the data file for as long as it
//! writes, so a second pull of the same blob waits or is told, and a cleaner
//! never mistakes a live partial for an abandoned one.

use crate::live;
use crate::{StagedBlob, StoreError};
use hoist_archive::hashstate::{Sha256State, MARSHALED_SIZE};
use hoist_oci::{Algorithm, Digest};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Name prefix of partial blobs kept on purpose.
pub(crate) const PARTIAL_PREFIX: &str = "partial-";
/// Bytes written between automatic checkpoints.
const CHECKPOINT_EVERY: u64 = 16 << 20;

/// A partial blob in `ingest/`, as `system df` and `image prune` see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartialBlob {
    /// The digest the blob is expected to have.
    pub digest: Digest,
    /// Bytes received and checkpointed so far (where a resume starts).
    pub offset: u64,
    /// Bytes the files take on disk.
    pub size: u64,
    /// The data file.
    pub path: PathBuf,
}

/// A blob being received, resumable after a crash; see the module docs.
pub struct ResumableBlob {
    file: File,
    path: PathBuf,
    state_path: PathBuf,
    expected: Digest,
    hash: Sha256State,
    since_checkpoint: u64,
    finished: bool,
}

pub(crate) fn data_path(dir: &Path, d: &Digest) -> PathBuf {
    dir.join(format!(
        "{PARTIAL_PREFIX}{}-{}",
        d.algorithm().as_str(),
        d.hex()
    ))
}

fn state_path(data: &Path) -> PathBuf {
    let mut p = data.as_os_str().to_owned();
    p.push(".state");
    PathBuf::from(p)
}

/// The saved offset and hash state, if the state file is whole and
/// consistent with the data file.
fn read_state(state: &Path, data_len: u64) -> Option<Sha256State> {
    let b = std::fs::read(state).ok()?;
    let (off, hs) = b.split_at_checked(8)?;
    let offset = u64::from_be_bytes(off.try_into().ok()?);
    let hash = Sha256State::unmarshal(hs)?;
    (hash.len() == offset && offset <= data_len).then_some(hash)
}

impl ResumableBlob {
    /// Opens (or starts) the partial blob for `expected` in `dir`. Fails
    /// with [`StoreError::Busy`] when another live process is writing it.
    pub(crate) fn open(dir: &Path, expected: &Digest) -> Result<Self, StoreError> {
        if expected.algorithm() != Algorithm::Sha256 {
            return Err(StoreError::Corrupt(format!(
                "{expected}: only sha256 blobs can be received resumably"
            )));
        }
        let path = data_path(dir, expected);
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        if !live::try_lock(&file).map_err(|e| StoreError::io(&path, e))? {
            return Err(StoreError::Busy(format!(
                "blob {expected} is being received by another hoist process; wait for it to finish"
            )));
        }
        let state_path = state_path(&path);
        let len = file.metadata().map_err(|e| StoreError::io(&path, e))?.len();
        let hash = read_state(&state_path, len).unwrap_or_default();
        // Bytes past the checkpoint were never hashed: drop them.
        file.set_len(hash.len())
            .map_err(|e| StoreError::io(&path, e))?;
        Ok(ResumableBlob {
            file,
            path,
            state_path,
            expected: expected.clone(),
            hash,
            since_checkpoint: 0,
            finished: false,
        })
    }

    /// Where the next byte goes: what a resumed download asks for (`Range: bytes=offset-`).
    pub fn offset(&self) -> u64 {
        self.hash.len()
    }

    /// The digest of the bytes hashed so far (the prefix up to [`ResumableBlob::offset`]).
    pub fn digest(&self) -> Digest {
        self.hash.digest()
    }

    /// A second handle on the data file, for a fetcher that writes ranges
    /// at their offsets itself and then calls [`ResumableBlob::hash_through`].
    pub fn data_file(&self) -> Result<File, StoreError> {
        self.file
            .try_clone()
            .map_err(|e| StoreError::io(&self.path, e))
    }

    /// The digest the blob must have.
    pub fn expected(&self) -> &Digest {
        &self.expected
    }

    /// Writes a range fetched out of order at its offset (at or past
    /// [`ResumableBlob::offset`]); takes `&self`, so threads fetching
    /// several ranges at once can share the blob. The hash (and the resume
    /// point) follow only when [`ResumableBlob::hash_through`] reaches it.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), StoreError> {
        if offset < self.hash.len() {
            return Err(StoreError::Corrupt(format!(
                "blob {}: a range at {offset} rewrites bytes already hashed (up to {})",
                self.expected,
                self.hash.len()
            )));
        }
        self.file
            .write_all_at(data, offset)
            .map_err(|e| StoreError::io(&self.path, e))
    }

    /// Hashes the bytes written with [`ResumableBlob::write_at`] from the
    /// current offset up to `end` (the contiguous prefix that is complete),
    /// reading them back from the page cache, and moves the offset there.
    pub fn hash_through(&mut self, end: u64) -> Result<(), StoreError> {
        let mut buf = vec![0u8; (1 << 20).min(end.saturating_sub(self.hash.len())) as usize];
        while self.hash.len() < end {
            let want = buf.len().min((end - self.hash.len()) as usize);
            let n = self
                .file
                .read_at(&mut buf[..want], self.hash.len())
                .map_err(|e| StoreError::io(&self.path, e))?;
            if n == 0 {
                return Err(StoreError::io(
                    &self.path,
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("only {} of {end} bytes were written", self.hash.len()),
                    ),
                ));
            }
            self.hash.update(&buf[..n]);
            self.since_checkpoint += n as u64;
        }
        if self.since_checkpoint >= CHECKPOINT_EVERY {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Makes what was written so far durable and records it as the resume point.
    pub fn checkpoint(&mut self) -> Result<(), StoreError> {
        self.file
            .sync_data()
            .map_err(|e| StoreError::io(&self.path, e))?;
        let mut b = Vec::with_capacity(8 + MARSHALED_SIZE);
        b.extend_from_slice(&self.hash.len().to_be_bytes());
        b.extend_from_slice(&self.hash.marshal());
        let tmp = state_path(&self.path).with_extension("state.tmp");
        std::fs::write(&tmp, &b)
            .and_then(|()| File::open(&tmp)?.sync_data())
            .and_then(|()| std::fs::rename(&tmp, &self.state_path))
            .map_err(|e| StoreError::io(&self.state_path, e))?;
        self.since_checkpoint = 0;
        Ok(())
    }

    /// Ends the blob: checks it against the expected digest (and `size`,
    /// when given) and hands it over as a staged blob. On a mismatch the
    /// partial files are deleted: starting again is the only way on.
    pub fn finish(mut self, size: Option<u64>) -> Result<StagedBlob, StoreError> {
        self.file
            .sync_data()
            .map_err(|e| StoreError::io(&self.path, e))?;
        // A second descriptor on the same open file keeps the lock.
        let lock = self
            .file
            .try_clone()
            .map_err(|e| StoreError::io(&self.path, e))?;
        self.finished = true;
        let _ = std::fs::remove_file(&self.state_path);
        // A complete blob is no partial any more: it gets a writer-owned name.
        let staged_path = self.path.with_file_name(crate::blobs::random_name());
        std::fs::rename(&self.path, &staged_path).map_err(|e| StoreError::io(&staged_path, e))?;
        let staged = StagedBlob::new(staged_path, self.hash.digest(), self.hash.len(), Some(lock));
        staged.verify(&format!("blob {}", self.expected), &self.expected, size)?;
        Ok(staged)
    }
}

impl Write for ResumableBlob {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write_all_at(buf, self.hash.len())?;
        self.hash.update(buf);
        self.since_checkpoint += buf.len() as u64;
        if self.since_checkpoint >= CHECKPOINT_EVERY {
            self.checkpoint().map_err(io::Error::other)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ResumableBlob {
    fn drop(&mut self) {
        // Kept on purpose for the next attempt; record how far it got.
        if !self.finished {
            let _ = self.checkpoint();
        }
    }
}

/// Lists the partial blobs in `dir` with their resume points.
pub(crate) fn list(dir: &Path) -> Result<Vec<PartialBlob>, StoreError> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(StoreError::io(dir, e)),
    };
    for ent in rd.flatten() {
        let name = ent.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PARTIAL_PREFIX)) else {
            continue;
        };
        let Some((alg, hex)) = rest.split_once('-') else {
            continue;
        };
        if hex.contains('.') {
            continue;
        }
        let Ok(digest) = format!("{alg}:{hex}").parse::<Digest>() else {
            continue;
        };
        let path = ent.path();
        let len = ent.metadata().map_or(0, |m| m.len());
        let sp = state_path(&path);
        let state_len = std::fs::metadata(&sp).map_or(0, |m| m.len());
        let offset = read_state(&sp, len).map_or(0, |h| h.len());
        out.push(PartialBlob {
            digest,
            offset,
            size: len + state_len,
            path,
        });
    }
    out.sort_by(|a, b| a.digest.cmp(&b.digest));
    Ok(out)
}
