//! An app written the way a user would, outside the framework's crates:
//! the average word length of each input document.
//!
//! Map emits `(document, "<letters> 1")` per word; combine folds a map
//! task's values for a document into one `"<letters> <words>"`; reduce
//! folds those and writes the average with two decimals. It also shows the
//! SDK's other hooks: app-defined counters (`words`, `documents`) and its
//! own partitioner (documents go to reduce task `name length % R`, so a
//! person can tell where each one lands). Built as a plugin:
//! `mrcoordinator --app target/release/libavglen.so --workers 2 FILES`.

use mr_apps::words::for_each_word;
use mr_apps::{App, Emit, Values};

/// The app.
#[derive(Debug, Default, Clone, Copy)]
pub struct AverageWordLength;

/// Sums `"<letters> <words>"` values.
fn fold(values: &mut dyn Values) -> (u64, u64) {
    let (mut letters, mut words) = (0u64, 0u64);
    while let Some(v) = values.next_value() {
        let text = std::str::from_utf8(v).unwrap_or("");
        let mut parts = text.split(' ').map(|p| p.parse::<u64>().unwrap_or(0));
        letters += parts.next().unwrap_or(0);
        words += parts.next().unwrap_or(0);
    }
    (letters, words)
}

impl App for AverageWordLength {
    fn name(&self) -> &str {
        "avglen"
    }

    fn map(&self, filename: &str, chunk: &[u8], emit: &mut dyn Emit) {
        let mut words = 0;
        for_each_word(chunk, |w| {
            // Length in characters, not bytes: count UTF-8 lead bytes.
            let chars = w.iter().filter(|&&b| b & 0xc0 != 0x80).count();
            emit.emit(filename.as_bytes(), format!("{chars} 1").as_bytes());
            words += 1;
        });
        emit.count("words", words);
    }

    fn has_partitioner(&self) -> bool {
        true
    }

    fn partition(&self, key: &[u8], reduces: u32) -> u32 {
        key.len() as u32 % reduces.max(1)
    }

    fn has_combiner(&self) -> bool {
        true
    }

    fn combine(&self, _key: &[u8], values: &mut dyn Values, out: &mut dyn FnMut(&[u8])) {
        let (letters, words) = fold(values);
        out(format!("{letters} {words}").as_bytes());
    }

    fn reduce(&self, _key: &[u8], values: &mut dyn Values, out: &mut Vec<u8>) {
        values.count("documents", 1);
        let (letters, words) = fold(values);
        let avg = if words == 0 {
            0.0
        } else {
            letters as f64 / words as f64
        };
        out.extend_from_slice(format!("{avg:.2}").as_bytes());
    }
}

mr_apps::export_app!(AverageWordLength);

#[cfg(test)]
mod tests {
    use super::*;
    use mr_apps::{SliceValues, VecEmit};

    #[test]
    fn averages_letters_per_word() {
        let mut e = VecEmit::default();
        AverageWordLength.map("d", "ab cde é".as_bytes(), &mut e);
        let values: Vec<String> = e
            .pairs
            .iter()
            .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
            .collect();
        assert_eq!(values, ["2 1", "3 1", "1 1"]);
        let mut out = Vec::new();
        AverageWordLength.reduce(b"d", &mut SliceValues::new(&["5 2", "1 1"]), &mut out);
        assert_eq!(out, b"2.00");
    }
}
