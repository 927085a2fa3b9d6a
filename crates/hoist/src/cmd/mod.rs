//! One module per command; each parses its arguments and prints its output.

pub mod catalog;
pub mod copy;
pub mod delete;
pub mod df;
pub mod digest;
pub mod fsck;
pub mod history;
pub mod image;
pub mod images;
pub mod import;
pub mod info;
pub mod inspect;
pub mod inspect_remote;
pub mod list_tags;
pub mod load;
pub mod login;
pub mod prune;
pub mod pull;
pub mod push;
pub mod registry;
pub mod remote;
pub mod rmi;
pub mod save;
pub mod serve;
pub mod storage;
pub mod system;
pub mod tag;
pub mod version;

use hoist_store::Store;
use std::path::PathBuf;

/// What every command gets.
pub struct Context {
    /// The store directory.
    pub root: PathBuf,
    /// The registry directory of `serve` and `registry gc`: `--root` as
    /// typed, else `HOIST_REGISTRY_ROOT`; never `HOIST_ROOT`.
    pub registry_root: Option<PathBuf>,
}

impl Context {
    /// Opens the store for a command that writes it. From here on, SIGINT
    /// and SIGTERM remove this process's temporary files in `ingest/`
    /// before it dies, so an interrupted load leaves nothing behind.
    pub fn store(&self) -> Result<Store, Error> {
        remove_temporaries_on_signal();
        Ok(Store::open(&self.root)?)
    }

    /// Opens the store for a command that only reads it: works on a store
    /// this user cannot write, and creates nothing (a missing store reads
    /// as empty).
    pub fn store_read(&self) -> Result<Store, Error> {
        Ok(Store::open_read_only(&self.root)?)
    }
}

/// Blocks SIGINT and SIGTERM in this thread (and so in every thread it
/// starts later) and waits for them on a thread of their own, which removes
/// the process's own ingest files and then dies by the same signal, so the
/// shell sees the usual status. Once per process.
fn remove_temporaries_on_signal() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigset_t is a valid value to initialise with sigemptyset.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: sigset calls on a local set; pthread_sigmask changes this thread's mask only.
        let blocked = unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) == 0
        };
        if !blocked {
            return;
        }
        std::thread::spawn(move || {
            let mut sig = 0;
            // SAFETY: waits for a signal of `set`, which is blocked in this thread.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                return;
            }
            hoist_store::remove_own_temporary_files();
            // SAFETY: back to the default action, unblocked in this thread,
            // then raised here: the process ends as the signal would end it.
            unsafe {
                libc::signal(sig, libc::SIG_DFL);
                libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
                libc::raise(sig);
            }
            std::process::exit(128 + sig);
        });
    });
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
