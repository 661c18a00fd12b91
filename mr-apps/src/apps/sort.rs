//! The sort benchmark's sort (the MapReduce paper's, as TeraSort): records
//! of 100 bytes whose first 10 are the key, compared as unsigned bytes.
//!
//! Inputs are gensort's records, binary or ASCII (`gensort -a`: printable,
//! ending in `\r\n`, still 100 bytes). Map emits each record's last 90
//! bytes under its key (the key is not carried twice); the job partitions
//! by sampled key ranges ([`App::total_order`]), each reduce writes its
//! records back as they were, key then rest ([`App::values_only`]), so
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
            emit.emit(&rec[..KEY], &rec[KEY..]);
        }
    }

    fn reduce(&self, key: &[u8], values: &mut dyn Values, out: &mut Vec<u8>) {
        // Nearly every key is unique; records sharing a key (skewed data)
        // are written in byte order of their rests, as a plain sort of the
        // records puts them.
        let Some(first) = values.next_value() else {
            return;
        };
        let first_len = first.len();
        out.extend_from_slice(key);
        out.extend_from_slice(first);
        let Some(second) = values.next_value() else {
            return;
        };
        let mut rests = vec![out[KEY.min(out.len())..].to_vec(), second.to_vec()];
        debug_assert_eq!(rests[0].len(), first_len);
        rests.extend(crate::collect_values(values));
        rests.sort_unstable();
        out.clear();
        for rest in rests {
            out.extend_from_slice(key);
            out.extend_from_slice(&rest);
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
        let rest = |r: usize| chunk[r * RECORD + KEY..(r + 1) * RECORD].to_vec();
        assert_eq!(
            e.pairs,
            [
                (b"zzzzzzzzzz".to_vec(), rest(0)),
                (b"aaaaaaaaa\n".to_vec(), rest(1))
            ]
        );
    }

    #[test]
    fn reduce_writes_records_sharing_a_key_in_record_order() {
        let key = b"kkkkkkkkkk";
        let (a, b, c) = (record(key, 3), record(key, 1), record(key, 2));
        let rests = [a[KEY..].to_vec(), b[KEY..].to_vec(), c[KEY..].to_vec()];
        let mut out = Vec::new();
        Sort.reduce(key, &mut SliceValues::new(&rests), &mut out);
        assert_eq!(out, [b, c, a.clone()].concat());
        out.clear();
        Sort.reduce(key, &mut SliceValues::new(&rests[..1]), &mut out);
        assert_eq!(out, a);
    }

    #[test]
    #[should_panic(expected = "not whole 100-byte records")]
    fn a_partial_record_is_refused() {
        Sort.map("in", &[0; 150], &mut VecEmit::default());
    }
}
