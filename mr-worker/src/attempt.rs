//! One attempt, start to end: make its inputs readable here (fetching
//! input ranges or map output partitions as the worker's placement needs),
//! run the map or reduce engine on a blocking thread, and upload a reduce
//! output when the worker does not share the output directory.

use crate::engine::map::{run_map, MapJob};
use crate::engine::reduce::{run_reduce, ReduceJob};
use crate::placement::Placement;
use mr_apps::AppRef;
use mr_protocol::{
    CoordinatorClient, Counters, JobSettings, MapWork, ReduceWork, TaskFailure, TaskOutput, Work,
};
use std::sync::Arc;

/// What an attempt needs from its worker.
pub(crate) struct AttemptContext<'a> {
    /// The app.
    pub(crate) app: AppRef,
    /// A map task's buffer budget.
    pub(crate) memory: usize,
    /// The job's token (presented to other workers when fetching).
    pub(crate) token: &'a str,
    /// The coordinator.
    pub(crate) client: &'a CoordinatorClient,
    /// The job.
    pub(crate) settings: Arc<JobSettings>,
    /// Where files go.
    pub(crate) placement: &'a Placement,
    /// The map outputs list reduces read (fetched once per version).
    pub(crate) outputs: &'a crate::outputs::OutputsCache,
    /// Set when the coordinator abandons the attempt.
    pub(crate) cancel: crate::engine::cancel::Cancel,
}

/// How an attempt ended, and what it leaves behind.
pub(crate) struct Ended {
    /// What is reported.
    pub(crate) outcome: Result<TaskOutput, TaskFailure>,
    /// What it made, to discard if the report is not accepted.
    pub(crate) produced: Produced,
    /// Scratch to remove in any case (fetched inputs).
    pub(crate) scratch: Vec<std::path::PathBuf>,
}

impl Ended {
    /// An attempt that failed before it made anything but `produced`.
    fn failed(f: TaskFailure, produced: Produced, scratch: Vec<std::path::PathBuf>) -> Ended {
        Ended {
            outcome: Err(f),
            produced,
            scratch,
        }
    }
}

/// Prepares, runs and (for a worker that does not share the output
/// directory) uploads one attempt.
pub(crate) async fn run(cx: &AttemptContext<'_>, task: Work) -> Ended {
    match task {
        Work::Map(m) => map(cx, m).await,
        Work::Reduce(r) => reduce(cx, r).await,
    }
}

/// A map attempt: its split's inputs made readable here (fetched if this
/// worker does not see them), the map run on a blocking thread, its output
/// served by this worker when it keeps its own.
async fn map(cx: &AttemptContext<'_>, work: MapWork) -> Ended {
    let MapWork {
        task,
        attempt,
        split,
        skip,
    } = work;
    let (app, memory, placement) = (cx.app.clone(), cx.memory, cx.placement);
    let settings = cx.settings.clone();
    let out = placement.map_output(&settings, task, attempt);
    let produced = match placement.shuffle_addr() {
        Some(_) => {
            // Served before the report, so a reducer sent here the
            // moment the output is accepted finds it.
            placement.store.serve(task, attempt, out.clone());
            Produced::Served(placement.store.clone(), task)
        }
        None => Produced::File(out.clone()),
    };
    let framing = crate::engine::split::Framing::of(&*app);
    let local = match placement
        .inputs(cx.client, &settings, &split.parts, attempt, framing)
        .await
    {
        Ok(l) => l,
        Err(f) => return Ended::failed(f, produced, Vec::new()),
    };
    let (parts, held, fetched, copies) = (local.parts, local.held, local.fetched, local.copies);
    let reduces = settings.reduces;
    let o = out.clone();
    let store_before = mr_store::bytes_read();
    let cancel = cx.cancel.clone();
    let outcome = blocking(&out, move || {
        let job = MapJob {
            map: task.0,
            reduces,
            parts: &parts,
            fetched: &held,
            out: &o,
            memory,
            skip: &skip,
            cancel,
        };
        run_map_task(&*app, &job)
    })
    .await
    .map(|mut o| {
        if let TaskOutput::Map(c) = &mut o {
            c.input_fetched_bytes = fetched;
            c.store_read_bytes = mr_store::bytes_read() - store_before;
        }
        o
    });
    Ended {
        outcome,
        produced,
        scratch: copies,
    }
}

/// A reduce attempt: the map outputs list read, its partitions gathered
/// (fetched from their holders if not in the shared job directory), the
/// reduce run on a blocking thread, and its output uploaded when this
/// worker does not share the output directory.
async fn reduce(cx: &AttemptContext<'_>, work: ReduceWork) -> Ended {
    let ReduceWork {
        task,
        attempt,
        outputs,
        skip,
        index,
        reuse,
    } = work;
    let (app, placement) = (cx.app.clone(), cx.placement);
    let settings = cx.settings.clone();
    let out = placement.reduce_output(&settings, task, attempt);
    // With outputs in an object store, the output streams there.
    let upload_to = settings
        .output_store
        .as_ref()
        .map(|prefix| mr_protocol::names::output_object(prefix, task));
    let produced = Produced::File(out.clone());
    let scratch = placement.store.dir().join(format!("fetch-{}", attempt.0));
    let maps = match cx.outputs.get(cx.client, settings.worker, outputs).await {
        Ok(m) => m,
        Err(e) => {
            let failure = TaskFailure::Io {
                path: format!("map outputs list v{}", outputs.version),
                reason: e.to_string(),
            };
            return Ended::failed(failure, produced, Vec::new());
        }
    };
    let gathered = placement
        .reduce_inputs(&settings, cx.token, task, &maps, &scratch)
        .await;
    let (inputs, bytes, took) = match gathered {
        Ok(g) => g,
        Err(f) => return Ended::failed(f, produced, vec![scratch]),
    };
    let reduces = settings.reduces;
    let o = out.clone();
    let to = upload_to.clone();
    let cancel = cx.cancel.clone();
    // An earlier output to copy from is in the shared job directory.
    let earlier = reuse
        .filter(|_| placement.shared)
        .map(|r| (settings.job_dir.join(&r.previous), r));
    let mut outcome = blocking(&out, move || {
        let job = ReduceJob {
            reduce: task.0,
            reduces,
            inputs,
            out: &o,
            upload_to: to.as_deref(),
            skip: &skip,
            cancel,
            index,
            reuse: earlier
                .as_ref()
                .map(|(p, r)| (p.as_path(), r.pieces.as_slice())),
        };
        run_reduce_task(&*app, &job)
    })
    .await;
    let produced = match &outcome {
        Ok(TaskOutput::Uploaded(_, u)) => Produced::Upload(u.clone()),
        _ => produced,
    };
    match &mut outcome {
        Ok(TaskOutput::Uploaded(c, u)) => {
            c.store_written_bytes = u.bytes;
            c.shuffle_bytes = bytes;
            c.shuffle_millis = took.as_millis() as u64;
        }
        Ok(TaskOutput::Reduce(c) | TaskOutput::Indexed(c, _)) => {
            c.shuffle_bytes = bytes;
            c.shuffle_millis = took.as_millis() as u64;
            if !placement.shared {
                match placement.upload(cx.client, &settings, attempt, &out).await {
                    Ok(n) => c.uploaded_bytes = n,
                    Err(f) => outcome = Err(f),
                }
                // The coordinator holds it now (or it failed): ours goes.
                let _ = std::fs::remove_file(&out);
            }
        }
        _ => {}
    }
    Ended {
        outcome,
        produced,
        scratch: vec![scratch],
    }
}

/// What an attempt left that must go if its report is not accepted.
pub(crate) enum Produced {
    /// A map output this worker serves.
    Served(
        Arc<crate::shuffle::local::LocalStore>,
        mr_protocol::MapTaskId,
    ),
    /// A file (map output in the job directory, reduce temp output).
    File(std::path::PathBuf),
    /// A reduce output's multipart upload to an object store, uncompleted.
    Upload(mr_protocol::OutputUpload),
    /// Not known: the attempt was left running when its worker stopped
    /// (what it writes goes with the worker's directory, or the job's).
    LeftBehind,
}

/// Runs CPU work on a blocking thread (rayon inside), never on the runtime.
async fn blocking(
    out: &std::path::Path,
    f: impl FnOnce() -> Result<TaskOutput, TaskFailure> + Send + 'static,
) -> Result<TaskOutput, TaskFailure> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(TaskFailure::Io {
            path: out.display().to_string(),
            reason: format!("worker thread failed: {e}"),
        })
    })
}

/// Runs one map task synchronously and counts what it did.
fn run_map_task(app: &dyn mr_apps::App, job: &MapJob<'_>) -> Result<TaskOutput, TaskFailure> {
    let stats = run_map(app, job)?;
    Ok(TaskOutput::Map(map_counters(app, stats)))
}

/// What a map task reports of what it did.
pub(crate) fn map_counters(
    app: &dyn mr_apps::App,
    stats: crate::engine::map::MapStats,
) -> Counters {
    let combines = app.has_combiner() || app.sums_counts();
    Counters {
        input_bytes: stats.input_bytes,
        input_records: stats.input_records,
        map_output_records: stats.emitted,
        combine_input_records: if combines { stats.emitted } else { 0 },
        combine_output_records: if combines { stats.records } else { 0 },
        map_output_bytes: stats.bytes,
        spilled_bytes: stats.spilled_bytes,
        skipped_records: stats.skipped,
        app: stats.app_counters,
        ..Counters::default()
    }
}

/// What a reduce task reports of what it did (an upload aside).
pub(crate) fn reduce_counters(stats: &crate::engine::reduce::ReduceStats) -> Counters {
    Counters {
        reduce_input_groups: stats.groups,
        reduce_input_records: stats.records,
        output_records: stats.keys,
        output_bytes: stats.bytes,
        skipped_records: stats.skipped,
        app: stats.app_counters.clone(),
        ..Counters::default()
    }
}

/// Runs one reduce task synchronously and counts what it did.
fn run_reduce_task(app: &dyn mr_apps::App, job: &ReduceJob<'_>) -> Result<TaskOutput, TaskFailure> {
    let stats = run_reduce(app, job)?;
    let counters = reduce_counters(&stats);
    Ok(match (stats.upload, stats.index) {
        (Some(u), _) => TaskOutput::Uploaded(counters, u),
        (None, Some(index)) => TaskOutput::Indexed(counters, index),
        (None, None) => TaskOutput::Reduce(counters),
    })
}
