//! A layer's content size as Docker counts it (`docker images`/`history`
//! SIZE): the bytes its unpacked files take, not the tar's bytes.

use crate::tarstream::{Entry, EntryKind, TarReader};
use crate::{compression, Compression, Result};
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

/// What one entry adds to the content size, as overlay2's `lstat` walk
/// counts it: a regular file its bytes, a symlink its target's length, a
/// hard link or directory nothing (each inode once).
pub fn entry_content_size(e: &Entry) -> u64 {
    match e.kind {
        EntryKind::File => e.size,
        EntryKind::Symlink => e.link.as_ref().map_or(0, |l| l.as_os_str().len() as u64),
        _ => 0,
    }
}

/// The content size of a layer blob in a file, compressed or not. An
/// uncompressed layer is walked header to header, seeking over the files'
/// data, so even a large layer costs a few reads; a compressed one is
/// decompressed once.
pub fn layer_file_content_size(mut file: File) -> Result<u64> {
    let mut head = [0u8; 8];
    let io = |what: &'static str| move |e| crate::Error::io(e, || what.to_owned());
    let n = file
        .read_at(&mut head, 0)
        .map_err(io("reading a layer's first bytes"))?;
    // From the start, wherever the caller left the cursor.
    file.seek(SeekFrom::Start(0))
        .map_err(io("rewinding a layer file"))?;
    if compression::detect(&head[..n]) != Compression::None {
        let (_, tar) =
            compression::decompress_auto(file).map_err(io("opening a compressed layer"))?;
        return crate::tarstream::content_size(tar);
    }
    // Small: after each seek the buffer refills, and only a header is wanted.
    let mut r = TarReader::new(BufReader::with_capacity(8 << 10, file));
    let mut total = 0u64;
    while let Some(e) = r.next_entry()? {
        total = total.saturating_add(entry_content_size(&e));
        r.skip_entry_by(|b, n| {
            let n = i64::try_from(n).map_err(std::io::Error::other)?;
            b.seek_relative(n)
        })?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TarWriter;
    use std::io::{Read, Write};

    fn layer() -> Vec<u8> {
        let mut w = TarWriter::new(Vec::new());
        let mut f = Entry::new("etc/motd", EntryKind::File);
        f.size = 47;
        w.append(&f, &[b'x'; 47][..]).unwrap();
        let mut big = Entry::new("big", EntryKind::File);
        big.size = 100_000;
        w.append(&big, std::io::repeat(7).take(100_000)).unwrap();
        let mut link = Entry::new("etc/hard", EntryKind::Hardlink);
        link.link = Some("etc/motd".into());
        w.append(&link, &b""[..]).unwrap();
        let mut sym = Entry::new("etc/sym", EntryKind::Symlink);
        sym.link = Some("motd".into());
        w.append(&sym, &b""[..]).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn plain_and_gzip_layer_files_give_the_same_content_size() {
        let tar = layer();
        let plain = tempfile::tempfile().unwrap();
        (&plain).write_all(&tar).unwrap();
        assert_eq!(layer_file_content_size(plain).unwrap(), 47 + 100_000 + 4);
        let gz = tempfile::tempfile().unwrap();
        let mut enc = flate2::write::GzEncoder::new(&gz, flate2::Compression::fast());
        enc.write_all(&tar).unwrap();
        enc.finish().unwrap();
        assert_eq!(layer_file_content_size(gz).unwrap(), 47 + 100_000 + 4);
    }
}
