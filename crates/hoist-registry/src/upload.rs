//! Blob upload sessions, kept on disk in distribution's layout so they
//! survive a restart: `_uploads/<id>/data` holds the bytes received so far
//! (its length is the session's offset), `startedat` the start time, and
//! `hashstates/sha256/<offset>` the SHA-256 state at that offset in Go's
//! marshaled form, so resuming does not re-hash what is already there.
//!
//! In memory there is only a cache of each session's offset and hash state,
//! and a busy flag so that two requests cannot append to one session at once.

use crate::error::{Error, IoContext, Result};
use crate::fsutil::{self, is_not_found};
use crate::hashstate::Sha256State;
use crate::names::{RepoName, UploadId};
use crate::store::{BlobInfo, Store};
use hoist_oci::{Algorithm, Digest, Digester};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
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
    file: File,
    path: PathBuf,
    session: Session,
    released: bool,
}

impl Store {
    /// Starts an upload session.
    pub fn start_upload(&self, name: &RepoName) -> Result<UploadId> {
        let id = UploadId::random();
        let dir = self.layout.upload_dir(name, &id);
        fsutil::create_dirs(&dir)?;
        let data = self.layout.upload_data(name, &id);
        File::create(&data).ctx("create", &data)?;
        let started = self.layout.upload_started_at(name, &id);
        fs::write(&started, fsutil::rfc3339_now()).ctx("write", &started)?;
        // Not cached: a session that is never written to costs no memory,
        // and loading an empty one from disk is one stat.
        Ok(id)
    }

    /// How many bytes an upload session has received.
    pub fn upload_status(&self, name: &RepoName, id: &UploadId) -> Result<u64> {
        // The data file is the truth (a collector may have purged the
        // session); the cache only knows the size more cheaply.
        let data = self.layout.upload_data(name, id);
        let on_disk = match fs::metadata(&data) {
            Ok(m) if m.is_file() => m.len(),
            Ok(_) => return Err(Error::UploadUnknown(id.clone())),
            Err(e) if is_not_found(&e) => {
                let mut map = self.uploads.lock();
                if let Some(Slot::Idle(_)) = map.get(&key(name, id)) {
                    map.remove(&key(name, id));
                }
                return Err(Error::UploadUnknown(id.clone()));
            }
            Err(e) => return Err(e).ctx("stat", &data),
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
        if !dir.join("data").is_file() {
            return Err(Error::UploadUnknown(id.clone()));
        }
        fsutil::remove_dir_all(&dir)?;
        fsutil::prune_empty_dirs(&self.layout.uploads_dir(name), &self.layout.repos_root());
        Ok(())
    }

    /// Rebuilds a session from disk: its size from `data`, its hash from the
    /// newest usable `hashstates/sha256/<offset>` plus the bytes after it.
    fn load_session(&self, name: &RepoName, id: &UploadId) -> Result<Session> {
        let data = self.layout.upload_data(name, id);
        let size = match fs::metadata(&data) {
            Ok(m) if m.is_file() => m.len(),
            Ok(_) => return Err(Error::UploadUnknown(id.clone())),
            Err(e) if is_not_found(&e) => return Err(Error::UploadUnknown(id.clone())),
            Err(e) => return Err(e).ctx("stat", &data),
        };
        let states = self.layout.upload_hashstates(name, id, Algorithm::Sha256);
        let mut best: Option<Sha256State> = None;
        for (entry, _) in fsutil::list_dir(&states)? {
            let Ok(offset) = entry.parse::<u64>() else {
                continue;
            };
            if offset > size || best.as_ref().is_some_and(|b| b.len() >= offset) {
                continue;
            }
            let Some(bytes) = fsutil::read_bounded(&states.join(&entry), 1024)? else {
                continue;
            };
            match Sha256State::unmarshal(&bytes) {
                Some(s) if s.len() == offset => best = Some(s),
                _ => tracing::warn!(upload = %id, offset, "ignoring unreadable hash state"),
            }
        }
        let mut hash = best.unwrap_or_default();
        if hash.len() < size {
            let mut f = File::open(&data).ctx("open", &data)?;
            f.seek(SeekFrom::Start(hash.len())).ctx("seek", &data)?;
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
            let mut map = self.uploads.lock();
            match map.get(&k) {
                Some(Slot::Busy) => return Err(Error::UploadBusy(id.clone())),
                Some(Slot::Idle(_)) => {
                    if let Some(Slot::Idle(s)) = map.insert(k, Slot::Busy) {
                        // The data file is the truth: a session cached here
                        // but deleted on disk (by another process) is gone.
                        if self.layout.upload_data(name, id).is_file() {
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
        let path = self.layout.upload_data(name, id);
        let mut w = UploadWriter {
            store: self.clone(),
            name: name.clone(),
            id: id.clone(),
            file: match File::options().append(true).open(&path) {
                Ok(f) => f,
                Err(e) => {
                    self.uploads
                        .lock()
                        .insert(key(name, id), Slot::Idle(session));
                    return Err(e).ctx("open", &path);
                }
            },
            path,
            session,
            released: false,
        };
        // Bytes past the recorded size (a write torn by a crash) are cut so
        // the file, the size and the hash agree.
        let len = w.file.metadata().ctx("stat", &w.path)?.len();
        if len > w.session.size {
            w.file.set_len(w.session.size).ctx("truncate", &w.path)?;
        } else if len < w.session.size {
            // Shrunk behind our back: trust the file, re-hash at commit.
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
        let actual = match (&w.session.hash, expected.algorithm()) {
            (Some(h), Algorithm::Sha256) => h.digest(),
            _ => {
                // No usable running hash (sha512, or a state lost): re-read.
                let mut f = File::open(&w.path).ctx("open", &w.path)?;
                let mut h = Digester::new(expected.algorithm());
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = f.read(&mut buf).ctx("read", &w.path)?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                h.finish()
            }
        };
        let dir = self.layout.upload_dir(&name, &id);
        if actual != *expected {
            w.released = true;
            self.uploads.lock().remove(&key(&name, &id));
            fsutil::remove_dir_all(&dir)?;
            return Err(Error::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        w.file.sync_all().ctx("fsync", &w.path)?;
        let res = self
            .commit_blob_file(&w.path, expected)
            .and_then(|()| self.link_blob(&name, expected))
            .and_then(|()| self.blob_stat(&name, expected));
        if res.is_ok() {
            w.released = true;
            self.uploads.lock().remove(&key(&name, &id));
            fsutil::remove_dir_all(&dir)?;
        }
        res
    }
}

impl UploadWriter {
    /// Appends bytes, hashing them as they go.
    pub fn write(&mut self, buf: &[u8]) -> Result<()> {
        if let Err(e) = self.file.write_all(buf) {
            // Part of `buf` may be on disk: the hash no longer matches, and
            // the true size is whatever the file has.
            self.session.hash = None;
            self.session.size = self.file.metadata().map(|m| m.len()).unwrap_or(0);
            return Err(e).ctx("write", &self.path);
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
    pub fn finish(self) -> Result<u64> {
        self.save_hash_state();
        Ok(self.session.size)
    }

    fn save_hash_state(&self) {
        let Some(h) = &self.session.hash else { return };
        if h.is_empty() {
            return;
        }
        let layout = &self.store.layout;
        let dir = layout.upload_hashstates(&self.name, &self.id, Algorithm::Sha256);
        let path = dir.join(h.len().to_string());
        if fsutil::create_dirs(&dir).is_err()
            || fsutil::write_atomic(&layout.tmp_dir(), &path, &h.marshal()).is_err()
        {
            // Only an optimisation: a resume without it re-hashes the data.
            return;
        }
        // Older states are useless once a newer one is safely written.
        if let Ok(entries) = fsutil::list_dir(&dir) {
            for (e, _) in entries {
                if e.parse::<u64>().is_ok_and(|o| o != h.len()) {
                    let _ = fs::remove_file(dir.join(e));
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
