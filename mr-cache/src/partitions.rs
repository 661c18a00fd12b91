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
            let sha = || aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
            let finish = |ctx: aws_lc_rs::digest::Context| {
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
/// every map's, about a hundred thousand segments for a GiB of input).
pub fn encode_segments(parts: &[Option<&Vec<MapSegment>>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(parts.len() as u32).to_le_bytes());
    for part in parts {
        let Some(segments) = part else {
            out.push(0);
            continue;
        };
        out.push(1);
        out.extend_from_slice(&(segments.len() as u32).to_le_bytes());
        for s in segments.iter() {
            match &s.start {
                None => out.push(0),
                Some(k) => {
                    out.push(1);
                    out.extend_from_slice(&(k.len() as u32).to_le_bytes());
                    out.extend_from_slice(k);
                }
            }
            out.extend_from_slice(&(s.last.len() as u32).to_le_bytes());
            out.extend_from_slice(&s.last);
            out.extend_from_slice(&s.digest);
        }
    }
    out
}

/// Reads back what [`encode_segments`] wrote; None if it is damaged.
pub fn decode_segments(bytes: &[u8]) -> Option<Vec<Option<Vec<MapSegment>>>> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let piece = bytes.get(at..at.checked_add(n)?)?;
        at += n;
        Some(piece)
    };
    let u32_of = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap_or_default()) as usize;
    let parts = u32_of(take(4)?);
    let mut out = Vec::with_capacity(parts.min(1 << 16));
    for _ in 0..parts {
        if take(1)?[0] == 0 {
            out.push(None);
            continue;
        }
        let n = u32_of(take(4)?);
        // Each segment takes at least 37 bytes: a damaged count cannot
        // make this allocate more than the meta's size.
        let mut segments = Vec::with_capacity(n.min(bytes.len() / 37));
        for _ in 0..n {
            let start = match take(1)?[0] {
                0 => None,
                _ => {
                    let len = u32_of(take(4)?);
                    Some(take(len)?.to_vec())
                }
            };
            let len = u32_of(take(4)?);
            let last = take(len)?.to_vec();
            let digest: [u8; 32] = take(32)?.try_into().ok()?;
            segments.push(MapSegment {
                start,
                last,
                digest,
            });
        }
        out.push(Some(segments));
    }
    (at == bytes.len()).then_some(out)
}

/// Encodes each partition's blocks (None: an empty partition), as
/// [`encode_segments`] does its segments.
pub fn encode_blocks(parts: &[Option<&Vec<BlockStart>>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(parts.len() as u32).to_le_bytes());
    for part in parts {
        let Some(blocks) = part else {
            out.push(0);
            continue;
        };
        out.push(1);
        out.extend_from_slice(&(blocks.len() as u32).to_le_bytes());
        for (at, first) in blocks.iter() {
            out.extend_from_slice(&at.to_le_bytes());
            out.extend_from_slice(&(first.len() as u32).to_le_bytes());
            out.extend_from_slice(first);
        }
    }
    out
}

/// Reads back what [`encode_blocks`] wrote; None if it is damaged.
pub fn decode_blocks(bytes: &[u8]) -> Option<Vec<Option<Vec<BlockStart>>>> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let piece = bytes.get(at..at.checked_add(n)?)?;
        at += n;
        Some(piece)
    };
    let u32_of = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap_or_default()) as usize;
    let parts = u32_of(take(4)?);
    let mut out = Vec::with_capacity(parts.min(1 << 16));
    for _ in 0..parts {
        if take(1)?[0] == 0 {
            out.push(None);
            continue;
        }
        let n = u32_of(take(4)?);
        let mut blocks = Vec::with_capacity(n.min(bytes.len() / 12));
        for _ in 0..n {
            let offset = u64::from_le_bytes(take(8)?.try_into().ok()?);
            let len = u32_of(take(4)?);
            blocks.push((offset, take(len)?.to_vec()));
        }
        out.push(Some(blocks));
    }
    (at == bytes.len()).then_some(out)
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
