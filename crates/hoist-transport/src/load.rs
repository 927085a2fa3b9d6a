//! `load`: a copy of every image of a `docker save` archive or an OCI
//! archive into the store. Each blob is verified as it is staged (a layer
//! against its diffID in the same pass); only when the whole archive checks
//! out does the store destination rename blobs into place and update the
//! index, so a bad archive leaves the store exactly as it was.

use crate::archive_source::{ArchiveSource, LoadInput};
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
