//! The map engine: one map task from input split to intermediate run file.
//!
//! The split is memory-mapped, aligned to whole lines, cut into chunks that
//! rayon maps in parallel, each chunk's output partitioned by `ihash(key) % R`
//! and (with a combiner) sorted and combined at once so memory holds about
//! one record per distinct key per chunk. The partitions are then sorted,
//! combined again across chunks, and written as ONE run file (temp + rename).

use crate::pairs::{sort_and_group, PairBuf};
use crate::runfile::RunWriter;
use crate::split::{align, chunks};
use memmap2::Mmap;
use mr_apps::{ihash, plugin::panic_message, App, Emit};
use mr_coordinator::protocol::TaskFailure;
use rayon::prelude::*;
use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// One map task's input and output.
#[derive(Clone, Debug)]
pub struct MapJob<'a> {
    /// Map task number (recorded in the run file header).
    pub map: u32,
    /// R, the number of partitions.
    pub reduces: u32,
    /// The input's name as the user gave it; what the app's map sees.
    pub name: &'a str,
    /// The file to open.
    pub path: &'a Path,
    /// Split start (unaligned).
    pub start: u64,
    /// Split end (unaligned).
    pub end: u64,
    /// The file size the planner saw.
    pub file_len: u64,
    /// Where the run file goes (written as `<out>.tmp`, then renamed).
    pub out: &'a Path,
}

/// What a map task did.
#[derive(Clone, Copy, Debug, Default)]
pub struct MapStats {
    /// Bytes of input mapped.
    pub input_bytes: u64,
    /// Records written after combining.
    pub records: u64,
    /// Size of the run file.
    pub bytes: u64,
}

/// Partitions emitted pairs into per-partition buffers.
struct PartitionEmit {
    parts: Vec<PairBuf>,
    reduces: u32,
}

impl Emit for PartitionEmit {
    fn emit(&mut self, key: &[u8], value: &[u8]) {
        let r = ihash(key) % self.reduces;
        self.parts[r as usize].push(key, value);
    }
}

fn input_error(job: &MapJob<'_>, reason: impl Into<String>) -> TaskFailure {
    TaskFailure::Input {
        path: job.name.to_string(),
        reason: reason.into(),
    }
}

/// Runs `f`, turning a panic in app code into the typed failure.
fn app_call<T>(job: &MapJob<'_>, offset: usize, f: impl FnOnce() -> T) -> Result<T, TaskFailure> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| TaskFailure::AppPanic {
        message: panic_message(p.as_ref()),
        input: job.name.to_string(),
        offset: offset as u64,
    })
}

/// Runs one map task.
pub fn run_map(app: &dyn App, job: &MapJob<'_>) -> Result<MapStats, TaskFailure> {
    let file = File::open(job.path).map_err(|e| input_error(job, e.to_string()))?;
    let len = file
        .metadata()
        .map_err(|e| input_error(job, e.to_string()))?
        .len();
    if len != job.file_len {
        return Err(input_error(
            job,
            format!(
                "size changed from {} to {len} bytes since the job was planned",
                job.file_len
            ),
        ));
    }
    // An empty file cannot be mapped; it simply has no lines.
    let map = if len == 0 {
        None
    } else {
        // SAFETY: the mapping is read-only. If another process truncates the
        // file while we read, we may fault: inputs must not change during a
        // job, which the size check above enforces as far as it can.
        let m = unsafe { Mmap::map(&file) }
            .map_err(|e| input_error(job, format!("cannot mmap: {e}")))?;
        let _ = m.advise(memmap2::Advice::Sequential);
        Some(m)
    };
    let data: &[u8] = map.as_deref().unwrap_or(&[]);

    let (start, end) = if app.whole_file() {
        (0, data.len())
    } else {
        align(data, job.start as usize, job.end.min(len) as usize)
    };
    let pieces = if app.whole_file() {
        vec![(start, end)]
    } else {
        let threads = rayon::current_num_threads().max(1);
        let target = ((end - start) / (threads * 4)).clamp(256 << 10, 16 << 20);
        chunks(data, start, end, target)
    };
    let combine = app.has_combiner();

    // Map every chunk in parallel; each yields its R partition buffers,
    // already combined when the app allows.
    let per_chunk: Vec<Vec<PairBuf>> = pieces
        .par_iter()
        .map(|&(s, e)| {
            let mut emit = PartitionEmit {
                parts: (0..job.reduces).map(|_| PairBuf::default()).collect(),
                reduces: job.reduces,
            };
            // Whole-file apps see an empty file as one empty call, as in the lab.
            app_call(job, s, || app.map(job.name, &data[s..e], &mut emit))?;
            if combine {
                for part in &mut emit.parts {
                    let mut combined = PairBuf::default();
                    app_call(job, s, || {
                        sort_and_group(&[&*part], |key, values| {
                            app.combine(key, values, &mut |v| combined.push(key, v))
                        })
                    })?;
                    *part = combined;
                }
            }
            Ok(emit.parts)
        })
        .collect::<Result<_, TaskFailure>>()?;

    let tmp = job.out.with_extension("tmp");
    let result = write_run(app, job, &per_chunk, &tmp, combine);
    match result {
        Ok(mut stats) => {
            std::fs::rename(&tmp, job.out).map_err(|e| TaskFailure::Io {
                path: job.out.display().to_string(),
                reason: e.to_string(),
            })?;
            stats.input_bytes = (end - start) as u64;
            Ok(stats)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Merges the chunks' partitions in order into the run file at `tmp`.
fn write_run(
    app: &dyn App,
    job: &MapJob<'_>,
    per_chunk: &[Vec<PairBuf>],
    tmp: &Path,
    combine: bool,
) -> Result<MapStats, TaskFailure> {
    let io = |e: crate::runfile::RunError| TaskFailure::Io {
        path: tmp.display().to_string(),
        reason: e.to_string(),
    };
    let mut w = RunWriter::create(tmp, job.map, job.reduces).map_err(io)?;
    let mut records = 0u64;
    let mut write_err = None;
    for r in 0..job.reduces as usize {
        let bufs: Vec<&PairBuf> = per_chunk.iter().map(|c| &c[r]).collect();
        app_call(job, 0, || {
            sort_and_group(&bufs, |key, values| {
                let mut put = |v: &[u8]| {
                    if write_err.is_none() {
                        records += 1;
                        if let Err(e) = w.push(key, v) {
                            write_err = Some(e);
                        }
                    }
                };
                if combine {
                    app.combine(key, values, &mut put);
                } else {
                    while let Some(v) = values.next_value() {
                        put(v);
                    }
                }
            })
        })?;
        if let Some(e) = write_err.take() {
            return Err(io(e));
        }
        w.end_partition().map_err(io)?;
    }
    let bytes = w.finish().map_err(io)?;
    Ok(MapStats {
        input_bytes: 0,
        records,
        bytes,
    })
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
