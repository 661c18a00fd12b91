//! `mrworker --replay REPORT TASK`: one task of a finished or failed job,
//! run again in the foreground, alone, with exactly the input it had.
//!
//! The job's report (`mr-report.json`) records what this needs
//! ([`mr_protocol::replay::ReplayInfo`]): the app and R, every map's split,
//! and where the accepted map outputs were. A map is run on its split as
//! the job ran it (same ranges, same line alignment, same engine), so an
//! app that panicked on a record panics again on it and the failure names
//! the same file and offset. A reduce reads the job's map outputs where
//! they still exist and otherwise maps their splits again first, then
//! merges and reduces its partition as the job did: its output is the
//! committed one, byte for byte. No coordinator is involved, nothing runs
//! in the background, and everything is written into a directory of the
//! replay's own.

use crate::engine::map::{run_map, MapJob};
use crate::engine::reduce::{run_reduce, ReduceInput, ReduceJob};
use crate::engine::runfile::RunFile;
use mr_apps::AppRef;
use mr_protocol::replay::{ReplayInfo, TaskName};
use mr_protocol::{AttemptId, MapTaskId, TaskFailure};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use tracing::debug;

/// Why a replay could not run, or what the task did when it ran.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The report cannot be read or holds no replay section.
    #[error("report {path}: {reason}")]
    Report {
        /// The report file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The task is not one of the job's.
    #[error("{task}: {reason}")]
    Task {
        /// The task as given.
        task: String,
        /// Why it cannot be replayed.
        reason: String,
    },
    /// The replay's directory cannot be used.
    #[error("replay directory {path}: {reason}")]
    Dir {
        /// The directory.
        path: String,
        /// Why.
        reason: String,
    },
    /// The app cannot be loaded.
    #[error("{0}")]
    App(String),
    /// The task failed, as it did (or would have) in the job.
    #[error("{task} failed: {failure}")]
    Failed {
        /// The task.
        task: TaskName,
        /// What happened.
        failure: TaskFailure,
    },
}

/// What a replay wrote.
#[derive(Debug)]
pub struct Replayed {
    /// The files written (a map's run file and its text dump, or a
    /// reduce's output).
    pub outputs: Vec<PathBuf>,
    /// Map tasks run again for a reduce because their outputs were gone.
    pub maps_rerun: usize,
}

/// The report's replay section, and the job's id.
#[derive(serde::Deserialize)]
struct ReportFile {
    #[serde(default)]
    replay: Option<ReplayInfo>,
}

/// Reads the replay section of the report at `path`.
pub fn read_report(path: &Path) -> Result<ReplayInfo, ReplayError> {
    let failed = |reason: String| ReplayError::Report {
        path: path.display().to_string(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
    let report: ReportFile =
        serde_json::from_slice(&bytes).map_err(|e| failed(format!("not a job report ({e})")))?;
    report.replay.ok_or_else(|| {
        failed(
            "it has no replay section (written when a job ends, by this version's coordinator)"
                .into(),
        )
    })
}

/// The app a replay runs: the one the report names, as the job ran it
/// (its parameters, records and key ranges).
pub fn app_of(info: &ReplayInfo) -> Result<AppRef, ReplayError> {
    let make: crate::task_loop::AppMaker = match info.app_args.as_slice() {
        [m_flag, m, r_flag, r] if m_flag == "--map-cmd" && r_flag == "--reduce-cmd" => {
            let app = std::sync::Arc::new(mr_apps::apps::streaming::Streaming::new(m, r)) as AppRef;
            std::sync::Arc::new(move |_: &mr_apps::Conf| Ok(app.clone()))
        }
        [app] => {
            let spec = app.clone();
            std::sync::Arc::new(move |conf: &mr_apps::Conf| mr_apps::resolve(&spec, conf))
        }
        other => {
            return Err(ReplayError::App(format!(
                "the report names no app this worker knows how to run ({other:?})"
            )))
        }
    };
    crate::task_loop::job_app(&make, &info.shape).map_err(|e| ReplayError::App(e.to_string()))
}

/// Replays `task` of the job `info` describes with `app`, writing into
/// `dir` (created; it must not hold anything yet), with `memory` bytes of
/// map buffers. Blocking: runs on the caller's thread and rayon's.
pub fn replay(
    app: &AppRef,
    info: &ReplayInfo,
    task: TaskName,
    dir: &Path,
    memory: usize,
) -> Result<Replayed, ReplayError> {
    let maps = info.splits.len();
    let out_of_range = |count: usize, kind: &str| ReplayError::Task {
        task: task.to_string(),
        reason: match count {
            0 => format!("the job had no {kind} tasks"),
            c => format!(
                "not one of the job's tasks, which are {kind}-0 to {kind}-{}",
                c - 1
            ),
        },
    };
    match task {
        TaskName::Map(m) if m as usize >= maps => return Err(out_of_range(maps, "map")),
        TaskName::Reduce(r) if r >= info.reduces => {
            return Err(out_of_range(info.reduces as usize, "reduce"))
        }
        _ => {}
    }
    make_dir(dir)?;
    match task {
        TaskName::Map(m) => {
            let out = dir.join(format!("mr-map-{m}"));
            map_split(app, info, m, &out, memory)?;
            let text = dir.join(format!("mr-map-{m}.txt"));
            dump(&out, info.reduces, &text).map_err(|e| ReplayError::Dir {
                path: text.display().to_string(),
                reason: e,
            })?;
            Ok(Replayed {
                outputs: vec![out, text],
                maps_rerun: 0,
            })
        }
        TaskName::Reduce(r) => reduce_partition(app, info, r, dir, memory),
    }
}

/// Creates the replay's directory; one that holds anything is refused, so
/// a replay never mixes its files with others'.
fn make_dir(dir: &Path) -> Result<(), ReplayError> {
    let failed = |reason: String| ReplayError::Dir {
        path: dir.display().to_string(),
        reason,
    };
    if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(failed(
            "not empty: give --replay-dir a new directory, or remove this one".into(),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| failed(e.to_string()))
}

/// Runs map `m` on its split, writing its run file at `out`.
fn map_split(
    app: &AppRef,
    info: &ReplayInfo,
    m: u32,
    out: &Path,
    memory: usize,
) -> Result<(), ReplayError> {
    let split = &info.splits[m as usize];
    for p in &split.parts {
        debug!(map = m, input = %p.name, path = %p.path.display(), start = p.start, end = p.end, "replaying a map over its range");
    }
    let job = MapJob {
        map: m,
        reduces: info.reduces,
        parts: &split.parts,
        fetched: &[],
        out,
        memory,
        skip: &[],
        cancel: Default::default(),
    };
    let stats = run_map(app.as_ref(), &job).map_err(|failure| ReplayError::Failed {
        task: TaskName::Map(m),
        failure,
    })?;
    debug!(map = m, input_bytes = stats.input_bytes, records = stats.records, out = %out.display(), "map done");
    Ok(())
}

/// Reduces partition `r`: the job's map outputs where they still exist,
/// the others mapped again from their splits (in parallel) first.
fn reduce_partition(
    app: &AppRef,
    info: &ReplayInfo,
    r: u32,
    dir: &Path,
    memory: usize,
) -> Result<Replayed, ReplayError> {
    let maps_dir = dir.join("maps");
    let dir_failed = |e: std::io::Error| ReplayError::Dir {
        path: maps_dir.display().to_string(),
        reason: e.to_string(),
    };
    // A kept output is used only if it opens as a run file of R partitions
    // (any map number: a cached output keeps the number it was made under).
    let kept: Vec<Option<PathBuf>> = (0..info.splits.len())
        .map(|m| {
            let path = info.map_outputs.get(m)?.as_ref().map(PathBuf::from)?;
            RunFile::open(&path, None, info.reduces).ok()?;
            debug!(map = m, path = %path.display(), "using the job's map output");
            Some(path)
        })
        .collect();
    let missing: Vec<u32> = (0..info.splits.len() as u32)
        .filter(|&m| kept[m as usize].is_none())
        .collect();
    if !missing.is_empty() {
        std::fs::create_dir_all(&maps_dir).map_err(dir_failed)?;
        debug!(
            maps = missing.len(),
            "mapping again the splits whose outputs are gone"
        );
    }
    // The maps share the memory budget as a job's concurrent maps would.
    let each = memory / rayon::current_num_threads().max(1);
    missing.par_iter().try_for_each(|&m| {
        let out = maps_dir.join(format!("mr-map-{m}"));
        map_split(app, info, m, &out, each)
    })?;
    let inputs = (0..info.splits.len() as u32)
        .map(|m| {
            let path = kept[m as usize]
                .clone()
                .unwrap_or_else(|| maps_dir.join(format!("mr-map-{m}")));
            // A kept output may carry another map number (cached): read as
            // such, which accepts any; those made here carry their own.
            let attempt = match kept[m as usize] {
                Some(_) => AttemptId::cached(m),
                None => AttemptId(0),
            };
            ReduceInput::run_file(MapTaskId(m), attempt, path)
        })
        .collect();
    let name = format!("mr-out-{r}");
    let tmp = dir.join(format!(".{name}.tmp"));
    let out = dir.join(&name);
    debug!(
        reduce = r,
        maps = info.splits.len(),
        "merging and reducing the partition"
    );
    let job = ReduceJob {
        reduce: r,
        reduces: info.reduces,
        inputs,
        out: &tmp,
        upload_to: None,
        skip: &[],
        cancel: Default::default(),
        index: false,
        reuse: None,
    };
    let result = run_reduce(app.as_ref(), &job);
    // The maps made here were only the reduce's input.
    let _ = std::fs::remove_dir_all(&maps_dir);
    let stats = result.map_err(|failure| {
        let _ = std::fs::remove_file(&tmp);
        ReplayError::Failed {
            task: TaskName::Reduce(r),
            failure,
        }
    })?;
    std::fs::rename(&tmp, &out).map_err(|e| ReplayError::Dir {
        path: out.display().to_string(),
        reason: e.to_string(),
    })?;
    debug!(reduce = r, keys = stats.keys, out = %out.display(), "reduce done");
    Ok(Replayed {
        outputs: vec![out],
        maps_rerun: missing.len(),
    })
}

/// Writes the pairs of the run file at `run` as text, one per line:
/// partition, key and value separated by tabs (bytes that are not UTF-8
/// shown escaped), partition by partition in key order.
fn dump(run: &Path, reduces: u32, text: &Path) -> Result<(), String> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(text).map_err(|e| e.to_string())?);
    for r in 0..reduces {
        let file = RunFile::open(run, None, reduces).map_err(|e| e.to_string())?;
        let mut part = file.partition(r);
        while part.advance().map_err(|e| e.to_string())? {
            writeln!(out, "{r}\t{}\t{}", shown(part.key()), shown(part.value()))
                .map_err(|e| e.to_string())?;
        }
    }
    out.flush().map_err(|e| e.to_string())
}

/// `bytes` as text: as they are if UTF-8, escaped otherwise.
fn shown(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.into(),
        Err(_) => bytes.escape_ascii().to_string().into(),
    }
}
