//! Plain files, memory-mapped: [`Lines`] cuts a split's byte range, aligned
//! to whole lines, into chunks; [`WholeFile`] hands over the whole file.
//! Nothing is copied: chunks are ranges of the mapping. The mapping is
//! guarded ([`MappedFile`]): a file truncated while it is read gives zeros,
//! not a SIGBUS, and [`RecordSource::verify`] then fails the attempt by
//! the file's name.

use super::{input_error, Chunk, RecordSource};
use crate::engine::split::Framing;
use mr_mapped::MappedFile;
use mr_protocol::{FilePart, TaskFailure};
use std::sync::Arc;

/// Opens and maps `part`'s file, checking it is the file that was planned;
/// None for an empty file (which cannot be mapped and has no lines).
pub(super) fn map_file(part: &FilePart) -> Result<Option<Arc<MappedFile>>, TaskFailure> {
    let (file, len) = super::open_planned(part)?;
    if len == 0 {
        return Ok(None);
    }
    let m = MappedFile::map(&file).map_err(|e| input_error(part, format!("cannot mmap: {e}")))?;
    m.advise_sequential();
    Ok(Some(Arc::new(m)))
}

/// The failure for a mapping of `part` that lost pages while it was read.
fn shrank(part_name: &str, map: &Option<Arc<MappedFile>>) -> Result<(), TaskFailure> {
    match map {
        Some(m) if m.shrank() => Err(TaskFailure::Input {
            path: part_name.to_string(),
            reason: format!(
                "it shrank below {} bytes while it was read (truncated by another \
                 process, say a log rotated by copytruncate); inputs must not \
                 change during a job",
                m.len()
            ),
        }),
        _ => Ok(()),
    }
}

/// A split of a mapped file: the records (lines, or fixed-length records)
/// that start in its byte range.
pub struct Lines {
    /// The input's name, for a failure.
    name: String,
    map: Option<Arc<MappedFile>>,
    framing: Framing,
    /// The next chunk's start, and the end of the aligned range.
    at: usize,
    end: usize,
    target: usize,
}

impl Lines {
    /// The records of `part` in `map`, in chunks of about `target` bytes.
    pub fn new(
        part: &FilePart,
        map: Option<Arc<MappedFile>>,
        framing: Framing,
        target: usize,
    ) -> Lines {
        let (at, end) = match &map {
            None => (0, 0),
            Some(m) => {
                let data: &[u8] = m;
                let end = part.end.min(data.len() as u64) as usize;
                framing.align(data, part.start as usize, end, 0)
            }
        };
        Lines {
            name: part.name.clone(),
            map,
            framing,
            at,
            end,
            target,
        }
    }
}

impl RecordSource for Lines {
    fn next_chunk(&mut self) -> Result<Option<Chunk>, TaskFailure> {
        let Some(map) = &self.map else {
            return Ok(None);
        };
        if self.at >= self.end {
            return Ok(None);
        }
        // Cut here, not when the source was opened: a task opens all its
        // inputs at once, and finding every chunk's end up front touched a
        // page per chunk of every input, held mapped until its chunk came.
        let (s, e) = (
            self.at,
            self.framing.chunk_end(map, self.at, self.end, self.target),
        );
        self.at = e;
        Ok(Some(Chunk::mapped(map, s, e)))
    }

    fn verify(&self) -> Result<(), TaskFailure> {
        shrank(&self.name, &self.map)
    }
}

/// A whole mapped file, as one chunk (an empty file is one empty chunk, so
/// whole-file apps see one call per file, as in the lab).
pub struct WholeFile {
    /// The input's name, for a failure.
    name: String,
    map: Option<Arc<MappedFile>>,
    done: bool,
}

impl WholeFile {
    /// The file of `part` in `map` (None: empty).
    pub fn new(part: &FilePart, map: Option<Arc<MappedFile>>) -> WholeFile {
        WholeFile {
            name: part.name.clone(),
            map,
            done: false,
        }
    }
}

impl RecordSource for WholeFile {
    fn next_chunk(&mut self) -> Result<Option<Chunk>, TaskFailure> {
        if std::mem::replace(&mut self.done, true) {
            return Ok(None);
        }
        Ok(Some(match &self.map {
            Some(m) => Chunk::mapped(m, 0, m.len()),
            None => Chunk::empty(),
        }))
    }

    fn verify(&self) -> Result<(), TaskFailure> {
        shrank(&self.name, &self.map)
    }
}
