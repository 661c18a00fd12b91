//! Compressed files (`.gz`, `.zst`, `.bz2`), decoded as a stream into
//! line-aligned chunks of about the target size, so memory stays bounded
//! whatever the file's size (a single line longer than a chunk makes that
//! chunk longer). A compressed file is one split: a stream cannot be entered
//! in the middle. Offsets are offsets in the decompressed stream.
//!
//! Decoding is serial by nature; the engine's threads take turns pulling
//! the next chunk, so decoding one chunk overlaps with mapping the others.

use super::{input_error, Chunk, RecordSource};
use crate::engine::split::Framing;
use mr_protocol::codec::Codec;
use mr_protocol::{FilePart, TaskFailure};
use std::io::{BufReader, Read};

/// Decoder input buffer: large reads from the file.
const READ_BUFFER: usize = 256 << 10;

/// The longest line a stream may hold. A line is one record and is held
/// whole in memory; a stream without newlines (a binary file named `.gz`,
/// a log with none) would otherwise grow one chunk until memory runs out.
/// As large as a pair of the run-file format may be.
pub const MAX_LINE: usize = 256 << 20;

/// A compressed input's records.
pub struct Decompressed {
    part: FilePart,
    /// None for a plain object read whole as a stream.
    codec: Option<Codec>,
    reader: Box<dyn Read + Send>,
    framing: Framing,
    target: usize,
    /// The start of a record that the previous chunk did not finish.
    carry: Vec<u8>,
    /// Decompressed bytes handed out so far (the next chunk's base).
    offset: u64,
    done: bool,
    /// [`MAX_LINE`] (smaller in tests).
    max_line: usize,
}

impl Decompressed {
    fn new(
        part: &FilePart,
        codec: Option<Codec>,
        reader: Box<dyn Read + Send>,
        framing: Framing,
        target: usize,
    ) -> Decompressed {
        Decompressed {
            part: part.clone(),
            codec,
            reader,
            framing,
            target: target.max(1),
            carry: Vec::new(),
            offset: 0,
            done: false,
            max_line: MAX_LINE,
        }
    }

    /// Opens `part` (which must be its whole file) for decoding with `codec`.
    pub fn open(
        part: &FilePart,
        codec: Codec,
        framing: Framing,
        target: usize,
    ) -> Result<Decompressed, TaskFailure> {
        let (file, len) = super::open_planned(part)?;
        if part.start != 0 || part.end != part.file_len {
            return Err(input_error(
                part,
                format!(
                    "a {} file cannot be split (asked for bytes {}..{})",
                    codec.name(),
                    part.start,
                    part.end
                ),
            ));
        }
        let buffered = BufReader::with_capacity(READ_BUFFER, file);
        // An empty file holds no stream at all: no records, like an empty
        // plain file (rather than an error about a missing header).
        let reader: Box<dyn Read + Send> = if len == 0 {
            Box::new(std::io::empty())
        } else {
            decoder(codec, buffered).map_err(|e| decode_error(part, Some(codec), 0, &e))?
        };
        Ok(Decompressed::new(
            part,
            Some(codec),
            reader,
            framing,
            target,
        ))
    }

    /// Streams `part`, an object in a store, from its start: decoded with
    /// `codec`, or as it is (for apps that need whole files).
    pub fn from_object(
        part: &FilePart,
        codec: Option<Codec>,
        framing: Framing,
        target: usize,
    ) -> Result<Decompressed, TaskFailure> {
        let url = part.path.to_string_lossy().into_owned();
        let object = mr_store::ObjectReader::new(&url, part.version.as_deref(), part.file_len);
        let buffered = BufReader::with_capacity(READ_BUFFER, object);
        let reader: Box<dyn Read + Send> = match codec {
            _ if part.file_len == 0 => Box::new(std::io::empty()),
            Some(c) => decoder(c, buffered).map_err(|e| decode_error(part, codec, 0, &e))?,
            None => Box::new(buffered),
        };
        Ok(Decompressed::new(part, codec, reader, framing, target))
    }

    /// Reads into `buf` until it holds at least `want` bytes or the stream
    /// ends; true at the end.
    fn fill(&mut self, buf: &mut Vec<u8>, want: usize) -> Result<bool, TaskFailure> {
        while buf.len() < want {
            let at = buf.len();
            buf.resize(want, 0);
            match self.reader.read(&mut buf[at..]) {
                Ok(0) => {
                    buf.truncate(at);
                    return Ok(true);
                }
                Ok(n) => buf.truncate(at + n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => buf.truncate(at),
                Err(e) => {
                    buf.truncate(at);
                    let at = self.offset + at as u64;
                    return Err(decode_error(&self.part, self.codec, at, &e));
                }
            }
        }
        Ok(false)
    }
}

impl RecordSource for Decompressed {
    fn next_chunk(&mut self) -> Result<Option<Chunk>, TaskFailure> {
        if self.done {
            return Ok(None);
        }
        if self.framing == Framing::WholeFile {
            // Apps that need the whole file get it, decoded, in one piece.
            let mut all = Vec::new();
            loop {
                let want = all.len() + self.target.max(1 << 20);
                if self.fill(&mut all, want)? {
                    break;
                }
            }
            self.done = true;
            return Ok(Some(Chunk::owned(all, 0)));
        }
        let mut buf = std::mem::take(&mut self.carry);
        let mut want = self.target;
        loop {
            let at_end = self.fill(&mut buf, want)?;
            if at_end {
                self.done = true;
                if buf.is_empty() {
                    return Ok(None);
                }
                if let Framing::Fixed(n) = self.framing {
                    if !buf.len().is_multiple_of(n) {
                        let total = self.offset + buf.len() as u64;
                        let reason = format!(
                            "its {total} decompressed bytes are not a whole number of {n}-byte records (the last is {} bytes)",
                            buf.len() % n
                        );
                        return Err(input_error(&self.part, reason));
                    }
                }
                // The last line may lack its newline; it is still a record.
                break;
            }
            if let Framing::Fixed(n) = self.framing {
                // Whole records only: the rest starts the next chunk.
                let whole = buf.len() / n * n;
                if whole > 0 {
                    self.carry = buf[whole..].to_vec();
                    buf.truncate(whole);
                    break;
                }
                want = n;
                continue;
            }
            // Whole lines only: the rest starts the next chunk.
            if let Some(i) = memchr::memrchr(b'\n', &buf) {
                self.carry = buf[i + 1..].to_vec();
                buf.truncate(i + 1);
                break;
            }
            // One line longer than a chunk: read on until it ends, up to
            // the bound (past it, the attempt fails naming where the line
            // starts rather than the worker running out of memory).
            if buf.len() >= self.max_line {
                let reason = format!(
                    "a line longer than {} MiB starts at byte {} of the decompressed stream; a line is one record and must fit in memory (split such lines, or use an app that reads whole files)",
                    self.max_line >> 20,
                    self.offset
                );
                return Err(input_error(&self.part, reason));
            }
            want = (buf.len() * 2).min(self.max_line.max(buf.len() + 1));
        }
        let base = self.offset;
        self.offset += buf.len() as u64;
        Ok(Some(Chunk::owned(buf, base)))
    }
}

/// The failure of an input whose stream cannot be read or decoded.
fn decode_error(part: &FilePart, codec: Option<Codec>, at: u64, e: &std::io::Error) -> TaskFailure {
    let what = match codec {
        Some(c) => format!(
            "the {} stream is corrupt or truncated (after {at} bytes of decompressed data)",
            c.name()
        ),
        None => format!("reading it failed after {at} bytes"),
    };
    input_error(part, format!("{what}: {e}"))
}

/// A reader of `codec`'s decoded stream, every member or frame of it.
fn decoder<R: Read + Send + 'static>(
    codec: Codec,
    input: BufReader<R>,
) -> std::io::Result<Box<dyn Read + Send>> {
    Ok(match codec {
        Codec::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Codec::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(input)),
        // libzstd reads every frame of the stream, one after another.
        Codec::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn bzip2(data: &[u8]) -> Vec<u8> {
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        zstd::encode_all(data, 1).unwrap()
    }

    fn encode(codec: Codec, data: &[u8]) -> Vec<u8> {
        match codec {
            Codec::Gzip => gzip(data),
            Codec::Zstd => zstd(data),
            Codec::Bzip2 => bzip2(data),
        }
    }

    fn ext(codec: Codec) -> &'static str {
        match codec {
            Codec::Gzip => "gz",
            Codec::Zstd => "zst",
            Codec::Bzip2 => "bz2",
        }
    }

    /// Writes `bytes` as `in.<ext>` and returns the part covering it.
    fn part(dir: &tempfile::TempDir, codec: Codec, bytes: &[u8]) -> FilePart {
        let path = dir.path().join(format!("in.{}", ext(codec)));
        std::fs::write(&path, bytes).unwrap();
        FilePart {
            version: None,
            name: format!("in.{}", ext(codec)),
            path,
            start: 0,
            end: bytes.len() as u64,
            file_len: bytes.len() as u64,
        }
    }

    /// Every chunk of a source, or its failure.
    fn drain(src: &mut Decompressed) -> Result<Vec<(u64, Vec<u8>)>, TaskFailure> {
        let mut out = Vec::new();
        while let Some(c) = src.next_chunk()? {
            out.push((c.base, c.data().to_vec()));
        }
        Ok(out)
    }

    /// Text of many short lines, one line of 100 KB, and no final newline.
    fn text() -> Vec<u8> {
        let mut t = Vec::new();
        for i in 0..20_000 {
            writeln!(t, "line {i} of some words").unwrap();
        }
        t.extend(std::iter::repeat_n(b'x', 100_000));
        t.extend_from_slice(b"\nlast line without newline");
        t
    }

    const CODECS: [Codec; 3] = [Codec::Gzip, Codec::Zstd, Codec::Bzip2];

    #[test]
    fn chunks_are_whole_lines_at_their_offsets_for_every_codec() {
        let t = text();
        for codec in CODECS {
            let dir = tempfile::tempdir().unwrap();
            let p = part(&dir, codec, &encode(codec, &t));
            // A small target puts many lines across decoder buffer boundaries.
            let mut src = Decompressed::open(&p, codec, Framing::Lines, 4096).unwrap();
            let chunks = drain(&mut src).unwrap();
            assert!(chunks.len() > 10, "{codec:?}");
            let mut joined = Vec::new();
            for (base, data) in &chunks {
                assert_eq!(*base, joined.len() as u64, "{codec:?}");
                joined.extend_from_slice(data);
            }
            assert_eq!(joined, t, "{codec:?}");
            // Every chunk but the last ends a line.
            for (_, data) in &chunks[..chunks.len() - 1] {
                assert_eq!(data.last(), Some(&b'\n'), "{codec:?}");
            }
            // Whole-file apps get it all at once.
            let mut whole = Decompressed::open(&p, codec, Framing::WholeFile, 4096).unwrap();
            assert_eq!(drain(&mut whole).unwrap(), vec![(0, t.clone())]);
        }
    }

    #[test]
    fn a_line_past_the_bound_fails_naming_the_file_and_where_it_starts() {
        // Short lines, then a stream with no newline at all.
        let mut t = b"one line\nanother\n".to_vec();
        t.extend(std::iter::repeat_n(b'z', 3 << 20));
        for codec in CODECS {
            let dir = tempfile::tempdir().unwrap();
            let p = part(&dir, codec, &encode(codec, &t));
            let mut src = Decompressed::open(&p, codec, Framing::Lines, 4096).unwrap();
            src.max_line = 1 << 20;
            let err = drain(&mut src).unwrap_err().to_string();
            assert!(
                err.contains(p.name.as_str())
                    && err.contains("longer than 1 MiB")
                    && err.contains("byte 17 "),
                "{codec:?}: {err}"
            );
            // Under the bound the same stream is one record.
            let mut src = Decompressed::open(&p, codec, Framing::Lines, 4096).unwrap();
            src.max_line = 4 << 20;
            let chunks = drain(&mut src).unwrap();
            assert_eq!(chunks.last().unwrap().1.len(), 3 << 20, "{codec:?}");
        }
    }

    #[test]
    fn multi_member_gzip_and_multi_frame_zstd_read_on() {
        for codec in [Codec::Gzip, Codec::Zstd, Codec::Bzip2] {
            let dir = tempfile::tempdir().unwrap();
            let mut bytes = encode(codec, b"first member\n");
            bytes.extend(encode(codec, b"second member\n"));
            let p = part(&dir, codec, &bytes);
            let mut src = Decompressed::open(&p, codec, Framing::Lines, 1 << 20).unwrap();
            let all: Vec<u8> = drain(&mut src)
                .unwrap()
                .into_iter()
                .flat_map(|c| c.1)
                .collect();
            assert_eq!(all, b"first member\nsecond member\n", "{codec:?}");
        }
    }

    #[test]
    fn truncated_and_corrupt_streams_fail_naming_the_file_and_codec() {
        let t = text();
        for codec in CODECS {
            let good = encode(codec, &t);
            let truncated = &good[..good.len() * 2 / 3];
            let mut corrupt = good.clone();
            let mid = corrupt.len() / 2;
            for b in &mut corrupt[mid..mid + 64] {
                *b ^= 0x5a;
            }
            for (what, bytes) in [("truncated", truncated), ("corrupt", &corrupt[..])] {
                let dir = tempfile::tempdir().unwrap();
                let p = part(&dir, codec, bytes);
                let r = Decompressed::open(&p, codec, Framing::Lines, 64 << 10)
                    .and_then(|mut s| drain(&mut s));
                match r {
                    Err(TaskFailure::Input { path, reason }) => {
                        assert_eq!(path, p.name, "{codec:?} {what}");
                        assert!(reason.contains(codec.name()), "{codec:?} {what}: {reason}");
                    }
                    Err(other) => panic!("{codec:?} {what}: {other:?}"),
                    Ok(chunks) => {
                        let n: usize = chunks.iter().map(|c| c.1.len()).sum();
                        panic!("{codec:?} {what} went unnoticed ({n} bytes decoded)");
                    }
                }
            }
        }
    }

    #[test]
    fn empty_files_and_empty_streams_have_no_records() {
        for codec in CODECS {
            for bytes in [Vec::new(), encode(codec, b"")] {
                let dir = tempfile::tempdir().unwrap();
                let p = part(&dir, codec, &bytes);
                let mut src = Decompressed::open(&p, codec, Framing::Lines, 4096).unwrap();
                assert!(drain(&mut src).unwrap().is_empty(), "{codec:?}");
            }
        }
    }

    #[test]
    fn a_changed_size_or_a_partial_range_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = part(&dir, Codec::Gzip, &gzip(b"a\n"));
        p.file_len += 1;
        assert!(Decompressed::open(&p, Codec::Gzip, Framing::Lines, 10).is_err());
        p.file_len -= 1;
        p.start = 1;
        let e = Decompressed::open(&p, Codec::Gzip, Framing::Lines, 10)
            .err()
            .unwrap();
        assert!(e.to_string().contains("cannot be split"), "{e}");
    }
}
