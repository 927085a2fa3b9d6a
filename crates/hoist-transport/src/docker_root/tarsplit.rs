//! Rebuilds a layer's tar byte for byte from its tar-split record
//! (`tar-split.json.gz`: one JSON object per line; type 2 carries raw tar
//! bytes — headers, padding, the end blocks — in base64, type 1 names a file
//! whose content comes from the layer's diff directory, with its size and
//! CRC-64/ISO), checking every file and the whole stream against the diffID.

use super::beneath::Beneath;
use super::crc64::Crc64;
use super::error::DockerRootError;
use base64::Engine as _;
use hoist_oci::{Algorithm, Digest, Digester};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;

/// Longest line of a tar-split record read (a raw segment holds tar headers,
/// PAX records included, never file contents).
const MAX_LINE: u64 = 16 * 1024 * 1024;

/// tar-split's `storage.FileType`.
const FILE_TYPE: u8 = 1;
/// tar-split's `storage.SegmentType`.
const SEGMENT_TYPE: u8 = 2;

/// One entry as tar-split's `storage.Entry` serialises it (Go encodes `[]byte` as base64).
#[derive(serde::Deserialize)]
struct RawEntry {
    #[serde(rename = "type")]
    kind: u8,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    name_raw: Option<String>,
    #[serde(default)]
    size: i64,
    #[serde(default)]
    payload: Option<String>,
}

/// A decoded tar-split entry.
pub(crate) enum Entry {
    /// Raw tar bytes.
    Segment(Vec<u8>),
    /// A file's content: `size` bytes from the diff directory with this CRC.
    File {
        name: Vec<u8>,
        size: u64,
        crc: [u8; 8],
    },
}

/// The entries of one layer's tar-split record, read one line at a time.
pub(crate) struct Entries {
    chain_id: Digest,
    lines: BufReader<Box<dyn Read + Send>>,
    line: Vec<u8>,
}

impl Entries {
    /// Reads the gzip'd record `file` of layer `chain_id`.
    pub(crate) fn new(chain_id: Digest, file: File) -> Result<Self, DockerRootError> {
        let inflated = hoist_archive::decompress_reader(file, hoist_archive::Compression::Gzip)
            .map_err(|e| bad(&chain_id, format!("cannot inflate: {e}")))?;
        Ok(Entries {
            chain_id,
            lines: BufReader::with_capacity(64 * 1024, inflated),
            line: Vec::new(),
        })
    }

    /// The next entry, or `None` at the end of the record.
    pub(crate) fn next_entry(&mut self) -> Result<Option<Entry>, DockerRootError> {
        loop {
            self.line.clear();
            let n = (&mut self.lines)
                .take(MAX_LINE + 1)
                .read_until(b'\n', &mut self.line)
                .map_err(|e| bad(&self.chain_id, format!("cannot read: {e}")))?;
            if n == 0 {
                return Ok(None);
            }
            if n as u64 > MAX_LINE {
                return Err(bad(
                    &self.chain_id,
                    format!("a line is longer than {MAX_LINE} bytes"),
                ));
            }
            if self.line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let raw: RawEntry = serde_json::from_slice(&self.line)
                .map_err(|e| bad(&self.chain_id, format!("bad entry: {e}")))?;
            return self.decode(raw).map(Some);
        }
    }

    fn decode(&self, raw: RawEntry) -> Result<Entry, DockerRootError> {
        let b64 = |s: &str, what: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| bad(&self.chain_id, format!("bad base64 in {what}: {e}")))
        };
        match raw.kind {
            SEGMENT_TYPE => Ok(Entry::Segment(match &raw.payload {
                Some(p) => b64(p, "a segment")?,
                None => Vec::new(),
            })),
            FILE_TYPE => {
                let name = match (&raw.name_raw, raw.name) {
                    (Some(r), _) => b64(r, "name_raw")?,
                    (None, Some(n)) => n.into_bytes(),
                    (None, None) => return Err(bad(&self.chain_id, "a file entry has no name")),
                };
                let size = u64::try_from(raw.size).map_err(|_| {
                    bad(
                        &self.chain_id,
                        format!("file {:?} has size {}", lossy(&name), raw.size),
                    )
                })?;
                let crc = if size == 0 {
                    [0; 8]
                } else {
                    let p = raw.payload.as_deref().map(|p| b64(p, "a checksum"));
                    match p {
                        Some(Ok(v)) if v.len() == 8 => {
                            let mut c = [0; 8];
                            c.copy_from_slice(&v);
                            c
                        }
                        Some(Err(e)) => return Err(e),
                        _ => {
                            return Err(bad(
                                &self.chain_id,
                                format!("file {:?} has no 8-byte CRC-64", lossy(&name)),
                            ))
                        }
                    }
                };
                Ok(Entry::File { name, size, crc })
            }
            other => Err(bad(&self.chain_id, format!("unknown entry type {other}"))),
        }
    }
}

fn bad(chain_id: &Digest, reason: impl Into<String>) -> DockerRootError {
    DockerRootError::TarSplit {
        chain_id: chain_id.clone(),
        reason: reason.into(),
    }
}

fn lossy(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

/// The length of the tar a record rebuilds, without reading any file.
pub(crate) fn tar_size(mut entries: Entries) -> Result<u64, DockerRootError> {
    let mut total = 0u64;
    while let Some(e) = entries.next_entry()? {
        total = total.saturating_add(match e {
            Entry::Segment(b) => b.len() as u64,
            Entry::File { size, .. } => size,
        });
    }
    Ok(total)
}

enum State {
    /// Between entries.
    Idle,
    /// Handing out raw tar bytes.
    Segment { data: Vec<u8>, pos: usize },
    /// Handing out a file's content.
    File {
        file: File,
        name: Vec<u8>,
        remaining: u64,
        crc: Crc64,
        expected: [u8; 8],
    },
    /// The stream ended and matched its diffID.
    Done,
    /// A read failed; the stream cannot go on, and every later read gives
    /// the same error (a reader that retries must not hide it).
    Failed(DockerRootError),
}

/// A layer's tar rebuilt from its tar-split record and diff directory, as a
/// stream. Every file's size and CRC-64 are checked as it is read, and the
/// whole stream's sha256 against the diffID at the end: the last read fails
/// (with a [`DockerRootError`] inside the `io::Error`, see
/// [`DockerRootError::from_io`]) instead of reporting a clean end.
pub struct LayerTar {
    chain_id: Digest,
    diff_id: Digest,
    entries: Entries,
    files: Beneath,
    state: State,
    digester: Digester,
    count: u64,
}

impl LayerTar {
    pub(crate) fn new(chain_id: Digest, diff_id: Digest, entries: Entries, files: Beneath) -> Self {
        LayerTar {
            chain_id,
            diff_id,
            entries,
            files,
            state: State::Idle,
            digester: Digester::new(Algorithm::Sha256),
            count: 0,
        }
    }

    /// The diffID the stream is checked against.
    pub fn diff_id(&self) -> &Digest {
        &self.diff_id
    }

    fn tampered(&self, name: &[u8], reason: impl Into<String>) -> DockerRootError {
        DockerRootError::Tampered {
            chain_id: self.chain_id.clone(),
            entry: lossy(name),
            reason: reason.into(),
        }
    }

    /// Opens the file a `File` entry names and checks its size.
    fn open(&mut self, name: &[u8], size: u64) -> Result<File, DockerRootError> {
        let mut parts: Vec<&OsStr> = Vec::new();
        for part in name.split(|&b| b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => return Err(self.tampered(name, "its name leaves the layer")),
                p => parts.push(OsStr::from_bytes(p)),
            }
        }
        let file = self.files.open_file(&parts).map_err(|e| {
            let reason = match e.raw_os_error() {
                Some(libc::ENOENT) => "it is missing from the layer's diff directory".to_owned(),
                Some(libc::ELOOP) | Some(libc::ENOTDIR) => {
                    "a symlink or non-directory is on its path in the diff directory; refusing to follow it"
                        .to_owned()
                }
                _ if e.kind() == io::ErrorKind::InvalidInput => {
                    format!("it is not a regular file in the diff directory ({e})")
                }
                _ => format!("cannot open it in the diff directory: {e}"),
            };
            self.tampered(name, reason)
        })?;
        let actual = file
            .metadata()
            .map_err(|e| self.tampered(name, format!("cannot stat it: {e}")))?
            .len();
        if actual != size {
            return Err(self.tampered(
                name,
                format!("its size is {actual} bytes, the tar-split records {size}"),
            ));
        }
        Ok(file)
    }

    /// Moves to the next entry that has bytes, or to the end.
    fn advance(&mut self) -> Result<(), DockerRootError> {
        loop {
            match self.entries.next_entry()? {
                None => {
                    let actual =
                        std::mem::replace(&mut self.digester, Digester::new(Algorithm::Sha256))
                            .finish();
                    if actual != self.diff_id {
                        return Err(DockerRootError::DiffIdMismatch {
                            chain_id: self.chain_id.clone(),
                            expected: self.diff_id.clone(),
                            actual,
                            size: self.count,
                        });
                    }
                    self.state = State::Done;
                    return Ok(());
                }
                Some(Entry::Segment(data)) if data.is_empty() => {}
                Some(Entry::Segment(data)) => {
                    self.state = State::Segment { data, pos: 0 };
                    return Ok(());
                }
                // Directories, links, devices and empty files: nothing to read.
                Some(Entry::File { size: 0, .. }) => {}
                Some(Entry::File { name, size, crc }) => {
                    let file = self.open(&name, size)?;
                    self.state = State::File {
                        file,
                        name,
                        remaining: size,
                        crc: Crc64::new(),
                        expected: crc,
                    };
                    return Ok(());
                }
            }
        }
    }

    fn read_inner(&mut self, buf: &mut [u8]) -> Result<usize, DockerRootError> {
        loop {
            match &mut self.state {
                State::Done | State::Failed(_) => return Ok(0),
                State::Idle => self.advance()?,
                State::Segment { data, pos } => {
                    let n = (data.len() - *pos).min(buf.len());
                    buf[..n].copy_from_slice(&data[*pos..*pos + n]);
                    *pos += n;
                    if *pos == data.len() {
                        self.state = State::Idle;
                    }
                    return Ok(n);
                }
                State::File {
                    file,
                    name,
                    remaining,
                    crc,
                    expected,
                } => {
                    let want = (*remaining).min(buf.len() as u64) as usize;
                    let n = match file.read(&mut buf[..want]) {
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            let name = name.clone();
                            return Err(self.tampered(&name, format!("cannot read it: {e}")));
                        }
                    };
                    if n == 0 {
                        let (name, left) = (name.clone(), *remaining);
                        return Err(self.tampered(
                            &name,
                            format!("it ended {left} bytes early while being read"),
                        ));
                    }
                    crc.update(&buf[..n]);
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        if crc.sum() != *expected {
                            let name = name.clone();
                            return Err(self.tampered(
                                &name,
                                "its content's CRC-64 differs from the one the tar-split records",
                            ));
                        }
                        self.state = State::Idle;
                    }
                    return Ok(n);
                }
            }
        }
    }
}

impl Read for LayerTar {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if let State::Failed(e) = &self.state {
            return Err(io::Error::other(e.again(&self.chain_id)));
        }
        match self.read_inner(buf) {
            Ok(n) => {
                self.digester.update(&buf[..n]);
                self.count += n as u64;
                Ok(n)
            }
            Err(e) => {
                let again = e.again(&self.chain_id);
                self.state = State::Failed(again);
                Err(io::Error::other(e))
            }
        }
    }
}
