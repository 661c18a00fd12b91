//! The coordinator's runtime: binds the RPC port, serves the protocol around
//! the scheduler, watches for lost workers, commits outputs, and cleans up.
//!
//! The scheduler lives behind a `std::sync::Mutex` that is never held across
//! an `.await`; the only I/O done under it is the rename that commits a
//! reduce output, so that "is this the first good report?" and "commit it"
//! happen as one step and no task is ever committed twice.

use crate::embedded::EmbeddedWorkers;
pub use crate::job::{CoordinatorError, JobConfig, JobSummary};
use crate::jobdir::{
    dir_error, identity, job_id, job_token, lock_output_dir, reconcile, usable_dir,
    warn_stale_outputs, JOB_DIR,
};
use crate::journal::{Journal, Record};
use crate::plan::expand_inputs;
use crate::protocol::{
    names, Assignment, AttemptId, Coordinator, HeartbeatReply, JobSettings, ProtocolError,
    RegisterError, RegisterRequest, ReportAck, TaskFailure, TaskOutput, WorkerId,
};
use crate::scheduler::{Scheduler, SchedulerConfig, TaskRef, Verdict};
use futures::StreamExt;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tarpc::context::Context;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;
use tokio::sync::Notify;
use tracing::{info, warn};

/// Byte counters of accepted attempts, for the job summary.
#[derive(Default)]
struct Totals {
    input: AtomicU64,
    intermediate: AtomicU64,
    output: AtomicU64,
    skipped: AtomicU64,
}

/// Resolves once a journal record is on disk.
type Durable = std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send>>;

/// State shared by every connection handler and the supervising loop.
struct Shared {
    sched: Mutex<Scheduler>,
    job_id: String,
    reduces: u32,
    job_dir: PathBuf,
    output_dir: PathBuf,
    heartbeat: Duration,
    /// Which worker registered on which connection, to notice crashes at once.
    conns: Mutex<HashMap<u64, WorkerId>>,
    next_conn: AtomicU64,
    /// Poked whenever the job's state may have changed.
    changed: Notify,
    totals: Totals,
    /// Durable record of committed progress.
    journal: Journal,
    /// The token workers must present; None with `--no-token`.
    token: Option<String>,
    /// Where a refused worker can find the token (for its error message).
    token_hint: String,
}

impl Shared {
    fn sched(&self) -> MutexGuard<'_, Scheduler> {
        // A panic while holding the lock is a bug; the state is still the
        // best we have, so keep going rather than poisoning every handler.
        self.sched.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection ended: its worker (if any) is gone, since a live worker
    /// keeps its one connection open for the life of the process.
    fn connection_closed(&self, conn: u64) {
        let worker = self
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&conn);
        if let Some(w) = worker {
            let reissued = self.sched().worker_lost(w);
            if !reissued.is_empty() {
                warn!(worker = %w, tasks = ?reissued, "worker disconnected; reissuing its tasks");
            } else {
                info!(worker = %w, "worker disconnected");
            }
            self.changed.notify_one();
        }
    }

    /// The worker registered on connection `conn`, if any.
    fn worker_on(&self, conn: u64) -> Option<WorkerId> {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&conn)
            .copied()
    }

    /// Takes a report under the scheduler lock: commits a reduce output,
    /// updates counters and queues the journal record. Returns the verdict,
    /// the record's durability (to await without the lock) and progress.
    fn decide(
        &self,
        worker: WorkerId,
        attempt: AttemptId,
        outcome: Result<TaskOutput, TaskFailure>,
    ) -> (Verdict, Option<Durable>, crate::outcome::Progress) {
        let now = Instant::now();
        let mut s = self.sched();
        s.touch(worker, now);
        if s.owner_of(attempt) != Some(worker) {
            return (Verdict::Ignored, None, s.progress());
        }
        let counted = match &outcome {
            Ok(TaskOutput::Map {
                input_bytes,
                bytes,
                skipped,
                ..
            }) => Some([
                (&self.totals.input, *input_bytes),
                (&self.totals.intermediate, *bytes),
                (&self.totals.skipped, *skipped),
            ]),
            Ok(TaskOutput::Reduce { bytes, skipped, .. }) => Some([
                (&self.totals.output, *bytes),
                (&self.totals.skipped, *skipped),
                (&self.totals.output, 0),
            ]),
            Err(_) => None,
        };
        let verdict = match outcome {
            Ok(TaskOutput::Map { .. }) => s.succeeded(attempt, now),
            Ok(TaskOutput::Reduce { .. }) => match s.would_accept(attempt) {
                Some(TaskRef::Reduce(r)) => match self.commit_output(r, attempt) {
                    Ok(()) => s.succeeded(attempt, now),
                    Err(f) => {
                        warn!(%attempt, "{f}");
                        s.failed(attempt, f)
                    }
                },
                _ => Verdict::Ignored,
            },
            Err(failure) => {
                let task = s.task_of(attempt);
                let lost = match &failure {
                    TaskFailure::MapOutputLost { map, .. } if s.map_done(*map) => Some(*map),
                    _ => None,
                };
                let v = s.failed(attempt, failure.clone());
                if v != Verdict::Ignored {
                    warn!(%worker, %attempt, task = ?task, "attempt failed: {failure}");
                }
                if let Some(m) = lost.filter(|&m| !s.map_done(m)) {
                    self.journal.append_later(Record::MapLost(m));
                }
                v
            }
        };
        // Queued under the lock (journal order = state order), awaited after.
        let durable = match verdict {
            Verdict::Accepted(TaskRef::Map(m)) => {
                Some(Box::pin(self.journal.submit(Record::MapDone(m, attempt))) as Durable)
            }
            Verdict::Accepted(TaskRef::Reduce(r)) => {
                Some(Box::pin(self.journal.submit(Record::ReduceDone(r, attempt))) as Durable)
            }
            _ => None,
        };
        if let (Verdict::Accepted(_), Some(counters)) = (&verdict, counted) {
            for (c, x) in counters {
                c.fetch_add(x, Ordering::Relaxed);
            }
        }
        (verdict, durable, s.progress())
    }

    /// Commits reduce attempt `attempt` of task `r`: its temp file becomes `mr-out-r`.
    fn commit_output(
        &self,
        r: crate::protocol::ReduceTaskId,
        attempt: AttemptId,
    ) -> Result<(), TaskFailure> {
        let tmp = self.output_dir.join(names::reduce_temp(r, attempt));
        let out = self.output_dir.join(names::output(r));
        std::fs::rename(&tmp, &out).map_err(|e| TaskFailure::Io {
            path: tmp.display().to_string(),
            reason: format!("cannot commit as {}: {e}", out.display()),
        })
    }
}

/// One connection's view of the service.
#[derive(Clone)]
struct Handler {
    shared: Arc<Shared>,
    conn: u64,
}

impl Coordinator for Handler {
    async fn register(
        self,
        _: Context,
        req: RegisterRequest,
    ) -> Result<JobSettings, RegisterError> {
        if let Some(expected) = &self.shared.token {
            if !crate::token::matches(&req.token, expected) {
                warn!(host = %req.host, pid = req.pid, "refused a worker that did not present the job's token");
                return Err(RegisterError::BadToken {
                    hint: self.shared.token_hint.clone(),
                });
            }
        }
        let worker = {
            let mut s = self.shared.sched();
            let planned = s.planned_app().is_some();
            let worker = s.register(Instant::now(), &req.app, req.whole_file);
            if !planned {
                if let Some((app, whole_file)) = s.planned_app() {
                    // Sent under the lock so the journal's order is the state's.
                    self.shared
                        .journal
                        .append_later(Record::AppFixed { app, whole_file });
                }
            }
            worker
        };
        let worker = match worker {
            Ok(w) => w,
            Err(e) => {
                warn!(host = %req.host, pid = req.pid, "refused worker: {e}");
                return Err(e);
            }
        };
        let previous = self
            .shared
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(self.conn, worker);
        if let Some(old) = previous {
            // The same connection registering again: its old identity is gone.
            self.shared.sched().worker_lost(old);
        }
        info!(%worker, host = %req.host, pid = req.pid, app = %req.app, "worker joined");
        self.shared.changed.notify_one();
        Ok(JobSettings {
            worker,
            job_id: self.shared.job_id.clone(),
            reduces: self.shared.reduces,
            job_dir: self.shared.job_dir.clone(),
            output_dir: self.shared.output_dir.clone(),
            heartbeat_ms: self.shared.heartbeat.as_millis() as u64,
        })
    }

    async fn request_task(self, _: Context, worker: WorkerId) -> Result<Assignment, ProtocolError> {
        // A worker id is only good on the connection that registered it.
        if self.shared.worker_on(self.conn) != Some(worker) {
            return Err(ProtocolError::UnknownWorker(worker));
        }
        let now = Instant::now();
        let mut s = self.shared.sched();
        if !s.touch(worker, now) {
            return Err(ProtocolError::UnknownWorker(worker));
        }
        Ok(s.assign(worker, now))
    }

    async fn report(
        self,
        _: Context,
        worker: WorkerId,
        attempt: AttemptId,
        outcome: Result<TaskOutput, TaskFailure>,
    ) -> Result<ReportAck, ProtocolError> {
        if self.shared.worker_on(self.conn) != Some(worker) {
            return Err(ProtocolError::UnknownWorker(worker));
        }
        let (verdict, durable, progress) = self.shared.decide(worker, attempt, outcome);
        if let Some(d) = durable {
            // A failed append is logged by the journal; the job goes on.
            let _ = d.await;
        }
        if let Verdict::Accepted(task) = verdict {
            info!(%task, %attempt, maps_done = progress.maps_done, reduces_done = progress.reduces_done, "task done");
        }
        self.shared.changed.notify_one();
        Ok(match verdict {
            Verdict::Ignored => ReportAck::Ignored,
            _ => ReportAck::Accepted,
        })
    }

    async fn heartbeat(
        self,
        _: Context,
        worker: WorkerId,
        running: Vec<AttemptId>,
    ) -> Result<HeartbeatReply, ProtocolError> {
        if self.shared.worker_on(self.conn) != Some(worker) {
            return Err(ProtocolError::UnknownWorker(worker));
        }
        let mut s = self.shared.sched();
        if !s.touch(worker, Instant::now()) {
            return Err(ProtocolError::UnknownWorker(worker));
        }
        Ok(HeartbeatReply {
            cancel: s.cancellable(worker, &running),
        })
    }
}

/// Removes a job directory this start created (incarnation 0) when the
/// start fails after all: an unresumable empty journal must not stay behind.
fn abandon_fresh(job_dir: &std::path::Path, incarnation: u32) {
    if incarnation == 0 {
        let _ = std::fs::remove_dir_all(job_dir);
    }
}

/// A job whose coordinator is listening; [`RunningJob::wait`] drives it to the end.
pub struct RunningJob {
    shared: Arc<Shared>,
    addr: SocketAddr,
    started: Instant,
    embedded: EmbeddedWorkers,
    task_timeout: Duration,
    /// Held for the life of the job (see [`lock_output_dir`]): the output
    /// directory's, and the work directory's when it is another.
    _locks: Vec<std::fs::File>,
    /// The published token file, removed at the end.
    token_file: Option<PathBuf>,
    /// Tasks found done in an earlier run's journal.
    resumed: (usize, usize),
}

impl RunningJob {
    /// Validates the job, prepares its directories, binds the port and starts
    /// serving (and any embedded workers). Returns once workers can connect.
    pub async fn start(cfg: JobConfig) -> Result<RunningJob, CoordinatorError> {
        if cfg.reduces == 0 {
            return Err(CoordinatorError::Config(
                "--reduces must be at least 1".into(),
            ));
        }
        if cfg.max_attempts == 0 {
            return Err(CoordinatorError::Config(
                "--max-attempts must be at least 1".into(),
            ));
        }
        if cfg.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(CoordinatorError::Config(
                "--token (or MR_TOKEN) is empty; give a non-empty secret, or leave it unset to have one generated".into(),
            ));
        }
        if cfg.workers > 0 && cfg.app.is_none() {
            return Err(CoordinatorError::Config(
                "--workers starts local workers, which need to know the app: add --app NAME".into(),
            ));
        }
        let files = expand_inputs(&cfg.inputs)?;
        let output_dir = usable_dir(&cfg.output_dir, "output directory")?;
        let mut locks = vec![lock_output_dir(&output_dir)?];
        warn_stale_outputs(&output_dir, cfg.reduces);
        let work_dir = match &cfg.work_dir {
            Some(w) => usable_dir(w, "work directory")?,
            None => output_dir.clone(),
        };
        if work_dir != output_dir {
            locks.push(lock_output_dir(&work_dir)?);
        }
        // Bound before the job directory exists, so a busy port leaves nothing behind.
        let mut listener = tarpc::serde_transport::tcp::listen(&cfg.listen, Bincode::default)
            .await
            .map_err(|e| CoordinatorError::Bind {
                addr: cfg.listen.clone(),
                reason: e.to_string(),
            })?;
        listener.config_mut().max_frame_length(crate::MAX_FRAME);
        let id = job_id(&files, &cfg);
        let job_dir = work_dir.join(JOB_DIR);
        if cfg.fresh && job_dir.exists() {
            warn!(dir = %job_dir.display(), "--fresh: discarding an unfinished job's journal and files");
            std::fs::remove_dir_all(&job_dir).map_err(|e| dir_error(&job_dir, e.to_string()))?;
        }
        std::fs::create_dir_all(&job_dir)
            .map_err(|e| dir_error(&job_dir, format!("cannot create job directory: {e}")))?;
        // A journal left by a coordinator that died is this job's progress
        // (or, if another job's, a refusal): replay it on a blocking thread.
        let ident = identity(&files, &cfg, &output_dir)?;
        let (jd, od) = (job_dir.clone(), output_dir.clone());
        let (journal, recovered) = tokio::task::spawn_blocking(move || {
            let (journal, mut recovered) = crate::journal::open(&jd, &ident)?;
            reconcile(&jd, &od, &mut recovered);
            Ok::<_, CoordinatorError>((journal, recovered))
        })
        .await
        .map_err(|e| CoordinatorError::Config(format!("journal replay failed: {e}")))??;
        let resumed = (recovered.maps.len(), recovered.reduces.len());
        if recovered.incarnation > 0 {
            info!(
                maps = resumed.0,
                outputs = resumed.1,
                "resuming an unfinished run of this job from its journal"
            );
        }
        let token = match cfg.no_token {
            true => None,
            false => match job_token(&job_dir, cfg.token.as_deref()) {
                Ok(t) => Some(t),
                Err(e) => {
                    abandon_fresh(&job_dir, recovered.incarnation);
                    return Err(e);
                }
            },
        };

        let addr = listener.local_addr();
        let mut token_file = None;
        let mut token_hint = String::new();
        match &token {
            None if !addr.ip().is_loopback() => warn!(%addr, "LISTENING ON A NON-LOOPBACK ADDRESS WITH --no-token: any host that can reach it may join the job and make it read and write files in its directories"),
            None => {}
            Some(t) => match crate::token::publish(addr.port(), t) {
                Ok(f) => {
                    token_hint = format!(" (on this job's coordinator host it is in {})", f.display());
                    if !addr.ip().is_loopback() {
                        info!(%addr, file = %f.display(), "workers on other hosts need the job's token: pass it with --token or MR_TOKEN");
                    }
                    token_file = Some(f);
                }
                Err(e) => warn!("cannot publish the job token for local workers: {e}; start workers with --token or MR_TOKEN"),
            },
        }

        let sched = Scheduler::new(
            SchedulerConfig {
                reduces: cfg.reduces,
                split_size: cfg.split_size,
                task_timeout: cfg.task_timeout,
                max_attempts: cfg.max_attempts,
                app: cfg.app.clone(),
                wait: Duration::from_millis(50),
                skip_bad_records: cfg.skip_bad_records,
            },
            files,
        );
        let mut sched = sched;
        sched.restore(&recovered);
        let heartbeat =
            (cfg.task_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
        let shared = Arc::new(Shared {
            sched: Mutex::new(sched),
            job_id: id,
            reduces: cfg.reduces,
            job_dir,
            output_dir,
            heartbeat,
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
            changed: Notify::new(),
            totals: Totals::default(),
            journal,
            token: token.clone(),
            token_hint,
        });

        let accept_shared = shared.clone();
        tokio::spawn(async move {
            listener
                // A failed accept (e.g. out of descriptors) drops that one connection.
                .filter_map(|r| std::future::ready(r.ok()))
                .for_each(|transport| {
                    let shared = accept_shared.clone();
                    let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
                    let handler = Handler {
                        shared: shared.clone(),
                        conn,
                    };
                    tokio::spawn(async move {
                        // Garbage or a half-open client only ends this channel.
                        BaseChannel::with_defaults(transport)
                            .execute(handler.serve())
                            .for_each(|call| async {
                                tokio::spawn(call);
                            })
                            .await;
                        shared.connection_closed(conn);
                    });
                    std::future::ready(())
                })
                .await;
        });

        let embedded = match (&cfg.app, cfg.workers) {
            (Some(app), n) if n > 0 => {
                match EmbeddedWorkers::start(n, app, addr, token.as_deref()) {
                    Ok(w) => w,
                    Err(e) => {
                        abandon_fresh(&shared.job_dir, recovered.incarnation);
                        return Err(e);
                    }
                }
            }
            _ => EmbeddedWorkers::none(),
        };
        info!(%addr, "coordinator listening");
        Ok(RunningJob {
            shared,
            addr,
            started: Instant::now(),
            embedded,
            task_timeout: cfg.task_timeout,
            _locks: locks,
            token_file,
            resumed,
        })
    }

    /// The address workers connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Runs the job to its end: every output committed (Ok), or a task failed
    /// for good (Err). Either way workers are dismissed and temporary files removed.
    pub async fn wait(mut self) -> Result<JobSummary, CoordinatorError> {
        let outcome = self.supervise().await;
        if matches!(outcome, Err(CoordinatorError::Interrupted(_))) {
            // The user wants out now: no grace period for workers.
            self.embedded.kill_all().await;
        } else {
            self.dismiss_workers().await;
        }
        self.cleanup().await;
        let p = self.shared.sched().progress();
        outcome.map(|()| JobSummary {
            maps: p.maps,
            reduces: p.reduces,
            attempts: p.attempts,
            elapsed: self.started.elapsed(),
            output_dir: self.shared.output_dir.clone(),
            input_bytes: self.shared.totals.input.load(Ordering::Relaxed),
            intermediate_bytes: self.shared.totals.intermediate.load(Ordering::Relaxed),
            output_bytes: self.shared.totals.output.load(Ordering::Relaxed),
            skipped_records: self.shared.totals.skipped.load(Ordering::Relaxed),
            resumed: self.resumed,
        })
    }

    async fn supervise(&mut self) -> Result<(), CoordinatorError> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut sigint = signal(SignalKind::interrupt()).ok();
        let mut sigterm = signal(SignalKind::terminate()).ok();
        loop {
            tokio::select! {
                _ = self.shared.changed.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                Some(_) = async { sigint.as_mut()?.recv().await } => {
                    return Err(CoordinatorError::Interrupted("SIGINT"));
                }
                Some(_) = async { sigterm.as_mut()?.recv().await } => {
                    return Err(CoordinatorError::Interrupted("SIGTERM"));
                }
            }
            {
                let mut s = self.shared.sched();
                for w in s.expire(Instant::now()) {
                    warn!(worker = %w, timeout = ?self.task_timeout, "worker silent too long; declared lost");
                }
                if s.is_done() {
                    return Ok(());
                }
                if let Some(f) = s.failure() {
                    return Err(f.clone().into());
                }
            }
            self.embedded.supervise(self.addr)?;
        }
    }

    /// Lets connected workers hear "exit" before the port closes, without
    /// waiting long for ones busy with abandoned attempts.
    async fn dismiss_workers(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && !self.shared.sched().all_workers_dismissed() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.embedded.wait_or_kill(Duration::from_secs(3)).await;
    }

    /// Removes the job directory, any uncommitted reduce outputs and the
    /// published token (unless another coordinator has replaced it since).
    async fn cleanup(&self) {
        if let (Some(f), Some(t)) = (&self.token_file, &self.shared.token) {
            if std::fs::read_to_string(f).is_ok_and(|s| s.trim() == t) {
                let _ = std::fs::remove_file(f);
            }
        }
        let job_dir = self.shared.job_dir.clone();
        let temps: Vec<PathBuf> = self
            .shared
            .sched()
            .reduce_attempts()
            .into_iter()
            .map(|(r, a)| self.shared.output_dir.join(names::reduce_temp(r, a)))
            .collect();
        let done = tokio::task::spawn_blocking(move || {
            for t in temps {
                let _ = std::fs::remove_file(t);
            }
            std::fs::remove_dir_all(&job_dir)
        })
        .await;
        if let Ok(Err(e)) = done {
            warn!(dir = %self.shared.job_dir.display(), "cannot remove job directory: {e}");
        }
    }
}
