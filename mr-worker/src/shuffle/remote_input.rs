//! Input splits of files this worker cannot read itself, fetched from the
//! coordinator.
//!
//! A part whose path exists here with the planned size is read in place (the
//! common, local case). Any other part is fetched: the byte before the range
//! (to find the first line start) through the end of the line that crosses
//! the range's end (found by fetching on until a newline) when a line starts
//! in the range at all. Those bytes are held in memory for the map engine's
//! [`crate::source::FetchedLines`] (ranges up to 128 MiB), or else written
//! into a sparse file of the input's full size in the worker's directory, at
//! the same offsets, which the engine memory-maps exactly as it would the
//! original (whole files and compressed files, read from their start, also
//! go there). Either way line alignment, record offsets and names are the
//! same wherever the map runs.

use crate::source::Fetched;
use futures::StreamExt;
use mr_protocol::{CoordinatorClient, FilePart, ProtocolError, TaskFailure, WorkerId, MAX_CHUNK};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tarpc::context;

/// Chunks of one range requested at once.
const PARALLEL: usize = 4;

/// Why an input range could not be fetched from the coordinator.
#[derive(Debug, thiserror::Error)]
pub enum RemoteInputError {
    /// The coordinator could not read its own file.
    #[error("the coordinator cannot read it: {0}")]
    CoordinatorIo(String),
    /// The coordinator refused the call (not an input, bad range, unknown worker).
    #[error("the coordinator refused: {0}")]
    Refused(ProtocolError),
    /// The coordinator could not be reached.
    #[error("cannot fetch it from the coordinator: {0}")]
    Unreachable(String),
    /// Fewer bytes came than the range holds before the file's end.
    #[error("the coordinator sent {got} of {want} bytes at {offset}")]
    Short {
        /// Bytes received.
        got: usize,
        /// Bytes asked for.
        want: u32,
        /// Where.
        offset: u64,
    },
    /// Nothing came before the file's planned end.
    #[error("the coordinator sent nothing at {0}")]
    Empty(u64),
    /// The local copy could not be read or written.
    #[error("cannot write the fetched input: {0}")]
    Write(std::io::Error),
}

/// The longest range fetched into memory. A longer one (a huge split, a
/// whole or compressed file) goes to a sparse copy on disk instead, so a
/// task's memory stays bounded whatever the split size.
const IN_MEMORY_MAX: u64 = 128 << 20;

/// Parts ready to map, and what fetching them cost.
pub struct Localized {
    /// The parts, with those fetched to disk pointing at their local copies.
    pub parts: Vec<FilePart>,
    /// Bytes of parts fetched into memory, by part index.
    pub held: Vec<Option<Fetched>>,
    /// Bytes fetched from the coordinator.
    pub fetched: u64,
    /// Local copies to remove after the map.
    pub copies: Vec<PathBuf>,
}

/// Whether the worker can read `part`'s file itself.
pub fn readable_here(path: &Path, len: u64) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == len)
}

/// Where fetched bytes land: memory (the common case: no copy through the
/// page cache and back), or a sparse file at the same offsets.
enum Landing {
    /// `data[0]` is the file's byte `from`.
    Memory { data: Vec<u8>, from: u64 },
    /// A file of the input's full size.
    File(Arc<File>),
}

impl Landing {
    /// Puts `bytes` at the file's `offset`.
    async fn put(&mut self, bytes: Vec<u8>, offset: u64) -> Result<(), RemoteInputError> {
        match self {
            Landing::Memory { data, from } => {
                let at = (offset - *from) as usize;
                if data.len() < at + bytes.len() {
                    data.resize(at + bytes.len(), 0);
                }
                data[at..at + bytes.len()].copy_from_slice(&bytes);
                Ok(())
            }
            Landing::File(file) => {
                let f = file.clone();
                tokio::task::spawn_blocking(move || f.write_all_at(&bytes, offset))
                    .await
                    .map_err(|e| RemoteInputError::Write(std::io::Error::other(e)))?
                    .map_err(RemoteInputError::Write)
            }
        }
    }

    /// The byte at the file's `offset`, already landed.
    fn byte_at(&self, offset: u64) -> Result<u8, RemoteInputError> {
        match self {
            Landing::Memory { data, from } => Ok(data[(offset - from) as usize]),
            Landing::File(file) => {
                let mut b = [0u8; 1];
                file.read_exact_at(&mut b, offset)
                    .map_err(RemoteInputError::Write)?;
                Ok(b[0])
            }
        }
    }
}

/// Makes every part of a split readable here: whole files for apps that
/// read them whole, the records that start in each range as `framing`
/// says; `always` fetches even files that seem readable here.
pub async fn localize(
    client: &CoordinatorClient,
    worker: WorkerId,
    parts: &[FilePart],
    dir: &Path,
    tag: &str,
    framing: crate::engine::split::Framing,
    always: bool,
) -> Result<Localized, TaskFailure> {
    let mut out = Localized {
        parts: Vec::with_capacity(parts.len()),
        held: Vec::with_capacity(parts.len()),
        fetched: 0,
        copies: Vec::new(),
    };
    for (i, part) in parts.iter().enumerate() {
        // Objects are read from the store, never through the coordinator.
        if crate::source::is_object(part) || (!always && readable_here(&part.path, part.file_len)) {
            out.parts.push(part.clone());
            out.held.push(None);
            continue;
        }
        let copy = dir.join(format!("input-{tag}-{i}"));
        let fail = |e: RemoteInputError| match e {
            RemoteInputError::Write(e) => TaskFailure::Io {
                path: copy.display().to_string(),
                reason: e.to_string(),
            },
            other => TaskFailure::Input {
                path: part.name.clone(),
                reason: other.to_string(),
            },
        };
        // A compressed file is read as one stream from its start.
        use crate::engine::split::Framing;
        let whole_file =
            framing == Framing::WholeFile || mr_protocol::codec::Codec::of(&part.name).is_some();
        let end = part.end.min(part.file_len);
        let (from, to) = match framing {
            _ if whole_file => (0, part.file_len),
            // Exactly the records that start in the range.
            Framing::Fixed(n) => {
                let up = |x: u64| x.div_ceil(n as u64) * n as u64;
                (
                    up(part.start).min(part.file_len),
                    up(end).min(part.file_len),
                )
            }
            // From the byte before, to see whether the range starts a line.
            _ => (part.start.saturating_sub(1), end),
        };
        let mut landing = if !whole_file && to - from <= IN_MEMORY_MAX {
            Landing::Memory {
                data: vec![0; (to - from) as usize],
                from,
            }
        } else {
            out.copies.push(copy.clone());
            Landing::File(Arc::new(sparse_copy(&copy, part.file_len).map_err(
                |e| TaskFailure::Io {
                    path: copy.display().to_string(),
                    reason: e.to_string(),
                },
            )?))
        };
        let (n, newline) = fetch_range(client, worker, part, &mut landing, from, to)
            .await
            .map_err(fail)?;
        out.fetched += n;
        // The map reads on past the range only to finish a line that starts
        // in it; a range inside one long line maps nothing, so fetches no more.
        let starts_a_line = part.start == 0 || newline;
        if framing == Framing::Lines && !whole_file && to < part.file_len && starts_a_line {
            out.fetched += finish_line(client, worker, part, &mut landing, from, to)
                .await
                .map_err(fail)?;
        }
        match landing {
            Landing::Memory { data, from } => {
                out.parts.push(part.clone());
                out.held.push(Some(Fetched::new(data, from)));
            }
            Landing::File(_) => {
                let mut local = part.clone();
                local.path = copy;
                out.parts.push(local);
                out.held.push(None);
            }
        }
    }
    Ok(out)
}

/// Creates (or empties) `path` as a sparse file of `len` bytes.
fn sparse_copy(path: &Path, len: u64) -> std::io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    file.set_len(len)?;
    Ok(file)
}

/// Fetches `[from, to)` of `part`'s file into `landing`, several chunks at
/// once. Returns the bytes fetched and whether any byte before `to - 1` is
/// a newline (so that a line starts after `from` and before `to`).
async fn fetch_range(
    client: &CoordinatorClient,
    worker: WorkerId,
    part: &FilePart,
    landing: &mut Landing,
    from: u64,
    to: u64,
) -> Result<(u64, bool), RemoteInputError> {
    let offsets: Vec<u64> = (from..to).step_by(MAX_CHUNK as usize).collect();
    let mut calls = futures::stream::iter(offsets.into_iter().map(|off| {
        let len = (to - off).min(u64::from(MAX_CHUNK)) as u32;
        async move {
            let data = read(client, worker, part, off, len).await?;
            if data.len() != len as usize {
                return Err(RemoteInputError::Short {
                    got: data.len(),
                    want: len,
                    offset: off,
                });
            }
            Ok::<(u64, Vec<u8>), RemoteInputError>((off, data))
        }
    }))
    .buffer_unordered(PARALLEL);
    let (mut total, mut newline) = (0, false);
    // Calls still in flight go on while a chunk lands.
    while let Some(r) = calls.next().await {
        let (off, data) = r?;
        // Newlines at or past `to - 1` start no line inside the range.
        let below = (to - 1).saturating_sub(off).min(data.len() as u64) as usize;
        newline |= memchr::memchr(b'\n', &data[..below]).is_some();
        total += data.len() as u64;
        landing.put(data, off).await?;
    }
    Ok((total, newline))
}

/// Fetches on from `to` until the line running through `to - 1` ends (or the
/// file does); the map reads that line because it starts inside the range.
async fn finish_line(
    client: &CoordinatorClient,
    worker: WorkerId,
    part: &FilePart,
    landing: &mut Landing,
    from: u64,
    to: u64,
) -> Result<u64, RemoteInputError> {
    if to > from && landing.byte_at(to - 1)? == b'\n' {
        return Ok(0);
    }
    let mut at = to;
    let mut step = 64u32 << 10;
    while at < part.file_len {
        let len = (part.file_len - at).min(u64::from(step)) as u32;
        let data = read(client, worker, part, at, len).await?;
        if data.is_empty() {
            return Err(RemoteInputError::Empty(at));
        }
        let found = memchr::memchr(b'\n', &data);
        let n = data.len() as u64;
        landing.put(data, at).await?;
        at += n;
        if found.is_some() {
            break;
        }
        step = (step * 2).min(MAX_CHUNK);
    }
    Ok(at - to)
}

/// One read call, retried briefly if the connection hiccups.
async fn read(
    client: &CoordinatorClient,
    worker: WorkerId,
    part: &FilePart,
    offset: u64,
    len: u32,
) -> Result<Vec<u8>, RemoteInputError> {
    let mut last = String::new();
    for attempt in 0..3u64 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
        }
        let mut ctx = context::current();
        ctx.deadline = Instant::now() + Duration::from_secs(30);
        match client
            .read_input(ctx, worker, part.path.clone(), offset, len)
            .await
        {
            Ok(Ok(data)) => return Ok(data.into_vec()),
            Ok(Err(ProtocolError::Io { reason, .. })) => {
                return Err(RemoteInputError::CoordinatorIo(reason))
            }
            Ok(Err(e)) => return Err(RemoteInputError::Refused(e)),
            Err(e) => last = e.to_string(),
        }
    }
    Err(RemoteInputError::Unreachable(last))
}
