//! Layers' content sizes as Docker counts them (`docker images`/`history`
//! SIZE: files' bytes, not tar bytes), kept in the index. A commit measures
//! its uncompressed layers (a walk over their headers); a compressed layer is
//! measured on first need instead of during the copy, whose single pass
//! hashes bytes and never parses the tar.

use crate::{ImageRecord, Store, StoreError};
use hoist_oci::Digest;

impl Store {
    /// The content size of each layer of `img`, base first. Sizes not yet
    /// recorded are measured from the layer blobs (an uncompressed layer by
    /// walking its headers, a compressed one by decompressing it once) and,
    /// when this user may write the index, recorded for next time.
    pub fn content_sizes(&self, img: &ImageRecord) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::with_capacity(img.layers.len());
        let mut measured: Vec<(Digest, u64)> = Vec::new();
        for l in &img.layers {
            let chain = &l.layer.chain_id;
            if let Some(n) = self.index().content_size(chain)? {
                out.push(n);
                continue;
            }
            if let Some((_, n)) = measured.iter().find(|(c, _)| c == chain) {
                out.push(*n);
                continue;
            }
            let file = self.open_blob(&l.blob)?;
            let n = hoist_archive::layer_file_content_size(file).map_err(|e| {
                StoreError::Corrupt(format!(
                    "layer {} does not read as a tar ({e}); run `hoist fsck`",
                    l.blob
                ))
            })?;
            measured.push((chain.clone(), n));
            out.push(n);
        }
        if !measured.is_empty() {
            self.record_content_sizes(&measured);
        }
        Ok(out)
    }

    /// Keeps measured sizes in the index. A cache: a store this user cannot
    /// write (or a busy one) just measures again next time, so failures are
    /// not errors of the reading command that measured.
    fn record_content_sizes(&self, sizes: &[(Digest, u64)]) {
        let index = self.root().join("index.db");
        if !index.is_file() || !crate::writable(&index) || !crate::writable(self.root()) {
            return;
        }
        if let Ok(mut db) = crate::index::Db::open(&index) {
            let _ = db.set_content_sizes(sizes);
        }
    }
}
