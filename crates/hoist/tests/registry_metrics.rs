//! `hoist serve --metrics-addr`: `/metrics` moves to its own address and
//! leaves the registry's; what it counts is tested in hoist-registry.

use hoist_testkit::serve::HoistServe;
use hoist_testkit::{http_status, scratch_dir};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

fn get_text(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn metrics_addr_serves_metrics_apart_from_the_registry() {
    let scratch = scratch_dir();
    let maddr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let s = HoistServe::start(&scratch.path().join("root"), &["--metrics-addr", &maddr]);
    assert!(
        s.log()
            .contains(&format!("metrics on http://{maddr}/metrics")),
        "{}",
        s.log()
    );
    assert_eq!(http_status(&s.addr, "/v2/"), Some(200));
    assert_eq!(http_status(&s.addr, "/metrics"), Some(404));
    let text = get_text(&maddr, "/metrics");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains(
            "hoist_registry_http_requests_total{method=\"GET\",route=\"base\",status=\"200\"} 1"
        ),
        "{text}"
    );
    assert!(
        s.stop(),
        "hoist serve did not stop cleanly with --metrics-addr"
    );
}

#[test]
fn metrics_addr_that_cannot_be_bound_is_a_startup_error() {
    let scratch = scratch_dir();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let out = std::process::Command::new(hoist_testkit::hoist_bin())
        .args(["serve", "--addr", "127.0.0.1:0", "--root"])
        .arg(scratch.path().join("root"))
        .args(["--metrics-addr", &taken_addr])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = hoist_testkit::assert_failure("serve with a taken --metrics-addr", &out);
    assert!(
        err.contains(&taken_addr) && err.contains("--metrics-addr"),
        "{err}"
    );
}
