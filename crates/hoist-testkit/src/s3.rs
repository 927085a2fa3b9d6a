//! A real S3 server for tests: `s3s-fs` (from crates.io; `scripts/test.sh`
//! installs it with `cargo install` under `target/s3s-fs`) on a free loopback
//! port, its data in a temporary directory. Each bucket is a directory there
//! and each object a file named by its key, so a test can read the keys the
//! registry wrote.

use crate::{http_status, Registry};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key the test server accepts.
pub const S3_ACCESS_KEY: &str = "hoist-test-access";
/// The secret key the test server accepts.
pub const S3_SECRET_KEY: &str = "hoist-test-secret-key";

/// The `s3s-fs` binary: `$HOIST_TEST_S3S_FS`, else `target/s3s-fs/bin/s3s-fs`
/// of this workspace, else `s3s-fs` on `PATH`. Panics with the fix if none.
pub fn s3s_fs_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("HOIST_TEST_S3S_FS") {
        return PathBuf::from(p);
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/s3s-fs/bin/s3s-fs");
    if local.is_file() {
        return local;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for d in std::env::split_paths(&path) {
        if d.join("s3s-fs").is_file() {
            return d.join("s3s-fs");
        }
    }
    panic!(
        "s3s-fs is not installed but this test needs a real S3 server; bash scripts/test.sh \
         installs it (cargo install --locked --debug s3s-fs --version 0.14.1 --features binary --root target/s3s-fs)"
    )
}

/// A private S3 server on `127.0.0.1:<free port>`, killed on drop.
#[derive(Debug)]
pub struct S3Server {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl S3Server {
    /// Starts the server with one empty bucket per name in `buckets`.
    pub fn start(buckets: &[&str]) -> S3Server {
        let bin = s3s_fs_bin();
        let dir = tempfile::Builder::new()
            .prefix("hoist-s3-")
            .tempdir()
            .expect("s3 temp dir");
        let data = dir.path().join("data");
        for b in buckets {
            std::fs::create_dir_all(data.join(b)).expect("create bucket dir");
        }
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("find a free port")
                .port();
            let addr = format!("127.0.0.1:{port}");
            let log_path = dir.path().join("s3s-fs.log");
            let log = std::fs::File::create(&log_path).expect("s3 log");
            let mut child = Command::new(&bin)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
                .arg(&data)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                // Any HTTP answer (403 without a signature) means it is up.
                if http_status(&addr, "/").is_some() {
                    return S3Server { child, addr, dir };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
        }
        panic!("s3s-fs did not come up; its log:\n{last_log}")
    }

    /// `http://127.0.0.1:PORT`, the endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The directory holding `bucket`'s objects, one file per key.
    pub fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.dir.path().join("data").join(bucket)
    }

    /// The environment a client needs: the AWS credential variables.
    pub fn env(&self) -> [(&'static str, &'static str); 2] {
        [
            ("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY),
        ]
    }
}

impl S3Server {
    /// A private `docker-registry` whose storage is `bucket` on this server,
    /// under `rootdirectory` (its `storage.s3`), deletes enabled. s3s-fs
    /// lacks `ListMultipartUploads`, so pushes into this registry fail: it
    /// is for reading what another writer put in the bucket.
    pub fn docker_registry(&self, bucket: &str, rootdirectory: &str) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("hoist-registry-s3-")
            .tempdir()
            .expect("registry temp dir");
        let storage = format!(
            "  s3:\n    accesskey: {S3_ACCESS_KEY}\n    secretkey: {S3_SECRET_KEY}\n\
             \x20   region: us-east-1\n    regionendpoint: {}\n    bucket: {bucket}\n\
             \x20   rootdirectory: /{rootdirectory}\n    secure: false\n    v4auth: true\n",
            self.endpoint()
        );
        Registry::launch(
            dir,
            &storage,
            "",
            self.bucket_dir(bucket).join(rootdirectory),
        )
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
