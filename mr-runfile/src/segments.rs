//! Segments: key ranges inside a partition that every map output and every
//! reduce output of that partition agree on without talking to each other.
//!
//! A key *starts a segment* when a hash of its bytes alone picks it (one
//! key in [`SEGMENT_EVERY`]), so the cut points are a property of the keys,
//! like a content-defined chunker's are of the bytes. A partition's records
//! then fall into segments: the head (keys before the first picked key,
//! if any) and one per picked key present, up to the next. A map output's
//! segment and a reduce output's are cut at the same keys wherever those
//! keys occur, so a re-run whose inputs changed in a few keys can tell
//! which segments of an earlier reduce output still hold (`mr-cache`) and
//! reduce only the others, reading each map output from the block where
//! the segment begins ([`crate::RunFile::partition_range`]).

use crate::{PartitionReader, RunError};

/// One key in this many starts a segment, on average: about 100 segments
/// in a partition of 50,000 distinct keys, so an edit of a few words
/// leaves 95% of a reduce's output to copy, while a map output's segment
/// index stays a few kilobytes per partition.
pub const SEGMENT_EVERY: u64 = 512;

/// Whether `key` starts a segment: FNV-1a over its bytes, finished with a
/// 64-bit mixer so that every bit depends on every byte (the partitioner
/// uses FNV-1a too; the mixing keeps the two choices independent).
#[inline]
pub fn starts_segment(key: &[u8]) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h.is_multiple_of(SEGMENT_EVERY)
}

impl PartitionReader {
    /// Reads the rest of the partition as segments, checking every block:
    /// calls `start(key, block)` where each segment begins (`key` None for
    /// the head segment; `block` the file offset of the block holding its
    /// first record), and `feed(bytes)` with every record's encoding, in
    /// order and in as few pieces as the blocks allow, so a segment's
    /// records are the bytes fed between its start and the next.
    pub fn segments(
        mut self,
        mut start: impl FnMut(Option<&[u8]>, u64),
        mut feed: impl FnMut(&[u8]),
    ) -> Result<(), RunError> {
        // The key that started the current segment, if one did: a picked
        // key's later records (an app that does not combine) stay in it.
        let mut current: Option<Vec<u8>> = None;
        let mut any = false;
        while self.load_block()? {
            let (mut p, mut fed) = (0, 0);
            while p < self.block.len() {
                let (key, value) = self.parse_at(p)?;
                let key = &self.block[key];
                let picked = starts_segment(key);
                if !any || (picked && current.as_deref() != Some(key)) {
                    feed(&self.block[fed..p]);
                    fed = p;
                    start(picked.then_some(key), self.block_at);
                    current = picked.then(|| key.to_vec());
                    any = true;
                }
                p = value.end;
            }
            feed(&self.block[fed..]);
        }
        Ok(())
    }
}
