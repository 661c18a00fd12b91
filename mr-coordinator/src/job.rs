//! What a job is given (its configuration) and what it ends with: its
//! summary, or the typed reason it could not run or finish.

use crate::journal::JournalError;
use crate::plan::PlanError;
use crate::scheduler::JobFailure;
use std::path::PathBuf;
use std::time::Duration;

/// Everything a job needs, as parsed from the command line.
#[derive(Clone, Debug)]
pub struct JobConfig {
    /// Input paths or glob patterns.
    pub inputs: Vec<String>,
    /// R, the number of reduce tasks.
    pub reduces: u32,
    /// Address to listen on (`host:port`; port 0 picks one).
    pub listen: String,
    /// How long a worker may stay silent before its tasks are reissued.
    pub task_timeout: Duration,
    /// Maximum split size in bytes.
    pub split_size: u64,
    /// The app workers must run, if fixed.
    pub app: Option<String>,
    /// Local worker processes to start (embedded mode); 0 for none.
    pub workers: u32,
    /// Where `mr-out-*` go.
    pub output_dir: PathBuf,
    /// Where the job directory of intermediate files goes (default: output dir).
    pub work_dir: Option<PathBuf>,
    /// Failed attempts per task before the job fails.
    pub max_attempts: u32,
    /// Skip records that make app code panic (counted and reported).
    pub skip_bad_records: bool,
    /// The job's token (`--token`/`MR_TOKEN`); None to generate one.
    pub token: Option<String>,
    /// Accept workers without a token (`--no-token`).
    pub no_token: bool,
    /// Discard an unfinished job's journal instead of resuming it.
    pub fresh: bool,
}

/// Why a job could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// The inputs are unusable.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The job directory holds a journal that cannot be resumed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A flag has an unusable value.
    #[error("{0}")]
    Config(String),
    /// The output or work directory is unusable.
    #[error("directory '{path}': {reason}")]
    Directory {
        /// The directory.
        path: String,
        /// Why.
        reason: String,
    },
    /// The listen address could not be bound.
    #[error(
        "cannot listen on {addr}: {reason}; choose another address with --listen or MR_COORDINATOR"
    )]
    Bind {
        /// The address.
        addr: String,
        /// The OS error.
        reason: String,
    },
    /// A task failed for good.
    #[error("job failed: {0}")]
    Job(#[from] JobFailure),
    /// Embedded workers could not run.
    #[error("{0}")]
    Workers(String),
    /// Interrupted by a signal.
    #[error("interrupted by {0}; no output was committed after it")]
    Interrupted(&'static str),
    /// Another job is writing the same output directory.
    #[error("another mrcoordinator is already running a job with output directory '{0}'; wait for it or choose another --output-dir")]
    Busy(String),
}

/// What a finished job reports.
#[derive(Clone, Debug)]
pub struct JobSummary {
    /// Map tasks run.
    pub maps: usize,
    /// Reduce tasks run (= output files).
    pub reduces: usize,
    /// Attempts started (more than maps + reduces when tasks were retried).
    pub attempts: u64,
    /// Wall time from listening to the last commit.
    pub elapsed: Duration,
    /// Where the outputs are.
    pub output_dir: PathBuf,
    /// Bytes of input the accepted map attempts read.
    pub input_bytes: u64,
    /// Bytes of intermediate run files the accepted map attempts wrote.
    pub intermediate_bytes: u64,
    /// Bytes of committed output.
    pub output_bytes: u64,
    /// Bad records skipped (`--skip-bad-records`).
    pub skipped_records: u64,
    /// Map and reduce tasks found done in the journal of an earlier run.
    pub resumed: (usize, usize),
}
