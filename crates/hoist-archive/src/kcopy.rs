//! Copying bytes between files inside the kernel: `copy_file_range` (which
//! reflinks where the filesystem can), else `sendfile` (file to pipe or file),
//! else a plain buffered copy. Blobs move through load and save this way
//! without passing through user space.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

/// Bytes moved per system call; writeback is started behind each step.
const STEP: u64 = 32 << 20;
/// Buffer of the user-space fallback.
const BUF: usize = 1 << 20;

fn is_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EXDEV | libc::ENOSYS | libc::EINVAL | libc::EOPNOTSUPP | libc::EBADF)
    )
}

/// Copies `len` bytes at `offset` of `src` to `dst` at its current position.
/// When `dst` is a regular file, writeback of what was copied is started as
/// the copy goes, so a final fsync has little left to wait for.
pub fn copy_range(src: &File, offset: u64, dst: &File, len: u64) -> io::Result<()> {
    let (sfd, dfd) = (src.as_raw_fd(), dst.as_raw_fd());
    // SAFETY: lseek on a descriptor we borrow; -1 (a pipe) just means no writeback hints.
    let mut out_pos = unsafe { libc::lseek(dfd, 0, libc::SEEK_CUR) };
    let mut off_in = offset as libc::loff_t;
    let mut left = len;
    let mut use_cfr = true;
    while left > 0 {
        let step = left.min(STEP) as usize;
        // SAFETY: both descriptors stay open; the kernel updates off_in.
        let n = unsafe {
            if use_cfr {
                libc::copy_file_range(sfd, &mut off_in, dfd, std::ptr::null_mut(), step, 0)
            } else {
                libc::sendfile(dfd, sfd, &mut off_in, step)
            }
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if is_unsupported(&e) && use_cfr {
                use_cfr = false;
                continue;
            }
            if is_unsupported(&e) {
                break;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "source file ended before the expected length",
            ));
        }
        if out_pos >= 0 {
            // SAFETY: a writeback hint on a regular file we borrow.
            unsafe {
                libc::sync_file_range(dfd, out_pos, n as libc::loff_t, libc::SYNC_FILE_RANGE_WRITE);
            }
            out_pos += n as libc::loff_t;
        }
        left -= n as u64;
    }
    if left > 0 {
        let mut buf = vec![0u8; BUF];
        let mut w: &File = dst;
        while left > 0 {
            let want = buf.len().min(left as usize);
            let n = src.read_at(&mut buf[..want], off_in as u64)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "source file ended before the expected length",
                ));
            }
            w.write_all(&buf[..n])?;
            off_in += n as libc::loff_t;
            left -= n as u64;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom};

    #[test]
    fn copies_a_range_between_files_and_into_a_pipe() {
        let dir = tempfile::tempdir().unwrap();
        let src_path = dir.path().join("src");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&src_path, &data).unwrap();
        let src = File::open(&src_path).unwrap();
        let mut dst = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("dst"))
            .unwrap();
        dst.write_all(b"head").unwrap();
        copy_range(&src, 10, &dst, 2_000_000).unwrap();
        dst.seek(SeekFrom::Start(0)).unwrap();
        let mut got = Vec::new();
        dst.read_to_end(&mut got).unwrap();
        assert_eq!(&got[..4], b"head");
        assert_eq!(&got[4..], &data[10..2_000_010]);

        let (mut rd, wr) = std::io::pipe().unwrap();
        let t = std::thread::spawn(move || {
            let mut v = Vec::new();
            rd.read_to_end(&mut v).unwrap();
            v
        });
        let wr = File::from(std::os::fd::OwnedFd::from(wr));
        copy_range(&src, 5, &wr, 100_000).unwrap();
        drop(wr);
        assert_eq!(t.join().unwrap(), &data[5..100_005]);
    }

    #[test]
    fn short_source_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, b"abc").unwrap();
        let src = File::open(&p).unwrap();
        let dst = File::create(dir.path().join("d")).unwrap();
        assert!(copy_range(&src, 0, &dst, 10).is_err());
    }
}
