//! The reduce engine: a streaming k-way merge of one partition of every map
//! output, one `reduce` call per key, output written to a temp file.
//!
//! Memory holds one block per input plus the current key: values are handed
//! to the app straight from the read buffers as a stream ([`mr_apps::Values`]),
//! so a key with millions of values costs nothing extra unless the app keeps them.
//! More inputs than a process may hold open are merged in groups first
//! ([`super::fan_in`]), so a block is held for at most that many.
//!
//! A job that keeps a cache asks for the output's index (where each segment
//! begins, see [`mr_runfile::starts_segment`]) and may hand over an earlier
//! output with the pieces of it that still hold: those are copied, and only
//! the key ranges between them are merged and reduced, each input read from
//! the block where the range begins. The bytes are the same either way.

use crate::engine::fan_in::{self, lost, Source};
pub use crate::engine::merge::ReduceStats;
use crate::engine::merge::{GroupError, Merger};
use crate::engine::output::Sink;
use crate::engine::runfile::{PartitionReader, RunError, RunFile};
use mr_apps::{plugin::panic_message, App};
use mr_protocol::{AttemptId, BadRecord, MapTaskId, OutputIndex, ReusePiece, TaskFailure};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// One map output a reduce task reads.
#[derive(Clone, Debug)]
pub struct ReduceInput {
    /// The map task.
    pub map: MapTaskId,
    /// Its accepted attempt (named in failures, so the coordinator re-runs
    /// the map only if that output is still the accepted one).
    pub attempt: AttemptId,
    /// The whole run file, or (when `fetched`) this partition's blocks
    /// fetched from the worker holding the run file.
    pub path: PathBuf,
    /// True for a fetched partition, false for a run file.
    pub fetched: bool,
}

impl ReduceInput {
    /// A run file readable here.
    pub fn run_file(map: MapTaskId, attempt: AttemptId, path: PathBuf) -> Self {
        Self {
            map,
            attempt,
            path,
            fetched: false,
        }
    }

    /// A reader of the keys `from..to` of partition `reduce` of this run
    /// file, from the block at file offset `block`.
    fn open_range(
        &self,
        reduce: u32,
        reduces: u32,
        (block, from, to): (u64, Option<&[u8]>, Option<&[u8]>),
    ) -> Result<PartitionReader, RunError> {
        let map = (!self.attempt.is_cached()).then_some(self.map.0);
        RunFile::open(&self.path, map, reduces)?.partition_range(reduce, block, from, to)
    }

    /// A reader of partition `reduce` of this input.
    pub(crate) fn open(&self, reduce: u32, reduces: u32) -> Result<PartitionReader, RunError> {
        if self.fetched {
            PartitionReader::fetched(&self.path)
        } else {
            // A cached output was made under the number its split had
            // then (its bytes are checked by the coordinator's cache).
            let map = (!self.attempt.is_cached()).then_some(self.map.0);
            Ok(RunFile::open(&self.path, map, reduces)?.partition(reduce))
        }
    }
}

/// One reduce task's inputs and output.
#[derive(Clone, Debug)]
pub struct ReduceJob<'a> {
    /// The partition to reduce.
    pub reduce: u32,
    /// R, the number of partitions in each run file.
    pub reduces: u32,
    /// Every map task's output.
    pub inputs: Vec<ReduceInput>,
    /// Where the output goes (the caller commits it by rename).
    pub out: &'a Path,
    /// When set, the output goes instead to the object at this URL, as a
    /// multipart upload left for the coordinator to complete.
    pub upload_to: Option<&'a str>,
    /// Keys not to reduce: each made an earlier attempt panic.
    pub skip: &'a [BadRecord],
    /// Looked at between keys: set when the attempt is abandoned.
    pub cancel: crate::engine::cancel::Cancel,
    /// Whether to say where the output's segments begin.
    pub index: bool,
    /// An earlier output of this partition (its path) and how to make this
    /// one from it: used only when every input is a run file here and no
    /// key is skipped, else every key is reduced (the bytes are the same).
    pub reuse: Option<(&'a Path, &'a [ReusePiece])>,
}

/// What a reduce has written so far, and where its segments began.
struct Written {
    stats: ReduceStats,
    /// Output bytes so far.
    bytes: u64,
    /// The index, when asked for.
    index: Option<OutputIndex>,
}

/// Runs one reduce task, writing `key value` lines to `job.out`.
pub fn run_reduce(app: &dyn App, job: &ReduceJob<'_>) -> Result<ReduceStats, TaskFailure> {
    let mut out = Sink::open(job.out, job.upload_to)?;
    if let Some(cmd) = app.reduce_command() {
        // A streaming reduce's lines are its command's, not cut by key.
        let (merger, _runs) = fan_in::open_all(job)?;
        let name = out.name().to_string();
        let io = |e: std::io::Error| TaskFailure::Io {
            path: name.clone(),
            reason: e.to_string(),
        };
        let mut stats =
            crate::engine::stream_reduce::run(cmd, job.reduce, merger, &mut out, &io, &job.cancel)?;
        stats.upload = out.finish()?;
        return Ok(stats);
    }
    let mut w = Written {
        stats: ReduceStats::default(),
        bytes: 0,
        index: job.index.then(OutputIndex::default),
    };
    // Pieces are merged from every input at once: not past the fan-in.
    let usable = |pieces: &[ReusePiece]| {
        job.skip.is_empty()
            && job.inputs.len() <= fan_in::fan_in()
            && job.inputs.iter().all(|i| !i.fetched)
            && pieces.iter().all(|p| match p {
                ReusePiece::Reduce { blocks, .. } => blocks.len() == job.inputs.len(),
                ReusePiece::Copy { .. } => true,
            })
    };
    match job.reuse.filter(|(_, pieces)| usable(pieces)) {
        Some((earlier, pieces)) => {
            let earlier = std::fs::File::open(earlier).map_err(|e| TaskFailure::Io {
                path: earlier.display().to_string(),
                reason: e.to_string(),
            })?;
            let mut buf = Vec::new();
            for piece in pieces {
                match piece {
                    ReusePiece::Copy { start, offset, len } => {
                        if let (Some(index), Some(start)) = (&mut w.index, start) {
                            index.starts.push((start.clone(), w.bytes));
                        }
                        copy(&earlier, (*offset, *len), &mut out, &mut buf, job)?;
                        w.bytes += len;
                        if let Some(index) = &mut w.index {
                            index.copied += len;
                        }
                    }
                    ReusePiece::Reduce { from, to, blocks } => {
                        let mut readers = Vec::with_capacity(job.inputs.len());
                        for (input, &block) in job.inputs.iter().zip(blocks) {
                            if block == u64::MAX {
                                continue;
                            }
                            let source = Source::from(input);
                            let range = (block, from.as_deref(), to.as_deref());
                            let reader = input
                                .open_range(job.reduce, job.reduces, range)
                                .map_err(|e| lost(source, e))?;
                            readers.push((source, reader));
                        }
                        let merger = Merger::new(readers).map_err(|(m, e)| lost(m, e))?;
                        reduce_keys(app, job, merger, &mut out, &mut w)?;
                    }
                }
            }
        }
        None => {
            let (merger, _runs) = fan_in::open_all(job)?;
            reduce_keys(app, job, merger, &mut out, &mut w)?;
        }
    }
    let mut stats = w.stats;
    stats.upload = out.finish()?;
    stats.groups = stats.keys + stats.skipped;
    stats.index = w.index;
    Ok(stats)
}

/// Copies bytes `offset..offset + len` of the earlier output to `out`.
fn copy(
    earlier: &std::fs::File,
    (mut offset, len): (u64, u64),
    out: &mut Sink,
    buf: &mut Vec<u8>,
    job: &ReduceJob<'_>,
) -> Result<(), TaskFailure> {
    let end = offset + len;
    buf.resize(1 << 20, 0);
    while offset < end {
        let n = (end - offset).min(buf.len() as u64) as usize;
        earlier
            .read_exact_at(&mut buf[..n], offset)
            .map_err(|e| TaskFailure::Io {
                path: "the earlier output".into(),
                reason: e.to_string(),
            })?;
        out.write_all(&buf[..n]).map_err(|e| TaskFailure::Io {
            path: job.out.display().to_string(),
            reason: e.to_string(),
        })?;
        offset += n as u64;
    }
    Ok(())
}

/// Reduces every key `merger` gives, appending the lines to `out`.
fn reduce_keys(
    app: &dyn App,
    job: &ReduceJob<'_>,
    mut merger: Merger<Source>,
    out: &mut Sink,
    w: &mut Written,
) -> Result<(), TaskFailure> {
    let name = out.name().to_string();
    let io = |e: std::io::Error| TaskFailure::Io {
        path: name.clone(),
        reason: e.to_string(),
    };
    let mut value = Vec::new();
    let skip: std::collections::HashSet<&[u8]> = job
        .skip
        .iter()
        .filter_map(|r| match r {
            BadRecord::Key(k) => Some(k.as_slice()),
            _ => None,
        })
        .collect();
    let stats = &mut w.stats;
    let (index, bytes) = (&mut w.index, &mut w.bytes);
    let values_only = app.values_only();
    let result = merger.for_each_group(|key, values| {
        job.cancel.check()?;
        if let Some(index) = index.as_mut() {
            if mr_runfile::starts_segment(key) {
                index.starts.push((key.to_vec(), *bytes));
            }
        }
        if skip.contains(key) {
            stats.skipped += 1;
            return Ok(());
        }
        value.clear();
        catch_unwind(AssertUnwindSafe(|| app.reduce(key, values, &mut value))).map_err(|p| {
            TaskFailure::AppPanic {
                message: panic_message(p.as_ref()),
                phase: mr_protocol::Phase::Reduce,
                record: BadRecord::Key(key.to_vec()),
            }
        })?;
        // The lab's `key value` lines, or the values alone, byte for byte.
        let line = if values_only {
            out.write_all(&value).map_err(io)?;
            value.len() as u64
        } else {
            out.write_all(key)
                .and_then(|()| out.write_all(b" "))
                .and_then(|()| out.write_all(&value))
                .and_then(|()| out.write_all(b"\n"))
                .map_err(io)?;
            (key.len() + value.len() + 2) as u64
        };
        stats.keys += 1;
        stats.bytes += line;
        *bytes += line;
        Ok(())
    });
    match result {
        Ok(()) => {}
        Err(GroupError::Read((m, e))) => return Err(lost(m, e)),
        Err(GroupError::Callback(f)) => return Err(f),
    }
    stats.records += merger.records();
    for (name, n) in std::mem::take(&mut merger.app_counters) {
        crate::engine::table::add_counter(&mut stats.app_counters, &name, n);
    }
    Ok(())
}
