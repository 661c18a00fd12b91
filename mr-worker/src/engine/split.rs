//! Line alignment of splits and chunks.
//!
//! The planner cuts files at arbitrary byte offsets. Here those offsets are
//! moved to line starts by one rule: a line belongs to the split (or chunk)
//! in which it starts. Every line is then mapped exactly once, whatever the
//! split size, including lines longer than a split.

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
