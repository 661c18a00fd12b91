//! Objects in an S3-compatible store (`s3://BUCKET/KEY`), read by the
//! worker straight from the store with ranged GETs, never through the
//! coordinator: [`fetch_split`] fetches a split's range (from the byte
//! before it, to find its first line start, through the end of the line
//! crossing its end, only if a line starts in it), in parallel GETs, for
//! [`super::FetchedLines`] to cut into chunks exactly as [`super::Lines`]
//! cuts a mapped file, so line alignment and record offsets are the
//! same. Whole-file apps and
//! compressed objects read the object from its start as a stream.
//! Every GET checks the object's ETag against the plan.

use super::{input_error, Fetched};
use crate::engine::split::Framing;
use mr_protocol::{FilePart, TaskFailure};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes per GET of a split's range; several run at once.
const STEP: u64 = 8 << 20;
/// GETs of one split in flight at once.
const PARALLEL: usize = 4;

/// Whether `part` is an object rather than a local file.
pub fn is_object(part: &FilePart) -> bool {
    part.path.to_str().is_some_and(mr_store::is_object_url)
}

fn url(part: &FilePart) -> &str {
    part.path.to_str().unwrap_or_default()
}

/// The failure for an object that cannot be read.
fn read_error(part: &FilePart, e: mr_store::StoreError) -> TaskFailure {
    input_error(part, e.to_string())
}

/// Bytes `[from, to)` of `part`'s object, fetched in parallel ranged GETs.
fn fetch(part: &FilePart, from: u64, to: u64) -> Result<Vec<u8>, TaskFailure> {
    let steps: Vec<(u64, u64)> = (from..to)
        .step_by(STEP as usize)
        .map(|a| (a, (a + STEP).min(to)))
        .collect();
    let next = AtomicUsize::new(0);
    let etag = part.version.as_deref();
    // Each thread takes the next step until none is left; the pieces are
    // put in order afterwards.
    let fetched: Vec<Result<Vec<(usize, mr_store::Bytes)>, TaskFailure>> =
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..PARALLEL.min(steps.len()))
                .map(|_| {
                    s.spawn(|| {
                        let mut got = Vec::new();
                        while let Some(&(a, b)) = steps.get(next.fetch_add(1, Ordering::Relaxed)) {
                            let bytes = mr_store::read_range(url(part), etag, a..b)
                                .map_err(|e| read_error(part, e))?;
                            if bytes.len() as u64 != b - a {
                                return Err(input_error(
                                    part,
                                    format!(
                                        "the store sent {} of {} bytes at {a}",
                                        bytes.len(),
                                        b - a
                                    ),
                                ));
                            }
                            got.push((((a - from) / STEP) as usize, bytes));
                        }
                        Ok(got)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join()
                        .unwrap_or_else(|_| Err(input_error(part, "a reading thread failed")))
                })
                .collect()
        });
    let mut pieces = Vec::with_capacity(steps.len());
    for r in fetched {
        pieces.extend(r?);
    }
    pieces.sort_by_key(|(i, _)| *i);
    let mut out = Vec::with_capacity((to - from) as usize);
    for (_, b) in pieces {
        out.extend_from_slice(&b);
    }
    Ok(out)
}

/// Fetches the bytes of `part`'s split of an object that its records need:
/// for lines, from the byte before its range through the end of the line
/// crossing its end (only if a line starts in the range at all); for
/// fixed-length records, the records that start in it.
pub fn fetch_split(part: &FilePart, framing: Framing) -> Result<Fetched, TaskFailure> {
    let end = part.end.min(part.file_len);
    if let Framing::Fixed(n) = framing {
        let up = |x: u64| x.div_ceil(n as u64) * n as u64;
        let (from, to) = (up(part.start), up(end).min(part.file_len));
        let data = if from < to {
            fetch(part, from, to)?
        } else {
            Vec::new()
        };
        return Ok(Fetched::new(data, from.min(to)));
    }
    let from = part.start.saturating_sub(1);
    let mut data = fetch(part, from, end)?;
    // A line starts in [start, end) iff start is 0 or a newline lies in
    // [start - 1, end - 1); only then is the line crossing `end` ours.
    let starts_a_line = part.start == 0
        || (end > part.start
            && memchr::memchr(b'\n', &data[..(end - 1 - from) as usize]).is_some());
    let mut at = end;
    // Most lines are short: a small first GET finds the end of the
    // crossing line without reading much past it (each split pays
    // this once); long lines double the step up to STEP.
    let mut step = 4u64 << 10;
    if starts_a_line && end < part.file_len && data.last() != Some(&b'\n') {
        // Fetch on until the line running past the end does end.
        while at < part.file_len {
            let more = fetch(part, at, (at + step).min(part.file_len))?;
            let found = memchr::memchr(b'\n', &more);
            at += more.len() as u64;
            data.extend_from_slice(&more);
            if found.is_some() {
                break;
            }
            step = (step * 2).min(STEP);
        }
    }
    Ok(Fetched::new(data, from))
}
