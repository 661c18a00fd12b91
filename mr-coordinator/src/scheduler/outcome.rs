//! What the scheduler reports: which task, how a report was taken, why a
//! job failed, and progress counts. Plain data, shared by the server and tests.

use mr_protocol::{AttemptId, MapTaskId, ReduceTaskId, TaskFailure, WorkerId};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// A task of either phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskRef {
    /// A map task.
    Map(MapTaskId),
    /// A reduce task.
    Reduce(ReduceTaskId),
}

impl std::fmt::Display for TaskRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskRef::Map(m) => m.fmt(f),
            TaskRef::Reduce(r) => r.fmt(f),
        }
    }
}

/// What the scheduler makes of a report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// First good report: the task is done with this attempt's output.
    Accepted(TaskRef),
    /// A failure was recorded; the task will run again (or the job failed).
    FailureRecorded(TaskRef),
    /// Stale, duplicate or unknown: discard whatever the attempt produced.
    Ignored,
}

/// Why the job cannot finish.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JobFailure {
    /// A task failed `max_attempts` times.
    #[error("{task} failed {attempts} times; last failure: {last}")]
    TaskFailed {
        /// The task.
        task: TaskRef,
        /// How many attempts failed.
        attempts: u32,
        /// The last failure.
        last: TaskFailure,
    },
    /// A map task's output was lost more often than it could be rebuilt.
    #[error("the output of {0} was lost or corrupted {1} times; the job directory's storage is unreliable")]
    OutputLost(MapTaskId, u32),
}

/// Counts for progress reports and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Map tasks done / total.
    pub maps_done: usize,
    /// Total map tasks (0 until the first worker registers and the job is split).
    pub maps: usize,
    /// Reduce tasks done.
    pub reduces_done: usize,
    /// Total reduce tasks.
    pub reduces: usize,
    /// Attempts started so far.
    pub attempts: u64,
    /// Workers currently alive.
    pub workers_alive: usize,
    /// Map attempts running.
    pub maps_running: usize,
    /// Reduce attempts running.
    pub reduces_running: usize,
    /// Attempts that failed.
    pub failed_attempts: u64,
}

/// One attempt, as the job report and status page show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    /// Its id.
    pub attempt: AttemptId,
    /// The task it ran.
    pub task: TaskRef,
    /// The worker it ran on.
    pub worker: WorkerId,
    /// When it was assigned.
    pub started: Instant,
    /// When it stopped running, if it has.
    pub ended: Option<Instant>,
    /// Where it stands.
    pub outcome: Outcome,
}

/// Where an attempt stands, as the report names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Still running.
    Running,
    /// Its output was accepted.
    Succeeded,
    /// It failed.
    Failed,
    /// Its worker was lost, or another attempt won.
    Abandoned,
}

impl Outcome {
    /// The name the report uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Abandoned => "abandoned",
        }
    }
}
