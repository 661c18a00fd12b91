//! An open-addressing table of packed keys to counts, updated in batches.
//!
//! The map side of word count is bound by cache misses on its table, not by
//! scanning text: every word is a lookup at a random slot. So lookups are
//! queued: each `add` hashes its key and prefetches its slot, and every
//! [`BATCH`] adds the queue is applied, by which time most slots are in
//! cache and the misses of a batch overlapped instead of following each
//! other. A slot holds key and count together (one miss per lookup).
//!
//! A task's table is emptied where it lies: its entries are packed to the
//! front of the slot array and sorted there by partition, then key
//! ([`PackedCounts::drain_by_partition`]), so writing a run allocates
//! nothing. The emptied slot array goes back to a small process-wide pool
//! that the next task's table starts from: a worker maps task after task
//! meeting much the same vocabulary, and a table that had to double its way
//! up from a few thousand slots, faulting in fresh pages each time, cost
//! every 64 MiB task tens of milliseconds.

use mr_apps::keys::prefetch;

/// Keys queued before they are applied.
const BATCH: usize = 32;
/// The empty-slot marker: never a packed key, whose last byte (the length)
/// is at most 15.
const EMPTY: u128 = u128::MAX;

/// One key and its count; `part` is only set while the table is drained.
#[derive(Clone, Copy)]
#[repr(C, align(32))]
struct Slot {
    key: u128,
    count: u64,
    part: u64,
}

const EMPTY_SLOT: Slot = Slot {
    key: EMPTY,
    count: 0,
    part: 0,
};

/// Emptied slot arrays of finished tables, for the next tables to start from.
static POOL: std::sync::Mutex<Vec<Vec<Slot>>> = std::sync::Mutex::new(Vec::new());

/// Slot arrays smaller than this are not worth keeping (1 MiB).
const POOL_MIN_SLOTS: usize = 1 << 15;

/// An empty slot array of a power-of-two length of at least `min` and at
/// most `max` slots: a pooled one if one fits, else a new one of `min`.
fn slot_array(min: usize, max: usize) -> Vec<Slot> {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    // The largest that fits: a reused table should not have to grow again.
    let best = (0..pool.len())
        .filter(|&i| (min..=max).contains(&pool[i].len()))
        .max_by_key(|&i| pool[i].len());
    match best {
        Some(i) => pool.swap_remove(i),
        None => {
            drop(pool);
            vec![EMPTY_SLOT; min]
        }
    }
}

/// Gives an empty slot array back for later tables. The pool keeps one
/// array per thread of the pool at most (the tables that can be live at
/// once), so what it holds stays within one task's memory budget.
fn recycle(slots: Vec<Slot>) {
    if slots.len() < POOL_MIN_SLOTS {
        return;
    }
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if pool.len() < rayon::current_num_threads().max(1) {
        pool.push(slots);
    } else if let Some(smallest) = (0..pool.len()).min_by_key(|&i| pool[i].len()) {
        if pool[smallest].len() < slots.len() {
            pool[smallest] = slots;
        }
    }
}

/// Packed `u128` keys to `u64` counts.
pub struct PackedCounts {
    slots: Vec<Slot>,
    mask: usize,
    len: usize,
    /// Slots beyond which the table stops doubling and fills to 7/8 instead,
    /// reporting itself over budget so the owner spills it.
    max_slots: usize,
    queue: [(u128, u64, u64); BATCH],
    queued: usize,
    /// The first key whose count passed 64 bits (kept at the maximum):
    /// the owner fails the attempt naming it rather than wrap.
    overflowed: Option<u128>,
}

impl Default for PackedCounts {
    fn default() -> Self {
        Self::with_capacity(1 << 12)
    }
}

#[inline]
fn hash(k: u128) -> u64 {
    let (lo, hi) = (k as u64, (k >> 64) as u64);
    let h = (lo ^ hi.rotate_left(32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 29)
}

impl PackedCounts {
    /// A table with room for `n` keys before it grows (more if an emptied
    /// table's slots are reused).
    pub fn with_capacity(n: usize) -> Self {
        let cap = (n * 2).next_power_of_two().max(16);
        let slots = slot_array(cap, usize::MAX);
        PackedCounts {
            mask: slots.len() - 1,
            slots,
            len: 0,
            max_slots: usize::MAX,
            queue: [(0, 0, 0); BATCH],
            queued: 0,
            overflowed: None,
        }
    }

    /// Queues `n` to be added to `key`'s count.
    #[inline]
    pub fn add(&mut self, key: u128, n: u64) {
        let h = hash(key);
        prefetch(&self.slots[h as usize & self.mask]);
        self.queue[self.queued] = (key, h, n);
        self.queued += 1;
        if self.queued == BATCH {
            self.flush();
        }
    }

    /// Applies every queued add.
    pub fn flush(&mut self) {
        for i in 0..self.queued {
            let (k, h, n) = self.queue[i];
            self.apply(k, h, n);
        }
        self.queued = 0;
    }

    #[inline]
    fn apply(&mut self, key: u128, h: u64, n: u64) {
        let mut i = h as usize & self.mask;
        loop {
            let s = &mut self.slots[i];
            if s.key == key {
                // Checked, not wrapped: a sum past 64 bits is noted here
                // (this runs outside any call that could fail) and failed
                // on by the owner when it writes.
                s.count = s.count.checked_add(n).unwrap_or_else(|| {
                    self.overflowed.get_or_insert(key);
                    u64::MAX
                });
                return;
            }
            if s.key == EMPTY {
                *s = Slot {
                    key,
                    count: n,
                    part: 0,
                };
                self.len += 1;
                // Keep the load at most one half, so probes stay short; at
                // the size limit it fills instead and says it is `full` at
                // 7/8, which its owner checks every few thousand adds and
                // spills; growing past the limit at 15/16 is only a safety
                // net (a table must never fill up entirely).
                let n = self.slots.len();
                if (self.len * 2 > n && n < self.max_slots) || self.len * 16 > n * 15 {
                    self.grow();
                }
                return;
            }
            i = (i + 1) & self.mask;
        }
    }

    fn grow(&mut self) {
        let doubled = slot_array(self.slots.len() * 2, self.slots.len() * 2);
        let old = std::mem::replace(&mut self.slots, doubled);
        self.mask = self.slots.len() - 1;
        for s in old.iter().filter(|s| s.key != EMPTY) {
            let mut i = hash(s.key) as usize & self.mask;
            while self.slots[i].key != EMPTY {
                i = (i + 1) & self.mask;
            }
            self.slots[i] = *s;
        }
    }

    /// Caps doubling at about `bytes` of slots (see `max_slots`).
    pub fn limit(&mut self, bytes: usize) {
        self.max_slots = (bytes / std::mem::size_of::<Slot>())
            .max(16)
            .next_power_of_two();
        if self.slots.len() > self.max_slots && self.len == 0 && self.queued == 0 {
            // A reused array too big for this budget: start small instead.
            let small = slot_array(16, self.max_slots);
            recycle(std::mem::replace(&mut self.slots, small));
            self.mask = self.slots.len() - 1;
        }
    }

    /// Heap bytes the table holds.
    pub fn bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<Slot>()
    }

    /// True when the table is at its size limit and 7/8 full: time to
    /// empty it (it grows past the limit only when nearly full).
    pub fn full(&self) -> bool {
        self.slots.len() >= self.max_slots && self.len * 8 > self.slots.len() * 7
    }

    /// Distinct keys (after a flush).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no key is held or queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0 && self.queued == 0
    }

    /// Empties the table in place, ordered by partition (`part_of` each
    /// key, below `parts`) and then by key. The entries are read through
    /// the returned view; dropping it leaves the table empty, with its
    /// slots kept for more adds.
    pub fn drain_by_partition(&mut self, parts: u32, part_of: impl Fn(u128) -> u32) -> Drained<'_> {
        self.flush();
        // Pack the entries to the front, each tagged with its partition.
        let mut n = 0;
        let mut last = 0;
        for i in 0..self.slots.len() {
            if self.slots[i].key != EMPTY {
                let mut s = self.slots[i];
                s.part = u64::from(part_of(s.key));
                self.slots[n] = s;
                n += 1;
                last = i + 1;
            }
        }
        debug_assert_eq!(n, self.len);
        // Every slot from `n` on is free again (the moved ones included).
        self.slots[n..last].fill(EMPTY_SLOT);
        let entries = &mut self.slots[..n];
        // Bucket by partition in place (counts, then cycles of swaps), so
        // each partition sorts alone, in cache, and they sort in parallel.
        let mut bounds = vec![0usize; parts as usize + 1];
        for s in entries.iter() {
            bounds[s.part as usize + 1] += 1;
        }
        for p in 0..parts as usize {
            bounds[p + 1] += bounds[p];
        }
        let mut next = bounds.clone();
        for p in 0..parts as usize {
            while next[p] < bounds[p + 1] {
                let q = entries[next[p]].part as usize;
                if q == p {
                    next[p] += 1;
                } else {
                    entries.swap(next[p], next[q]);
                    next[q] += 1;
                }
            }
        }
        let mut buckets = Vec::with_capacity(parts as usize);
        let mut rest = &mut *entries;
        for p in 0..parts as usize {
            let (b, r) = rest.split_at_mut(bounds[p + 1] - bounds[p]);
            buckets.push(b);
            rest = r;
        }
        use rayon::prelude::*;
        buckets
            .into_par_iter()
            .for_each(|b| b.sort_unstable_by_key(|s| s.key));
        Drained {
            table: self,
            bounds,
        }
    }

    /// The first key whose count passed 64 bits, if any did.
    pub fn overflowed(&self) -> Option<u128> {
        self.overflowed
    }

    /// Notes `key` as overflowed (its count came from another table that
    /// had passed 64 bits already).
    pub fn note_overflow(&mut self, key: u128) {
        self.overflowed.get_or_insert(key);
    }

    /// Takes every (key, count) out, in no particular order.
    pub fn take(&mut self) -> Vec<(u128, u64)> {
        let d = self.drain_by_partition(1, |_| 0);
        d.partition(0).collect()
    }
}

impl Drop for PackedCounts {
    fn drop(&mut self) {
        if self.len == 0 {
            recycle(std::mem::take(&mut self.slots));
        }
    }
}

/// A table's entries ordered by partition and key; the table is empty once
/// this is dropped.
pub struct Drained<'a> {
    table: &'a mut PackedCounts,
    /// Partition `p`'s entries are `bounds[p]..bounds[p + 1]`.
    bounds: Vec<usize>,
}

impl Drained<'_> {
    /// Entries in partition `p`, by key.
    pub fn partition(&self, p: u32) -> impl Iterator<Item = (u128, u64)> + '_ {
        let p = p as usize;
        self.table.slots[self.bounds[p]..self.bounds[p + 1]]
            .iter()
            .map(|s| (s.key, s.count))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.bounds.last().copied().unwrap_or(0)
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Drained<'_> {
    fn drop(&mut self) {
        let n = self.len();
        self.table.slots[..n].fill(EMPTY_SLOT);
        self.table.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn agrees_with_a_hashmap_through_growth() {
        let mut t = PackedCounts::with_capacity(4);
        let mut want: HashMap<u128, u64> = HashMap::new();
        let mut x: u64 = 1;
        for i in 0..200_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            let key = u128::from(x >> 50) << 8; // ~16k distinct keys, repeated
            t.add(key, i % 3 + 1);
            *want.entry(key).or_default() += i % 3 + 1;
        }
        t.flush();
        assert_eq!(t.len(), want.len());
        let got: HashMap<u128, u64> = t.take().into_iter().collect();
        assert_eq!(got, want);
        assert!(t.is_empty());
    }

    #[test]
    fn a_limited_table_fills_instead_of_doubling_then_reports_the_need() {
        let mut t = PackedCounts::with_capacity(4);
        t.limit(64 * 32); // 64 slots
        for k in 0..50u128 {
            t.add(k << 8, 1);
        }
        t.flush();
        assert_eq!(t.len(), 50);
        assert_eq!(t.slots.len(), 64, "stopped doubling at the limit");
        assert_eq!(t.bytes(), 64 * 32);
        assert!(!t.full(), "50 of 64 is under 7/8");
        for k in 50..57u128 {
            t.add(k << 8, 1);
        }
        t.flush();
        assert_eq!(t.slots.len(), 64);
        assert!(t.full(), "57 of 64 is over 7/8");
        for k in 57..1000u128 {
            t.add(k << 8, 1);
        }
        t.flush();
        assert_eq!(t.len(), 1000, "past 15/16 it grows anyway");
        assert_eq!(t.take().len(), 1000);
    }
}
