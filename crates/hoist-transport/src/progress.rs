//! Progress reporting hooks; the binary draws bars, libraries only call these.

/// Receives progress events for layers as they are copied.
pub trait Progress: Sync {
    /// A layer (short id) starts; `total` bytes are expected.
    fn start(&self, id: &str, total: u64);
    /// `n` more bytes of the layer were processed.
    fn advance(&self, id: &str, n: u64);
    /// The layer is done; `skipped` when the store already had it.
    fn finish(&self, id: &str, skipped: bool);
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: &str, _: u64) {}
    fn advance(&self, _: &str, _: u64) {}
    fn finish(&self, _: &str, _: bool) {}
}
