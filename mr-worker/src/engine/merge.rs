//! The k-way merge of sorted runs, shared by the reduce engine and by map
//! tasks merging their spills: one callback per distinct key with a stream of
//! that key's values, in key order.
//!
//! A tree of losers over the inputs, ordered by each input's current key
//! (ties by input index, so value order is deterministic): taking a record
//! costs one comparison per level, half of what a binary heap's sift does.
//! Each input's current key is also kept as a 16-byte big-endian prefix, so
//! most comparisons are one integer compare rather than a `memcmp` (words
//! nearly always fit in 16 bytes). Values are handed out straight from the
//! inputs' read buffers, one at a time.

use crate::engine::runfile::{PartitionReader, RunError};
use mr_apps::keys::key_prefix;
use mr_apps::Values;

/// Inputs to merge, each tagged with a caller-chosen id used in errors.
pub struct Merger<T: Copy> {
    inputs: Vec<(T, PartitionReader)>,
    /// Each input's current key as a prefix (see [`key_prefix`]);
    /// `u128::MAX` once the input has no more records.
    prefix: Vec<u128>,
    /// False once an input has no more records.
    live: Vec<bool>,
    /// `tree[0]` is the input with the smallest current key; `tree[n]`
    /// for `1 <= n < k` the loser of the match at node `n`, whose children
    /// are nodes `2n` and `2n + 1`; leaf `k + i` is input `i`.
    tree: Vec<usize>,
    records: u64,
    /// App-defined counters counted by the callbacks of [`Merger::for_each_group`].
    pub app_counters: crate::engine::table::AppCounters,
}

/// A failed read, tagged with the input it came from.
pub type MergeError<T> = (T, RunError);

/// True when `key` equals the current key of an input whose prefix is
/// `prefix` and whose key is `other`, looking at bytes only when the
/// prefixes cannot tell.
#[inline]
fn same_key(prefix: u128, key: &[u8], other_prefix: u128, other: &[u8]) -> bool {
    prefix == other_prefix && key.len() == other.len() && (key.len() <= 16 || key == other)
}

impl<T: Copy> Merger<T> {
    /// Whether input `a` goes before input `b`; inputs without records go last.
    #[inline]
    fn less(&self, a: usize, b: usize) -> bool {
        // An input without records has the greatest prefix (see
        // `advance_top`), so liveness is looked at only on a tie: the
        // common case is one integer compare.
        let (pa, pb) = (self.prefix[a], self.prefix[b]);
        if pa != pb {
            return pa < pb;
        }
        match (self.live[a], self.live[b]) {
            (false, _) => return false,
            (true, false) => return true,
            _ => {}
        }
        let (ka, kb) = (self.inputs[a].1.key(), self.inputs[b].1.key());
        let order = if ka.len() <= 16 && kb.len() <= 16 {
            // Equal up to zero padding: the shorter is a prefix of the other.
            ka.len().cmp(&kb.len())
        } else {
            ka.cmp(kb)
        };
        order.then(a.cmp(&b)).is_lt()
    }

    /// The winner of the subtree at `node`, recording losers on the way.
    fn build(&mut self, node: usize) -> usize {
        let k = self.inputs.len();
        if node >= k {
            return node - k;
        }
        let (a, b) = (self.build(2 * node), self.build(2 * node + 1));
        let (win, lose) = if self.less(b, a) { (b, a) } else { (a, b) };
        self.tree[node] = lose;
        win
    }

    /// Positions every input on its first record.
    pub fn new(mut inputs: Vec<(T, PartitionReader)>) -> Result<Self, MergeError<T>> {
        let mut live = Vec::with_capacity(inputs.len());
        let mut prefix = Vec::with_capacity(inputs.len());
        for (tag, r) in inputs.iter_mut() {
            let more = r.advance().map_err(|e| (*tag, e))?;
            live.push(more);
            prefix.push(if more { key_prefix(r.key()) } else { u128::MAX });
        }
        let k = inputs.len();
        let mut m = Merger {
            inputs,
            prefix,
            live,
            tree: vec![0; k.max(1)],
            records: 0,
            app_counters: Default::default(),
        };
        if k > 0 {
            m.tree[0] = m.build(1);
        }
        Ok(m)
    }

    /// Records consumed so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The input holding the smallest current key, if any has records left.
    #[inline]
    fn top_index(&self) -> Option<usize> {
        let i = *self.tree.first()?;
        self.live.get(i).copied().unwrap_or(false).then_some(i)
    }

    fn top(&self) -> Option<&PartitionReader> {
        self.top_index().map(|i| &self.inputs[i].1)
    }

    fn advance_top(&mut self) -> Result<(), MergeError<T>> {
        let Some(i) = self.top_index() else {
            return Ok(());
        };
        self.records += 1;
        let (tag, reader) = &mut self.inputs[i];
        if reader.advance().map_err(|e| (*tag, e))? {
            self.prefix[i] = key_prefix(reader.key());
        } else {
            self.live[i] = false;
            self.prefix[i] = u128::MAX;
        }
        // Replay the matches on the path from the leaf to the root.
        let k = self.inputs.len();
        let mut winner = i;
        let mut node = (i + k) / 2;
        while node > 0 {
            if self.less(self.tree[node], winner) {
                std::mem::swap(&mut self.tree[node], &mut winner);
            }
            node /= 2;
        }
        self.tree[0] = winner;
        Ok(())
    }

    /// Calls `f(key, values)` once per distinct key, in order. Values the
    /// callback does not consume are skipped. Stops at the first read error
    /// or the first error `f` returns.
    pub fn for_each_group<E>(
        &mut self,
        mut f: impl FnMut(&[u8], &mut dyn Values) -> Result<(), E>,
    ) -> Result<(), GroupError<T, E>> {
        let mut key = Vec::new();
        while let Some(top) = self.top() {
            key.clear();
            key.extend_from_slice(top.key());
            let prefix = key_prefix(&key);
            let mut values = KeyValues {
                merger: self,
                key: &key,
                prefix,
                pending: false,
                error: None,
            };
            let r = f(&key, &mut values);
            while values.next_value().is_some() {}
            if let Some(e) = values.error.take() {
                return Err(GroupError::Read(e));
            }
            r.map_err(GroupError::Callback)?;
        }
        Ok(())
    }
}

/// Why a merge stopped.
pub enum GroupError<T, E> {
    /// An input could not be read.
    Read(MergeError<T>),
    /// The callback failed.
    Callback(E),
}

/// The values of the current key, streamed from the merge.
struct KeyValues<'a, T: Copy> {
    merger: &'a mut Merger<T>,
    key: &'a [u8],
    /// `key`'s prefix.
    prefix: u128,
    /// The top record was handed out and must be stepped past first.
    pending: bool,
    error: Option<MergeError<T>>,
}

impl<T: Copy> Values for KeyValues<'_, T> {
    fn next_value(&mut self) -> Option<&[u8]> {
        if self.error.is_some() {
            return None;
        }
        if self.pending {
            self.pending = false;
            if let Err(e) = self.merger.advance_top() {
                self.error = Some(e);
                return None;
            }
        }
        let i = self.merger.top_index()?;
        let top = &self.merger.inputs[i].1;
        if !same_key(self.prefix, self.key, self.merger.prefix[i], top.key()) {
            return None;
        }
        self.pending = true;
        Some(top.value())
    }

    fn count(&mut self, name: &str, delta: u64) {
        crate::engine::table::add_counter(&mut self.merger.app_counters, name, delta);
    }
}

/// What a reduce task did.
#[derive(Clone, Debug, Default)]
pub struct ReduceStats {
    /// Distinct keys reduced.
    pub keys: u64,
    /// Records read.
    pub records: u64,
    /// Output bytes.
    pub bytes: u64,
    /// Keys skipped as told by `skip`.
    pub skipped: u64,
    /// Distinct keys read (for streaming reduces, where output lines need
    /// not match keys one to one; else `keys + skipped`).
    pub groups: u64,
    /// App-defined counters.
    pub app_counters: crate::engine::table::AppCounters,
    /// The output's upload, when it went to an object store.
    pub upload: Option<mr_protocol::OutputUpload>,
    /// Where the output's segments begin, when asked for.
    pub index: Option<mr_protocol::OutputIndex>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::runfile::{RunFile, RunWriter};

    /// Keys that share long prefixes, differ only in length or in bytes
    /// past 16, and hold zero bytes: where prefix comparison must defer.
    fn key(x: u64) -> Vec<u8> {
        let stems: [&[u8]; 6] = [
            b"",
            b"a",
            b"a\0",
            b"abcdefghijklmnop",
            b"abcdefghijklmno",
            b"zz",
        ];
        let mut k = stems[(x % 6) as usize].to_vec();
        for _ in 0..(x / 6) % 4 {
            k.push(b"\0az"[((x / 24) % 3) as usize]);
        }
        k
    }

    #[test]
    fn merges_any_number_of_runs_like_a_stable_sort() {
        let dir = tempfile::tempdir().unwrap();
        let mut x: u64 = 7;
        for k in [0usize, 1, 2, 3, 5, 8, 17] {
            let mut want: Vec<(Vec<u8>, usize, u64)> = Vec::new();
            let mut readers = Vec::new();
            for i in 0..k {
                let path = dir.path().join(format!("run-{k}-{i}"));
                let mut keys: Vec<Vec<u8>> = (0..(i * 13) % 40)
                    .map(|_| {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        key(x >> 33)
                    })
                    .collect();
                keys.sort();
                let mut w = RunWriter::create(&path, i as u32, 1).unwrap();
                for (n, key) in keys.iter().enumerate() {
                    w.push(key, n.to_string().as_bytes()).unwrap();
                    want.push((key.clone(), i, n as u64));
                }
                w.end_partition().unwrap();
                w.finish().unwrap();
                let run = RunFile::open(&path, Some(i as u32), 1).unwrap();
                readers.push((i, run.partition(0)));
            }
            // Stable: equal keys in input order, then in their order within the input.
            want.sort();
            let mut got = Vec::new();
            let mut m = Merger::new(readers).unwrap();
            m.for_each_group(|key, values| -> Result<(), ()> {
                while let Some(v) = values.next_value() {
                    got.push((key.to_vec(), String::from_utf8(v.to_vec()).unwrap()));
                }
                Ok(())
            })
            .ok()
            .unwrap();
            let want: Vec<(Vec<u8>, String)> = want
                .into_iter()
                .map(|(k, _, n)| (k, n.to_string()))
                .collect();
            assert_eq!(got, want, "{k} runs");
            assert_eq!(m.records(), got.len() as u64);
        }
    }
}
