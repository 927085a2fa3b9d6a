//! Tar and compression streams for container layers: detecting and undoing
//! gzip/zstd, hashing while reading, sanitising member names, unpacking a layer
//! securely into a root (with OCI whiteouts), and writing deterministic layer
//! tars from a directory tree or from the difference of two trees.
//!
//! Nothing here touches the store or the network; every function works on
//! `Read`/`Write` streams and directories the caller names.

#![warn(missing_docs)]

pub mod compression;
mod error;
mod fsat;
pub mod hash;
pub mod hashstate;
pub mod kcopy;
pub mod paths;
pub mod pgzip;
pub mod tarstream;
pub mod unpack;
pub mod writer;

pub use compression::{
    compress_writer, decompress_auto, decompress_reader, detect, sniff, Compressor,
};
pub use error::{Error, Result};
pub use hash::{CountingReader, HashingReader, HashingWriter, LimitedReader};
pub use hoist_oci::media_type::Compression;
pub use paths::{sanitize_entry_path, PathError};
pub use tarstream::{content_size, Entry, EntryKind, TarReader, TarWriter};
pub use unpack::{unpack, UnpackOptions, UnpackStats, WhiteoutMode};
pub use writer::{diff, write_tree, WriteOptions, WriteStats};

/// The prefix that marks a whiteout entry: `.wh.NAME` deletes `NAME` below.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The entry name that makes its directory opaque (hides all lower content).
pub const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";
/// The prefix of AUFS metadata entries (`.wh..wh.plnk`, …) that unpack skips.
pub const WHITEOUT_META_PREFIX: &str = ".wh..wh.";
