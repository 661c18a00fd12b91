//! A split whose bytes were fetched into memory rather than mapped: a split
//! of an object read with ranged GETs, or a split of a file this worker
//! cannot read, fetched from the coordinator. [`Fetched`] holds the bytes
//! from the one before the split's range (to find its first line start)
//! through the end of the line crossing its end; [`FetchedLines`] aligns
//! and cuts them exactly as [`super::Lines`] cuts a mapped file, so line
//! alignment and record offsets are the same wherever the bytes came from.

use super::{Chunk, RecordSource};
use crate::engine::split::Framing;
use mr_protocol::{FilePart, TaskFailure};
use std::sync::Arc;

/// Bytes of an input file held in memory: `data[0]` is the file's byte `from`.
#[derive(Clone, Debug)]
pub struct Fetched {
    data: Arc<Vec<u8>>,
    from: u64,
}

impl Fetched {
    /// Bytes that start at offset `from` of their file.
    pub fn new(data: Vec<u8>, from: u64) -> Fetched {
        Fetched {
            data: Arc::new(data),
            from,
        }
    }

    /// How many bytes are held.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// The lines of a split that start in its byte range, from fetched bytes.
pub struct FetchedLines {
    fetched: Fetched,
    framing: Framing,
    /// The next chunk's start and the end of the aligned range, in `data`.
    at: usize,
    end: usize,
    target: usize,
}

impl FetchedLines {
    /// The lines of `part` in `fetched` (which must begin at or before the
    /// byte before `part.start`), in chunks of about `target` bytes.
    pub fn new(part: &FilePart, fetched: Fetched, framing: Framing, target: usize) -> FetchedLines {
        let from = fetched.from;
        let data: &[u8] = &fetched.data;
        let rel = |at: u64| (at.saturating_sub(from) as usize).min(data.len());
        let (start, end) = (rel(part.start), rel(part.end.min(part.file_len)));
        let (at, end) = framing.align(data, start, end, from);
        FetchedLines {
            fetched,
            framing,
            at,
            end,
            target,
        }
    }
}

impl RecordSource for FetchedLines {
    fn next_chunk(&mut self) -> Result<Option<Chunk>, TaskFailure> {
        if self.at >= self.end {
            return Ok(None);
        }
        let data = &self.fetched.data;
        let (s, e) = (
            self.at,
            self.framing.chunk_end(data, self.at, self.end, self.target),
        );
        self.at = e;
        Ok(Some(Chunk::shared(
            data,
            s,
            e,
            self.fetched.from + s as u64,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn part(start: u64, end: u64, file_len: u64) -> FilePart {
        FilePart {
            name: "f".into(),
            path: PathBuf::from("f"),
            start,
            end,
            file_len,
            version: None,
        }
    }

    /// Every record of a split, with its offset in the file.
    fn records(mut src: FetchedLines) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(c) = src.next_chunk().unwrap() {
            let mut at = c.base;
            for line in c.data().split_inclusive(|&b| b == b'\n') {
                out.push((at, line.to_vec()));
                at += line.len() as u64;
            }
        }
        out
    }

    #[test]
    fn fetched_bytes_give_the_lines_a_split_of_the_whole_file_gives() {
        let file = b"alpha beta\ngamma\n\nlong line of words here\nx\nlast".to_vec();
        let n = file.len() as u64;
        // Lines of the whole file with their offsets, found independently.
        let mut all = Vec::new();
        let mut s = 0usize;
        for (i, &b) in file.iter().enumerate() {
            if b == b'\n' {
                all.push((s as u64, file[s..=i].to_vec()));
                s = i + 1;
            }
        }
        all.push((s as u64, file[s..].to_vec()));
        for size in 1..=n {
            let mut got = Vec::new();
            let mut start = 0;
            while start < n {
                let end = (start + size).min(n);
                // What a fetch holds: the byte before the range through the
                // end of the line crossing its end.
                let from = start.saturating_sub(1);
                let to = file[end as usize - 1..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(n, |i| end - 1 + i as u64 + 1);
                let held = Fetched::new(file[from as usize..to as usize].to_vec(), from);
                got.extend(records(FetchedLines::new(
                    &part(start, end, n),
                    held,
                    Framing::Lines,
                    7,
                )));
                start = end;
            }
            assert_eq!(got, all, "splits of {size} bytes");
        }
    }
}
