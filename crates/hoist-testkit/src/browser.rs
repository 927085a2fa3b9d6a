//! Headless Chromium (Debian's `chromium`) as a real browser for the web
//! page tests: it fetches a URL, parses the HTML and runs any script, then
//! prints the resulting DOM.

use crate::require_tool;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one page may take before the browser is killed.
const PAGE_TIMEOUT: Duration = Duration::from_secs(60);

/// The `chromium` binary; panics with how to install it when missing.
pub fn require_chromium() -> PathBuf {
    require_tool("chromium")
}

/// The DOM of `url` after Chromium loaded it, serialised as HTML
/// (`--dump-dom`). Each call uses a fresh profile, so parallel tests do not
/// share one; `--no-sandbox` because the tests run as root.
pub fn dump_dom(url: &str) -> String {
    let profile = tempfile::tempdir().expect("create chromium profile dir");
    let mut child = Command::new(require_chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().expect("chromium stdout");
    let mut stderr = child.stderr.take().expect("chromium stderr");
    // Both pipes drained while it runs, so a chatty browser never blocks.
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + PAGE_TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for chromium") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not load {url} within {PAGE_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let dom = reader.join().expect("chromium stdout reader");
    let err = err_reader.join().expect("chromium stderr reader");
    assert!(
        status.success() && !dom.is_empty(),
        "chromium --dump-dom {url} failed ({status}): {err}"
    );
    dom
}
