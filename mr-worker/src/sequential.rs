//! `mrsequential`: a whole job in one process, through the same engines.
//!
//! Each input is mapped whole into one run file with a single partition (or,
//! past the memory budget, at most 16 spill runs), and one reduce merges
//! them into `mr-out-0`. It is the reference answer tests
//! compare against, and a debugger-friendly way to run an app.

use crate::engine::map::{run_map_runs, MapJob};
use crate::engine::reduce::{run_reduce, ReduceInput, ReduceJob};
use mr_apps::App;
use mr_protocol::plan::{make_splits, InputFile};
use mr_protocol::{AttemptId, MapTaskId, TaskFailure};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// Removes a directory tree when dropped, so a failed run leaves nothing.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `app` over `inputs` and commits `<out_dir>/mr-out-0`, keeping map
/// buffers within `memory` bytes in all. Returns the number of distinct keys written.
pub fn run_sequential(
    app: &dyn App,
    inputs: &[InputFile],
    out_dir: &Path,
    memory: usize,
) -> Result<u64, TaskFailure> {
    let io = |p: &Path, e: std::io::Error| TaskFailure::Io {
        path: p.display().to_string(),
        reason: e.to_string(),
    };
    let work = TempDir(out_dir.join(format!(".mr-seq-{}", std::process::id())));
    std::fs::create_dir_all(&work.0).map_err(|e| io(&work.0, e))?;
    // The planner's own splits with no size limit: one map task over every
    // input (all cores inside it), or one per file for whole-file apps.
    let splits = make_splits(inputs, u64::MAX, app.whole_file());
    // Whole-file maps of several inputs run at once; they share the budget.
    let memory = if splits.len() > 1 {
        memory / rayon::current_num_threads().max(1)
    } else {
        memory
    };
    let outs: Vec<(MapTaskId, PathBuf)> = (0..splits.len())
        .map(|i| (MapTaskId(i as u32), work.0.join(format!("mr-{i}"))))
        .collect();
    // A map that spilled leaves its runs (at most 16) for the reduce to
    // merge, rather than merging them into one file the reduce merges again.
    let runs: Vec<(MapTaskId, Vec<PathBuf>)> = splits
        .par_iter()
        .zip(outs.par_iter())
        .map(|(split, (m, out))| {
            let job = MapJob {
                map: m.0,
                reduces: 1,
                parts: &split.parts,
                fetched: &[],
                out,
                memory,
                skip: &[],
                cancel: Default::default(),
            };
            run_map_runs(app, &job).map(|(_, files)| (*m, files))
        })
        .collect::<Result<_, _>>()?;
    let tmp = work.0.join("mr-out-0.tmp");
    let stats = run_reduce(
        app,
        &ReduceJob {
            reduce: 0,
            reduces: 1,
            inputs: runs
                .into_iter()
                .flat_map(|(m, files)| {
                    files
                        .into_iter()
                        .map(move |path| ReduceInput::run_file(m, AttemptId(0), path))
                })
                .collect(),
            out: &tmp,
            upload_to: None,
            skip: &[],
            cancel: Default::default(),
        },
    )?;
    let out = out_dir.join("mr-out-0");
    std::fs::rename(&tmp, &out).map_err(|e| io(&out, e))?;
    Ok(stats.keys)
}
