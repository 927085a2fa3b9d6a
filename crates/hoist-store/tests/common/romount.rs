//! A read-only view of a directory: a read-only bind mount, as a store on
//! read-only media or mounted `:ro` into a container. Needs root (or
//! CAP_SYS_ADMIN); `None` otherwise, and the test says it was skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The mount; unmounted on drop.
pub struct RoMount {
    pub path: PathBuf,
}

impl RoMount {
    /// Mounts `src` read-only at `dst` (created).
    pub fn new(src: &Path, dst: &Path) -> Option<RoMount> {
        std::fs::create_dir_all(dst).unwrap();
        let ok = |args: &[&str]| {
            Command::new("mount")
                .args(args)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        let (s, d) = (src.to_str().unwrap(), dst.to_str().unwrap());
        if !ok(&["--bind", s, d]) {
            eprintln!("skipped: cannot bind-mount (not root?)");
            return None;
        }
        let m = RoMount {
            path: dst.to_owned(),
        };
        assert!(ok(&["-o", "remount,bind,ro", d]), "remount read-only");
        assert!(std::fs::write(dst.join("probe"), b"x").is_err());
        Some(m)
    }
}

impl Drop for RoMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}
