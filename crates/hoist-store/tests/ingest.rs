//! `ingest/`: resumable partial blobs, per-writer locks, and dead writers'
//! files cleaned by the next writer.

use hoist_oci::Digest;
use hoist_store::{Store, StoreError};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

fn data(n: usize) -> Vec<u8> {
    (0..n as u32).map(|i| (i * 31 % 251) as u8).collect()
}

fn names(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join("ingest"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A file in `ingest/` as a killed writer leaves it: unlocked, not new.
fn abandoned(root: &Path, name: &str) -> PathBuf {
    let p = root.join("ingest").join(name);
    std::fs::write(&p, b"half a layer").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(60))
        .unwrap();
    p
}

#[test]
fn resume_continues_where_the_last_attempt_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let bytes = data(3_000_000);
    let want = Digest::sha256(&bytes);
    {
        let w = store.begin().unwrap();
        let mut part = w.resume_blob(&want).unwrap();
        part.write_all(&bytes[..1_234_567]).unwrap();
        // Dropped: interrupted on purpose, kept to resume.
    }
    assert_eq!(names(dir.path()).len(), 2, "data and state kept");
    // Another writer starting meanwhile leaves the partial alone.
    drop(store.begin().unwrap());
    let w = store.begin().unwrap();
    let mut part = w.resume_blob(&want).unwrap();
    assert_eq!(part.offset(), 1_234_567);
    part.write_all(&bytes[1_234_567..]).unwrap();
    let staged = part.finish(Some(bytes.len() as u64)).unwrap();
    w.add_staged(staged, &want, Some(bytes.len() as u64))
        .unwrap();
    w.commit().unwrap();
    assert_eq!(std::fs::read(store.blob_path(&want)).unwrap(), bytes);
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
}

#[test]
fn bytes_past_the_checkpoint_are_dropped_and_a_bad_blob_is_refused_when_complete() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let bytes = data(100_000);
    let want = Digest::sha256(&bytes);
    let ingest = store.ingest();
    {
        let mut part = ingest.resume(&want).unwrap();
        part.write_all(&bytes[..40_000]).unwrap();
    }
    // A torn tail after the checkpoint (a crash mid-write).
    let p = store.ingest().partials().unwrap()[0].path.clone();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&p)
        .unwrap()
        .write_all(b"garbage")
        .unwrap();
    let mut part = ingest.resume(&want).unwrap();
    assert_eq!(part.offset(), 40_000);
    part.write_all(b"not the rest").unwrap();
    let e = part.finish(None).unwrap_err();
    assert!(matches!(e, StoreError::DigestMismatch { .. }), "{e}");
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
}

#[test]
fn a_partial_held_by_a_live_writer_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let want = Digest::sha256(b"x");
    let _first = store.ingest().resume(&want).unwrap();
    let e = store.ingest().resume(&want).err().expect("busy");
    assert!(matches!(e, StoreError::Busy(_)), "{e}");
}

#[test]
fn the_next_writer_removes_dead_writers_files_but_not_live_ones_or_partials() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let dead = abandoned(dir.path(), "0123456789abcdef0123456789abcdef");
    let live = abandoned(dir.path(), "fedcba9876543210fedcba9876543210");
    let holder = std::fs::File::open(&live).unwrap();
    // SAFETY: flock on a descriptor this test owns (as a live writer in another process would).
    assert_eq!(
        unsafe { libc::flock(holder.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
        0
    );
    let want = Digest::sha256(b"kept");
    {
        let mut part = store.ingest().resume(&want).unwrap();
        part.write_all(b"ke").unwrap();
    }
    let w = store.begin().unwrap();
    assert!(!dead.exists(), "dead writer's file removed");
    assert!(live.exists(), "live writer's file kept");
    assert_eq!(store.ingest().partials().unwrap().len(), 1);
    drop(w);
    drop(holder);
}

#[test]
fn partials_are_listed_by_usage_and_removed_by_prune() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let want = Digest::sha256(b"kept");
    {
        let mut part = store.ingest().resume(&want).unwrap();
        part.write_all(b"ke").unwrap();
    }
    let usage = store.usage().unwrap();
    assert_eq!(usage.partials.len(), 1);
    assert_eq!(usage.partials[0].offset, 2);
    assert!(usage.unreferenced_summary.reclaimable > 0);
    store.sweep().unwrap();
    assert!(store.ingest().partials().unwrap().is_empty());
    assert!(names(dir.path()).is_empty());
}
