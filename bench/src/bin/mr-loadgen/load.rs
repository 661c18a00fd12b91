//! What every fake worker shares: the tasks acknowledged (and, at a kill,
//! frozen), latencies, the times that make the figures, unexpected answers.

use crate::figures::Figures;
use crate::worker::Kind;
use crate::Args;
use mr_protocol::join::JoinSecret;
use mr_protocol::Work;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Tasks acknowledged, frozen at the kill.
pub(crate) struct Acked {
    pub(crate) maps: Vec<bool>,
    pub(crate) reduces: Vec<bool>,
}

impl Acked {
    pub(crate) fn count(&self) -> u64 {
        self.maps
            .iter()
            .chain(&self.reduces)
            .filter(|&&a| a)
            .count() as u64
    }
}

/// State every fake worker shares: what was acknowledged, latencies, times.
pub(crate) struct Load {
    pub(crate) endpoint: String,
    pub(crate) secret: JoinSecret,
    pub(crate) workers: u32,
    /// How long each task "runs".
    pub(crate) task_time: Duration,
    pub(crate) maps_acked: Vec<AtomicBool>,
    pub(crate) reduces_acked: Vec<AtomicBool>,
    pub(crate) acked: AtomicU64,
    /// The acknowledged tasks as of the kill.
    pub(crate) frozen: OnceLock<Acked>,
    /// Tasks acknowledged before the kill that a later coordinator handed out.
    pub(crate) reissued: AtomicU64,
    /// Registrations after the kill.
    pub(crate) rejoined: AtomicU64,
    /// First registrations, and when the last worker's came (the end of
    /// the join storm: every connection's TLS handshake).
    pub(crate) joined: AtomicU64,
    pub(crate) all_joined: AtomicU64,
    /// Times, as nanoseconds since `origin` (0: not yet).
    pub(crate) origin: Instant,
    pub(crate) first_work: AtomicU64,
    pub(crate) last_ack: AtomicU64,
    pub(crate) restarted: AtomicU64,
    pub(crate) first_work_after: AtomicU64,
    pub(crate) all_rejoined: AtomicU64,
    /// Task requests: when sent (ns since the origin) and their latency
    /// (microseconds).
    pub(crate) request_us: Mutex<Vec<(u64, u32, Kind)>>,
    /// Latencies of accepted reports (microseconds).
    pub(crate) report_us: Mutex<Vec<u32>>,
    /// Each worker's wait from its start to its first task (microseconds).
    pub(crate) first_task_us: Mutex<Vec<u32>>,
    /// Each worker's wait from its start to its first connection (us).
    pub(crate) connected_us: Mutex<Vec<u32>>,
    /// Unexpected answers (a refused registration, a protocol error).
    pub(crate) errors: Mutex<Vec<String>>,
    /// The job is over: workers stop reconnecting.
    pub(crate) done: AtomicBool,
}

impl Load {
    pub(crate) fn new(args: &Args, endpoint: String, secret: JoinSecret) -> Load {
        let flags = |n: u32| (0..n).map(|_| AtomicBool::new(false)).collect();
        Load {
            endpoint,
            secret,
            workers: args.workers,
            task_time: Duration::from_millis(args.task_ms),
            maps_acked: flags(args.maps),
            reduces_acked: flags(args.reduces),
            acked: AtomicU64::new(0),
            frozen: OnceLock::new(),
            reissued: AtomicU64::new(0),
            rejoined: AtomicU64::new(0),
            origin: Instant::now(),
            first_work: AtomicU64::new(0),
            last_ack: AtomicU64::new(0),
            restarted: AtomicU64::new(0),
            first_work_after: AtomicU64::new(0),
            all_rejoined: AtomicU64::new(0),
            request_us: Mutex::new(Vec::new()),
            joined: AtomicU64::new(0),
            all_joined: AtomicU64::new(0),
            report_us: Mutex::new(Vec::new()),
            first_task_us: Mutex::new(Vec::new()),
            connected_us: Mutex::new(Vec::new()),
            errors: Mutex::new(Vec::new()),
            done: AtomicBool::new(false),
        }
    }

    /// Nanoseconds since the origin, never 0 (0 means "not yet").
    pub(crate) fn now(&self) -> u64 {
        (self.origin.elapsed().as_nanos() as u64).max(1)
    }

    /// Sets `at` to now unless it is already set.
    pub(crate) fn mark(&self, at: &AtomicU64) {
        let _ = at.compare_exchange(0, self.now(), Ordering::SeqCst, Ordering::SeqCst);
    }

    pub(crate) fn error(&self, e: String) {
        let mut errors = self.errors.lock().unwrap();
        if errors.len() < 10 {
            errors.push(e);
        }
    }

    /// The task of `work` and whether it is a map.
    pub(crate) fn task(work: &Work) -> (bool, usize) {
        match work {
            Work::Map(m) => (true, m.task.0 as usize),
            Work::Reduce(r) => (false, r.task.0 as usize),
        }
    }

    /// A worker was handed `work`: after a restart, it must not be a task
    /// acknowledged before the kill.
    pub(crate) fn assigned(&self, work: &Work) {
        self.mark(&self.first_work);
        // Attempt ids carry the coordinator's incarnation in their top half.
        if work.attempt().0 >> 32 == 0 {
            return;
        }
        self.mark(&self.first_work_after);
        if let Some(frozen) = self.frozen.get() {
            let (map, i) = Load::task(work);
            let list = if map { &frozen.maps } else { &frozen.reduces };
            if list.get(i).copied().unwrap_or(false) {
                self.reissued.fetch_add(1, Ordering::SeqCst);
                self.error(format!(
                    "{} was acknowledged before the kill and handed out again",
                    work.task_name()
                ));
            }
        }
    }

    /// `work`'s report was accepted.
    pub(crate) fn acknowledged(&self, work: &Work) {
        let (map, i) = Load::task(work);
        let flags = if map {
            &self.maps_acked
        } else {
            &self.reduces_acked
        };
        if !flags[i].swap(true, Ordering::SeqCst) {
            self.acked.fetch_add(1, Ordering::SeqCst);
        }
        self.last_ack.fetch_max(self.now(), Ordering::SeqCst);
    }

    /// Nanoseconds since the origin of `t` (0 never: see `now`).
    pub(crate) fn at(&self, t: Instant) -> u64 {
        (t.saturating_duration_since(self.origin).as_nanos() as u64).max(1)
    }

    /// A worker registered; after a kill, counts it as rejoined.
    pub(crate) fn registered(&self) {
        if self.restarted.load(Ordering::SeqCst) == 0
            && self.joined.fetch_add(1, Ordering::SeqCst) + 1 == u64::from(self.workers)
        {
            self.mark(&self.all_joined);
        }
        if self.restarted.load(Ordering::SeqCst) != 0
            && self.rejoined.fetch_add(1, Ordering::SeqCst) + 1 == u64::from(self.workers)
        {
            self.mark(&self.all_rejoined);
        }
    }

    /// Freezes the set of acknowledged tasks (at the kill).
    pub(crate) fn freeze(&self) -> &Acked {
        let read = |v: &[AtomicBool]| v.iter().map(|a| a.load(Ordering::SeqCst)).collect();
        self.frozen.get_or_init(|| Acked {
            maps: read(&self.maps_acked),
            reduces: read(&self.reduces_acked),
        })
    }

    /// Copies what the workers measured into `f`.
    pub(crate) fn fill(&self, f: &mut Figures) {
        let secs = |ns: u64| ns as f64 / 1e9;
        f.acked = self.acked.load(Ordering::SeqCst);
        let (first, last) = (
            self.first_work.load(Ordering::SeqCst),
            self.last_ack.load(Ordering::SeqCst),
        );
        f.elapsed_s = secs(last.saturating_sub(first));
        let samples = std::mem::take(&mut *self.request_us.lock().unwrap());
        let mut rep = std::mem::take(&mut *self.report_us.lock().unwrap());
        // Steady state: asked once every worker had joined (the join
        // storm's first requests wait behind a thousand TLS handshakes).
        let joined = match self.all_joined.load(Ordering::SeqCst) {
            0 => u64::MAX,
            t => t,
        };
        let sorted = |keep: &dyn Fn(u64, Kind) -> bool| {
            let mut v: Vec<u32> = samples
                .iter()
                .filter(|&&(t, _, k)| keep(t, k))
                .map(|&(_, us, _)| us)
                .collect();
            v.sort_unstable();
            v
        };
        // Long polls wait for work by design: not counted as latencies.
        let all = sorted(&|_, k| k != Kind::Waited);
        let req = sorted(&|t, k| t >= joined && k != Kind::Waited);
        let maps = sorted(&|t, k| t >= joined && k == Kind::Map);
        let reduces = sorted(&|_, k| k == Kind::Reduce);
        rep.sort_unstable();
        let pct = |v: &[u32], p: usize| match v.len() {
            0 => 0.0,
            n => f64::from(v[(n * p / 100).min(n - 1)]) / 1e3,
        };
        f.requests = all.len();
        f.request_p50_ms = pct(&all, 50);
        f.request_p99_ms = pct(&all, 99);
        f.request_max_ms = pct(&all, 100);
        f.request_p99_steady_ms = pct(&req, 99);
        let mut first = std::mem::take(&mut *self.first_task_us.lock().unwrap());
        first.sort_unstable();
        f.first_task_p99_ms = pct(&first, 99);
        f.first_task_max_ms = pct(&first, 100);
        let mut connected = std::mem::take(&mut *self.connected_us.lock().unwrap());
        connected.sort_unstable();
        f.connected_p99_ms = pct(&connected, 99);
        f.map_p99_ms = pct(&maps, 99);
        f.reduce_p99_ms = pct(&reduces, 99);
        f.join_s = secs(joined.min(self.now()));
        f.report_p99_ms = pct(&rep, 99);
        if let Some(k) = &mut f.killed {
            k.reissued = self.reissued.load(Ordering::SeqCst);
            let restarted = self.restarted.load(Ordering::SeqCst);
            let since = |t: u64| (t != 0).then(|| secs(t.saturating_sub(restarted)));
            match since(self.first_work_after.load(Ordering::SeqCst)) {
                Some(s) => k.first_task_s = s,
                None => f
                    .problems
                    .push("no task was handed out after the restart".into()),
            }
            k.all_rejoined_s = since(self.all_rejoined.load(Ordering::SeqCst));
            if k.reissued > 0 {
                f.problems.push(format!(
                    "the restarted coordinator handed out {} tasks acknowledged before the kill",
                    k.reissued
                ));
            }
        }
        if f.acked != f.tasks && f.killed.is_none() {
            f.problems
                .push(format!("{} of {} tasks acknowledged", f.acked, f.tasks));
        }
        f.problems
            .extend(self.errors.lock().unwrap().iter().cloned());
    }
}
