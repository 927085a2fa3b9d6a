//! The crate's error type. Every variant names the thing that went wrong and,
//! where there is one, what the user can do about it.

use crate::paths::PathError;
use std::io;
use std::path::PathBuf;

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong reading, unpacking or writing a layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A member name that is absolute, climbs with `..`, holds NUL or is empty.
    #[error(transparent)]
    Path(#[from] PathError),
    /// More bytes arrived than the caller's bound allows.
    #[error(
        "stream is larger than the limit of {limit} bytes (a decompression bomb, or the \
         wrong size was declared); refusing it — raise the limit only for a trusted source"
    )]
    TooLarge {
        /// The bound that was exceeded.
        limit: u64,
    },
    /// The stream ended in the middle of a header, an entry or a compressed frame.
    #[error("tar stream is truncated {place}: the file or download is incomplete, fetch it again")]
    Truncated {
        /// Where the stream ended, naming the entry when there is one.
        place: String,
    },
    /// Compressed or tar data that does not parse.
    #[error("{what} is corrupt: {detail}; the file or download is damaged, fetch it again")]
    Corrupt {
        /// The stream or header that is corrupt.
        what: String,
        /// What is wrong with it.
        detail: String,
    },
    /// An extension header (PAX, GNU long name) above the reader's bound.
    #[error(
        "tar header {kind:?} before entry number {index} is {size} bytes, over the limit of \
         {limit} bytes; refusing a hostile or broken archive"
    )]
    HeaderTooLarge {
        /// The header type (`x`, `g`, `L`, `K`).
        kind: char,
        /// Which entry (counting from 1) the header precedes.
        index: u64,
        /// The declared size.
        size: u64,
        /// The bound.
        limit: u64,
    },
    /// An entry whose path goes through a symlink that leads out of the root.
    #[error(
        "tar entry {entry:?} goes through symlink {link:?} -> {target:?}, which leads \
         outside the target directory; refusing a hostile layer"
    )]
    SymlinkEscape {
        /// The entry being unpacked.
        entry: String,
        /// The symlink inside the root, relative to it.
        link: String,
        /// Where the symlink points.
        target: String,
    },
    /// Symlinks that never resolve (a loop).
    #[error("tar entry {entry:?} goes through more than 40 symlinks (a loop?); refusing it")]
    SymlinkLoop {
        /// The entry being unpacked.
        entry: String,
    },
    /// A parent of an entry exists and is not a directory.
    #[error(
        "tar entry {entry:?} needs {component:?} to be a directory, but it is not; the \
         layer does not fit the layers below it"
    )]
    NotADirectory {
        /// The entry being unpacked.
        entry: String,
        /// The component that is not a directory, relative to the root.
        component: String,
    },
    /// A hardlink whose target is missing, outside the root or a directory.
    #[error("tar entry {entry:?} is a hardlink to {target:?}, which {reason}; refusing it")]
    BadHardlink {
        /// The entry being unpacked.
        entry: String,
        /// The hardlink's target as written in the archive.
        target: String,
        /// Why it cannot be linked.
        reason: String,
    },
    /// A whiteout that names nothing (`.wh.`, `.wh..`).
    #[error("tar entry {entry:?} is a whiteout for an invalid name; refusing a malformed layer")]
    BadWhiteout {
        /// The entry being unpacked.
        entry: String,
    },
    /// An entry type hoist does not unpack.
    #[error(
        "tar entry {entry:?} has unsupported type {typeflag:?}; hoist unpacks files, \
         directories, links, devices and FIFOs (re-create the tarball without sparse or \
         volume entries)"
    )]
    Unsupported {
        /// The entry.
        entry: String,
        /// Its type flag.
        typeflag: char,
    },
    /// The data for an entry was not the size its header declares.
    #[error(
        "{path:?} gave {got} bytes but its tar header declares {expected}; it changed while \
         being archived — archive a tree nothing else is writing to"
    )]
    SizeMismatch {
        /// The file or entry.
        path: PathBuf,
        /// The declared size.
        expected: u64,
        /// What the source gave.
        got: u64,
    },
    /// A compression level out of range.
    #[error("{compression} level {level} is out of range; use {min}..={max}")]
    BadLevel {
        /// The algorithm.
        compression: &'static str,
        /// The level asked for.
        level: i32,
        /// The lowest valid level.
        min: i32,
        /// The highest valid level.
        max: i32,
    },
    /// An operating-system error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the entry or path.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// Wraps an I/O error with context, unless it already carries one of ours
    /// (readers such as [`crate::LimitedReader`] smuggle typed errors through
    /// `io::Error` because `Read` cannot return anything else).
    pub(crate) fn io(source: io::Error, context: impl FnOnce() -> String) -> Error {
        match take_inner(source) {
            Ok(e) => e,
            Err(source) => Error::Io {
                context: context(),
                source,
            },
        }
    }

    /// Turns this error into an `io::Error` that [`Error::io`] can unwrap again.
    pub(crate) fn into_io(self) -> io::Error {
        io::Error::other(self)
    }
}

/// Extracts an [`Error`] carried inside an `io::Error`, or gives the original back.
pub(crate) fn take_inner(e: io::Error) -> Result<Error, io::Error> {
    if e.get_ref().is_some_and(|r| r.is::<Error>()) {
        // Checked just above, so the downcast cannot fail; keep the fallback anyway.
        match e.into_inner().map(|b| b.downcast::<Error>()) {
            Some(Ok(inner)) => Ok(*inner),
            Some(Err(other)) => Err(io::Error::other(other)),
            None => Err(io::Error::other("unreachable: error without payload")),
        }
    } else {
        Err(e)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        e.into_io()
    }
}
