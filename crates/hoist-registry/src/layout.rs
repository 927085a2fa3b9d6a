//! Where things live on disk: exactly the distribution registry's layout
//! (`registry/storage/paths.go`), so that `docker-registry` and `hoist serve`
//! can take over each other's `rootdirectory`.
//!
//! ```text
//! <root>/docker/registry/v2/
//!   blobs/<alg>/<first 2 hex>/<hex>/data
//!   repositories/<name>/
//!     _layers/<alg>/<hex>/link                       content: "<alg>:<hex>"
//!     _manifests/revisions/<alg>/<hex>/link
//!     _manifests/tags/<tag>/current/link
//!     _manifests/tags/<tag>/index/<alg>/<hex>/link
//!     _uploads/<id>/{data,startedat,hashstates/<alg>/<offset>}
//!   _hoist/tmp/                                      hoist's own scratch space
//! ```
//!
//! Every path is built from validated parts only ([`RepoName`], [`Tag`],
//! [`UploadId`], [`Digest`]), so no request can name a file outside the root.

use crate::names::{RepoName, Tag, UploadId};
use hoist_oci::{Algorithm, Digest};
use std::path::{Path, PathBuf};

/// Path mapper for one registry root.
#[derive(Clone, Debug)]
pub struct Layout {
    base: PathBuf,
}

impl Layout {
    /// The layout under `root` (distribution's `storage.filesystem.rootdirectory`).
    pub fn new(root: &Path) -> Self {
        Layout {
            base: root.join("docker").join("registry").join("v2"),
        }
    }

    /// `<root>/docker/registry/v2`.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// `blobs/`.
    pub fn blobs_root(&self) -> PathBuf {
        self.base.join("blobs")
    }

    /// `blobs/<alg>/<2 hex>/<hex>`.
    pub fn blob_dir(&self, d: &Digest) -> PathBuf {
        let hex = d.hex();
        self.base
            .join("blobs")
            .join(d.algorithm().as_str())
            .join(&hex[..2])
            .join(hex)
    }

    /// `blobs/<alg>/<2 hex>/<hex>/data`.
    pub fn blob_data(&self, d: &Digest) -> PathBuf {
        self.blob_dir(d).join("data")
    }

    /// `repositories/`.
    pub fn repos_root(&self) -> PathBuf {
        self.base.join("repositories")
    }

    /// `repositories/<name>`.
    pub fn repo(&self, name: &RepoName) -> PathBuf {
        let mut p = self.repos_root();
        for c in name.as_str().split('/') {
            p.push(c);
        }
        p
    }

    /// `repositories/<name>/_layers`.
    pub fn layers_dir(&self, name: &RepoName) -> PathBuf {
        self.repo(name).join("_layers")
    }

    /// `repositories/<name>/_layers/<alg>/<hex>/link`.
    pub fn layer_link(&self, name: &RepoName, d: &Digest) -> PathBuf {
        self.layers_dir(name)
            .join(d.algorithm().as_str())
            .join(d.hex())
            .join("link")
    }

    /// `repositories/<name>/_manifests`.
    pub fn manifests_dir(&self, name: &RepoName) -> PathBuf {
        self.repo(name).join("_manifests")
    }

    /// `repositories/<name>/_manifests/revisions/<alg>`.
    pub fn revisions_dir(&self, name: &RepoName, alg: Algorithm) -> PathBuf {
        self.manifests_dir(name)
            .join("revisions")
            .join(alg.as_str())
    }

    /// `repositories/<name>/_manifests/revisions/<alg>/<hex>/link`.
    pub fn revision_link(&self, name: &RepoName, d: &Digest) -> PathBuf {
        self.revisions_dir(name, d.algorithm())
            .join(d.hex())
            .join("link")
    }

    /// `repositories/<name>/_manifests/tags`.
    pub fn tags_dir(&self, name: &RepoName) -> PathBuf {
        self.manifests_dir(name).join("tags")
    }

    /// `repositories/<name>/_manifests/tags/<tag>`.
    pub fn tag_dir(&self, name: &RepoName, tag: &Tag) -> PathBuf {
        self.tags_dir(name).join(tag.as_str())
    }

    /// `repositories/<name>/_manifests/tags/<tag>/current/link`.
    pub fn tag_current(&self, name: &RepoName, tag: &Tag) -> PathBuf {
        self.tag_dir(name, tag).join("current").join("link")
    }

    /// `repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link`.
    pub fn tag_index_link(&self, name: &RepoName, tag: &Tag, d: &Digest) -> PathBuf {
        self.tag_dir(name, tag)
            .join("index")
            .join(d.algorithm().as_str())
            .join(d.hex())
            .join("link")
    }

    /// `repositories/<name>/_uploads`.
    pub fn uploads_dir(&self, name: &RepoName) -> PathBuf {
        self.repo(name).join("_uploads")
    }

    /// `repositories/<name>/_uploads/<id>`.
    pub fn upload_dir(&self, name: &RepoName, id: &UploadId) -> PathBuf {
        self.uploads_dir(name).join(id.as_str())
    }

    /// `repositories/<name>/_uploads/<id>/data`.
    pub fn upload_data(&self, name: &RepoName, id: &UploadId) -> PathBuf {
        self.upload_dir(name, id).join("data")
    }

    /// `repositories/<name>/_uploads/<id>/startedat`.
    pub fn upload_started_at(&self, name: &RepoName, id: &UploadId) -> PathBuf {
        self.upload_dir(name, id).join("startedat")
    }

    /// `repositories/<name>/_uploads/<id>/hashstates/<alg>`.
    pub fn upload_hashstates(&self, name: &RepoName, id: &UploadId, alg: Algorithm) -> PathBuf {
        self.upload_dir(name, id)
            .join("hashstates")
            .join(alg.as_str())
    }

    /// hoist's scratch directory for atomic writes (same filesystem as the
    /// rest, so a rename into place is atomic). distribution never looks here.
    pub fn tmp_dir(&self) -> PathBuf {
        self.base.join("_hoist").join("tmp")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_distribution() {
        let l = Layout::new(Path::new("/r"));
        let d: Digest = format!("sha256:ab{}", "c".repeat(62)).parse().unwrap();
        let hex = d.hex().to_owned();
        let n = RepoName::new("library/nginx").unwrap();
        let t = Tag::new("latest").unwrap();
        let id = UploadId::new("u1").unwrap();
        let s = |p: PathBuf| p.to_string_lossy().into_owned();
        assert_eq!(
            s(l.blob_data(&d)),
            format!("/r/docker/registry/v2/blobs/sha256/ab/{hex}/data")
        );
        let repo = "/r/docker/registry/v2/repositories/library/nginx";
        assert_eq!(
            s(l.layer_link(&n, &d)),
            format!("{repo}/_layers/sha256/{hex}/link")
        );
        assert_eq!(
            s(l.revision_link(&n, &d)),
            format!("{repo}/_manifests/revisions/sha256/{hex}/link")
        );
        assert_eq!(
            s(l.tag_current(&n, &t)),
            format!("{repo}/_manifests/tags/latest/current/link")
        );
        assert_eq!(
            s(l.tag_index_link(&n, &t, &d)),
            format!("{repo}/_manifests/tags/latest/index/sha256/{hex}/link")
        );
        assert_eq!(
            s(l.upload_data(&n, &id)),
            format!("{repo}/_uploads/u1/data")
        );
        assert_eq!(
            s(l.upload_started_at(&n, &id)),
            format!("{repo}/_uploads/u1/startedat")
        );
        assert_eq!(
            s(l.upload_hashstates(&n, &id, Algorithm::Sha256)),
            format!("{repo}/_uploads/u1/hashstates/sha256")
        );
    }
}
