//! In-memory key/value buffers and sort-then-group, shared by map and combine.

use mr_apps::keys::{key_prefix, prefetch};
use mr_apps::Values;
use rayon::slice::ParallelSliceMut;

/// Pairs packed into one byte arena, with a compact index: no allocation per
/// record, and sorting moves 16-byte entries, not the bytes.
#[derive(Debug, Default)]
pub struct PairBuf {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    off: usize,
    klen: u32,
    vlen: u32,
}

impl PairBuf {
    /// Appends a pair.
    pub fn push(&mut self, key: &[u8], value: &[u8]) {
        self.entries.push(Entry {
            off: self.bytes.len(),
            klen: key.len() as u32,
            vlen: value.len() as u32,
        });
        self.bytes.extend_from_slice(key);
        self.bytes.extend_from_slice(value);
    }

    /// Heap bytes in use (arena plus index), plus what sorting the pairs
    /// for writing will take (a [`Sortable`] each): the budget must cover
    /// the moment of the spill too, or a buffer of many small pairs (one
    /// hot key) would need three times its size when written. Counted by
    /// length, not capacity: a large vector grows by remapping, and the
    /// room it has not written yet is address space, not memory (counted by
    /// capacity, a task spilled everything it had as soon as its arena
    /// doubled past half its share).
    pub fn heap_bytes(&self) -> usize {
        self.bytes.len()
            + self.entries.len() * std::mem::size_of::<Entry>()
            + self.entries.len() * std::mem::size_of::<Sortable<'_>>()
    }

    /// Appends every pair of `other`.
    pub fn append(&mut self, other: &PairBuf) {
        let base = self.bytes.len();
        self.bytes.extend_from_slice(&other.bytes);
        self.entries.extend(other.entries.iter().map(|e| Entry {
            off: e.off + base,
            ..*e
        }));
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn pair(&self, e: Entry) -> (&[u8], &[u8]) {
        let k = e.off + e.klen as usize;
        (&self.bytes[e.off..k], &self.bytes[k..k + e.vlen as usize])
    }
}

/// One pair in a sort: the key's 16-byte prefix first (see
/// [`key_prefix`]), so comparing two keys of up to 16 bytes, nearly every
/// word, is an integer compare and never a `memcmp` call, even when they are
/// equal.
type Sortable<'a> = (u128, &'a [u8], &'a [u8]);

/// The order of two keys given with their prefixes.
#[inline]
fn key_order(a: &Sortable<'_>, b: &Sortable<'_>) -> std::cmp::Ordering {
    a.0.cmp(&b.0).then_with(|| {
        if a.1.len() <= 16 && b.1.len() <= 16 {
            // Equal up to zero padding: the shorter is a prefix of the other.
            a.1.len().cmp(&b.1.len())
        } else {
            a.1.cmp(b.1)
        }
    })
}

/// Values of one key group of a sorted pair list.
struct GroupValues<'a> {
    pairs: &'a [Sortable<'a>],
    next: usize,
}

impl Values for GroupValues<'_> {
    fn next_value(&mut self) -> Option<&[u8]> {
        let v = self.pairs.get(self.next)?.2;
        self.next += 1;
        Some(v)
    }
}

/// How many pairs ahead of the current group [`sort_and_group`] prefetches.
const PREFETCH_AHEAD: usize = 16;

/// Sorts the pairs of all `bufs` by key (bytewise) and calls `f` once per
/// distinct key with a stream of its values.
pub fn sort_and_group(bufs: &[&PairBuf], mut f: impl FnMut(&[u8], &mut dyn Values)) {
    let total = bufs.iter().map(|b| b.len()).sum();
    let mut pairs: Vec<Sortable<'_>> = Vec::with_capacity(total);
    for b in bufs {
        pairs.extend(b.entries.iter().map(|&e| {
            let (k, v) = b.pair(e);
            (key_prefix(k), k, v)
        }));
    }
    pairs.par_sort_unstable_by(key_order);
    let mut i = 0;
    while i < pairs.len() {
        // Sorted, the pairs' bytes are read in random order: ask for the
        // values of the pairs a little ahead now, so those cache misses
        // overlap with this group's work instead of stalling each group.
        for p in pairs.iter().skip(i + PREFETCH_AHEAD).take(4) {
            prefetch(p.2.as_ptr());
        }
        let key = pairs[i].1;
        let mut j = i + 1;
        while j < pairs.len() && key_order(&pairs[j], &pairs[i]).is_eq() {
            j += 1;
        }
        f(
            key,
            &mut GroupValues {
                pairs: &pairs[i..j],
                next: 0,
            },
        );
        i = j;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_come_out_sorted_with_all_values() {
        let mut a = PairBuf::default();
        let mut b = PairBuf::default();
        a.push(b"pear", b"1");
        a.push(b"apple", b"2");
        b.push(b"pear", b"3");
        b.push(b"", b"4");
        let mut seen = Vec::new();
        sort_and_group(&[&a, &b], |k, vals| {
            let mut vs = mr_apps::collect_values(vals);
            vs.sort();
            seen.push((k.to_vec(), vs));
        });
        assert_eq!(
            seen,
            vec![
                (b"".to_vec(), vec![b"4".to_vec()]),
                (b"apple".to_vec(), vec![b"2".to_vec()]),
                (b"pear".to_vec(), vec![b"1".to_vec(), b"3".to_vec()]),
            ]
        );
    }
}
