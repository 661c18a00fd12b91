//! The scheduler's records: one per task, attempt and worker. Plain data;
//! the decisions about them are in [`super`].

use super::TaskRef;
use mr_protocol::{AttemptId, BadRecord, Counters, TaskFailure, WorkerId, WorkerPlace};
use std::time::{Duration, Instant};

/// One map or reduce task.
#[derive(Clone, Debug, Default)]
pub(crate) struct Task {
    /// The accepted attempt, once the task is done.
    pub(crate) done: Option<AttemptId>,
    /// A reduce attempt whose output the server is publishing (completing
    /// its upload to an object store): until it says how that went, no
    /// other attempt of the task may win and the task is not reissued.
    pub(crate) committing: Option<AttemptId>,
    /// Attempts currently running (more than one only for backups).
    pub(crate) running: Vec<AttemptId>,
    /// Failed attempts that count against `max_attempts`.
    pub(crate) failures: u32,
    /// Times the accepted output was later found lost or corrupt.
    pub(crate) lost: u32,
    /// The last failure, for the job's error message.
    pub(crate) last_failure: Option<TaskFailure>,
    /// Records later attempts skip (`--skip-bad-records`).
    pub(crate) skip: Vec<BadRecord>,
    /// The accepted attempt's counters.
    pub(crate) counters: Option<Counters>,
    /// For a done map: the shuffle address of the worker that made it.
    pub(crate) held_at: Option<String>,
    /// For a done map: whether its output is in the shared job directory
    /// (else only on the disk of the worker at `held_at`).
    pub(crate) in_job_dir: bool,
}

/// Most bad records one task may skip before the job fails anyway: past
/// this, the input or the app is broken, not a few records.
pub const MAX_SKIPPED_PER_TASK: usize = 100;

/// Where an attempt stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AttemptState {
    Running,
    Succeeded,
    Failed,
    /// Its worker was lost or another attempt won; a late success is still
    /// usable if the task is not yet done.
    Abandoned,
}

/// One execution of a task on a worker.
#[derive(Clone, Debug)]
pub(crate) struct Attempt {
    pub(crate) task: TaskRef,
    pub(crate) worker: WorkerId,
    pub(crate) started: Instant,
    /// When it stopped running (succeeded, failed, or was abandoned).
    pub(crate) ended: Option<Instant>,
    pub(crate) state: AttemptState,
}

/// A registered worker.
#[derive(Clone, Debug)]
pub(crate) struct Worker {
    pub(crate) last_seen: Instant,
    pub(crate) alive: bool,
    pub(crate) told_exit: bool,
    /// What it announced; None until then (treated as a worker that sees
    /// the job directory and every input).
    pub(crate) place: Option<WorkerPlace>,
}

/// The median of `durations`, if any.
pub(crate) fn median(durations: &[Duration]) -> Option<Duration> {
    if durations.is_empty() {
        return None;
    }
    let mut d = durations.to_vec();
    d.sort_unstable();
    Some(d[d.len() / 2])
}
