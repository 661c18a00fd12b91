//! `mr-sim`: the coordinator's real scheduler driven at cluster scale in
//! virtual time, to find what one coordinator can run.
//!
//! Simulated workers (sharing nothing: map outputs live on their disks)
//! register, ask for tasks, run them for a drawn duration and report, as
//! the server would have them do (every call checks the worker first, as
//! the RPC service does). Task durations are log-normal; a fraction of the
//! workers run 10x slower (stragglers); some are killed (their connection
//! drops: lost at once, with the map outputs on their disks), and some stop
//! silently and come back after the task timeout (lost by their silence,
//! then registering again). Time is virtual: the scheduler is pure, so the
//! run measures its own cost per decision, not any waiting.
//!
//! The job runs twice, with backup attempts and without, and at the end the
//! invariants are checked: every reduce committed exactly once, every lost
//! map output made again, no task handed to a worker after its loss was
//! seen. A broken invariant exits 1.
//!
//!   mr-sim [--workers 10000 --maps 1000000 --reduces 10000] [--json]

use anyhow::{bail, Result};
use clap::Parser;
use mr_coordinator::scheduler::{Scheduler, SchedulerConfig, TaskRef, Verdict};
use mr_protocol::plan::InputFile;
use mr_protocol::{
    Assignment, AttemptId, Counters, MapOutputs, MapTaskId, OutputsVersion, TaskFailure, Work,
    WorkerId, WorkerPlace,
};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Drive the real scheduler with simulated workers in virtual time.
#[derive(Parser, Debug, Clone)]
#[command(version)]
struct Args {
    /// Simulated workers.
    #[arg(long, default_value_t = 10_000)]
    workers: u32,
    /// Map tasks.
    #[arg(long, default_value_t = 1_000_000)]
    maps: u32,
    /// Reduce tasks.
    #[arg(long, default_value_t = 10_000)]
    reduces: u32,
    /// Median map duration, virtual seconds.
    #[arg(long, default_value_t = 10.0)]
    map_secs: f64,
    /// Median reduce duration, virtual seconds.
    #[arg(long, default_value_t = 20.0)]
    reduce_secs: f64,
    /// Spread of the log-normal durations (sigma of the underlying normal).
    #[arg(long, default_value_t = 0.5)]
    sigma: f64,
    /// Fraction of workers that run every task this many times slower.
    #[arg(long, default_value_t = 0.02)]
    stragglers: f64,
    /// How much slower a straggler is.
    #[arg(long, default_value_t = 10.0)]
    slowdown: f64,
    /// Fraction of workers killed during the job (connection dropped).
    #[arg(long, default_value_t = 0.01)]
    kill: f64,
    /// Fraction of workers that stop silently for twice the task timeout.
    #[arg(long, default_value_t = 0.005)]
    stall: f64,
    /// Virtual seconds a worker may be silent before it is declared lost.
    #[arg(long, default_value_t = 10.0)]
    task_timeout: f64,
    /// Virtual seconds between heartbeats (and loss checks).
    #[arg(long, default_value_t = 1.0)]
    heartbeat: f64,
    /// Virtual seconds an idle worker waits before asking again.
    #[arg(long, default_value_t = 1.0)]
    poll: f64,
    /// Seed of the random draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// A small deterministic generator (SplitMix64): runs are reproducible by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Log-normal with the given median and sigma (Box-Muller).
    fn log_normal(&mut self, median: f64, sigma: f64) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        let z = (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos();
        median * (sigma * z).exp()
    }
}

/// What happens next to a simulated worker (or the cluster).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// The worker asks for a task.
    Ask(u32),
    /// The worker's attempt ends; it reports.
    Done(u32, AttemptId),
    /// The worker's process is killed (its connection drops).
    Kill(u32),
    /// The worker stops silently.
    Stall(u32),
    /// A stopped worker runs again.
    Resume(u32),
    /// Heartbeats from every running worker, then the silence check.
    Tick,
}

/// One simulated worker.
struct SimWorker {
    /// Its id with the scheduler (a new one after registering again).
    id: WorkerId,
    /// Killed: never heard from again.
    dead: bool,
    /// Stopped: silent until resumed.
    stalled: bool,
    /// Runs every task `slowdown` times slower.
    slow: bool,
    /// The attempt it runs, and for a reduce the map outputs it was given
    /// and the lost one it will fail to fetch, if one was lost meanwhile.
    running: Option<Running>,
}

struct Running {
    attempt: AttemptId,
    given: Option<MapOutputs>,
    doomed: Option<(MapTaskId, AttemptId)>,
}

/// The losses the scheduler has seen, for the invariants.
struct Losses {
    /// Per scheduler worker id: when its loss was seen.
    lost_at: Vec<Option<Micros>>,
    /// Per map: when its output was last lost.
    map_lost: Vec<Option<Micros>>,
}

impl Losses {
    /// The loss of worker `id` (sim worker `holder`) was seen at `now`:
    /// note it and the map outputs that went with it, and doom the running
    /// reduces that were to fetch one of them from it.
    fn lose(
        &mut self,
        sched: &mut Scheduler,
        workers: &mut [SimWorker],
        id: WorkerId,
        holder: u32,
        now: Micros,
    ) {
        self.lost_at[id.0 as usize] = Some(now);
        let lost_maps = sched.take_lost_outputs();
        for m in &lost_maps {
            self.map_lost[m.0 as usize] = Some(now);
        }
        let addr = place(holder).shuffle;
        let Some(&m) = lost_maps.first() else {
            return;
        };
        for w in workers.iter_mut() {
            if let Some(Running {
                given: Some(given),
                doomed: doomed @ None,
                ..
            }) = &mut w.running
            {
                let held = &given[m.0 as usize];
                if held.host.as_deref() == addr.as_deref() {
                    *doomed = Some((m, held.attempt));
                }
            }
        }
    }
}

/// The newest map outputs list read from the scheduler, as a worker keeps
/// it: reduces of the same version share it, so a run reads each version's
/// pages once, as workers do over the wire.
#[derive(Default)]
struct OutputsRead(Option<(u64, MapOutputs)>);

impl OutputsRead {
    /// The list of version `v` (or newer), read page by page when not held.
    fn get(&mut self, sched: &mut Scheduler, v: OutputsVersion) -> Result<MapOutputs> {
        if let Some((have, list)) = &self.0 {
            if *have >= v.version {
                return Ok(list.clone());
            }
        }
        let mut list = Vec::with_capacity(v.maps as usize);
        let mut version = v.version;
        loop {
            let page = sched
                .outputs_page(version, list.len() as u32)
                .map_err(|e| anyhow::anyhow!("reading the map outputs list: {e}"))?;
            if page.version != version {
                version = page.version;
                list.clear();
                continue;
            }
            list.extend(page.outputs.iter().cloned());
            if list.len() as u32 >= page.maps {
                break;
            }
        }
        let list = MapOutputs::new(list);
        self.0 = Some((version, list.clone()));
        Ok(list)
    }
}

/// What one run measured.
#[derive(Debug, Default)]
struct Outcome {
    /// Assignments, reports and losses decided.
    decisions: u64,
    /// Real time spent in the scheduler deciding them.
    deciding: Duration,
    /// Real time of the whole run (heartbeats and the simulation included).
    real: Duration,
    makespan: f64,
    ideal: f64,
    attempts: u64,
    /// Attempts beyond one per task: backups and re-runs after losses.
    extra: u64,
    killed: u32,
    stalled: u32,
    maps_remade: u64,
    violations: Vec<String>,
}

/// Virtual time in microseconds.
type Micros = u64;

fn micros(secs: f64) -> Micros {
    (secs * 1e6).max(1.0) as Micros
}

/// The inputs: a few large virtual files cut into exactly `maps` splits.
fn inputs(maps: u32, split: u64) -> Vec<InputFile> {
    let files = maps.div_ceil(1000).max(1);
    (0..files)
        .map(|f| {
            let n = (maps - f * 1000).min(1000) as u64;
            InputFile {
                name: format!("in-{f}"),
                path: PathBuf::from(format!("/sim/in-{f}")),
                len: n * split,
                version: None,
            }
        })
        .collect()
}

/// Where a simulated worker stands: outside the job directory, serving its
/// map outputs at an address of its own, reading no input itself.
fn place(w: u32) -> WorkerPlace {
    WorkerPlace {
        shared: false,
        shuffle: Some(format!("w{w}:1")),
        local_inputs: Vec::new(),
    }
}

/// Runs the job once in virtual time (with or without backup attempts)
/// and checks its invariants.
fn run(args: &Args, backups: bool) -> Result<Outcome> {
    let mut sim = Sim::new(args, backups);
    let started = Instant::now();
    sim.join_workers()?;
    while let Some(Reverse((t, _, event))) = sim.queue.pop() {
        sim.now = t;
        if sim.sched.is_done() {
            break;
        }
        if let Some(f) = sim.sched.failure() {
            let failed = format!("the job failed: {f}");
            sim.out.violations.push(failed);
            break;
        }
        sim.handle(event)?;
    }
    sim.out.real = started.elapsed();
    Ok(sim.finish())
}

/// The scheduler, the simulated workers and the event queue of one run.
struct Sim<'a> {
    args: &'a Args,
    sched: Scheduler,
    /// The origin of virtual time, as the scheduler sees it.
    base: Instant,
    rng: Rng,
    out: Outcome,
    outputs: OutputsRead,
    /// Events by virtual time, then by when they were queued.
    queue: BinaryHeap<Reverse<(Micros, u64, Event)>>,
    queued: u64,
    workers: Vec<SimWorker>,
    seen: Losses,
    /// When each map's output was last accepted.
    map_accepted: Vec<Micros>,
    /// How many times each reduce was committed (the invariant: once).
    reduce_commits: Vec<u32>,
    /// Scheduler worker id -> simulated worker.
    ids: Vec<u32>,
    now: Micros,
}

impl<'a> Sim<'a> {
    const SPLIT: u64 = 64 << 20;

    fn new(args: &'a Args, backups: bool) -> Sim<'a> {
        let sched = Scheduler::new(
            SchedulerConfig {
                reduces: args.reduces,
                split_size: Self::SPLIT,
                task_timeout: Duration::from_secs_f64(args.task_timeout),
                max_attempts: 4,
                app: Some("sim".into()),
                wait: Duration::from_secs_f64(args.poll),
                skip_bad_records: false,
                record_size: 0,
                backups,
                backup_after: Duration::from_secs_f64(args.task_timeout),
            },
            inputs(args.maps, Self::SPLIT),
        );
        let mut out = Outcome::default();
        // The ideal: every task's nominal work spread evenly over the workers.
        let nominal =
            f64::from(args.maps) * args.map_secs + f64::from(args.reduces) * args.reduce_secs;
        out.ideal = nominal * (args.sigma * args.sigma / 2.0).exp() / f64::from(args.workers);
        Sim {
            args,
            sched,
            base: Instant::now(),
            rng: Rng(args.seed),
            out,
            outputs: OutputsRead::default(),
            queue: BinaryHeap::new(),
            queued: 0,
            workers: Vec::with_capacity(args.workers as usize),
            seen: Losses {
                lost_at: vec![None; args.workers as usize],
                map_lost: vec![None; args.maps as usize],
            },
            map_accepted: vec![0; args.maps as usize],
            reduce_commits: vec![0; args.reduces as usize],
            ids: (0..args.workers).collect(),
            now: 0,
        }
    }

    /// The scheduler's instant for virtual time `t`.
    fn at(&self, t: Micros) -> Instant {
        self.base + Duration::from_micros(t)
    }

    fn push(&mut self, t: Micros, e: Event) {
        self.queued += 1;
        self.queue.push(Reverse((t, self.queued, e)));
    }

    /// Registers every worker at time 0, marks the stragglers, and queues
    /// each one's first ask and its fault, if it has one.
    fn join_workers(&mut self) -> Result<()> {
        let horizon = micros(self.out.ideal);
        for w in 0..self.args.workers {
            let id = match self.sched.register(self.at(0), "sim", false) {
                Ok(id) => id,
                Err(e) => bail!("worker {w} refused: {e}"),
            };
            self.sched.announce(id, place(w));
            let slow = self.rng.unit() <= self.args.stragglers;
            self.workers.push(SimWorker {
                id,
                dead: false,
                stalled: false,
                slow,
                running: None,
            });
            self.push(0, Event::Ask(w));
            // Faults land somewhere in the job's ideal span.
            if self.rng.unit() <= self.args.kill {
                let t = self.rng.next() % horizon.max(1);
                self.push(t, Event::Kill(w));
            } else if self.rng.unit() <= self.args.stall {
                let t = self.rng.next() % horizon.max(1);
                self.push(t, Event::Stall(w));
            }
        }
        self.push(micros(self.args.heartbeat), Event::Tick);
        Ok(())
    }

    fn handle(&mut self, event: Event) -> Result<()> {
        match event {
            Event::Tick => self.tick(),
            Event::Kill(w) => self.kill(w),
            Event::Stall(w) => self.stall(w),
            Event::Resume(w) => self.resume(w),
            Event::Ask(w) => self.ask(w)?,
            Event::Done(w, attempt) => self.done(w, attempt),
        }
        Ok(())
    }

    /// Heartbeats from every running worker, then the scheduler's sweep for
    /// the silent ones.
    fn tick(&mut self) {
        let now = self.at(self.now);
        for w in self.workers.iter().filter(|w| !w.dead && !w.stalled) {
            self.sched.touch(w.id, now);
        }
        for id in self.sched.expire(now) {
            self.out.decisions += 1;
            let holder = self.ids[id.0 as usize];
            self.seen
                .lose(&mut self.sched, &mut self.workers, id, holder, self.now);
        }
        self.push(self.now + micros(self.args.heartbeat), Event::Tick);
    }

    /// Worker `w` dies; its connection's end tells the scheduler at once.
    fn kill(&mut self, w: u32) {
        let sw = &mut self.workers[w as usize];
        if sw.dead {
            return;
        }
        sw.dead = true;
        sw.running = None;
        let id = sw.id;
        self.out.killed += 1;
        let t0 = Instant::now();
        self.sched.worker_lost(id, self.at(self.now));
        self.out.deciding += t0.elapsed();
        self.out.decisions += 1;
        self.seen
            .lose(&mut self.sched, &mut self.workers, id, w, self.now);
    }

    /// Worker `w` stops for twice the task timeout, connection open.
    fn stall(&mut self, w: u32) {
        let sw = &mut self.workers[w as usize];
        if !sw.dead && !sw.stalled {
            sw.stalled = true;
            self.out.stalled += 1;
            let t = self.now + micros(2.0 * self.args.task_timeout);
            self.push(t, Event::Resume(w));
        }
    }

    /// Worker `w` runs again: its attempt's end (if due while stopped) and
    /// its next ask come now; a finished attempt reports first.
    fn resume(&mut self, w: u32) {
        let sw = &mut self.workers[w as usize];
        sw.stalled = false;
        if sw.running.is_none() {
            self.push(self.now, Event::Ask(w));
        }
    }

    /// Worker `w` asks for a task (registering again if it was lost, as
    /// the server makes it) and starts what it is given.
    fn ask(&mut self, w: u32) -> Result<()> {
        let now = self.at(self.now);
        let sw = &self.workers[w as usize];
        // A stalled worker asks again when it runs.
        if sw.dead || sw.running.is_some() || sw.stalled {
            return Ok(());
        }
        if !self.sched.touch(sw.id, now) {
            match self.sched.register(now, "sim", false) {
                Ok(id) => {
                    self.workers[w as usize].id = id;
                    self.sched.announce(id, place(w));
                    if self.seen.lost_at.len() <= id.0 as usize {
                        self.seen.lost_at.resize(id.0 as usize + 1, None);
                        self.ids.resize(id.0 as usize + 1, 0);
                    }
                    self.ids[id.0 as usize] = w;
                }
                Err(_) => return Ok(()), // the job is over
            }
        }
        let id = self.workers[w as usize].id;
        self.out.decisions += 1;
        let t0 = Instant::now();
        let assignment = self.sched.assign(id, now);
        self.out.deciding += t0.elapsed();
        let work = match assignment {
            Assignment::Work(work) => work,
            Assignment::Wait { millis } => {
                self.push(self.now + millis * 1000, Event::Ask(w));
                return Ok(());
            }
            Assignment::Exit => return Ok(()),
        };
        if self.seen.lost_at[id.0 as usize].is_some() {
            let given = format!("a task was given to {id}, already lost");
            self.out.violations.push(given);
        }
        self.out.attempts += 1;
        let (attempt, given, median) = match work {
            Work::Map(m) => (m.attempt, None, self.args.map_secs),
            Work::Reduce(r) => {
                let list = self.outputs.get(&mut self.sched, r.outputs)?;
                (r.attempt, Some(list), self.args.reduce_secs)
            }
        };
        let mut secs = self.rng.log_normal(median, self.args.sigma);
        if self.workers[w as usize].slow {
            secs *= self.args.slowdown;
        }
        self.workers[w as usize].running = Some(Running {
            attempt,
            given,
            doomed: None,
        });
        self.push(self.now + micros(secs), Event::Done(w, attempt));
        Ok(())
    }

    /// Worker `w`'s attempt ends and is reported: a reduce that read a map
    /// output whose holder was lost fails, as a fetch from it would.
    fn done(&mut self, w: u32, attempt: AttemptId) {
        let sw = &mut self.workers[w as usize];
        if sw.dead || sw.running.as_ref().map(|r| r.attempt) != Some(attempt) {
            return;
        }
        if sw.stalled {
            // Finishes once it runs again.
            let t = self.now + micros(self.args.heartbeat);
            self.push(t, Event::Done(w, attempt));
            return;
        }
        let r = sw.running.take().expect("checked");
        let id = sw.id;
        let now = self.at(self.now);
        let t0 = Instant::now();
        self.sched.touch(id, now);
        self.out.decisions += 1;
        let verdict = if self.sched.reported_task(id, attempt).is_none() {
            Verdict::Ignored
        } else if let Some((map, lost)) = r.doomed {
            let failure = TaskFailure::MapOutputLost {
                map,
                attempt: lost,
                reason: "its holder is gone".into(),
            };
            self.sched.failed(id, attempt, failure, now)
        } else {
            self.sched.succeeded(id, attempt, now)
        };
        if let Verdict::Accepted(task) = verdict {
            self.sched.set_counters(task, Counters::default());
        }
        self.out.deciding += t0.elapsed();
        if let Verdict::Accepted(task) = verdict {
            match task {
                TaskRef::Map(m) => self.map_accepted[m.0 as usize] = self.now,
                TaskRef::Reduce(red) => self.reduce_commits[red.0 as usize] += 1,
            }
        }
        self.push(self.now, Event::Ask(w));
    }

    /// The run's figures, with the invariants checked: the job finished,
    /// every reduce was committed exactly once, and every lost map output
    /// was made again.
    fn finish(mut self) -> Outcome {
        let (args, out) = (self.args, &mut self.out);
        out.makespan = self.now as f64 / 1e6;
        out.extra = out
            .attempts
            .saturating_sub(u64::from(args.maps) + u64::from(args.reduces));
        if !self.sched.is_done() && out.violations.is_empty() {
            out.violations.push(format!(
                "the job did not finish: {:?}",
                self.sched.progress()
            ));
        }
        for (r, &n) in self.reduce_commits.iter().enumerate() {
            if n != 1 {
                out.violations
                    .push(format!("reduce {r} was committed {n} times"));
            }
        }
        for (m, lost) in self.seen.map_lost.iter().enumerate() {
            if let Some(t) = lost {
                out.maps_remade += 1;
                if self.map_accepted[m] <= *t {
                    out.violations.push(format!(
                        "map {m}'s output, lost at {t} us, was never made again"
                    ));
                }
            }
        }
        self.out
    }
}

/// Peak resident memory of this process, MiB.
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.workers == 0 || args.maps == 0 || args.reduces == 0 {
        bail!("--workers, --maps and --reduces must be at least 1");
    }
    let with = run(&args, true)?;
    let peak = peak_mib();
    let without = run(&args, false)?;
    let tasks = u64::from(args.maps) + u64::from(args.reduces);
    let rate = with.decisions as f64 / with.deciding.as_secs_f64().max(1e-9);
    let per_task = peak * 1048576.0 / tasks as f64;
    if args.json {
        println!(
            "{{\"sim_workers\": {}, \"sim_tasks\": {}, \"sim_decisions\": {}, \"sim_decisions_per_s\": {:.0}, \"sim_real_s\": {:.2}, \"sim_peak_mib\": {:.1}, \"sim_bytes_per_task\": {:.0}, \"sim_makespan_s\": {:.1}, \"sim_ideal_s\": {:.1}, \"sim_makespan_ratio\": {:.3}, \"sim_makespan_ratio_no_backups\": {:.3}, \"sim_extra_attempts\": {}, \"sim_killed\": {}, \"sim_stalled\": {}, \"sim_maps_remade\": {}, \"sim_invariants_ok\": {}}}",
            args.workers,
            tasks,
            with.decisions,
            rate,
            with.real.as_secs_f64(),
            peak,
            per_task,
            with.makespan,
            with.ideal,
            with.makespan / with.ideal,
            without.makespan / without.ideal,
            with.extra,
            with.killed,
            with.stalled,
            with.maps_remade,
            with.violations.is_empty() && without.violations.is_empty(),
        );
    } else {
        println!(
            "{} workers, {} maps, {} reduces; {:.0}% stragglers ({}x), {} killed, {} stalled",
            args.workers,
            args.maps,
            args.reduces,
            args.stragglers * 100.0,
            args.slowdown,
            with.killed,
            with.stalled
        );
        println!("| run | decisions | deciding s | decisions/s | whole run s | virtual makespan s | x ideal | extra attempts | maps re-made |");
        println!("|---|---|---|---|---|---|---|---|---|");
        for (name, o) in [("with backups", &with), ("without backups", &without)] {
            println!(
                "| {name} | {} | {:.2} | {:.0} | {:.2} | {:.0} | {:.3} | {} | {} |",
                o.decisions,
                o.deciding.as_secs_f64(),
                o.decisions as f64 / o.deciding.as_secs_f64().max(1e-9),
                o.real.as_secs_f64(),
                o.makespan,
                o.makespan / o.ideal,
                o.extra,
                o.maps_remade
            );
        }
        println!(
            "peak memory {peak:.0} MiB ({per_task:.0} bytes per task); ideal makespan {:.0} s",
            with.ideal
        );
    }
    let mut broken = false;
    for (name, o) in [("with backups", &with), ("without backups", &without)] {
        for v in o.violations.iter().take(10) {
            eprintln!("mr-sim: invariant broken ({name}): {v}");
            broken = true;
        }
    }
    if broken {
        std::process::exit(1);
    }
    Ok(())
}
