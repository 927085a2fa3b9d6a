//! Schema v3: layers' content sizes (Docker's SIZE) and repository digests.

#[path = "common/images.rs"]
mod images;

use hoist_archive::{Entry, EntryKind, TarWriter};
use hoist_oci::Digest;
use hoist_store::Store;
use images::add_image;

fn layer() -> Vec<u8> {
    let mut w = TarWriter::new(Vec::new());
    let mut f = Entry::new("etc/motd", EntryKind::File);
    f.size = 47;
    w.append(&f, &[b'x'; 47][..]).unwrap();
    let mut sym = Entry::new("etc/sym", EntryKind::Symlink);
    sym.link = Some("motd".into());
    w.append(&sym, &b""[..]).unwrap();
    w.finish().unwrap()
}

/// An uncompressed layer's content size is recorded when it is committed
/// (compressed ones when first listed: `hoist copy`'s tests of indexes).
#[test]
fn content_size_of_a_plain_layer_is_recorded_at_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let id = add_image(&store, &layer(), "docker.io/library/a:latest");
    let img = store.index().image(&id).unwrap().unwrap();
    let chain = img.layers[0].layer.chain_id.clone();
    // Files' bytes and the symlink's target, not the 2 KiB tar.
    assert_eq!(store.index().content_size(&chain).unwrap(), Some(47 + 4));
    assert_eq!(store.content_sizes(&img).unwrap(), [47 + 4]);
    let again = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(again.index().content_size(&chain).unwrap(), Some(51));
    assert_eq!(again.content_sizes(&img).unwrap(), [51]);
}

#[test]
fn repo_digests_are_listed_and_go_with_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let id = add_image(&store, &layer(), "docker.io/library/a:latest");
    let pushed = Digest::sha256(b"a manifest as the registry has it");
    store
        .index_mut()
        .add_repo_digest(&id, "docker.io/library/a", &pushed)
        .unwrap();
    let img = store.index().image(&id).unwrap().unwrap();
    assert_eq!(img.repo_digests, [format!("docker.io/library/a@{pushed}")]);
    assert_eq!(
        store.index().repo_digests_of(&pushed).unwrap(),
        img.repo_digests
    );
    let none = Digest::sha256(b"no such image");
    assert!(store
        .index_mut()
        .add_repo_digest(&none, "docker.io/library/a", &pushed)
        .is_err());
    store
        .remove_image(&id, &["docker.io/library/a:latest".to_owned()], true)
        .unwrap();
    assert!(store.index().repo_digests_of(&pushed).unwrap().is_empty());
}
