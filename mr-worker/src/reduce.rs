//! The reduce engine: a streaming k-way merge of one partition of every map
//! output, one `reduce` call per key, output written to a temp file.
//!
//! Memory holds one block per input plus the current key: values are handed
//! to the app straight from the read buffers as a stream ([`mr_apps::Values`]),
//! so a key with millions of values costs nothing extra unless the app keeps them.

use crate::merge::{GroupError, Merger};
use crate::runfile::{RunError, RunFile};
use mr_apps::{plugin::panic_message, App};
use mr_coordinator::protocol::{BadRecord, MapTaskId, TaskFailure};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// One reduce task's inputs and output.
#[derive(Clone, Debug)]
pub struct ReduceJob<'a> {
    /// The partition to reduce.
    pub reduce: u32,
    /// R, the number of partitions in each run file.
    pub reduces: u32,
    /// Every map task's run file.
    pub inputs: Vec<(MapTaskId, PathBuf)>,
    /// Where the output goes (the caller commits it by rename).
    pub out: &'a Path,
    /// Keys not to reduce: each made an earlier attempt panic.
    pub skip: &'a [BadRecord],
}

/// What a reduce task did.
#[derive(Clone, Debug, Default)]
pub struct ReduceStats {
    /// Distinct keys reduced.
    pub keys: u64,
    /// Records read.
    pub records: u64,
    /// Output bytes.
    pub bytes: u64,
    /// Keys skipped as told by `skip`.
    pub skipped: u64,
    /// Distinct keys read (for streaming reduces, where output lines need
    /// not match keys one to one; else `keys + skipped`).
    pub groups: u64,
    /// App-defined counters.
    pub app_counters: crate::table::AppCounters,
}

/// A bad map output is the map's problem (re-run it); other I/O is ours.
pub(crate) fn lost(map: MapTaskId, e: RunError) -> TaskFailure {
    match e {
        RunError::Missing { .. } | RunError::Corrupt { .. } => TaskFailure::MapOutputLost {
            map,
            reason: e.to_string(),
        },
        RunError::Io { path, source } => TaskFailure::Io {
            path: path.display().to_string(),
            reason: source.to_string(),
        },
    }
}

/// Runs one reduce task, writing `key value` lines to `job.out`.
pub fn run_reduce(app: &dyn App, job: &ReduceJob<'_>) -> Result<ReduceStats, TaskFailure> {
    let mut readers = Vec::with_capacity(job.inputs.len());
    for (map, path) in &job.inputs {
        let f = RunFile::open(path, map.0, job.reduces).map_err(|e| lost(*map, e))?;
        readers.push((*map, f.partition(job.reduce)));
    }
    let mut merger = Merger::new(readers).map_err(|(m, e)| lost(m, e))?;
    let io = |e: std::io::Error| TaskFailure::Io {
        path: job.out.display().to_string(),
        reason: e.to_string(),
    };
    let mut out = BufWriter::with_capacity(1 << 20, File::create(job.out).map_err(io)?);
    if let Some(cmd) = app.reduce_command() {
        let stats = crate::stream_reduce::run(cmd, job.reduce, merger, &mut out, &io)?;
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_data().map_err(io)?;
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
        if skip.contains(key) {
            stats.skipped += 1;
            return Ok(());
        }
        value.clear();
        catch_unwind(AssertUnwindSafe(|| app.reduce(key, values, &mut value))).map_err(|p| {
            TaskFailure::AppPanic {
                message: panic_message(p.as_ref()),
                phase: "reduce".into(),
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
    // On disk before the coordinator's rename makes it the committed output.
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_data().map_err(io)?;
    stats.records = merger.records();
    stats.groups = stats.keys + stats.skipped;
    stats.app_counters = std::mem::take(&mut merger.app_counters);
    Ok(stats)
}
