//! Which segments of an earlier reduce output still hold, when a reduce's
//! inputs changed in a few keys.
//!
//! A reduce's output is made key by key, and the output of a key depends
//! only on that key's records, in map order. An earlier output of the same
//! partition (found through the cache's lineage entry) was made from a
//! list of map partitions; the new list differs from it in a few maps in
//! the middle (an edited split, a new file), with the same maps before and
//! after. Pairing the old and new maps of that middle, a key can have
//! different records only inside a segment that one side has and the other
//! has not (same first key, same digest), between its first and last keys:
//! every other key's records, and so its output, are the same. The earlier
//! output's segments that meet none of those key ranges are copied; the
//! rest are reduced again, reading each map's output from the block where
//! the range begins.
//!
//! Why pairing is sound: say key x has records in the old map, in segment
//! S. If S has a twin in the new map (same first key, same records), that
//! twin holds x's records, and the new map has no others (a key's records
//! are contiguous, so in one segment): x's records are the same on both
//! sides. Otherwise x lies between S's first and last keys, a changed
//! range. Likewise from the new side. Unpaired maps (a different number of
//! old and new ones) mark every range they have records in.

use crate::partitions::{MapSegment, PartitionIndex};
use crate::Key;
use mr_protocol::ReusePiece;
use std::collections::HashSet;

/// At most this many maps may differ between the earlier and the new
/// inputs (each an old map's index is read back from the cache): past
/// that, little is left to copy.
pub const MAX_CHANGED_MAPS: usize = 8;

/// The keys a map segment holds records of, at most: from its first key
/// (None: the smallest) to its last, both included.
type Changed<'a> = (Option<&'a [u8]>, &'a [u8]);

/// An output segment's keys: from its first key (None: the smallest) up
/// to the next segment's first (None: past the greatest).
type Span<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Whether changed range `c` and output segment `s` share a key.
fn overlap(c: Changed<'_>, s: Span<'_>) -> bool {
    let starts_before_end = match (c.0, s.1) {
        (_, None) | (None, _) => true,
        (Some(a), Some(d)) => a < d,
    };
    let ends_after_start = s.0.is_none_or(|start| start <= c.1);
    starts_before_end && ends_after_start
}

/// Each segment's key range.
fn ranges(segments: &[MapSegment]) -> impl Iterator<Item = (&MapSegment, Changed<'_>)> {
    segments
        .iter()
        .map(|s| (s, (s.start.as_deref(), s.last.as_slice())))
}

/// The key ranges in which `old` and `new` (a map partition's segments
/// before and after) may differ: those of the segments one has and the
/// other has not.
fn changed<'a>(old: &'a [MapSegment], new: &'a [MapSegment], out: &mut Vec<Changed<'a>>) {
    let twins = |segs: &'a [MapSegment]| -> HashSet<(Option<&'a [u8]>, &'a [u8; 32])> {
        segs.iter()
            .map(|s| (s.start.as_deref(), &s.digest))
            .collect()
    };
    let (in_old, in_new) = (twins(old), twins(new));
    for (s, range) in ranges(old) {
        if !in_new.contains(&(s.start.as_deref(), &s.digest)) {
            out.push(range);
        }
    }
    for (s, range) in ranges(new) {
        if !in_old.contains(&(s.start.as_deref(), &s.digest)) {
            out.push(range);
        }
    }
}

/// What the planner needs of a map output's partition: its address, and
/// (when asked: a job reads most maps' only in part) its segments and
/// blocks.
pub trait MapPartition: Sync {
    /// The partition's address.
    fn key(&self) -> Key;
    /// Its segments (None: they cannot be read).
    fn segments(&self) -> Option<&[MapSegment]>;
    /// Its blocks' file offsets and first keys (None: cannot be read).
    fn blocks(&self) -> Option<&[(u64, Vec<u8>)]>;
}

impl MapPartition for PartitionIndex {
    fn key(&self) -> Key {
        self.key
    }
    fn segments(&self) -> Option<&[MapSegment]> {
        Some(&self.segments)
    }
    fn blocks(&self) -> Option<&[(u64, Vec<u8>)]> {
        Some(&self.blocks)
    }
}

/// The earlier output of a reduce, as its cache entry describes it.
pub struct Earlier<'a> {
    /// Where each of its segments after the head begins: first key, offset.
    pub starts: &'a [(Vec<u8>, u64)],
    /// Its length in bytes.
    pub len: u64,
    /// Its inputs' partition addresses, in map order (empty ones left out).
    pub inputs: &'a [crate::Key],
}

/// The pieces that make the new output of a reduce from `earlier`, given
/// the new inputs' partitions (`new`: one per map in map order, None for
/// an empty one) and `old_index(i)`, the index of `earlier.inputs[i]`
/// (read back from the cache). None when nothing would be copied or the
/// inputs differ too much.
pub fn plan(
    earlier: &Earlier<'_>,
    new: &[Option<&dyn MapPartition>],
    old_index: &dyn Fn(usize) -> Option<PartitionIndex>,
) -> Option<Vec<ReusePiece>> {
    let now: Vec<&dyn MapPartition> = new.iter().flatten().copied().collect();
    let old = earlier.inputs;
    // The maps before and after the change are the same on both sides.
    let head = old
        .iter()
        .zip(&now)
        .take_while(|(o, n)| **o == n.key())
        .count();
    let tail = old[head..]
        .iter()
        .rev()
        .zip(now[head..].iter().rev())
        .take_while(|(o, n)| **o == n.key())
        .count();
    let (old_mid, new_mid) = (head..old.len() - tail, &now[head..now.len() - tail]);
    if old_mid.len() > MAX_CHANGED_MAPS || new_mid.len() > MAX_CHANGED_MAPS {
        return None;
    }
    let old_mid: Vec<PartitionIndex> = old_mid.map(old_index).collect::<Option<_>>()?;
    let new_mid: Vec<&[MapSegment]> = new_mid
        .iter()
        .map(|p| p.segments())
        .collect::<Option<_>>()?;
    let mut dirty: Vec<Changed<'_>> = Vec::new();
    if old_mid.len() == new_mid.len() {
        for (o, n) in old_mid.iter().zip(&new_mid) {
            changed(&o.segments, n, &mut dirty);
        }
    } else {
        let old = old_mid.iter().map(|p| p.segments.as_slice());
        for segments in old.chain(new_mid.iter().copied()) {
            dirty.extend(ranges(segments).map(|(_, r)| r));
        }
    }
    // The earlier output's segments: the head, then one per start.
    let mut segments: Vec<(Option<&[u8]>, u64)> = vec![(None, 0)];
    segments.extend(
        earlier
            .starts
            .iter()
            .map(|(k, off)| (Some(k.as_slice()), *off)),
    );
    let mut pieces: Vec<ReusePiece> = Vec::new();
    let mut copied = 0;
    for (i, &(start, offset)) in segments.iter().enumerate() {
        let (end, end_offset) = match segments.get(i + 1) {
            Some(&(k, off)) => (k, off),
            None => (None, earlier.len),
        };
        if end_offset < offset {
            return None; // A damaged index: reduce every key.
        }
        if dirty.iter().any(|&d| overlap(d, (start, end))) {
            // Joined to the range before it when that is reduced too.
            if let Some(ReusePiece::Reduce { to, .. }) = pieces.last_mut() {
                *to = end.map(<[u8]>::to_vec);
            } else {
                pieces.push(ReusePiece::Reduce {
                    from: start.map(<[u8]>::to_vec),
                    to: end.map(<[u8]>::to_vec),
                    blocks: Vec::new(),
                });
            }
        } else {
            copied += end_offset - offset;
            pieces.push(ReusePiece::Copy {
                start: start.map(<[u8]>::to_vec),
                offset,
                len: end_offset - offset,
            });
        }
    }
    if copied == 0 {
        return None;
    }
    for piece in &mut pieces {
        if let ReusePiece::Reduce { from, to, blocks } = piece {
            *blocks = new
                .iter()
                .map(|p| match p {
                    None => Some(u64::MAX),
                    Some(p) => Some(first_block(p.blocks()?, from.as_deref(), to.as_deref())),
                })
                .collect::<Option<_>>()?;
        }
    }
    Some(pieces)
}

/// The block of a map partition to read keys `from..to` from: the last
/// whose first key is below `from` (a key's records may run on from the
/// block before the one it first starts), else its first; `u64::MAX` when
/// its first key is past the range.
fn first_block(blocks: &[(u64, Vec<u8>)], from: Option<&[u8]>, to: Option<&[u8]>) -> u64 {
    let Some((first_at, first_key)) = blocks.first() else {
        return u64::MAX;
    };
    if to.is_some_and(|to| first_key.as_slice() >= to) {
        return u64::MAX;
    }
    let Some(from) = from else {
        return *first_at;
    };
    // Blocks are in key order: the ones starting below `from` come first.
    let below = blocks.partition_point(|(_, k)| k.as_slice() < from);
    blocks[below.saturating_sub(1)].0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partitions::partition_index;
    use crate::Key;
    use mr_runfile::{starts_segment, RunWriter};
    use std::collections::BTreeMap;
    use std::path::Path;

    type Records = BTreeMap<Vec<u8>, Vec<Vec<u8>>>;

    /// A one-partition run file holding `records`.
    fn run(path: &Path, records: &Records) -> PartitionIndex {
        let mut w = RunWriter::create(path, 0, 1).unwrap();
        for (k, vs) in records {
            for v in vs {
                w.push(k, v).unwrap();
            }
        }
        w.end_partition().unwrap();
        w.finish().unwrap();
        partition_index(path, 1).unwrap().remove(0).unwrap()
    }

    /// What a reduce of `maps` outputs (a line per key: the key, then its
    /// values in map order) and where its segments begin.
    fn reduce(maps: &[&Records]) -> (Vec<u8>, Vec<(Vec<u8>, u64)>) {
        let mut all: BTreeMap<&Vec<u8>, Vec<&Vec<u8>>> = BTreeMap::new();
        for m in maps {
            for (k, vs) in m.iter() {
                all.entry(k).or_default().extend(vs);
            }
        }
        let (mut out, mut starts) = (Vec::new(), Vec::new());
        for (k, vs) in all {
            if starts_segment(k) {
                starts.push((k.clone(), out.len() as u64));
            }
            out.extend_from_slice(k);
            for v in vs {
                out.push(b' ');
                out.extend_from_slice(v);
            }
            out.push(b'\n');
        }
        (out, starts)
    }

    /// The output the pieces make, reducing the keys of Reduce pieces
    /// from `maps` (checking each map's block is at or before its first
    /// record in range, by reading from it).
    fn apply(pieces: &[ReusePiece], earlier: &[u8], maps: &[&Records]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in pieces {
            match p {
                ReusePiece::Copy { offset, len, .. } => {
                    out.extend_from_slice(&earlier[*offset as usize..(offset + len) as usize])
                }
                ReusePiece::Reduce { from, to, .. } => {
                    let inside = |k: &Vec<u8>| {
                        from.as_ref().is_none_or(|f| k >= f) && to.as_ref().is_none_or(|t| k < t)
                    };
                    let part: Vec<Records> = maps
                        .iter()
                        .map(|m| {
                            m.iter()
                                .filter(|(k, _)| inside(k))
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect()
                        })
                        .collect();
                    out.extend(reduce(&part.iter().collect::<Vec<_>>()).0);
                }
            }
        }
        out
    }

    fn words(n: usize, salt: &str) -> Records {
        (0..n)
            .map(|i| {
                let k = format!("w{:05}", i * 37 % 20_011).into_bytes();
                (k, vec![format!("{salt}{i}").into_bytes()])
            })
            .collect()
    }

    #[test]
    fn an_edit_reduces_only_the_segments_it_touches_and_the_rest_is_copied() {
        let d = tempfile::tempdir().unwrap();
        let a = words(20_000, "a");
        let b = words(15_000, "b");
        let c = words(9_000, "c");
        let (old_out, starts) = reduce(&[&a, &b, &c]);
        assert!(starts.len() > 10);
        let (ia, ib, ic) = (
            run(&d.path().join("a"), &a),
            run(&d.path().join("b"), &b),
            run(&d.path().join("c"), &c),
        );
        // Map b edited: one value changed, one key added, one removed.
        let mut b2 = b.clone();
        b2.insert(b"w00500".to_vec(), vec![b"changed".to_vec()]);
        b2.insert(b"w20000x".to_vec(), vec![b"new".to_vec()]);
        b2.remove(b"w09000".as_slice());
        let ib2 = run(&d.path().join("b2"), &b2);
        let earlier = Earlier {
            starts: &starts,
            len: old_out.len() as u64,
            inputs: &[ia.key, ib.key, ic.key],
        };
        let old_b = ib.clone();
        let new: [Option<&dyn MapPartition>; 4] = [Some(&ia), None, Some(&ib2), Some(&ic)];
        let pieces = plan(&earlier, &new, &|i| {
            assert_eq!(i, 1, "only the changed map is read back");
            Some(old_b.clone())
        })
        .unwrap();
        let reduced = pieces
            .iter()
            .filter(|p| matches!(p, ReusePiece::Reduce { .. }))
            .count();
        assert!((1..=3).contains(&reduced), "{reduced} ranges reduced");
        let (new_out, _) = reduce(&[&a, &b2, &c]);
        assert_eq!(apply(&pieces, &old_out, &[&a, &b2, &c]), new_out);
        // Every reduced range names a block per map; the empty map none.
        for p in &pieces {
            if let ReusePiece::Reduce { blocks, .. } = p {
                assert_eq!(blocks.len(), 4);
                assert_eq!(blocks[1], u64::MAX);
            }
        }
    }

    #[test]
    fn a_new_map_or_a_split_in_two_marks_every_range_it_has_records_in() {
        let d = tempfile::tempdir().unwrap();
        let a = words(20_000, "a");
        let (old_out, starts) = reduce(&[&a]);
        let ia = run(&d.path().join("a"), &a);
        let earlier = Earlier {
            starts: &starts,
            len: old_out.len() as u64,
            inputs: &[ia.key],
        };
        // A new map with a few keys in one corner of the key space.
        let n: Records = [
            (b"w00001".to_vec(), vec![b"x".to_vec()]),
            (b"w00002".to_vec(), vec![b"y".to_vec()]),
        ]
        .into_iter()
        .collect();
        let inew = run(&d.path().join("n"), &n);
        let pieces = plan(
            &earlier,
            &[Some(&ia as &dyn MapPartition), Some(&inew)],
            &|_| panic!("nothing old to read"),
        )
        .unwrap();
        assert_eq!(apply(&pieces, &old_out, &[&a, &n]), reduce(&[&a, &n]).0);
        let copies = pieces
            .iter()
            .filter(|p| matches!(p, ReusePiece::Copy { .. }))
            .count();
        assert!(
            copies >= starts.len() - 1,
            "{copies} of {} segments copied",
            starts.len() + 1
        );
        // The map split in two at a key: every range of both halves is
        // marked (and the result is still right).
        let (lo, hi): (Records, Records) = a
            .clone()
            .into_iter()
            .partition(|(k, _)| k.as_slice() < b"w10000".as_slice());
        let (ilo, ihi) = (
            run(&d.path().join("lo"), &lo),
            run(&d.path().join("hi"), &hi),
        );
        let ia2 = ia.clone();
        match plan(
            &earlier,
            &[Some(&ilo as &dyn MapPartition), Some(&ihi)],
            &move |_| Some(ia2.clone()),
        ) {
            None => {}
            Some(p) => assert_eq!(apply(&p, &old_out, &[&lo, &hi]), old_out),
        }
        // Unrelated inputs, or too many changed maps: no plan.
        let many: Vec<PartitionIndex> = (0..MAX_CHANGED_MAPS + 1).map(|_| inew.clone()).collect();
        let refs: Vec<Option<&dyn MapPartition>> =
            many.iter().map(|p| Some(p as &dyn MapPartition)).collect();
        assert!(plan(&earlier, &refs, &|_| Some(ia.clone())).is_none());
        // Nothing to copy: no plan.
        let every = Earlier {
            starts: &[],
            len: old_out.len() as u64,
            inputs: &[ia.key],
        };
        assert!(plan(&every, &[Some(&inew as &dyn MapPartition)], &|_| Some(
            ia.clone()
        ))
        .is_none());
        // An index that goes backwards is damaged: no plan.
        let bad = [(b"w1".to_vec(), 10), (b"w2".to_vec(), 5)];
        let damaged = Earlier {
            starts: &bad,
            len: old_out.len() as u64,
            inputs: &[Key([9; 32])],
        };
        assert!(plan(&damaged, &[Some(&ia as &dyn MapPartition)], &|_| Some(
            ia.clone()
        ))
        .is_none());
    }

    #[test]
    fn a_closed_range_meets_a_half_open_segment_when_they_share_a_key() {
        let c = |a: Option<&'static str>, b: &'static str| (a.map(str::as_bytes), b.as_bytes());
        let s = |a: Option<&'static str>, b: Option<&'static str>| {
            (a.map(str::as_bytes), b.map(str::as_bytes))
        };
        assert!(overlap(c(None, "a"), s(Some("a"), Some("b"))));
        assert!(!overlap(c(None, "a"), s(Some("b"), None)));
        assert!(overlap(c(Some("a"), "c"), s(Some("b"), None)));
        assert!(!overlap(c(Some("b"), "c"), s(Some("a"), Some("b"))));
        assert!(overlap(c(Some("a"), "a"), s(None, Some("b"))));
        assert!(!overlap(c(Some("b"), "b"), s(None, Some("b"))));
    }
}
