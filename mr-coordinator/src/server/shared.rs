//! The state every connection shares, and the decisions taken on it
//! under the scheduler's lock: what a report does (accept, commit, keep
//! for the cache, re-run), what a closed connection does, and the cache's
//! lookup of the reduces once the maps are done.
//!
//! The scheduler lives behind a `std::sync::Mutex` that is never held across
//! an `.await`; the only I/O done under it is the rename that commits a
//! reduce output, so that "is this the first good report?" and "commit it"
//! happen as one step and no task is ever committed twice. Journal records
//! are queued under the same lock (so the journal's order is the state's)
//! and their durability is awaited after it is released. Outputs in an
//! object store are published by [`super::publish`] instead, whose I/O
//! (completing an upload) is awaited outside the lock. The order in which
//! locks are taken is written on [`Shared`].

use crate::journal::{Durable, Journal, Record};
use crate::scheduler::{Scheduler, TaskRef, Verdict, WorkMark};
use mr_protocol::{names, Assignment, AttemptId, PlannedFile, TaskFailure, TaskOutput, WorkerId};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tracing::{info, warn};

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
    pub(super) fn bind(&self, conn: u64, worker: WorkerId) -> Option<WorkerId> {
        self.lock().insert(conn, worker)
    }

    /// The worker registered on `conn`, if any.
    pub(crate) fn worker_on(&self, conn: u64) -> Option<WorkerId> {
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
                            let path = s
                                .accepted_in_job_dir(m)
                                .map(|a| self.job_dir.join(names::map_output(m, a)));
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

    /// Takes a report under the scheduler lock: commits a reduce output,
    /// updates counters, queues the journal record, and picks the worker's
    /// next assignment (None if the worker was declared lost). Returns
    /// those, the record's durability (to await without the lock) and
    /// progress.
    pub(super) fn decide(
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
                Some(self.journal.submit_boxed(record))
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
pub(super) struct Decided {
    pub(super) verdict: Verdict,
    /// The journal record's durability, to await without the lock.
    pub(super) durable: Option<Durable>,
    /// The worker's next assignment if it asked for one; None if it was
    /// declared lost.
    pub(super) next: Option<Option<Assignment>>,
    pub(super) progress: crate::scheduler::Progress,
    /// The maps are done and reduces wait for the cache to be looked up.
    pub(super) reduce_lookup: bool,
}
