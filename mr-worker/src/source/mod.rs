//! Where a map task's records come from: the seam between the bytes of an
//! input and the map engine.
//!
//! Each input range of a task becomes a [`RecordSource`], chosen per input
//! by [`open`]: [`Lines`] (a memory-mapped file aligned to whole lines, cut
//! into chunks), [`WholeFile`] (a mapped file given whole to apps that need
//! it), [`Decompressed`] (a `.gz`, `.zst` or `.bz2` file decoded as a
//! stream into line-aligned chunks, in bounded memory), or [`FetchedLines`]
//! (a split whose bytes were fetched into memory: from an object in an
//! S3-compatible store with ranged GETs, or from the coordinator for a
//! worker that cannot read the file; compressed or whole objects stream
//! through `Decompressed`). The engine only
//! sees [`Chunk`]s: whole records, and the offset of their first byte in the
//! input's record stream (the decompressed stream for compressed files), so
//! record offsets in failures and skips mean the same whatever the format.
//! A new format (say, length-prefixed records) is one more implementation.

mod decompress;
mod fetched;
mod mapped;
mod object;

pub use decompress::Decompressed;
pub use fetched::{Fetched, FetchedLines};
pub use mapped::{Lines, WholeFile};
pub use object::is_object;

use crate::engine::split::Framing;
use mr_mapped::MappedFile;
use mr_protocol::codec::Codec;
use mr_protocol::{FilePart, TaskFailure};
use std::sync::Arc;

/// Whole records of one input, ready to map.
pub struct Chunk {
    bytes: Bytes,
    /// Offset of the first byte in the input's record stream.
    pub base: u64,
}

/// A chunk's bytes: a range of a mapped file, or decoded bytes of its own.
enum Bytes {
    Mapped(Arc<MappedFile>, usize, usize),
    Shared(Arc<Vec<u8>>, usize, usize),
    Owned(Vec<u8>),
    Empty,
}

impl Chunk {
    /// A chunk of `len` mapped bytes at `start`.
    fn mapped(map: &Arc<MappedFile>, start: usize, end: usize) -> Chunk {
        Chunk {
            bytes: Bytes::Mapped(map.clone(), start, end),
            base: start as u64,
        }
    }

    /// A chunk of `data[start..end]`, whose first byte is at `base`.
    fn shared(data: &Arc<Vec<u8>>, start: usize, end: usize, base: u64) -> Chunk {
        Chunk {
            bytes: Bytes::Shared(data.clone(), start, end),
            base,
        }
    }

    /// A chunk of bytes decoded into memory, starting at `base`.
    fn owned(data: Vec<u8>, base: u64) -> Chunk {
        Chunk {
            bytes: Bytes::Owned(data),
            base,
        }
    }

    /// An empty chunk (an empty file given whole).
    fn empty() -> Chunk {
        Chunk {
            bytes: Bytes::Empty,
            base: 0,
        }
    }

    /// The records.
    pub fn data(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Mapped(m, s, e) => &m[*s..*e],
            Bytes::Shared(v, s, e) => &v[*s..*e],
            Bytes::Owned(v) => v,
            Bytes::Empty => &[],
        }
    }

    /// Lets the kernel drop a mapped chunk's pages from the resident set
    /// once it is mapped (they stay in the page cache). The range is
    /// widened to the 64 KiB windows around the chunk's ends: a page fault
    /// maps the cached pages of its whole window ("fault-around"), so
    /// mapping near a chunk's end maps the start of the next, which its own
    /// thread may already have released; kept, those pages added up to
    /// 140 MiB of a 10 GiB task. Dropping a page a neighbour still reads
    /// costs it one minor fault, nothing more.
    pub fn release(&self) {
        const WINDOW: usize = 64 << 10;
        if let Bytes::Mapped(m, s, e) = &self.bytes {
            let (a, b) = (
                s / WINDOW * WINDOW,
                (e.div_ceil(WINDOW) * WINDOW).min(m.len()),
            );
            m.release(a, b - a);
        }
    }
}

/// One input's records, chunk by chunk, in order.
pub trait RecordSource: Send {
    /// The next chunk of whole records; None after the last.
    fn next_chunk(&mut self) -> Result<Option<Chunk>, TaskFailure>;

    /// Checks, once every chunk handed out has been mapped, that the bytes
    /// were the input's: a mapped file that shrank while it was read gave
    /// zeros in place of its lost pages, and the attempt's output must go.
    fn verify(&self) -> Result<(), TaskFailure> {
        Ok(())
    }
}

/// The failure for input `part`: it cannot be read, or is not what was planned.
pub(crate) fn input_error(part: &FilePart, reason: impl Into<String>) -> TaskFailure {
    TaskFailure::Input {
        path: part.name.clone(),
        reason: reason.into(),
    }
}

/// Opens `part`'s file and checks it still has the planned size; the
/// file and its length.
pub(crate) fn open_planned(part: &FilePart) -> Result<(std::fs::File, u64), TaskFailure> {
    let file = std::fs::File::open(&part.path).map_err(|e| input_error(part, e.to_string()))?;
    let len = file
        .metadata()
        .map_err(|e| input_error(part, e.to_string()))?
        .len();
    if len != part.file_len {
        return Err(input_error(
            part,
            format!(
                "size changed from {} to {len} bytes since the job was planned",
                part.file_len
            ),
        ));
    }
    Ok((file, len))
}

/// Opens the source of `part`: its `fetched` bytes if the worker fetched
/// them already, else decompressed by its extension, else mapped; in chunks
/// of whole records (as `framing` says what a record is) of about `target`
/// bytes, or whole for apps that map whole files.
pub fn open(
    part: &FilePart,
    fetched: Option<&Fetched>,
    framing: Framing,
    target: usize,
) -> Result<Box<dyn RecordSource>, TaskFailure> {
    if let Some(f) = fetched {
        return Ok(Box::new(FetchedLines::new(
            part,
            f.clone(),
            framing,
            target,
        )));
    }
    let codec = Codec::of(&part.name);
    let whole_file = framing == Framing::WholeFile;
    if is_object(part) {
        return Ok(match (codec, whole_file) {
            (None, false) => Box::new(FetchedLines::new(
                part,
                object::fetch_split(part, framing)?,
                framing,
                target,
            )),
            // Streamed from the object's start: decompressed, or whole.
            (codec, _) => Box::new(Decompressed::from_object(part, codec, framing, target)?),
        });
    }
    if let Some(codec) = codec {
        return Ok(Box::new(Decompressed::open(part, codec, framing, target)?));
    }
    let map = mapped::map_file(part)?;
    Ok(match whole_file {
        true => Box::new(WholeFile::new(part, map)),
        false => Box::new(Lines::new(part, map, framing, target)),
    })
}
