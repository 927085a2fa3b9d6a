//! CRC-64 with the ISO polynomial, as Go's `crc64.MakeTable(crc64.ISO)`: the
//! checksum tar-split records for every file (its `storage.CRCTable`).
//! Slicing-by-8, so checking a layer's files costs little next to sha256.

use std::sync::OnceLock;

/// Go's `crc64.ISO`, in the reflected form its tables use.
const ISO: u64 = 0xD800_0000_0000_0000;

fn tables() -> &'static [[u64; 256]; 8] {
    static TABLES: OnceLock<Box<[[u64; 256]; 8]>> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut t = Box::new([[0u64; 256]; 8]);
        for i in 0..256 {
            let mut crc = i as u64;
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ ISO
                } else {
                    crc >> 1
                };
            }
            t[0][i] = crc;
        }
        for i in 0..256 {
            for k in 1..8 {
                let prev = t[k - 1][i];
                t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            }
        }
        t
    })
}

/// A running CRC-64/ISO.
pub(crate) struct Crc64 {
    crc: u64,
}

impl Crc64 {
    /// An empty checksum.
    pub(crate) fn new() -> Self {
        Crc64 { crc: !0 }
    }

    /// Adds bytes.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        let t = tables();
        let mut crc = self.crc;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let v = crc ^ u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            crc = t[7][(v & 0xff) as usize]
                ^ t[6][((v >> 8) & 0xff) as usize]
                ^ t[5][((v >> 16) & 0xff) as usize]
                ^ t[4][((v >> 24) & 0xff) as usize]
                ^ t[3][((v >> 32) & 0xff) as usize]
                ^ t[2][((v >> 40) & 0xff) as usize]
                ^ t[1][((v >> 48) & 0xff) as usize]
                ^ t[0][(v >> 56) as usize];
        }
        for &b in chunks.remainder() {
            crc = t[0][((crc ^ b as u64) & 0xff) as usize] ^ (crc >> 8);
        }
        self.crc = crc;
    }

    /// The checksum as Go's `Sum(nil)` gives it: 8 bytes, big-endian.
    pub(crate) fn sum(&self) -> [u8; 8] {
        (!self.crc).to_be_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_crc_64_go_iso_check_value() {
        // The catalogue's check value of CRC-64/GO-ISO for "123456789".
        let mut c = Crc64::new();
        c.update(b"123456789");
        assert_eq!(c.sum(), 0xb909_56c7_75a4_1001u64.to_be_bytes());
    }

    #[test]
    fn chunked_updates_equal_one_update() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut whole = Crc64::new();
        whole.update(&data);
        let mut parts = Crc64::new();
        for piece in data.chunks(13) {
            parts.update(piece);
        }
        assert_eq!(whole.sum(), parts.sum());
    }
}
