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
                // Keep the load at most one half: probes stay short.
                if self.len * 2 > self.slots.len() {
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

    /// Heap bytes held.
    pub fn bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<Slot>()
    }

    /// Distinct keys (after a flush).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no key is held or queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0 && self.queued == 0
    }

    /// Takes every (key, count) out, leaving a small empty table.
    pub fn take(&mut self) -> Vec<(u128, u64)> {
        self.flush();
        let out = self
            .slots
            .iter()
            .filter(|s| s.key != EMPTY)
            .map(|s| (s.key, s.count))
            .collect();
        *self = Self::default();
        out
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
}
