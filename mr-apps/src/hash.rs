//! A fast, unkeyed hasher for tables of app data (words, packed keys).
//!
//! std's default SipHash resists adversarial keys at several times the cost;
//! the keys here are the job's own data, so speed wins. Used by the apps'
//! own sets and by the framework's map-side tables.

use std::hash::{BuildHasherDefault, Hasher};

/// Multiply-rotate hashing, eight bytes at a time.
#[derive(Default, Clone, Copy)]
pub struct FastHash(u64);

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for FastHash {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let v = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            self.0 = (self.0 ^ v).wrapping_mul(K).rotate_left(23);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.0 = (self.0 ^ u64::from_le_bytes(b))
                .wrapping_mul(K)
                .rotate_left(23);
        }
    }
    #[inline]
    fn write_u128(&mut self, v: u128) {
        let (lo, hi) = (v as u64, (v >> 64) as u64);
        self.0 = (lo ^ hi.rotate_left(32) ^ self.0).wrapping_mul(K);
    }
    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(K);
    }
    #[inline]
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // Fold the well-mixed high half into the low bits hash tables index by.
        self.0 ^ (self.0 >> 32)
    }
}

/// A `BuildHasher` for `HashMap::with_hasher` / `HashSet::with_hasher`.
pub type FastBuild = BuildHasherDefault<FastHash>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn distinct_short_keys_spread_over_buckets() {
        let b = FastBuild::default();
        let mut low = std::collections::HashSet::new();
        for i in 0..4096u32 {
            let w = format!("w{i}");
            low.insert(b.hash_one(w.as_bytes()) & 0xfff);
        }
        // A decent hash fills most of 4096 buckets with 4096 keys (~63%).
        assert!(low.len() > 2300, "{}", low.len());
    }
}
