//! The scheduler's indexes: state kept beside the task, attempt and worker
//! records so that every decision is a lookup rather than a scan of a
//! million tasks or ten thousand workers (idle and backup-candidate sets,
//! done and running counts, counter totals, holders, input readers). Each
//! is derived from the records and brought up to date here, at the few
//! places the records change; the decisions themselves are in [`super`].

use super::tasks::{AttemptState, PackedCounters};
use super::{Scheduler, TaskRef};
use mr_protocol::AttemptId;
use std::sync::Arc;
use std::time::Instant;

impl Scheduler {
    /// Brings the indexes of `task` up to date with its record: whether it
    /// is idle, and whether its only running attempt may get a backup.
    pub(super) fn refresh(&mut self, task: TaskRef) {
        let (phase, i) = match task {
            TaskRef::Map(m) => (0, m.0),
            TaskRef::Reduce(r) => (1, r.0),
        };
        let t = match task {
            TaskRef::Map(_) => &mut self.maps[i as usize],
            TaskRef::Reduce(_) => &mut self.reduces[i as usize],
        };
        let waiting = t.done.is_none() && t.committing.is_none();
        if waiting && t.running.is_empty() {
            self.idle[phase].insert(i);
        } else {
            self.idle[phase].remove(&i);
        }
        if let Some(c) = t.candidate.take() {
            self.backup_candidates[phase].remove(&c);
        }
        if let (true, [only]) = (waiting, t.running.as_slice()) {
            let c = (self.attempts[only].started, *only);
            self.backup_candidates[phase].insert(c);
            t.candidate = Some(c);
        }
    }

    /// Sets `task`'s accepted attempt (None: its output is gone), keeping
    /// the done counts and the reduces' view of the map outputs true.
    pub(super) fn set_done(&mut self, task: TaskRef, attempt: Option<AttemptId>) {
        let phase = match task {
            TaskRef::Map(_) => 0,
            TaskRef::Reduce(_) => 1,
        };
        let t = self.task_mut(task);
        let was = std::mem::replace(&mut t.done, attempt);
        let counters = t.counters.as_ref().map(PackedCounters::unpack);
        if attempt.is_none() {
            // Its counters leave the job's totals with it.
            t.counters = None;
            if let Some(c) = &counters {
                self.totals.sub(c);
            }
        }
        // The credit moves from the worker that ran the attempt that was
        // accepted to the one that ran the attempt that is.
        if was != attempt {
            if let Some(w) = was.and_then(|a| self.worker_of_mut(a)) {
                w.tally.credit(false, counters.as_ref());
            }
            let kept = counters.as_ref().filter(|_| attempt.is_some());
            if let Some(w) = attempt.and_then(|a| self.worker_of_mut(a)) {
                w.tally.credit(true, kept);
            }
        }
        match (was.is_some(), attempt.is_some()) {
            (false, true) => self.done[phase] += 1,
            (true, false) => self.done[phase] -= 1,
            _ => {}
        }
        if phase == 0 {
            self.outputs_stale = true;
            // Pieces to copy name blocks of the outputs accepted before.
            self.reuse.clear();
        }
        self.refresh(task);
    }

    /// The worker that ran `attempt` (None for an attempt of an earlier
    /// incarnation, whose workers this one never knew).
    pub(super) fn worker_of_mut(
        &mut self,
        attempt: AttemptId,
    ) -> Option<&mut super::tasks::Worker> {
        let w = self.attempts.get(&attempt)?.worker;
        self.workers.get_mut(&w)
    }

    /// The one shared copy of holder address `addr`, noting that map
    /// `only_there`'s output lives only on that holder's disk.
    pub(super) fn holder(&mut self, addr: &str, only_there: Option<u32>) -> Arc<str> {
        let key = match self.held_by.get_key_value(addr) {
            Some((k, _)) => k.clone(),
            None => {
                let k: Arc<str> = Arc::from(addr);
                self.held_by.insert(k.clone(), Vec::new());
                k
            }
        };
        if let (Some(m), Some(list)) = (only_there, self.held_by.get_mut(addr)) {
            list.push(m);
        }
        key
    }

    /// Counts (or uncounts) a live worker placed at `place` among the
    /// readers of the inputs.
    pub(super) fn count_readers(&mut self, place: Option<&mr_protocol::WorkerPlace>, add: bool) {
        let step = |n: &mut u32| {
            if add {
                *n += 1
            } else {
                *n -= 1
            }
        };
        match place {
            Some(p) if !p.shared => {
                if p.local_inputs.iter().any(|&w| w != 0) {
                    if add {
                        self.local_readers += 1
                    } else {
                        self.local_readers -= 1
                    }
                }
                for (w, bits) in p.local_inputs.iter().enumerate() {
                    let mut b = *bits;
                    while b != 0 {
                        let f = w * 64 + b.trailing_zeros() as usize;
                        if let Some(n) = self.file_readers.get_mut(f) {
                            step(n);
                        }
                        b &= b - 1;
                    }
                }
            }
            _ if add => self.all_readers += 1,
            _ => self.all_readers -= 1,
        }
    }
    /// Ends attempt `id` in `state` at `now`, keeping the counts of running
    /// and failed attempts.
    pub(super) fn end(&mut self, id: AttemptId, state: AttemptState, now: Instant) {
        let Some(a) = self.attempts.get_mut(&id) else {
            return;
        };
        if a.state == AttemptState::Running {
            let phase = usize::from(matches!(a.task, TaskRef::Reduce(_)));
            self.running[phase] -= 1;
        }
        // Abandoned is counted as it stands: a late success leaves it.
        match (
            a.state == AttemptState::Abandoned,
            state == AttemptState::Abandoned,
        ) {
            (false, true) => self.tally.abandoned += 1,
            (true, false) => self.tally.abandoned -= 1,
            _ => {}
        }
        if state == AttemptState::Failed {
            self.failed_attempts += 1;
            // Whatever went wrong, the next attempt reduces every key.
            if let TaskRef::Reduce(r) = a.task {
                self.reuse.remove(&r.0);
            }
        }
        a.state = state;
        a.ended = Some(now);
    }
}
