//! Repository names, tags, upload ids and manifest references, validated with
//! the distribution-spec grammars so that every accepted value is a safe file
//! name (no `..`, no `/` where it would nest, no empty components).

use hoist_oci::Digest;
use std::fmt;

/// The longest repository name accepted (distribution's `NameTotalLengthMax`).
pub const MAX_NAME_LEN: usize = 255;
/// The longest tag accepted.
pub const MAX_TAG_LEN: usize = 128;

/// Why a name, tag or id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not a valid repository name.
    #[error("invalid repository name {0:?}: components are lowercase letters and digits separated by '.', '_', '__' or '-', joined by '/', at most 255 characters")]
    Repository(String),
    /// Not a valid tag.
    #[error("invalid tag {0:?}: up to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'")]
    Tag(String),
    /// Not a valid upload session id.
    #[error("invalid upload id {0:?}")]
    UploadId(String),
}

/// A validated repository name such as `library/nginx`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    /// Validates a repository name.
    pub fn new(s: &str) -> Result<Self, NameError> {
        if s.is_empty()
            || s.len() > MAX_NAME_LEN
            || !s.split('/').all(hoist_oci::reference::valid_component)
        {
            return Err(NameError::Repository(s.to_owned()));
        }
        Ok(RepoName(s.to_owned()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated tag.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// Validates a tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    pub fn new(s: &str) -> Result<Self, NameError> {
        if !hoist_oci::reference::valid_tag(s) {
            return Err(NameError::Tag(s.to_owned()));
        }
        Ok(Tag(s.to_owned()))
    }

    /// The tag as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated upload session id (a UUID here; distribution's are UUIDs too).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UploadId(String);

impl UploadId {
    /// Validates an id: 1 to 64 of `[A-Za-z0-9_-]`.
    pub fn new(s: &str) -> Result<Self, NameError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|x| x.is_ascii_alphanumeric() || x == b'-' || x == b'_');
        if !ok {
            return Err(NameError::UploadId(s.to_owned()));
        }
        Ok(UploadId(s.to_owned()))
    }

    /// A fresh random id in UUID v4 form.
    pub fn random() -> Self {
        let mut b: [u8; 16] = rand::random();
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h = hex::encode(b);
        UploadId(format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        ))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a manifest URL names: a tag or a digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManifestRef {
    /// By tag.
    Tag(Tag),
    /// By digest.
    Digest(Digest),
}

impl fmt::Display for ManifestRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestRef::Tag(t) => t.fmt(f),
            ManifestRef::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names() {
        for ok in [
            "a",
            "library/nginx",
            "a.b/c_d/e__f/g-h/i---j",
            "0/1/2",
            &"a".repeat(255),
        ] {
            assert!(RepoName::new(ok).is_ok(), "{ok} refused");
        }
        for bad in [
            "",
            "/",
            "a/",
            "/a",
            "a//b",
            "..",
            "a/../b",
            "a/./b",
            ".a",
            "a.",
            "A",
            "a___b",
            "a_.b",
            "a b",
            "a\\b",
            "a\0b",
            "a/_b",
            &"a".repeat(256),
        ] {
            assert!(RepoName::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn tags() {
        for ok in ["latest", "v1.2.3", "_x", "A-b_c.d", &"t".repeat(128)] {
            assert!(Tag::new(ok).is_ok(), "{ok} refused");
        }
        for bad in ["", ".", "..", "-x", ".x", "a/b", "a:b", &"t".repeat(129)] {
            assert!(Tag::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn upload_ids() {
        let id = UploadId::random();
        assert_eq!(id.as_str().len(), 36);
        assert!(UploadId::new(id.as_str()).is_ok());
        for bad in ["", "..", "a/b", "a.b", &"a".repeat(65)] {
            assert!(UploadId::new(bad).is_err(), "{bad:?} accepted");
        }
    }
}
