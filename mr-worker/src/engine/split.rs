//! Record alignment of splits and chunks.
//!
//! The planner cuts files at arbitrary byte offsets (at record boundaries
//! for fixed-length records). Here those offsets are moved to record starts
//! by one rule: a record belongs to the split (or chunk) in which it
//! starts. Every record is then mapped exactly once, whatever the split
//! size, including lines longer than a split. [`Framing`] says what a
//! record is: a line, a fixed number of bytes, or the whole file.

/// How an input's bytes divide into records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Lines, each ending after its `\n` (the last may lack it).
    Lines,
    /// Records of this many bytes (any bytes, newlines included).
    Fixed(usize),
    /// The whole file is one record (apps that must see whole files).
    WholeFile,
}

impl Framing {
    /// How `app` reads its inputs.
    pub fn of(app: &dyn mr_apps::App) -> Framing {
        match (app.whole_file(), app.record_size()) {
            (true, _) => Framing::WholeFile,
            (false, Some(n)) if n > 0 => Framing::Fixed(n as usize),
            _ => Framing::Lines,
        }
    }

    /// Aligns `[start, end)` of `data` (whose first byte is byte `from` of
    /// the input) to whole records: from the first record start in it to
    /// the end of the last record starting in it. Lines need the byte
    /// before `start` in `data` (a line starts after a `\n`).
    pub fn align(self, data: &[u8], start: usize, end: usize, from: u64) -> (usize, usize) {
        match self {
            Framing::Lines | Framing::WholeFile => align(data, start, end),
            Framing::Fixed(n) => {
                let end = end.min(data.len());
                let up = |x: usize| {
                    let r = ((from + x as u64) % n as u64) as usize;
                    if r == 0 {
                        x
                    } else {
                        x + (n - r)
                    }
                };
                // Only whole records held in `data` are ours; the planner
                // cuts on record boundaries, so nothing is left out.
                let held = data.len() - ((from as usize + data.len()) % n);
                let (s, e) = (up(start), up(end).min(held));
                if start >= end || s >= e {
                    (e.min(s), e.min(s))
                } else {
                    (s, e)
                }
            }
        }
    }

    /// Where the chunk starting at `s` (a record start before `end`) ends:
    /// the first record start at least `target` bytes on, or `end`.
    pub fn chunk_end(self, data: &[u8], s: usize, end: usize, target: usize) -> usize {
        match self {
            Framing::Lines | Framing::WholeFile => chunk_end(data, s, end, target),
            Framing::Fixed(n) => {
                let take = (target / n).max(1) * n;
                if end - s <= take {
                    end
                } else {
                    s + take
                }
            }
        }
    }

    /// The end of the record starting at `s` in `data[..end]`.
    pub fn record_end(self, data: &[u8], s: usize, end: usize) -> usize {
        match self {
            Framing::Lines => memchr::memchr(b'\n', &data[s..end]).map_or(end, |i| s + i + 1),
            Framing::Fixed(n) => (s + n).min(end),
            Framing::WholeFile => end,
        }
    }

    /// How many records `data` (a chunk of whole records) holds.
    pub fn count(self, data: &[u8]) -> u64 {
        match self {
            Framing::Lines => {
                let newlines = memchr::memchr_iter(b'\n', data).count() as u64;
                newlines + u64::from(data.last().is_some_and(|&b| b != b'\n'))
            }
            Framing::Fixed(n) => data.len().div_ceil(n) as u64,
            Framing::WholeFile => 1,
        }
    }
}

/// The first line start at or after `pos`: `pos` itself if it is 0 or follows
/// a `\n`, else the byte after the next `\n`, else `data.len()`.
pub fn line_start_at_or_after(data: &[u8], pos: usize) -> usize {
    if pos == 0 {
        return 0;
    }
    if pos > data.len() {
        return data.len();
    }
    match memchr::memchr(b'\n', &data[pos - 1..]) {
        Some(i) => pos + i,
        None => data.len(),
    }
}

/// Aligns the byte range `[start, end)` of `data` to whole lines: from the
/// first line start in it to the end of the last line starting in it.
pub fn align(data: &[u8], start: usize, end: usize) -> (usize, usize) {
    let end = end.min(data.len());
    if start >= end {
        return (end, end);
    }
    // Only a line starting inside the range is ours, so the search for the
    // first start stops at `end`: a range inside one long line costs its
    // own length, not the rest of the line (tiny splits of a huge line).
    let s = if start == 0 {
        0
    } else {
        match memchr::memchr(b'\n', &data[start - 1..end - 1]) {
            Some(i) => start + i,
            None => return (end, end),
        }
    };
    (s, line_start_at_or_after(data, end))
}

/// Cuts `[start, end)` (already aligned) into line-aligned chunks of about
/// `target` bytes (a line longer than `target` makes a longer chunk).
pub fn chunks(data: &[u8], start: usize, end: usize, target: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut s = start;
    while s < end {
        let e = chunk_end(data, s, end, target);
        out.push((s, e));
        s = e;
    }
    out
}

/// Where the chunk of [`chunks`] that starts at `s` (a line start before
/// `end`) ends: the first line start at least `target` bytes on, or `end`.
/// Looked up one chunk at a time, a mapped input's pages are first touched
/// when they are mapped, not all at once when the task starts.
pub fn chunk_end(data: &[u8], s: usize, end: usize, target: usize) -> usize {
    let target = target.max(1);
    // line_start_at_or_after(p) >= p, so every chunk is non-empty.
    if end - s <= target {
        end
    } else {
        line_start_at_or_after(data, s + target).min(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_records_belong_to_the_range_they_start_in() {
        let f = Framing::Fixed(10);
        let data = [0u8; 100];
        // Ranges cut anywhere still give every record once.
        let mut covered = Vec::new();
        for (a, b) in [(0, 25), (25, 25), (25, 61), (61, 100)] {
            let (s, e) = f.align(&data, a, b, 0);
            assert!(s % 10 == 0 && e % 10 == 0, "{a}..{b} gave {s}..{e}");
            covered.extend((s..e).step_by(10));
        }
        assert_eq!(covered, (0..100).step_by(10).collect::<Vec<_>>());
        // Bytes fetched from offset 95 of the input: records start at 100;
        // only whole records held are given.
        assert_eq!(f.align(&data[..45], 0, 45, 95), (5, 45));
        assert_eq!(f.align(&data[..40], 0, 40, 95), (5, 35));
        assert_eq!(f.chunk_end(&data, 0, 100, 25), 20);
        assert_eq!(f.chunk_end(&data, 90, 100, 25), 100);
        assert_eq!(f.chunk_end(&data, 0, 100, 3), 10);
        assert_eq!(f.record_end(&data, 20, 100), 30);
        assert_eq!(f.count(&data[..30]), 3);
    }

    /// Splits `data` at every multiple of `size`, aligns, and returns the pieces.
    fn pieces(data: &[u8], size: usize) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut s = 0;
        while s < data.len() {
            let (a, b) = align(data, s, (s + size).min(data.len()));
            out.push(&data[a..b]);
            s += size;
        }
        out
    }

    #[test]
    fn every_line_lands_in_exactly_one_split() {
        let data = b"one\ntwo two\n\nthree three three\nfour";
        for size in 1..=data.len() + 1 {
            let joined: Vec<u8> = pieces(data, size).concat();
            assert_eq!(joined, data, "split size {size}");
            let mut pos = 0;
            for p in pieces(data, size) {
                assert!(
                    p.is_empty() || pos == 0 || data[pos - 1] == b'\n',
                    "size {size}"
                );
                pos += p.len();
            }
        }
    }

    #[test]
    fn a_line_longer_than_a_split_goes_to_the_split_it_starts_in() {
        let data = b"aaaaaaaaaaaaaaaaaaaa\nb\n";
        let p = pieces(data, 4);
        assert_eq!(p[0], &data[..21]);
        assert!(p[1..5].iter().all(|x| x.is_empty()));
        assert_eq!(p[5], b"b\n");
    }

    #[test]
    fn align_takes_exactly_the_lines_starting_in_the_range() {
        let data = b"\nab\nlonglonglonglong line\n\n\nx\r\ny z\nlast";
        // Lines as (start, end), found independently of the module.
        let mut lines = Vec::new();
        let mut s = 0;
        for (i, &b) in data.iter().enumerate() {
            if b == b'\n' {
                lines.push((s, i + 1));
                s = i + 1;
            }
        }
        lines.push((s, data.len()));
        for start in 0..=data.len() {
            for end in start..=data.len() {
                let mine: Vec<_> = lines
                    .iter()
                    .filter(|&&(ls, _)| start <= ls && ls < end)
                    .collect();
                let (a, b) = align(data, start, end);
                match (mine.first(), mine.last()) {
                    (Some(f), Some(l)) => assert_eq!((a, b), (f.0, l.1), "{start}..{end}"),
                    _ => assert_eq!(a, b, "{start}..{end} holds no line start"),
                }
            }
        }
    }

    #[test]
    fn crlf_no_final_newline_and_empty_input() {
        let data = b"a\r\nb\r\nc";
        let p = pieces(data, 2);
        assert_eq!(p.concat(), data);
        assert_eq!(p[0], b"a\r\n");
        assert_eq!(align(b"", 0, 0), (0, 0));
        assert!(chunks(b"", 0, 0, 10).is_empty());
    }

    #[test]
    fn chunks_are_line_aligned_and_cover_the_range() {
        let data: Vec<u8> = (0..200)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        for target in [1, 7, 64, 1000, 5000] {
            let cs = chunks(&data, 0, data.len(), target);
            let mut pos = 0;
            for &(s, e) in &cs {
                assert_eq!(s, pos);
                assert!(s == 0 || data[s - 1] == b'\n');
                pos = e;
            }
            assert_eq!(pos, data.len(), "target {target}");
        }
    }
}
