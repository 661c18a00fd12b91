//! Segments: key ranges inside a partition that every map output and every
//! reduce output of that partition agree on without talking to each other.
//!
//! A key *starts a segment* when a hash of its bytes alone picks it (one
//! key in [`SEGMENT_EVERY`] for a reduce output, one in
//! [`MAP_SEGMENT_EVERY`] for a map output's finer segments, which nest in
//! the reduce output's), so the cut points are a property of the keys,
//! like a content-defined chunker's are of the bytes. A partition's records
//! then fall into segments: the head (keys before the first picked key,
//! if any) and one per picked key present, up to the next. Segments are
//! cut at the same keys wherever those keys occur, so a re-run whose
//! inputs changed in a few keys can tell
//! which segments of an earlier reduce output still hold (`mr-cache`) and
//! reduce only the others, reading each map output from the block where
//! the segment begins ([`crate::RunFile::partition_range`]).

use crate::{PartitionReader, RunError};
use std::ops::Range;

/// One key in this many starts a segment of a reduce output, on average:
/// about 100 segments in a partition of 50,000 distinct keys, so an edit of
/// a few words leaves 95% of a reduce's output to copy.
pub const SEGMENT_EVERY: u64 = 512;

/// One key in this many starts a segment of a map output: finer, because a
/// map output holds fewer keys of a partition than the reduce's output
/// does, and a changed segment marks its whole key range for reducing
/// again. Every key that starts a reduce output's segment starts a map
/// output's too (the same hash, a divisor of [`SEGMENT_EVERY`]).
pub const MAP_SEGMENT_EVERY: u64 = 64;

/// The hash that picks segment starts: FNV-1a over the key's bytes,
/// finished with a 64-bit mixer so that every bit depends on every byte
/// (the partitioner uses FNV-1a too; the mixing keeps the choices apart).
#[inline]
fn key_hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Whether `key` starts a segment of a reduce output.
#[inline]
pub fn starts_segment(key: &[u8]) -> bool {
    key_hash(key).is_multiple_of(SEGMENT_EVERY)
}

/// Whether `key` starts a segment of a map output.
#[inline]
pub fn starts_map_segment(key: &[u8]) -> bool {
    key_hash(key).is_multiple_of(MAP_SEGMENT_EVERY)
}

/// What [`PartitionReader::segments`] reports, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum SegmentEvent<'a> {
    /// A segment begins: at `key` (None for the head segment) in the block
    /// at file offset `block`.
    Start {
        /// The key that starts it, if one does.
        key: Option<&'a [u8]>,
        /// Where the block holding its first record begins.
        block: u64,
    },
    /// A block begins, at file offset `at`, with a record of key `first`
    /// (told before any segment that begins in it).
    Block {
        /// Where the block begins in the file.
        at: u64,
        /// Its first record's key.
        first: &'a [u8],
    },
    /// Encoded records of the current segment, in order.
    Bytes(&'a [u8]),
    /// The current segment ends; `last` is its last record's key.
    End {
        /// The key of its last record.
        last: &'a [u8],
    },
}

impl PartitionReader {
    /// Reads the rest of the partition as map output segments (cut at the
    /// keys [`starts_map_segment`] picks), checking every block, and tells
    /// `visit` where each block begins and its first key, where each
    /// segment begins, its records' bytes (in as few pieces as the blocks
    /// allow) and its last key.
    pub fn segments(mut self, mut visit: impl FnMut(SegmentEvent<'_>)) -> Result<(), RunError> {
        // The key that started the current segment, if one did: a picked
        // key's later records (an app that does not combine) stay in it.
        let mut current: Option<Vec<u8>> = None;
        // The last key read (in this block, or copied at a block's end).
        let mut last: Vec<u8> = Vec::new();
        let mut any = false;
        while self.load_block()? {
            let (mut p, mut fed) = (0, 0);
            let mut last_here = None;
            if !self.block.is_empty() {
                let (key, _) = self.parse_at(0)?;
                visit(SegmentEvent::Block {
                    at: self.block_at,
                    first: &self.block[key],
                });
            }
            while p < self.block.len() {
                let (key, value) = self.parse_at(p)?;
                let k = &self.block[key.clone()];
                let picked = starts_map_segment(k);
                if !any || (picked && current.as_deref() != Some(k)) {
                    if any {
                        visit(SegmentEvent::Bytes(&self.block[fed..p]));
                        let last =
                            last_here.map_or(last.as_slice(), |r: Range<usize>| &self.block[r]);
                        visit(SegmentEvent::End { last });
                    }
                    fed = p;
                    visit(SegmentEvent::Start {
                        key: picked.then_some(k),
                        block: self.block_at,
                    });
                    current = picked.then(|| k.to_vec());
                    any = true;
                }
                last_here = Some(key);
                p = value.end;
            }
            visit(SegmentEvent::Bytes(&self.block[fed..]));
            if let Some(r) = last_here {
                last.clear();
                last.extend_from_slice(&self.block[r]);
            }
        }
        if any {
            visit(SegmentEvent::End { last: &last });
        }
        Ok(())
    }
}
