//! In-memory accumulators a map task emits into before anything is written:
//! [`CountTable`] for apps whose values are counts, [`PairBuffers`] for the rest.
//!
//! Both report their approximate heap size so the map engine can spill them
//! as sorted runs when they pass the memory budget, and both write their
//! contents sorted by (partition, key) and combined, which is the order a run
//! file needs.

use crate::engine::counts::PackedCounts;
use crate::engine::pairs::{sort_and_group, PairBuf};
use crate::engine::runfile::{RunError, RunWriter};
use mr_apps::keys::key_prefix;
use mr_apps::{ihash, parse_count, App, Emit};
use rayon::prelude::*;
use std::collections::HashMap;

/// What a map task accumulates into.
pub trait Accumulator: Emit + Send {
    /// An empty accumulator for `reduces` partitions.
    fn new(reduces: u32) -> Self;
    /// Tells the accumulator its memory share, for those that size
    /// structures up front (the default ignores it).
    fn limit(&mut self, _bytes: usize) {}
    /// Approximate heap bytes held.
    fn bytes(&self) -> usize;
    /// Whether it should be spilled, given its share of the task's memory.
    fn over(&self, share: usize) -> bool {
        self.bytes() > share
    }
    /// Pairs emitted into it since the last call (a counter, kept through
    /// spills by the caller).
    fn take_emitted(&mut self) -> u64;
    /// App-defined counters counted into it since the last call.
    fn take_app_counters(&mut self) -> AppCounters;
    /// Tells the accumulator that the app chooses partitions itself: pairs
    /// are then kept together and sorted into partitions with
    /// [`App::partition`] when written (the default ignores it).
    fn defer_partitioning(&mut self) {}
    /// Moves `other`'s contents into `self`.
    fn absorb(&mut self, other: Self);
    /// Writes every partition, sorted by key and combined, to `w` (ending
    /// each partition), and empties `self`. Returns the records written.
    /// App code (combine) may panic; the caller catches it.
    fn write_sorted(&mut self, app: &dyn App, w: &mut RunWriter) -> Result<u64, RunError>;
    /// Like [`Accumulator::write_sorted`] over several accumulators at once.
    fn write_all_sorted(
        mut accs: Vec<Self>,
        app: &dyn App,
        w: &mut RunWriter,
    ) -> Result<u64, RunError>
    where
        Self: Sized,
    {
        let mut all = accs.pop().unwrap_or_else(|| Self::new(w.reduces()));
        for a in accs {
            all.absorb(a);
        }
        all.write_sorted(app, w)
    }
}

type Fast = mr_apps::hash::FastBuild;

/// App-defined counters of one accumulator or task, by name.
pub type AppCounters = std::collections::BTreeMap<String, u64>;

/// Adds `delta` to counter `name` (allocating its name only the first time).
pub fn add_counter(c: &mut AppCounters, name: &str, delta: u64) {
    match c.get_mut(name) {
        Some(v) => *v += delta,
        None => {
            c.insert(name.to_string(), delta);
        }
    }
}

/// Keys of up to 15 bytes packed big-endian with their length in the last
/// byte: comparing packed keys as integers orders them exactly as comparing
/// the byte strings, and one table slot holds key and count together.
const PACKED_MAX: usize = 15;

#[inline]
fn pack(key: &[u8]) -> Option<u128> {
    // The 16th byte of a shorter key's prefix is zero: room for its length.
    (key.len() <= PACKED_MAX).then(|| key_prefix(key) | key.len() as u128)
}

fn unpack(k: u128) -> ([u8; 16], usize) {
    let b = k.to_be_bytes();
    (b, b[15] as usize)
}

/// Decimal digits of `n` in `buf`, without allocating.
pub(crate) fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// Per-key counts for apps that [sum counts](App::sums_counts).
#[derive(Default)]
pub struct CountTable {
    emitted: u64,
    app_counters: AppCounters,
    short: PackedCounts,
    long: HashMap<Box<[u8]>, u64, Fast>,
    long_bytes: usize,
    /// The first long key whose count passed 64 bits (see
    /// [`PackedCounts::overflowed`] for short ones).
    long_overflowed: Option<Box<[u8]>>,
}

impl CountTable {
    /// Adds `n` to `key`'s count.
    // Always inlined: without LTO the compiler kept it out of line, and the
    // call per word costs the word count a few percent.
    #[inline(always)]
    pub fn add(&mut self, key: &[u8], n: u64) {
        if let Some(k) = pack(key) {
            self.short.add(k, n);
        } else if let Some(c) = self.long.get_mut(key) {
            *c = c.checked_add(n).unwrap_or_else(|| {
                self.long_overflowed.get_or_insert_with(|| key.into());
                u64::MAX
            });
        } else {
            self.long_bytes += key.len();
            self.long.insert(key.into(), n);
        }
    }
}

/// The count an app that sums counts emitted; a value that is no decimal
/// count is a broken promise of the app: the call fails loudly (the
/// attempt fails naming the record).
#[inline]
pub(crate) fn check_count(value: &[u8]) -> u64 {
    match parse_count(value) {
        Some(n) => n,
        None => panic!(
            "app declares sums_counts but emitted a value that is not a decimal count: {:?}",
            String::from_utf8_lossy(&value[..value.len().min(40)])
        ),
    }
}

/// Refuses a pair too large for the run file format, as a failure of the
/// app's call (the attempt fails naming the record that emitted it).
#[inline]
pub(crate) fn check_pair(key: &[u8], value: &[u8]) {
    let n = key.len() + value.len();
    if n > crate::engine::runfile::MAX_PAIR {
        panic!(
            "emitted a pair of {n} bytes; a key and its value together must stay under {} MiB",
            crate::engine::runfile::MAX_BLOCK >> 20
        );
    }
}

impl Emit for CountTable {
    fn emit(&mut self, key: &[u8], value: &[u8]) {
        self.emitted += 1;
        check_pair(key, value);
        self.add(key, check_count(value));
    }

    fn count(&mut self, name: &str, delta: u64) {
        add_counter(&mut self.app_counters, name, delta);
    }
}

impl Accumulator for CountTable {
    fn new(_reduces: u32) -> Self {
        Self::default()
    }

    fn limit(&mut self, bytes: usize) {
        // Half the share for the table: growing from a quarter to a half
        // briefly holds both, 3/4 of the share; the rest is for long keys.
        self.short.limit(bytes / 2);
    }

    fn bytes(&self) -> usize {
        // hashbrown: key + value + one control byte per slot.
        self.short.bytes() + self.long.capacity() * 33 + self.long_bytes
    }

    fn over(&self, share: usize) -> bool {
        self.bytes() > share || self.short.full()
    }

    fn take_emitted(&mut self) -> u64 {
        std::mem::take(&mut self.emitted)
    }

    fn take_app_counters(&mut self) -> AppCounters {
        std::mem::take(&mut self.app_counters)
    }

    fn absorb(&mut self, other: Self) {
        let mut other = other;
        other.short.flush();
        if let Some(k) = other.short.overflowed() {
            self.short.note_overflow(k);
        }
        if let Some(k) = other.long_overflowed.take() {
            self.long_overflowed.get_or_insert(k);
        }
        for (k, v) in other.short.take() {
            self.short.add(k, v);
        }
        for (k, v) in other.long {
            self.add(&k, v);
        }
    }

    fn write_sorted(&mut self, _app: &dyn App, w: &mut RunWriter) -> Result<u64, RunError> {
        write_counts(std::slice::from_mut(self), w)
    }

    fn write_all_sorted(
        mut accs: Vec<Self>,
        _app: &dyn App,
        w: &mut RunWriter,
    ) -> Result<u64, RunError> {
        // Sort the threads' entries together and sum equal neighbours: cheaper
        // than inserting one table's keys into another at random.
        write_counts(&mut accs, w)
    }
}

/// Fails the write (a panic, which the caller's `combine_call` turns into
/// the attempt's failure) for a key whose count passed 64 bits.
fn overflow(key: &[u8]) -> ! {
    panic!(
        "the counts of key {:?} overflow 64 bits",
        String::from_utf8_lossy(&key[..key.len().min(40)])
    )
}

/// Sums the counts of adjacent entries with the same partition and key.
fn sum_adjacent(v: &mut Vec<(u32, Box<[u8]>, u64)>) {
    v.dedup_by(|next, kept| {
        let same = next.0 == kept.0 && next.1 == kept.1;
        if same {
            kept.2 = kept
                .2
                .checked_add(next.2)
                .unwrap_or_else(|| overflow(&kept.1));
        }
        same
    });
}

/// The union of several key-sorted lists, counts of equal keys summed, in
/// key order. There is one list per thread of a task, so few.
fn merge_sorted(
    mut lists: Vec<std::iter::Peekable<impl Iterator<Item = (u128, u64)>>>,
) -> impl Iterator<Item = (u128, u64)> {
    std::iter::from_fn(move || {
        let key = lists
            .iter_mut()
            .filter_map(|l| l.peek().map(|e| e.0))
            .min()?;
        let mut total = 0u64;
        for l in lists.iter_mut() {
            if let Some(&(_, n)) = l.peek().filter(|e| e.0 == key) {
                total = total.checked_add(n).unwrap_or_else(|| {
                    let (b, len) = unpack(key);
                    overflow(&b[..len])
                });
                l.next();
            }
        }
        Some((key, total))
    })
}

/// Writes the union of `tables`, sorted by (partition, key), counts summed,
/// and empties them.
fn write_counts(tables: &mut [CountTable], w: &mut RunWriter) -> Result<u64, RunError> {
    let reduces = w.reduces();
    for t in tables.iter_mut() {
        // The last queued adds first: an overflow among them counts too.
        t.short.flush();
        if let Some(k) = t.short.overflowed() {
            let (b, len) = unpack(k);
            overflow(&b[..len]);
        }
        if let Some(k) = &t.long_overflowed {
            overflow(k);
        }
    }
    let mut long: Vec<(u32, Box<[u8]>, u64)> = Vec::new();
    for t in tables.iter_mut() {
        long.extend(t.long.drain().map(|(k, v)| (ihash(&k) % reduces, k, v)));
        t.long_bytes = 0;
        t.long.shrink_to(0);
    }
    long.par_sort_unstable();
    sum_adjacent(&mut long);
    // Each table sorts its own entries in place, by partition then key
    // (tables in parallel); the partitions are then merged across tables.
    let part_of = |k: u128| {
        let (b, len) = unpack(k);
        ihash(&b[..len]) % reduces
    };
    let drained: Vec<_> = tables
        .par_iter_mut()
        .map(|t| t.short.drain_by_partition(reduces, part_of))
        .collect();
    let mut records = long.len() as u64;
    let mut li = 0;
    let mut num = [0u8; 20];
    for r in 0..reduces {
        let mut short =
            merge_sorted(drained.iter().map(|d| d.partition(r).peekable()).collect()).peekable();
        loop {
            let l = long.get(li).filter(|e| e.0 == r);
            // Take whichever key is smaller; packed keys are at most 15
            // bytes and long ones at least 16, so they never tie.
            let take_short = match (short.peek(), l) {
                (Some(&(k, _)), Some(l)) => {
                    let (b, len) = unpack(k);
                    b[..len] < *l.1
                }
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if take_short {
                let (k, n) = short.next().expect("peeked");
                let (b, len) = unpack(k);
                w.push(&b[..len], decimal(n, &mut num))?;
                records += 1;
            } else if let Some(l) = l {
                w.push(&l.1, decimal(l.2, &mut num))?;
                li += 1;
            }
        }
        w.end_partition()?;
    }
    Ok(records)
}

/// Raw pairs, one buffer per partition, for apps without a count combiner.
pub struct PairBuffers {
    emitted: u64,
    app_counters: AppCounters,
    parts: Vec<PairBuf>,
    reduces: u32,
    /// The app partitions: everything goes to `parts[0]` until written.
    deferred: bool,
}

impl Emit for PairBuffers {
    fn emit(&mut self, key: &[u8], value: &[u8]) {
        self.emitted += 1;
        check_pair(key, value);
        let r = if self.deferred {
            0
        } else {
            (ihash(key) % self.reduces) as usize
        };
        self.parts[r].push(key, value);
    }

    fn count(&mut self, name: &str, delta: u64) {
        add_counter(&mut self.app_counters, name, delta);
    }
}

impl PairBuffers {
    /// Sorts deferred pairs into the partitions the app chooses.
    fn repartition(&mut self, app: &dyn App) {
        if !self.deferred {
            return;
        }
        let all = std::mem::take(&mut self.parts[0]);
        let reduces = self.reduces;
        let parts = &mut self.parts;
        sort_and_group(&[&all], |key, values| {
            let r = (app.partition(key, reduces) % reduces) as usize;
            while let Some(v) = values.next_value() {
                parts[r].push(key, v);
            }
        });
    }
}

impl Accumulator for PairBuffers {
    fn new(reduces: u32) -> Self {
        PairBuffers {
            emitted: 0,
            app_counters: AppCounters::new(),
            deferred: false,
            parts: (0..reduces).map(|_| PairBuf::default()).collect(),
            reduces,
        }
    }

    fn bytes(&self) -> usize {
        self.parts.iter().map(PairBuf::heap_bytes).sum()
    }

    fn take_emitted(&mut self) -> u64 {
        std::mem::take(&mut self.emitted)
    }

    fn take_app_counters(&mut self) -> AppCounters {
        std::mem::take(&mut self.app_counters)
    }

    fn defer_partitioning(&mut self) {
        self.deferred = true;
    }

    fn absorb(&mut self, other: Self) {
        for (mine, theirs) in self.parts.iter_mut().zip(&other.parts) {
            mine.append(theirs);
        }
    }

    fn write_sorted(&mut self, app: &dyn App, w: &mut RunWriter) -> Result<u64, RunError> {
        if self.deferred && app.total_order() {
            let records = write_ranges(&[&*self], app, w)?;
            self.parts.iter_mut().for_each(|p| *p = PairBuf::default());
            return Ok(records);
        }
        self.repartition(app);
        let records = write_partitions(&[&*self], app, w)?;
        self.parts.iter_mut().for_each(|p| *p = PairBuf::default());
        Ok(records)
    }

    fn write_all_sorted(
        mut accs: Vec<Self>,
        app: &dyn App,
        w: &mut RunWriter,
    ) -> Result<u64, RunError> {
        if app.total_order() && accs.iter().all(|a| a.deferred) {
            let refs: Vec<&PairBuffers> = accs.iter().collect();
            return write_ranges(&refs, app, w);
        }
        accs.iter_mut().for_each(|a| a.repartition(app));
        // Sort the threads' buffers together instead of copying them into one.
        let refs: Vec<&PairBuffers> = accs.iter().collect();
        write_partitions(&refs, app, w)
    }
}

/// Writes the sorted, combined union of `accs`' deferred pairs when the
/// app partitions by key range (a total order): its partitions follow key
/// order, so one sort of every pair gives them one after another, with no
/// sort into partitions first and no copy of the pairs.
fn write_ranges(accs: &[&PairBuffers], app: &dyn App, w: &mut RunWriter) -> Result<u64, RunError> {
    let combine = app.has_combiner();
    let reduces = w.reduces();
    let (mut records, mut err, mut current) = (0, None, 0u32);
    let bufs: Vec<&PairBuf> = accs.iter().filter_map(|a| a.parts.first()).collect();
    sort_and_group(&bufs, |key, values| {
        if err.is_some() {
            return;
        }
        let r = app.partition(key, reduces).min(reduces - 1);
        // Ranges never go back: a key below the current range would mean a
        // partitioner that is no range, and a wrong output.
        assert!(
            r >= current,
            "the total order's partitioner went back from {current} to {r}"
        );
        while current < r {
            if let Err(e) = w.end_partition() {
                err = Some(e);
                return;
            }
            current += 1;
        }
        write_group(app, combine, key, values, w, &mut records, &mut err);
    });
    if let Some(e) = err {
        return Err(e);
    }
    while current < reduces {
        w.end_partition()?;
        current += 1;
    }
    Ok(records)
}

/// Writes one key's values to `w`, combined first if the app `combine`s,
/// counting the records written; after an error (kept in `err`), nothing.
fn write_group(
    app: &dyn App,
    combine: bool,
    key: &[u8],
    values: &mut dyn mr_apps::Values,
    w: &mut RunWriter,
    records: &mut u64,
    err: &mut Option<RunError>,
) {
    let mut put = |v: &[u8]| {
        if err.is_none() {
            *records += 1;
            *err = w.push(key, v).err();
        }
    };
    if combine {
        app.combine(key, values, &mut put);
    } else {
        while let Some(v) = values.next_value() {
            put(v);
        }
    }
}

/// Writes partition by partition the sorted, combined union of `accs`.
fn write_partitions(
    accs: &[&PairBuffers],
    app: &dyn App,
    w: &mut RunWriter,
) -> Result<u64, RunError> {
    let combine = app.has_combiner();
    let mut records = 0;
    let mut err = None;
    for r in 0..w.reduces() as usize {
        let bufs: Vec<&PairBuf> = accs.iter().filter_map(|a| a.parts.get(r)).collect();
        sort_and_group(&bufs, |key, values| {
            write_group(app, combine, key, values, w, &mut records, &mut err)
        });
        if let Some(e) = err.take() {
            return Err(e);
        }
        w.end_partition()?;
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_is_the_key_padded_with_zeros_then_its_length() {
        let text: Vec<u8> = (1..=40u8).map(|i| i.wrapping_mul(37)).collect();
        for start in 0..text.len() {
            for len in 0..=PACKED_MAX.min(text.len() - start) {
                let key = &text[start..start + len];
                let mut b = [0u8; 16];
                b[..len].copy_from_slice(key);
                b[15] = len as u8;
                assert_eq!(pack(key), Some(u128::from_be_bytes(b)), "{key:?}");
            }
        }
    }

    #[test]
    fn packed_keys_order_like_bytes() {
        let keys: [&[u8]; 7] = [b"", b"\0", b"a", b"a\0", b"ab", b"b", b"zzzzzzzzzzzzzzz"];
        for a in keys {
            for b in keys {
                assert_eq!(pack(a).cmp(&pack(b)), a.cmp(b), "{a:?} vs {b:?}");
            }
            let (bytes, len) = unpack(pack(a).unwrap());
            assert_eq!(&bytes[..len], a);
        }
        assert!(pack(&[b'x'; 16]).is_none());
    }

    /// Writes `tables` as one run; the panic message if the write panicked.
    fn write_failure(tables: &mut [CountTable]) -> Option<String> {
        let dir = tempfile::tempdir().unwrap();
        let mut w = RunWriter::create(&dir.path().join("run"), 0, 3).unwrap();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            write_counts(tables, &mut w).unwrap();
        }))
        .err()
        .map(|p| p.downcast_ref::<String>().cloned().unwrap_or_default())
    }

    #[test]
    fn a_count_past_64_bits_fails_the_write_naming_its_key() {
        let long = b"a-key-of-more-than-fifteen-bytes";
        // In one table, a short key and a long one; across two tables, the
        // same (the sums happen in the merge, not in a table).
        for (key, across) in [
            (&b"short"[..], false),
            (&long[..], false),
            (&b"short"[..], true),
            (&long[..], true),
        ] {
            let mut a = CountTable::default();
            let mut b = CountTable::default();
            a.add(b"fine", 2);
            a.add(key, u64::MAX - 1);
            match across {
                false => a.add(key, 2),
                true => b.add(key, 2),
            }
            // Not flushed by hand: the overflowing add may still be queued.
            let failure = write_failure(&mut [a, b]);
            let name = String::from_utf8_lossy(key).into_owned();
            assert!(
                failure
                    .as_deref()
                    .is_some_and(|m| m.contains("overflow") && m.contains(&name)),
                "{name} across={across}: {failure:?}"
            );
        }
        // The largest sum that fits is written, not refused.
        let mut a = CountTable::default();
        a.add(b"short", u64::MAX - 1);
        a.add(b"short", 1);
        assert_eq!(write_failure(&mut [a]), None);
    }

    #[test]
    fn counts_parse_and_print() {
        assert_eq!(parse_count(b"1"), Some(1));
        assert_eq!(parse_count(b"18446744073709551615"), Some(u64::MAX));
        for bad in [&b""[..], b"-1", b"1a", b"18446744073709551616"] {
            assert_eq!(parse_count(bad), None);
        }
        let mut buf = [0u8; 20];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(u64::MAX, &mut buf), b"18446744073709551615");
    }
}
