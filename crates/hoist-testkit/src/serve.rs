//! A `hoist serve` process on a free loopback port, for tests that need the
//! real binary (TLS flags, a browser, skopeo). SIGTERM on drop.

use crate::hoist_bin;
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
    pub fn start(root: &Path, extra: &[&str]) -> HoistServe {
        HoistServe::start_with(&root.with_extension("log"), |cmd, _| {
            cmd.arg("--root").arg(root).args(extra);
        })
    }

    /// Starts `hoist serve --addr 127.0.0.1:PORT` with what `args` adds (it
    /// gets the address, e.g. for a token realm URL) and `HOIST_LOG=info`,
    /// logging to `log`, and waits until it accepts connections.
    pub fn start_with(log: &Path, args: impl Fn(&mut Command, &str)) -> HoistServe {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("find a free port")
                .port();
            let addr = format!("127.0.0.1:{port}");
            let logf = std::fs::File::create(log).expect("create serve log");
            let mut cmd = Command::new(hoist_bin());
            cmd.args(["serve", "--addr", &addr]);
            args(&mut cmd, &addr);
            let child = cmd
                .env("HOIST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(logf.try_clone().expect("dup serve log"))
                .stderr(logf)
                .spawn()
                .expect("start hoist serve");
            if let Some(s) = HoistServe::wait_up(child, addr, log.to_owned()) {
                return s;
            }
        }
        panic!(
            "hoist serve did not come up: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        )
    }

    /// Takes over a `hoist serve` started otherwise (say, with an address
    /// from a config file) once it accepts connections on `addr`.
    pub fn adopt(child: Child, addr: &str, log: &Path) -> HoistServe {
        HoistServe::wait_up(child, addr.to_owned(), log.to_owned()).unwrap_or_else(|| {
            panic!(
                "hoist serve did not come up on {addr}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        })
    }

    fn wait_up(mut child: Child, addr: String, log: PathBuf) -> Option<HoistServe> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if TcpStream::connect(&addr).is_ok() {
                return Some(HoistServe { child, addr, log });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Its process id (to send it signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The file it logs to.
    pub fn log_path(&self) -> &Path {
        &self.log
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
