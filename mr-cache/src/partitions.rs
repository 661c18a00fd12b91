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
use mr_protocol::packed::{Damaged, Reader, Writer};
use mr_runfile::{RunError, RunFile, SegmentEvent};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One segment of a map output's partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapSegment {
    /// Its first key (None: the head segment, before any key that starts one).
    pub start: Option<Vec<u8>>,
    /// Its last record's key.
    pub last: Vec<u8>,
    /// The SHA-256 of its records' bytes.
    pub digest: [u8; 32],
}

/// Where a block of a map output's partition begins in the run file, and
/// its first record's key.
pub type BlockStart = (u64, Vec<u8>);

/// A non-empty partition of a map output: its address and its segments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionIndex {
    /// The partition's address.
    pub key: Key,
    /// Its segments, in key order.
    pub segments: Vec<MapSegment>,
    /// Its blocks: each one's file offset and first key, in order.
    pub blocks: Vec<BlockStart>,
}

/// The index of each partition of the run file at `path` (R = `reduces`
/// partitions, any map's): None for an empty one. Reads the file once,
/// checking every block, partitions in parallel.
pub fn partition_index(path: &Path, reduces: u32) -> Result<Vec<Option<PartitionIndex>>, RunError> {
    // Partitions in parallel: a new map's index is on the way to its job's
    // reduces (they are looked up once every map's is known).
    (0..reduces)
        .into_par_iter()
        .map(|r| {
            let reader = RunFile::open(path, None, reduces)?.partition(r);
            let sha = || ring::digest::Context::new(&ring::digest::SHA256);
            let finish = |ctx: ring::digest::Context| {
                let mut k = [0u8; 32];
                k.copy_from_slice(ctx.finish().as_ref());
                k
            };
            let mut open = sha();
            let mut segments: Vec<MapSegment> = Vec::new();
            let mut blocks = Vec::new();
            reader.segments(|event| match event {
                SegmentEvent::Block { at, first } => blocks.push((at, first.to_vec())),
                SegmentEvent::Start { key, .. } => segments.push(MapSegment {
                    start: key.map(<[u8]>::to_vec),
                    last: Vec::new(),
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
                blocks,
            }))
        })
        .collect()
}

/// Encodes each partition's segments (None: an empty partition) for a map
/// entry's meta: plain lengths and bytes, which read back many times faster
/// than a generic encoding of the same (a re-run that reduces again reads
/// the segments of the maps that changed).
pub fn encode_segments(parts: &[Option<&Vec<MapSegment>>]) -> Vec<u8> {
    encode_parts(parts, |out, s| {
        match &s.start {
            None => out.push(0),
            Some(k) => {
                out.push(1);
                out.put_bytes_u32(k);
            }
        }
        out.put_bytes_u32(&s.last);
        out.extend_from_slice(&s.digest);
    })
}

/// Reads back what [`encode_segments`] wrote; None if it is damaged.
pub fn decode_segments(bytes: &[u8]) -> Option<Vec<Option<Vec<MapSegment>>>> {
    decode_parts(bytes, 37, |r| {
        let start = match r.u8()? {
            0 => None,
            _ => Some(r.bytes_u32()?.to_vec()),
        };
        Ok(MapSegment {
            start,
            last: r.bytes_u32()?.to_vec(),
            digest: r.array()?,
        })
    })
}

/// Encodes each partition's blocks (None: an empty partition), as
/// [`encode_segments`] does its segments.
pub fn encode_blocks(parts: &[Option<&Vec<BlockStart>>]) -> Vec<u8> {
    encode_parts(parts, |out, (at, first)| {
        out.put_u64(*at);
        out.put_bytes_u32(first);
    })
}

/// Reads back what [`encode_blocks`] wrote; None if it is damaged.
pub fn decode_blocks(bytes: &[u8]) -> Option<Vec<Option<Vec<BlockStart>>>> {
    decode_parts(bytes, 12, |r| Ok((r.u64()?, r.bytes_u32()?.to_vec())))
}

/// The partitions' count, then per partition a flag (empty or not) and,
/// if not, the count of its items and each item as `item` writes it.
fn encode_parts<T>(parts: &[Option<&Vec<T>>], item: impl Fn(&mut Vec<u8>, &T)) -> Vec<u8> {
    let mut out = Vec::new();
    out.put_u32(parts.len() as u32);
    for part in parts {
        let Some(items) = part else {
            out.push(0);
            continue;
        };
        out.push(1);
        out.put_u32(items.len() as u32);
        for i in items.iter() {
            item(&mut out, i);
        }
    }
    out
}

/// Reads back what [`encode_parts`] wrote, each item with `item` (which
/// takes at least `min_item` bytes, so a damaged count cannot make this
/// allocate more than the input's size); None if anything is out of place.
fn decode_parts<T>(
    bytes: &[u8],
    min_item: usize,
    item: impl Fn(&mut Reader<'_>) -> Result<T, Damaged>,
) -> Option<Vec<Option<Vec<T>>>> {
    let mut r = Reader::new(bytes);
    let mut read = || {
        // Each partition takes at least its flag's byte.
        let parts = r.count_u32(1)?;
        let mut out = Vec::with_capacity(parts);
        for _ in 0..parts {
            if r.u8()? == 0 {
                out.push(None);
                continue;
            }
            let n = r.count_u32(min_item)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(item(&mut r)?);
            }
            out.push(Some(items));
        }
        r.finish()?;
        Ok::<_, Damaged>(out)
    };
    read().ok()
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
    fn segments_read_back_as_written_and_damage_is_none_not_a_panic() {
        let d = tempfile::tempdir().unwrap();
        let a = run_file(
            d.path(),
            "a",
            0,
            &[(0, "x", "1"), (0, "y", "2"), (2, "z", "3")],
        );
        let index = partition_index(&a, 3).unwrap();
        let parts: Vec<Option<&Vec<MapSegment>>> = index
            .iter()
            .map(|p| p.as_ref().map(|p| &p.segments))
            .collect();
        let bytes = encode_segments(&parts);
        let back = decode_segments(&bytes).unwrap();
        let want: Vec<Option<Vec<MapSegment>>> = parts.iter().map(|p| p.cloned()).collect();
        assert_eq!(back, want);
        let blocks: Vec<Option<&Vec<BlockStart>>> = index
            .iter()
            .map(|p| p.as_ref().map(|p| &p.blocks))
            .collect();
        let encoded = encode_blocks(&blocks);
        let want: Vec<Option<Vec<BlockStart>>> = blocks.iter().map(|p| p.cloned()).collect();
        assert_eq!(decode_blocks(&encoded).unwrap(), want);
        assert_eq!(want[0].as_ref().unwrap()[0], (20, b"x".to_vec()));
        for cut in 0..encoded.len() {
            assert!(decode_blocks(&encoded[..cut]).is_none(), "cut at {cut}");
        }
        assert_eq!(back[0].as_ref().unwrap()[0].last, b"y");
        for cut in 0..bytes.len() {
            assert!(decode_segments(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_segments(&longer).is_none());
        // A count far beyond the bytes allocates nothing big and fails.
        let mut huge = bytes.clone();
        huge[5..9].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_segments(&huge).is_none());
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
