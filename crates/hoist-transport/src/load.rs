//! `load`: a copy of every image of a `docker save` archive, an OCI
//! archive or an OCI layout directory into the store. Each blob is verified as it is staged (a layer
//! against its diffID in the same pass); only when the whole archive checks
//! out does the store destination rename blobs into place and update the
//! index, so a bad archive leaves the store exactly as it was.

use crate::archive_source::{oci_entry_tags, ArchiveSource, LoadInput};
use crate::oci_dir::{read_index, OciDirSource, REF_NAME};
use crate::store_dest::{LoadedImage, StoreDestination};
use crate::{copy_image, CopyOptions, ImageDestination, Progress, TransportError};
use hoist_store::{LockMode, Store};

/// Loads every image of an archive into the store.
pub fn load(
    store: &mut Store,
    input: LoadInput,
    progress: &dyn Progress,
) -> Result<Vec<LoadedImage>, TransportError> {
    // Held from the first staged byte: a prune must not sweep our ingest files.
    let _lock = store.lock(LockMode::Shared)?;
    let archive = ArchiveSource::open(input, store, progress)?;
    let dst = StoreDestination::new(store)?;
    let opts = CopyOptions::default();
    for (i, img) in archive.images().iter().enumerate() {
        let copied = copy_image(&archive.image(i), &dst, &opts, progress)?;
        let tags: Vec<String> = img.tags.iter().map(|t| t.to_string()).collect();
        dst.tag(&copied.top, &tags)?;
    }
    dst.finish()
}

/// Loads every image an OCI layout directory's `index.json` lists, named as
/// in an OCI archive (see [`load`]). Entries are opened by their ref name; an
/// unnamed one only when it is the layout's only entry.
pub fn load_dir(
    store: &mut Store,
    dir: &std::path::Path,
    progress: &dyn Progress,
) -> Result<Vec<LoadedImage>, TransportError> {
    let idx = read_index(dir)?.ok_or_else(|| {
        TransportError::BadReference(format!(
            "{}: a directory without index.json is not an OCI image layout; load takes an archive file or an OCI layout directory",
            dir.display()
        ))
    })?;
    let _lock = store.lock(LockMode::Shared)?;
    let dst = StoreDestination::new(store)?;
    let opts = CopyOptions::default();
    let only = idx.manifests.len() == 1;
    for d in &idx.manifests {
        let name = d.annotations.get(REF_NAME).map(String::as_str);
        if name.is_none() && !only {
            return Err(TransportError::BadReference(format!(
                "{}: an entry of index.json ({}) has no {REF_NAME} annotation; copy it by digest with `hoist copy`",
                dir.display(),
                d.digest
            )));
        }
        let src = OciDirSource::open(dir, name)?;
        let copied = copy_image(&src, &dst, &opts, progress)?;
        let tags: Vec<String> = oci_entry_tags(d)?.iter().map(|t| t.to_string()).collect();
        dst.tag(&copied.top, &tags)?;
    }
    dst.finish()
}
