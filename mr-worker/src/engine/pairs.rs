//! In-memory key/value buffers and sort-then-group, shared by map and combine.

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

    /// Heap bytes held (arena plus index), plus what sorting the pairs for
    /// writing will take (a [`Sortable`] each): the budget must cover the
    /// moment of the spill too, or a buffer of many small pairs (one hot
    /// key) would need three times its size when written.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
            + self.entries.capacity() * std::mem::size_of::<Entry>()
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

/// The first eight bytes of a key, big-endian and zero-padded: comparing
/// prefixes as integers agrees with comparing the keys, up to ties.
fn prefix(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = key.len().min(8);
    b[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(b)
}

/// One pair in a sort: the key's prefix first, so most comparisons are a
/// single integer compare rather than a memcmp call.
type Sortable<'a> = (u64, &'a [u8], &'a [u8]);

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

/// Sorts the pairs of all `bufs` by key (bytewise) and calls `f` once per
/// distinct key with a stream of its values.
pub fn sort_and_group(bufs: &[&PairBuf], mut f: impl FnMut(&[u8], &mut dyn Values)) {
    let total = bufs.iter().map(|b| b.len()).sum();
    let mut pairs: Vec<Sortable<'_>> = Vec::with_capacity(total);
    for b in bufs {
        pairs.extend(b.entries.iter().map(|&e| {
            let (k, v) = b.pair(e);
            (prefix(k), k, v)
        }));
    }
    pairs.par_sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    let mut i = 0;
    while i < pairs.len() {
        let key = pairs[i].1;
        let mut j = i + 1;
        while j < pairs.len() && pairs[j].1 == key {
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
