//! The RPC service: what the coordinator does with each call of the
//! protocol, on state shared by every connection.
//!
//! The scheduler lives behind a `std::sync::Mutex` that is never held across
//! an `.await`; the only I/O done under it is the rename that commits a
//! reduce output, so that "is this the first good report?" and "commit it"
//! happen as one step and no task is ever committed twice. Journal records
//! are queued under the same lock (so the journal's order is the state's)
//! and their durability is awaited after it is released. Outputs in an
//! object store are published by [`super::publish`] instead, whose I/O
//! (completing an upload) is awaited outside the lock.

use crate::journal::{Journal, Record};
use crate::scheduler::{Scheduler, TaskRef, Verdict, WorkMark};
use mr_protocol::{
    names, Assignment, AttemptId, Coordinator, HeartbeatReply, JobSettings, OutputsPage,
    PlannedFile, ProtocolError, RegisterError, RegisterRequest, ReportAck, Reported, TaskFailure,
    TaskOutput, WorkerId, WorkerPlace,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tarpc::context::Context;
use tokio::sync::Notify;
use tracing::{info, warn};

/// Most input files listed to a registering worker (for locality).
const MAX_LISTED_INPUTS: usize = 100_000;

/// Resolves once a journal record is on disk.
pub(crate) type Durable =
    std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send>>;

/// State shared by every connection handler and the supervising loop.
///
/// What changes is behind an owner of its own: the scheduler (`sched`),
/// the connections' workers (`conns`), the journal, the outputs in an
/// object store (`store`) and the cache (`cache`); the rest is the job's,
/// fixed at its start. Locks are taken in this order, never the other way:
/// 1. `planning` (async): held by the registration that plans the maps,
///    across the planning, and taken before `sched`, never while holding it;
/// 2. `sched` (through [`Shared::sched`]): every decision, and the
///    journal's records queued under it so the journal's order is the
///    state's;
/// 3. leaves, taken under `sched` or alone, and never holding another: the
///    journal's queue, `store`'s published outputs, `cache`'s puts and
///    figures.
///
/// `conns` is a leaf too, but taken only alone (a connection's end takes
/// its worker out of `conns` first, then locks `sched`).
pub(crate) struct Shared {
    pub(crate) sched: Mutex<Scheduler>,
    /// See the lock order above.
    pub(crate) planning: tokio::sync::Mutex<()>,
    /// Which worker registered on which connection.
    pub(crate) conns: Connections,
    /// Poked whenever the job's state may have changed.
    pub(crate) changed: Notify,
    /// Wakes every `request_task` held for want of work, whenever a change
    /// to the scheduler leaves more to hand out or ends the job (see
    /// [`SchedGuard`]).
    pub(crate) work: Notify,
    /// Durable record of committed progress.
    pub(crate) journal: Journal,
    /// With outputs in an object store: the prefix, the claim on it, and
    /// what was published there.
    pub(crate) store: Option<super::publish::StoreOutputs>,
    /// `--cache`: the job's cache, what is being put in, what was taken.
    pub(crate) cache: Option<crate::reuse::CacheUse>,
    pub(crate) job_id: String,
    pub(crate) reduces: u32,
    pub(crate) job_dir: PathBuf,
    /// The output directory; with a store, the local work directory.
    pub(crate) output_dir: PathBuf,
    pub(crate) heartbeat: Duration,
    /// The token workers must present; None with `--no-token`.
    pub(crate) token: Option<String>,
    /// Where a refused worker can find the token (for its error message).
    pub(crate) token_hint: String,
    /// Whether the job's TCP connections run over TLS.
    pub(crate) tls: bool,
    /// When the coordinator started (the report's time origin).
    pub(crate) started: Instant,
    /// The job's input files (what workers may ask bytes of).
    pub(crate) inputs: Vec<PlannedFile>,
    /// The arguments naming the app as a worker gets them (a plugin's path
    /// made absolute), for the report's replay section.
    pub(crate) app_args: Vec<String>,
    /// The job's parameters, records and partitions, as every worker is told.
    pub(crate) shape: mr_protocol::JobShape,
}

/// Which worker registered on which connection: a live worker keeps its
/// one connection for the life of its process, so the connection's end is
/// the worker's.
#[derive(Default)]
pub(crate) struct Connections {
    next: AtomicU64,
    workers: Mutex<HashMap<u64, WorkerId>>,
}

impl Connections {
    /// A number for a new connection.
    pub(crate) fn open(&self) -> u64 {
        self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Ties `worker` to `conn`; returns the worker registered there before.
    fn bind(&self, conn: u64, worker: WorkerId) -> Option<WorkerId> {
        self.lock().insert(conn, worker)
    }

    /// The worker registered on `conn`, if any.
    fn worker_on(&self, conn: u64) -> Option<WorkerId> {
        self.lock().get(&conn).copied()
    }

    /// `conn` ended; returns its worker, if one registered there.
    fn close(&self, conn: u64) -> Option<WorkerId> {
        self.lock().remove(&conn)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, WorkerId>> {
        self.workers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The scheduler, locked. When released it wakes the requests waiting for
/// work if what it could hand out grew while it was held (a map phase
/// ending, reduces let go, a task made idle again, the job over): every
/// change goes through here, so none is missed.
pub(crate) struct SchedGuard<'a> {
    guard: MutexGuard<'a, Scheduler>,
    before: WorkMark,
    work: &'a Notify,
}

impl std::ops::Deref for SchedGuard<'_> {
    type Target = Scheduler;
    fn deref(&self) -> &Scheduler {
        &self.guard
    }
}

impl std::ops::DerefMut for SchedGuard<'_> {
    fn deref_mut(&mut self) -> &mut Scheduler {
        &mut self.guard
    }
}

impl Drop for SchedGuard<'_> {
    fn drop(&mut self) {
        if self.guard.work_mark().wakes_after(self.before) {
            self.work.notify_waiters();
        }
    }
}

impl Shared {
    pub(crate) fn sched(&self) -> SchedGuard<'_> {
        // A panic while holding the lock is a bug; the state is still the
        // best we have, so keep going rather than poisoning every handler.
        let guard = self.sched.lock().unwrap_or_else(|e| e.into_inner());
        let before = guard.work_mark();
        SchedGuard {
            guard,
            before,
            work: &self.work,
        }
    }

    /// A connection ended: its worker (if any) is gone, since a live worker
    /// keeps its one connection open for the life of the process.
    pub(crate) fn connection_closed(&self, conn: u64) {
        if let Some(w) = self.conns.close(conn) {
            let mut s = self.sched();
            let reissued = s.worker_lost(w, Instant::now());
            self.journal_lost_outputs(&mut s);
            drop(s);
            if !reissued.is_empty() {
                warn!(worker = %w, tasks = ?reissued, "worker disconnected; reissuing its tasks");
            } else {
                info!(worker = %w, "worker disconnected");
            }
            self.changed.notify_one();
        }
    }

    /// Journals the maps whose outputs went with a lost worker. Called
    /// under the scheduler lock, so the journal's order is the state's.
    pub(crate) fn journal_lost_outputs(&self, s: &mut Scheduler) {
        for m in s.take_lost_outputs() {
            warn!(map = %m, "its output was on a lost worker's disk; the map will run again");
            self.journal.append_later(Record::MapLost(m));
        }
    }

    /// The job report as of now (`ended` once the job is over), listing
    /// what `listing` asks for. Everything is copied in chunks, the
    /// scheduler's lock let go between them: a million attempts copied at
    /// once held it for a fifth of a second, which the status page and
    /// any worker still calling waited out.
    pub(crate) fn report(
        &self,
        ended: Option<(&str, Option<String>)>,
        listing: crate::observe::report::Listing,
    ) -> crate::observe::report::Report {
        use crate::observe::report::{attempt_info, snapshot, Context, Listing, PageRequest};
        let output = self.output_label();
        let everything = listing == Listing::Everything;
        let has_ended = ended.is_some();
        // Everything but the attempts first; they follow in chunks.
        let first = match listing {
            Listing::Everything => Listing::Page(PageRequest {
                attempts_from: Some(u64::MAX),
                attempts: 0,
                workers_from: 0,
                workers: usize::MAX,
            }),
            other => other,
        };
        let mut report = {
            let s = self.sched();
            let mut r = snapshot(
                &s,
                &Context {
                    id: &self.job_id,
                    started: self.started,
                    output_dir: &output,
                    ended,
                    listing: first,
                    journal: self.journal.stats(),
                    reused: self.cache.as_ref().map(|c| c.reused()),
                    replay: None,
                    shape: &self.shape,
                },
            );
            if everything && has_ended {
                r.replay = Some(s.replay_plan(&self.app_args, &self.job_dir, &self.shape));
            }
            r
        };
        if everything {
            const CHUNK: usize = 65_536;
            let total = report.listed.attempts_total;
            let mut attempts = Vec::with_capacity(total as usize);
            while (attempts.len() as u64) < total {
                let page = self.sched().attempt_page(attempts.len() as u64, CHUNK);
                if page.is_empty() {
                    break;
                }
                attempts.extend(page.iter().map(|a| attempt_info(a, self.started)));
            }
            report.attempts = attempts;
            report.listed.attempts_from = 0;
        }
        report
    }

    /// Once the maps are done, with reduces held back for it: waits for the
    /// map outputs being kept (which gives their partitions' addresses),
    /// looks the reduces up in the cache (their addresses are made of
    /// those), and lets reduces be handed out, those found committed and
    /// done. Reduces are let go whatever happens here: a failed lookup only
    /// costs their runs.
    pub(crate) async fn look_up_reduces(self: Arc<Self>) {
        let taken = match &self.cache {
            None => Default::default(),
            Some(c) => {
                c.puts_done().await;
                let jc = c.cache.clone();
                let (outputs, left) = {
                    let s = self.sched();
                    let outputs: Vec<_> = jc
                        .unknown_maps()
                        .into_iter()
                        .map(|m| {
                            let path = s.accepted_map(m).and_then(|(a, in_job_dir)| {
                                in_job_dir.then(|| self.job_dir.join(names::map_output(m, a)))
                            });
                            (m, path)
                        })
                        .collect();
                    (outputs, s.reduces_left())
                };
                let out = self.store.is_none().then(|| self.output_dir.clone());
                let job_dir = self.job_dir.clone();
                tokio::task::spawn_blocking(move || {
                    jc.reduces_at_map_end(&outputs, &job_dir, out.as_deref(), &left)
                })
                .await
                .unwrap_or_default()
            }
        };
        let committed = taken.committed.len();
        self.sched()
            .release_reduces(&taken.committed, taken.reusing_earlier, Instant::now());
        if let Some(c) = &self.cache {
            c.count(|r| r.reduces_reused += committed);
        }
        // The job may be done: every output came from the cache.
        self.changed.notify_one();
    }

    /// Where the job's outputs go, as the user named it: the output
    /// directory, or the object store prefix.
    pub(crate) fn output_label(&self) -> PathBuf {
        match &self.store {
            Some(store) => PathBuf::from(&store.prefix),
            None => self.output_dir.clone(),
        }
    }

    /// The worker registered on connection `conn`, if any.
    fn worker_on(&self, conn: u64) -> Option<WorkerId> {
        self.conns.worker_on(conn)
    }

    /// Takes a report under the scheduler lock: commits a reduce output,
    /// updates counters, queues the journal record, and picks the worker's
    /// next assignment (None if the worker was declared lost). Returns
    /// those, the record's durability (to await without the lock) and
    /// progress.
    fn decide(
        &self,
        worker: WorkerId,
        attempt: AttemptId,
        outcome: Result<TaskOutput, TaskFailure>,
        next: bool,
    ) -> Decided {
        let now = Instant::now();
        let mut s = self.sched();
        let alive = s.touch(worker, now);
        // Only the attempt's own worker may report it (the scheduler's
        // rule); anything else is ignored before it can touch any file.
        let Some(task) = s.reported_task(worker, attempt) else {
            return Decided {
                verdict: Verdict::Ignored,
                durable: None,
                next: alive.then(|| next.then(|| s.assign(worker, now))),
                progress: s.progress(),
                reduce_lookup: false,
            };
        };
        let counters = outcome.as_ref().ok().map(|o| o.counters().clone());
        let index = match &outcome {
            Ok(TaskOutput::Indexed(_, index)) => Some(index.clone()),
            _ => None,
        };
        let verdict = match outcome {
            Ok(TaskOutput::Map(_)) => s.succeeded(worker, attempt, now),
            // Published by `report` before it gets here; never a verdict of ours.
            Ok(TaskOutput::Uploaded(..)) => Verdict::Ignored,
            Ok(TaskOutput::Reduce(_) | TaskOutput::Indexed(..)) => {
                match s.would_accept(worker, attempt) {
                    Some(TaskRef::Reduce(r)) => match self.commit_output(r, attempt) {
                        Ok(()) => s.succeeded(worker, attempt, now),
                        Err(f) => {
                            warn!(%attempt, "{f}");
                            s.failed_at_commit(worker, attempt, f, now)
                        }
                    },
                    _ => {
                        // A late backup: its upload (if it uploaded) is not needed.
                        self.discard_upload(task, attempt);
                        Verdict::Ignored
                    }
                }
            }
            Err(failure) => {
                let lost = match &failure {
                    TaskFailure::MapOutputLost { map, .. } if s.map_done(*map) => Some(*map),
                    _ => None,
                };
                self.discard_upload(task, attempt);
                let v = s.failed(worker, attempt, failure.clone(), now);
                if v != Verdict::Ignored {
                    warn!(%worker, %attempt, %task, "attempt failed: {failure}");
                }
                if let Some(m) = lost.filter(|&m| !s.map_done(m)) {
                    self.journal.append_later(Record::MapLost(m));
                }
                v
            }
        };
        let mut reduce_lookup = false;
        // Queued under the lock (journal order = state order), awaited after.
        let durable = match (&verdict, counters) {
            (Verdict::Accepted(task), Some(c)) => {
                s.set_counters(*task, c.clone());
                let copied = index.as_ref().map_or(0, |i| i.copied);
                if let Some(cache) = self.cache.as_ref().filter(|_| copied > 0) {
                    cache.count(|r| {
                        r.reduces_partly_reused += 1;
                        r.output_bytes_copied += copied;
                    });
                }
                self.keep(&s, *task, attempt, &c, index);
                reduce_lookup = s.reduce_lookup_due();
                let record = match *task {
                    TaskRef::Map(m) => Record::MapDone(m, attempt, c, s.output_holder(m)),
                    TaskRef::Reduce(r) => Record::ReduceDone(r, attempt, c),
                };
                Some(Box::pin(self.journal.submit(record)) as Durable)
            }
            _ => None,
        };
        // Picked now, under the same lock; the worker hears it only once
        // the record above is durable.
        Decided {
            verdict,
            durable,
            next: alive.then(|| next.then(|| s.assign(worker, now))),
            progress: s.progress(),
            reduce_lookup,
        }
    }

    /// Puts an accepted output into the job's cache, if it keeps one: a
    /// map's when it is in the shared job directory, a committed reduce's
    /// (with its index, if its attempt gave one) when outputs are local.
    /// On a blocking thread, awaited at the job's end.
    fn keep(
        &self,
        s: &Scheduler,
        task: TaskRef,
        attempt: AttemptId,
        c: &mr_protocol::Counters,
        index: Option<mr_protocol::OutputIndex>,
    ) {
        let Some(cache) = &self.cache else {
            return;
        };
        let jc = cache.cache.clone();
        // An output that left bad records out (--skip-bad-records) is not
        // what the task gives without that flag (it fails): not kept, so
        // no run without the flag can take it.
        if c.skipped_records > 0 {
            return;
        }
        let c = c.clone();
        let put = match task {
            TaskRef::Map(m) if s.map_in_job_dir(m) => {
                let path = self.job_dir.join(names::map_output(m, attempt));
                tokio::task::spawn_blocking(move || jc.put_map(m, &path, &c))
            }
            TaskRef::Reduce(r) if self.store.is_none() => {
                let path = self.output_dir.join(names::output(r));
                tokio::task::spawn_blocking(move || jc.put_reduce(r, &path, &c, index))
            }
            _ => return,
        };
        cache.putting(put);
    }

    /// Removes what a reduce attempt uploaded (if it did), once it is not
    /// going to be committed.
    fn discard_upload(&self, task: TaskRef, attempt: AttemptId) {
        if let TaskRef::Reduce(r) = task {
            let _ = std::fs::remove_file(self.output_dir.join(names::reduce_temp(r, attempt)));
        }
    }

    /// Commits reduce attempt `attempt` of task `r`: its temp file becomes `mr-out-r`.
    fn commit_output(
        &self,
        r: mr_protocol::ReduceTaskId,
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

/// What [`Shared::decide`] made of a report.
struct Decided {
    verdict: Verdict,
    /// The journal record's durability, to await without the lock.
    durable: Option<Durable>,
    /// The worker's next assignment if it asked for one; None if it was
    /// declared lost.
    next: Option<Option<Assignment>>,
    progress: crate::scheduler::Progress,
    /// The maps are done and reduces wait for the cache to be looked up.
    reduce_lookup: bool,
}

/// How a connection reached the coordinator.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Via {
    /// The TCP port: workers prove membership with the job's token.
    Tcp,
    /// The Unix domain socket: the peer's uid (from the kernel) must be
    /// this process's; then no token is needed.
    Socket {
        /// The peer's uid, if the kernel told it.
        uid: Option<u32>,
    },
}

/// One connection's view of the service.
#[derive(Clone)]
pub(crate) struct Handler {
    pub(crate) shared: Arc<Shared>,
    pub(crate) conn: u64,
    pub(crate) via: Via,
    /// A TCP connection's bounds until it registers (None on the socket).
    pub(crate) admission: Option<Arc<super::admission::Admission>>,
}

impl Handler {
    /// Refuses a worker that may not join, before anything changes: another
    /// user on the socket, a wrong token over TCP, another build, an app
    /// the job was not set up for, a worker of an earlier coordinator.
    fn admit(&self, req: &RegisterRequest) -> Result<(), RegisterError> {
        let me = nix::unistd::getuid().as_raw();
        match self.via {
            Via::Socket { uid } if uid == Some(me) => {}
            Via::Socket { uid } => {
                warn!(host = %req.host, pid = req.pid, ?uid, "refused a worker of another user on the socket");
                return Err(RegisterError::OtherUser { uid, owner: me });
            }
            Via::Tcp => self.check_token(req)?,
        }
        // Another build may map or reduce differently from what the job's
        // cache keys name (and from the other workers): refused.
        if req.build != mr_build::BUILD_ID {
            let short = |b: &str| b.chars().take(12).collect::<String>();
            warn!(host = %req.host, pid = req.pid, build = %short(&req.build), "refused a worker of another build");
            return Err(RegisterError::OtherBuild {
                coordinator: mr_build::short().to_string(),
                worker: short(&req.build),
            });
        }
        if let Some(needs) = self.unmet_needs(req) {
            warn!(host = %req.host, pid = req.pid, app = %req.app, "refused a worker whose app {needs}");
            return Err(RegisterError::NotSetUpFor {
                app: req.app.clone(),
                needs,
                hint: format!("start mrcoordinator with --app {}", req.app),
            });
        }
        // Left by a predecessor killed mid-job: this coordinator starts its
        // own workers, so these would only be more than were asked for.
        if let Some(pid) = req.embedded_by.filter(|&p| p != std::process::id()) {
            warn!(host = %req.host, worker_pid = req.pid, coordinator_pid = pid, "dismissed a worker started by an earlier coordinator of this job (this one starts its own)");
            return Err(RegisterError::Superseded { pid });
        }
        Ok(())
    }

    /// What the worker's app needs that the job was not set up for: its
    /// records or its order (without --app, the first worker fixes the app
    /// after the job planned).
    fn unmet_needs(&self, req: &RegisterRequest) -> Option<String> {
        let shape = &self.shared.shape;
        if req.record_size > 0 && req.record_size != shape.record_size {
            Some(format!(
                "reads {}-byte records, which this job was not started for",
                req.record_size
            ))
        } else if req.total_order && shape.split_points.is_none() && self.shared.reduces > 1 {
            Some(
                "needs its outputs in total order (sampled key ranges), which this job was not started for"
                    .to_string(),
            )
        } else {
            None
        }
    }

    /// Registers the worker with the scheduler. The first worker fixes the
    /// plan: made outside the lock and off the runtime (a million splits
    /// take most of a second, which other workers and the status page
    /// would otherwise wait out).
    async fn join(&self, req: &RegisterRequest) -> Result<WorkerId, RegisterError> {
        let needs_plan = |s: &Shared| s.sched().plan_inputs(&req.app, req.whole_file);
        let mut planning = None;
        let mut plan = None;
        if needs_plan(&self.shared).is_some() {
            planning = Some(self.shared.planning.lock().await);
            // The one before may have planned while this one waited.
            if let Some(p) = needs_plan(&self.shared) {
                plan = tokio::task::spawn_blocking(move || p.plan()).await.ok();
            }
        }
        let mut s = self.shared.sched();
        let planned = s.planned_app().is_some();
        let worker = s.register_planned(Instant::now(), &req.app, req.whole_file, plan);
        drop(planning);
        if !planned {
            if let Some(app) = s.planned_app() {
                // Sent under the lock so the journal's order is the state's.
                self.shared.journal.append_later(Record::AppFixed {
                    app: app.name,
                    whole_file: app.whole_file,
                });
            }
        }
        match worker {
            Ok(w) => {
                s.name_worker(w, &format!("{}:{}", req.host, req.pid));
                Ok(w)
            }
            // A worker arriving after the end (an embedded one slower to
            // start than the job was to finish, or one started late) is
            // simply sent home: nothing is wrong.
            Err(e @ RegisterError::JobOver) => {
                info!(host = %req.host, pid = req.pid, "worker not needed: {e}");
                Err(e)
            }
            Err(e) => {
                warn!(host = %req.host, pid = req.pid, "refused worker: {e}");
                Err(e)
            }
        }
    }

    /// Ties `worker` to this connection (whose end loses it), lifting the
    /// bounds on connections that have not registered.
    fn bind(&self, worker: WorkerId, req: &RegisterRequest) {
        let previous = self.shared.conns.bind(self.conn, worker);
        if let Some(old) = previous {
            // The same connection registering again: its old identity is gone.
            self.shared.sched().worker_lost(old, Instant::now());
        }
        if let Some(a) = &self.admission {
            a.registered();
        }
        info!(%worker, host = %req.host, pid = req.pid, app = %req.app, "worker joined");
        self.shared.changed.notify_one();
    }

    /// What a registered worker is told about the job.
    fn settings(&self, worker: WorkerId) -> JobSettings {
        let shared = &self.shared;
        JobSettings {
            worker,
            job_id: shared.job_id.clone(),
            reduces: shared.reduces,
            job_dir: shared.job_dir.clone(),
            output_dir: shared.output_dir.clone(),
            output_store: shared.store.as_ref().map(|s| s.prefix.clone()),
            tls: shared.tls,
            heartbeat_ms: shared.heartbeat.as_millis() as u64,
            // Past this many files the list alone would be a large frame:
            // the worker then learns locality split by split instead.
            inputs: if shared.inputs.len() <= MAX_LISTED_INPUTS {
                shared.inputs.clone()
            } else {
                Vec::new()
            },
            // A worker of this user on the socket may know the token: it
            // presents it to other workers' shuffle services.
            token: match self.via {
                Via::Socket { .. } => shared.token.clone(),
                Via::Tcp => None,
            },
            shape: shared.shape.clone(),
        }
    }

    /// Over TCP, a worker proves membership with the job's token.
    fn check_token(&self, req: &RegisterRequest) -> Result<(), RegisterError> {
        match &self.shared.token {
            Some(expected) if !mr_protocol::join::matches(&req.token, expected) => {
                warn!(host = %req.host, pid = req.pid, "refused a worker that did not present the job's token");
                Err(RegisterError::BadToken {
                    hint: self.shared.token_hint.clone(),
                })
            }
            _ => Ok(()),
        }
    }
}

impl Coordinator for Handler {
    async fn register(
        self,
        _: Context,
        req: RegisterRequest,
    ) -> Result<JobSettings, RegisterError> {
        self.admit(&req)?;
        let worker = self.join(&req).await?;
        self.bind(worker, &req);
        Ok(self.settings(worker))
    }

    async fn request_task(self, _: Context, worker: WorkerId) -> Result<Assignment, ProtocolError> {
        // A worker id is only good on the connection that registered it.
        if self.shared.worker_on(self.conn) != Some(worker) {
            return Err(ProtocolError::UnknownWorker(worker));
        }
        // A long poll: with nothing to hand out, the request is held for
        // the pause the scheduler suggests and answered as soon as there is
        // (the last maps' reports freeing the reduces, the job's end), so
        // an idle worker starts at once instead of at its next poll. A
        // request held to the end is answered with a wait of 0: the worker
        // asks again at once, so idle workers ask as often as before.
        let mut until = None;
        loop {
            // Registered before the state is read, so no wake is missed
            // between the answer "wait" and the wait.
            let woken = self.shared.work.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let now = Instant::now();
            let answer = {
                let mut s = self.shared.sched();
                if !s.touch(worker, now) {
                    return Err(ProtocolError::UnknownWorker(worker));
                }
                s.assign(worker, now)
            };
            let Assignment::Wait { millis } = answer else {
                return Ok(answer);
            };
            let deadline = *until.get_or_insert(now + Duration::from_millis(millis));
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep_until(deadline.into()) => {
                    return Ok(Assignment::Wait { millis: 0 });
                }
            }
        }
    }

    async fn report(
        self,
        _: Context,
        worker: WorkerId,
        attempt: AttemptId,
        outcome: Result<TaskOutput, TaskFailure>,
        next: bool,
    ) -> Result<Reported, ProtocolError> {
        if self.shared.worker_on(self.conn) != Some(worker) {
            return Err(ProtocolError::UnknownWorker(worker));
        }
        // The next assignment after the upload's publishing, outside the lock.
        let assign_next = || {
            let now = Instant::now();
            let mut s = self.shared.sched();
            let next = s
                .touch(worker, now)
                .then(|| next.then(|| s.assign(worker, now)));
            (next, s.progress())
        };
        let (verdict, next, progress) = match outcome {
            // An output in the object store: published with store I/O,
            // outside the scheduler's lock (see `publish`).
            Ok(TaskOutput::Uploaded(counters, upload)) => {
                let v = self.shared.publish(worker, attempt, counters, upload).await;
                let (next, progress) = assign_next();
                (v, next, progress)
            }
            outcome => {
                let d = self.shared.decide(worker, attempt, outcome, next);
                if d.reduce_lookup {
                    tokio::spawn(self.shared.clone().look_up_reduces());
                }
                if let Some(durable) = d.durable {
                    // A failed append is logged by the journal; the job goes on.
                    let _ = durable.await;
                }
                (d.verdict, d.next, d.progress)
            }
        };
        if let Verdict::Accepted(task) = verdict {
            info!(%task, %attempt, maps_done = progress.maps_done, reduces_done = progress.reduces_done, "task done");
        }
        // The supervising loop ends the job once every output is committed
        // or a task failed for good; it also looks every 200 ms, so a map's
        // success (tens of thousands a second at scale) need not wake it.
        if matches!(
            verdict,
            Verdict::Accepted(TaskRef::Reduce(_)) | Verdict::FailureRecorded(_)
        ) {
            self.shared.changed.notify_one();
        }
        // A worker declared lost (silent too long) must join again.
        let mut next = next.ok_or(ProtocolError::UnknownWorker(worker))?;
        // Nothing to do yet: the worker asks with request_task, whose long
        // poll answers as soon as there is (a Wait here would have it sleep
        // through the work appearing, e.g. the reduces the last map frees).
        if matches!(next, Some(Assignment::Wait { .. })) {
            next = None;
        }
        let ack = match verdict {
            Verdict::Ignored => ReportAck::Ignored,
            _ => ReportAck::Accepted,
        };
        Ok(Reported { ack, next })
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

    async fn announce(
        self,
        _: Context,
        worker: WorkerId,
        place: WorkerPlace,
    ) -> Result<(), ProtocolError> {
        if self.shared.worker_on(self.conn) != Some(worker) {
            return Err(ProtocolError::UnknownWorker(worker));
        }
        let local = (0..self.shared.inputs.len())
            .filter(|&i| place.has_input(i))
            .count();
        info!(%worker, shared = place.shared, shuffle = ?place.shuffle, local_inputs = local, "worker placed");
        let outside = (!place.shared).then(|| place.shuffle.clone()).flatten();
        let mut s = self.shared.sched();
        if !s.announce(worker, place) {
            return Err(ProtocolError::UnknownWorker(worker));
        }
        if let Some(addr) = outside {
            // Reports and the status page show where its outputs live.
            s.name_worker(worker, &format!(" (own disk, serves {addr})"));
        }
        Ok(())
    }

    async fn map_outputs(
        self,
        _: Context,
        worker: WorkerId,
        version: u64,
        from: u32,
    ) -> Result<OutputsPage, ProtocolError> {
        if self.shared.worker_on(self.conn) != Some(worker) {
            return Err(ProtocolError::UnknownWorker(worker));
        }
        // A clone of a shared page: its encoding is made once, on the
        // first send, not once per reader.
        self.shared.sched().outputs_page(version, from)
    }

    async fn read_input(
        self,
        _: Context,
        worker: WorkerId,
        path: PathBuf,
        offset: u64,
        len: u32,
    ) -> Result<serde_bytes::ByteBuf, ProtocolError> {
        if self.shared.worker_on(self.conn) != Some(worker) {
            return Err(ProtocolError::UnknownWorker(worker));
        }
        super::data::read_input(&self.shared.inputs, path, offset, len).await
    }

    async fn upload_output(
        self,
        _: Context,
        worker: WorkerId,
        attempt: AttemptId,
        offset: u64,
        data: serde_bytes::ByteBuf,
        last: bool,
    ) -> Result<(), ProtocolError> {
        if self.shared.worker_on(self.conn) != Some(worker) {
            return Err(ProtocolError::UnknownWorker(worker));
        }
        let target = {
            let s = self.shared.sched();
            match s.would_accept(worker, attempt) {
                Some(TaskRef::Reduce(r)) => r,
                _ => {
                    return Err(ProtocolError::UploadRefused {
                        attempt,
                        why: "not a running reduce attempt of this worker (its task may be done)"
                            .into(),
                    })
                }
            }
        };
        let path = self
            .shared
            .output_dir
            .join(names::reduce_temp(target, attempt));
        super::data::write_upload(path, attempt, offset, data.into_vec(), last).await
    }
}
