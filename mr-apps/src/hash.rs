//! The hasher for tables of app data (words, packed keys): the apps' own
//! sets and the framework's map-side tables.
//!
//! std's default SipHash resists adversarial keys at several times the cost;
//! the keys here are the job's own data, so speed wins. `foldhash` (its
//! fixed-seed fast variant, so runs are repeatable) replaced a hand-written
//! multiply-rotate hasher after `bench/src/bin/hash-bench.rs` measured the
//! three: all equal on packed 16-byte keys (11-13 ns per set insert), and
//! on byte strings over 16 bytes a median over nine runs of 71 ns per count
//! update for foldhash, 79 for `rustc-hash` (within noise of each other)
//! and 94 for the hand-written one (200,000 distinct keys, Zipf-like reuse,
//! 2-core machine).

/// A `BuildHasher` for `HashMap::with_hasher` / `HashSet::with_hasher`.
pub type FastBuild = foldhash::fast::FixedState;

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
