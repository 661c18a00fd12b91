//! The sort benchmark's sort (the MapReduce paper's, as TeraSort): records
//! of 100 bytes whose first 10 are the key, compared as unsigned bytes.
//!
//! Inputs are gensort's records, binary or ASCII (`gensort -a`: printable,
//! ending in `\r\n`, still 100 bytes). Map emits each record under its key;
//! the job partitions by sampled key ranges ([`App::total_order`]), each
//! reduce writes its records back as they were ([`App::values_only`]), so
//! `mr-out-0`, `mr-out-1`, ... concatenated are the sorted data set.

use crate::{App, Emit, Values};

/// Bytes in a record.
pub const RECORD: usize = 100;
/// Bytes of a record's key.
pub const KEY: usize = 10;

/// The `sort` app.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sort;

impl App for Sort {
    fn name(&self) -> &str {
        "sort"
    }

    fn record_size(&self) -> Option<u32> {
        Some(RECORD as u32)
    }

    fn values_only(&self) -> bool {
        true
    }

    fn total_order(&self) -> bool {
        true
    }

    fn map(&self, filename: &str, chunk: &[u8], emit: &mut dyn Emit) {
        let records = chunk.chunks_exact(RECORD);
        if !records.remainder().is_empty() {
            // The framework cuts inputs on record boundaries; this is a
            // bug of ours, or a --record-size other than the app's.
            panic!(
                "{filename}: a piece of {} bytes is not whole {RECORD}-byte records",
                chunk.len()
            );
        }
        for rec in records {
            emit.emit(&rec[..KEY], rec);
        }
    }

    fn reduce(&self, _key: &[u8], values: &mut dyn Values, out: &mut Vec<u8>) {
        // Nearly every key is unique; records sharing a key (skewed data)
        // are written in record order, as a plain sort of the records puts
        // them.
        let Some(first) = values.next_value() else {
            return;
        };
        let first = first.to_vec();
        let Some(second) = values.next_value() else {
            out.extend_from_slice(&first);
            return;
        };
        let mut all = vec![first, second.to_vec()];
        all.extend(crate::collect_values(values));
        all.sort_unstable();
        for rec in all {
            out.extend_from_slice(&rec);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SliceValues, VecEmit};

    fn record(key: &[u8; KEY], fill: u8) -> Vec<u8> {
        let mut r = key.to_vec();
        r.resize(RECORD, fill);
        r
    }

    #[test]
    fn map_keys_each_record_by_its_first_ten_bytes() {
        let mut chunk = record(b"zzzzzzzzzz", b'\n');
        chunk.extend(record(b"aaaaaaaaa\n", 0));
        let mut e = VecEmit::default();
        Sort.map("in", &chunk, &mut e);
        assert_eq!(e.pairs.len(), 2);
        assert_eq!(
            e.pairs[0],
            (b"zzzzzzzzzz".to_vec(), chunk[..RECORD].to_vec())
        );
        assert_eq!(
            e.pairs[1],
            (b"aaaaaaaaa\n".to_vec(), chunk[RECORD..].to_vec())
        );
    }

    #[test]
    fn reduce_writes_records_sharing_a_key_in_record_order() {
        let (a, b, c) = (
            record(b"kkkkkkkkkk", 3),
            record(b"kkkkkkkkkk", 1),
            record(b"kkkkkkkkkk", 2),
        );
        let mut out = Vec::new();
        Sort.reduce(
            b"k",
            &mut SliceValues::new(&[a.clone(), b.clone(), c.clone()]),
            &mut out,
        );
        assert_eq!(out, [b, c, a].concat());
    }

    #[test]
    #[should_panic(expected = "not whole 100-byte records")]
    fn a_partial_record_is_refused() {
        Sort.map("in", &[0; 150], &mut VecEmit::default());
    }
}
