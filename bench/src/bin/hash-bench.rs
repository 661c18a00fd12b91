//! Which hasher for the framework's hash tables of app data: `foldhash`
//! (what mr-apps uses, as `FastBuild`) against `rustc-hash` and the
//! hand-written multiply-rotate hasher it replaced (kept here only to
//! measure against),
//! on the two workloads those tables carry: packed short keys (`u128`, the
//! inverted index's per-document word sets) and byte-string keys longer than
//! 16 bytes (the count table's overflow map). Prints ns per operation,
//! median of five rounds; run with `cargo run --release --bin hash-bench`.

use mr_bench::Rng;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::time::Instant;

/// The multiply-rotate hasher the framework used before, eight bytes at a
/// time (the baseline of this comparison).
#[derive(Default, Clone, Copy)]
struct MulRotate(u64);

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for MulRotate {
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
    fn write_u128(&mut self, v: u128) {
        let (lo, hi) = (v as u64, (v >> 64) as u64);
        self.0 = (lo ^ hi.rotate_left(32) ^ self.0).wrapping_mul(K);
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(K);
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }
}

/// Distinct keys per workload, and lookups per round (Zipf-like reuse).
const DISTINCT: usize = 200_000;
const OPS: usize = 4_000_000;

/// A Zipf-like sequence of key indices: a few hot, a long tail.
fn draws(n: usize) -> Vec<usize> {
    let mut rng = Rng::new(7);
    (0..n)
        .map(|_| {
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            ((DISTINCT as f64).powf(u) as usize - 1).min(DISTINCT - 1)
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// ns per insert into a set of packed short keys.
fn short_keys<S: BuildHasher + Default>(keys: &[u128], order: &[usize]) -> f64 {
    median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                let mut set: HashSet<u128, S> = HashSet::with_hasher(S::default());
                for &i in order {
                    set.insert(keys[i]);
                }
                std::hint::black_box(set.len());
                t.elapsed().as_nanos() as f64 / order.len() as f64
            })
            .collect(),
    )
}

/// ns per count update in a map of long byte-string keys.
fn long_keys<S: BuildHasher + Default>(keys: &[Vec<u8>], order: &[usize]) -> f64 {
    median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                let mut map: HashMap<&[u8], u64, S> = HashMap::with_hasher(S::default());
                for &i in order {
                    *map.entry(keys[i].as_slice()).or_default() += 1;
                }
                std::hint::black_box(map.len());
                t.elapsed().as_nanos() as f64 / order.len() as f64
            })
            .collect(),
    )
}

fn main() {
    let mut rng = Rng::new(42);
    let short: Vec<u128> = (0..DISTINCT)
        .map(|_| {
            // Packed like the apps pack words: lowercase letters, zero padded.
            let len = 3 + rng.below(10) as usize;
            let mut b = [0u8; 16];
            for x in b.iter_mut().take(len) {
                *x = b'a' + rng.below(26) as u8;
            }
            u128::from_le_bytes(b)
        })
        .collect();
    let long: Vec<Vec<u8>> = (0..DISTINCT)
        .map(|_| {
            let len = 17 + rng.below(24) as usize;
            (0..len).map(|_| b'a' + rng.below(26) as u8).collect()
        })
        .collect();
    let order = draws(OPS);
    println!(
        "{:<16} {:>16} {:>16}",
        "hasher", "u128 set ns/op", "long keys ns/op"
    );
    let rows: [(&str, f64, f64); 3] = [
        (
            "multiply-rotate",
            short_keys::<BuildHasherDefault<MulRotate>>(&short, &order),
            long_keys::<BuildHasherDefault<MulRotate>>(&long, &order),
        ),
        (
            "foldhash",
            short_keys::<mr_apps::hash::FastBuild>(&short, &order),
            long_keys::<mr_apps::hash::FastBuild>(&long, &order),
        ),
        (
            "rustc-hash",
            short_keys::<rustc_hash::FxBuildHasher>(&short, &order),
            long_keys::<rustc_hash::FxBuildHasher>(&long, &order),
        ),
    ];
    for (name, s, l) in rows {
        println!("{name:<16} {s:>16.2} {l:>16.2}");
    }
}
