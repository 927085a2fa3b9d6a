//! A `hoist serve` process on a free loopback port, for tests that need the
//! real binary (TLS flags, a browser, skopeo). SIGTERM on drop.

use crate::hoist_bin;
use std::ffi::OsStr;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `hoist serve`.
pub struct HoistServe {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    log: PathBuf,
}

impl HoistServe {
    /// Starts `hoist serve --addr 127.0.0.1:PORT --root ROOT EXTRA…` with
    /// `HOIST_LOG=info` and waits until it accepts connections.
    pub fn start<S: AsRef<OsStr>>(root: &Path, extra: &[S]) -> HoistServe {
        let log = root.with_extension("log");
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("find a free port")
                .port();
            let addr = format!("127.0.0.1:{port}");
            let logf = std::fs::File::create(&log).expect("create serve log");
            let mut child = Command::new(hoist_bin())
                .args(["serve", "--addr", &addr, "--root"])
                .arg(root)
                .args(extra)
                .env("HOIST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(logf.try_clone().expect("dup serve log"))
                .stderr(logf)
                .spawn()
                .expect("start hoist serve");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect(&addr).is_ok() {
                    return HoistServe { child, addr, log };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "hoist serve did not come up: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    }

    /// What it wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits up to 10 s: whether it exited 0 in time.
    pub fn stop(mut self) -> bool {
        self.terminate()
    }

    fn terminate(&mut self) -> bool {
        // SIGTERM through kill(1): the testkit has no libc dependency.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for HoistServe {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}
