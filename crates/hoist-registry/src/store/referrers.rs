//! Manifest revisions and the referrers API: the manifests of a
//! repository whose `subject` is a given manifest, summarised once per
//! digest (content-addressed, so a cached summary is never stale).

use super::Store;
use crate::error::{Error, Result};
use crate::names::RepoName;
use hoist_oci::{Algorithm, Descriptor, Digest, Document};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// Entry budget of the referrers summary cache.
const SUMMARY_CACHE_ENTRIES: usize = 200_000;

/// What the referrers API needs of a manifest, cached by digest.
#[derive(Clone, Debug)]
pub(super) struct Summary {
    media_type: String,
    size: u64,
    artifact_type: Option<String>,
    subject: Option<Digest>,
    annotations: BTreeMap<String, String>,
}

/// Summaries by manifest digest.
pub(super) type Summaries = Mutex<HashMap<Digest, Arc<Summary>>>;

impl Store {
    /// The manifest revisions a repository holds.
    pub fn revisions(&self, name: &RepoName) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = self.layout.revisions_dir(name, alg);
            for (hex, is_dir) in self.driver.list(&dir)? {
                if !is_dir {
                    continue;
                }
                let Ok(d) = Digest::new(alg, &hex) else {
                    continue;
                };
                if self.read_link(&dir.join(&hex).join("link"))?.as_ref() == Some(&d) {
                    out.push(d);
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    fn summary(&self, d: &Digest) -> Result<Option<Arc<Summary>>> {
        let cached = self
            .summaries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(d)
            .cloned();
        if let Some(s) = cached {
            return Ok(Some(s));
        }
        let Some(m) = self.manifest_by_digest(d)? else {
            return Ok(None);
        };
        let s = match Document::parse(&m.bytes, None) {
            Ok(Document::Manifest(man)) => Summary {
                media_type: m.media_type.clone(),
                size: m.bytes.len() as u64,
                artifact_type: man
                    .artifact_type
                    .clone()
                    .or_else(|| Some(man.config.media_type.clone())),
                subject: man.subject.map(|s| s.digest),
                annotations: man.annotations,
            },
            Ok(Document::Index(idx)) => Summary {
                media_type: m.media_type.clone(),
                size: m.bytes.len() as u64,
                artifact_type: idx.artifact_type,
                subject: idx.subject.map(|s| s.digest),
                annotations: idx.annotations,
            },
            Err(_) => Summary {
                media_type: m.media_type.clone(),
                size: m.bytes.len() as u64,
                artifact_type: None,
                subject: None,
                annotations: BTreeMap::new(),
            },
        };
        let s = Arc::new(s);
        let mut cache = self.summaries.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= SUMMARY_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(d.clone(), s.clone());
        Ok(Some(s))
    }

    /// The manifests of `name` whose `subject` is `subject`, optionally only
    /// those of one artifact type, as descriptors for a referrers index.
    pub fn referrers(
        &self,
        name: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        if !self.repo_exists(name)? {
            return Err(Error::NameUnknown(name.clone()));
        }
        let mut out = Vec::new();
        for d in self.revisions(name)? {
            let Some(s) = self.summary(&d)? else { continue };
            if s.subject.as_ref() != Some(subject) {
                continue;
            }
            if let Some(want) = artifact_type {
                if s.artifact_type.as_deref() != Some(want) {
                    continue;
                }
            }
            let mut desc = Descriptor::new(&s.media_type, d, s.size);
            desc.artifact_type = s.artifact_type.clone();
            desc.annotations = s.annotations.clone();
            out.push(desc);
        }
        Ok(out)
    }
}
