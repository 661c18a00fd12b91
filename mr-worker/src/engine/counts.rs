//! An open-addressing table of packed keys to counts, updated in batches.
//!
//! The map side of word count is bound by cache misses on its table, not by
//! scanning text: every word is a lookup at a random slot. So lookups are
//! queued: each `add` hashes its key and prefetches its slot, and every
//! [`BATCH`] adds the queue is applied, by which time most slots are in
//! cache and the misses of a batch overlapped instead of following each
//! other. A slot holds key and count together (one miss per lookup).

/// Keys queued before they are applied.
const BATCH: usize = 32;
/// The empty-slot marker: never a packed key, whose last byte (the length)
/// is at most 15.
const EMPTY: u128 = u128::MAX;

#[derive(Clone, Copy)]
#[repr(C, align(32))]
struct Slot {
    key: u128,
    count: u64,
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
    /// A table with room for `n` keys before it grows.
    pub fn with_capacity(n: usize) -> Self {
        let cap = (n * 2).next_power_of_two().max(16);
        PackedCounts {
            slots: vec![
                Slot {
                    key: EMPTY,
                    count: 0
                };
                cap
            ],
            mask: cap - 1,
            len: 0,
            max_slots: usize::MAX,
            queue: [(0, 0, 0); BATCH],
            queued: 0,
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
                s.count += n;
                return;
            }
            if s.key == EMPTY {
                *s = Slot { key, count: n };
                self.len += 1;
                // Keep the load at most one half, so probes stay short; at
                // the size limit let it fill to 7/8 first (the owner spills
                // it soon), and only then grow, for correctness.
                let n = self.slots.len();
                if (self.len * 2 > n && n < self.max_slots) || self.len * 8 > n * 7 {
                    self.grow();
                }
                return;
            }
            i = (i + 1) & self.mask;
        }
    }

    fn grow(&mut self) {
        let doubled = vec![
            Slot {
                key: EMPTY,
                count: 0
            };
            self.slots.len() * 2
        ];
        let old = std::mem::replace(&mut self.slots, doubled);
        self.mask = self.slots.len() - 1;
        for s in old.into_iter().filter(|s| s.key != EMPTY) {
            let mut i = hash(s.key) as usize & self.mask;
            while self.slots[i].key != EMPTY {
                i = (i + 1) & self.mask;
            }
            self.slots[i] = s;
        }
    }

    /// Caps doubling at about `bytes` of slots (see `max_slots`).
    pub fn limit(&mut self, bytes: usize) {
        self.max_slots = (bytes / std::mem::size_of::<Slot>())
            .max(16)
            .next_power_of_two();
    }

    /// Heap bytes the table needs: what it holds, or twice that once it is
    /// past its normal load at the size limit (it would have doubled).
    pub fn bytes(&self) -> usize {
        let held = self.slots.len() * std::mem::size_of::<Slot>();
        if self.len * 2 > self.slots.len() {
            2 * held
        } else {
            held
        }
    }

    /// Distinct keys (after a flush).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no key is held or queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0 && self.queued == 0
    }

    /// Takes every (key, count) out through `f`, leaving a small empty
    /// table with the same size limit.
    pub fn take_map<T>(&mut self, mut f: impl FnMut(u128, u64) -> T) -> Vec<T> {
        self.flush();
        let out = self
            .slots
            .iter()
            .filter(|s| s.key != EMPTY)
            .map(|s| f(s.key, s.count))
            .collect();
        let max_slots = self.max_slots;
        *self = Self::default();
        self.max_slots = max_slots;
        out
    }

    /// Takes every (key, count) out.
    pub fn take(&mut self) -> Vec<(u128, u64)> {
        self.take_map(|k, c| (k, c))
    }
}

#[inline]
fn prefetch(slot: &Slot) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint; any address is allowed.
    unsafe {
        std::arch::x86_64::_mm_prefetch(
            slot as *const Slot as *const i8,
            std::arch::x86_64::_MM_HINT_T0,
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = slot;
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
        assert_eq!(t.bytes(), 2 * 64 * 32, "but says it needs twice that");
        for k in 50..1000u128 {
            t.add(k << 8, 1);
        }
        t.flush();
        assert_eq!(t.len(), 1000, "past 7/8 it grows anyway");
        assert_eq!(t.take().len(), 1000);
    }
}
