//! Blob upload sessions, kept in storage in distribution's layout so they
//! survive a restart: `_uploads/<id>/data` holds the bytes received so far
//! (its length is the session's offset; on object storage, part objects do,
//! see [`crate::driver::s3`]), `startedat` the start time, and
//! `hashstates/sha256/<offset>` the SHA-256 state at that offset in Go's
//! marshaled form, so resuming does not re-hash what is already there.
//!
//! In memory there is only a cache of each session's offset and hash state,
//! and a busy flag so that two requests cannot append to one session at once.

use crate::driver::Append;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::names::{RepoName, UploadId};
use crate::store::{BlobInfo, Store};
use hoist_archive::hashstate::Sha256State;
use hoist_oci::{Algorithm, Digest, Digester};
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// How many idle sessions are kept in memory before the cache is emptied.
const MAX_CACHED_SESSIONS: usize = 10_000;

#[derive(Clone, Debug)]
struct Session {
    size: u64,
    /// The hash of the first `size` bytes; `None` when unknown (then the
    /// commit re-reads the data).
    hash: Option<Sha256State>,
}

#[derive(Debug)]
enum Slot {
    Idle(Session),
    Busy,
}

/// The in-memory side of upload sessions.
#[derive(Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<(String, String), Slot>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Slot>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn key(name: &RepoName, id: &UploadId) -> (String, String) {
    (name.as_str().to_owned(), id.as_str().to_owned())
}

/// An open upload session, exclusively held by one request. Dropping it
/// releases the session with whatever was written so far.
pub struct UploadWriter {
    store: Arc<Store>,
    name: RepoName,
    id: UploadId,
    sink: Box<dyn Append>,
    /// The session's directory.
    dir: PathBuf,
    session: Session,
    released: bool,
}

impl Store {
    /// Starts an upload session.
    pub fn start_upload(&self, name: &RepoName) -> Result<UploadId> {
        let id = UploadId::random();
        let dir = self.layout.upload_dir(name, &id);
        self.driver.upload_create(&dir, &fsutil::rfc3339_now())?;
        // Not cached: a session that is never written to costs no memory,
        // and loading an empty one from disk is one stat.
        Ok(id)
    }

    /// How many bytes an upload session has received.
    pub fn upload_status(&self, name: &RepoName, id: &UploadId) -> Result<u64> {
        // The data file is the truth (a collector may have purged the
        // session); the cache only knows the size more cheaply.
        let Some(on_disk) = self.driver.upload_size(&self.layout.upload_dir(name, id))? else {
            let mut map = self.uploads.lock();
            if let Some(Slot::Idle(_)) = map.get(&key(name, id)) {
                map.remove(&key(name, id));
            }
            return Err(Error::UploadUnknown(id.clone()));
        };
        match self.uploads.lock().get(&key(name, id)) {
            Some(Slot::Idle(s)) => Ok(s.size),
            _ => Ok(on_disk),
        }
    }

    /// Cancels an upload session and deletes what it received.
    pub fn cancel_upload(&self, name: &RepoName, id: &UploadId) -> Result<()> {
        let dir = self.layout.upload_dir(name, id);
        {
            let mut map = self.uploads.lock();
            if let Some(Slot::Busy) = map.get(&key(name, id)) {
                return Err(Error::UploadBusy(id.clone()));
            }
            map.remove(&key(name, id));
        }
        if self.driver.upload_size(&dir)?.is_none() {
            return Err(Error::UploadUnknown(id.clone()));
        }
        self.driver.delete_tree(&dir)?;
        self.driver
            .prune_empty_dirs(&self.layout.uploads_dir(name), &self.layout.repos_root());
        Ok(())
    }

    /// Rebuilds a session from storage: its size from `data`, its hash from
    /// the newest usable `hashstates/sha256/<offset>` plus the bytes after it.
    fn load_session(&self, name: &RepoName, id: &UploadId) -> Result<Session> {
        let dir = self.layout.upload_dir(name, id);
        let Some(size) = self.driver.upload_size(&dir)? else {
            return Err(Error::UploadUnknown(id.clone()));
        };
        let states = self.layout.upload_hashstates(name, id, Algorithm::Sha256);
        let mut best: Option<Sha256State> = None;
        for (entry, _) in self.driver.list(&states)? {
            let Ok(offset) = entry.parse::<u64>() else {
                continue;
            };
            if offset > size || best.as_ref().is_some_and(|b| b.len() >= offset) {
                continue;
            }
            let Some(bytes) = self.driver.get(&states.join(&entry), 1024)? else {
                continue;
            };
            match Sha256State::unmarshal(&bytes) {
                Some(s) if s.len() == offset => best = Some(s),
                _ => tracing::warn!(upload = %id, offset, "ignoring unreadable hash state"),
            }
        }
        let mut hash = best.unwrap_or_default();
        if hash.len() < size {
            let f = self.driver.upload_reader(&dir, hash.len())?;
            let mut rest = f.take(size - hash.len());
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = rest.read(&mut buf).ctx("read", &dir)?;
                if n == 0 {
                    break;
                }
                hash.update(&buf[..n]);
            }
        }
        let hash = (hash.len() == size).then_some(hash);
        Ok(Session { size, hash })
    }

    /// Takes a session for exclusive use by one request.
    fn acquire(&self, name: &RepoName, id: &UploadId) -> Result<Session> {
        let k = key(name, id);
        {
            let mut map = self.uploads.lock();
            match map.get(&k) {
                Some(Slot::Busy) => return Err(Error::UploadBusy(id.clone())),
                Some(Slot::Idle(_)) => {
                    if let Some(Slot::Idle(s)) = map.insert(k, Slot::Busy) {
                        // The data file is the truth: a session cached here
                        // but deleted on disk (by another process) is gone.
                        if self
                            .driver
                            .upload_size(&self.layout.upload_dir(name, id))?
                            .is_some()
                        {
                            return Ok(s);
                        }
                        map.remove(&key(name, id));
                        return Err(Error::UploadUnknown(id.clone()));
                    }
                    unreachable!("slot was just seen idle under the same lock")
                }
                None => {
                    map.insert(k.clone(), Slot::Busy);
                }
            }
        }
        match self.load_session(name, id) {
            Ok(s) => Ok(s),
            Err(e) => {
                self.uploads.lock().remove(&k);
                Err(e)
            }
        }
    }

    /// Opens a session for appending. With `start`, the chunk must begin
    /// exactly where the session ends (else [`Error::RangeInvalid`]).
    pub fn upload_writer(
        self: &Arc<Self>,
        name: &RepoName,
        id: &UploadId,
        start: Option<u64>,
    ) -> Result<UploadWriter> {
        let session = self.acquire(name, id)?;
        let dir = self.layout.upload_dir(name, id);
        let (sink, len) = match self.driver.upload_append(&dir, session.size) {
            Ok(x) => x,
            Err(e) => {
                self.uploads
                    .lock()
                    .insert(key(name, id), Slot::Idle(session));
                return Err(e);
            }
        };
        let mut w = UploadWriter {
            store: self.clone(),
            name: name.clone(),
            id: id.clone(),
            sink,
            dir,
            session,
            released: false,
        };
        if len != w.session.size {
            // Changed behind our back: trust the storage, re-hash at commit.
            w.session.size = len;
            w.session.hash = None;
        }
        if let Some(start) = start {
            if start != w.session.size {
                return Err(Error::RangeInvalid {
                    current: w.session.size,
                    start,
                });
            }
        }
        Ok(w)
    }

    /// Finishes an upload: checks the digest of everything received and
    /// commits it as a blob of `name`. On a mismatch the session is deleted
    /// and nothing is committed.
    pub fn commit_upload(&self, w: UploadWriter, expected: &Digest) -> Result<BlobInfo> {
        let mut w = w;
        let name = w.name.clone();
        let id = w.id.clone();
        // Durable before anything points at it (and, on object storage,
        // this request's part exists only once closed).
        w.sink.close(true)?;
        let actual = match (&w.session.hash, expected.algorithm()) {
            (Some(h), Algorithm::Sha256) => h.digest(),
            _ => {
                // No usable running hash (sha512, or a state lost): re-read.
                let mut f = self.driver.upload_reader(&w.dir, 0)?;
                let mut h = Digester::new(expected.algorithm());
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = f.read(&mut buf).ctx("read", &w.dir)?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                h.finish()
            }
        };
        let dir = w.dir.clone();
        if actual != *expected {
            w.released = true;
            self.uploads.lock().remove(&key(&name, &id));
            self.driver.delete_tree(&dir)?;
            return Err(Error::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        let res = self
            .commit_blob_upload(&dir, expected)
            .and_then(|()| self.link_blob(&name, expected))
            .and_then(|()| self.blob_stat(&name, expected));
        if res.is_ok() {
            w.released = true;
            self.uploads.lock().remove(&key(&name, &id));
            self.driver.delete_tree(&dir)?;
        }
        res
    }
}

impl UploadWriter {
    /// Appends bytes, hashing them as they go.
    pub fn write(&mut self, buf: &[u8]) -> Result<()> {
        if let Err(e) = self.sink.write(buf) {
            // Part of `buf` may be stored: the hash no longer matches, and
            // the true size is whatever the storage has.
            self.session.hash = None;
            self.session.size = self.sink.len_after_error();
            return Err(e);
        }
        if let Some(h) = &mut self.session.hash {
            h.update(buf);
        }
        self.session.size += buf.len() as u64;
        Ok(())
    }

    /// Bytes in the session so far.
    pub fn size(&self) -> u64 {
        self.session.size
    }

    /// The session id.
    pub fn id(&self) -> &UploadId {
        &self.id
    }

    /// Ends this request's writing: saves the hash state for a later resume
    /// (or a restart) and releases the session.
    pub fn finish(mut self) -> Result<u64> {
        if let Err(e) = self.sink.close(false) {
            // Whatever this request sent is not in the session: the next
            // load re-reads the storage for the true size and hash.
            self.session.hash = None;
            self.session.size = self.sink.len_after_error();
            return Err(e);
        }
        self.save_hash_state();
        Ok(self.session.size)
    }

    fn save_hash_state(&self) {
        let Some(h) = &self.session.hash else { return };
        if h.is_empty() {
            return;
        }
        let driver = &self.store.driver;
        let dir = self
            .store
            .layout
            .upload_hashstates(&self.name, &self.id, Algorithm::Sha256);
        let path = dir.join(h.len().to_string());
        if driver.put(&path, &h.marshal()).is_err() {
            // Only an optimisation: a resume without it re-hashes the data.
            return;
        }
        // Older states are useless once a newer one is safely written.
        if let Ok(entries) = driver.list(&dir) {
            for (e, _) in entries {
                if e.parse::<u64>().is_ok_and(|o| o != h.len()) {
                    let _ = driver.delete(&dir.join(e));
                }
            }
        }
    }
}

impl Drop for UploadWriter {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let mut map = self.store.uploads.lock();
        if map.len() >= MAX_CACHED_SESSIONS {
            // Idle sessions can always be reloaded from disk; dropping them
            // bounds memory however many uploads clients leave open.
            map.retain(|_, slot| matches!(slot, Slot::Busy));
        }
        map.insert(key(&self.name, &self.id), Slot::Idle(self.session.clone()));
    }
}
