//! `mrcoordinator --cache DIR`: the start-up glue around [`mr_cache::job`]
//! (which plans by content, and takes and keeps results); the server
//! calls the rest of [`JobCache`] as tasks finish and the maps end.

use crate::job::CoordinatorError;
use crate::observe::report::CacheInfo;
use mr_cache::job::{AppSpec, JobCache, Reused};
use mr_protocol::plan::{InputFile, SplitPlan};
use mr_protocol::{names, MapTaskId, PlannedApp};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Where a job keeps what the cache gives it.
pub struct Places<'a> {
    /// The job directory (map outputs are linked here).
    pub job_dir: &'a Path,
    /// The output directory (committed outputs are linked here).
    pub output_dir: &'a Path,
    /// Whether outputs go to an object store instead (then none is linked).
    pub outputs_in_store: bool,
}

/// What [`prepare`] made: the job's cache, and its plan by content.
pub struct Prepared {
    /// The job's cache (where outputs are put as tasks finish).
    pub cache: JobCache,
    /// The plan, and what the cache held for it.
    pub content: ContentPlan,
}

/// The job planned by content, and what the cache held for it.
pub struct ContentPlan {
    /// The splits, cut by content.
    pub plan: SplitPlan,
    /// The app the plan was made for.
    pub app: PlannedApp,
    /// The tasks whose outputs were taken from the cache.
    pub taken: Reused,
}

/// Plans the job by content with the cache in `dir` and takes what it
/// holds for the tasks the journal does not already have (on a blocking
/// thread: it reads inputs and links files).
pub async fn prepare(
    dir: &Path,
    cfg: &crate::job::JobConfig,
    shape: &mr_protocol::JobShape,
    files: &[InputFile],
    recovered: &crate::journal::Recovered,
    places: Places<'_>,
) -> Result<Prepared, CoordinatorError> {
    let Places {
        job_dir,
        output_dir,
        outputs_in_store,
    } = places;
    let (dir, files, job_dir, output_dir) = (
        dir.to_path_buf(),
        files.to_vec(),
        job_dir.to_path_buf(),
        output_dir.to_path_buf(),
    );
    let (app, streaming) = (cfg.app.clone().unwrap_or_default(), cfg.streaming.clone());
    let (reduces, split_size, max) = (cfg.reduces, cfg.split_size, cfg.cache_max);
    let key_files = cfg.cache_key_files.clone();
    let (record_size, params) = (shape.record_size, shape.key_bytes());
    // The journal's maps, with their outputs' paths when in the job directory.
    let maps_done: Vec<(MapTaskId, Option<PathBuf>)> = recovered
        .maps
        .iter()
        .map(|(&m, d)| {
            let path = d
                .holder
                .is_none()
                .then(|| job_dir.join(names::map_output(m, d.done.attempt)));
            (m, path)
        })
        .collect();
    let reduces_done: std::collections::HashSet<_> = recovered.reduces.keys().copied().collect();
    tokio::task::spawn_blocking(move || {
        let spec = AppSpec {
            app: &app,
            streaming: streaming.as_ref(),
            reduces,
            split_size,
            key_files: &key_files,
            record_size: (record_size > 0).then_some(record_size),
            params: &params,
        };
        let (jc, plan, app) = JobCache::plan(&dir, max, &files, &spec)
            .map_err(|e| CoordinatorError::Config(e.to_string()))?;
        let outputs = (!outputs_in_store).then_some(output_dir.as_path());
        let taken = jc.take(&job_dir, outputs, &maps_done, &|r| {
            reduces_done.contains(&r)
        });
        Ok(Prepared {
            cache: jc,
            content: ContentPlan { plan, app, taken },
        })
    })
    .await
    .map_err(|e| CoordinatorError::Internal {
        what: "planning with the cache",
        reason: e.to_string(),
    })?
}

/// The job's cache while the job runs: outputs being put into it, and the
/// figures of what was taken from it. The two locks are leaves: held for a
/// push or an addition, never while taking another (they are taken under
/// the scheduler's lock).
pub struct CacheUse {
    /// The cache.
    pub cache: Arc<JobCache>,
    /// Outputs being put into the cache, each on a blocking thread
    /// (awaited before the job directory goes).
    puts: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// What was taken from the cache so far.
    reused: Mutex<CacheInfo>,
}

impl CacheUse {
    /// The cache of a job that took `reused` from it at its start.
    pub fn new(cache: JobCache, reused: CacheInfo) -> CacheUse {
        CacheUse {
            cache: Arc::new(cache),
            puts: Mutex::new(Vec::new()),
            reused: Mutex::new(reused),
        }
    }

    /// Notes an output being put into the cache.
    pub fn putting(&self, put: tokio::task::JoinHandle<()>) {
        self.puts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(put);
    }

    /// Waits for every output being put so far.
    pub async fn puts_done(&self) {
        let puts = std::mem::take(&mut *self.puts.lock().unwrap_or_else(|e| e.into_inner()));
        for put in puts {
            let _ = put.await;
        }
    }

    /// What was taken from the cache so far.
    pub fn reused(&self) -> CacheInfo {
        self.reused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Adds to what was taken from the cache.
    pub fn count(&self, add: impl FnOnce(&mut CacheInfo)) {
        add(&mut self.reused.lock().unwrap_or_else(|e| e.into_inner()));
    }
}
