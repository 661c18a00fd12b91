//! What a job's cache entries say besides their data (their "meta"): a
//! map's counters and partitions (addresses, blocks, segments; the blocks
//! and segments parsed only when a reduce needs them), a reduce's counters,
//! index and inputs; and the check that a reported index holds for the
//! output it describes.

use crate::partitions::{MapSegment, PartitionIndex};
use crate::reuse::MapPartition;
use crate::Key;
use mr_protocol::packed::{Reader, Writer};
use mr_protocol::Counters;
use std::path::Path;
use std::sync::OnceLock;

/// Each partition's blocks: file offset and first key.
pub(super) type Blocks = Vec<Option<Vec<(u64, Vec<u8>)>>>;

/// Each partition's segments.
pub(super) type Segments = Vec<Option<Vec<MapSegment>>>;

/// A map output's partitions as the job knows them: their addresses, and
/// their blocks and segments, each parsed only when a reduce needs it (an
/// unchanged re-run needs neither; a reduce copying from an earlier output
/// needs every map's blocks but only the changed maps' segments, which are
/// most of a map entry's meta).
pub(super) struct MapParts {
    /// Each partition's address (None: empty).
    pub(super) keys: Vec<Option<Key>>,
    /// The blocks and the segments, encoded (see [`MapParts::encode`]).
    pub(super) encoded: (Vec<u8>, Vec<u8>),
    /// The blocks, once parsed (None: they do not parse).
    blocks: OnceLock<Option<Blocks>>,
    /// The segments, once parsed (None: they do not parse).
    segments: OnceLock<Option<Segments>>,
}

impl MapParts {
    /// The parts of a map output just indexed, and its entry's meta: the
    /// head's length and the head (counters, partition addresses, in
    /// bincode), the blocks' length and the blocks
    /// ([`crate::partitions::encode_blocks`]), then the segments
    /// ([`crate::partitions::encode_segments`]).
    pub(super) fn encode(
        counters: &Counters,
        parts: Vec<Option<PartitionIndex>>,
    ) -> (MapParts, Vec<u8>) {
        let keys: Vec<Option<Key>> = parts.iter().map(|p| p.as_ref().map(|p| p.key)).collect();
        let blocks: Vec<_> = parts
            .iter()
            .map(|p| p.as_ref().map(|p| &p.blocks))
            .collect();
        let segments: Vec<_> = parts
            .iter()
            .map(|p| p.as_ref().map(|p| &p.segments))
            .collect();
        let head = bincode::serialize(&(counters, &keys)).unwrap_or_default();
        let (blocks, segments) = (
            crate::partitions::encode_blocks(&blocks),
            crate::partitions::encode_segments(&segments),
        );
        let mut meta = Vec::with_capacity(16 + head.len() + blocks.len() + segments.len());
        meta.put_bytes_u64(&head);
        meta.put_bytes_u64(&blocks);
        meta.extend_from_slice(&segments);
        (MapParts::indexed(parts), meta)
    }

    /// The parts of a map output just indexed, already parsed.
    pub(super) fn indexed(parts: Vec<Option<PartitionIndex>>) -> MapParts {
        let keys = parts.iter().map(|p| p.as_ref().map(|p| p.key)).collect();
        let (blocks, segments): (Blocks, Segments) = parts
            .into_iter()
            .map(|p| match p {
                Some(p) => (Some(p.blocks), Some(p.segments)),
                None => (None, None),
            })
            .unzip();
        MapParts {
            keys,
            encoded: (Vec::new(), Vec::new()),
            blocks: OnceLock::from(Some(blocks)),
            segments: OnceLock::from(Some(segments)),
        }
    }

    /// A map entry's meta read back: its counters and parts, if it is one
    /// of this format with R partitions.
    pub(super) fn decode(meta: &[u8], reduces: u32) -> Option<(Counters, MapParts)> {
        let mut r = Reader::new(meta);
        let head = r.bytes_u64().ok()?;
        let blocks = r.bytes_u64().ok()?.to_vec();
        let segments = r.rest().to_vec();
        let (counters, keys): (Counters, Vec<Option<Key>>) = bincode::deserialize(head).ok()?;
        let parts = MapParts {
            keys,
            encoded: (blocks, segments),
            blocks: OnceLock::new(),
            segments: OnceLock::new(),
        };
        (parts.keys.len() == reduces as usize).then_some((counters, parts))
    }

    /// Each partition's blocks (None if they do not parse).
    pub(super) fn blocks(&self) -> Option<&Blocks> {
        let parsed = self.blocks.get_or_init(|| {
            let blocks = crate::partitions::decode_blocks(&self.encoded.0)?;
            self.agrees(&blocks).then_some(blocks)
        });
        parsed.as_ref()
    }

    /// Each partition's segments (None if they do not parse).
    pub(super) fn segments(&self) -> Option<&Segments> {
        let parsed = self.segments.get_or_init(|| {
            let segments = crate::partitions::decode_segments(&self.encoded.1)?;
            self.agrees(&segments).then_some(segments)
        });
        parsed.as_ref()
    }

    /// Whether `per_partition` has an entry exactly for each non-empty
    /// partition.
    fn agrees<T>(&self, per_partition: &[Option<T>]) -> bool {
        per_partition.len() == self.keys.len()
            && self
                .keys
                .iter()
                .zip(per_partition)
                .all(|(k, p)| k.is_some() == p.is_some())
    }

    /// Partition `r` as the reuse planner sees it (None: empty).
    pub(super) fn partition(&self, r: usize) -> Option<Part<'_>> {
        Some(Part {
            key: self.keys[r]?,
            parts: self,
            r,
        })
    }
}

/// One non-empty partition of a map output, read lazily.
pub(super) struct Part<'a> {
    key: Key,
    parts: &'a MapParts,
    r: usize,
}

impl MapPartition for Part<'_> {
    fn key(&self) -> Key {
        self.key
    }
    fn segments(&self) -> Option<&[MapSegment]> {
        self.parts.segments()?[self.r].as_deref()
    }
    fn blocks(&self) -> Option<&[(u64, Vec<u8>)]> {
        self.parts.blocks()?[self.r].as_deref()
    }
}

/// What a reduce's cache entry says besides its output.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct ReduceMeta {
    pub(super) counters: Counters,
    /// Where the output's segments after the head begin (None: unknown,
    /// as for a streaming reduce's output, which is not cut by key).
    pub(super) starts: Option<Vec<(Vec<u8>, u64)>>,
    /// The output's length.
    pub(super) len: u64,
    /// Its inputs: the addresses of the map outputs' partitions, in map
    /// order, empty ones left out, each with its map's cache address.
    pub(super) inputs: Vec<(Key, Key)>,
}

/// Whether `starts` (each segment's first key and the offset of its first
/// line, in order) describes the output at `path` of `len` bytes: offsets
/// rising and inside it, keys rising and each one that starts a segment,
/// and at each offset a line beginning with its key and a space.
pub(super) fn index_holds(path: &Path, len: u64, starts: &[(Vec<u8>, u64)]) -> bool {
    use std::os::unix::fs::FileExt;
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let mut last: Option<&(Vec<u8>, u64)> = None;
    for start @ (key, at) in starts {
        let rising = last.is_none_or(|(k, a)| a < at && k < key);
        if !rising || *at >= len || !mr_runfile::starts_segment(key) {
            return false;
        }
        // The byte before (a line's end) and the key with its space.
        let before = at.saturating_sub(1);
        let mut seen = vec![0u8; key.len() + 1 + (*at - before) as usize];
        if file.read_exact_at(&mut seen, before).is_err() {
            return false;
        }
        let (line_end, line) = seen.split_at((*at - before) as usize);
        if line_end.first().is_some_and(|&b| b != b'\n')
            || !line.starts_with(key)
            || line[key.len()] != b' '
        {
            return false;
        }
        last = Some(start);
    }
    true
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(meta: &[u8]) -> Option<T> {
    bincode::deserialize(meta).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partitions::MapSegment;

    /// An output's index: each segment's first key and its first line's offset.
    type Starts = Vec<(Vec<u8>, u64)>;

    fn index(key: u8, starts: &[&str]) -> PartitionIndex {
        PartitionIndex {
            key: Key([key; 32]),
            segments: starts
                .iter()
                .enumerate()
                .map(|(i, s)| MapSegment {
                    start: (i > 0).then(|| s.as_bytes().to_vec()),
                    last: format!("{s}z").into_bytes(),
                    digest: [i as u8; 32],
                })
                .collect(),
            blocks: vec![(20, starts[0].as_bytes().to_vec()), (99, b"n".to_vec())],
        }
    }

    #[test]
    fn a_reported_index_is_kept_only_if_the_output_bears_it_out() {
        // Keys that start segments, in order, and an output holding them.
        let mut keys: Vec<Vec<u8>> = (0..20_000u32)
            .map(|i| format!("k{i}").into_bytes())
            .filter(|k| mr_runfile::starts_segment(k))
            .take(3)
            .collect();
        keys.sort();
        let mut out = b"a 1\n".to_vec();
        let mut starts = Vec::new();
        for k in &keys {
            starts.push((k.clone(), out.len() as u64));
            out.extend_from_slice(k);
            out.extend_from_slice(b" 7\nzz 1\n");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        std::fs::write(&path, &out).unwrap();
        let len = out.len() as u64;
        assert!(index_holds(&path, len, &starts));
        assert!(index_holds(&path, len, &[]));
        let lie = |f: &dyn Fn(&mut Starts)| {
            let mut s = starts.clone();
            f(&mut s);
            index_holds(&path, len, &s)
        };
        assert!(!lie(&|s| s[1].1 += 1), "an offset inside a line");
        assert!(!lie(&|s| s[2].1 = len + 10), "an offset past the end");
        assert!(!lie(&|s| s.swap(0, 1)), "out of order");
        assert!(
            !lie(&|s| s[0].0 = b"a".to_vec()),
            "a key that starts no segment"
        );
        assert!(!lie(&|s| s[0].1 = 0), "another key's line");
    }

    #[test]
    fn a_map_entrys_meta_reads_back_its_head_at_once_and_its_segments_when_asked() {
        let counters = Counters {
            input_bytes: 7,
            ..Counters::default()
        };
        let parts = vec![Some(index(1, &["a", "m"])), None, Some(index(3, &["b"]))];
        let (_, meta) = MapParts::encode(&counters, parts.clone());
        let (got, read) = MapParts::decode(&meta, 3).unwrap();
        assert_eq!(got, counters);
        assert_eq!(
            read.keys,
            vec![Some(Key([1; 32])), None, Some(Key([3; 32]))]
        );
        assert!(read.blocks.get().is_none() && read.segments.get().is_none());
        let part = |i: usize| parts[i].as_ref();
        assert_eq!(
            read.partition(0).unwrap().blocks().unwrap(),
            part(0).unwrap().blocks
        );
        assert!(
            read.segments.get().is_none(),
            "segments parsed before they were needed"
        );
        assert_eq!(
            read.partition(2).unwrap().segments().unwrap(),
            part(2).unwrap().segments
        );
        assert!(read.partition(1).is_none());
        // Another R, a cut or damaged meta: not an entry, and no panic.
        assert!(MapParts::decode(&meta, 4).is_none());
        for cut in [0, 5, 8, 20, meta.len() - 1] {
            if let Some((_, p)) = MapParts::decode(&meta[..cut], 3) {
                assert!(
                    p.segments().is_none() || p.blocks().is_none(),
                    "cut at {cut}"
                );
            }
        }
        let mut bad = meta.clone();
        bad[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(MapParts::decode(&bad, 3).is_none());
    }
}
