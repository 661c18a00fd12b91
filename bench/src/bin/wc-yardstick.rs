//! `wc-yardstick`: the fastest plain word counter we could write for this
//! machine, with none of the framework: the benchmark's yardstick.
//!
//! mmap every file, cut them into line-aligned pieces, and let one thread per
//! core pull pieces and count words into its own hash table; words of up to
//! 16 bytes are packed into a u128 key (one slot holds key and count, no
//! pointer chase to the text), longer ones are keyed by slices of the mmap.
//! Then merge the tables, sort, and write `word count` lines. Words are the
//! framework's: maximal runs of Unicode general category L, invalid UTF-8
//! separating words, so the outputs can be compared line for line.

use memmap2::Mmap;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use unicode_general_category::{get_general_category, GeneralCategory as G};

/// A multiply-xor hasher for packed keys: one multiply per key.
#[derive(Default)]
struct FastHash(u64);

impl Hasher for FastHash {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn write_u128(&mut self, v: u128) {
        let (lo, hi) = (v as u64, (v >> 64) as u64);
        self.0 = (lo ^ hi.rotate_left(32) ^ self.0).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_usize(&mut self, v: usize) {
        self.0 = (self.0 ^ v as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }
}

type Fast = BuildHasherDefault<FastHash>;

/// Words of up to 16 bytes, zero-padded into a u128 (letters are never NUL),
/// in an open-addressing table whose slot holds key and count together.
/// Lookups are queued: each word's slot is prefetched when it is scanned and
/// updated 32 words later, so the cache misses of a batch overlap.
struct Short {
    keys: Vec<u128>,
    counts: Vec<u64>,
    mask: usize,
    len: usize,
    queue: Vec<(u128, usize)>,
}

const NONE: u128 = 0;

impl Short {
    fn new() -> Self {
        let cap = 1 << 16;
        Short {
            keys: vec![NONE; cap],
            counts: vec![0; cap],
            mask: cap - 1,
            len: 0,
            queue: Vec::with_capacity(32),
        }
    }

    #[inline]
    fn hash(k: u128) -> usize {
        let h =
            ((k as u64) ^ ((k >> 64) as u64).rotate_left(32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h ^ (h >> 29)) as usize
    }

    #[inline]
    fn slot_of(&self, k: u128) -> usize {
        Self::hash(k) & self.mask
    }

    #[inline]
    fn add(&mut self, k: u128) {
        let h = Self::hash(k);
        let i = h & self.mask;
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is only a hint.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch(self.keys.as_ptr().add(i) as *const i8, _MM_HINT_T0);
            _mm_prefetch(self.counts.as_ptr().add(i) as *const i8, _MM_HINT_T0);
        }
        // Queue the hash, not the slot: the table may grow before the drain.
        self.queue.push((k, h));
        if self.queue.len() == 32 {
            self.drain();
        }
    }

    fn drain(&mut self) {
        let queue = std::mem::take(&mut self.queue);
        for &(k, h) in &queue {
            self.bump(k, h & self.mask, 1);
        }
        self.queue = queue;
        self.queue.clear();
    }

    fn bump(&mut self, k: u128, mut i: usize, n: u64) {
        loop {
            if self.keys[i] == k {
                self.counts[i] += n;
                return;
            }
            if self.keys[i] == NONE {
                self.keys[i] = k;
                self.counts[i] = n;
                self.len += 1;
                if self.len * 2 > self.keys.len() {
                    self.grow();
                }
                return;
            }
            i = (i + 1) & self.mask;
        }
    }

    fn grow(&mut self) {
        let cap = self.keys.len() * 2;
        let keys = std::mem::replace(&mut self.keys, vec![NONE; cap]);
        let counts = std::mem::replace(&mut self.counts, vec![0; cap]);
        self.mask = cap - 1;
        self.len = 0;
        for (k, c) in keys.into_iter().zip(counts).filter(|(k, _)| *k != NONE) {
            let i = self.slot_of(k);
            self.bump(k, i, c);
        }
    }

    fn entries(mut self) -> impl Iterator<Item = (u128, u64)> {
        self.drain();
        self.keys
            .into_iter()
            .zip(self.counts)
            .filter(|(k, _)| *k != NONE)
    }
}

struct Counts<'a> {
    short: Short,
    long: HashMap<&'a [u8], u64, Fast>,
}

impl<'a> Counts<'a> {
    fn new() -> Self {
        Counts {
            short: Short::new(),
            long: HashMap::with_hasher(Fast::default()),
        }
    }

    #[inline]
    fn add(&mut self, data: &'a [u8], s: usize, e: usize) {
        let len = e - s;
        if len <= 16 {
            // One unaligned 16-byte load, masked to the word, when in bounds.
            let key = if s + 16 <= data.len() {
                let v = u128::from_le_bytes(data[s..s + 16].try_into().unwrap());
                if len == 16 {
                    v
                } else {
                    v & ((1u128 << (8 * len)) - 1)
                }
            } else {
                let mut b = [0u8; 16];
                b[..len].copy_from_slice(&data[s..e]);
                u128::from_le_bytes(b)
            };
            self.short.add(key);
        } else {
            *self.long.entry(&data[s..e]).or_insert(0) += 1;
        }
    }

    fn merge(&mut self, other: Counts<'a>) {
        self.short.drain();
        for (k, v) in other.short.entries() {
            let i = self.short.slot_of(k);
            self.short.bump(k, i, v);
        }
        for (k, v) in other.long {
            *self.long.entry(k).or_insert(0) += v;
        }
    }
}

/// Letter test and UTF-8 width of the char starting at `d[0]` (>= 0x80).
fn non_ascii(d: &[u8]) -> (bool, usize) {
    let w = match d[0] {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return (false, 1),
    };
    match d.get(..w).and_then(|s| std::str::from_utf8(s).ok()) {
        Some(s) => {
            let c = s.chars().next().unwrap();
            let letter = matches!(
                get_general_category(c),
                G::UppercaseLetter
                    | G::LowercaseLetter
                    | G::TitlecaseLetter
                    | G::ModifierLetter
                    | G::OtherLetter
            );
            (letter, w)
        }
        None => (false, 1),
    }
}

fn count<'a>(data: &'a [u8], start: usize, end: usize, counts: &mut Counts<'a>) {
    let mut i = start;
    let mut word: Option<usize> = None;
    while i < end {
        let b = data[i];
        let (letter, w) = if b < 0x80 {
            (b.is_ascii_alphabetic(), 1)
        } else {
            non_ascii(&data[i..])
        };
        match (letter, word) {
            (true, None) => word = Some(i),
            (false, Some(s)) => {
                counts.add(data, s, i);
                word = None;
            }
            _ => {}
        }
        i += w;
    }
    if let Some(s) = word {
        counts.add(data, s, end.min(data.len()));
    }
}

/// Cuts `data` into pieces of about `target` bytes that end after a newline.
fn pieces(data: &[u8], target: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut s = 0;
    while s < data.len() {
        let mut e = (s + target).min(data.len());
        while e < data.len() && data[e - 1] != b'\n' {
            e += 1;
        }
        out.push((s, e));
        s = e;
    }
    out
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(flag), Some(out)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: wc-yardstick --output FILE INPUT...");
    };
    anyhow::ensure!(
        flag == "--output",
        "usage: wc-yardstick --output FILE INPUT..."
    );
    let maps: Vec<Mmap> = args
        .map(|p| {
            let f = std::fs::File::open(&p)?;
            // SAFETY: read-only mapping of an input nobody modifies meanwhile.
            unsafe { Mmap::map(&f) }
        })
        .collect::<Result<_, _>>()?;
    let work: Vec<(usize, usize, usize)> = maps
        .iter()
        .enumerate()
        .flat_map(|(f, m)| pieces(m, 4 << 20).into_iter().map(move |(s, e)| (f, s, e)))
        .collect();
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut tables: Vec<Counts<'_>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut c = Counts::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&(f, s, e)) = work.get(i) else { break };
                        count(&maps[f], s, e, &mut c);
                    }
                    c
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut total = tables.pop().unwrap_or_else(Counts::new);
    for t in tables {
        total.merge(t);
    }
    let mut rows: Vec<(Vec<u8>, u64)> = total
        .short
        .entries()
        .map(|(k, v)| {
            let b = k.to_le_bytes();
            let len = b.iter().position(|&x| x == 0).unwrap_or(16);
            (b[..len].to_vec(), v)
        })
        .chain(total.long.into_iter().map(|(k, v)| (k.to_vec(), v)))
        .collect();
    rows.sort_unstable();
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(&out)?);
    for (k, v) in rows {
        w.write_all(&k)?;
        writeln!(w, " {v}")?;
    }
    w.flush()?;
    Ok(())
}
