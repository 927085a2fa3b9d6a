//! `/v2/<name>/blobs/<digest>`: get (ranges, streamed from memory maps),
//! head and delete.

use super::app::App;
use super::mirror;
use crate::error::Error;
use crate::names::RepoName;
use crate::plumbing::{blocking, finish, respond, ApiResult, ChannelBody, RequestError};
use crate::proxy::BlobAnswer;
use crate::store::BlobInfo;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderMap, StatusCode};
use hoist_oci::Digest;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;
use tokio::sync::mpsc;

/// Blobs up to this size are read in one go; larger ones are streamed.
const SMALL_BLOB: u64 = 256 << 10;

/// Bytes handed to the socket at once when streaming a blob from disk.
const CHUNK: usize = 4 << 20;

/// Parses a byte range request (`bytes=a-b`, `bytes=a-`, `bytes=-n`) against
/// `size`. `Ok(None)`: serve everything; `Err`: unsatisfiable.
fn parse_range(h: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(v) = h.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        // Multipart ranges: not worth it for blobs; serve the whole thing.
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (size.saturating_sub(n), size.saturating_sub(1))
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end: u64 = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            b.parse::<u64>()
                .map_err(|_| ())?
                .min(size.saturating_sub(1))
        };
        (start, end)
    };
    if size == 0 || start >= size || end < start {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// A blob or a range of it (filled from the upstream when mirrored);
/// `head`: the headers only.
pub(crate) async fn get_blob(
    app: App,
    name: RepoName,
    d: Digest,
    req: Request,
    head: bool,
) -> ApiResult {
    let store = app.store.clone();
    // A HEAD is how a pushing client decides to skip an upload and reference
    // the blob from its manifest later: refresh the blob's mtime so a
    // garbage collection in between keeps it (see `gc`).
    let claim = head && !app.read_only;
    let (n2, d2) = (name.clone(), d.clone());
    let found = blocking(move || {
        let info = match store.blob_stat(&n2, &d2) {
            Err(Error::BlobUnknown(_)) => return Ok(None),
            r => r?,
        };
        if claim {
            store.claim_blob(&d2)?;
        }
        Ok(Some(info))
    })
    .await?;
    let info: BlobInfo = match found {
        Some(info) => info,
        None => {
            let target = app.mirror(&name).await?;
            let Some((p, t)) = target else {
                return Err(Error::BlobUnknown(d).into());
            };
            match p.blob(&app.store, &t, &name, &d, head).await? {
                BlobAnswer::Local(info) => info,
                BlobAnswer::Upstream { size } => return mirror::upstream_head(&d, size),
                BlobAnswer::Filling(fill) => return mirror::filling(&d, fill),
            }
        }
    };
    let size = info.size;
    let range = match parse_range(req.headers(), size) {
        Ok(r) => r,
        Err(()) => {
            return Err(RequestError::RangeNotSatisfiable(size).into());
        }
    };
    let (status, start, len) = match range {
        Some((a, b)) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        None => (StatusCode::OK, 0, size),
    };
    let mut b = respond(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, len)
        .header(header::ACCEPT_RANGES, "bytes")
        .header("Docker-Content-Digest", info.digest.to_string())
        .header(header::ETAG, format!("\"{}\"", info.digest))
        .header(header::CACHE_CONTROL, "max-age=31536000");
    if status == StatusCode::PARTIAL_CONTENT {
        b = b.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", start + len - 1),
        );
    }
    if head || len == 0 {
        return finish(b, Body::empty());
    }
    if !app.store.is_local() {
        let (store, info) = (app.store.clone(), info.clone());
        let stream = blocking(move || store.blob_stream(&info, start, len)).await?;
        if let Some(stream) = stream {
            return finish(b, Body::from_stream(stream));
        }
    }
    let path = info.path.clone();
    if len <= SMALL_BLOB {
        let bytes = blocking(move || read_range(&path, start, len)).await?;
        return finish(b, Body::from(bytes));
    }
    finish(b, Body::new(file_body(path, start, len)))
}

fn read_range(path: &std::path::Path, start: u64, len: u64) -> crate::Result<Bytes> {
    use crate::error::IoContext;
    let mut f = std::fs::File::open(path).ctx("open", path)?;
    f.seek(SeekFrom::Start(start)).ctx("seek", path)?;
    let mut buf = Vec::with_capacity(len as usize);
    f.take(len).read_to_end(&mut buf).ctx("read", path)?;
    if (buf.len() as u64) < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "blob shorter than its size",
        ))
        .ctx("read", path);
    }
    Ok(Bytes::from(buf))
}

/// A response body over memory maps of a blob file, one per chunk. The
/// socket is handed the mapped pages, so the kernel copies page cache
/// straight into the socket without a read into a user buffer first (hyper
/// cannot `sendfile`). A blocking task maps and faults in each chunk a couple
/// of chunks ahead of the socket, so a cold disk stalls that task and never an
/// async worker; a chunk is unmapped once sent, so resident memory stays a few
/// chunks whatever the blob's size.
///
/// Mapping is sound here because a blob file is immutable once it has its
/// digest name: it is written elsewhere and renamed in, and gc unlinks it,
/// which leaves an existing map intact; nothing truncates it.
fn file_body(path: PathBuf, start: u64, len: u64) -> ChannelBody {
    let (tx, rx) = mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        let f = match open_range(&path, start, len) {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        let mut off = start;
        let end = start + len;
        while off < end {
            let n = (end - off).min(CHUNK as u64);
            let chunk = match map_chunk(&f, off, n) {
                Ok(m) => Bytes::from_owner(m),
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            // Touch one byte per page: the fault (and any disk read)
            // happens on this blocking thread, not in the socket write.
            for i in (0..chunk.len()).step_by(4096) {
                std::hint::black_box(chunk[i]);
            }
            off += n;
            // The receiver is gone when the client hung up.
            if tx.blocking_send(Ok(chunk)).is_err() {
                return;
            }
        }
    });
    ChannelBody {
        rx,
        remaining: Some(len),
    }
}

/// Opens a blob file that must hold `start + len` bytes.
fn open_range(path: &std::path::Path, start: u64, len: u64) -> io::Result<std::fs::File> {
    let f = std::fs::File::open(path)?;
    let have = f.metadata()?.len();
    if have < start.saturating_add(len) {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "blob {} is {have} bytes, shorter than its size",
                path.display()
            ),
        ));
    }
    Ok(f)
}

/// Maps `len` bytes of `f` from `off`, read-only.
fn map_chunk(f: &std::fs::File, off: u64, len: u64) -> io::Result<memmap2::Mmap> {
    let len = usize::try_from(len).map_err(io::Error::other)?;
    // SAFETY: see `file_body`: blob files are never modified or truncated
    // once they carry their digest name.
    unsafe { memmap2::MmapOptions::new().offset(off).len(len).map(f) }
}

/// Deletes a blob from a repository.
pub(crate) async fn delete_blob(app: App, name: RepoName, d: Digest) -> ApiResult {
    let store = app.store.clone();
    blocking(move || store.delete_blob(&name, &d)).await?;
    finish(
        respond(StatusCode::ACCEPTED).header(header::CONTENT_LENGTH, "0"),
        Body::empty(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let mut h = HeaderMap::new();
        let mut r = |v: &str, size| {
            h.insert(header::RANGE, v.parse().unwrap());
            parse_range(&h, size)
        };
        assert_eq!(r("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(r("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(r("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(r("bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(r("bytes=100-", 100), Err(()));
        assert_eq!(r("bytes=5-2", 100), Err(()));
        assert_eq!(r("bytes=x-2", 100), Err(()));
        assert_eq!(r("items=0-1", 100), Ok(None));
    }
}
