//! One module per command; each parses its arguments and prints its output.

pub mod copy;
pub mod df;
pub mod fsck;
pub mod history;
pub mod image;
pub mod images;
pub mod import;
pub mod inspect;
pub mod load;
pub mod prune;
pub mod registry;
pub mod rmi;
pub mod save;
pub mod serve;
pub mod storage;
pub mod system;
pub mod tag;

use hoist_store::Store;
use std::path::PathBuf;

/// What every command gets.
pub struct Context {
    /// The store directory.
    pub root: PathBuf,
    /// Whether `--root`/`HOIST_ROOT` named it (rather than the default).
    pub root_given: bool,
}

impl Context {
    /// The root for commands that serve a registry directory: it must be named,
    /// never defaulted to the local store.
    pub fn registry_root(&self, command: &str) -> Result<&std::path::Path, Error> {
        if self.root_given {
            Ok(&self.root)
        } else {
            Err(Error::Msg(format!(
                "{command} needs --root DIR: the registry's storage directory (distribution's storage.filesystem.rootdirectory, holding docker/registry/v2)"
            )))
        }
    }

    /// Opens the store.
    pub fn store(&self) -> Result<Store, Error> {
        Ok(Store::open(&self.root)?)
    }
}

/// Any command's error; printed once by `main`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From the store.
    #[error(transparent)]
    Store(#[from] hoist_store::StoreError),
    /// From a transport.
    #[error(transparent)]
    Transport(#[from] hoist_transport::TransportError),
    /// A bad reference on the command line.
    #[error(transparent)]
    Reference(#[from] hoist_oci::ReferenceError),
    /// Anything else, already worded for the user.
    #[error("{0}")]
    Msg(String),
}

/// `--format` for commands that print data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// Docker-style table or lines.
    Table,
    /// One JSON document (or one JSON object per line for lists, like Docker's `{{json .}}`).
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "table" | "" => Ok(Format::Table),
            "json" | "{{json .}}" => Ok(Format::Json),
            other => Err(format!("unknown format {other:?}: use table or json")),
        }
    }
}
