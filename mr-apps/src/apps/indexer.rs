//! Inverted index: for each word, the documents it occurs in.

use crate::{hash::FastBuild, words::for_each_word, App, Emit, Values};
use std::collections::HashSet;

/// The `indexer` app: map emits `(word, document)` once per distinct word of
/// a chunk; reduce writes `N doc1,doc2,...` with the distinct documents
/// sorted. Documents are deduplicated in combine and reduce, since one file
/// may be mapped as many chunks and splits.
#[derive(Debug, Default, Clone, Copy)]
pub struct Indexer;

/// The distinct values of a stream, sorted bytewise. Within one map task
/// every value is the same document, so the linear membership test is short.
fn distinct_sorted(values: &mut dyn Values) -> Vec<Vec<u8>> {
    let mut docs: Vec<Vec<u8>> = Vec::new();
    while let Some(v) = values.next_value() {
        if !docs.iter().any(|d| d == v) {
            docs.push(v.to_vec());
        }
    }
    docs.sort_unstable();
    docs
}

impl App for Indexer {
    fn name(&self) -> &str {
        "indexer"
    }

    fn map(&self, filename: &str, chunk: &[u8], emit: &mut dyn Emit) {
        // Words of up to 16 bytes go into the set as one integer (letters are
        // never NUL, so zero padding is unambiguous): no string compares.
        let mut short: HashSet<u128, FastBuild> =
            HashSet::with_capacity_and_hasher(1 << 12, FastBuild::default());
        let mut long: HashSet<&[u8], FastBuild> = HashSet::default();
        for_each_word(chunk, |w| {
            let new = if w.len() <= 16 {
                let mut b = [0u8; 16];
                b[..w.len()].copy_from_slice(w);
                short.insert(u128::from_le_bytes(b))
            } else {
                long.insert(w)
            };
            if new {
                emit.emit(w, filename.as_bytes());
            }
        });
    }

    fn has_combiner(&self) -> bool {
        true
    }

    fn combine(&self, _key: &[u8], values: &mut dyn Values, out: &mut dyn FnMut(&[u8])) {
        for doc in distinct_sorted(values) {
            out(&doc);
        }
    }

    fn reduce(&self, _key: &[u8], values: &mut dyn Values, out: &mut Vec<u8>) {
        let docs = distinct_sorted(values);
        out.extend_from_slice(docs.len().to_string().as_bytes());
        out.push(b' ');
        for (i, d) in docs.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(d);
        }
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
    }
}
