//! Ctrl-C during a load (#16.5): SIGINT or SIGTERM while `hoist load` is
//! writing layers leaves nothing in `ingest/`, and the store stays clean;
//! what a SIGKILLed load leaves, the next writer removes.

#[path = "common/imagegen.rs"]
mod imagegen;

use imagegen::*;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Feeds half of an archive into `hoist load` on stdin, waits until the
/// load has bytes in `ingest/`, sends `sig`; returns the fixture.
fn interrupt_load(sig: i32) -> Fixture {
    const MIB: usize = 1 << 20;
    let fx = Fixture::new();
    let img = Image::new(
        Some("hoist-test/interrupt:1"),
        vec![
            Layer::random(7, 24 * MIB, false),
            Layer::random(8, 24 * MIB, false),
        ],
    );
    let archive = fx.archive("interrupt.tar", &docker_members(&[img]));
    let mut bytes = Vec::new();
    std::fs::File::open(&archive)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    let mut child = fx
        .command()
        .args(["load", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hoist load");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&bytes[..bytes.len() / 2]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while fx.root.join("ingest").read_dir().map_or(0, |d| d.count()) == 0 {
        assert!(Instant::now() < deadline, "load never wrote to ingest/");
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: a signal to the child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
    let status = child.wait().unwrap();
    drop(stdin);
    assert_eq!(status.signal(), Some(sig), "died by the signal: {status:?}");
    fx
}

#[test]
fn sigint_during_a_load_leaves_no_temporary_files() {
    let fx = interrupt_load(libc::SIGINT);
    assert!(fx.ingest().is_empty(), "ingest/ left: {:?}", fx.ingest());
    fx.fsck_clean("after an interrupted load");
}

#[test]
fn sigterm_during_a_load_leaves_no_temporary_files() {
    let fx = interrupt_load(libc::SIGTERM);
    assert!(fx.ingest().is_empty(), "ingest/ left: {:?}", fx.ingest());
    fx.fsck_clean("after an interrupted load");
}

#[test]
fn the_next_load_removes_what_a_killed_load_left() {
    let fx = interrupt_load(libc::SIGKILL);
    assert!(!fx.ingest().is_empty(), "a SIGKILLed load cannot clean up");
    let small = Image::new(
        Some("hoist-test/after:1"),
        vec![Layer::random(9, 1 << 16, false)],
    );
    let archive = fx.archive("after.tar", &docker_members(&[small]));
    fx.load_ok(&archive, Via::File);
    assert!(fx.ingest().is_empty(), "ingest/ left: {:?}", fx.ingest());
    fx.fsck_clean("after the next load");
}

#[test]
fn a_partial_pull_is_listed_by_system_df_and_removed_by_image_prune() {
    let fx = Fixture::new();
    let first = Image::new(
        Some("hoist-test/first:1"),
        vec![Layer::random(11, 1 << 12, false)],
    );
    fx.load_ok(
        &fx.archive("first.tar", &docker_members(&[first])),
        Via::File,
    );
    let whole = b"a blob that a pull was receiving";
    let digest = sha256(whole);
    let data = fx
        .root
        .join(format!("ingest/partial-sha256-{}", hex(&digest)));
    std::fs::write(&data, &whole[..10]).unwrap();
    let mut state = hoist_archive::hashstate::Sha256State::new();
    state.update(&whole[..10]);
    let mut saved = 10u64.to_be_bytes().to_vec();
    saved.extend(state.marshal());
    std::fs::write(data.with_extension("state"), saved).unwrap();

    let df = fx.hoist_ok(&["system", "df", "-v"]);
    assert!(
        df.contains(&format!("Partial pull kept to resume: {digest}")),
        "{df}"
    );
    // A load (a writer) keeps it: it is kept on purpose.
    let small = Image::new(
        Some("hoist-test/keep:1"),
        vec![Layer::random(10, 1 << 12, false)],
    );
    fx.load_ok(
        &fx.archive("keep.tar", &docker_members(&[small])),
        Via::File,
    );
    assert!(data.exists());
    fx.hoist_ok(&["image", "prune", "-f"]);
    assert!(fx.ingest().is_empty(), "ingest/ left: {:?}", fx.ingest());
}
