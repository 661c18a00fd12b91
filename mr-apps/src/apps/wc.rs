//! Word count: how many times each word occurs across all inputs.

use crate::{parse_count, words::for_each_word, App, Emit, Values};

/// The `wc` app: map emits `(word, "1")`, combine and reduce sum the counts.
#[derive(Debug, Default, Clone, Copy)]
pub struct WordCount;

/// Sums the decimal counts of a value stream. A value that is no decimal
/// count cannot come from this app's map or combine, and a sum past 64
/// bits is no count either: the call fails naming it (the engine names
/// the key), never counting it as zero or wrapping.
fn sum_counts(values: &mut dyn Values) -> u64 {
    let mut total = 0u64;
    while let Some(v) = values.next_value() {
        total = parse_count(v)
            .and_then(|n| total.checked_add(n))
            .unwrap_or_else(|| bad_count(v, total));
    }
    total
}

#[cold]
fn bad_count(v: &[u8], total: u64) -> ! {
    match crate::parse_count(v) {
        None => panic!(
            "a value that is not a decimal count: {:?}",
            String::from_utf8_lossy(&v[..v.len().min(40)])
        ),
        Some(n) => panic!("the counts overflow 64 bits ({total} + {n})"),
    }
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

    #[test]
    fn a_value_that_is_no_count_or_a_sum_past_64_bits_fails_the_call() {
        let reduce = |values: &'static [&'static str]| {
            std::panic::catch_unwind(|| {
                let mut out = Vec::new();
                WordCount.reduce(b"k", &mut SliceValues::new(values), &mut out);
                out
            })
        };
        let msg = |e: Box<dyn std::any::Any + Send>| crate::plugin::panic_message(e.as_ref());
        let bad = reduce(&["1", "x7", "2"]).unwrap_err();
        assert!(msg(bad).contains("not a decimal count: \"x7\""));
        let over = reduce(&["18446744073709551615", "1"]).unwrap_err();
        assert!(msg(over).contains("overflow 64 bits"));
        assert_eq!(
            reduce(&["18446744073709551614", "1"]).unwrap(),
            b"18446744073709551615"
        );
    }
}
