//! Taking reports: only the worker an attempt was given to may report
//! it. A success is accepted once per task (a reduce in an object store
//! in two steps, `begin_commit` and `finish_commit`, around the upload's
//! completion); a failure is a strike against its task unless the
//! failure says otherwise (a lost map output re-runs the map, a bad
//! record is skipped, a cancelled attempt costs nothing), and a worker
//! whose own disk failed rests a while.

use super::tasks::{AttemptState, MAX_SKIPPED_PER_TASK};
use super::{JobFailure, Scheduler, TaskRef, Verdict};
use mr_protocol::{AttemptId, Phase, ReduceTaskId, TaskFailure, WorkerId};
use std::time::{Duration, Instant};

/// How long a worker whose own disk failed an attempt (`TaskFailure::Io`:
/// a full or broken local directory) is given no new work, doubled with
/// each such failure in a row up to [`MAX_REST`]: its tasks go to the
/// other workers meanwhile instead of failing on it again and again, and
/// it tries again later (the disk may have room by then).
pub(super) const IO_REST: Duration = Duration::from_secs(2);

/// The longest rest (see [`IO_REST`]).
const MAX_REST: Duration = Duration::from_secs(60);

impl Scheduler {
    /// The task of `attempt` if `worker` may report on it: only the worker
    /// an attempt was given to may report it, upload its output or abandon
    /// it, so a confused or hostile worker cannot end another's attempt.
    pub fn reported_task(&self, worker: WorkerId, attempt: AttemptId) -> Option<TaskRef> {
        self.attempts
            .get(&attempt)
            .filter(|a| a.worker == worker)
            .map(|a| a.task)
    }

    /// Whether a success report for `attempt` from `worker` would be
    /// accepted; the server asks before committing a reduce output, then
    /// calls [`Self::succeeded`].
    pub fn would_accept(&self, worker: WorkerId, attempt: AttemptId) -> Option<TaskRef> {
        let a = self.attempts.get(&attempt).filter(|a| a.worker == worker)?;
        let task = match a.task {
            TaskRef::Map(m) => &self.maps[m.0 as usize],
            TaskRef::Reduce(r) => &self.reduces[r.0 as usize],
        };
        let usable = matches!(a.state, AttemptState::Running | AttemptState::Abandoned);
        let free = task.committing.is_none();
        (usable && free && task.done.is_none() && self.failure.is_none()).then_some(a.task)
    }

    /// Records a successful attempt reported by `worker`. The first success
    /// of a task wins; any other attempt of it is abandoned.
    pub fn succeeded(&mut self, worker: WorkerId, attempt: AttemptId, now: Instant) -> Verdict {
        if self.would_accept(worker, attempt).is_none() {
            return Verdict::Ignored;
        }
        self.accept(attempt, now)
    }

    /// Starts committing reduce attempt `attempt`, reported successful by
    /// `worker`, whose output the server must publish with I/O that takes a
    /// while (completing an upload). Returns the task if it may; until
    /// [`Self::finish_commit`], no other attempt of it can win and it is
    /// not reissued, even if the worker is lost meanwhile (its output is
    /// in the store, not on the worker).
    pub fn begin_commit(&mut self, worker: WorkerId, attempt: AttemptId) -> Option<ReduceTaskId> {
        let TaskRef::Reduce(r) = self.would_accept(worker, attempt)? else {
            return None;
        };
        self.reduces[r.0 as usize].committing = Some(attempt);
        self.refresh(TaskRef::Reduce(r));
        Some(r)
    }

    /// Ends the commit [`Self::begin_commit`] started: published, the
    /// attempt is accepted (whatever became of its worker); not, it counts
    /// as a failed attempt and the task runs again.
    pub fn finish_commit(
        &mut self,
        r: ReduceTaskId,
        attempt: AttemptId,
        published: Result<(), TaskFailure>,
        now: Instant,
    ) -> Verdict {
        let Some(task) = self.reduces.get_mut(r.0 as usize) else {
            return Verdict::Ignored;
        };
        if task.committing != Some(attempt) {
            return Verdict::Ignored;
        }
        task.committing = None;
        self.refresh(TaskRef::Reduce(r));
        match published {
            Ok(()) => self.accept(attempt, now),
            Err(f) => self.fail(attempt, f, now),
        }
    }

    /// Makes `attempt` its task's accepted one; any other is abandoned.
    fn accept(&mut self, attempt: AttemptId, now: Instant) -> Verdict {
        self.end(attempt, AttemptState::Succeeded, now);
        let a = &self.attempts[&attempt];
        let task_ref = a.task;
        let took = now.duration_since(a.started);
        match task_ref {
            TaskRef::Map(_) => {
                self.durations[0].push(took);
                self.tally.map_seconds.observe(took);
            }
            TaskRef::Reduce(_) => {
                self.durations[1].push(took);
                self.tally.reduce_seconds.observe(took);
            }
        }
        if let Some(w) = self.workers.get_mut(&a.worker) {
            // Its disk took an output: whatever filled it has passed.
            w.io_failures = 0;
        }
        let place = self.workers.get(&a.worker).and_then(|w| w.place.as_ref());
        let shuffle = place.and_then(|p| p.shuffle.clone());
        let in_job_dir = place.is_none_or(|p| p.shared);
        let holder = shuffle.map(|addr| {
            let only_there = match task_ref {
                TaskRef::Map(m) if !in_job_dir => Some(m.0),
                _ => None,
            };
            self.holder(&addr, only_there)
        });
        let task = self.task_mut(task_ref);
        task.holder = holder;
        task.in_job_dir = in_job_dir;
        let others: Vec<AttemptId> = task.running.drain(..).filter(|&x| x != attempt).collect();
        self.set_done(task_ref, Some(attempt));
        if self.all_maps_done() && matches!(task_ref, TaskRef::Map(_)) {
            self.phase_marks[1] = Some(now);
        }
        if self.is_done() {
            self.phase_marks[2] = Some(now);
        }
        for other in others {
            self.end(other, AttemptState::Abandoned, now);
        }
        Verdict::Accepted(task_ref)
    }

    /// Records a failed attempt reported by `worker` and decides what to
    /// re-run. A worker that reports its own disk failing (`Io` on a local
    /// path, not an object URL: a store's trouble is not the worker's)
    /// rests a while (see [`IO_REST`]).
    pub fn failed(
        &mut self,
        worker: WorkerId,
        attempt: AttemptId,
        failure: TaskFailure,
        now: Instant,
    ) -> Verdict {
        if !self.is_running_on(worker, attempt) {
            return Verdict::Ignored;
        }
        if let TaskFailure::Io { path, reason } = &failure {
            if !path.starts_with(mr_store::SCHEME) {
                self.rest(worker, now, path, reason);
            }
        }
        self.fail(attempt, failure, now)
    }

    /// Records that committing `worker`'s successful `attempt` failed on
    /// the coordinator's side (the output could not be moved into place):
    /// a strike against the task, none against the worker.
    pub fn failed_at_commit(
        &mut self,
        worker: WorkerId,
        attempt: AttemptId,
        failure: TaskFailure,
        now: Instant,
    ) -> Verdict {
        if !self.is_running_on(worker, attempt) {
            return Verdict::Ignored;
        }
        self.fail(attempt, failure, now)
    }

    /// Whether `attempt` is running on `worker`.
    fn is_running_on(&self, worker: WorkerId, attempt: AttemptId) -> bool {
        self.attempts
            .get(&attempt)
            .is_some_and(|a| a.worker == worker && a.state == AttemptState::Running)
    }

    /// Records `attempt` as failed with `failure` and decides what to re-run.
    fn fail(&mut self, attempt: AttemptId, failure: TaskFailure, now: Instant) -> Verdict {
        let task_ref = self.attempts[&attempt].task;
        if failure == TaskFailure::Cancelled {
            // The worker stopped an attempt it thought abandoned: no
            // strike; the task runs elsewhere if nothing else runs it.
            self.end(attempt, AttemptState::Abandoned, now);
            let task = self.task_mut(task_ref);
            task.running.retain(|&x| x != attempt);
            self.refresh(task_ref);
            return Verdict::Ignored;
        }
        *self
            .failure_reasons
            .entry(failure_reason(&failure))
            .or_default() += 1;
        self.end(attempt, AttemptState::Failed, now);
        let max = self.cfg.max_attempts;
        let skip_enabled = self.cfg.skip_bad_records;
        let task = self.task_mut(task_ref);
        task.running.retain(|&x| x != attempt);
        let done = task.done.is_some();
        self.refresh(task_ref);
        if done {
            return Verdict::Ignored;
        }
        let task = self.task_mut(task_ref);
        if let TaskFailure::MapOutputLost { map, attempt, .. } = &failure {
            // Not the reduce's fault: re-run the map; the reduce goes back to
            // idle without a strike and waits for the new map output. Only
            // the output the reduce was given counts: a newer one may exist.
            let (map, lost_attempt) = (*map, *attempt);
            if let Some(m) = self.maps.get_mut(map.0 as usize) {
                if m.done == Some(lost_attempt) {
                    m.holder = None;
                    m.lost += 1;
                    if m.lost > max {
                        self.failure = Some(JobFailure::OutputLost(map, m.lost));
                    }
                    self.set_done(TaskRef::Map(map), None);
                }
            }
            return Verdict::FailureRecorded(task_ref);
        }
        if let TaskFailure::AppPanic { phase, record, .. } = &failure {
            // As in the paper: a record that made the app panic is skipped by
            // the next attempt, which costs no strike. Combine works on keys
            // gathered from the whole split, so it has no record to skip.
            let skippable = skip_enabled
                && *phase != Phase::Combine
                && !task.skip.contains(record)
                && task.skip.len() < MAX_SKIPPED_PER_TASK;
            if skippable {
                task.skip.push(record.clone());
                task.last_failure = Some(failure.clone());
                return Verdict::FailureRecorded(task_ref);
            }
        }
        task.failures += 1;
        task.last_failure = Some(failure.clone());
        if task.failures >= max {
            self.failure = Some(JobFailure::TaskFailed {
                task: task_ref,
                attempts: task.failures,
                last: failure,
            });
        }
        Verdict::FailureRecorded(task_ref)
    }

    /// Gives `worker`, whose disk just failed an attempt, no new work for
    /// a while (see [`IO_REST`]). The attempt still counts against its
    /// task: a disk every worker shares (the output directory) full fails
    /// the job after `max_attempts`, as it should.
    fn rest(&mut self, worker: WorkerId, now: Instant, path: &str, reason: &str) {
        let Some(w) = self.workers.get_mut(&worker) else {
            return;
        };
        w.io_failures += 1;
        let rest = IO_REST
            .saturating_mul(1 << (w.io_failures - 1).min(5))
            .min(MAX_REST);
        w.resting_until = Some(now + rest);
        let what = match reason.contains(path) {
            true => reason.to_string(),
            false => format!("{path}: {reason}"),
        };
        tracing::warn!(%worker, "its own disk failed an attempt ({what}); it gets no work for {rest:?}");
    }
}

/// The reason a failed attempt is counted under, in `/metrics`' labels:
/// the kind of its [`TaskFailure`] (`worker_lost` counts attempts that
/// went with their worker).
pub fn failure_reason(failure: &TaskFailure) -> &'static str {
    match failure {
        TaskFailure::Cancelled => "cancelled",
        TaskFailure::AppPanic { .. } => "app_panic",
        TaskFailure::MapOutputLost { .. } => "map_output_lost",
        TaskFailure::FetchRefused { .. } => "fetch_refused",
        TaskFailure::Input { .. } => "input",
        TaskFailure::Io { .. } => "io",
    }
}
