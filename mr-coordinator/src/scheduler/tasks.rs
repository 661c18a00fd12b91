//! The scheduler's records: one per task, attempt and worker. Plain data;
//! the decisions about them are in [`super`].

use super::TaskRef;
use mr_protocol::{AttemptId, BadRecord, Counters, TaskFailure, WorkerId, WorkerPlace};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One map or reduce task.
#[derive(Clone, Debug, Default)]
pub(crate) struct Task {
    /// The accepted attempt, once the task is done.
    pub(crate) done: Option<AttemptId>,
    /// A reduce attempt whose output the server is publishing (completing
    /// its upload to an object store): until it says how that went, no
    /// other attempt of the task may win and the task is not reissued.
    pub(crate) committing: Option<AttemptId>,
    /// Attempts currently running (more than one only for backups).
    pub(crate) running: Vec<AttemptId>,
    /// Failed attempts that count against `max_attempts`.
    pub(crate) failures: u32,
    /// Times the accepted output was later found lost or corrupt.
    pub(crate) lost: u32,
    /// The last failure, for the job's error message.
    pub(crate) last_failure: Option<TaskFailure>,
    /// Records later attempts skip (`--skip-bad-records`).
    pub(crate) skip: Vec<BadRecord>,
    /// The accepted attempt's counters, packed.
    pub(crate) counters: Option<PackedCounters>,
    /// For a done map: its run file's size (what reduces are told).
    pub(crate) output_bytes: u64,
    /// For a done map: the shuffle address of the worker that made it.
    pub(crate) holder: Option<Arc<str>>,
    /// For a done map: whether its output is in the shared job directory
    /// (else only on the disk of the worker at `holder`).
    pub(crate) in_job_dir: bool,
    /// This task's entry in the scheduler's set of backup candidates (its
    /// only running attempt, by start), so the entry can be taken out.
    pub(crate) candidate: Option<(Instant, AttemptId)>,
}

/// Most bad records one task may skip before the job fails anyway: past
/// this, the input or the app is broken, not a few records.
pub const MAX_SKIPPED_PER_TASK: usize = 100;

/// Where an attempt stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AttemptState {
    Running,
    Succeeded,
    Failed,
    /// Its worker was lost or another attempt won; a late success is still
    /// usable if the task is not yet done.
    Abandoned,
}

/// One execution of a task on a worker.
#[derive(Clone, Debug)]
pub(crate) struct Attempt {
    pub(crate) task: TaskRef,
    pub(crate) worker: WorkerId,
    pub(crate) started: Instant,
    /// When it stopped running (succeeded, failed, or was abandoned).
    pub(crate) ended: Option<Instant>,
    pub(crate) state: AttemptState,
}

/// A registered worker.
#[derive(Clone, Debug)]
pub(crate) struct Worker {
    pub(crate) last_seen: Instant,
    pub(crate) alive: bool,
    pub(crate) told_exit: bool,
    /// What it announced; None until then (treated as a worker that sees
    /// the job directory and every input).
    pub(crate) place: Option<WorkerPlace>,
    /// Attempts given to it that may still be running (ended ones are
    /// pruned when it is given the next), so losing it is not a scan of
    /// every attempt of the job.
    pub(crate) attempts: Vec<AttemptId>,
    /// Attempts failed in a row on its own disk (`TaskFailure::Io`).
    pub(crate) io_failures: u32,
    /// Until when it is given no new work after such a failure.
    pub(crate) resting_until: Option<Instant>,
    /// How reports and the status page name it (`host:pid`, and where its
    /// outputs live once it announced a disk of its own); empty until named.
    pub(crate) label: String,
    /// What it was given and did, in figures.
    pub(crate) tally: super::WorkerTally,
}

/// A task's counters, kept as variable-length integers: a million tasks'
/// counters are most of a large job's memory as plain structs (168 bytes
/// each, mostly zeros), and they are read only for reports and the summary.
#[derive(Clone, Debug)]
pub(crate) struct PackedCounters(Box<[u8]>);

impl PackedCounters {
    fn options() -> impl bincode::Options {
        use bincode::Options;
        bincode::DefaultOptions::new().with_varint_encoding()
    }

    pub(crate) fn pack(c: &Counters) -> PackedCounters {
        use bincode::Options;
        let bytes = Self::options()
            .serialize(c)
            .expect("counters always serialize");
        PackedCounters(bytes.into_boxed_slice())
    }

    pub(crate) fn unpack(&self) -> Counters {
        use bincode::Options;
        Self::options()
            .deserialize(&self.0)
            .expect("packed by pack() in this process")
    }
}

/// Every attempt of this incarnation, by id. Ids are handed out one after
/// another from the incarnation's base, so the record of an attempt is at
/// its id's distance from the first: a lookup is an index, and a million
/// attempts cost their records and nothing more.
#[derive(Debug, Default)]
pub(crate) struct Attempts {
    base: u64,
    list: Vec<Attempt>,
}

impl Attempts {
    fn slot(&self, id: AttemptId) -> Option<usize> {
        id.0.checked_sub(self.base).map(|i| i as usize)
    }

    pub(crate) fn get(&self, id: &AttemptId) -> Option<&Attempt> {
        self.slot(*id).and_then(|i| self.list.get(i))
    }

    pub(crate) fn get_mut(&mut self, id: &AttemptId) -> Option<&mut Attempt> {
        self.slot(*id).and_then(|i| self.list.get_mut(i))
    }

    /// Records attempt `id`, which must be the one after the last.
    pub(crate) fn insert(&mut self, id: AttemptId, a: Attempt) {
        if self.list.is_empty() {
            self.base = id.0;
        }
        assert_eq!(
            Some(self.list.len()),
            self.slot(id),
            "attempt ids are handed out in order"
        );
        self.list.push(a);
    }

    /// Every attempt, in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (AttemptId, &Attempt)> {
        self.range(0, usize::MAX)
    }

    /// Up to `limit` attempts from the `from`th recorded, in id order.
    pub(crate) fn range(
        &self,
        from: u64,
        limit: usize,
    ) -> impl Iterator<Item = (AttemptId, &Attempt)> {
        let base = self.base;
        let from = usize::try_from(from)
            .unwrap_or(usize::MAX)
            .min(self.list.len());
        self.list[from..]
            .iter()
            .take(limit)
            .enumerate()
            .map(move |(i, a)| (AttemptId(base + (from + i) as u64), a))
    }

    /// How many attempts are recorded.
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }
}

impl std::ops::Index<&AttemptId> for Attempts {
    type Output = Attempt;
    fn index(&self, id: &AttemptId) -> &Attempt {
        self.get(id).expect("a known attempt")
    }
}

/// Every worker that registered, by id (handed out 0, 1, 2, ...).
#[derive(Debug, Default)]
pub(crate) struct Workers {
    list: Vec<Worker>,
}

impl Workers {
    pub(crate) fn get(&self, id: &WorkerId) -> Option<&Worker> {
        self.list.get(id.0 as usize)
    }

    pub(crate) fn get_mut(&mut self, id: &WorkerId) -> Option<&mut Worker> {
        self.list.get_mut(id.0 as usize)
    }

    /// Records worker `id`, which must be the next id.
    pub(crate) fn insert(&mut self, id: WorkerId, w: Worker) {
        assert_eq!(
            id.0 as usize,
            self.list.len(),
            "worker ids are handed out in order"
        );
        self.list.push(w);
    }

    /// How many workers registered.
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// Every worker, in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (WorkerId, &Worker)> {
        self.list
            .iter()
            .enumerate()
            .map(|(i, w)| (WorkerId(i as u64), w))
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &Worker> {
        self.list.iter()
    }
}

/// The median of a growing set of durations, kept in two heaps so that a
/// scheduling decision costs a peek, not a sort of every past attempt.
#[derive(Clone, Debug, Default)]
pub(crate) struct RunningMedian {
    /// The smaller half (a max-heap): `n / 2` values.
    lower: BinaryHeap<Duration>,
    /// The larger half (a min-heap): the other `n - n / 2`.
    upper: BinaryHeap<Reverse<Duration>>,
}

impl RunningMedian {
    /// Adds one duration.
    pub(crate) fn push(&mut self, d: Duration) {
        match self.upper.peek() {
            Some(Reverse(least)) if d >= *least => self.upper.push(Reverse(d)),
            _ => self.lower.push(d),
        }
        let n = self.lower.len() + self.upper.len();
        while self.lower.len() > n / 2 {
            let d = self.lower.pop().expect("non-empty");
            self.upper.push(Reverse(d));
        }
        while self.lower.len() < n / 2 {
            let Reverse(d) = self.upper.pop().expect("non-empty");
            self.lower.push(d);
        }
    }

    /// The `n / 2`-th smallest (0-based) of the `n` durations, if any.
    pub(crate) fn median(&self) -> Option<Duration> {
        self.upper.peek().map(|Reverse(d)| *d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_counters_unpack_to_what_was_packed() {
        let mut c = Counters {
            input_bytes: u64::MAX,
            map_output_records: 12345,
            ..Counters::default()
        };
        c.app.insert("bad dates".into(), 7);
        let packed = PackedCounters::pack(&c);
        assert_eq!(packed.unpack(), c);
        // Zeros take a byte each.
        assert!(PackedCounters::pack(&Counters::default()).0.len() < 40);
    }

    #[test]
    fn the_running_median_is_the_middle_of_the_sorted_durations() {
        let mut m = RunningMedian::default();
        assert_eq!(m.median(), None);
        let mut all = Vec::new();
        // A fixed pseudo-random sequence with repeats.
        let mut x = 7u64;
        for _ in 0..500 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let d = Duration::from_millis((x >> 33) % 97);
            m.push(d);
            all.push(d);
            let mut sorted = all.clone();
            sorted.sort_unstable();
            assert_eq!(m.median(), Some(sorted[sorted.len() / 2]));
        }
    }
}
