//! A second dockerd with its own data-root, for tests that read a Docker's
//! files (`docker-root:`) or need a daemon other than the suite's.

use crate::{docker_at, unique_name, Docker};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A second dockerd under its own directory, stopped (and its mounts
/// undone) on drop.
pub struct SecondDockerd {
    dir: PathBuf,
    child: Option<Child>,
    /// The docker CLI speaking to it.
    pub client: Docker,
}

impl SecondDockerd {
    /// Starts it on overlay2 under `dir` (a short path: containerd's socket
    /// paths are limited), driven by the docker CLI `cli`.
    pub fn start(dir: &Path, cli: &Path) -> SecondDockerd {
        Self::start_with(dir, cli, "overlay2")
    }

    /// Starts it with storage driver `driver`.
    pub fn start_with(dir: &Path, cli: &Path, driver: &str) -> SecondDockerd {
        std::fs::write(dir.join("daemon.json"), "{}").unwrap();
        let ns = unique_name("dockerx");
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--config-file")
            .arg(dir.join("daemon.json"))
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", dir.join("docker.sock").display()))
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .args(["--containerd-namespace", &ns])
            .args(["--containerd-plugins-namespace", &format!("{ns}-plugins")])
            .args(["--storage-driver", driver])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start a second dockerd");
        let mut d = SecondDockerd {
            dir: dir.to_path_buf(),
            child: Some(child),
            client: docker_at(
                cli,
                &format!("unix://{}", dir.join("docker.sock").display()),
            ),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if d.client.run(["version"]).status.success() {
                break;
            }
            let exited = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default();
                panic!("the second dockerd did not come up ({exited:?}):\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let actual = d.client.run_ok(["info", "--format", "{{.Driver}}"]);
        assert_eq!(actual.trim(), driver, "the second dockerd's storage driver");
        d
    }

    /// Its `--data-root`.
    pub fn data_root(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Its socket, as `DOCKER_HOST` names it.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.join("docker.sock").display())
    }

    /// SIGTERM and wait, so the data-root is what a stopped Docker leaves.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Undo whatever mounts it left under our directory, deepest first.
        let prefix = format!("{}/", self.dir.display());
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts: Vec<&str> = mountinfo
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        mounts.sort_by(|a, b| b.cmp(a));
        for m in mounts {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
    }
}

impl Drop for SecondDockerd {
    fn drop(&mut self) {
        self.stop();
    }
}
