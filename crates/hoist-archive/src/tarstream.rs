//! A streaming tar reader and writer with bounded memory.
//!
//! The `tar` crate parses the fields of a 512-byte header for us, but the
//! framing is done here: that lets the reader bound PAX and GNU long-name
//! headers (which the `tar` crate reads whole into memory, however large they
//! claim to be), report truncation with the entry's name, and lets the writer
//! emit PAX records for long names as Docker's Go writer does.

use crate::error::{take_inner, Error, Result};
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use tar::{EntryType, Header, PaxExtensions};

/// The tar block size.
const BLOCK: u64 = 512;
/// The bound on a GNU long name or long link name; Linux's PATH_MAX is 4096.
pub const MAX_LONG_NAME: u64 = 64 * 1024;
/// The bound on one PAX extended header (names, xattrs); generous for xattrs.
pub const MAX_PAX_HEADER: u64 = 1024 * 1024;
/// The PAX record prefix that carries an extended attribute.
const PAX_XATTR: &str = "SCHILY.xattr.";

/// What kind of file a tar entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file with data.
    File,
    /// A directory.
    Dir,
    /// A symbolic link; `Entry::link` is its target.
    Symlink,
    /// A hard link; `Entry::link` is the archive name of the file it links to.
    Hardlink,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// Any other type flag (GNU sparse, volume label…), with its byte.
    Other(u8),
}

/// One tar entry's metadata, as read or to be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The member name exactly as in the archive (not sanitised; see [`crate::sanitize_entry_path`]).
    pub path: PathBuf,
    /// The link target for symlinks and hardlinks.
    pub link: Option<PathBuf>,
    /// The entry type.
    pub kind: EntryKind,
    /// Permission bits, including setuid, setgid and sticky (`0o7777`).
    pub mode: u32,
    /// Owner user ID.
    pub uid: u64,
    /// Owner group ID.
    pub gid: u64,
    /// Modification time, seconds since the epoch (earlier times read as 0).
    pub mtime: u64,
    /// Data size in bytes (0 for everything but files).
    pub size: u64,
    /// Device major number (devices only).
    pub dev_major: u32,
    /// Device minor number (devices only).
    pub dev_minor: u32,
    /// Extended attributes (`SCHILY.xattr.*` PAX records), name and value.
    pub xattrs: Vec<(OsString, Vec<u8>)>,
}

impl Entry {
    /// A new entry of `kind` at `path` with zeroed metadata and mode 0o644 (0o755 for dirs).
    pub fn new(path: impl Into<PathBuf>, kind: EntryKind) -> Self {
        Entry {
            path: path.into(),
            link: None,
            kind,
            mode: if kind == EntryKind::Dir { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            mtime: 0,
            size: 0,
            dev_major: 0,
            dev_minor: 0,
            xattrs: Vec::new(),
        }
    }

    /// The member name for error messages.
    pub fn display_name(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }
}

/// Reads entries from an uncompressed tar stream; `Read` yields the current entry's data.
pub struct TarReader<R> {
    inner: R,
    /// Data bytes of the current entry not yet read.
    remaining: u64,
    /// Padding after the current entry's data, up to the next block.
    padding: u64,
    /// The current entry's name and size, for truncation errors.
    current: Option<(String, u64)>,
    /// How many entries have been returned.
    index: u64,
    /// Set once the end-of-archive marker (or a clean EOF) is seen.
    ended: bool,
    /// Bytes of the stream consumed so far.
    position: u64,
}

impl<R: Read> TarReader<R> {
    /// Reads a tar stream from `inner` (decompress first; see [`crate::decompress_reader`]).
    pub fn new(inner: R) -> Self {
        TarReader {
            inner,
            remaining: 0,
            padding: 0,
            current: None,
            index: 0,
            ended: false,
            position: 0,
        }
    }

    /// Bytes of the stream consumed so far: right after [`TarReader::next_entry`],
    /// the offset of that entry's data in the stream.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Passes over the rest of the current entry (data and padding) by asking
    /// `jump` to advance the inner reader that many bytes, instead of reading
    /// them: for readers over a file, where this is a seek.
    pub fn skip_entry_by(
        &mut self,
        jump: impl FnOnce(&mut R, u64) -> io::Result<()>,
    ) -> Result<()> {
        let left = self.remaining + self.padding;
        jump(&mut self.inner, left).map_err(stream_error)?;
        self.position += left;
        self.remaining = 0;
        self.padding = 0;
        Ok(())
    }

    /// The next entry's metadata, skipping whatever of the previous entry's data was not read.
    ///
    /// `None` at the end of the archive. A stream that ends cleanly on a block
    /// boundary without the end-of-archive marker is accepted, as Go's and
    /// GNU tar's readers do.
    pub fn next_entry(&mut self) -> Result<Option<Entry>> {
        if self.ended {
            return Ok(None);
        }
        let left = self.remaining + self.padding;
        self.skip(left)?;
        self.remaining = 0;
        self.padding = 0;
        self.current = None;

        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax: Option<Vec<u8>> = None;
        let mut block = [0u8; BLOCK as usize];
        loop {
            let pending = long_name.is_some() || long_link.is_some() || pax.is_some();
            let got = self.read_full(&mut block)?;
            if got == 0 && !pending {
                self.ended = true;
                return Ok(None);
            }
            if got < block.len() {
                return Err(Error::Truncated {
                    place: self.place("in a header"),
                });
            }
            if block.iter().all(|&b| b == 0) {
                if pending {
                    return Err(self.corrupt("an extension header is not followed by an entry"));
                }
                self.ended = true;
                return Ok(None);
            }
            // `Header` is a `#[repr(C)]` 512-byte array of byte arrays, so any
            // 512-byte block is a valid header to read fields from.
            let header = Header::from_byte_slice(&block);
            self.verify_checksum(header)?;
            let size = lenient(&header.as_old().size, header.entry_size())
                .map_err(|e| self.corrupt(&format!("bad size field: {e}")))?;
            let typeflag = block[156];
            match typeflag {
                b'x' | b'g' | b'L' | b'K' => {
                    let limit = if matches!(typeflag, b'L' | b'K') {
                        MAX_LONG_NAME
                    } else {
                        MAX_PAX_HEADER
                    };
                    if size > limit {
                        return Err(Error::HeaderTooLarge {
                            kind: typeflag as char,
                            index: self.index + 1,
                            size,
                            limit,
                        });
                    }
                    let data = self.read_extension(size)?;
                    match typeflag {
                        b'x' => pax = Some(data),
                        // Global PAX headers set defaults for the rest of the
                        // archive; layer writers do not use them and neither
                        // Docker nor containerd honours them, so they are skipped.
                        b'g' => {}
                        b'L' => long_name = Some(trim_nuls(data)),
                        _ => long_link = Some(trim_nuls(data)),
                    }
                }
                _ => {
                    let entry = self.build_entry(header, size, long_name, long_link, pax)?;
                    self.index += 1;
                    // Every type's data is framed by its size (PAX `size` wins
                    // over the header), even where the type has no use for data
                    // (a hardlink with a size, as some writers emit): skipping
                    // by the declared size keeps the stream in step.
                    self.remaining = entry.size;
                    self.padding = padding(self.remaining);
                    self.current = Some((entry.display_name(), self.remaining));
                    return Ok(Some(entry));
                }
            }
        }
    }

    /// Reads to the end of the stream and gives the inner reader back.
    ///
    /// Hashing a layer must cover every byte, including the end-of-archive
    /// blocks and any padding after them, and a decompressor only checks its
    /// trailer (gzip CRC) when read to the end.
    pub fn finish(mut self) -> Result<R> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match self.inner.read(&mut buf) {
                Ok(0) => return Ok(self.inner),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(stream_error(e)),
            }
        }
    }

    /// A mutable reference to the inner reader.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    fn build_entry(
        &self,
        header: &Header,
        size: u64,
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
        pax: Option<Vec<u8>>,
    ) -> Result<Entry> {
        let mut path = long_name.unwrap_or_else(|| header.path_bytes().into_owned());
        let mut link = long_link.or_else(|| header.link_name_bytes().map(|c| c.into_owned()));
        let mut size = size;
        let old = header.as_old();
        let field = |name: &str, raw: &[u8], r: io::Result<u64>| {
            lenient(raw, r).map_err(|e| self.corrupt(&format!("bad {name} field: {e}")))
        };
        let mut uid = field("uid", &old.uid, header.uid())?;
        let mut gid = field("gid", &old.gid, header.gid())?;
        let mut mtime = field("mtime", &old.mtime, header.mtime())?;
        let mode = field("mode", &old.mode, header.mode().map(u64::from))? as u32 & 0o7777;
        let dev_major = header.device_major().ok().flatten().unwrap_or(0);
        let dev_minor = header.device_minor().ok().flatten().unwrap_or(0);
        let mut xattrs = Vec::new();
        if let Some(pax) = &pax {
            for record in PaxExtensions::new(pax) {
                let record = record.map_err(|e| self.corrupt(&format!("bad PAX record: {e}")))?;
                let key = record.key_bytes();
                let value = record.value_bytes();
                let number = |what: &str| -> Result<u64> {
                    std::str::from_utf8(value)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                        .ok_or_else(|| self.corrupt(&format!("bad PAX {what} {value:?}")))
                };
                match key {
                    b"path" => path = value.to_vec(),
                    b"linkpath" => link = Some(value.to_vec()),
                    b"size" => size = number("size")?,
                    b"uid" => uid = number("uid")?,
                    b"gid" => gid = number("gid")?,
                    b"mtime" => mtime = parse_pax_time(value).unwrap_or(mtime),
                    _ => {
                        if let Some(name) = key.strip_prefix(PAX_XATTR.as_bytes()) {
                            xattrs.push((OsString::from_vec(name.to_vec()), value.to_vec()));
                        }
                    }
                }
            }
        }
        let typeflag = header.as_bytes()[156];
        let kind = match typeflag {
            // Pre-POSIX archives mark directories with a trailing slash only.
            b'0' | b'\0' | b'7' if path.ends_with(b"/") => EntryKind::Dir,
            b'0' | b'\0' | b'7' => EntryKind::File,
            b'1' => EntryKind::Hardlink,
            b'2' => EntryKind::Symlink,
            b'3' => EntryKind::CharDevice,
            b'4' => EntryKind::BlockDevice,
            b'5' => EntryKind::Dir,
            b'6' => EntryKind::Fifo,
            other => EntryKind::Other(other),
        };
        if !matches!(kind, EntryKind::Symlink | EntryKind::Hardlink) {
            link = None;
        }
        Ok(Entry {
            path: PathBuf::from(OsString::from_vec(path)),
            link: link.map(|l| PathBuf::from(OsString::from_vec(l))),
            kind,
            mode,
            uid,
            gid,
            mtime,
            size,
            dev_major,
            dev_minor,
            xattrs,
        })
    }

    fn verify_checksum(&self, header: &Header) -> Result<()> {
        let stored = header
            .cksum()
            .map_err(|_| self.corrupt("not a tar header (bad checksum field)"))?;
        let bytes = header.as_bytes();
        let (mut unsigned, mut signed) = (0u32, 0i32);
        for (i, &b) in bytes.iter().enumerate() {
            // The checksum is computed with its own field taken as spaces.
            let b = if (148..156).contains(&i) { b' ' } else { b };
            unsigned += u32::from(b);
            signed += i32::from(b as i8);
        }
        // Some old writers summed signed chars; accept either, as GNU tar does.
        if stored == unsigned || i64::from(stored) == i64::from(signed) {
            Ok(())
        } else {
            Err(self.corrupt("header checksum mismatch (not a tar stream, or damaged)"))
        }
    }

    fn read_extension(&mut self, size: u64) -> Result<Vec<u8>> {
        // `size` is bounded by the caller, so this allocation is too.
        let len = usize::try_from(size).map_err(|_| self.corrupt("extension header too large"))?;
        let mut data = vec![0u8; len];
        if self.read_full(&mut data)? < len {
            return Err(Error::Truncated {
                place: self.place("in an extension header"),
            });
        }
        self.skip(padding(size))?;
        Ok(data)
    }

    /// Reads until `buf` is full or the stream ends; returns how much was read.
    fn read_full(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => {
                    got += n;
                    self.position += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(stream_error(e)),
            }
        }
        Ok(got)
    }

    fn skip(&mut self, mut amount: u64) -> Result<()> {
        let mut buf = [0u8; 8192];
        while amount > 0 {
            let want = amount.min(buf.len() as u64) as usize;
            let got = self.read_full(&mut buf[..want])?;
            if got < want {
                return Err(Error::Truncated {
                    place: self.place("inside an entry"),
                });
            }
            amount -= got as u64;
        }
        Ok(())
    }

    fn place(&self, what: &str) -> String {
        match &self.current {
            Some((name, size)) => format!("{what} (in or after entry {name:?} of {size} bytes)"),
            None if self.index == 0 => format!("{what} at the start"),
            None => format!("{what} after entry number {}", self.index),
        }
    }

    fn corrupt(&self, detail: &str) -> Error {
        Error::Corrupt {
            what: format!("tar header after entry number {}", self.index),
            detail: detail.to_owned(),
        }
    }
}

impl<R: Read> Read for TarReader<R> {
    /// Reads the current entry's data; `Ok(0)` at its end.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = match self.inner.read(&mut buf[..want]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => return Err(stream_error(e).into_io()),
        };
        if n == 0 {
            let (name, size) = self.current.clone().unwrap_or_default();
            return Err(Error::Truncated {
                place: format!(
                    "inside entry {name:?} ({} of {size} bytes present)",
                    size - self.remaining
                ),
            }
            .into_io());
        }
        self.remaining -= n as u64;
        self.position += n as u64;
        Ok(n)
    }
}

/// Classifies an error from the stream under the tar reader (usually a decompressor).
fn stream_error(e: io::Error) -> Error {
    match take_inner(e) {
        Ok(ours) => ours,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Error::Truncated {
            place: format!("where the compressed stream ends early ({e})"),
        },
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput
            ) =>
        {
            Error::Corrupt {
                what: "compressed layer stream".into(),
                detail: e.to_string(),
            }
        }
        Err(e) => Error::Io {
            context: "reading the tar stream".into(),
            source: e,
        },
    }
}

/// Reads an empty numeric field (all NULs or spaces) as 0, as Go's and GNU
/// tar's readers do; some writers leave unused fields blank.
fn lenient(raw: &[u8], parsed: io::Result<u64>) -> io::Result<u64> {
    if raw.iter().all(|&b| b == 0 || b == b' ') {
        Ok(0)
    } else {
        parsed
    }
}

/// Bytes of padding after `size` bytes of data, up to the next block.
pub fn padding(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

fn trim_nuls(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

/// Parses a PAX time (`1234`, `1234.5678`, `-12.5`) into whole seconds, clamping before-epoch to 0.
fn parse_pax_time(value: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(value).ok()?;
    let whole = s.split('.').next()?;
    if whole.starts_with('-') {
        return Some(0);
    }
    whole.parse().ok()
}

/// Writes tar entries (USTAR headers, PAX records where USTAR cannot say it).
pub struct TarWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
}

/// The largest value a USTAR 8-byte numeric field (uid, gid) holds in octal.
const USTAR_ID_MAX: u64 = 0o7_777_777;
/// The largest size a USTAR 12-byte numeric field holds in octal.
const USTAR_SIZE_MAX: u64 = 0o77_777_777_777;

impl<W: Write> TarWriter<W> {
    /// Writes a tar stream into `out`.
    pub fn new(out: W) -> Self {
        TarWriter {
            out,
            buf: vec![0u8; 256 * 1024],
        }
    }

    /// Appends `entry`; for files, `data` must yield exactly `entry.size` bytes.
    ///
    /// Directory names get a trailing `/`, as Docker writes them. The entry's
    /// name is used as given: callers build it from a tree, not from input.
    pub fn append(&mut self, entry: &Entry, data: impl Read) -> Result<()> {
        let header = entry_header(entry)?;
        self.write_raw(&header, entry.path.as_os_str().as_bytes())?;
        if entry.kind == EntryKind::File && entry.size > 0 {
            self.copy_data(data, entry.size, &entry.path)?;
        }
        Ok(())
    }

    /// Writes the end-of-archive marker and gives the writer back, flushed.
    pub fn finish(mut self) -> Result<W> {
        self.write_raw(&[0u8; 2 * BLOCK as usize], b"end of archive")?;
        self.out
            .flush()
            .map_err(|e| Error::io(e, || "flushing the tar stream".into()))?;
        Ok(self.out)
    }

    /// A mutable reference to the inner writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    fn copy_data(&mut self, mut data: impl Read, size: u64, path: &Path) -> Result<()> {
        let mut left = size;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = match data.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(Error::SizeMismatch {
                        path: path.to_owned(),
                        expected: size,
                        got: size - left,
                    })
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(e, || format!("reading the data of {path:?}"))),
            };
            self.out
                .write_all(&self.buf[..n])
                .map_err(|e| Error::io(e, || "writing the tar stream".into()))?;
            left -= n as u64;
        }
        let pad = padding(size) as usize;
        self.write_raw(&[0u8; BLOCK as usize][..pad], path.as_os_str().as_bytes())
    }

    fn write_raw(&mut self, bytes: &[u8], what: &[u8]) -> Result<()> {
        self.out.write_all(bytes).map_err(|e| {
            Error::io(e, || {
                format!("writing tar entry {:?}", OsStr::from_bytes(what))
            })
        })
    }
}

/// The header blocks [`TarWriter::append`] writes for `entry` (a PAX
/// extended header first where USTAR cannot say it), for writers that move
/// the data themselves (in-kernel copies); the data then takes
/// [`padding`]`(entry.size)` zero bytes after it.
pub fn entry_header(entry: &Entry) -> Result<Vec<u8>> {
    let mut name = entry.path.as_os_str().as_bytes().to_vec();
    if entry.kind == EntryKind::Dir && !name.ends_with(b"/") {
        name.push(b'/');
    }
    let mut header = Header::new_ustar();
    let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
    set_name(&mut header, &name, &mut pax);
    let size = if entry.kind == EntryKind::File {
        entry.size
    } else {
        0
    };
    if let Some(link) = &entry.link {
        let link = link.as_os_str().as_bytes();
        if link.len() > 100 {
            pax.push(("linkpath".into(), link.to_vec()));
        }
        let n = link.len().min(100);
        header.as_old_mut().linkname[..n].copy_from_slice(&link[..n]);
    }
    header.set_mode(entry.mode & 0o7777);
    for (key, value, set) in [
        ("uid", entry.uid, Header::set_uid as fn(&mut Header, u64)),
        ("gid", entry.gid, Header::set_gid),
    ] {
        if value > USTAR_ID_MAX {
            pax.push((key.into(), value.to_string().into_bytes()));
            set(&mut header, 0);
        } else {
            set(&mut header, value);
        }
    }
    if size > USTAR_SIZE_MAX {
        pax.push(("size".into(), size.to_string().into_bytes()));
    }
    header.set_size(size);
    header.set_mtime(entry.mtime.min(USTAR_SIZE_MAX));
    header.set_entry_type(match entry.kind {
        EntryKind::File => EntryType::Regular,
        EntryKind::Dir => EntryType::Directory,
        EntryKind::Symlink => EntryType::Symlink,
        EntryKind::Hardlink => EntryType::Link,
        EntryKind::CharDevice => EntryType::Char,
        EntryKind::BlockDevice => EntryType::Block,
        EntryKind::Fifo => EntryType::Fifo,
        EntryKind::Other(b) => EntryType::new(b),
    });
    if matches!(entry.kind, EntryKind::CharDevice | EntryKind::BlockDevice) {
        let ctx = |e: io::Error| Error::io(e, || format!("device numbers of {name:?}"));
        header.set_device_major(entry.dev_major).map_err(ctx)?;
        header.set_device_minor(entry.dev_minor).map_err(ctx)?;
    }
    let mut xattrs: Vec<_> = entry.xattrs.iter().collect();
    xattrs.sort();
    for (key, value) in xattrs {
        let key = format!("{PAX_XATTR}{}", key.to_string_lossy());
        pax.push((key, value.clone()));
    }
    header.set_cksum();

    let mut out = Vec::with_capacity(2 * BLOCK as usize);
    if !pax.is_empty() {
        pax_blocks(&mut out, &name, &pax);
    }
    out.extend_from_slice(header.as_bytes());
    Ok(out)
}

fn pax_blocks(out: &mut Vec<u8>, name: &[u8], records: &[(String, Vec<u8>)]) {
    let mut body = Vec::new();
    for (key, value) in records {
        // A record is "LEN KEY=VALUE\n" where LEN counts the whole record,
        // its own digits included: grow LEN until it is self-consistent.
        let rest = key.len() + value.len() + 3;
        let mut len = rest + 1;
        while len != rest + len.to_string().len() {
            len = rest + len.to_string().len();
        }
        body.extend_from_slice(format!("{len} {key}=").as_bytes());
        body.extend_from_slice(value);
        body.push(b'\n');
    }
    // Name the extended header as Go's archive/tar does, so that an old
    // reader that ignores PAX extracts it to a harmless, recognisable place.
    let base = name
        .trim_ascii_end()
        .rsplit(|&b| b == b'/')
        .find(|s| !s.is_empty())
        .unwrap_or(b"entry");
    let mut pax_name = b"PaxHeaders.0/".to_vec();
    pax_name.extend_from_slice(base);
    pax_name.truncate(100);
    let mut header = Header::new_ustar();
    header.as_old_mut().name[..pax_name.len()].copy_from_slice(&pax_name);
    header.set_mode(0o644);
    header.set_size(body.len() as u64);
    header.set_mtime(0);
    header.set_entry_type(EntryType::XHeader);
    header.set_cksum();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&body);
    out.resize(out.len() + padding(body.len() as u64) as usize, 0);
}

/// Puts `name` in the header: the name field, the USTAR prefix split, or a PAX record.
fn set_name(header: &mut Header, name: &[u8], pax: &mut Vec<(String, Vec<u8>)>) {
    if name.len() <= 100 {
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        return;
    }
    // USTAR can hold a 155-byte prefix and a 100-byte name split at a '/'.
    // The trailing '/' of a directory must stay in the name part.
    let body = name.strip_suffix(b"/").unwrap_or(name);
    let split = (1..body.len())
        .rev()
        .filter(|&i| body[i] == b'/')
        .find(|&i| i <= 155 && name.len() - i - 1 <= 100);
    if let (Some(i), Some(ustar)) = (split, header.as_ustar_mut()) {
        ustar.prefix[..i].copy_from_slice(&name[..i]);
        ustar.name[..name.len() - i - 1].copy_from_slice(&name[i + 1..]);
        return;
    }
    pax.push(("path".into(), name.to_vec()));
    header.as_old_mut().name.copy_from_slice(&name[..100]);
}

/// A layer's content size as Docker's overlay2 driver reports it (`docker
/// images`/`history` SIZE): what its unpacked files take by `lstat` size,
/// each inode once (regular files' bytes, symlinks' target lengths; hard links
/// and directories nothing), not the tar's bytes. Reads the uncompressed tar
/// to its end.
pub fn content_size<R: Read>(tar: R) -> Result<u64> {
    let mut r = TarReader::new(tar);
    let mut total = 0u64;
    while let Some(e) = r.next_entry()? {
        total = total.saturating_add(crate::content::entry_content_size(&e));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_size_counts_file_bytes_not_tar_bytes() {
        let mut f = Entry::new("etc/motd", EntryKind::File);
        f.size = 47;
        let mut link = Entry::new("etc/hard", EntryKind::Hardlink);
        link.link = Some("etc/motd".into());
        let mut sym = Entry::new("etc/sym", EntryKind::Symlink);
        sym.link = Some("motd".into());
        let dir = Entry::new("etc", EntryKind::Dir);
        let tar = write(&[(dir, b""), (f, &[b'x'; 47]), (link, b""), (sym, b"")]);
        assert!(tar.len() >= 2048);
        assert_eq!(content_size(tar.as_slice()).unwrap(), 47 + 4);
    }

    fn write(entries: &[(Entry, &[u8])]) -> Vec<u8> {
        let mut w = TarWriter::new(Vec::new());
        for (e, data) in entries {
            w.append(e, *data).unwrap();
        }
        w.finish().unwrap()
    }

    fn read_all(bytes: &[u8]) -> Vec<(Entry, Vec<u8>)> {
        let mut r = TarReader::new(bytes);
        let mut out = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            let mut data = Vec::new();
            r.read_to_end(&mut data).unwrap();
            out.push((e, data));
        }
        out
    }

    #[test]
    fn round_trips_long_names_links_ids_and_xattrs() {
        let long_dir = format!("{}/{}", "d".repeat(120), "e".repeat(90));
        let very_long = "f".repeat(300);
        let mut file = Entry::new(format!("{long_dir}/file"), EntryKind::File);
        file.size = 5;
        file.uid = 1 << 30;
        file.gid = 7;
        file.mtime = 1_700_000_000;
        file.mode = 0o4755;
        file.xattrs = vec![("user.k".into(), b"v\0w".to_vec())];
        let mut link = Entry::new(very_long.clone(), EntryKind::Symlink);
        link.link = Some("t".repeat(200).into());
        let dir = Entry::new(long_dir.clone(), EntryKind::Dir);
        let bytes = write(&[(dir, b""), (file.clone(), b"hello"), (link.clone(), b"")]);
        let got = read_all(&bytes);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].0.path, PathBuf::from(format!("{long_dir}/")));
        assert_eq!(got[0].0.kind, EntryKind::Dir);
        assert_eq!(got[1].0, file);
        assert_eq!(got[1].1, b"hello");
        assert_eq!(got[2].0, link);
        // The standard library's reader agrees on the same bytes.
        let mut ar = tar::Archive::new(&bytes[..]);
        let names: Vec<_> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().into_owned())
            .collect();
        assert_eq!(names[1], PathBuf::from(format!("{long_dir}/file")));
        assert_eq!(names[2], PathBuf::from(very_long));
    }

    #[test]
    fn reads_what_the_tar_crate_writes() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o600);
        h.set_entry_type(EntryType::Regular);
        b.append_data(&mut h, "g".repeat(150), &b"abc"[..]).unwrap();
        let bytes = b.into_inner().unwrap();
        let got = read_all(&bytes);
        assert_eq!(got[0].0.path, PathBuf::from("g".repeat(150)));
        assert_eq!(got[0].1, b"abc");
    }

    #[test]
    fn truncated_data_names_the_entry() {
        let mut e = Entry::new("big", EntryKind::File);
        e.size = 2000;
        let bytes = write(&[(e, &[1u8; 2000])]);
        let mut r = TarReader::new(&bytes[..1000]);
        r.next_entry().unwrap().unwrap();
        let err = Error::io(r.read_to_end(&mut Vec::new()).unwrap_err(), String::new);
        assert!(matches!(err, Error::Truncated { .. }), "{err}");
        assert!(err.to_string().contains("\"big\""), "{err}");
    }

    #[test]
    fn giant_extension_headers_are_refused_before_reading() {
        let mut h = Header::new_ustar();
        h.set_entry_type(EntryType::XHeader);
        h.set_size(1 << 40);
        h.set_cksum();
        let mut r = TarReader::new(h.as_bytes().as_slice());
        assert!(matches!(
            r.next_entry(),
            Err(Error::HeaderTooLarge { kind: 'x', .. })
        ));
    }

    #[test]
    fn bad_checksum_is_corrupt() {
        let mut h = Header::new_ustar();
        h.set_path("x").unwrap();
        h.set_cksum();
        let mut bytes = h.as_bytes().to_vec();
        bytes[0] = b'y';
        assert!(matches!(
            TarReader::new(&bytes[..]).next_entry(),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn pax_records_are_self_consistent() {
        for n in [1usize, 5, 90, 95, 96, 97, 98, 990, 995, 996, 9990] {
            let name = "n".repeat(n + 101);
            let bytes = write(&[(Entry::new(name.clone(), EntryKind::Fifo), b"")]);
            assert_eq!(read_all(&bytes)[0].0.path, PathBuf::from(name));
        }
    }
}
