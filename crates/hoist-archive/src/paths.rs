//! Normalising tar member names so that joining them to a root can never
//! leave it. Used by the unpacker and by every archive reader.

use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Why a tar member name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The name is empty.
    #[error("tar entry has an empty name; refusing a broken archive")]
    Empty,
    /// The name starts at `/`.
    #[error(
        "tar entry {0:?} has an absolute path; entries must be relative to the archive root \
         — refusing a hostile or broken archive"
    )]
    Absolute(String),
    /// The name has a `..` component.
    #[error(
        "tar entry {0:?} contains a \"..\" component that could climb out of the target \
         directory; refusing a hostile or broken archive"
    )]
    ParentDir(String),
    /// The name is longer than any path Linux can open (`PATH_MAX`).
    #[error(
        "tar entry {name:?}… is {len} bytes long, over the {max}-byte path limit of Linux; \
         refusing a hostile or broken archive"
    )]
    TooLong {
        /// The start of the name.
        name: String,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The name holds a NUL byte, which no file name can.
    #[error("tar entry {0:?} contains a NUL byte; refusing a hostile or broken archive")]
    Nul(String),
}

/// The longest member name accepted: Linux's `PATH_MAX` less the final NUL.
/// Longer names cannot be real files, and bounding them bounds the memory
/// the unpacker spends remembering what a layer wrote.
pub const MAX_PATH_LEN: usize = 4095;

/// Normalises a tar member name into a relative path that stays inside any root.
///
/// Leading `./`, repeated and trailing slashes and inner `.` components are
/// dropped. Absolute names, `..` components, NUL bytes, empty names and
/// names over [`MAX_PATH_LEN`] bytes are refused. The names `.` and `./` denote the root itself and give an empty
/// path.
pub fn sanitize_entry_path(name: &Path) -> Result<PathBuf, PathError> {
    let bytes = name.as_os_str().as_bytes();
    let shown = || String::from_utf8_lossy(bytes).into_owned();
    if bytes.is_empty() {
        return Err(PathError::Empty);
    }
    if bytes.contains(&0) {
        return Err(PathError::Nul(shown()));
    }
    if bytes.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong {
            name: String::from_utf8_lossy(&bytes[..64]).into_owned(),
            len: bytes.len(),
            max: MAX_PATH_LEN,
        });
    }
    let mut out = PathBuf::new();
    for component in name.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(PathError::ParentDir(shown())),
            Component::RootDir | Component::Prefix(_) => return Err(PathError::Absolute(shown())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    fn ok(s: &str) -> String {
        sanitize_entry_path(Path::new(s))
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn normalises_harmless_names() {
        assert_eq!(ok("a/b"), "a/b");
        assert_eq!(ok("./a/b"), "a/b");
        assert_eq!(ok("a//b/"), "a/b");
        assert_eq!(ok("a/./b"), "a/b");
        assert_eq!(ok("./"), "");
        assert_eq!(ok("."), "");
        assert_eq!(ok("a..b/..c"), "a..b/..c");
        assert_eq!(ok(".wh..wh..opq"), ".wh..wh..opq");
    }

    #[test]
    fn refuses_hostile_names() {
        let err = |s: &[u8]| sanitize_entry_path(Path::new(OsStr::from_bytes(s))).unwrap_err();
        assert_eq!(err(b""), PathError::Empty);
        assert!(matches!(err(b"/etc/passwd"), PathError::Absolute(_)));
        assert!(matches!(err(b"//x"), PathError::Absolute(_)));
        assert!(matches!(err(b"../x"), PathError::ParentDir(_)));
        assert!(matches!(err(b"a/../../x"), PathError::ParentDir(_)));
        assert!(matches!(err(b"a/.."), PathError::ParentDir(_)));
        assert!(matches!(err(b"./.."), PathError::ParentDir(_)));
        assert!(matches!(err(b"a\0b"), PathError::Nul(_)));
        assert!(matches!(
            err(&b"a/".repeat(2048)),
            PathError::TooLong { len: 4096, .. }
        ));
        assert!(sanitize_entry_path(Path::new(&"a".repeat(4095))).is_ok());
    }

    #[test]
    fn errors_name_the_entry() {
        let e = sanitize_entry_path(Path::new("../evil")).unwrap_err();
        assert!(e.to_string().contains("\"../evil\""), "{e}");
    }
}
