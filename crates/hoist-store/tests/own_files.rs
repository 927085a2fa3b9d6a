//! A process's own temporary files in `ingest/` are removed on request
//! (what the binary does on SIGINT/SIGTERM); partial pulls kept to resume
//! stay. Alone in its test binary: the list of own files is process-wide.

use hoist_oci::Digest;
use hoist_store::Store;
use std::io::Write;
use std::path::Path;

fn names(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join("ingest"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn own_temporary_files_are_removed_on_request_and_partials_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.blob_writer().unwrap();
    w.write_all(b"half").unwrap();
    let staged = store.stage_bytes(b"staged", None).unwrap();
    let want = Digest::sha256(b"kept");
    {
        let mut part = store.ingest().resume(&want).unwrap();
        part.write_all(b"ke").unwrap();
    }
    assert_eq!(names(dir.path()).len(), 4);
    assert!(hoist_store::remove_own_temporary_files() >= 2);
    let left = names(dir.path());
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().all(|n| n.starts_with("partial-")));
    drop((w, staged));
}
