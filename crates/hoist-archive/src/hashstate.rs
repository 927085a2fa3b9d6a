//! A SHA-256 whose running state can be saved and restored, in the exact
//! binary form Go's `crypto/sha256` marshals (what the distribution registry
//! stores under `_uploads/<id>/hashstates/sha256/<offset>`).
//!
//! Why not `sha2::Sha256`: its state cannot be exported, and an upload
//! session (or a partly pulled blob in the store's `ingest/`) must survive a
//! restart without re-hashing everything received so far. The block function is still sha2's (`compress256`, SHA-NI when the CPU
//! has it), so speed is the same.

use hoist_oci::{Algorithm, Digest};
use sha2::digest::consts::U64;
use sha2::digest::generic_array::GenericArray;

const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];
const MAGIC: &[u8; 4] = b"sha\x03";
/// Size of a marshaled state: magic, 8 words, one block, the length.
pub const MARSHALED_SIZE: usize = 4 + 32 + 64 + 8;

type Block = GenericArray<u8, U64>;

/// A resumable SHA-256.
#[derive(Clone)]
pub struct Sha256State {
    h: [u32; 8],
    buf: [u8; 64],
    nx: usize,
    len: u64,
}

impl Default for Sha256State {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Sha256State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sha256State {{ len: {} }}", self.len)
    }
}

impl Sha256State {
    /// A fresh hasher.
    pub fn new() -> Self {
        Sha256State {
            h: IV,
            buf: [0; 64],
            nx: 0,
            len: 0,
        }
    }

    /// How many bytes were hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing was hashed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Feeds bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.nx > 0 {
            let n = (64 - self.nx).min(data.len());
            self.buf[self.nx..self.nx + n].copy_from_slice(&data[..n]);
            self.nx += n;
            data = &data[n..];
            if self.nx == 64 {
                let block = Block::clone_from_slice(&self.buf);
                sha2::compress256(&mut self.h, std::slice::from_ref(&block));
                self.nx = 0;
            }
        }
        // Whole blocks go to the block function in batches: one call per
        // batch keeps the per-call overhead off the hot path. The copy into
        // the batch is a memcpy, far cheaper than the compression itself.
        const BATCH: usize = 64;
        let mut batch = [Block::default(); BATCH];
        while data.len() >= 64 {
            let n = (data.len() / 64).min(BATCH);
            for (i, b) in batch.iter_mut().take(n).enumerate() {
                b.copy_from_slice(&data[i * 64..(i + 1) * 64]);
            }
            sha2::compress256(&mut self.h, &batch[..n]);
            data = &data[n * 64..];
        }
        if !data.is_empty() {
            self.buf[..data.len()].copy_from_slice(data);
            self.nx = data.len();
        }
    }

    /// The digest of everything fed so far (the state itself is unchanged).
    pub fn digest(&self) -> Digest {
        let mut s = self.clone();
        let bit_len = s.len.wrapping_mul(8);
        let mut pad = [0u8; 72];
        pad[0] = 0x80;
        let pad_len = if s.nx < 56 { 56 - s.nx } else { 120 - s.nx };
        pad[pad_len..pad_len + 8].copy_from_slice(&bit_len.to_be_bytes());
        s.update(&pad[..pad_len + 8]);
        debug_assert_eq!(s.nx, 0);
        let mut out = [0u8; 32];
        for (chunk, word) in out.chunks_exact_mut(4).zip(s.h) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        // Cannot fail: 64 lowercase hex characters.
        Digest::new(Algorithm::Sha256, &hex::encode(out)).unwrap_or_else(|_| unreachable!())
    }

    /// The state in Go's `encoding.BinaryMarshaler` form.
    pub fn marshal(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(MARSHALED_SIZE);
        b.extend_from_slice(MAGIC);
        for w in self.h {
            b.extend_from_slice(&w.to_be_bytes());
        }
        b.extend_from_slice(&self.buf[..self.nx]);
        b.resize(4 + 32 + 64, 0);
        b.extend_from_slice(&self.len.to_be_bytes());
        b
    }

    /// Restores a state written by [`Sha256State::marshal`] or by Go.
    pub fn unmarshal(b: &[u8]) -> Option<Self> {
        if b.len() != MARSHALED_SIZE || &b[..4] != MAGIC {
            return None;
        }
        let mut h = [0u32; 8];
        for (i, w) in h.iter_mut().enumerate() {
            let o = 4 + i * 4;
            *w = u32::from_be_bytes(b[o..o + 4].try_into().ok()?);
        }
        let mut buf = [0u8; 64];
        buf.copy_from_slice(&b[36..100]);
        let len = u64::from_be_bytes(b[100..108].try_into().ok()?);
        let nx = (len % 64) as usize;
        Some(Sha256State { h, buf, nx, len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    fn reference(data: &[u8]) -> String {
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
    }

    #[test]
    fn matches_sha2_for_many_lengths_and_splits() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for len in [
            0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 4095, 4096, 4097, 10_000,
        ] {
            let d = &data[..len];
            for split in [0, 1, 3, 63, 64, 100, len / 2, len] {
                let split = split.min(len);
                let mut s = Sha256State::new();
                s.update(&d[..split]);
                s.update(&d[split..]);
                assert_eq!(
                    s.digest().to_string(),
                    reference(d),
                    "len {len} split {split}"
                );
                assert_eq!(s.len(), len as u64);
            }
        }
    }

    #[test]
    fn marshal_round_trips_mid_block() {
        let data = vec![0xabu8; 1000];
        let mut s = Sha256State::new();
        s.update(&data[..333]);
        let m = s.marshal();
        assert_eq!(m.len(), MARSHALED_SIZE);
        let mut r = Sha256State::unmarshal(&m).unwrap();
        r.update(&data[333..]);
        assert_eq!(r.digest().to_string(), reference(&data));
        assert!(Sha256State::unmarshal(&m[..50]).is_none());
        let mut bad = m.clone();
        bad[3] = 2;
        assert!(Sha256State::unmarshal(&bad).is_none());
    }

    #[test]
    fn empty_state_marshals_like_go() {
        // Go: sha256.New().(encoding.BinaryMarshaler).MarshalBinary()
        let m = Sha256State::new().marshal();
        assert_eq!(&m[..4], b"sha\x03");
        assert_eq!(&m[4..8], &0x6a09e667u32.to_be_bytes());
        assert!(m[36..].iter().all(|&b| b == 0));
    }
}
