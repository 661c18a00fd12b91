//! The job report: one JSON document saying what the job is (or was) doing,
//! served live by the status endpoint and written as `mr-report.json` beside
//! the outputs when the job ends, so a person can see why it was slow.

pub use crate::scheduler::Outcome;
use crate::scheduler::TaskRef;
use crate::scheduler::{AttemptRecord, AttemptTally, Scheduler};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// Name of the report file in the output directory.
pub const FILE_NAME: &str = "mr-report.json";

/// The whole report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// What the job is and how it stands.
    pub job: JobInfo,
    /// Task counts.
    pub progress: ProgressInfo,
    /// Counters of accepted attempts, by display name.
    pub counters: BTreeMap<String, u64>,
    /// Every worker that joined.
    pub workers: Vec<WorkerInfo>,
    /// Every attempt, in the order started.
    pub attempts: Vec<AttemptInfo>,
    /// What this coordinator's journal made durable (absent in reports
    /// written before it was kept).
    #[serde(default)]
    pub journal: Option<JournalInfo>,
    /// With `--cache`: what was taken from the cache instead of computed.
    #[serde(default)]
    pub cache: Option<CacheInfo>,
    /// What `mrworker --replay` needs to run one task again alone (in the
    /// report written when the job ends), written from the plan a split at
    /// a time; the worker reads it back as a `ReplayInfo`.
    #[serde(default, skip_deserializing)]
    pub replay: Option<mr_protocol::replay::ReplayPlan>,
    /// The job's parameters, records and partitioning.
    #[serde(default)]
    pub shape: ShapeInfo,
    /// The attempts in figures: started, abandoned, run times (kept as
    /// they happen, whatever the lists above hold).
    #[serde(default)]
    pub tally: AttemptTally,
    /// Which part of the workers and attempts the lists hold.
    #[serde(default)]
    pub listed: ListedInfo,
}

/// Where the report's lists of workers and attempts start, and how long
/// the whole lists are: the status page lists a page of each, the report
/// written at the job's end everything.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ListedInfo {
    /// Index (in the order started) of the first attempt listed.
    pub attempts_from: u64,
    /// Attempts this coordinator started in all.
    pub attempts_total: u64,
    /// Index (in the order joined) of the first worker listed.
    pub workers_from: usize,
    /// Workers that joined in all.
    pub workers_total: usize,
}

/// Which workers and attempts a report lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listing {
    /// None: only the figures (what the progress line and probes need,
    /// asked for several times a second).
    Figures,
    /// A page of each (the status page): nothing is O(job).
    Page(PageRequest),
    /// Every worker and attempt (the report written at the job's end).
    Everything,
}

/// One page of workers and attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// First attempt listed; None for the latest `attempts`.
    pub attempts_from: Option<u64>,
    /// Most attempts listed.
    pub attempts: usize,
    /// First worker listed.
    pub workers_from: usize,
    /// Most workers listed.
    pub workers: usize,
}

impl Default for PageRequest {
    /// The latest 100 attempts and the first 100 workers: what the status
    /// page shows, well under a mebibyte at any job size.
    fn default() -> Self {
        PageRequest {
            attempts_from: None,
            attempts: 100,
            workers_from: 0,
            workers: 100,
        }
    }
}

/// The most attempts or workers one page of `/status` may list.
pub const PAGE_LIMIT: usize = 10_000;

/// What the job decided about its parameters, records and partitions.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ShapeInfo {
    /// `--conf KEY=VALUE`, by key.
    pub conf: BTreeMap<String, String>,
    /// The size of fixed-length input records; 0 when records are lines.
    pub record_size: u32,
    /// Whether the outputs are in total order (partitioned by key ranges).
    pub total_order: bool,
    /// How many split points the key ranges have (R-1 at most).
    pub split_points: usize,
}

impl ShapeInfo {
    /// The report's view of `shape`.
    pub fn of(shape: &mr_protocol::JobShape) -> ShapeInfo {
        ShapeInfo {
            conf: shape.conf.iter().cloned().collect(),
            record_size: shape.record_size,
            total_order: shape.split_points.is_some(),
            split_points: shape.split_points.as_ref().map_or(0, Vec::len),
        }
    }
}

/// What a job with `--cache` reused.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CacheInfo {
    /// Map tasks not run.
    pub maps_reused: usize,
    /// Outputs committed from the cache.
    pub reduces_reused: usize,
    /// Input bytes not mapped again.
    pub input_bytes_reused: u64,
    /// Reduces that ran but copied pieces of an earlier output.
    #[serde(default)]
    pub reduces_partly_reused: usize,
    /// Output bytes those copied rather than reduced.
    #[serde(default)]
    pub output_bytes_copied: u64,
}

/// The journal's group commit since this coordinator started.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct JournalInfo {
    /// Records appended.
    pub records: u64,
    /// Writes made durable, one `fdatasync` each.
    pub commits: u64,
    /// Bytes appended.
    pub bytes: u64,
}

/// The job itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobInfo {
    /// The job's id.
    pub id: String,
    /// The app, once known.
    pub app: Option<String>,
    /// "waiting for workers", "map", "reduce", "succeeded", "failed" or "interrupted".
    pub state: String,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Number of input files.
    pub inputs: usize,
    /// Where the outputs go.
    pub output_dir: String,
    /// Seconds since the coordinator started.
    pub elapsed_s: f64,
    /// Map phase wall time so far (s).
    pub map_phase_s: f64,
    /// Reduce phase wall time so far (s).
    pub reduce_phase_s: f64,
}

/// Task counts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProgressInfo {
    /// Map tasks done.
    pub maps_done: usize,
    /// Map tasks in all (0 until the first worker joins).
    pub maps: usize,
    /// Outputs committed.
    pub reduces_done: usize,
    /// Reduce tasks in all.
    pub reduces: usize,
    /// Map attempts running now.
    pub maps_running: usize,
    /// Reduce attempts running now.
    pub reduces_running: usize,
    /// Attempts started.
    pub attempts: u64,
    /// Attempts that failed.
    pub failed_attempts: usize,
    /// Workers alive now.
    pub workers_alive: usize,
    /// Attempts that failed or went with their worker, by reason
    /// (`app_panic`, `io`, `worker_lost`, ...).
    #[serde(default)]
    pub failures: BTreeMap<String, u64>,
}

/// One worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// The coordinator's id for it.
    pub id: u64,
    /// `host:pid`.
    pub label: String,
    /// Still in the job.
    pub alive: bool,
    /// Attempts it was given.
    pub attempts: u64,
    /// Tasks whose accepted attempt it ran.
    pub tasks_done: u64,
    /// Input bytes those attempts mapped.
    pub input_bytes: u64,
    /// Bytes those attempts read from the object store.
    pub object_bytes_read: u64,
}

/// One attempt.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AttemptInfo {
    /// Its id.
    pub attempt: u64,
    /// Which phase its task is in.
    pub phase: PhaseName,
    /// The task number within its phase.
    pub task: u32,
    /// The worker's id.
    pub worker: u64,
    /// Seconds after the coordinator started that it was assigned.
    pub start_s: f64,
    /// When it stopped running (None while it runs).
    pub end_s: Option<f64>,
    /// How it ended, or that it runs.
    pub outcome: Outcome,
}

/// A task's phase, as the report names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhaseName {
    /// A map task.
    Map,
    /// A reduce task.
    Reduce,
}

impl PhaseName {
    /// "map" or "reduce".
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseName::Map => "map",
            PhaseName::Reduce => "reduce",
        }
    }
}

/// What the report is made from, besides the scheduler.
pub struct Context<'a> {
    /// The job's id.
    pub id: &'a str,
    /// When the coordinator started.
    pub started: Instant,
    /// Where outputs go.
    pub output_dir: &'a Path,
    /// The job's end state, once it has ended: ("succeeded" | "failed" |
    /// "interrupted", error message).
    pub ended: Option<(&'a str, Option<String>)>,
    /// Which workers and attempts to list.
    pub listing: Listing,
    /// What the journal has written so far.
    pub journal: crate::journal::JournalStats,
    /// With `--cache`: what was reused.
    pub reused: Option<CacheInfo>,
    /// The arguments naming the app as workers get them, and the job
    /// directory, for the replay section of the final report.
    pub replay: Option<(&'a [String], &'a Path)>,
    /// The job's parameters, records and partitions.
    pub shape: &'a mr_protocol::JobShape,
}

/// Builds the report from the scheduler's state, listing what
/// `cx.listing` asks for: the cost is that of the lists, never of the job.
pub fn snapshot(s: &Scheduler, cx: &Context<'_>) -> Report {
    let now = Instant::now();
    let secs = |t: Instant| t.saturating_duration_since(cx.started).as_secs_f64();
    let p = s.progress();
    let attempts_total = s.attempt_count();
    let workers_total = s.worker_count();
    // (first attempt, how many; first worker, how many)
    let ((attempts_from, attempts), (workers_from, workers)) = match cx.listing {
        Listing::Figures => ((attempts_total, 0), (workers_total, 0)),
        Listing::Everything => ((0, usize::MAX), (0, usize::MAX)),
        Listing::Page(q) => {
            let from = q
                .attempts_from
                .unwrap_or_else(|| attempts_total.saturating_sub(q.attempts as u64))
                .min(attempts_total);
            (
                (from, q.attempts),
                (q.workers_from.min(workers_total), q.workers),
            )
        }
    };
    let state = match cx.ended {
        Some((state, _)) => state.to_string(),
        None if p.maps == 0 => "waiting for workers".into(),
        None if p.maps_done < p.maps => "map".into(),
        None => "reduce".into(),
    };
    let phases = s.phase_times_at(now);
    Report {
        job: JobInfo {
            id: cx.id.to_string(),
            app: s.app().map(str::to_string),
            state,
            error: cx.ended.as_ref().and_then(|(_, e)| e.clone()),
            inputs: s.input_count(),
            output_dir: cx.output_dir.display().to_string(),
            elapsed_s: secs(now),
            map_phase_s: phases.map.as_secs_f64(),
            reduce_phase_s: phases.reduce.as_secs_f64(),
        },
        progress: ProgressInfo {
            maps_done: p.maps_done,
            maps: p.maps,
            reduces_done: p.reduces_done,
            reduces: p.reduces,
            maps_running: p.maps_running,
            reduces_running: p.reduces_running,
            attempts: p.attempts,
            failed_attempts: p.failed_attempts as usize,
            workers_alive: p.workers_alive,
            failures: s
                .failure_reasons()
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        },
        counters: s
            .counters()
            .rows()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        workers: s
            .worker_page(workers_from, workers)
            .into_iter()
            .map(|w| WorkerInfo {
                id: w.id.0,
                label: w.label,
                alive: w.alive,
                attempts: w.tally.given,
                tasks_done: w.tally.tasks_done,
                input_bytes: w.tally.input_bytes,
                object_bytes_read: w.tally.object_bytes_read,
            })
            .collect(),
        attempts: s
            .attempt_page(attempts_from, attempts)
            .iter()
            .map(|a| attempt_info(a, cx.started))
            .collect(),
        journal: Some(JournalInfo {
            records: cx.journal.records,
            commits: cx.journal.commits,
            bytes: cx.journal.bytes,
        }),
        cache: cx.reused.clone(),
        replay: cx
            .replay
            .filter(|_| cx.ended.is_some() && cx.listing == Listing::Everything)
            .map(|(args, job_dir)| s.replay_plan(args, job_dir, cx.shape)),
        shape: ShapeInfo::of(cx.shape),
        tally: s.attempt_tally().clone(),
        listed: ListedInfo {
            attempts_from,
            attempts_total,
            workers_from,
            workers_total,
        },
    }
}

/// The report's view of attempt `a` (times in seconds after `started`).
pub fn attempt_info(a: &AttemptRecord, started: Instant) -> AttemptInfo {
    let secs = |t: Instant| t.saturating_duration_since(started).as_secs_f64();
    let (phase, task) = match a.task {
        TaskRef::Map(m) => (PhaseName::Map, m.0),
        TaskRef::Reduce(r) => (PhaseName::Reduce, r.0),
    };
    AttemptInfo {
        attempt: a.attempt.0,
        phase,
        task,
        worker: a.worker.0,
        start_s: secs(a.started),
        end_s: a.ended.map(secs),
        outcome: a.outcome,
    }
}

/// Writes `report` as `mr-report.json` in `dir`, atomically (temp + rename),
/// streaming the JSON to the file: a million attempts' text is never held
/// in memory whole.
pub fn write(dir: &Path, report: &Report) -> std::io::Result<()> {
    crate::jobdir::write_replacing(&dir.join(FILE_NAME), |out| {
        serde_json::to_writer_pretty(out, report).map_err(std::io::Error::other)
    })
}
