//! What a job is given (its configuration) and what it ends with: its
//! summary, or the typed reason it could not run or finish.

use crate::journal::JournalError;
use crate::scheduler::JobFailure;
use mr_protocol::plan::PlanError;
use mr_protocol::Counters;
use std::path::PathBuf;
use std::time::Duration;

/// Everything a job needs, as parsed from the command line.
#[derive(Clone, Debug)]
pub struct JobConfig {
    /// Input paths or glob patterns.
    pub inputs: Vec<String>,
    /// R, the number of reduce tasks.
    pub reduces: u32,
    /// Address to listen on (`host:port`; port 0 picks one); None when not
    /// given: 127.0.0.1:7878, or a free loopback port for a job whose
    /// workers are all embedded and reach it over its socket.
    pub listen: Option<String>,
    /// Whether and where to serve the Unix domain socket.
    pub socket: SocketChoice,
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
    /// `--cache`: the directory of results earlier runs left for reuse.
    pub cache: Option<PathBuf>,
    /// `--cache-max`: evict the cache down to this many bytes after the job.
    pub cache_max: Option<u64>,
    /// `--cache-key-file`: files whose contents every cache key includes.
    pub cache_key_files: Vec<PathBuf>,
    /// Failed attempts per task before the job fails.
    pub max_attempts: u32,
    /// Skip records that make app code panic (counted and reported).
    pub skip_bad_records: bool,
    /// The job's token (`--token`/`MR_TOKEN`); None to generate one.
    pub token: Option<String>,
    /// Accept workers without a token (`--no-token`).
    pub no_token: bool,
    /// Speak plain TCP instead of TLS (`--no-tls`).
    pub no_tls: bool,
    /// Discard an unfinished job's journal instead of resuming it.
    pub fresh: bool,
    /// Where to serve the status page and JSON (`--status-addr`), if anywhere.
    pub status_addr: Option<String>,
    /// Show progress on stderr while the job runs.
    pub progress: bool,
    /// A streaming app's (map command, reduce command), if the job is one.
    pub streaming: Option<(String, String)>,
    /// The job's parameters (`--conf KEY=VALUE`), as given.
    pub conf: Vec<(String, String)>,
    /// `--record-size`: inputs are records of this many bytes, not lines.
    pub record_size: Option<u32>,
    /// `--total-order`: partition by sampled key ranges, so the outputs
    /// concatenated in number order are sorted.
    pub total_order: bool,
    /// Launch backup attempts of stragglers near the end of each phase
    /// (`--no-backups` turns them off, to measure what they are worth).
    pub backups: bool,
    /// How long a task's only attempt must have run before it may get a
    /// backup (besides twice the phase's median); None: the task timeout.
    pub backup_after: Option<Duration>,
    /// `--tls-cert` and `--tls-key`: the certificate (and its key) to
    /// serve, provisioned by an operator; None: one made for the job.
    pub tls_files: Option<(mr_protocol::wire::Pem, mr_protocol::wire::Pem)>,
}

/// Whether the coordinator also serves its Unix domain socket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SocketChoice {
    /// The lab's path (`/var/tmp/5840-mr-<uid>`), unless `--listen` was
    /// given (then TCP only). When a live coordinator already serves that
    /// path, a job of embedded workers goes without a socket; any other job
    /// is refused, since workers looking for the socket would join the
    /// other job.
    #[default]
    Default,
    /// This path (`--socket`); refused if a live coordinator serves it.
    Path(std::path::PathBuf),
    /// No socket (`--no-socket`).
    Off,
}

impl JobConfig {
    /// The app name workers must report: `--app`, unless it names a plugin
    /// file (its name is only known once loaded), when the first worker's
    /// app fixes it.
    pub fn required_app(&self) -> Option<String> {
        self.app
            .clone()
            .filter(|a| !(a.contains('/') || a.ends_with(".so")))
    }

    /// The arguments that tell `mrworker` this job's app.
    pub fn worker_app_args(&self) -> Vec<String> {
        match (&self.streaming, &self.app) {
            (Some((m, r)), _) => vec![
                "--map-cmd".into(),
                m.clone(),
                "--reduce-cmd".into(),
                r.clone(),
            ],
            (None, Some(app)) => vec![app.clone()],
            (None, None) => Vec::new(),
        }
    }

    /// The arguments naming the job's app as a worker gets them, with a
    /// plugin's path made absolute (a replay may run from another
    /// directory): what the report records for `mrworker --replay`.
    pub fn replay_app_args(&self) -> Vec<String> {
        let mut args = self.worker_app_args();
        if self.streaming.is_none() {
            for a in &mut args {
                if a.contains('/') || a.ends_with(".so") {
                    if let Ok(p) = std::fs::canonicalize(&*a) {
                        *a = p.display().to_string();
                    }
                }
            }
        }
        args
    }
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
    /// The app cannot run the job as given: a parameter it needs is
    /// missing, a record size is at odds with the app's, an input is not
    /// whole records. The command must change (exit status 2).
    #[error("{0}")]
    Refused(String),
    /// The object store holding the outputs failed or refused.
    #[error(transparent)]
    Store(#[from] mr_store::StoreError),
    /// Another job holds the output prefix (see `server/claim.rs`).
    #[error("the output prefix {prefix} is in use by another job ({holder}); wait for it to end, or choose another --output-dir (if no job uses it, delete {prefix}_mr-lock)")]
    PrefixInUse {
        /// The prefix.
        prefix: String,
        /// Who holds it.
        holder: String,
    },
    /// The job's claim on its output prefix was taken or lapsed: it stopped
    /// and left the prefix to the job that holds it now.
    #[error("lost the output prefix {0} to another job (or could not renew its claim): stopped without touching it again")]
    PrefixLost(String),
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
    /// The status page cannot be served.
    #[error(transparent)]
    Status(#[from] crate::observe::status::StatusError),
    /// The job token could not be generated.
    #[error(
        "cannot generate a job token from the system's random source: {0}; give one with --token"
    )]
    Token(std::io::Error),
    /// The job's TLS certificate cannot be made or read.
    #[error("{0}")]
    Tls(#[from] mr_protocol::wire::IdentityError),
    /// A thread of the coordinator's own failed (a bug: please report it).
    #[error("the coordinator's {what} failed: {reason}")]
    Internal {
        /// What was running.
        what: &'static str,
        /// The panic or join error.
        reason: String,
    },
    /// The Unix domain socket cannot be served.
    #[error(transparent)]
    Socket(#[from] crate::server::socket::SocketError),
    /// The job stopped (a signal, a task failed for good, a last write
    /// failed) and kept its journal and accepted outputs to resume from.
    #[error("{cause}; its progress is kept in '{job_dir}': run the same command again to resume it, or add --fresh to start over")]
    Stopped {
        /// Why it stopped.
        cause: Box<CoordinatorError>,
        /// The job directory kept.
        job_dir: String,
    },
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
    /// The job's counters (sums over accepted attempts, earlier runs' included).
    pub counters: Counters,
    /// Wall time of the map phase (first map assigned to last map done).
    pub map_phase: Duration,
    /// Wall time of the reduce phase (last map done to last output committed).
    pub reduce_phase: Duration,
    /// Map and reduce tasks found done in the journal of an earlier run.
    pub resumed: (usize, usize),
    /// What was taken from the cache (all zero without one).
    pub reused: crate::observe::report::CacheInfo,
}

/// `1234567` as `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl JobSummary {
    /// The end-of-job report for a terminal: one headline, the phases'
    /// wall times and every counter, aligned.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = format!(
            "job complete in {:.2} s: {} map tasks, {} outputs in {} ({} attempts)\n",
            self.elapsed.as_secs_f64(),
            self.maps,
            self.reduces,
            self.output_dir.display(),
            self.attempts,
        );
        if self.resumed != (0, 0) {
            let _ = writeln!(
                s,
                "resumed from the journal of an earlier run: {} map tasks and {} outputs were already done",
                self.resumed.0, self.resumed.1
            );
        }
        let r = &self.reused;
        if r.maps_reused + r.reduces_reused + r.reduces_partly_reused > 0 {
            let _ = write!(
                s,
                "reused from the cache: {} map tasks ({} input bytes not mapped again) and {} outputs",
                r.maps_reused,
                grouped(r.input_bytes_reused),
                r.reduces_reused
            );
            if r.reduces_partly_reused > 0 {
                let _ = write!(
                    s,
                    "; {} more outputs copied {} bytes from earlier ones",
                    r.reduces_partly_reused,
                    grouped(r.output_bytes_copied)
                );
            }
            s.push('\n');
        }
        if self.counters.skipped_records > 0 {
            let _ = writeln!(
                s,
                "skipped {} bad records (--skip-bad-records); the warnings above say which",
                self.counters.skipped_records
            );
        }
        let _ = writeln!(
            s,
            "  {:<24}{:>16}",
            "map phase",
            format!("{:.2} s", self.map_phase.as_secs_f64())
        );
        let _ = writeln!(
            s,
            "  {:<24}{:>16}",
            "reduce phase",
            format!("{:.2} s", self.reduce_phase.as_secs_f64())
        );
        for (name, value) in self.counters.rows() {
            let _ = writeln!(s, "  {name:<24}{:>16}", grouped(value));
        }
        s
    }
}
