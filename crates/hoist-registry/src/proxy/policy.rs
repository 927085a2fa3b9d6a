//! The cache policy: what a mirrored repository answers from the store, what
//! it asks the upstream, what it keeps, and what it serves while the
//! upstream is down (see the module docs of [`proxy`](super)). Answers are
//! domain values; the handlers make HTTP of them.

use super::error::{Missing, ProxyError};
use super::fill::{self, FillBody, Fills};
use super::upstream::{ProxyConfig, Target, Upstreams};
use crate::error::off_thread;
use crate::error::Error;
use crate::names::{ManifestRef, RepoName, Tag};
use crate::store::{BlobInfo, ManifestData, Store};
use bytes::Bytes;
use hoist_oci::Digest;
use hoist_registry_client::Error as UpstreamError;
use std::sync::Arc;

/// The file in a repository's directory that makes it local (see the module docs).
pub const PUSHED_MARKER: &str = "_hoist_pushed";

/// What the proxy found for a blob the repository lacks.
pub(crate) enum BlobAnswer {
    /// It is in the store now: serve it as a local blob.
    Local(BlobInfo),
    /// A HEAD: the upstream has it, with this size.
    Upstream {
        /// The blob's size upstream.
        size: u64,
    },
    /// Fetched now: its bytes as they arrive (see [`fill`](super::fill)).
    Filling(FillBody),
}

/// Stores verified manifest bytes as a revision of `name` and, with a tag,
/// points the tag at it. Bypasses `put_manifest`'s check that the blobs are
/// present: a cache fetches blobs only when they are asked for.
fn cache_manifest(
    store: &Store,
    name: &RepoName,
    d: &Digest,
    bytes: &[u8],
    tag: Option<&Tag>,
) -> crate::Result<()> {
    store.put_blob_bytes(d, bytes)?;
    store.write_link(&store.layout().revision_link(name, d), d)?;
    if let Some(tag) = tag {
        point_tag(store, name, tag, d)?;
    }
    Ok(())
}

fn point_tag(store: &Store, name: &RepoName, tag: &Tag, d: &Digest) -> crate::Result<()> {
    let l = store.layout();
    store.write_link(&l.tag_index_link(name, tag, d), d)?;
    store.write_link(&l.tag_current(name, tag), d)?;
    Ok(())
}

/// A manifest of `name` from the store; `None` when it is not there.
async fn local_manifest(
    store: &Arc<Store>,
    name: &RepoName,
    r: ManifestRef,
) -> Result<Option<Arc<ManifestData>>, ProxyError> {
    let (s, n) = (store.clone(), name.clone());
    off_thread(move || match s.get_manifest(&n, &r) {
        Ok(m) => Ok(Some(m)),
        Err(Error::ManifestUnknown { .. }) => Ok(None),
        Err(e) => Err(e),
    })
    .await
    .map_err(ProxyError::from)
}

async fn store_manifest(
    store: &Arc<Store>,
    name: &RepoName,
    d: Digest,
    bytes: Bytes,
    tag: Option<Tag>,
) -> Result<Arc<ManifestData>, ProxyError> {
    let (s, n) = (store.clone(), name.clone());
    off_thread(move || {
        cache_manifest(&s, &n, &d, &bytes, tag.as_ref())?;
        s.get_manifest(&n, &ManifestRef::Digest(d))
    })
    .await
    .map_err(ProxyError::from)
}

/// The running pull-through cache.
#[derive(Debug)]
pub struct Proxy {
    upstreams: Upstreams,
    fills: Arc<Fills>,
}

impl Proxy {
    /// The cache for `cfg`'s upstreams.
    pub fn new(cfg: &ProxyConfig) -> Self {
        Proxy {
            upstreams: Upstreams::new(cfg),
            fills: Arc::default(),
        }
    }

    /// The upstream to ask for `name`, unless it is not mirrored or has been
    /// pushed to. On disk one `stat`, cheap enough for the async threads; on
    /// object storage a request, made on the blocking pool.
    pub(crate) async fn target(
        &self,
        store: &Arc<Store>,
        name: &RepoName,
    ) -> Result<Option<Target<'_>>, ProxyError> {
        let Some(t) = self.upstreams.for_repo(name) else {
            return Ok(None);
        };
        let marker = store.layout().repo(name).join(PUSHED_MARKER);
        let pushed = if store.driver.is_local() {
            marker.exists()
        } else {
            let s = store.clone();
            off_thread(move || Ok(s.driver.stat(&marker)?.is_some())).await?
        };
        Ok((!pushed).then_some(t))
    }

    /// Makes `name` local before a push into it (see the module docs).
    pub(crate) fn mark_pushed(&self, store: &Store, name: &RepoName) -> crate::Result<()> {
        if self.upstreams.for_repo(name).is_none() {
            return Ok(());
        }
        let marker = store.layout().repo(name).join(PUSHED_MARKER);
        if store.driver.stat(&marker)?.is_some() {
            return Ok(());
        }
        store.driver.put(&marker, b"pushed\n")
    }

    /// A manifest of a mirrored repository (see the module docs).
    pub(crate) async fn manifest(
        &self,
        store: &Arc<Store>,
        t: &Target<'_>,
        name: &RepoName,
        r: &ManifestRef,
        head: bool,
    ) -> Result<Arc<ManifestData>, ProxyError> {
        let what = format!("fetching manifest {}:{r} for {name}", t.repo);
        let fail = |source: UpstreamError| {
            // A HEAD's body is never seen, and pushing clients (containerd)
            // probe with HEAD and stop on anything but 200 or 404: with the
            // upstream down, what we lack is simply unknown.
            if head && source.is_unavailable() {
                ProxyError::Unconfirmed {
                    what: what.clone(),
                    source,
                }
            } else {
                ProxyError::Upstream {
                    what: what.clone(),
                    missing: Missing::Manifest,
                    source,
                }
            }
        };
        let tag = match r {
            ManifestRef::Digest(d) => {
                if let Some(m) = local_manifest(store, name, r.clone()).await? {
                    return Ok(m);
                }
                // The client checked that the bytes hash to `d`.
                let m = t.get_manifest(&d.to_string()).await.map_err(fail)?;
                t.check_manifest(&m.bytes, Some(&m.media_type))
                    .map_err(fail)?;
                return store_manifest(store, name, m.digest, Bytes::from(m.bytes), None).await;
            }
            ManifestRef::Tag(tag) => tag,
        };
        let cached = || local_manifest(store, name, r.clone());
        let unavailable = |e: UpstreamError| async move {
            match cached().await? {
                Some(m) => {
                    tracing::warn!(repository = %name, tag = %tag, error = %e,
                        "upstream unavailable; serving the cached tag");
                    Ok(m)
                }
                None => Err(fail(e)),
            }
        };
        match t.head_manifest(tag.as_str()).await {
            Ok(Some(d)) => {
                // We may hold that digest already (this tag unchanged, or
                // pulled by digest before): no need to download it again.
                if let Some(m) = local_manifest(store, name, ManifestRef::Digest(d.clone())).await?
                {
                    let (s, n, tg) = (store.clone(), name.clone(), tag.clone());
                    off_thread(move || point_tag(&s, &n, &tg, &d)).await?;
                    return Ok(m);
                }
            }
            Ok(None) => {}
            Err(e) if e.is_unavailable() => return unavailable(e).await,
            Err(e) => return Err(fail(e)),
        }
        // The client checked the bytes against the digest the upstream claims.
        let m = match t.get_manifest(tag.as_str()).await {
            Ok(v) => v,
            Err(e) if e.is_unavailable() => return unavailable(e).await,
            Err(e) => return Err(fail(e)),
        };
        t.check_manifest(&m.bytes, Some(&m.media_type))
            .map_err(fail)?;
        store_manifest(
            store,
            name,
            m.digest,
            Bytes::from(m.bytes),
            Some(tag.clone()),
        )
        .await
    }

    /// The tags of a mirrored repository: local ∪ upstream, local alone
    /// while the upstream is unavailable.
    pub(crate) async fn tags(
        &self,
        store: &Arc<Store>,
        t: &Target<'_>,
        name: &RepoName,
    ) -> Result<Vec<String>, ProxyError> {
        let (s, n) = (store.clone(), name.clone());
        let local = off_thread(move || match s.tags(&n) {
            Ok(v) => Ok(Some(v)),
            Err(Error::NameUnknown(_)) => Ok(None),
            Err(e) => Err(e),
        })
        .await?;
        let mut all = match (t.tags().await, local) {
            (Ok(up), local) => {
                let mut all = local.unwrap_or_default();
                all.extend(up.into_iter().filter(|t| Tag::new(t).is_ok()));
                all
            }
            (Err(e), Some(local)) if e.is_unavailable() || e.is_not_found() => {
                if e.is_unavailable() {
                    tracing::warn!(repository = %name, error = %e,
                        "upstream unavailable; listing the cached tags only");
                }
                local
            }
            (Err(source), _) => {
                return Err(ProxyError::Upstream {
                    what: format!("listing the tags of {}", t.repo),
                    missing: Missing::Name,
                    source,
                })
            }
        };
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }

    /// A blob `name` lacks: from the store if another request just filled
    /// it, else from the upstream (see the module docs).
    pub(crate) async fn blob(
        &self,
        store: &Arc<Store>,
        t: &Target<'_>,
        name: &RepoName,
        d: &Digest,
        head: bool,
    ) -> Result<BlobAnswer, ProxyError> {
        let what = format!("fetching blob {d} of {}", t.repo);
        let fail = |source| ProxyError::Upstream {
            what: what.clone(),
            missing: Missing::Blob,
            source,
        };
        // A few rounds: a fill by another request may fail, then we try.
        for _ in 0..3 {
            let (s, n, dd) = (store.clone(), name.clone(), d.clone());
            let (local, global) = off_thread(move || {
                Ok(match s.blob_stat(&n, &dd) {
                    Ok(info) => (Some(info), true),
                    Err(Error::BlobUnknown(_)) => (None, s.blob_data_size(&dd)?.is_some()),
                    Err(e) => return Err(e),
                })
            })
            .await?;
            if let Some(info) = local {
                return Ok(BlobAnswer::Local(info));
            }
            if self.fills.wait(d).await {
                continue;
            }
            if head || global {
                // Only the upstream's word: a HEAD, or a blob the store has
                // for another repository and this one may link once the
                // upstream confirms the repository has it.
                let size = match t.blob_size(d).await {
                    Ok(Some(len)) => len,
                    Ok(None) => return Err(Error::BlobUnknown(d.clone()).into()),
                    // A HEAD's body is never seen and a pushing client reads
                    // anything but 404 as fatal: a blob we cannot confirm is
                    // unknown.
                    Err(e) if head => {
                        tracing::debug!(error = %e, "blob HEAD upstream failed");
                        return Err(Error::BlobUnknown(d.clone()).into());
                    }
                    Err(e) => return Err(fail(e)),
                };
                if global {
                    let (s, n, dd) = (store.clone(), name.clone(), d.clone());
                    let info = off_thread(move || {
                        s.claim_blob(&dd)?;
                        s.link_blob(&n, &dd)?;
                        s.blob_stat(&n, &dd)
                    })
                    .await?;
                    return Ok(BlobAnswer::Local(info));
                }
                return Ok(BlobAnswer::Upstream { size });
            }
            let Some(guard) = self.fills.claim(d) else {
                continue;
            };
            let stream = t.open_blob(d).await.map_err(fail)?;
            return Ok(BlobAnswer::Filling(fill::start(
                store.clone(),
                name.clone(),
                d.clone(),
                t.up.base.clone(),
                stream,
                guard,
            )));
        }
        Err(ProxyError::FillsFailed { what })
    }
}
