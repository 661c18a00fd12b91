//! Incremental re-runs (`--cache DIR`): what a job takes from the cache
//! instead of computing it, and what it gives back.
//!
//! With a cache the inputs are planned by content ([`mr_cache::plan`]):
//! each split's content address is the hash of everything that determines
//! its map's output (its files' names and bytes, the app's identity, R and
//! the run-file format), and each reduce's is the hash of every map's
//! address with its own number. Before any worker is asked, reduce outputs
//! found in the cache are committed as `mr-out-<r>` and, for the reduces
//! left to run, map outputs found there are placed in the job directory
//! as accepted outputs of a reserved attempt; both then count as done, as a
//! journal's progress does. As tasks finish, their outputs go into the
//! cache (map outputs only when a worker wrote them to the shared job
//! directory). Every entry is checked against its SHA-256 when taken, so a
//! damaged one is recomputed, never used.

use crate::job::CoordinatorError;
use mr_cache::{Cache, Key, Kind};
use mr_protocol::plan::{InputFile, SplitPlan};
use mr_protocol::{names, AttemptId, Counters, MapTaskId, ReduceTaskId};
use std::path::Path;
use tracing::{info, warn};

/// Bumped with any change to what a map's or reduce's output is made of
/// that the app's identity does not cover (the run-file format, the
/// partitioner's framing).
const OUTPUTS_VERSION: &[u8] = b"outputs-1 run-file MRRUN 1";

/// The app and settings that shape a job's outputs.
pub struct AppSpec<'a> {
    /// `--app` (a built-in name or a plugin path), or a streaming job's name.
    pub app: &'a str,
    /// A streaming job's map and reduce commands.
    pub streaming: Option<&'a (String, String)>,
    /// R.
    pub reduces: u32,
    /// The target split size.
    pub split_size: u64,
}

/// A job's cache and the content addresses of its tasks.
pub struct JobCache {
    cache: Cache,
    maps: Vec<Key>,
    reduces: Vec<Key>,
    /// Input bytes of each map's split (for the summary).
    map_bytes: Vec<u64>,
    /// `--cache-max`: evict down to this after the job.
    max: Option<u64>,
}

/// What was taken from the cache.
#[derive(Debug, Default)]
pub struct Reused {
    /// Maps done by a cached output: id, reserved attempt, counters.
    pub maps: Vec<(MapTaskId, AttemptId, Counters)>,
    /// Outputs committed from the cache.
    pub reduces: Vec<(ReduceTaskId, AttemptId, Counters)>,
    /// Maps not run, cached output or not (every reduce's output was).
    pub maps_skipped: usize,
    /// Input bytes whose maps did not run.
    pub input_bytes: u64,
}

impl JobCache {
    /// Opens the cache in `dir`, plans the inputs by content and works out
    /// every task's address. Blocking (reads the inputs not seen before).
    pub fn plan(
        dir: &Path,
        max: Option<u64>,
        files: &[InputFile],
        spec: &AppSpec<'_>,
    ) -> Result<(JobCache, SplitPlan, (String, bool)), CoordinatorError> {
        if let Some(f) = files.iter().find(|f| f.version.is_some()) {
            return Err(CoordinatorError::Config(format!(
                "--cache plans inputs by their bytes, and '{}' is in an object store: copy it here, or run without --cache",
                f.name
            )));
        }
        let cache = Cache::open(dir).map_err(|e| CoordinatorError::Config(e.to_string()))?;
        let (identity, name, whole_file) = app_identity(spec)?;
        let pieces = mr_cache::plan::all_pieces(files, spec.split_size, whole_file, Some(&cache))
            .map_err(|e| CoordinatorError::Config(e.to_string()))?;
        let (plan, split_keys) = mr_cache::plan::plan(files, &pieces, spec.split_size);
        let r = spec.reduces.to_le_bytes();
        let maps: Vec<Key> = split_keys
            .iter()
            .map(|k| Key::of(&[b"map", OUTPUTS_VERSION, &identity, &r, &k.0]))
            .collect();
        let all_maps: Vec<u8> = maps.iter().flat_map(|k| k.0).collect();
        let reduces = (0..spec.reduces)
            .map(|i| {
                Key::of(&[
                    b"reduce",
                    OUTPUTS_VERSION,
                    &identity,
                    &r,
                    &i.to_le_bytes(),
                    &all_maps,
                ])
            })
            .collect();
        let map_bytes = (0..plan.len())
            .map(|i| plan.ranges(i).iter().map(|p| p.end - p.start).sum())
            .collect();
        let job = JobCache {
            cache,
            maps,
            reduces,
            map_bytes,
            max,
        };
        Ok((job, plan, (name, whole_file)))
    }

    /// Takes what the cache holds for the tasks not already done (`done`:
    /// from a journal): reduce outputs committed into `output_dir` (None:
    /// outputs go to an object store, not cached), and for the reduces left,
    /// map outputs into `job_dir`. Blocking.
    pub fn take(
        &self,
        job_dir: &Path,
        output_dir: Option<&Path>,
        maps_done: &dyn Fn(MapTaskId) -> bool,
        reduces_done: &dyn Fn(ReduceTaskId) -> bool,
    ) -> Reused {
        let mut got = Reused::default();
        let mut left = 0;
        for (r, key) in self.reduces.iter().enumerate() {
            let task = ReduceTaskId(r as u32);
            if reduces_done(task) {
                continue;
            }
            let taken = output_dir.and_then(|dir| {
                let tmp = dir.join(format!(".{}.cached.tmp", names::output(task)));
                let meta = self.cache.take(Kind::Reduce, key, &tmp)?;
                let counters = decode(&meta)?;
                // Committed as a reduce commits: rename into place.
                match std::fs::rename(&tmp, dir.join(names::output(task))) {
                    Ok(()) => Some(counters),
                    Err(e) => {
                        warn!(reduce = %task, "cannot commit the cached output: {e}; the reduce runs");
                        let _ = std::fs::remove_file(&tmp);
                        None
                    }
                }
            });
            match taken {
                Some(c) => got.reduces.push((task, reserved(r), c)),
                None => left += 1,
            }
        }
        for (m, key) in self.maps.iter().enumerate() {
            let task = MapTaskId(m as u32);
            if maps_done(task) {
                continue;
            }
            got.input_bytes += self.map_bytes[m];
            // Every output came from the cache: no reduce reads a map's.
            if left == 0 {
                got.maps.push((task, reserved(m), Counters::default()));
                got.maps_skipped += 1;
                continue;
            }
            let attempt = reserved(m);
            let dest = job_dir.join(names::map_output(task, attempt));
            match self
                .cache
                .take(Kind::Map, key, &dest)
                .and_then(|m| decode(&m))
            {
                Some(c) => got.maps.push((task, attempt, c)),
                None => got.input_bytes -= self.map_bytes[m],
            }
        }
        if !got.maps.is_empty() || !got.reduces.is_empty() {
            info!(
                maps = got.maps.len(),
                reduces = got.reduces.len(),
                input_bytes = got.input_bytes,
                "reusing results from the cache"
            );
        }
        got
    }

    /// Keeps map `m`'s accepted output (the run file at `path`). Blocking.
    pub fn put_map(&self, m: MapTaskId, path: &Path, counters: &Counters) {
        self.put(Kind::Map, &self.maps[m.0 as usize], path, counters);
    }

    /// Keeps reduce `r`'s committed output (at `path`). Blocking.
    pub fn put_reduce(&self, r: ReduceTaskId, path: &Path, counters: &Counters) {
        self.put(Kind::Reduce, &self.reduces[r.0 as usize], path, counters);
    }

    fn put(&self, kind: Kind, key: &Key, path: &Path, counters: &Counters) {
        let meta = bincode::serialize(counters).unwrap_or_default();
        if let Err(e) = self.cache.put(kind, key, path, &meta) {
            // A cache that cannot take it only costs a later run the task.
            warn!("{e}");
        }
    }

    /// Evicts down to `--cache-max`, if given. Blocking.
    pub fn evict(&self) {
        if let Some(max) = self.max {
            let freed = self.cache.evict(max);
            if freed > 0 {
                info!(freed, max, "evicted least recently used cache entries");
            }
        }
    }
}

/// Plans the job by content with the cache in `dir` and takes what it
/// holds for the tasks the journal does not already have (on a blocking
/// thread: it reads inputs and links files). Returns the cache, the plan,
/// the app (name, whole-file) and what was taken.
pub async fn prepare(
    dir: &std::path::Path,
    cfg: &crate::job::JobConfig,
    files: &[mr_protocol::plan::InputFile],
    recovered: &crate::journal::Recovered,
    job_dir: &std::path::Path,
    output_dir: &std::path::Path,
    outputs_in_store: bool,
) -> Result<(JobCache, SplitPlan, (String, bool), Reused), CoordinatorError> {
    let (dir, files, job_dir, output_dir) = (
        dir.to_path_buf(),
        files.to_vec(),
        job_dir.to_path_buf(),
        output_dir.to_path_buf(),
    );
    let (app, streaming) = (cfg.app.clone().unwrap_or_default(), cfg.streaming.clone());
    let (reduces, split_size, max) = (cfg.reduces, cfg.split_size, cfg.cache_max);
    let maps_done: std::collections::HashSet<_> = recovered.maps.keys().copied().collect();
    let reduces_done: std::collections::HashSet<_> = recovered.reduces.keys().copied().collect();
    tokio::task::spawn_blocking(move || {
        let spec = AppSpec {
            app: &app,
            streaming: streaming.as_ref(),
            reduces,
            split_size,
        };
        let (jc, plan, app) = JobCache::plan(&dir, max, &files, &spec)?;
        let outputs = (!outputs_in_store).then_some(output_dir.as_path());
        let taken = jc.take(&job_dir, outputs, &|m| maps_done.contains(&m), &|r| {
            reduces_done.contains(&r)
        });
        Ok((jc, plan, app, taken))
    })
    .await
    .map_err(|e| CoordinatorError::Internal {
        what: "planning with the cache",
        reason: e.to_string(),
    })?
}

fn reserved(task: usize) -> AttemptId {
    AttemptId::cached(task as u32)
}

fn decode(meta: &[u8]) -> Option<Counters> {
    bincode::deserialize(meta).ok()
}

/// What identifies the app's code, the name its workers register with,
/// and its whole-file flag: a built-in's name with this build's version,
/// a plugin's file hash, a streaming job's commands.
fn app_identity(spec: &AppSpec<'_>) -> Result<(Vec<u8>, String, bool), CoordinatorError> {
    if let Some((m, r)) = spec.streaming {
        let id = format!("streaming\0{m}\0{r}");
        return Ok((id.into_bytes(), spec.app.to_string(), false));
    }
    let app = mr_apps::resolve(spec.app).map_err(|e| {
        CoordinatorError::Config(format!("--cache needs to know the app's code: {e}"))
    })?;
    let is_plugin = spec.app.contains('/') || spec.app.ends_with(".so");
    let id = if is_plugin {
        let bytes = std::fs::read(spec.app).map_err(|e| {
            CoordinatorError::Config(format!("cannot read plugin '{}': {e}", spec.app))
        })?;
        let mut id = b"plugin\0".to_vec();
        id.extend_from_slice(&Key::of(&[&bytes]).0);
        id
    } else {
        format!("builtin\0{}\0{}", spec.app, env!("CARGO_PKG_VERSION")).into_bytes()
    };
    Ok((id, app.name().to_string(), app.whole_file()))
}
