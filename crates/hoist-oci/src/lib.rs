//! The image model: digests, media types, references, descriptors, manifests,
//! indexes, configs, chainIDs and platform matching. Pure data, no I/O.

pub mod chain;
pub mod digest;
pub mod document;
pub mod media_type;
pub mod platform;
pub mod reference;
pub mod units;

pub use chain::{chain_id, chain_ids};
pub use digest::{Algorithm, Digest, DigestError, Digester};
pub use document::{
    Config, Descriptor, Document, DocumentError, HistoryEntry, ImageConfig, Index, Manifest, RootFs,
};
pub use platform::Platform;
pub use reference::{Reference, ReferenceError};
