//! Sort-benchmark records, byte for byte as the benchmark's own `gensort`
//! (version 1.5) writes them, and the summary its `valsort` checks: so the
//! framework's sort is measured on the benchmark's data and judged by its
//! rules, without the benchmark's code in the project.
//!
//! Record R of a data set depends on R alone: its bytes come from ten
//! consecutive values of a 128-bit linear congruential generator
//! (`X(n+1) = A X(n) + C mod 2^128`, `X(0) = 0`), `X(R+1) .. X(R+10)`. A
//! binary record is ten 10-byte chunks, chunk k the top 80 bits of
//! `X(R+1+k)` XOR a fixed mask (none for the key, chunk 0); an ASCII record
//! (`--ascii`) is printable: a key of ten base-95 digits of `X(R+1)`, the
//! record number in hex, filler from its low bits, `\r\n`. Skewed keys
//! (`--skew`) overwrite a prefix of the key, whose length comes from bits
//! the key does not use, with the key prefix of a small record number
//! chosen by R's bit length. Any range of records can be made alone (the
//! generator jumps ahead by squaring), so files are made in parallel.
//!
//! The summary (`valsort`'s): the record count, the sum modulo 2^128 of
//! each record's CRC-32 (zlib's), which no reordering changes, duplicate
//! keys, and records whose key sorts below the one before.

use std::io::Write;

/// Bytes in a record.
pub const RECORD: usize = 100;
/// Bytes in a key.
pub const KEY: usize = 10;

/// The generator's multiplier.
const A: u128 = 0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645;
/// The generator's increment.
const C: u128 = 0x4a69_6d47_7261_7952_4950_2020_2020_2001;

/// The masks XORed into the top 80 bits of chunks 1..9 of a binary record.
const MASKS: [u128; 10] = [
    0,
    0xF0E8_E4E2_E1D8_D4D2_D1CC,
    0xCAC9_C6C5_C3B8_B4B2_B1AC,
    0xAAA9_A6A5_A39C_9A99_9695,
    0x938E_8D8B_8778_7472_716C,
    0x6A69_6665_635C_5A59_5655,
    0x534E_4D4B_473C_3A39_3635,
    0x332E_2D2B_271E_1D1B_170F,
    0xC8C4_C2C1_9894_9291_8CE0,
    0x170F_332E_2D2B_271E_1D1B,
];

/// Which kind of records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mode {
    /// Printable records ending in `\r\n` (`gensort -a`).
    pub ascii: bool,
    /// Skewed keys (`gensort -s`).
    pub skew: bool,
}

/// `X(n)`: the generator `n` steps from 0, by composing the affine maps of
/// its power-of-two steps (each the square of the one before).
fn skip(n: u128) -> u128 {
    let (mut a, mut c, mut x) = (A, C, 0u128);
    for bit in 0..128 {
        if n >> bit & 1 == 1 {
            x = a.wrapping_mul(x).wrapping_add(c);
        }
        c = a.wrapping_mul(c).wrapping_add(c);
        a = a.wrapping_mul(a);
    }
    x
}

fn step(x: u128) -> u128 {
    A.wrapping_mul(x).wrapping_add(C)
}

/// The ten generator values record R uses, `X(R+1) .. X(R+10)`, kept as a
/// window that slides one step per record.
struct Window {
    values: [u128; 10],
    /// Where `X(R+1)` is in `values`.
    first: usize,
}

impl Window {
    fn at(record: u128) -> Window {
        let mut values = [0u128; 10];
        let mut x = skip(record);
        for v in &mut values {
            x = step(x);
            *v = x;
        }
        Window { values, first: 0 }
    }

    fn get(&self, k: usize) -> u128 {
        self.values[(self.first + k) % 10]
    }

    fn advance(&mut self) {
        let last = self.get(9);
        self.values[self.first] = step(last);
        self.first = (self.first + 1) % 10;
    }
}

/// The top 80 bits of `v`, big-endian.
fn top80(v: u128) -> [u8; 10] {
    let b = v.to_be_bytes();
    let mut out = [0; 10];
    out.copy_from_slice(&b[..10]);
    out
}

/// The first ten characters of an ASCII key from `x`: eight base-95 digits
/// of its high half, least significant first, then two of its low half.
fn ascii_key(x: u128) -> [u8; 10] {
    let mut out = [0; 10];
    let (mut hi, mut lo) = ((x >> 64) as u64, x as u64);
    for c in &mut out[..8] {
        *c = b' ' + (hi % 95) as u8;
        hi /= 95;
    }
    for c in &mut out[8..] {
        *c = b' ' + (lo % 95) as u8;
        lo /= 95;
    }
    out
}

/// Which small record's key prefix a skewed key of record R borrows: R's
/// bit length, but 64 from 2^60 (the top nibble of a half is tested) and
/// 128 from 2^124.
fn skew_index(r: u128) -> usize {
    let (hi, lo) = ((r >> 64) as u64, r as u64);
    let nibble_set = |v: u64| v >> 60 != 0;
    match hi {
        0 if lo == 0 => 0,
        0 if nibble_set(lo) => 64,
        0 => 64 - lo.leading_zeros() as usize,
        _ if nibble_set(hi) => 128,
        _ => 128 - hi.leading_zeros() as usize,
    }
}

/// The key prefixes skewed keys borrow: those of records 0..=128 (binary
/// and ASCII), by skew index.
struct Borrowed {
    binary: Vec<[u8; KEY]>,
    ascii: Vec<[u8; KEY]>,
}

impl Borrowed {
    fn new() -> Borrowed {
        let firsts: Vec<u128> = (0..=128u128).map(|k| Window::at(k).get(0)).collect();
        Borrowed {
            binary: firsts.iter().map(|&x| top80(x)).collect(),
            ascii: firsts.iter().map(|&x| ascii_key(x)).collect(),
        }
    }
}

/// Writes record `r` (whose window is `w`) into `out`.
fn record(r: u128, w: &Window, mode: Mode, borrowed: &Borrowed, out: &mut [u8; RECORD]) {
    let q0 = w.get(0);
    if mode.ascii {
        out[..KEY].copy_from_slice(&ascii_key(q0));
        out[10..12].copy_from_slice(b"  ");
        let hex = format!("{r:032X}");
        out[12..44].copy_from_slice(hex.as_bytes());
        out[44..46].copy_from_slice(b"  ");
        let lo = q0 as u64;
        for g in 0..13 {
            let nibble = (lo >> (48 - 4 * g)) & 0xF;
            let digit = b"0123456789ABCDEF"[nibble as usize];
            out[46 + 4 * g..50 + 4 * g].fill(digit);
        }
        out[98..].copy_from_slice(b"\r\n");
        if mode.skew {
            let n = match (q0 >> 32) & 7 {
                7 => 0,
                n => n as usize,
            };
            let from = &borrowed.ascii[skew_index(r)];
            out[..n].copy_from_slice(&from[..n]);
        }
        return;
    }
    for k in 0..10 {
        let chunk = top80(w.get(k) ^ (MASKS[k] << 48));
        out[10 * k..10 * k + 10].copy_from_slice(&chunk);
    }
    if mode.skew {
        let b = match (q0 >> 32) & 0x3f {
            b if b > 48 => 0,
            b => b as usize,
        };
        let from = &borrowed.binary[skew_index(r)];
        let (whole, rest) = (b / 8, b % 8);
        out[..whole].copy_from_slice(&from[..whole]);
        if rest > 0 {
            let keep = 0xffu8 >> rest;
            out[whole] = (from[whole] & !keep) | (out[whole] & keep);
        }
    }
}

/// Writes records `begin .. begin + count` to `w`.
pub fn write_records(
    w: &mut impl Write,
    begin: u128,
    count: u64,
    mode: Mode,
) -> std::io::Result<()> {
    let mut window = Window::at(begin);
    let borrowed = Borrowed::new();
    let mut rec = [0u8; RECORD];
    let mut r = begin;
    for _ in 0..count {
        record(r, &window, mode, &borrowed, &mut rec);
        w.write_all(&rec)?;
        window.advance();
        r = r.wrapping_add(1);
    }
    Ok(())
}

/// What `valsort` reports of a sequence of records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Records seen.
    pub records: u64,
    /// Sum of the records' CRC-32s, modulo 2^128.
    pub checksum: u128,
    /// Records whose key equals the one before.
    pub duplicates: u64,
    /// Records whose key sorts below the one before.
    pub unordered: u64,
    /// The first of them, counted from 0.
    pub first_unordered: Option<u64>,
    /// The first key seen.
    first_key: Option<[u8; KEY]>,
    /// The last key seen.
    last_key: Option<[u8; KEY]>,
}

impl Summary {
    /// Adds the next record.
    pub fn add(&mut self, rec: &[u8]) {
        debug_assert_eq!(rec.len(), RECORD);
        self.checksum = self.checksum.wrapping_add(u128::from(crc32fast::hash(rec)));
        let mut key = [0u8; KEY];
        key.copy_from_slice(&rec[..KEY]);
        match self.last_key.map(|last| last.cmp(&key)) {
            Some(std::cmp::Ordering::Equal) => self.duplicates += 1,
            Some(std::cmp::Ordering::Greater) => {
                self.unordered += 1;
                self.first_unordered.get_or_insert(self.records);
            }
            _ => {}
        }
        self.first_key.get_or_insert(key);
        self.last_key = Some(key);
        self.records += 1;
    }

    /// The summary of this sequence followed by `next`'s (so files can be
    /// summed apart, in parallel, and joined in order).
    pub fn then(self, next: Summary) -> Summary {
        let mut joined = Summary {
            records: self.records + next.records,
            checksum: self.checksum.wrapping_add(next.checksum),
            duplicates: self.duplicates + next.duplicates,
            unordered: self.unordered + next.unordered,
            first_unordered: self
                .first_unordered
                .or(next.first_unordered.map(|i| i + self.records)),
            first_key: self.first_key.or(next.first_key),
            last_key: next.last_key.or(self.last_key),
        };
        if let (Some(last), Some(first)) = (self.last_key, next.first_key) {
            match last.cmp(&first) {
                std::cmp::Ordering::Equal => joined.duplicates += 1,
                std::cmp::Ordering::Greater => {
                    joined.unordered += 1;
                    // The boundary comes before anything inside `next`.
                    if self.first_unordered.is_none() {
                        joined.first_unordered = Some(self.records);
                    }
                }
                std::cmp::Ordering::Less => {}
            }
        }
        joined
    }

    /// The checksum as `valsort` prints it: lowercase hex, no leading zeros.
    pub fn checksum_hex(&self) -> String {
        format!("{:x}", self.checksum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(begin: u128, count: u64, mode: Mode) -> Vec<u8> {
        let mut out = Vec::new();
        write_records(&mut out, begin, count, mode).unwrap();
        out
    }

    fn summary(data: &[u8]) -> Summary {
        let mut s = Summary::default();
        data.chunks(RECORD).for_each(|r| s.add(r));
        s
    }

    #[test]
    fn the_generator_matches_its_published_values() {
        assert_eq!(skip(1), 0x4a696d47726179524950202020202001);
        assert_eq!(skip(2), 0x95e0e48262b3edfe04479485c755b646);
        assert_eq!(skip(12), 0xf8f64263fd0b05159f85e1b55ab35b14);
        assert_eq!(step(skip(500)), 0xadb0a4c39ab062df7d86c9a9cbf050dd);
        assert_eq!(step(skip(1 << 64)), 0x7cc5d0c2ed18328d4950202020202001);
    }

    #[test]
    fn records_match_gensort() {
        // The benchmark's first record: the key spells its authors' tribute.
        let bin = make(0, 3, Mode::default());
        assert_eq!(&bin[..10], b"JimGrayRIP");
        assert_eq!(
            bin[10..20],
            [0x65, 0x08, 0x00, 0x60, 0x83, 0x6b, 0x39, 0x2c, 0xd5, 0x8b]
        );
        assert_eq!(
            bin[100..110],
            [0x95, 0xe0, 0xe4, 0x82, 0x62, 0xb3, 0xed, 0xfe, 0x04, 0x47]
        );
        assert_eq!(bin[296..300], [0x22, 0x0b, 0x82, 0x9e]);
        let ascii = make(
            0,
            3,
            Mode {
                ascii: true,
                skew: false,
            },
        );
        let lines: Vec<&[u8]> = ascii.chunks(RECORD).collect();
        assert_eq!(
            lines[0],
            b"AsfAGHM5om  00000000000000000000000000000000  0000222200002222000022220000222200002222000000001111\r\n"
        );
        assert_eq!(
            lines[2],
            b"uI^EYm8s=|  00000000000000000000000000000002  CCCCFFFF777799995555FFFF11112222999988884444DDDDFFFF\r\n"
        );
        // Checksums of 1,000 records as gensort -c prints them.
        let sum = |m| summary(&make(0, 1000, m)).checksum_hex();
        assert_eq!(sum(Mode::default()), "1ea6370b955");
        assert_eq!(
            sum(Mode {
                ascii: true,
                skew: false
            }),
            "1f5dfb3631a"
        );
        assert_eq!(
            sum(Mode {
                ascii: false,
                skew: true
            }),
            "1e96301166b"
        );
        assert_eq!(
            sum(Mode {
                ascii: true,
                skew: true
            }),
            "1eef17d1cac"
        );
        assert_eq!(
            summary(&make(500, 500, Mode::default())).checksum_hex(),
            "f42b2e0a7b"
        );
    }

    #[test]
    fn skewed_keys_borrow_a_small_records_prefix() {
        let askew = make(
            0,
            5,
            Mode {
                ascii: true,
                skew: true,
            },
        );
        assert_eq!(&askew[400..410], b"Q)FoBkqERn");
        let skew = make(
            16,
            1,
            Mode {
                ascii: false,
                skew: true,
            },
        );
        assert_eq!(
            skew[..10],
            [0x72, 0xdc, 0x0c, 0xa5, 0x18, 0x72, 0x87, 0x49, 0x8d, 0x57]
        );
        for (r, s) in [
            (0u128, 0),
            (1, 1),
            (3, 2),
            (8, 4),
            ((1 << 60) - 1, 60),
            (1 << 60, 64),
        ] {
            assert_eq!(skew_index(r), s, "{r}");
        }
        assert_eq!(skew_index(1 << 64), 65);
        assert_eq!(skew_index(1 << 124), 128);
    }

    #[test]
    fn any_range_is_the_same_bytes_as_in_a_longer_run() {
        let all = make(0, 1000, Mode::default());
        assert_eq!(make(500, 500, Mode::default()), all[50_000..]);
        let mut sorted: Vec<&[u8]> = all.chunks(RECORD).collect();
        sorted.sort();
        let s = summary(&sorted.concat());
        assert_eq!((s.records, s.unordered, s.duplicates), (1000, 0, 0));
        assert_eq!(s.checksum, summary(&all).checksum);
        let u = summary(&all);
        assert_eq!((u.unordered, u.first_unordered), (483, Some(2)));
        // Summed in pieces and joined: the same summary.
        for cut in [0, 1, 2, 3, 500, 999, 1000] {
            let (a, b) = all.split_at(cut * RECORD);
            assert_eq!(summary(a).then(summary(b)), u, "cut at {cut}");
        }
    }
}
