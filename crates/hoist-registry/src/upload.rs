//! Blob upload sessions, a layer over any storage driver, kept in storage in
//! distribution's layout so they survive a restart: `_uploads/<id>/startedat`
//! says the session exists (and since when), `data` is an appended file
//! holding the bytes received so far (its size is the session's offset), and
//! `hashstates/sha256/<offset>` the SHA-256 state at that offset in Go's
//! marshaled form, so resuming does not re-hash what is already there.
//!
//! In memory there is only a cache of each session's offset and hash state,
//! and a busy flag so that two requests cannot append to one session at once.
//! What a verified session becomes (a blob of the repository) is the
//! store's business ([`crate::store`]); this layer never looks at blobs.

use crate::driver::{Driver, FileWriter};
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::layout::Layout;
use crate::names::{RepoName, UploadId};
use hoist_archive::hashstate::Sha256State;
use hoist_oci::{Algorithm, Digest, Digester};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

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

type Key = (String, String);

fn key(name: &RepoName, id: &UploadId) -> Key {
    (name.as_str().to_owned(), id.as_str().to_owned())
}

/// The upload sessions of one storage.
pub(crate) struct Uploads {
    driver: Arc<dyn Driver>,
    map: Mutex<HashMap<Key, Slot>>,
}

/// An open upload session, exclusively held by one request. Dropping it
/// releases the session with whatever was written so far.
pub struct UploadWriter {
    uploads: Arc<Uploads>,
    name: RepoName,
    id: UploadId,
    /// `None` once committed.
    sink: Option<Box<dyn FileWriter>>,
    /// The session's directory.
    dir: PathBuf,
    session: Session,
    /// Released for good (committed or deleted): nothing to cache.
    released: bool,
    /// A write failed: what storage holds is the truth, reloaded next time.
    stale: bool,
}

impl Uploads {
    pub(crate) fn new(driver: Arc<dyn Driver>) -> Self {
        Uploads {
            driver,
            map: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Slot>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn layout(&self) -> &Layout {
        self.driver.layout()
    }

    /// The session's size in storage; `None` when there is no such session.
    fn stored_size(&self, dir: &Path) -> Result<Option<u64>> {
        if self.driver.stat(&dir.join("startedat"))?.is_none() {
            return Ok(None);
        }
        Ok(Some(self.driver.append(&dir.join("data"))?.size()))
    }

    /// Starts an upload session.
    pub(crate) fn start(&self, name: &RepoName) -> Result<UploadId> {
        let id = UploadId::random();
        let dir = self.layout().upload_dir(name, &id);
        self.driver
            .put(&dir.join("startedat"), fsutil::rfc3339_now().as_bytes())?;
        // Not cached: a session that is never written to costs no memory,
        // and loading an empty one is a stat.
        Ok(id)
    }

    /// How many bytes a session has received.
    pub(crate) fn status(&self, name: &RepoName, id: &UploadId) -> Result<u64> {
        // Storage is the truth (a collector may have purged the session);
        // the cache only knows the size more cheaply.
        let dir = self.layout().upload_dir(name, id);
        if self.driver.stat(&dir.join("startedat"))?.is_none() {
            let mut map = self.lock();
            if let Some(Slot::Idle(_)) = map.get(&key(name, id)) {
                map.remove(&key(name, id));
            }
            return Err(Error::UploadUnknown(id.clone()));
        }
        if let Some(Slot::Idle(s)) = self.lock().get(&key(name, id)) {
            return Ok(s.size);
        }
        self.stored_size(&dir)?
            .ok_or_else(|| Error::UploadUnknown(id.clone()))
    }

    /// Cancels a session and deletes what it received.
    pub(crate) fn cancel(&self, name: &RepoName, id: &UploadId) -> Result<()> {
        let dir = self.layout().upload_dir(name, id);
        {
            let mut map = self.lock();
            if let Some(Slot::Busy) = map.get(&key(name, id)) {
                return Err(Error::UploadBusy(id.clone()));
            }
            map.remove(&key(name, id));
        }
        if self.driver.stat(&dir.join("startedat"))?.is_none() {
            return Err(Error::UploadUnknown(id.clone()));
        }
        self.driver.delete_tree(&dir)?;
        self.driver.prune_empty_dirs(
            &self.layout().uploads_dir(name),
            &self.layout().repos_root(),
        );
        Ok(())
    }

    /// Rebuilds a session from storage: its size from `data`, its hash from
    /// the newest usable `hashstates/sha256/<offset>` plus the bytes after it.
    fn load(&self, name: &RepoName, id: &UploadId) -> Result<Session> {
        let dir = self.layout().upload_dir(name, id);
        let Some(size) = self.stored_size(&dir)? else {
            return Err(Error::UploadUnknown(id.clone()));
        };
        let states = self.layout().upload_hashstates(name, id, Algorithm::Sha256);
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
            let data = dir.join("data");
            let f = self.driver.reader(&data, hash.len())?;
            let mut rest = f.take(size - hash.len());
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = rest.read(&mut buf).ctx("read", &data)?;
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
            let mut map = self.lock();
            match map.insert(k.clone(), Slot::Busy) {
                Some(Slot::Busy) => return Err(Error::UploadBusy(id.clone())),
                Some(Slot::Idle(s)) => {
                    // Storage is the truth: a session cached here but
                    // deleted in storage (by another process) is gone.
                    let dir = self.layout().upload_dir(name, id);
                    if self.driver.stat(&dir.join("startedat"))?.is_some() {
                        return Ok(s);
                    }
                    map.remove(&k);
                    return Err(Error::UploadUnknown(id.clone()));
                }
                None => {}
            }
        }
        match self.load(name, id) {
            Ok(s) => Ok(s),
            Err(e) => {
                self.lock().remove(&k);
                Err(e)
            }
        }
    }

    /// Opens a session for appending. With `start`, the chunk must begin
    /// exactly where the session ends (else [`Error::RangeInvalid`]).
    pub(crate) fn writer(
        self: &Arc<Self>,
        name: &RepoName,
        id: &UploadId,
        start: Option<u64>,
    ) -> Result<UploadWriter> {
        let session = self.acquire(name, id)?;
        let dir = self.layout().upload_dir(name, id);
        let sink = match self.driver.append(&dir.join("data")) {
            Ok(s) => s,
            Err(e) => {
                self.lock().insert(key(name, id), Slot::Idle(session));
                return Err(e);
            }
        };
        let len = sink.size();
        let mut w = UploadWriter {
            uploads: self.clone(),
            name: name.clone(),
            id: id.clone(),
            sink: Some(sink),
            dir,
            session,
            released: false,
            stale: false,
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
}

impl UploadWriter {
    /// Appends bytes, hashing them as they go.
    pub fn write(&mut self, buf: &[u8]) -> Result<()> {
        let Some(sink) = &mut self.sink else {
            return Err(Error::UploadUnknown(self.id.clone()));
        };
        if let Err(e) = sink.write(buf) {
            // Part of `buf` may be stored: the hash no longer matches, and
            // the true size is whatever the storage has.
            self.session.size = sink.size();
            self.session.hash = None;
            self.stale = true;
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

    /// The repository of the session.
    pub(crate) fn name(&self) -> &RepoName {
        &self.name
    }

    fn commit_sink(&mut self, durable: bool) -> Result<()> {
        let Some(sink) = self.sink.take() else {
            return Ok(());
        };
        sink.commit(durable).inspect_err(|_| {
            // Whatever this request sent may not be in the session: the
            // next load reads the storage for the true size and hash.
            self.stale = true;
        })
    }

    /// Ends this request's writing: saves the hash state for a later resume
    /// (or a restart) and releases the session.
    pub fn finish(mut self) -> Result<u64> {
        self.commit_sink(false)?;
        self.save_hash_state();
        Ok(self.session.size)
    }

    /// Makes everything received durable and checks that it hashes to
    /// `expected`. Returns the `data` file, ready to become the blob; on a
    /// mismatch the session is deleted.
    pub(crate) fn verify(&mut self, expected: &Digest) -> Result<PathBuf> {
        // Durable before anything points at it (and, on object storage,
        // this request's part exists only once committed).
        self.commit_sink(true)?;
        let data = self.dir.join("data");
        let driver = &self.uploads.driver;
        let actual = match (&self.session.hash, expected.algorithm()) {
            (Some(h), Algorithm::Sha256) => h.digest(),
            _ => {
                // No usable running hash (sha512, or a state lost): re-read.
                let mut f = driver.reader(&data, 0)?;
                let mut h = Digester::new(expected.algorithm());
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = f.read(&mut buf).ctx("read", &data)?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                h.finish()
            }
        };
        if actual != *expected {
            self.discard()?;
            return Err(Error::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        Ok(data)
    }

    /// Ends the session for good and deletes what is left of it.
    pub(crate) fn discard(&mut self) -> Result<()> {
        self.released = true;
        self.sink = None;
        self.uploads.lock().remove(&key(&self.name, &self.id));
        self.uploads.driver.delete_tree(&self.dir)
    }

    fn save_hash_state(&self) {
        let Some(h) = &self.session.hash else { return };
        if h.is_empty() || self.stale {
            return;
        }
        let driver = &self.uploads.driver;
        let dir = driver
            .layout()
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
        let mut map = self.uploads.lock();
        let k = key(&self.name, &self.id);
        if self.stale {
            map.remove(&k);
            return;
        }
        if map.len() >= MAX_CACHED_SESSIONS {
            // Idle sessions can always be reloaded from storage; dropping
            // them bounds memory however many uploads clients leave open.
            map.retain(|_, slot| matches!(slot, Slot::Busy));
        }
        map.insert(k, Slot::Idle(self.session.clone()));
    }
}
