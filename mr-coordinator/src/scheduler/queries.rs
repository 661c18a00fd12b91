//! Read-only questions about the scheduler's state that no scheduling
//! decision depends on: the job's counters, phase times, the attempt log and
//! progress counts (for reports, the status page and logs), what the
//! server needs to name files and journal records, what the cache's
//! lookup and a replay need to know of the tasks, whether a waiting
//! worker could now be given something ([`WorkMark`]), and whether the
//! workers have all left at the job's end.

use super::tasks::AttemptState;
use super::{
    AttemptRecord, AttemptTally, Outcome, Progress, ReduceGate, Scheduler, TaskRef, WorkerTally,
};
use mr_protocol::replay::ReplayPlan;
use mr_protocol::{AttemptId, Counters, MapTaskId, PlannedApp, ReduceTaskId, WorkerId};
use std::time::{Duration, Instant};

/// What [`Scheduler::assign`] could hand out at one moment, compared
/// before and after a change to learn whether workers waiting for work
/// should ask again now (see [`WorkMark::wakes_after`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkMark {
    /// Idle tasks of the phase being handed out (0 while none may be).
    open: usize,
    /// Whether the job is over (every worker is then told to exit).
    over: bool,
}

impl WorkMark {
    /// True if this mark, taken after a change, shows more to hand out than
    /// `before` did, or the job's end. Backups for stragglers are not
    /// counted: they become due with time, which waiting workers see when
    /// their wait ends.
    pub fn wakes_after(self, before: WorkMark) -> bool {
        self.open > before.open || (self.over && !before.over)
    }
}

/// One worker of a [`Scheduler::worker_page`].
pub struct ListedWorker {
    /// Its id.
    pub id: WorkerId,
    /// Its name (see [`Scheduler::name_worker`]).
    pub label: String,
    /// Whether it is still part of the job.
    pub alive: bool,
    /// What it was given and did.
    pub tally: WorkerTally,
}

/// How long each phase of a job took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhaseTimes {
    /// From the first map assigned to the maps' last completion.
    pub map: Duration,
    /// From then to the last commit.
    pub reduce: Duration,
}

impl Scheduler {
    /// The attempt whose output of reduce `r` is being committed, if any.
    pub fn committing(&self, r: ReduceTaskId) -> Option<AttemptId> {
        self.reduces.get(r.0 as usize).and_then(|t| t.committing)
    }

    /// True when every live worker has been told to exit.
    pub fn all_workers_dismissed(&self) -> bool {
        self.workers.values().all(|w| !w.alive || w.told_exit)
    }

    /// True once no worker is connected (every one has left or was lost):
    /// at the job's end, the sign that each heard "exit".
    pub fn all_workers_gone(&self) -> bool {
        self.workers.values().all(|w| !w.alive)
    }

    /// What could be handed out now (see [`WorkMark`]).
    pub fn work_mark(&self) -> WorkMark {
        let open = if self.maps.is_empty() {
            0
        } else if !self.all_maps_done() {
            self.idle[0].len()
        } else if self.reduce_gate != ReduceGate::Open {
            0
        } else {
            self.idle[1].len()
        };
        WorkMark {
            open,
            over: self.is_over(),
        }
    }

    /// The app and its whole-file flag once the inputs are split (what a
    /// journal must record to split them the same way after a restart).
    pub fn planned_app(&self) -> Option<PlannedApp> {
        if self.maps.is_empty() {
            return None;
        }
        self.app.clone().map(|name| PlannedApp {
            name,
            whole_file: self.whole_file,
        })
    }

    /// The job's counters: sums over the accepted attempts of done tasks
    /// (a map whose output was lost and re-run counts once).
    pub fn counters(&self) -> Counters {
        self.totals.clone()
    }

    /// Wall times of the map and reduce phases; a phase still under way is
    /// measured up to `now`.
    pub fn phase_times_at(&self, now: Instant) -> PhaseTimes {
        let [start, maps, end] = self.phase_marks;
        let span = |a: Option<Instant>, b: Option<Instant>| {
            a.map_or(Duration::ZERO, |a| {
                b.unwrap_or(now).saturating_duration_since(a)
            })
        };
        let maps_done = self.all_maps_done();
        let map_end = if maps_done { maps } else { None };
        let reduce_start = if maps_done { maps } else { None };
        PhaseTimes {
            map: span(start, map_end),
            reduce: span(reduce_start, end),
        }
    }

    /// Number of input files.
    pub fn input_count(&self) -> usize {
        self.inputs.len()
    }

    /// How many workers registered.
    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// Up to `limit` workers from the `from`th registered, each with its
    /// name, whether it is still alive and what it did.
    pub fn worker_page(&self, from: usize, limit: usize) -> Vec<ListedWorker> {
        self.workers
            .iter()
            .skip(from)
            .take(limit)
            .map(|(id, w)| ListedWorker {
                id,
                label: w.label.clone(),
                alive: w.alive,
                tally: w.tally,
            })
            .collect()
    }

    /// Every attempt ever started for reduce tasks, for cleaning up temp outputs.
    pub fn reduce_attempts(&self) -> Vec<(ReduceTaskId, AttemptId)> {
        self.attempts
            .iter()
            .filter_map(|(id, a)| match a.task {
                TaskRef::Reduce(r) => Some((r, id)),
                TaskRef::Map(_) => None,
            })
            .collect()
    }

    /// Every attempt of this incarnation, in the order started.
    pub fn attempt_log(&self) -> Vec<AttemptRecord> {
        self.attempt_page(0, usize::MAX)
    }

    /// How many attempts this incarnation started.
    pub fn attempt_count(&self) -> u64 {
        self.attempts.len() as u64
    }

    /// Up to `limit` attempts from the `from`th this incarnation started:
    /// a page costs its own length, whatever the job's size.
    pub fn attempt_page(&self, from: u64, limit: usize) -> Vec<AttemptRecord> {
        self.attempts
            .range(from, limit)
            .map(|(id, a)| AttemptRecord {
                attempt: id,
                task: a.task,
                worker: a.worker,
                started: a.started,
                ended: a.ended,
                outcome: match a.state {
                    AttemptState::Running => Outcome::Running,
                    AttemptState::Succeeded => Outcome::Succeeded,
                    AttemptState::Failed => Outcome::Failed,
                    AttemptState::Abandoned => Outcome::Abandoned,
                },
            })
            .collect()
    }

    /// The job's attempts in figures (started, abandoned, run times).
    pub fn attempt_tally(&self) -> &AttemptTally {
        &self.tally
    }

    /// Attempts that failed or went with their worker, by reason.
    pub fn failure_reasons(&self) -> &std::collections::BTreeMap<&'static str, u64> {
        &self.failure_reasons
    }

    /// Counts for progress lines.
    pub fn progress(&self) -> Progress {
        Progress {
            maps_done: self.done[0],
            maps: self.maps.len(),
            reduces_done: self.done[1],
            reduces: self.reduces.len(),
            attempts: self.started,
            workers_alive: self.alive,
            maps_running: self.running[0],
            reduces_running: self.running[1],
            failed_attempts: self.failed_attempts,
        }
    }
}

impl Scheduler {
    /// What the report's replay section is written from (see
    /// [`ReplayPlan`]): the app's arguments (`app_args`; none when the job
    /// named no app, and then the name its workers registered with), R,
    /// the plan and which accepted map outputs are in `job_dir`: a few
    /// bytes a map.
    pub fn replay_plan(
        &self,
        app_args: &[String],
        job_dir: &std::path::Path,
        shape: &mr_protocol::JobShape,
    ) -> ReplayPlan {
        ReplayPlan {
            shape: shape.clone(),
            app_args: match app_args {
                [] => self.app.iter().cloned().collect(),
                args => args.to_vec(),
            },
            reduces: self.cfg.reduces,
            plan: self.splits.clone(),
            inputs: self.inputs.clone(),
            in_job_dir: self
                .maps
                .iter()
                .map(|t| t.done.filter(|_| t.in_job_dir))
                .collect(),
            job_dir: job_dir.to_path_buf(),
        }
    }

    /// The reduces not done.
    pub fn reduces_left(&self) -> Vec<ReduceTaskId> {
        (0..self.reduces.len() as u32)
            .map(ReduceTaskId)
            .filter(|r| self.reduces[r.0 as usize].done.is_none())
            .collect()
    }

    /// Map `m`'s accepted attempt, if its output is in the shared job
    /// directory (not on a worker's disk).
    pub fn accepted_in_job_dir(&self, m: MapTaskId) -> Option<AttemptId> {
        let t = self.maps.get(m.0 as usize)?;
        t.done.filter(|_| t.in_job_dir)
    }
}
