//! Inverted index: for each word, the documents it occurs in.

use crate::{hash::FastBuild, keys::key_prefix, words::for_each_word, App, Emit, Values};
use std::collections::HashSet;

/// The `indexer` app: map emits `(word, document)` once per distinct word of
/// a chunk; reduce writes `N doc1,doc2,...` with the distinct documents
/// sorted. Documents are deduplicated in combine and reduce, since one file
/// may be mapped as many chunks and splits.
#[derive(Debug, Default, Clone, Copy)]
pub struct Indexer;

thread_local! {
    /// The words of the chunk being mapped (see [`Indexer::map`]).
    static SEEN: std::cell::RefCell<HashSet<u128, FastBuild>> = Default::default();
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
            for_each_word(chunk, |w| {
                let new = if w.len() <= 16 {
                    short.insert(key_prefix(w))
                } else {
                    long.insert(w)
                };
                if new {
                    emit.emit(w, filename.as_bytes());
                }
            });
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
        let words: Vec<String> = e
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
        assert_eq!(words, want);
    }
}
