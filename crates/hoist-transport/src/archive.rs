//! Random access to the members of an image archive (a tar of a
//! `docker save` or OCI layout). A regular file is scanned once for its
//! headers, and members are then read in place; a stream (stdin, a compressed
//! archive) is read once, with big members staged straight into the store's
//! `ingest/` (hashed on the way) so no byte is written twice.

use crate::TransportError;
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
    /// Staged into the store's ingest directory, already hashed.
    Staged(StagedBlob),
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
            Content::Staged(s) => s.size(),
            Content::InStore { size, .. } => *size,
        }
    }
}

/// The members of one archive.
pub(crate) struct ArchiveFiles {
    file: Option<File>,
    entries: HashMap<String, Content>,
    links: HashMap<String, String>,
    /// Staged members handed out by `take_staged`: still members of the
    /// archive (a layer several images share resolves to its key again).
    taken: std::collections::HashSet<String>,
}

/// Normalises a member name: no absolute paths, no `..`, no NUL.
pub(crate) fn normalize(name: &str) -> Result<String, TransportError> {
    if name.starts_with('/') {
        return Err(TransportError::Archive(format!(
            "member {name:?} has an absolute path; archives must only hold relative paths"
        )));
    }
    if name.contains('\0') {
        return Err(TransportError::Archive(format!(
            "member {name:?} contains a NUL byte"
        )));
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(TransportError::Archive(format!(
                    "member {name:?} contains '..'; refusing a path that leaves the archive"
                )))
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(TransportError::Archive(format!(
            "member {name:?} has an empty path"
        )));
    }
    Ok(parts.join("/"))
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
            taken: Default::default(),
        })
    }

    /// Reads a tar stream once, staging large members into the store.
    pub(crate) fn scan_stream(input: impl Read, store: &Store) -> Result<Self, TransportError> {
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
                Content::InStore {
                    path: store.blob_path(&digest),
                    digest,
                    size,
                }
            } else {
                let mut w = store.blob_writer()?;
                stream_into(&mut tr, &mut w).map_err(io_tar_err)?;
                Content::Staged(w.finish()?)
            };
            entries.insert(name, content);
        }
        Ok(ArchiveFiles {
            file: None,
            entries,
            links,
            taken: Default::default(),
        })
    }

    /// The canonical name a member resolves to, following links inside the archive.
    pub(crate) fn resolve(&self, name: &str) -> Result<String, TransportError> {
        let mut cur = normalize(name)?;
        for _ in 0..=MAX_LINK_HOPS {
            if self.entries.contains_key(&cur) || self.taken.contains(&cur) {
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
            Content::Staged(s) => {
                Box::new(File::open(s.path()).map_err(|e| TransportError::io(name.to_owned(), e))?)
            }
            Content::InStore { path, .. } => {
                Box::new(File::open(path).map_err(|e| TransportError::io(name.to_owned(), e))?)
            }
        })
    }

    /// The committed store blob a member is known to be (digest, size, path), if it is one.
    pub(crate) fn in_store(&self, key: &str) -> Option<(Digest, u64, &std::path::Path)> {
        match self.entries.get(key) {
            Some(Content::InStore { digest, size, path }) => Some((digest.clone(), *size, path)),
            _ => None,
        }
    }

    /// The archive file and byte range of a member read in place, if it is one.
    pub(crate) fn span(&self, key: &str) -> Option<(&File, u64, u64)> {
        match (self.entries.get(key), &self.file) {
            (Some(Content::Span { offset, size }), Some(f)) => Some((f, *offset, *size)),
            _ => None,
        }
    }

    /// Takes a staged member out, so it can be committed by rename.
    pub(crate) fn take_staged(&mut self, key: &str) -> Option<StagedBlob> {
        match self.entries.remove(key) {
            Some(Content::Staged(s)) => {
                self.taken.insert(key.to_owned());
                Some(s)
            }
            Some(other) => {
                self.entries.insert(key.to_owned(), other);
                None
            }
            None => None,
        }
    }
}

/// The digest a member named `blobs/<alg>/<hex>` claims, when the store
/// already holds that blob with the same size.
fn committed_blob(store: &Store, name: &str, size: u64) -> Option<Digest> {
    let rest = name.strip_prefix("blobs/")?;
    let (alg, hex) = rest.split_once('/')?;
    let d: Digest = format!("{alg}:{hex}").parse().ok()?;
    let on_disk = std::fs::metadata(store.blob_path(&d)).ok()?;
    (on_disk.is_file() && on_disk.len() == size).then_some(d)
}

/// Reads a byte range of a file with positioned reads (no shared cursor).
struct SpanReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
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
                "archive ended inside a member",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Streams a member into a blob writer, reading straight into the buffers
/// that then go to the hashing thread (no copy for hashing).
fn stream_into(r: &mut impl Read, w: &mut hoist_store::BlobWriter) -> io::Result<()> {
    loop {
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
            return Ok(());
        }
        buf.set_len(n);
        w.write_buffer(buf)?;
        if last {
            return Ok(());
        }
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
