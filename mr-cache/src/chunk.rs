//! Content-defined split boundaries: where a file is cut into splits of
//! about a target size, decided by its bytes rather than by offsets, so that
//! inserting a line early in a file moves one or two boundaries instead of
//! every later one (as in Inc-HDFS and FastCDC).
//!
//! A gear hash runs over the bytes (`h = (h << 1) + GEAR[byte]`); its top
//! bits depend only on the last 64 bytes, so whether a position is a
//! candidate depends only on the bytes just before it. The first candidate
//! at least `target / 2` bytes after the previous cut is taken (none within
//! `4 x target`: cut there), then moved forward to the next line start (or
//! record start, for fixed-length records), so every split starts at a
//! record and maps exactly the records fixed splits would have given it
//! (workers align ranges to record starts either way).

/// Where a file may be cut into pieces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Nowhere: compressed files, and apps that read whole files.
    Never,
    /// At line starts.
    Lines,
    /// At the starts of fixed-length records of this many bytes.
    Records(u64),
}

impl Cut {
    /// The bytes that stand for this choice in keys.
    pub fn tag(self) -> [u8; 9] {
        let (kind, n) = match self {
            Cut::Never => (1, 0),
            Cut::Lines => (0, 0),
            Cut::Records(n) => (2, n),
        };
        let mut t = [kind; 9];
        t[1..].copy_from_slice(&n.to_le_bytes());
        t
    }
}

/// One random 64-bit value per byte value, fixed forever (SplitMix64 from a
/// constant seed): cut points, and so cache hits, depend on it.
const GEAR: [u64; 256] = gear_table();

const fn gear_table() -> [u64; 256] {
    let mut t = [0u64; 256];
    let mut state = 0x6d72_2d63_6163_6865u64;
    let mut i = 0;
    while i < 256 {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        t[i] = z ^ (z >> 31);
        i += 1;
    }
    t
}

/// Offsets (ascending, each a record start as `cut` says, none at 0 or at
/// the end) at which `bytes` is cut into splits of about `target` bytes.
pub fn cut_points(bytes: &[u8], target: u64, cut: Cut) -> Vec<u64> {
    if cut == Cut::Never {
        return Vec::new();
    }
    let target = target.max(64) as usize;
    let min = target / 2;
    let max = target.saturating_mul(4);
    // A candidate every 2^bits positions on average: after `min`, that
    // makes splits of about `min + 2^bits`, i.e. `target`.
    let bits = (usize::BITS - 1 - (target - min).leading_zeros()).max(1);
    let mut cuts = Vec::new();
    let mut last = 0usize;
    while bytes.len() - last > min {
        let from = last + min;
        let until = bytes.len().min(last + max);
        // Warm the hash on the 64 bytes before `from`, so the first
        // candidate depends on content only, not on where `last` fell.
        let mut h = 0u64;
        for &b in &bytes[from.saturating_sub(64).max(last)..from] {
            h = (h << 1).wrapping_add(GEAR[b as usize]);
        }
        let mut at = until;
        for (i, &b) in bytes[from..until].iter().enumerate() {
            h = (h << 1).wrapping_add(GEAR[b as usize]);
            if h >> (64 - bits) == 0 {
                at = from + i;
                break;
            }
        }
        if at >= bytes.len() {
            break;
        }
        // To the next record start; a file ending inside this record is
        // not cut.
        let next = match cut {
            Cut::Records(n) => Some(at.div_ceil(n as usize) * n as usize),
            _ => memchr::memchr(b'\n', &bytes[at..]).map(|nl| at + nl + 1),
        };
        match next {
            Some(next) if next > last && next < bytes.len() => {
                last = next;
                cuts.push(last as u64);
            }
            _ => break,
        }
    }
    cuts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic text: lines of 1-12 words of 2-9 letters.
    fn text(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        let mut next = move || {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z ^ (z >> 31)
        };
        let mut out = Vec::with_capacity(n + 64);
        while out.len() < n {
            for w in 0..1 + next() % 12 {
                if w > 0 {
                    out.push(b' ');
                }
                for _ in 0..2 + next() % 8 {
                    out.push(b'a' + (next() % 26) as u8);
                }
            }
            out.push(b'\n');
        }
        out
    }

    #[test]
    fn cuts_fall_after_newlines_at_about_the_target_size() {
        let bytes = text(4 << 20, 1);
        let cuts = cut_points(&bytes, 64 << 10, Cut::Lines);
        assert!(!cuts.is_empty());
        for w in cuts.windows(2) {
            assert!(w[0] < w[1]);
        }
        for &c in &cuts {
            assert_eq!(bytes[c as usize - 1], b'\n', "cut at {c}");
        }
        // About 64 splits of 64 KiB: none shorter than half the target,
        // on average within a factor of two of it.
        let mut starts = vec![0u64];
        starts.extend(&cuts);
        starts.push(bytes.len() as u64);
        let sizes: Vec<u64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
        let last = sizes.len() - 1;
        assert!(sizes[..last].iter().all(|&s| s >= 32 << 10), "{sizes:?}");
        let mean = bytes.len() as u64 / sizes.len() as u64;
        assert!((32 << 10..128 << 10).contains(&mean), "mean {mean}");
    }

    #[test]
    fn an_inserted_line_moves_only_the_cuts_near_it() {
        let bytes = text(8 << 20, 2);
        let before = cut_points(&bytes, 64 << 10, Cut::Lines);
        // A line inserted at a line start about a third of the way in.
        let at = memchr::memchr(b'\n', &bytes[bytes.len() / 3..]).unwrap() + bytes.len() / 3 + 1;
        let line = b"an inserted line of words\n";
        let mut edited = bytes[..at].to_vec();
        edited.extend_from_slice(line);
        edited.extend_from_slice(&bytes[at..]);
        let after = cut_points(&edited, 64 << 10, Cut::Lines);
        // Every cut before the edit stays; every cut well after it is the
        // same, shifted by the line's length.
        let shifted: Vec<u64> = before
            .iter()
            .map(|&c| {
                if c as usize > at {
                    c + line.len() as u64
                } else {
                    c
                }
            })
            .collect();
        let same = shifted.iter().filter(|c| after.contains(c)).count();
        assert!(
            same + 2 >= before.len(),
            "{} of {} cuts kept",
            same,
            before.len()
        );
    }

    #[test]
    fn record_cuts_fall_on_record_starts() {
        let bytes: Vec<u8> = (0..100_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let cuts = cut_points(&bytes, 4096, Cut::Records(100));
        assert!(cuts.len() > 5, "{cuts:?}");
        assert!(
            cuts.iter().all(|c| c % 100 == 0 && *c < 100_000),
            "{cuts:?}"
        );
        assert!(cut_points(&bytes, 4096, Cut::Never).is_empty());
    }

    #[test]
    fn edge_cases_give_valid_cuts() {
        assert!(cut_points(b"", 100, Cut::Lines).is_empty());
        assert!(cut_points(b"no newline at all", 1, Cut::Lines).is_empty());
        // One huge line: nowhere to cut.
        assert!(cut_points(&vec![b'x'; 1 << 20], 1024, Cut::Lines).is_empty());
        // Newlines only, tiny target: every cut is after a newline, short of the end.
        let nl = vec![b'\n'; 10_000];
        let cuts = cut_points(&nl, 1, Cut::Lines);
        assert!(cuts.iter().all(|&c| c > 0 && c < 10_000));
        // Invalid UTF-8 and NULs are bytes like any others.
        let mut odd = text(1 << 20, 3);
        for i in (0..odd.len()).step_by(97) {
            odd[i] = if i % 2 == 0 { 0xff } else { 0 };
        }
        for c in cut_points(&odd, 4096, Cut::Lines) {
            assert_eq!(odd[c as usize - 1], b'\n');
        }
    }
}
