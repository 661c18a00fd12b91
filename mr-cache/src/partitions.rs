//! The content addresses of a map output's partitions and their segments,
//! and of a reduce's inputs made from them.
//!
//! Reduce r reads partition r of every map's output, merged in map order
//! (ties between equal keys broken by that order), so its output is
//! determined by the list of those partitions' records, in map order, and
//! by the app. A partition's address is the SHA-256 of its segments'
//! addresses, each the SHA-256 of the segment's records as the run file
//! encodes them (see [`mr_runfile::starts_segment`]); an empty partition
//! has none and adds nothing to a reduce's input, so a new map whose
//! partition r is empty leaves reduce r's address as it was. One edited
//! line then re-runs only the reduces of the partitions its words fall in,
//! and inside those only the segments they fall in ([`crate::reuse`]).

use crate::Key;
use mr_runfile::{RunError, RunFile, SegmentEvent};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One segment of a map output's partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapSegment {
    /// Its first key (None: the head segment, before any key that starts one).
    pub start: Option<Vec<u8>>,
    /// Its last record's key.
    pub last: Vec<u8>,
    /// The file offset of the block holding its first record.
    pub block: u64,
    /// The SHA-256 of its records' bytes.
    pub digest: [u8; 32],
}

/// A non-empty partition of a map output: its address and its segments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionIndex {
    /// The partition's address.
    pub key: Key,
    /// Its segments, in key order.
    pub segments: Vec<MapSegment>,
}

/// The index of each partition of the run file at `path` (R = `reduces`
/// partitions, any map's): None for an empty one. Reads the file once,
/// checking every block.
pub fn partition_index(path: &Path, reduces: u32) -> Result<Vec<Option<PartitionIndex>>, RunError> {
    (0..reduces)
        .map(|r| {
            let reader = RunFile::open(path, None, reduces)?.partition(r);
            let sha = || aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
            let finish = |ctx: aws_lc_rs::digest::Context| {
                let mut k = [0u8; 32];
                k.copy_from_slice(ctx.finish().as_ref());
                k
            };
            let mut open = sha();
            let mut segments: Vec<MapSegment> = Vec::new();
            reader.segments(|event| match event {
                SegmentEvent::Start { key, block } => segments.push(MapSegment {
                    start: key.map(<[u8]>::to_vec),
                    last: Vec::new(),
                    block,
                    digest: [0; 32],
                }),
                SegmentEvent::Bytes(bytes) => open.update(bytes),
                SegmentEvent::End { last } => {
                    if let Some(s) = segments.last_mut() {
                        s.last = last.to_vec();
                        s.digest = finish(std::mem::replace(&mut open, sha()));
                    }
                }
            })?;
            if segments.is_empty() {
                return Ok(None);
            }
            let mut all = sha();
            for s in &segments {
                all.update(&s.digest);
            }
            Ok(Some(PartitionIndex {
                key: Key(finish(all)),
                segments,
            }))
        })
        .collect()
}

/// The address of reduce `r`'s input: `base` (what else determines its
/// output: the app, R, the formats) with the addresses of partition `r` of
/// every map's output, in map order, empty ones left out.
pub fn reduce_key<'a>(
    base: &[&[u8]],
    r: u32,
    partitions: impl Iterator<Item = Option<&'a Key>>,
) -> Key {
    let inputs: Vec<u8> = partitions.flatten().flat_map(|k| k.0).collect();
    let r = r.to_le_bytes();
    let mut parts: Vec<&[u8]> = base.to_vec();
    parts.push(b"reduce");
    parts.push(&r);
    parts.push(&inputs);
    Key::of(&parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mr_runfile::RunWriter;
    use std::path::PathBuf;

    /// A run file of map `map` with R = 3 holding `records` (partition,
    /// key, value), in order.
    fn run_file(dir: &Path, name: &str, map: u32, records: &[(u32, &str, &str)]) -> PathBuf {
        let path = dir.join(name);
        let mut w = RunWriter::create(&path, map, 3).unwrap();
        for r in 0..3 {
            for (_, k, v) in records.iter().filter(|(p, _, _)| *p == r) {
                w.push(k.as_bytes(), v.as_bytes()).unwrap();
            }
            w.end_partition().unwrap();
        }
        w.finish().unwrap();
        path
    }

    #[test]
    fn a_partition_is_addressed_by_its_records_whatever_map_made_it() {
        let d = tempfile::tempdir().unwrap();
        let a = run_file(d.path(), "a", 0, &[(0, "x", "1"), (2, "y", "2")]);
        // Another map number, partition 2 changed, partition 1 still empty.
        let b = run_file(d.path(), "b", 7, &[(0, "x", "1"), (2, "y", "3")]);
        let keys = |p: &Path| -> Vec<Option<Key>> {
            partition_index(p, 3)
                .unwrap()
                .into_iter()
                .map(|p| p.map(|p| p.key))
                .collect()
        };
        let (ka, kb) = (keys(&a), keys(&b));
        assert_eq!(ka[0], kb[0]);
        assert!(ka[0].is_some());
        assert_eq!((ka[1], kb[1]), (None, None));
        assert_ne!(ka[2], kb[2]);
        // A file of another R, or damaged, is an error, not an address.
        assert!(partition_index(&a, 4).is_err());
        let mut bytes = std::fs::read(&a).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 1;
        std::fs::write(&a, &bytes).unwrap();
        assert!(partition_index(&a, 3).is_err());
    }

    #[test]
    fn a_reduce_key_follows_its_inputs_in_order_and_skips_empty_ones() {
        let (x, y) = (Key::of(&[b"x"]), Key::of(&[b"y"]));
        let base: &[&[u8]] = &[b"app"];
        let key = |parts: &[Option<&Key>]| reduce_key(base, 0, parts.iter().copied());
        assert_eq!(key(&[Some(&x), None, Some(&y)]), key(&[Some(&x), Some(&y)]));
        assert_ne!(key(&[Some(&x), Some(&y)]), key(&[Some(&y), Some(&x)]));
        assert_ne!(key(&[Some(&x)]), key(&[Some(&x), Some(&x)]));
        assert_ne!(
            reduce_key(base, 0, [Some(&x)].into_iter()),
            reduce_key(base, 1, [Some(&x)].into_iter())
        );
        assert_ne!(
            reduce_key(base, 0, [Some(&x)].into_iter()),
            reduce_key(&[b"other app"], 0, [Some(&x)].into_iter())
        );
    }
}
