//! The scheduling state machine: which task each worker runs, and what to do
//! when attempts succeed, fail, or vanish with their worker.
//!
//! Pure state: no sockets, no files, no clock. Every method that depends on
//! time takes `now`, so tests drive it step by step. The server wraps it in a
//! mutex and does the I/O around it; it also converts what the journal
//! recovered into a [`Resume`], so the scheduler knows nothing of the journal.
//!
//! This module holds the decisions: admitting workers, assigning tasks,
//! losing workers, resuming; [`report`] takes reports (only from the
//! attempt's own worker): accepts, commits in two steps, and decides what
//! a failure re-runs.
//! [`indexes`] keeps the state derived from the records that makes each
//! decision a lookup; [`place`] decides where maps run and which outputs a lost worker took
//! with it; [`queries`] answers read-only questions for reports and the
//! status page; [`tasks`] is the plain records; [`outcome`] what the
//! scheduler tells its caller.

mod indexes;
mod outcome;
mod outputs;
mod place;
mod plan;
mod queries;
mod report;
mod tally;
mod tasks;

pub use outcome::{AttemptRecord, JobFailure, Outcome, Progress, TaskRef, Verdict};
pub use plan::{PlanInputs, PlannedMaps};
pub use queries::{ListedWorker, PhaseTimes, WorkMark};
pub use report::failure_reason;
pub use tally::{AttemptTally, DurationCounts, WorkerTally, DURATION_BOUNDS};
pub use tasks::MAX_SKIPPED_PER_TASK;

use mr_protocol::plan::{InputFile, SplitPlan};
use mr_protocol::{
    Assignment, AttemptId, Counters, Finished, MapTaskId, MapWork, OutputsPage, PlannedApp,
    ProtocolError, ReduceReuse, ReduceTaskId, ReduceWork, RegisterError, Work, WorkerId,
};
use outputs::OutputsList;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tasks::{
    Attempt, AttemptState, Attempts, PackedCounters, RunningMedian, Task, Worker, Workers,
};
use tracing::info;

/// How many task requests a second all idle workers together are paced to
/// (through the pause a `Wait` suggests).
const IDLE_ASKS_PER_SEC: u64 = 20_000;

/// Tunables of the scheduler.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// R, the number of reduce tasks.
    pub reduces: u32,
    /// Maximum bytes per map split.
    pub split_size: u64,
    /// A worker silent for this long is declared lost.
    pub task_timeout: Duration,
    /// A task whose attempts fail this many times (app panic, I/O) fails the job.
    pub max_attempts: u32,
    /// The app the job requires, if the user named one.
    pub app: Option<String>,
    /// How long an idle worker is told to wait before asking again.
    pub wait: Duration,
    /// Skip records that make app code panic instead of failing the job.
    pub skip_bad_records: bool,
    /// Launch backup attempts for stragglers (off only to measure what
    /// they are worth).
    pub backups: bool,
    /// The least time a task's only attempt must have run before it may
    /// get a backup (the lab's jobs count map runs: the task timeout keeps
    /// its tasks of a few seconds from ever being run twice).
    pub backup_after: Duration,
    /// The size of fixed-length input records (0: lines): splits are cut
    /// between records.
    pub record_size: u32,
}

/// The state of one job's tasks, attempts and workers.
pub struct Scheduler {
    cfg: SchedulerConfig,
    inputs: Vec<InputFile>,
    /// Map splits as ranges of `inputs` by number; empty until the job's
    /// app is known (whole-file apps are never split, and the app is
    /// learned from the first worker). A map's split is spelled out with
    /// names and paths only when it is handed out.
    splits: SplitPlan,
    /// The splits planned by content (`--cache`), used instead of cutting
    /// the inputs by size once the app is known.
    content_plan: Option<SplitPlan>,
    /// Maps whose outputs vanished with their worker, not yet journaled.
    lost_unjournaled: Vec<MapTaskId>,
    app: Option<String>,
    /// Whether the app maps whole files (known with the app).
    whole_file: bool,
    maps: Vec<Task>,
    reduces: Vec<Task>,
    attempts: Attempts,
    workers: Workers,
    next_attempt: u64,
    next_worker: u64,
    /// Per phase (maps, reduces), the durations of accepted attempts.
    durations: [RunningMedian; 2],
    // Indexes kept beside the records so that every decision costs a
    // lookup, not a scan of every task or worker (a job may have a million
    // maps and ten thousand workers): each follows from the records and is
    // brought up to date wherever they change.
    /// Per phase, the idle tasks (not done, nothing running, not being
    /// committed), lowest number first.
    idle: [BTreeSet<u32>; 2],
    /// Per phase, the attempts a backup may be launched for (the only
    /// running attempt of a task still waiting for an output), oldest first.
    backup_candidates: [BTreeSet<(Instant, AttemptId)>; 2],
    /// Per phase, the tasks done.
    done: [usize; 2],
    /// Per phase, the attempts running.
    running: [usize; 2],
    /// Attempts that failed.
    failed_attempts: u64,
    /// Attempts that failed or went with their worker, by reason (see
    /// [`failure_reason`]): what `/metrics` shows.
    failure_reasons: std::collections::BTreeMap<&'static str, u64>,
    /// The sum of the done tasks' counters.
    totals: Counters,
    /// The list of every map's accepted output that reduces read in pages:
    /// the newest built, built once the maps are all done and served until
    /// an output changes and the maps are all done again. A reduce
    /// assignment names its version only, so handing out every reduce at
    /// once costs nothing per map.
    map_outputs: Option<Arc<OutputsList>>,
    /// An accepted map output changed since `map_outputs` was built.
    outputs_stale: bool,
    /// Per shuffle address, maps whose accepted output was kept there
    /// (entries may be stale: checked against the map when used).
    /// (Its keys are also every holder's one shared copy of its address.)
    held_by: HashMap<Arc<str>, Vec<u32>>,
    /// Live workers.
    alive: usize,
    /// Live workers that read every input (the job directory's, or not yet
    /// placed).
    all_readers: usize,
    /// Per input file, live workers outside the job directory that read it.
    file_readers: Vec<u32>,
    /// Live workers outside the job directory that read some input.
    local_readers: usize,
    failure: Option<JobFailure>,
    /// Attempts started by this scheduler (ids may start higher after a restore).
    started: u64,
    /// Attempts in figures, kept as they start and end.
    tally: AttemptTally,
    /// When the first map was assigned, the maps last all became done, and
    /// the last output was committed.
    phase_marks: [Option<Instant>; 3],
    /// Whether reduces wait, once the maps are done, for the cache to say
    /// which of them it holds (see [`Scheduler::hold_reduces`]).
    reduce_gate: ReduceGate,
    /// Whether reduces are asked for their outputs' index (a job that
    /// keeps a cache of its outputs).
    index_reduces: bool,
    /// Per reduce, the pieces of an earlier output it may copy (from the
    /// cache, at [`Scheduler::release_reduces`]). They name blocks of the
    /// map outputs accepted then: all are dropped when a map's accepted
    /// output changes, and a reduce's when one of its attempts fails, so a
    /// retry reduces every key.
    reuse: HashMap<u32, Arc<ReduceReuse>>,
}

/// Whether reduces may be handed out once the maps are done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReduceGate {
    /// As soon as the maps are done.
    Open,
    /// Not until the server has looked the reduces up in the cache, which
    /// it starts when the maps are done.
    Held,
    /// The maps are done and the lookup is under way (started once).
    LookingUp,
}

/// The progress of a previous incarnation of the job, as the server
/// recovered it (from its journal and the files on disk), for
/// [`Scheduler::restore`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resume {
    /// The previous incarnation's number; attempt ids continue past its range.
    pub incarnation: u32,
    /// The app and its whole-file flag, if the previous run had learned it
    /// (so the inputs are split the same way).
    pub app: Option<PlannedApp>,
    /// Accepted map outputs, and where each is.
    pub maps: Vec<ResumedMap>,
    /// Committed reduce outputs.
    pub reduces: Vec<Finished<ReduceTaskId>>,
}

/// A map output accepted before this run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumedMap {
    /// The map, its attempt and counters.
    pub done: Finished<MapTaskId>,
    /// The shuffle address of the worker holding its output, or None when
    /// it is in the job directory.
    pub holder: Option<String>,
}

impl Scheduler {
    /// A scheduler for a job over `inputs`.
    pub fn new(cfg: SchedulerConfig, inputs: Vec<InputFile>) -> Self {
        let reduces = vec![Task::default(); cfg.reduces as usize];
        let (cfg_reduces, inputs_len) = (cfg.reduces, inputs.len());
        Self {
            app: cfg.app.clone(),
            whole_file: false,
            cfg,
            inputs,
            splits: SplitPlan::default(),
            content_plan: None,
            lost_unjournaled: Vec::new(),
            maps: Vec::new(),
            reduces,
            attempts: Attempts::default(),
            workers: Workers::default(),
            next_attempt: 0,
            next_worker: 0,
            durations: Default::default(),
            idle: [BTreeSet::new(), (0..cfg_reduces).collect()],
            backup_candidates: Default::default(),
            done: [0, 0],
            running: [0, 0],
            failed_attempts: 0,
            failure_reasons: Default::default(),
            totals: Counters::default(),
            map_outputs: None,
            outputs_stale: false,
            held_by: HashMap::new(),
            alive: 0,
            all_readers: 0,
            file_readers: vec![0; inputs_len],
            local_readers: 0,
            failure: None,
            started: 0,
            tally: AttemptTally::default(),
            phase_marks: [None; 3],
            reduce_gate: ReduceGate::Open,
            index_reduces: false,
            reuse: HashMap::new(),
        }
    }

    /// Admits a worker running `app`. The first worker fixes the job's app
    /// (unless the user named it) and so how the inputs are split.
    pub fn register(
        &mut self,
        now: Instant,
        app: &str,
        whole_file: bool,
    ) -> Result<WorkerId, RegisterError> {
        self.register_planned(now, app, whole_file, None)
    }

    /// [`Self::register`], with the maps planned beforehand by
    /// [`Self::plan_inputs`]: used if the worker fixes the plan and it was
    /// made for the same split mode, else dropped (another worker planned
    /// in between).
    pub fn register_planned(
        &mut self,
        now: Instant,
        app: &str,
        whole_file: bool,
        planned: Option<PlannedMaps>,
    ) -> Result<WorkerId, RegisterError> {
        if self.is_over() {
            return Err(RegisterError::JobOver);
        }
        match &self.app {
            Some(job_app) if job_app != app => {
                return Err(RegisterError::WrongApp {
                    job_app: job_app.clone(),
                    worker_app: app.to_string(),
                })
            }
            _ => self.app = Some(app.to_string()),
        }
        if self.maps.is_empty() {
            let planned = planned.filter(|p| p.whole_file == whole_file);
            let planned = planned.unwrap_or_else(|| self.planning(whole_file).plan());
            self.install(planned);
        }
        let id = WorkerId(self.next_worker);
        self.next_worker += 1;
        self.workers.insert(
            id,
            Worker {
                last_seen: now,
                alive: true,
                told_exit: false,
                place: None,
                attempts: Vec::new(),
                io_failures: 0,
                resting_until: None,
                label: String::new(),
                tally: WorkerTally::default(),
            },
        );
        self.alive += 1;
        self.count_readers(None, true);
        Ok(id)
    }

    /// Names worker `w` for reports and the status page (see
    /// [`Self::worker_page`]): `more` is appended to the name it has.
    pub fn name_worker(&mut self, w: WorkerId, more: &str) {
        if let Some(w) = self.workers.get_mut(&w) {
            w.label.push_str(more);
        }
    }

    /// Holds reduces back once the maps are done, until
    /// [`Scheduler::release_reduces`]: a job with a cache learns which
    /// reduces it can reuse only from its maps' outputs (a reduce's content
    /// address is made of its partitions'), and must not start one first.
    /// Nothing is held when the maps are done already (the cache was
    /// looked up before the job started).
    pub fn hold_reduces(&mut self) {
        // A job with a cache keeps its reduces' outputs with their index.
        self.index_reduces = true;
        if !self.all_maps_done() {
            self.reduce_gate = ReduceGate::Held;
        }
    }

    /// True, once, when the maps are done and reduces are held: the caller
    /// then looks them up and calls [`Scheduler::release_reduces`].
    pub fn reduce_lookup_due(&mut self) -> bool {
        let due = self.reduce_gate == ReduceGate::Held && self.all_maps_done();
        if due {
            self.reduce_gate = ReduceGate::LookingUp;
        }
        due
    }

    /// Lets reduces be handed out, those in `reused` (committed from the
    /// cache: attempt and counters) counting as done, and those in `reusing_earlier`
    /// told which pieces of an earlier output they may copy. A reduce that
    /// is done or running already is left as it is.
    pub fn release_reduces(
        &mut self,
        reused: &[Finished<ReduceTaskId>],
        reusing_earlier: Vec<(ReduceTaskId, Arc<ReduceReuse>)>,
        now: Instant,
    ) {
        self.reduce_gate = ReduceGate::Open;
        if self.all_maps_done() {
            self.reuse
                .extend(reusing_earlier.into_iter().map(|(r, p)| (r.0, p)));
        }
        for done in reused {
            let Some(t) = self.reduces.get(done.task.0 as usize) else {
                continue;
            };
            if t.done.is_none() && t.running.is_empty() {
                self.set_done(TaskRef::Reduce(done.task), Some(done.attempt));
                self.set_counters(TaskRef::Reduce(done.task), done.counters.clone());
            }
        }
        if self.is_done() && self.phase_marks[2].is_none() {
            self.phase_marks[2] = Some(now);
        }
    }

    /// Whether map `m`'s accepted output is in the shared job directory.
    pub fn map_in_job_dir(&self, m: MapTaskId) -> bool {
        self.maps
            .get(m.0 as usize)
            .is_some_and(|t| t.done.is_some() && t.in_job_dir)
    }

    /// Whether map `m` has an accepted output.
    pub fn map_done(&self, m: MapTaskId) -> bool {
        self.maps
            .get(m.0 as usize)
            .is_some_and(|t| t.done.is_some())
    }

    /// Records that `worker` was heard from. False if it is unknown or was
    /// declared lost, in which case it must register again.
    pub fn touch(&mut self, worker: WorkerId, now: Instant) -> bool {
        match self.workers.get_mut(&worker) {
            Some(w) if w.alive => {
                w.last_seen = now;
                true
            }
            _ => false,
        }
    }

    /// The job's app, once known.
    pub fn app(&self) -> Option<&str> {
        self.app.as_deref()
    }

    /// True when every output is committed.
    pub fn is_done(&self) -> bool {
        self.done[1] == self.reduces.len()
    }

    /// Why the job failed, if it did.
    pub fn failure(&self) -> Option<&JobFailure> {
        self.failure.as_ref()
    }

    fn is_over(&self) -> bool {
        self.is_done() || self.failure.is_some()
    }

    fn all_maps_done(&self) -> bool {
        !self.maps.is_empty() && self.done[0] == self.maps.len()
    }

    fn task_mut(&mut self, task: TaskRef) -> &mut Task {
        match task {
            TaskRef::Map(m) => &mut self.maps[m.0 as usize],
            TaskRef::Reduce(r) => &mut self.reduces[r.0 as usize],
        }
    }

    /// Decides what `worker` does next.
    pub fn assign(&mut self, worker: WorkerId, now: Instant) -> Assignment {
        if self.is_over() {
            if let Some(w) = self.workers.get_mut(&worker) {
                w.told_exit = true;
            }
            return Assignment::Exit;
        }
        // The more workers, the longer each waits before asking again, so
        // that idle workers together ask at most IDLE_ASKS_PER_SEC times a
        // second (10,000 of them asking every 50 ms would be 200,000
        // requests a second for nothing), but never more than a second.
        let spread = self.alive as u64 * 1000 / IDLE_ASKS_PER_SEC;
        let wait = Assignment::Wait {
            millis: (self.cfg.wait.as_millis() as u64).max(spread).min(1000),
        };
        if self.maps.is_empty() {
            return wait;
        }
        let resting = self
            .workers
            .get(&worker)
            .and_then(|w| w.resting_until)
            .is_some_and(|t| now < t);
        if resting {
            return wait;
        }
        let task = if !self.all_maps_done() {
            self.pick(worker, now, true)
        } else if self.reduce_gate != ReduceGate::Open {
            return wait;
        } else {
            self.pick(worker, now, false)
        };
        let Some(task) = task else { return wait };
        let attempt = AttemptId(self.next_attempt);
        self.next_attempt += 1;
        self.started += 1;
        match task {
            TaskRef::Map(_) => self.tally.maps_started += 1,
            TaskRef::Reduce(_) => self.tally.reduces_started += 1,
        }
        if self.phase_marks[0].is_none() {
            self.phase_marks[0] = Some(now);
        }
        self.attempts.insert(
            attempt,
            Attempt {
                task,
                worker,
                started: now,
                ended: None,
                state: AttemptState::Running,
            },
        );
        if let Some(w) = self.workers.get_mut(&worker) {
            w.tally.given += 1;
            let attempts = &self.attempts;
            w.attempts.retain(|a| {
                attempts
                    .get(a)
                    .is_some_and(|a| a.state == AttemptState::Running)
            });
            w.attempts.push(attempt);
        }
        let running = &mut self.task_mut(task).running;
        if !running.is_empty() {
            info!(%task, %attempt, %worker, "straggler: launching a backup attempt");
        }
        running.push(attempt);
        self.running[usize::from(matches!(task, TaskRef::Reduce(_)))] += 1;
        self.refresh(task);
        match task {
            TaskRef::Map(m) => Assignment::Work(Work::Map(MapWork {
                task: m,
                attempt,
                split: Arc::new(self.splits.split(m.0 as usize, &self.inputs)),
                skip: self.maps[m.0 as usize].skip.clone(),
            })),
            TaskRef::Reduce(r) => Assignment::Work(Work::Reduce(ReduceWork {
                task: r,
                attempt,
                outputs: self
                    .map_outputs()
                    .expect("reduce assigned before every map finished")
                    .version(),
                skip: self.reduces[r.0 as usize].skip.clone(),
                index: self.index_reduces,
                reuse: self.reuse.get(&r.0).cloned(),
            })),
        }
    }

    /// The list of accepted map outputs reduces read: rebuilt (as a new
    /// version) when an output changed and the maps are all done again,
    /// else the newest built, stale or not (a reduce reading a lost output
    /// from it fails to fetch it and says so, as one assigned before the
    /// loss would). None before the maps were first all done.
    fn map_outputs(&mut self) -> Option<Arc<OutputsList>> {
        let fresh = self.map_outputs.is_some() && !self.outputs_stale;
        if !fresh && self.done[0] == self.maps.len() {
            let version = self.map_outputs.as_ref().map_or(1, |l| l.version + 1);
            self.map_outputs = Some(Arc::new(OutputsList::build(version, &self.maps)));
            self.outputs_stale = false;
        }
        self.map_outputs.clone()
    }

    /// The page of the list of accepted map outputs from map `from` on:
    /// of the newest list, whatever `version` asked for (the reader starts
    /// again when they differ).
    pub fn outputs_page(&mut self, version: u64, from: u32) -> Result<OutputsPage, ProtocolError> {
        let list = self
            .map_outputs()
            .ok_or(ProtocolError::NoOutputs(version))?;
        Ok(list.page(from))
    }

    /// Picks an idle task of the phase, else a backup for a straggler.
    fn pick(&self, worker: WorkerId, now: Instant, maps: bool) -> Option<TaskRef> {
        let phase = usize::from(!maps);
        if maps {
            if let Some(i) = self.pick_map(worker) {
                return Some(TaskRef::Map(MapTaskId(i)));
            }
        } else if let Some(&i) = self.idle[1].first() {
            return Some(TaskRef::Reduce(ReduceTaskId(i)));
        }
        // Backup attempts, as in the paper, but only for genuine stragglers:
        // once the phase has no idle work left, a task whose only attempt has
        // run for more than twice the phase's median and at least
        // `backup_after` (the task timeout unless --backup-after) gets a
        // second attempt on another worker, the longest running first.
        // First to finish wins.
        if !self.cfg.backups {
            return None;
        }
        let median = self.durations[phase].median()?;
        let threshold = (median * 2).max(self.cfg.backup_after);
        for &(started, a) in &self.backup_candidates[phase] {
            if now.duration_since(started) <= threshold {
                // The rest started later still.
                return None;
            }
            let a = &self.attempts[&a];
            if a.worker != worker {
                return Some(a.task);
            }
        }
        None
    }

    /// Declares `worker` lost: its running attempts are abandoned and their
    /// tasks become idle (unless a backup is still running). Outputs it
    /// produced into the shared job directory stay valid; map outputs kept
    /// on its own disk went with it, so those maps run again (as in the
    /// paper) while any reduce still needs them. Returns the tasks reissued.
    pub fn worker_lost(&mut self, worker: WorkerId, now: Instant) -> Vec<TaskRef> {
        let Some(w) = self.workers.get_mut(&worker) else {
            return Vec::new();
        };
        if !w.alive {
            return Vec::new();
        }
        w.alive = false;
        let place = w.place.clone();
        let mine = std::mem::take(&mut w.attempts);
        self.alive -= 1;
        self.count_readers(place.as_ref(), false);
        let mut reissued = self.outputs_gone_with(place.as_ref());
        for id in mine {
            let Some(a) = self.attempts.get_mut(&id) else {
                continue;
            };
            if a.state != AttemptState::Running {
                continue;
            }
            let task_ref = a.task;
            *self.failure_reasons.entry("worker_lost").or_default() += 1;
            self.end(id, AttemptState::Abandoned, now);
            let task = self.task_mut(task_ref);
            task.running.retain(|&x| x != id);
            if task.done.is_none() && task.running.is_empty() && task.committing.is_none() {
                reissued.push(task_ref);
            }
            self.refresh(task_ref);
        }
        reissued
    }

    /// Declares lost every worker not heard from within the task timeout.
    /// Returns the workers lost.
    pub fn expire(&mut self, now: Instant) -> Vec<WorkerId> {
        let timeout = self.cfg.task_timeout;
        let silent: Vec<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, w)| w.alive && now.duration_since(w.last_seen) > timeout)
            .map(|(id, _)| id)
            .collect();
        for &id in &silent {
            self.worker_lost(id, now);
        }
        silent
    }

    /// Takes over the progress of a previous incarnation: the app (and so the
    /// split plan), accepted map outputs and committed reduces. Attempt ids
    /// continue in a range of their own (`incarnation << 32`), so reports
    /// from the previous incarnation's attempts can never be mistaken for new ones.
    pub fn restore(&mut self, r: &Resume) {
        self.next_attempt = u64::from(r.incarnation) << 32;
        let Some(app) = &r.app else {
            return;
        };
        self.app = Some(app.name.clone());
        let planned = self.planning(app.whole_file).plan();
        self.install(planned);
        for ResumedMap { done, holder } in &r.maps {
            let m = done.task;
            if let Some(t) = self.maps.get_mut(m.0 as usize) {
                t.in_job_dir = holder.is_none();
                let holder = holder.as_deref().map(|addr| self.holder(addr, Some(m.0)));
                self.maps[m.0 as usize].holder = holder;
                self.set_done(TaskRef::Map(m), Some(done.attempt));
                self.set_counters(TaskRef::Map(m), done.counters.clone());
            }
        }
        for done in &r.reduces {
            if (done.task.0 as usize) < self.reduces.len() {
                self.set_done(TaskRef::Reduce(done.task), Some(done.attempt));
                self.set_counters(TaskRef::Reduce(done.task), done.counters.clone());
            }
        }
    }

    /// Records the counters of `task`'s accepted attempt.
    pub fn set_counters(&mut self, task: TaskRef, c: Counters) {
        let t = self.task_mut(task);
        t.output_bytes = c.map_output_bytes;
        let done = t.done;
        let old = t.counters.replace(PackedCounters::pack(&c));
        // The job's totals, and the worker's that ran it, hold done tasks'
        // counters, each once.
        let old = old.filter(|_| done.is_some()).map(|o| o.unpack());
        if let Some(old) = &old {
            self.totals.sub(old);
        }
        if let Some(a) = done {
            self.totals.add(&c);
            if let Some(w) = self.worker_of_mut(a) {
                w.tally.recount(old.as_ref(), &c);
            }
        }
        if let TaskRef::Map(_) = task {
            // A reduce is told each map output's size.
            self.outputs_stale = true;
        }
    }

    /// Of the attempts `worker` says it holds, those it should stop: another
    /// attempt finished their task, or the worker was declared lost.
    pub fn cancellable(&self, worker: WorkerId, held: &[AttemptId]) -> Vec<AttemptId> {
        held.iter()
            .copied()
            .filter(|id| {
                self.attempts
                    .get(id)
                    .is_some_and(|a| a.worker == worker && a.state == AttemptState::Abandoned)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
