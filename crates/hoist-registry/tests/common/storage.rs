//! The storage a registry behaviour runs on: a directory, an S3 bucket on a
//! real S3 server (`s3s-fs`), or memory. A test reads and changes the stored
//! files through the storage driver itself, the same way on all three.

use super::TestServer;
use hoist_registry::driver::{self, mem::MemDriver, Driver};
use hoist_registry::gc::{collect_storage, GcOptions, GcReport};
use hoist_registry::{S3Config, ServerConfig, StorageConfig};
use hoist_testkit::{S3Server, S3_ACCESS_KEY, S3_SECRET_KEY};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The bucket of the S3 storage.
pub const BUCKET: &str = "registry";

/// One storage, alive as long as this value.
pub struct Storage {
    config: StorageConfig,
    /// Where a test may look at the files directly (not for memory).
    root: PathBuf,
    _dir: Option<tempfile::TempDir>,
    s3: Option<S3Server>,
}

/// The S3 configuration of `s3`'s bucket under `prefix`.
pub fn s3_config(s3: &S3Server, prefix: &str) -> S3Config {
    S3Config {
        bucket: BUCKET.to_owned(),
        endpoint: Some(s3.endpoint()),
        region: "us-east-1".to_owned(),
        prefix: prefix.to_owned(),
        access_key_id: S3_ACCESS_KEY.to_owned(),
        secret_access_key: S3_SECRET_KEY.to_owned(),
        session_token: None,
    }
}

impl Storage {
    /// A fresh directory.
    pub fn fs() -> Storage {
        let dir = tempfile::tempdir().unwrap();
        Storage {
            config: StorageConfig::Filesystem(dir.path().to_owned()),
            root: dir.path().to_owned(),
            _dir: Some(dir),
            s3: None,
        }
    }

    /// A fresh bucket on a fresh S3 server.
    pub fn s3() -> Storage {
        let s3 = S3Server::start(&[BUCKET]);
        Storage {
            config: StorageConfig::S3(s3_config(&s3, "")),
            root: s3.bucket_dir(BUCKET),
            _dir: None,
            s3: Some(s3),
        }
    }

    /// Fresh memory (shared by every server started on it).
    pub fn mem() -> Storage {
        Storage {
            config: StorageConfig::Memory(Arc::new(MemDriver::new())),
            root: PathBuf::from("/nonexistent-memory-storage"),
            _dir: None,
            s3: None,
        }
    }

    /// The configuration that names this storage.
    pub fn config(&self) -> StorageConfig {
        self.config.clone()
    }

    /// True for S3 storage.
    pub fn is_s3(&self) -> bool {
        self.s3.is_some()
    }

    /// Makes everything stored so far old for garbage collection, as if
    /// written long ago: an hour back on the filesystem and in memory; on S3,
    /// whose object times cannot be set, by waiting past the collector's
    /// clock slop (2 s on times of whole seconds).
    pub async fn age(&self) {
        let old = SystemTime::now() - Duration::from_secs(3600);
        match &self.config {
            StorageConfig::Filesystem(root) => {
                for f in super::files_under(root) {
                    let f = std::fs::File::open(root.join(f)).unwrap();
                    f.set_modified(old).unwrap();
                }
            }
            StorageConfig::Memory(m) => {
                for p in m.paths() {
                    m.set_modified(&p, old);
                }
            }
            StorageConfig::S3(_) => tokio::time::sleep(Duration::from_millis(3500)).await,
        }
    }

    /// Runs a garbage collection on this storage.
    pub async fn gc(&self, opts: GcOptions) -> GcReport {
        let cfg = self.config();
        tokio::task::spawn_blocking(move || collect_storage(&cfg, &opts))
            .await
            .unwrap()
            .unwrap()
    }

    /// True when the blob store holds `d`.
    pub async fn has_blob(&self, d: &hoist_oci::Digest) -> bool {
        let rel = blob_file(d);
        self.with_driver(move |dr| dr.stat(&dr.layout().base().join(rel)).unwrap().is_some())
            .await
    }

    /// Starts a server on this storage.
    pub async fn start(&self) -> TestServer {
        self.start_with(|_| {}).await
    }

    /// Starts a server on this storage, its configuration tweaked.
    pub async fn start_with(&self, tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let mut cfg = ServerConfig::with_storage(self.config());
        tweak(&mut cfg);
        TestServer::start_cfg(cfg, &self.root).await
    }

    /// Runs `f` on a driver of this storage, on a thread that may block.
    pub async fn with_driver<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Driver) -> T + Send + 'static,
    ) -> T {
        let cfg = self.config();
        tokio::task::spawn_blocking(move || f(&*driver::open(&cfg).unwrap()))
            .await
            .unwrap()
    }

    /// Every stored file, relative to `docker/registry/v2/`, sorted; hoist's
    /// own `_hoist/` left out.
    pub async fn files(&self) -> Vec<String> {
        let mut all = self.all_files().await;
        all.retain(|f| !f.starts_with("_hoist/"));
        all
    }

    /// Every stored file, relative to `docker/registry/v2/`, sorted.
    pub async fn all_files(&self) -> Vec<String> {
        self.with_driver(|d| {
            let base = d.layout().base().to_owned();
            let mut out = Vec::new();
            let mut todo = vec![base.clone()];
            while let Some(dir) = todo.pop() {
                for (name, is_dir) in d.list(&dir).unwrap() {
                    let p = dir.join(name);
                    if is_dir {
                        todo.push(p);
                    } else {
                        out.push(
                            p.strip_prefix(&base)
                                .unwrap()
                                .to_string_lossy()
                                .into_owned(),
                        );
                    }
                }
            }
            out.sort();
            out
        })
        .await
    }

    /// A stored file's bytes (`rel` under `docker/registry/v2/`).
    pub async fn read(&self, rel: &str) -> Option<Vec<u8>> {
        let rel = rel.to_owned();
        self.with_driver(move |d| d.get(&d.layout().base().join(rel), 1 << 30).unwrap())
            .await
    }

    /// Writes a file as another process sharing the storage would.
    pub async fn write(&self, rel: &str, bytes: &[u8]) {
        let (rel, bytes) = (rel.to_owned(), bytes.to_vec());
        self.with_driver(move |d| d.put(&d.layout().base().join(rel), &bytes).unwrap())
            .await
    }

    /// Removes a directory tree as another process would.
    pub async fn remove_tree(&self, rel: &str) {
        let rel = rel.to_owned();
        self.with_driver(move |d| d.delete_tree(&d.layout().base().join(rel)).unwrap())
            .await
    }
}

/// `blobs/sha256/<2>/<hex>/data` of a digest.
pub fn blob_file(d: &hoist_oci::Digest) -> String {
    format!("blobs/sha256/{}/{}/data", &d.hex()[..2], d.hex())
}
