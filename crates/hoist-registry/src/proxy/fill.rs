//! The fill: one upstream fetch of a blob shared by every request that
//! wants it. The bytes go to a new upload session of the store and to the
//! first client at once; the last chunk is held back until the digest and
//! size match, and nothing is committed unless they did. Requests that come
//! while a fill runs wait for it and are then served from the store.

use crate::fsutil;
use crate::names::{RepoName, UploadId};
use crate::store::Store;
use bytes::Bytes;
use hoist_oci::{Digest, Digester};
use hoist_registry_client::BlobStream;
use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Blob chunks buffered between the upstream, the disk and the client.
const FILL_QUEUE: usize = 8;
/// How long a fill waits for its client to take a chunk before dropping it.
const CLIENT_STALL: Duration = Duration::from_secs(30);

/// The fills running now, by digest.
#[derive(Debug, Default)]
pub(crate) struct Fills(Mutex<HashMap<Digest, watch::Receiver<()>>>);

impl Fills {
    fn lock(&self) -> MutexGuard<'_, HashMap<Digest, watch::Receiver<()>>> {
        // The map holds no invariant a panic could break.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for the running fill of `d` to end, either way; false when
    /// none runs.
    pub(crate) async fn wait(&self, d: &Digest) -> bool {
        let waiting = self.lock().get(d).cloned();
        match waiting {
            Some(mut rx) => {
                let _ = rx.changed().await;
                true
            }
            None => false,
        }
    }

    /// Makes this request the one that fills `d`; `None` when another
    /// request got there first.
    pub(crate) fn claim(self: &Arc<Self>, d: &Digest) -> Option<FillGuard> {
        let (tx, rx) = watch::channel(());
        let mut fills = self.lock();
        if fills.contains_key(d) {
            return None;
        }
        fills.insert(d.clone(), rx);
        Some(FillGuard {
            fills: self.clone(),
            digest: d.clone(),
            _done: tx,
        })
    }
}

/// A blob's bytes on their way from a fill to the client that started it:
/// an error ends them early, so the client sees a broken transfer, never a
/// complete wrong blob.
pub(crate) struct FillBody {
    /// The chunks.
    pub(crate) rx: mpsc::Receiver<io::Result<Bytes>>,
    /// The blob's size, when the upstream said it.
    pub(crate) size: Option<u64>,
}

/// Starts filling `digest` of `name` from an opened upstream blob; the fill
/// runs to its end even when the client goes away.
pub(crate) fn start(
    store: Arc<Store>,
    name: RepoName,
    digest: Digest,
    upstream: String,
    stream: BlobStream,
    guard: FillGuard,
) -> FillBody {
    let size = stream.len();
    let (tx, rx) = mpsc::channel(FILL_QUEUE);
    let fill = Fill {
        store,
        name,
        digest,
        upstream,
        size,
    };
    tokio::spawn(fill.run(stream, tx, guard));
    FillBody { rx, size }
}

/// Marks a blob as being filled; dropping it (fill done, failed or
/// abandoned) wakes the requests waiting for it.
pub(crate) struct FillGuard {
    fills: Arc<Fills>,
    digest: Digest,
    _done: watch::Sender<()>,
}

impl Drop for FillGuard {
    fn drop(&mut self) {
        // Removed before `_done` drops, so a woken waiter finds no fill.
        self.fills.lock().remove(&self.digest);
    }
}

/// One blob being copied from the upstream into the store and to a client.
struct Fill {
    store: Arc<Store>,
    name: RepoName,
    digest: Digest,
    upstream: String,
    size: Option<u64>,
}

impl Fill {
    async fn run(
        self,
        mut resp: BlobStream,
        client: mpsc::Sender<io::Result<Bytes>>,
        _guard: FillGuard,
    ) {
        let (wtx, wrx) = mpsc::channel::<Bytes>(FILL_QUEUE);
        let alg = self.digest.algorithm();
        let (store, name) = (self.store.clone(), self.name.clone());
        let writer = tokio::task::spawn_blocking(move || write_fill(&store, &name, wrx, alg));
        let mut client = Some(client);
        // The last chunk waits until the whole blob is verified.
        let mut held: Option<Bytes> = None;
        let mut failure: Option<String> = None;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if wtx.send(chunk.clone()).await.is_err() {
                        break; // The writer failed; its result says why.
                    }
                    if let Some(prev) = held.replace(chunk) {
                        if let Some(c) = &client {
                            // A client that hung up, or stopped reading,
                            // must not hold the fill (and those waiting for
                            // it): it is dropped and the fill goes on.
                            let sent = tokio::time::timeout(CLIENT_STALL, c.send(Ok(prev))).await;
                            if !matches!(sent, Ok(Ok(()))) {
                                client = None;
                            }
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    failure = Some(format!("the upstream body broke off: {e}"));
                    break;
                }
            }
        }
        drop(wtx);
        let written = match writer.await {
            Ok(Ok(w)) => Some(w),
            Ok(Err(e)) => {
                failure.get_or_insert(format!("cannot write the blob: {e}"));
                None
            }
            Err(e) => {
                failure.get_or_insert(format!("the blob writer failed: {e}"));
                None
            }
        };
        if let Some((path, actual, n)) = written {
            if failure.is_none() {
                if let Some(want) = self.size.filter(|w| *w != n) {
                    failure = Some(format!("the upstream announced {want} bytes but sent {n}"));
                } else if actual != self.digest {
                    failure = Some(format!("the upstream's bytes hash to {actual}"));
                }
            }
            let (s, name, d, dir) = (
                self.store.clone(),
                self.name.clone(),
                self.digest.clone(),
                path.clone(),
            );
            let ok = failure.is_none();
            let committed = tokio::task::spawn_blocking(move || {
                if ok {
                    s.commit_blob_upload(&dir.join("data"), &d)?;
                    s.link_blob(&name, &d)?;
                }
                // Committed or not, the session has served its purpose.
                s.driver.delete_tree(&dir)
            })
            .await;
            match committed {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    failure.get_or_insert(format!("cannot store the blob: {e}"));
                }
                Err(e) => {
                    failure.get_or_insert(format!("cannot store the blob: {e}"));
                }
            }
        }
        match failure {
            None => {
                tracing::info!(repository = %self.name, digest = %self.digest, "cached blob from upstream");
                if let (Some(c), Some(last)) = (client, held) {
                    let _ = c.send(Ok(last)).await;
                }
            }
            Some(why) => {
                let msg = format!(
                    "blob {} of {} from upstream {}: {why}; nothing stored",
                    self.digest, self.name, self.upstream
                );
                tracing::warn!("{msg}");
                if let Some(c) = client {
                    // An error ends the response early: the client sees a
                    // broken transfer, never a complete wrong blob.
                    let _ = c.send(Err(io::Error::other(msg))).await;
                }
            }
        }
    }
}

/// Writes chunks into a fresh upload session of `name` while hashing them,
/// through the storage driver (a file on disk, part objects on S3), and
/// closes it durably. Returns the session, the digest and the size; a
/// session that failed is deleted (and gc purges one a crash left behind).
fn write_fill(
    store: &Store,
    name: &RepoName,
    mut rx: mpsc::Receiver<Bytes>,
    alg: hoist_oci::Algorithm,
) -> crate::Result<(PathBuf, Digest, u64)> {
    let dir = store.layout().upload_dir(name, &UploadId::random());
    let started = fsutil::rfc3339_now();
    store
        .driver
        .put(&dir.join("startedat"), started.as_bytes())?;
    let res = (|| {
        let mut sink = store.driver.append(&dir.join("data"))?;
        let mut h = Digester::new(alg);
        let mut n = 0u64;
        while let Some(chunk) = rx.blocking_recv() {
            if let Err(e) = sink.write(&chunk) {
                let _ = sink.cancel();
                return Err(e);
            }
            h.update(&chunk);
            n += chunk.len() as u64;
        }
        sink.commit(true)?;
        Ok((h.finish(), n))
    })();
    match res {
        Ok((d, n)) => Ok((dir, d, n)),
        Err(e) => {
            let _ = store.driver.delete_tree(&dir);
            Err(e)
        }
    }
}
