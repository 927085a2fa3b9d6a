//! Random access to the members of an image archive (a tar of a
//! `docker save` or OCI layout). A regular file is scanned once for its
//! headers, and members are then read in place; a stream (stdin, a compressed
//! archive) is read once, with big members staged straight into the store's
//! `ingest/` (hashed on the way, and a compressed one decompressed for its
//! diffID in that same pass) so no byte is written or read twice. Progress
//! is reported as a stream's bytes arrive.

use crate::blobio::{bomb_limit, measure_diff, DiffResult, SpanReader};
use crate::{Progress, TransportError};
use hoist_archive::tarstream::{Entry, EntryKind, TarReader};
use hoist_oci::Digest;
use hoist_store::{StagedBlob, Store};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;

/// Members up to this size are kept in memory when streaming.
const SMALL_MEMBER: u64 = 1024 * 1024;
/// At most this much is kept in memory in all when streaming.
const MEMORY_BUDGET: u64 = 64 * 1024 * 1024;
/// Symlinks followed at most this many times to resolve a member.
const MAX_LINK_HOPS: usize = 8;

/// Where a member's bytes are.
pub(crate) enum Content {
    /// `size` bytes at `offset` in the archive file.
    Span { offset: u64, size: u64 },
    /// Held in memory.
    Memory(Vec<u8>),
    /// Staged into the store's ingest directory, already hashed; handed
    /// out once (then committed by rename).
    Staged {
        blob: std::sync::Mutex<Option<StagedBlob>>,
        digest: Digest,
        size: u64,
        /// The diffID measured while staging; None when not compressed.
        diff: Option<DiffResult>,
    },
    /// Named `blobs/<alg>/<hex>` and already committed in the store: not written again.
    InStore {
        digest: Digest,
        size: u64,
        path: std::path::PathBuf,
    },
}

impl Content {
    pub(crate) fn size(&self) -> u64 {
        match self {
            Content::Span { size, .. } => *size,
            Content::Memory(v) => v.len() as u64,
            Content::Staged { size, .. } => *size,
            Content::InStore { size, .. } => *size,
        }
    }
}

/// The members of one archive.
pub(crate) struct ArchiveFiles {
    file: Option<File>,
    entries: HashMap<String, Content>,
    links: HashMap<String, String>,
}

/// Normalises a member name with the unpacker's sanitiser
/// ([`hoist_archive::sanitize_entry_path`]); the archive's root itself is
/// no member.
pub(crate) fn normalize(name: &str) -> Result<String, TransportError> {
    match hoist_archive::sanitize_entry_path(std::path::Path::new(name)) {
        Ok(p) if !p.as_os_str().is_empty() => Ok(p.to_string_lossy().into_owned()),
        Ok(_) => Err(TransportError::Archive(format!(
            "member {name:?} has an empty path"
        ))),
        Err(e) => Err(TransportError::Archive(e.to_string())),
    }
}

/// Resolves `target` of a symlink at `link` to a member name inside the archive.
fn resolve_link(link: &str, target: &str) -> Result<String, TransportError> {
    if target.starts_with('/') {
        return Err(TransportError::Archive(format!(
            "symlink {link:?} points to absolute path {target:?}, outside the archive"
        )));
    }
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(TransportError::Archive(format!(
                        "symlink {link:?} points to {target:?}, outside the archive"
                    )));
                }
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

fn tar_err(e: hoist_archive::Error) -> TransportError {
    match e {
        hoist_archive::Error::Truncated { .. } => {
            TransportError::Archive(format!("{e}; the archive is truncated"))
        }
        hoist_archive::Error::Io { .. } => {
            TransportError::Archive(format!("{e}; the archive is unreadable or not a tar file"))
        }
        // The tar reader's own refusals already say what is wrong.
        e => TransportError::Archive(e.to_string()),
    }
}

/// A read error from inside a member (the tar reader's own errors travel inside it).
fn io_tar_err(e: io::Error) -> TransportError {
    TransportError::Archive(format!("{e}; the archive is truncated or corrupt"))
}

/// What a tar member is to an archive reader.
enum Member {
    /// A directory or special file: nothing to index.
    Skip,
    /// A symlink or hardlink, resolved to the member name it points at.
    Link(String, String),
    /// A regular file.
    File(String),
}

fn classify(ent: &Entry) -> Result<Member, TransportError> {
    let raw = ent.path.to_string_lossy();
    match ent.kind {
        EntryKind::File => Ok(Member::File(normalize(&raw)?)),
        EntryKind::Symlink | EntryKind::Hardlink => {
            let name = normalize(&raw)?;
            let target = ent
                .link
                .as_ref()
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            let resolved = if ent.kind == EntryKind::Symlink {
                resolve_link(&name, &target)?
            } else {
                normalize(&target)?
            };
            Ok(Member::Link(name, resolved))
        }
        _ => Ok(Member::Skip),
    }
}

/// Reads a file at a cursor with positioned reads; a jump is just a new cursor.
struct FileCursor<'a> {
    file: &'a File,
    pos: u64,
}

impl Read for FileCursor<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl ArchiveFiles {
    /// Indexes a seekable archive file by reading its headers only.
    pub(crate) fn scan_file(file: File) -> Result<Self, TransportError> {
        let len = file
            .metadata()
            .map_err(|e| TransportError::io("archive", e))?
            .len();
        let mut entries = HashMap::new();
        let mut links = HashMap::new();
        {
            let mut tr = TarReader::new(FileCursor {
                file: &file,
                pos: 0,
            });
            while let Some(ent) = tr.next_entry().map_err(tar_err)? {
                let offset = tr.position();
                let size = ent.size;
                match classify(&ent)? {
                    Member::Skip => {}
                    Member::Link(name, target) => {
                        links.insert(name, target);
                    }
                    Member::File(name) => {
                        if offset.saturating_add(size) > len {
                            return Err(TransportError::Archive(format!(
                                "member {name:?} is truncated: it needs {size} bytes at offset {offset} but the archive has {len}"
                            )));
                        }
                        entries.insert(name, Content::Span { offset, size });
                    }
                }
                // Data is read in place later: jump over it instead of reading it.
                tr.skip_entry_by(|c, n| {
                    c.pos += n;
                    Ok(())
                })
                .map_err(tar_err)?;
            }
        }
        Ok(ArchiveFiles {
            file: Some(file),
            entries,
            links,
        })
    }

    /// Reads a tar stream once, staging large members into the store.
    pub(crate) fn scan_stream(
        input: impl Read,
        store: &Store,
        progress: &dyn Progress,
    ) -> Result<Self, TransportError> {
        let mut entries = HashMap::new();
        let mut links = HashMap::new();
        let mut in_memory = 0u64;
        let mut tr = TarReader::new(input);
        while let Some(ent) = tr.next_entry().map_err(tar_err)? {
            let size = ent.size;
            let name = match classify(&ent)? {
                Member::Skip => continue,
                Member::Link(name, target) => {
                    links.insert(name, target);
                    continue;
                }
                Member::File(name) => name,
            };
            let content = if size <= SMALL_MEMBER && in_memory + size <= MEMORY_BUDGET {
                let mut buf = Vec::with_capacity(size as usize);
                tr.read_to_end(&mut buf).map_err(io_tar_err)?;
                in_memory += size;
                Content::Memory(buf)
            } else if let Some(digest) = committed_blob(store, &name, size) {
                // The store has these exact bytes: read past them, write nothing.
                io::copy(&mut tr, &mut io::sink()).map_err(io_tar_err)?;
                progress.finish(&short_name(&name), true);
                Content::InStore {
                    path: store.blob_path(&digest),
                    digest,
                    size,
                }
            } else {
                let id = short_name(&name);
                progress.start(&id, size);
                let mut w = store.blob_writer()?;
                let diff = stream_into(&mut tr, &mut w, size, &|n| progress.advance(&id, n))
                    .map_err(io_tar_err)?;
                let blob = w.finish()?;
                progress.finish(&id, false);
                Content::Staged {
                    digest: blob.digest().clone(),
                    size: blob.size(),
                    blob: std::sync::Mutex::new(Some(blob)),
                    diff,
                }
            };
            entries.insert(name, content);
        }
        Ok(ArchiveFiles {
            file: None,
            entries,
            links,
        })
    }

    /// The canonical name a member resolves to, following links inside the archive.
    pub(crate) fn resolve(&self, name: &str) -> Result<String, TransportError> {
        let mut cur = normalize(name)?;
        for _ in 0..=MAX_LINK_HOPS {
            if self.entries.contains_key(&cur) {
                return Ok(cur);
            }
            match self.links.get(&cur) {
                Some(next) => cur = next.clone(),
                None => {
                    return Err(TransportError::Archive(format!(
                        "{name:?} is listed but not in the archive"
                    )))
                }
            }
        }
        Err(TransportError::Archive(format!(
            "{name:?}: too many levels of links"
        )))
    }

    /// True when the archive has no member that could be read (no file, no link).
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.links.is_empty()
    }

    /// True when a member exists (after links).
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.resolve(name).is_ok()
    }

    pub(crate) fn content(&self, name: &str) -> Result<(String, &Content), TransportError> {
        let key = self.resolve(name)?;
        let c = self
            .entries
            .get(&key)
            .ok_or_else(|| TransportError::Archive(format!("{name:?} is not in the archive")))?;
        Ok((key, c))
    }

    /// Reads a small member whole, refusing one larger than `limit`.
    pub(crate) fn read_small(&self, name: &str, limit: u64) -> Result<Vec<u8>, TransportError> {
        let (_, c) = self.content(name)?;
        if c.size() > limit {
            return Err(TransportError::Archive(format!(
                "{name} is {} bytes, more than the {limit} bytes a JSON document may have here",
                c.size()
            )));
        }
        let mut buf = Vec::with_capacity(c.size() as usize);
        self.open(name)?
            .read_to_end(&mut buf)
            .map_err(|e| TransportError::io(name.to_owned(), e))?;
        Ok(buf)
    }

    /// Opens a member for reading.
    pub(crate) fn open(&self, name: &str) -> Result<Box<dyn Read + '_>, TransportError> {
        let (_, c) = self.content(name)?;
        Ok(match c {
            Content::Span { offset, size } => {
                let file = self
                    .file
                    .as_ref()
                    .ok_or_else(|| TransportError::Archive("archive file is gone".into()))?;
                Box::new(SpanReader {
                    file,
                    pos: *offset,
                    end: offset + size,
                })
            }
            Content::Memory(v) => Box::new(&v[..]),
            Content::Staged { blob, .. } => {
                let path = lock(blob)
                    .as_ref()
                    .map(|b| b.path().to_owned())
                    .ok_or_else(|| handed_out(name))?;
                Box::new(File::open(path).map_err(|e| TransportError::io(name.to_owned(), e))?)
            }
            Content::InStore { path, .. } => {
                Box::new(File::open(path).map_err(|e| TransportError::io(name.to_owned(), e))?)
            }
        })
    }

    /// A member as a blob body: a file range, a staged blob (handed out
    /// once), a committed store blob, or bytes in memory.
    /// A staged member whose diffID could not be measured is refused, after
    /// its digest and size are checked against `expect`.
    pub(crate) fn body(
        &self,
        key: &str,
        expect: Option<&hoist_oci::Descriptor>,
    ) -> Result<crate::BlobBody, TransportError> {
        use crate::BlobBody;
        let (_, c) = self.content(key)?;
        let io = |e| TransportError::io(key.to_owned(), e);
        Ok(match c {
            Content::Span { offset, size } => {
                let file = self
                    .file
                    .as_ref()
                    .ok_or_else(|| TransportError::Archive("archive file is gone".into()))?;
                BlobBody::File {
                    file: file.try_clone().map_err(io)?,
                    offset: *offset,
                    len: *size,
                }
            }
            Content::Memory(v) => BlobBody::bytes(v.clone()),
            Content::Staged {
                blob,
                diff,
                digest,
                size,
            } => {
                let diff_id = match diff {
                    None => None,
                    Some(Ok(d)) => Some(d.clone()),
                    Some(Err(f)) => {
                        if let Some(d) = expect {
                            crate::blobio::check(key, d, digest, *size, None, None)?;
                        }
                        return Err(f.clone().into_error(key));
                    }
                };
                let blob = lock(blob).take().ok_or_else(|| handed_out(key))?;
                BlobBody::Staged { blob, diff_id }
            }
            Content::InStore { path, size, .. } => BlobBody::File {
                file: File::open(path).map_err(io)?,
                offset: 0,
                len: *size,
            },
        })
    }

    /// The digest a member is already known by (hashed while streaming, or named by the store).
    pub(crate) fn known_digest(&self, key: &str) -> Option<Digest> {
        match self.entries.get(key) {
            Some(Content::Staged { digest, .. }) | Some(Content::InStore { digest, .. }) => {
                Some(digest.clone())
            }
            _ => None,
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn handed_out(name: &str) -> TransportError {
    TransportError::Archive(format!(
        "{name:?} was read from the stream once and already copied"
    ))
}

/// The short name progress shows for a member: the digest's first 12 hex
/// characters for `blobs/<alg>/<hex>`, else its directory's.
pub(crate) fn short_name(name: &str) -> String {
    let base = match name.strip_prefix("blobs/").and_then(|r| r.split_once('/')) {
        Some((_, hex)) => hex,
        None => name.split('/').next().unwrap_or(name),
    };
    base.chars().take(12).collect()
}

/// The digest a member named `blobs/<alg>/<hex>` claims, when the store
/// already holds that blob with the same size.
fn committed_blob(store: &Store, name: &str, size: u64) -> Option<Digest> {
    let d = Digest::from_layout_path(name)?;
    let on_disk = std::fs::metadata(store.blob_path(&d)).ok()?;
    (on_disk.is_file() && on_disk.len() == size).then_some(d)
}

/// Streams a member into a blob writer, reading straight into the buffers
/// that then go to the hashing thread (no copy for hashing). A compressed
/// member is also decompressed and hashed for its diffID on a second
/// thread, from copies of the same chunks; returns that diffID (None when
/// the member is not compressed).
fn stream_into(
    r: &mut impl Read,
    w: &mut hoist_store::BlobWriter,
    size: u64,
    progress: &dyn Fn(u64),
) -> io::Result<Option<DiffResult>> {
    let mut diff: Option<(
        std::sync::mpsc::SyncSender<Vec<u8>>,
        std::thread::JoinHandle<DiffResult>,
    )> = None;
    let mut first = true;
    let result = loop {
        // Fill whole buffers: a pipe hands out less per read, and only whole
        // pages can go to the disk directly.
        let mut buf = w.buffer(STREAM_CHUNK);
        let space = buf.space();
        let mut n = 0;
        while n < space.len() {
            match r.read(&mut space[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        let last = n < space.len();
        if n == 0 {
            break Ok(());
        }
        if first {
            first = false;
            if hoist_archive::compression::detect(&space[..n])
                != hoist_oci::media_type::Compression::None
            {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(8);
                let limit = bomb_limit(size);
                let h = std::thread::spawn(move || {
                    measure_diff(
                        ChannelReader {
                            rx,
                            cur: Vec::new(),
                            at: 0,
                        },
                        limit,
                    )
                });
                diff = Some((tx, h));
            }
        }
        if let Some((tx, _)) = &diff {
            // A send fails only when the diff thread stopped (a bad stream): its result says why.
            let _ = tx.send(space[..n].to_vec());
        }
        buf.set_len(n);
        progress(n as u64);
        if let Err(e) = w.write_buffer(buf) {
            break Err(e);
        }
        if last {
            break Ok(());
        }
    };
    let diff = diff.map(|(tx, h)| {
        drop(tx);
        h.join().unwrap_or_else(|_| {
            Err(crate::blobio::DiffFail::Corrupt(
                "diffID thread panicked".into(),
            ))
        })
    });
    result.map(|()| diff)
}

/// Reads the chunks a channel delivers, in order, until the sender is gone.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    cur: Vec<u8>,
    at: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.cur.len() {
            match self.rx.recv() {
                Ok(c) => {
                    self.cur = c;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.at);
        buf[..n].copy_from_slice(&self.cur[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Bytes read per step when streaming a member into the store.
const STREAM_CHUNK: usize = 1 << 20;

/// Copies with a large buffer; returns the bytes copied.
pub(crate) fn copy_big(r: &mut impl Read, w: &mut (impl Write + ?Sized)) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        total += n as u64;
    }
}
