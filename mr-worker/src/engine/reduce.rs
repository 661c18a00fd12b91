//! The reduce engine: a streaming k-way merge of one partition of every map
//! output, one `reduce` call per key, output written to a temp file.
//!
//! Memory holds one block per input plus the current key: values are handed
//! to the app straight from the read buffers as a stream ([`mr_apps::Values`]),
//! so a key with millions of values costs nothing extra unless the app keeps them.

pub use crate::engine::merge::ReduceStats;
use crate::engine::merge::{lost, GroupError, Merger};
use crate::engine::output::Sink;
use crate::engine::runfile::{PartitionReader, RunError, RunFile};
use mr_apps::{plugin::panic_message, App};
use mr_protocol::{AttemptId, BadRecord, MapTaskId, TaskFailure};
use std::io::Write;
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

    /// A reader of partition `reduce` of this input.
    fn open(&self, reduce: u32, reduces: u32) -> Result<PartitionReader, RunError> {
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
}

/// Runs one reduce task, writing `key value` lines to `job.out`.
pub fn run_reduce(app: &dyn App, job: &ReduceJob<'_>) -> Result<ReduceStats, TaskFailure> {
    let mut readers = Vec::with_capacity(job.inputs.len());
    for input in &job.inputs {
        let tag = (input.map, input.attempt);
        let reader = input
            .open(job.reduce, job.reduces)
            .map_err(|e| lost(tag, e))?;
        readers.push((tag, reader));
    }
    let mut merger = Merger::new(readers).map_err(|(m, e)| lost(m, e))?;
    let mut out = Sink::open(job.out, job.upload_to)?;
    let name = out.name().to_string();
    let io = |e: std::io::Error| TaskFailure::Io {
        path: name.clone(),
        reason: e.to_string(),
    };
    if let Some(cmd) = app.reduce_command() {
        let mut stats =
            crate::engine::stream_reduce::run(cmd, job.reduce, merger, &mut out, &io, &job.cancel)?;
        stats.upload = out.finish()?;
        return Ok(stats);
    }
    let mut value = Vec::new();
    let mut stats = ReduceStats::default();
    let skip: std::collections::HashSet<&[u8]> = job
        .skip
        .iter()
        .filter_map(|r| match r {
            BadRecord::Key(k) => Some(k.as_slice()),
            _ => None,
        })
        .collect();
    let result = merger.for_each_group(|key, values| {
        job.cancel.check()?;
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
        out.write_all(key)
            .and_then(|()| out.write_all(b" "))
            .and_then(|()| out.write_all(&value))
            .and_then(|()| out.write_all(b"\n"))
            .map_err(io)?;
        stats.keys += 1;
        stats.bytes += (key.len() + value.len() + 2) as u64;
        Ok(())
    });
    match result {
        Ok(()) => {}
        Err(GroupError::Read((m, e))) => return Err(lost(m, e)),
        Err(GroupError::Callback(f)) => return Err(f),
    }
    stats.upload = out.finish()?;
    stats.records = merger.records();
    stats.groups = stats.keys + stats.skipped;
    stats.app_counters = std::mem::take(&mut merger.app_counters);
    Ok(stats)
}
