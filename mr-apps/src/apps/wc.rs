//! Word count: how many times each word occurs across all inputs.

use crate::{parse_count, words::for_each_word, App, Emit, Values};

/// The `wc` app: map emits `(word, "1")`, combine and reduce sum the counts.
#[derive(Debug, Default, Clone, Copy)]
pub struct WordCount;

/// Sums the decimal counts of a value stream. Values that are not decimal
/// counts cannot come from this app's map or combine; they count as zero.
fn sum_counts(values: &mut dyn Values) -> u64 {
    let mut total = 0u64;
    while let Some(v) = values.next_value() {
        total += parse_count(v).unwrap_or(0);
    }
    total
}

impl App for WordCount {
    fn name(&self) -> &str {
        "wc"
    }

    fn map(&self, _filename: &str, chunk: &[u8], emit: &mut dyn Emit) {
        for_each_word(chunk, |w| emit.emit(w, b"1"));
    }

    fn has_combiner(&self) -> bool {
        true
    }

    fn sums_counts(&self) -> bool {
        true
    }

    fn combine(&self, _key: &[u8], values: &mut dyn Values, out: &mut dyn FnMut(&[u8])) {
        let total = sum_counts(values);
        out(total.to_string().as_bytes());
    }

    fn reduce(&self, _key: &[u8], values: &mut dyn Values, out: &mut Vec<u8>) {
        let total = sum_counts(values);
        out.extend_from_slice(total.to_string().as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SliceValues, VecEmit};

    #[test]
    fn map_emits_one_per_word_and_reduce_sums() {
        let mut e = VecEmit::default();
        WordCount.map("f", b"the cat the", &mut e);
        assert_eq!(e.pairs.len(), 3);
        assert!(e.pairs.iter().all(|(_, v)| v == b"1"));
        let mut out = Vec::new();
        WordCount.reduce(b"the", &mut SliceValues::new(&["1", "12", "3"]), &mut out);
        assert_eq!(out, b"16");
    }
}
