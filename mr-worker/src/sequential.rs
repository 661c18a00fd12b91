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
    let splits = make_splits(
        inputs,
        u64::MAX,
        app.whole_file(),
        app.record_size().unwrap_or(0),
    );
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
            index: false,
            reuse: None,
        },
    )?;
    let out = out_dir.join("mr-out-0");
    std::fs::rename(&tmp, &out).map_err(|e| io(&out, e))?;
    Ok(stats.keys)
}

/// Why a run with a cache did not finish.
#[derive(Debug, thiserror::Error)]
pub enum CachedRunError {
    /// The cache or an input cannot be used.
    #[error(transparent)]
    Setup(#[from] mr_cache::job::SetupError),
    /// A task failed, as it would without the cache.
    #[error(transparent)]
    Task(#[from] TaskFailure),
}

/// What a run with a cache reused.
#[derive(Debug, Default)]
pub struct CachedRun {
    /// Map tasks (splits) in the job.
    pub maps: usize,
    /// Of them, taken from the cache.
    pub maps_reused: usize,
    /// Input bytes not mapped again.
    pub input_bytes_reused: u64,
    /// Whether `mr-out-0` itself came from the cache.
    pub output_reused: bool,
    /// Output bytes copied from an earlier output rather than reduced.
    pub output_bytes_copied: u64,
}

/// Runs `app` (as `spec` names it) over `inputs` into `<out_dir>/mr-out-0`
/// with the cache in `cache`: the inputs planned by content into splits of
/// `spec.split_size` (at the coordinator's split size, `mrsequential
/// --cache` and `mrcoordinator --cache --reduces 1` over the same inputs
/// make the same addresses and share results), each split's map output and
/// the reduce's output
/// taken from the cache when it holds them and kept there otherwise (with
/// `max`, the cache is evicted down to it afterwards). The output is the
/// one [`run_sequential`] writes.
pub fn run_sequential_cached(
    app: &dyn App,
    spec: &mr_cache::job::AppSpec<'_>,
    inputs: &[InputFile],
    out_dir: &Path,
    memory: usize,
    (cache, max): (&Path, Option<u64>),
) -> Result<CachedRun, CachedRunError> {
    use mr_cache::job::JobCache;
    use mr_protocol::{names, ReduceTaskId};
    let io = |p: &Path, e: std::io::Error| TaskFailure::Io {
        path: p.display().to_string(),
        reason: e.to_string(),
    };
    let (jc, plan, _) = JobCache::plan(cache, max, inputs, spec)?;
    let work = TempDir(out_dir.join(format!(".mr-seq-{}", std::process::id())));
    std::fs::create_dir_all(&work.0).map_err(|e| io(&work.0, e))?;
    let taken = jc.take(&work.0, Some(out_dir), &[], &|_| false);
    let mut run = CachedRun {
        maps: plan.len(),
        maps_reused: taken.maps.len(),
        input_bytes_reused: taken.input_bytes,
        output_reused: !taken.reduces.is_empty(),
        output_bytes_copied: 0,
    };
    if run.output_reused {
        jc.evict();
        return Ok(run);
    }
    let cached: std::collections::HashSet<MapTaskId> =
        taken.maps.iter().map(|done| done.task).collect();
    let job = CachedJob {
        app,
        spec,
        inputs,
        plan: &plan,
        cache: &jc,
        work: &work.0,
    };
    let ran = job.run_maps_left(&cached, memory)?;
    // The reduce's address is known now that every map's output is.
    let unknown: Vec<(MapTaskId, Option<PathBuf>)> =
        ran.iter().map(|(m, p)| (*m, Some(p.clone()))).collect();
    let reduce = ReduceTaskId(0);
    let found = jc.reduces_at_map_end(&unknown, &work.0, Some(out_dir), &[reduce]);
    let (taken, reusing_earlier) = (found.committed, found.reusing_earlier);
    if !taken.is_empty() {
        run.output_reused = true;
        jc.evict();
        return Ok(run);
    }
    // An earlier output whose pieces still hold, placed in the work directory.
    let earlier = reusing_earlier
        .into_iter()
        .next()
        .map(|(_, r)| (work.0.join(&r.previous), r));
    let inputs: Vec<ReduceInput> = (0..plan.len() as u32)
        .map(|m| {
            let task = MapTaskId(m);
            let attempt = match cached.contains(&task) {
                true => AttemptId::cached(m),
                false => AttemptId(0),
            };
            ReduceInput::run_file(task, attempt, work.0.join(names::map_output(task, attempt)))
        })
        .collect();
    let tmp = work.0.join("mr-out-0.tmp");
    let stats = run_reduce(
        app,
        &ReduceJob {
            reduce: 0,
            reduces: spec.reduces,
            inputs,
            out: &tmp,
            upload_to: None,
            skip: &[],
            cancel: Default::default(),
            index: true,
            reuse: earlier
                .as_ref()
                .map(|(path, r)| (path.as_path(), r.pieces.as_slice())),
        },
    )?;
    let out = out_dir.join("mr-out-0");
    std::fs::rename(&tmp, &out).map_err(|e| io(&out, e))?;
    run.output_bytes_copied = stats.index.as_ref().map_or(0, |i| i.copied);
    jc.put_reduce(
        reduce,
        &out,
        &crate::attempt::reduce_counters(&stats),
        stats.index.clone(),
    );
    jc.evict();
    Ok(run)
}

/// A sequential job over the cache: what each of its phases reads.
struct CachedJob<'a> {
    app: &'a dyn App,
    spec: &'a mr_cache::job::AppSpec<'a>,
    inputs: &'a [InputFile],
    plan: &'a mr_protocol::plan::SplitPlan,
    cache: &'a mr_cache::job::JobCache,
    /// Where map outputs and the reduce's temporary output go.
    work: &'a Path,
}

impl CachedJob<'_> {
    /// Runs the maps the cache did not hold (`cached`) at once, sharing
    /// `memory`, and keeps each output in the cache.
    fn run_maps_left(
        &self,
        cached: &std::collections::HashSet<MapTaskId>,
        memory: usize,
    ) -> Result<Vec<(MapTaskId, PathBuf)>, TaskFailure> {
        let CachedJob {
            app,
            spec,
            inputs,
            plan,
            cache,
            work,
        } = *self;
        let to_run: Vec<u32> = (0..plan.len() as u32)
            .filter(|m| !cached.contains(&MapTaskId(*m)))
            .collect();
        // The maps left run at once and share the memory budget.
        let each = memory / rayon::current_num_threads().min(to_run.len()).max(1);
        to_run
            .par_iter()
            .map(|&m| {
                let task = MapTaskId(m);
                let out = work.join(mr_protocol::names::map_output(task, AttemptId(0)));
                let split = plan.split(m as usize, inputs);
                let job = MapJob {
                    map: m,
                    reduces: spec.reduces,
                    parts: &split.parts,
                    fetched: &[],
                    out: &out,
                    memory: each,
                    skip: &[],
                    cancel: Default::default(),
                };
                let stats = crate::engine::map::run_map(app, &job)?;
                cache.put_map(task, &out, &crate::attempt::map_counters(app, stats));
                Ok((task, out))
            })
            .collect()
    }
}
