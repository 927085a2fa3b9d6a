//! Blob writing: every blob is written under `ingest/`, hashed while it
//! flows, fsync'd, and renamed to `blobs/<alg>/<hex>` only once its digest is
//! known and (when announced) matched.

use crate::{Store, StoreError};
use hoist_oci::{Algorithm, Digest, Digester};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A blob being written to `ingest/`; hashing as bytes arrive.
pub struct BlobWriter {
    file: Option<File>,
    path: PathBuf,
    digester: Digester,
    size: u64,
}

/// A fully written, fsync'd blob waiting in `ingest/` to be committed.
#[derive(Debug)]
pub struct StagedBlob {
    path: PathBuf,
    digest: Digest,
    size: u64,
}

impl StagedBlob {
    /// The digest of the staged bytes.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The staged size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Where the staged bytes are.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks the staged bytes against an announced digest and size.
    pub fn verify(
        &self,
        what: &str,
        expected: &Digest,
        size: Option<u64>,
    ) -> Result<(), StoreError> {
        if &self.digest != expected {
            return Err(StoreError::DigestMismatch {
                what: what.to_owned(),
                expected: expected.clone(),
                actual: self.digest.clone(),
            });
        }
        match size {
            Some(s) if s != self.size => Err(StoreError::SizeMismatch {
                what: what.to_owned(),
                expected: s,
                actual: self.size,
            }),
            _ => Ok(()),
        }
    }
}

impl Drop for StagedBlob {
    fn drop(&mut self) {
        // An uncommitted staged blob is garbage; committing renames it away first.
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("blob writer already finished"))?;
        let n = file.write(buf)?;
        self.digester.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Ends the write: fsyncs and returns the staged blob with its digest.
    pub fn finish(mut self) -> Result<StagedBlob, StoreError> {
        let file = self
            .file
            .take()
            .ok_or_else(|| StoreError::Corrupt("blob writer finished twice".into()))?;
        file.sync_data()
            .map_err(|e| StoreError::io(&self.path, e))?;
        drop(file);
        let digester = std::mem::replace(&mut self.digester, Digester::new(Algorithm::Sha256));
        Ok(StagedBlob {
            path: std::mem::take(&mut self.path),
            digest: digester.finish(),
            size: self.size,
        })
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn random_name() -> String {
    format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

impl Store {
    /// The path where a committed blob lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    /// True when the blob is committed.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Opens a committed blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, StoreError> {
        let p = self.blob_path(digest);
        File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::MissingBlob(digest.clone())
            } else {
                StoreError::io(&p, e)
            }
        })
    }

    /// Reads a whole committed blob that is known to be small (manifests, configs).
    pub fn read_blob(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, StoreError> {
        use std::io::Read;
        let p = self.blob_path(digest);
        let mut buf = Vec::new();
        self.open_blob(digest)?
            .take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(|e| StoreError::io(&p, e))?;
        if buf.len() as u64 > limit {
            return Err(StoreError::Corrupt(format!(
                "blob {digest} is larger than {limit} bytes but should be a small JSON document"
            )));
        }
        Ok(buf)
    }

    /// Starts a new blob in `ingest/`, hashed with sha256.
    pub fn blob_writer(&self) -> Result<BlobWriter, StoreError> {
        self.blob_writer_with(Algorithm::Sha256)
    }

    /// Starts a new blob in `ingest/`, hashed with `algorithm`.
    pub fn blob_writer_with(&self, algorithm: Algorithm) -> Result<BlobWriter, StoreError> {
        let path = self.root.join("ingest").join(random_name());
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        Ok(BlobWriter {
            file: Some(file),
            path,
            digester: Digester::new(algorithm),
            size: 0,
        })
    }

    /// Writes small bytes as a staged blob, checking them against `expected` if given.
    pub fn stage_bytes(
        &self,
        bytes: &[u8],
        expected: Option<&Digest>,
    ) -> Result<StagedBlob, StoreError> {
        let alg = expected.map_or(Algorithm::Sha256, Digest::algorithm);
        let mut w = self.blob_writer_with(alg)?;
        w.write_all(bytes).map_err(|e| StoreError::io(&w.path, e))?;
        let staged = w.finish()?;
        if let Some(d) = expected {
            staged.verify("content", d, Some(bytes.len() as u64))?;
        }
        Ok(staged)
    }

    /// Makes a staged blob visible under its digest. Idempotent: if the blob
    /// is already there, the staged copy is dropped. Call [`Store::sync_blobs`]
    /// once after a batch so the renames are durable.
    pub fn commit_blob(&self, staged: StagedBlob) -> Result<Digest, StoreError> {
        let dest = self.blob_path(&staged.digest);
        if !dest.exists() {
            std::fs::rename(&staged.path, &dest).map_err(|e| StoreError::io(&dest, e))?;
        }
        Ok(staged.digest.clone())
    }

    /// fsyncs the blob directories so committed renames survive a crash.
    pub fn sync_blobs(&self) -> Result<(), StoreError> {
        for alg in ["sha256", "sha512"] {
            let d = self.root.join("blobs").join(alg);
            File::open(&d)
                .and_then(|f| f.sync_all())
                .map_err(|e| StoreError::io(&d, e))?;
        }
        Ok(())
    }

    /// Deletes a committed blob (the caller holds the exclusive lock).
    pub fn remove_blob(&self, digest: &Digest) -> Result<bool, StoreError> {
        let p = self.blob_path(digest);
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::io(&p, e)),
        }
    }

    /// Lists every committed blob by digest; files with invalid names are returned separately.
    pub fn list_blobs(&self) -> Result<(Vec<Digest>, Vec<PathBuf>), StoreError> {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = self.root.join("blobs").join(alg.as_str());
            let rd = std::fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))?;
            for ent in rd {
                let ent = ent.map_err(|e| StoreError::io(&dir, e))?;
                let name = ent.file_name();
                match name.to_str().and_then(|n| Digest::new(alg, n).ok()) {
                    Some(d) => good.push(d),
                    None => bad.push(ent.path()),
                }
            }
        }
        good.sort();
        Ok((good, bad))
    }

    /// Removes leftovers in `ingest/` (from killed processes) older than `min_age`.
    pub fn clean_ingest(&self, min_age: std::time::Duration) -> Result<usize, StoreError> {
        let dir = self.root.join("ingest");
        let mut n = 0;
        let rd = std::fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))?;
        for ent in rd.flatten() {
            let old = ent
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= min_age);
            if old && std::fs::remove_file(ent.path()).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }
}
