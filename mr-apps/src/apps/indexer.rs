//! Inverted index: for each word, the documents it occurs in.

use crate::{
    hash::FastBuild,
    keys::{key_prefix, prefetch},
    words::for_each_word,
    App, Emit, Values,
};
use std::collections::HashSet;

/// The `indexer` app: map emits `(word, document)` once per distinct word of
/// a chunk; reduce writes `N doc1,doc2,...` with the distinct documents
/// sorted. Documents are deduplicated in combine and reduce, since one file
/// may be mapped as many chunks and splits.
#[derive(Debug, Default, Clone, Copy)]
pub struct Indexer;

/// Words whose set lookups are queued before they are made.
const BATCH: usize = 32;

/// Queued words: the word, its key, its hash.
struct Batch<'a> {
    words: [(&'a [u8], u128, u64); BATCH],
    len: usize,
}

impl Batch<'_> {
    /// Makes the queued lookups, emitting `(word, doc)` for each new word.
    fn insert(&mut self, set: &mut WordSet, emit: &mut dyn Emit, doc: &[u8]) {
        // Slots were prefetched as the words were queued: by now most are
        // in cache, and their misses overlapped.
        for &(w, key, h) in &self.words[..self.len] {
            if set.insert_hashed(key, h) {
                emit.emit(w, doc);
            }
        }
        self.len = 0;
    }
}

impl Default for Batch<'_> {
    fn default() -> Self {
        Batch {
            words: [(&[], 0, 0); BATCH],
            len: 0,
        }
    }
}

/// A set of short words (as [`key_prefix`]es, never 0: words are not
/// empty and hold no NUL) in one open-addressing array. A chunk's words are
/// looked up at random slots, each a likely cache miss; like the engine's
/// count table, lookups are queued and their slots prefetched, so a batch's
/// misses overlap (a `HashSet` cannot prefetch). Kept by the thread across
/// chunks: cleared, it keeps its room.
#[derive(Default)]
struct WordSet {
    slots: Vec<u128>,
    len: usize,
}

impl WordSet {
    fn clear(&mut self) {
        if self.len > 0 {
            self.slots.fill(0);
            self.len = 0;
        }
    }

    fn slot(&self, h: u64) -> usize {
        h as usize & (self.slots.len() - 1)
    }

    /// `key`'s hash, its slot asked for in advance.
    #[inline]
    fn hash_and_prefetch(&mut self, key: u128) -> u64 {
        if self.slots.is_empty() {
            self.slots = vec![0; 1 << 12];
        }
        let h = (((key as u64) ^ ((key >> 64) as u64).rotate_left(29))
            .wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .rotate_left(26);
        prefetch(&self.slots[self.slot(h)]);
        h
    }

    /// Adds `key` (hashed by [`WordSet::hash_and_prefetch`]); true if new.
    fn insert_hashed(&mut self, key: u128, h: u64) -> bool {
        let mut i = self.slot(h);
        loop {
            match self.slots[i] {
                0 => break,
                k if k == key => return false,
                _ => i = (i + 1) & (self.slots.len() - 1),
            }
        }
        self.slots[i] = key;
        self.len += 1;
        if self.len * 2 > self.slots.len() {
            let doubled = vec![0; self.slots.len() * 2];
            let old = std::mem::replace(&mut self.slots, doubled);
            self.len = 0;
            for k in old.into_iter().filter(|&k| k != 0) {
                // Hashes are recomputed; a growing set is rare once warm.
                let h = self.hash_and_prefetch(k);
                self.insert_hashed(k, h);
            }
        }
        true
    }
}

thread_local! {
    /// The words of the chunk being mapped (see [`Indexer::map`]).
    static SEEN: std::cell::RefCell<WordSet> = Default::default();
    /// Room for [`with_distinct_sorted`]'s documents, kept between keys.
    static DOCS: std::cell::RefCell<Docs> = Default::default();
}

/// Documents of one key, packed in one buffer.
#[derive(Default)]
struct Docs {
    bytes: Vec<u8>,
    ranges: Vec<std::ops::Range<usize>>,
}

/// Calls `f` with the distinct values of a stream, sorted bytewise. The
/// values are copied into a buffer the thread keeps, so a key costs no
/// allocation, then sorted and deduplicated (a reduce meets a common word's
/// documents from every map task, so a membership test per value would be
/// quadratic). A run of one repeated value, as one map task's combine sees,
/// is kept once as it arrives.
fn with_distinct_sorted<T>(values: &mut dyn Values, f: impl FnOnce(&Docs) -> T) -> T {
    DOCS.with_borrow_mut(|docs| {
        let Docs { bytes, ranges } = docs;
        bytes.clear();
        ranges.clear();
        while let Some(v) = values.next_value() {
            if ranges.last().is_some_and(|r| &bytes[r.clone()] == v) {
                continue;
            }
            ranges.push(bytes.len()..bytes.len() + v.len());
            bytes.extend_from_slice(v);
        }
        ranges.sort_unstable_by(|a, b| bytes[a.clone()].cmp(&bytes[b.clone()]));
        ranges.dedup_by(|a, b| bytes[a.clone()] == bytes[b.clone()]);
        f(docs)
    })
}

impl Docs {
    /// The documents, in order.
    fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.ranges.iter().map(|r| &self.bytes[r.clone()])
    }
}

impl App for Indexer {
    fn name(&self) -> &str {
        "indexer"
    }

    fn map(&self, filename: &str, chunk: &[u8], emit: &mut dyn Emit) {
        // Words of up to 16 bytes go into the set as one integer (letters are
        // never NUL, so zero padding is unambiguous): no string compares.
        // The set of short words is the thread's, emptied for each chunk:
        // cleared it keeps its room, where a new one would grow its way up
        // to the chunk's vocabulary again.
        SEEN.with_borrow_mut(|short| {
            short.clear();
            let mut long: HashSet<&[u8], FastBuild> = HashSet::default();
            let mut batch = Batch::default();
            let doc = filename.as_bytes();
            for_each_word(chunk, |w| {
                if w.len() > 16 {
                    if long.insert(w) {
                        emit.emit(w, doc);
                    }
                    return;
                }
                let key = key_prefix(w);
                let h = short.hash_and_prefetch(key);
                batch.words[batch.len] = (w, key, h);
                batch.len += 1;
                if batch.len == BATCH {
                    batch.insert(short, emit, doc);
                }
            });
            batch.insert(short, emit, doc);
        });
    }

    fn has_combiner(&self) -> bool {
        true
    }

    fn combine(&self, _key: &[u8], values: &mut dyn Values, out: &mut dyn FnMut(&[u8])) {
        with_distinct_sorted(values, |docs| {
            for doc in docs.iter() {
                out(doc);
            }
        })
    }

    fn reduce(&self, _key: &[u8], values: &mut dyn Values, out: &mut Vec<u8>) {
        with_distinct_sorted(values, |docs| {
            out.extend_from_slice(docs.iter().len().to_string().as_bytes());
            out.push(b' ');
            for (i, d) in docs.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(d);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SliceValues, VecEmit};

    #[test]
    fn map_emits_each_word_once_per_chunk() {
        let mut e = VecEmit::default();
        Indexer.map("doc", b"a b a b c", &mut e);
        assert_eq!(e.pairs.len(), 3);
        // Enough distinct words to grow the set several times, each seen
        // three times, some past 16 bytes.
        let words: Vec<String> = (0..20_000u32)
            .map(|i| {
                let w: String = format!("{i:05}")
                    .bytes()
                    .map(|d| (b'a' + d - b'0') as char)
                    .collect();
                if i % 7 == 0 {
                    w.repeat(4)
                } else {
                    w
                }
            })
            .collect();
        let text = [words.join(" "), words.join("\n"), words.join(" ")].join(" ");
        let mut e = VecEmit::default();
        Indexer.map("doc", text.as_bytes(), &mut e);
        let mut got: Vec<Vec<u8>> = e.pairs.into_iter().map(|(k, _)| k).collect();
        got.sort();
        let mut want: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn reduce_dedups_and_sorts_documents() {
        let mut out = Vec::new();
        let docs = ["y.txt", "x.txt", "y.txt"];
        Indexer.reduce(b"w", &mut SliceValues::new(&docs), &mut out);
        assert_eq!(out, b"2 x.txt,y.txt");
        // Repeats adjacent and apart, from several map tasks' combines;
        // the thread's buffers are reused from the call before.
        let docs = ["b", "b", "a", "c", "a", "b", "b", "", "c"];
        out.clear();
        Indexer.reduce(b"w", &mut SliceValues::new(&docs), &mut out);
        assert_eq!(out, b"4 ,a,b,c");
        let mut kept = Vec::new();
        Indexer.combine(b"w", &mut SliceValues::new(&["d", "d", "d"]), &mut |v| {
            kept.push(v.to_vec())
        });
        assert_eq!(kept, [b"d".to_vec()]);
    }

    #[test]
    fn map_counts_a_word_once_per_chunk_across_calls() {
        // The set of seen words is the thread's: each call starts empty.
        let mut e = VecEmit::default();
        Indexer.map("d1", b"same words", &mut e);
        Indexer.map(
            "d2",
            b"same words, incomprehensibilities incomprehensibilities",
            &mut e,
        );
        Indexer.map(
            "d2",
            b"same words, incomprehensibilities incomprehensibilities",
            &mut e,
        );
        let mut words: Vec<String> = e
            .pairs
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}:{}",
                    String::from_utf8_lossy(k),
                    String::from_utf8_lossy(v)
                )
            })
            .collect();
        let second = ["same", "words", "incomprehensibilities"];
        let mut want = vec!["same:d1".to_string(), "words:d1".to_string()];
        for _ in 0..2 {
            want.extend(second.iter().map(|w| format!("{w}:d2")));
        }
        // Lookups are batched: within a call the order may differ.
        words.sort();
        want.sort();
        assert_eq!(words, want);
    }
}
