//! The pull-through cache (`hoist serve --proxy`): a repository that is not
//! local is fetched from an upstream registry, stored in the same layout as
//! pushed content, and served from there afterwards, also while the
//! upstream is down.
//!
//! The rules:
//! * **Which repositories.** `--proxy URL` mirrors the whole namespace;
//!   `--proxy PREFIX=URL` mirrors `PREFIX/<repo>` as `<repo>` of that
//!   upstream (the longest matching prefix wins). A repository that has been
//!   pushed to (upload start or manifest PUT) gets a `_hoist_pushed` marker
//!   and is local from then on: it never goes upstream again, so a pushed
//!   tag always wins. Pushes work everywhere; distribution turns them off
//!   when it mirrors (distribution#1218), hoist does not.
//! * **Manifests by tag.** The upstream is asked (HEAD for the digest, GET
//!   when we lack that digest); the bytes and the tag are stored, then
//!   served. When the upstream is unreachable, answers 5xx or 429, the
//!   cached tag is served (with a warning in the log).
//! * **Manifests by digest and blobs.** Local first, else the upstream,
//!   verified against the digest before anything becomes visible. A blob is
//!   streamed to the client while it is written to the store; the last chunk
//!   is held back until the sha256 and size match, so a client never gets a
//!   complete wrong blob, and nothing is committed unless it matched. When the
//!   client hangs up the fill goes on to the end (requests waiting for the
//!   same blob, and the next pull, get it). Concurrent requests for the same
//!   missing blob make one upstream fetch: the others wait for it and are
//!   then served from the store.
//! * **Tags list.** The union of the local tags and the upstream's; only the
//!   local ones while the upstream is unavailable. The catalog and referrers
//!   are local only.
//!
//! The rooms: [`upstream`] (configuration and requests), [`fill`] (one
//! fetch shared by concurrent readers) and [`policy`] (the rules above).

mod error;
mod fill;
mod policy;
mod upstream;

pub use error::{Missing, ProxyError};
pub(crate) use fill::FillBody;
pub(crate) use policy::BlobAnswer;
pub use policy::{Proxy, PUSHED_MARKER};
pub(crate) use upstream::Target;
pub use upstream::{ProxyConfig, ProxyConfigError, UpstreamConfig};
