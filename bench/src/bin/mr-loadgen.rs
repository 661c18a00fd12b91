//! `mr-loadgen`: the real `mrcoordinator` binary under a real RPC load, to
//! measure what one coordinator process serves.
//!
//! It starts the coordinator on a job of M one-byte splits (an input file
//! of M bytes cut with `--split-size 1`) and R reduces, then opens N real
//! connections to it over loopback, TLS with the job's pinned certificate
//! and token, as workers on other hosts connect. Each acts as a worker that
//! shares nothing: it registers, announces itself, asks for a task and
//! reports it done at once (a reduce first uploads an empty output, which
//! the coordinator commits as `mr-out-<r>`), and sends heartbeats. No data
//! is processed: what is measured is the coordinator's own cost per task,
//! its request latency as a worker sees it, its CPU and memory, and its
//! journal's group commit.
//!
//! With `--kill-at F` the coordinator is killed (SIGKILL) once a fraction F
//! of the tasks were acknowledged, and started again with the same command.
//! Checked: every report acknowledged before the kill is in the journal it
//! left, the restarted coordinator never hands out an acknowledged task
//! again, and the workers, reconnecting, are handed work again (how soon is
//! a figure). A broken check, or a job that does not finish, exits 1.
//!
//!   mr-loadgen [--workers 1000 --maps 100000 --reduces 1000] [--kill-at 0.5] [--json]

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use mr_protocol::join::JoinSecret;
use mr_protocol::service::CoordinatorClient;
use mr_protocol::{
    wire, Assignment, Counters, ProtocolError, RegisterError, RegisterRequest, ReportAck,
    TaskOutput, Work, WorkerId, WorkerPlace,
};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Load a real coordinator with N fake workers over real connections.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Workers (connections) to open.
    #[arg(long, default_value_t = 1_000)]
    workers: u32,
    /// Map tasks (one-byte splits).
    #[arg(long, default_value_t = 100_000)]
    maps: u32,
    /// Reduce tasks.
    #[arg(long, default_value_t = 1_000)]
    reduces: u32,
    /// Kill the coordinator (SIGKILL) once this fraction of the tasks was
    /// acknowledged, start it again, and check that nothing acknowledged
    /// was lost.
    #[arg(long)]
    kill_at: Option<f64>,
    /// Milliseconds each task "runs" (a sleep) before its report: 0
    /// measures the coordinator flat out; more gives the load a real
    /// cluster offers, W / (task time + round trip) tasks a second.
    #[arg(long, default_value_t = 0)]
    task_ms: u64,
    /// Plain TCP instead of TLS (the coordinator's --no-tls).
    #[arg(long)]
    no_tls: bool,
    /// The mrcoordinator binary (default: the one beside this program).
    #[arg(long)]
    coordinator: Option<PathBuf>,
    /// Directory for the job's files (default: a new temporary directory,
    /// removed at the end).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// With --kill-at: drop the killed coordinator's journal of its
    /// progress before the restart, as a disk that lost its writes would
    /// (to see that the checks catch a loss: the run must fail).
    #[arg(long, hide = true, requires = "kill_at")]
    forget_journal: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("mr-loadgen: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Sets up the job's directory and runs the load; Ok(false) when a check failed.
fn run(args: &Args) -> Result<bool> {
    if args.workers == 0 || args.maps == 0 || args.reduces == 0 {
        bail!("--workers, --maps and --reduces must each be at least 1");
    }
    if let Some(f) = args.kill_at {
        if !(f > 0.0 && f < 1.0) {
            bail!("--kill-at {f}: give a fraction of the tasks between 0 and 1, e.g. 0.5");
        }
    }
    let bin = match &args.coordinator {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("this program's directory")?
            .join("mrcoordinator"),
    };
    if !bin.is_file() {
        bail!(
            "no coordinator binary at {} (build it: cargo build --release --bins, or pass --coordinator PATH)",
            bin.display()
        );
    }
    // Each connection is a descriptor on both ends.
    mr_protocol::raise_open_file_limit();
    let temp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("--dir {}", d.display()))?;
            d.clone()
        }
        None => {
            temp = tempfile::Builder::new().prefix("mr-loadgen-").tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let input = dir.join("input");
    std::fs::write(&input, vec![b'x'; args.maps as usize])
        .with_context(|| format!("writing {}", input.display()))?;
    let out = dir.join("out");
    std::fs::create_dir_all(&out)?;
    let port = free_port()?;
    let mut cmd = std::process::Command::new(&bin);
    cmd.args(["--app", "wc", "--split-size", "1", "--no-socket", "--quiet"])
        .args([
            "--task-timeout",
            "30",
            "--reduces",
            &args.reduces.to_string(),
        ])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--output-dir")
        .arg(&out)
        .arg("--addr-file")
        .arg(dir.join("addr"))
        .arg(&input)
        .env_remove("MR_TOKEN")
        .env_remove("MR_STATUS_ADDR")
        .env_remove("MR_COORDINATOR")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    if args.no_tls {
        cmd.arg("--no-tls");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let figures = runtime.block_on(drive(args, cmd, &dir, port))?;
    let ok = figures.ok();
    figures.print(args.json);
    if !ok {
        eprintln!(
            "mr-loadgen: a check failed: {}",
            figures.problems.join("; ")
        );
    }
    Ok(ok)
}

/// Everything measured and checked.
#[derive(Default)]
struct Figures {
    workers: u32,
    task_ms: u64,
    tasks: u64,
    acked: u64,
    elapsed_s: f64,
    requests: usize,
    request_p50_ms: f64,
    request_p99_ms: f64,
    request_max_ms: f64,
    /// p99 over every request, the join storm's included.
    request_p99_all_ms: f64,
    /// p99 of the requests answered with a map (after the join storm),
    /// and of those answered with a reduce.
    map_p99_ms: f64,
    reduce_p99_ms: f64,
    /// When the last worker joined.
    join_s: f64,
    report_p99_ms: f64,
    coordinator_cpu_s: f64,
    coordinator_wall_s: f64,
    coordinator_peak_mib: f64,
    loadgen_cpu_s: f64,
    journal_records: u64,
    journal_commits: u64,
    /// With --kill-at: acknowledged before the kill, missing from the
    /// journal, handed out again, and how soon work resumed.
    killed: Option<Killed>,
    problems: Vec<String>,
}

/// What a kill and restart showed.
struct Killed {
    acked_before: u64,
    journaled: u64,
    missing: u64,
    reissued: u64,
    first_task_s: f64,
    all_rejoined_s: Option<f64>,
}

impl Figures {
    fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn tasks_per_s(&self) -> f64 {
        self.acked as f64 / self.elapsed_s.max(1e-9)
    }

    fn print(&self, json: bool) {
        let per_s = |n: u64| n as f64 / self.coordinator_wall_s.max(1e-9);
        let mut rows: Vec<(&str, String)> = vec![
            ("rpc_workers", self.workers.to_string()),
            ("rpc_task_ms", self.task_ms.to_string()),
            ("rpc_tasks", self.tasks.to_string()),
            ("rpc_tasks_per_s", format!("{:.0}", self.tasks_per_s())),
            ("rpc_elapsed_s", format!("{:.3}", self.elapsed_s)),
            ("rpc_requests", self.requests.to_string()),
            ("rpc_p50_ms", format!("{:.3}", self.request_p50_ms)),
            ("rpc_p99_ms", format!("{:.3}", self.request_p99_ms)),
            ("rpc_max_ms", format!("{:.3}", self.request_max_ms)),
            (
                "rpc_p99_with_joins_ms",
                format!("{:.3}", self.request_p99_all_ms),
            ),
            ("rpc_map_p99_ms", format!("{:.3}", self.map_p99_ms)),
            ("rpc_reduce_p99_ms", format!("{:.3}", self.reduce_p99_ms)),
            ("rpc_all_joined_s", format!("{:.3}", self.join_s)),
            ("rpc_report_p99_ms", format!("{:.3}", self.report_p99_ms)),
            (
                "rpc_coordinator_cpu_s",
                format!("{:.2}", self.coordinator_cpu_s),
            ),
            (
                "rpc_coordinator_cpu_pct",
                format!(
                    "{:.0}",
                    100.0 * self.coordinator_cpu_s / self.coordinator_wall_s.max(1e-9)
                ),
            ),
            (
                "rpc_coordinator_peak_mib",
                format!("{:.1}", self.coordinator_peak_mib),
            ),
            ("rpc_loadgen_cpu_s", format!("{:.2}", self.loadgen_cpu_s)),
            ("rpc_journal_records", self.journal_records.to_string()),
            ("rpc_journal_fsyncs", self.journal_commits.to_string()),
            (
                "rpc_journal_records_per_s",
                format!("{:.0}", per_s(self.journal_records)),
            ),
            (
                "rpc_journal_fsyncs_per_s",
                format!("{:.0}", per_s(self.journal_commits)),
            ),
        ];
        if let Some(k) = &self.killed {
            rows.extend([
                ("kill_acked_before", k.acked_before.to_string()),
                ("kill_journaled", k.journaled.to_string()),
                ("kill_acked_missing", k.missing.to_string()),
                ("kill_reissued", k.reissued.to_string()),
                ("resume_first_task_s", format!("{:.3}", k.first_task_s)),
                (
                    "resume_all_workers_s",
                    k.all_rejoined_s
                        .map_or("null".into(), |s| format!("{s:.3}")),
                ),
            ]);
        }
        rows.push(("rpc_ok", self.ok().to_string()));
        if json {
            let body: Vec<String> = rows.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
            println!("{{{}}}", body.join(", "));
        } else {
            println!("| figure | value |");
            println!("|---|---|");
            for (k, v) in rows {
                println!("| {k} | {v} |");
            }
        }
    }
}

/// Runs the coordinator (twice with a kill) and the workers; gathers the figures.
async fn drive(
    args: &Args,
    mut cmd: std::process::Command,
    dir: &Path,
    port: u16,
) -> Result<Figures> {
    let out = dir.join("out");
    let total = u64::from(args.maps) + u64::from(args.reduces);
    let mut coordinator = Coordinator::start(&mut cmd, dir, 1).await?;
    let secret = match std::fs::read_to_string(out.join("mr-job/token")) {
        Ok(s) => JoinSecret::parse(&s).map_err(anyhow::Error::msg)?,
        Err(e) => bail!("cannot read the job's join secret: {e}"),
    };
    let load = Arc::new(Load::new(args, format!("127.0.0.1:{port}"), secret));
    let mut workers = tokio::task::JoinSet::new();
    for i in 0..args.workers {
        workers.spawn(worker(load.clone(), i));
    }
    let mut figures = Figures {
        workers: args.workers,
        task_ms: args.task_ms,
        tasks: total,
        ..Figures::default()
    };
    let mut cpu = (0.0, 0.0, 0.0f64);
    if let Some(f) = args.kill_at {
        let threshold = ((total as f64) * f).ceil() as u64;
        while load.acked.load(Ordering::SeqCst) < threshold {
            if let Some(ended) = coordinator.try_reap()? {
                bail!(
                    "the coordinator exited ({}) before the kill point\n{}",
                    ended.status,
                    coordinator.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let ended = coordinator.kill().await?;
        cpu = (ended.cpu_s, ended.wall_s, ended.peak_mib);
        // Acknowledgements read from sockets after the kill were sent before it.
        let frozen = load.freeze();
        let journal = out.join("mr-job/journal");
        if args.forget_journal {
            forget_progress(&journal)?;
        }
        let (journaled, missing) = journal_check(&journal, frozen)?;
        if missing > 0 {
            figures.problems.push(format!(
                "{missing} acknowledged reports are missing from the killed coordinator's journal"
            ));
        }
        let _ = std::fs::remove_file(dir.join("addr"));
        load.mark(&load.restarted);
        coordinator = Coordinator::start(&mut cmd, dir, 2).await?;
        figures.killed = Some(Killed {
            acked_before: frozen.count(),
            journaled,
            missing,
            reissued: 0,
            first_task_s: 0.0,
            all_rejoined_s: None,
        });
    }
    let ended = coordinator.wait().await?;
    load.done.store(true, Ordering::SeqCst);
    if !ended.status.success() {
        figures.problems.push(format!(
            "the coordinator exited with {}:\n{}",
            ended.status,
            coordinator.log_tail()
        ));
    }
    // Workers dismissed end at once; one reconnecting to a finished job
    // gives up within a second of `done`.
    let drained = tokio::time::timeout(Duration::from_secs(30), async {
        while workers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        figures
            .problems
            .push("workers still running 30 s after the job ended".into());
        workers.abort_all();
    }
    figures.coordinator_cpu_s = cpu.0 + ended.cpu_s;
    figures.coordinator_wall_s = cpu.1 + ended.wall_s;
    figures.coordinator_peak_mib = cpu.2.max(ended.peak_mib);
    figures.loadgen_cpu_s = self_cpu_s();
    load.fill(&mut figures);
    check_outputs(&out, args, &mut figures);
    Ok(figures)
}

/// Checks the coordinator's final report and outputs: every task done,
/// every `mr-out-<r>` committed; takes the journal's figures from the report.
fn check_outputs(out: &Path, args: &Args, figures: &mut Figures) {
    let missing = (0..args.reduces)
        .filter(|r| !out.join(format!("mr-out-{r}")).is_file())
        .count();
    if missing > 0 {
        figures.problems.push(format!(
            "{missing} of {} outputs were not committed",
            args.reduces
        ));
    }
    let report = std::fs::read(out.join("mr-report.json"))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).map_err(|e| e.to_string()));
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            figures
                .problems
                .push(format!("no readable mr-report.json: {e}"));
            return;
        }
    };
    let done = (
        report["progress"]["maps_done"].as_u64(),
        report["progress"]["reduces_done"].as_u64(),
    );
    if done != (Some(u64::from(args.maps)), Some(u64::from(args.reduces))) {
        figures.problems.push(format!(
            "the report says {done:?} maps and reduces done, not {} and {}",
            args.maps, args.reduces
        ));
    }
    figures.journal_records = report["journal"]["records"].as_u64().unwrap_or(0);
    figures.journal_commits = report["journal"]["commits"].as_u64().unwrap_or(0);
}

/// Rewrites the journal at `path` with its job's identity and incarnations
/// (so a restart still numbers its attempts anew) and nothing done.
fn forget_progress(path: &Path) -> Result<()> {
    use mr_coordinator::journal::{encode, replay, Record, MAGIC};
    let bytes = std::fs::read(path)?;
    let r = replay(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut fresh = MAGIC.to_vec();
    fresh.extend(encode(&Record::Begin(r.identity)));
    if let Some(last) = r.recovered.incarnation.checked_sub(1) {
        fresh.extend(encode(&Record::Incarnation(last)));
    }
    std::fs::write(path, fresh)?;
    Ok(())
}

/// Reads the journal a killed coordinator left: how many tasks it holds as
/// done, and how many acknowledged ones it lacks.
fn journal_check(path: &Path, acked: &Acked) -> Result<(u64, u64)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let replay = mr_coordinator::journal::replay(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let r = &replay.recovered;
    let journaled = (r.maps.len() + r.reduces.len()) as u64;
    let missing = acked
        .maps
        .iter()
        .enumerate()
        .filter(|&(m, &a)| a && !r.maps.contains_key(&mr_protocol::MapTaskId(m as u32)))
        .count()
        + acked
            .reduces
            .iter()
            .enumerate()
            .filter(|&(red, &a)| {
                a && !r
                    .reduces
                    .contains_key(&mr_protocol::ReduceTaskId(red as u32))
            })
            .count();
    Ok((journaled, missing as u64))
}

/// Tasks acknowledged, frozen at the kill.
struct Acked {
    maps: Vec<bool>,
    reduces: Vec<bool>,
}

impl Acked {
    fn count(&self) -> u64 {
        self.maps
            .iter()
            .chain(&self.reduces)
            .filter(|&&a| a)
            .count() as u64
    }
}

/// State every fake worker shares: what was acknowledged, latencies, times.
struct Load {
    endpoint: String,
    secret: JoinSecret,
    workers: u32,
    /// How long each task "runs".
    task_time: Duration,
    maps_acked: Vec<AtomicBool>,
    reduces_acked: Vec<AtomicBool>,
    acked: AtomicU64,
    /// The acknowledged tasks as of the kill.
    frozen: OnceLock<Acked>,
    /// Tasks acknowledged before the kill that a later coordinator handed out.
    reissued: AtomicU64,
    /// Registrations after the kill.
    rejoined: AtomicU64,
    /// First registrations, and when the last worker's came (the end of
    /// the join storm: every connection's TLS handshake).
    joined: AtomicU64,
    all_joined: AtomicU64,
    /// Times, as nanoseconds since `origin` (0: not yet).
    origin: Instant,
    first_work: AtomicU64,
    last_ack: AtomicU64,
    restarted: AtomicU64,
    first_work_after: AtomicU64,
    all_rejoined: AtomicU64,
    /// Task requests: when sent (ns since the origin) and their latency
    /// (microseconds).
    request_us: Mutex<Vec<(u64, u32, Kind)>>,
    /// Latencies of accepted reports (microseconds).
    report_us: Mutex<Vec<u32>>,
    /// Unexpected answers (a refused registration, a protocol error).
    errors: Mutex<Vec<String>>,
    /// The job is over: workers stop reconnecting.
    done: AtomicBool,
}

impl Load {
    fn new(args: &Args, endpoint: String, secret: JoinSecret) -> Load {
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
            errors: Mutex::new(Vec::new()),
            done: AtomicBool::new(false),
        }
    }

    /// Nanoseconds since the origin, never 0 (0 means "not yet").
    fn now(&self) -> u64 {
        (self.origin.elapsed().as_nanos() as u64).max(1)
    }

    /// Sets `at` to now unless it is already set.
    fn mark(&self, at: &AtomicU64) {
        let _ = at.compare_exchange(0, self.now(), Ordering::SeqCst, Ordering::SeqCst);
    }

    fn error(&self, e: String) {
        let mut errors = self.errors.lock().unwrap();
        if errors.len() < 10 {
            errors.push(e);
        }
    }

    /// The task of `work` and whether it is a map.
    fn task(work: &Work) -> (bool, usize) {
        match work {
            Work::Map(m) => (true, m.task.0 as usize),
            Work::Reduce(r) => (false, r.task.0 as usize),
        }
    }

    /// A worker was handed `work`: after a restart, it must not be a task
    /// acknowledged before the kill.
    fn assigned(&self, work: &Work) {
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
    fn acknowledged(&self, work: &Work) {
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
    fn at(&self, t: Instant) -> u64 {
        (t.saturating_duration_since(self.origin).as_nanos() as u64).max(1)
    }

    /// A worker registered; after a kill, counts it as rejoined.
    fn registered(&self) {
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
    fn freeze(&self) -> &Acked {
        let read = |v: &[AtomicBool]| v.iter().map(|a| a.load(Ordering::SeqCst)).collect();
        self.frozen.get_or_init(|| Acked {
            maps: read(&self.maps_acked),
            reduces: read(&self.reduces_acked),
        })
    }

    /// Copies what the workers measured into `f`.
    fn fill(&self, f: &mut Figures) {
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
        let all = sorted(&|_, _| true);
        let req = sorted(&|t, _| t >= joined);
        let maps = sorted(&|t, k| t >= joined && k == Kind::Map);
        let reduces = sorted(&|_, k| k == Kind::Reduce);
        rep.sort_unstable();
        let pct = |v: &[u32], p: usize| match v.len() {
            0 => 0.0,
            n => f64::from(v[(n * p / 100).min(n - 1)]) / 1e3,
        };
        f.requests = req.len();
        f.request_p50_ms = pct(&req, 50);
        f.request_p99_ms = pct(&req, 99);
        f.request_max_ms = pct(&req, 100);
        f.request_p99_all_ms = pct(&all, 99);
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

/// What a task request was answered with, for the latency figures: a
/// reduce assignment lists every map output, so it is the long one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Map,
    Reduce,
    Other,
}

impl Kind {
    fn of(a: &Assignment) -> Kind {
        match a {
            Assignment::Work(Work::Map(_)) => Kind::Map,
            Assignment::Work(Work::Reduce(_)) => Kind::Reduce,
            _ => Kind::Other,
        }
    }
}

/// One worker's latencies, merged into the [`Load`]'s when it ends.
#[derive(Default)]
struct Samples {
    /// Task requests: when sent (ns since the origin), latency (us), answer.
    requests: Vec<(u64, u32, Kind)>,
    /// Accepted reports' latencies (us).
    reports: Vec<u32>,
}

/// How one connection's session ended.
enum Ending {
    /// Told to exit, or refused: this worker is finished.
    Exit,
    /// The connection broke (the coordinator died): connect again.
    Lost,
}

/// One fake worker: connects, runs sessions until told to exit, and
/// reconnects (every 100 ms, as real workers do) when the connection breaks.
async fn worker(load: Arc<Load>, i: u32) {
    let mut samples = Samples::default();
    while !load.done.load(Ordering::SeqCst) {
        let client = match connect(&load).await {
            Ok(c) => c,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match session(&load, i, &client, &mut samples).await {
            Ending::Exit => break,
            Ending::Lost => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    load.request_us.lock().unwrap().extend(samples.requests);
    load.report_us.lock().unwrap().extend(samples.reports);
}

/// A connection to the coordinator, TLS pinned to the job's certificate
/// unless the job runs in clear.
async fn connect(load: &Load) -> std::io::Result<CoordinatorClient> {
    let (stream, _, _) =
        wire::connect(&load.endpoint, load.secret.pin, Duration::from_secs(10)).await?;
    let transport = wire::transport(stream);
    Ok(CoordinatorClient::new(tarpc::client::Config::default(), transport).spawn())
}

fn ctx() -> tarpc::context::Context {
    tarpc::context::current()
}

fn micros(since: Instant) -> u32 {
    since.elapsed().as_micros().min(u128::from(u32::MAX)) as u32
}

/// One registration's life on one connection.
async fn session(load: &Load, i: u32, client: &CoordinatorClient, samples: &mut Samples) -> Ending {
    let req = RegisterRequest {
        app: "wc".into(),
        whole_file: false,
        host: "loadgen".into(),
        pid: i,
        capacity: 1,
        token: load.secret.token.clone(),
        embedded_by: None,
    };
    let settings = match client.register(ctx(), req).await {
        Ok(Ok(s)) => s,
        Ok(Err(RegisterError::JobOver)) => return Ending::Exit,
        Ok(Err(e)) => {
            load.error(format!("worker {i}: registration refused: {e}"));
            return Ending::Exit;
        }
        Err(_) => return Ending::Lost,
    };
    load.registered();
    let me = settings.worker;
    // Sharing nothing: its map outputs "live" at an address of its own
    // (never fetched: the reduces here read nothing). It reads the input
    // itself, as a worker on shared storage would.
    let place = WorkerPlace {
        shared: false,
        shuffle: Some(format!("127.0.0.2:{}", 1024 + i % 60_000)),
        local_inputs: vec![1],
    };
    match client.announce(ctx(), me, place).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            load.error(format!("worker {i}: announce refused: {e}"));
            return Ending::Exit;
        }
        Err(_) => return Ending::Lost,
    }
    let beat = Duration::from_millis(settings.heartbeat_ms.max(10));
    let heard = Arc::new(Heard::default());
    let heartbeats = tokio::spawn(heartbeat(client.clone(), me, beat, heard.clone()));
    let ending = tasks(load, client, me, &heard, samples).await;
    heartbeats.abort();
    ending
}

/// When a worker's task loop last heard from the coordinator.
struct Heard(Mutex<Instant>);

impl Default for Heard {
    fn default() -> Heard {
        Heard(Mutex::new(Instant::now()))
    }
}

impl Heard {
    fn now(&self) {
        *self.0.lock().unwrap() = Instant::now();
    }

    fn since(&self) -> Duration {
        self.0.lock().unwrap().elapsed()
    }
}

/// Heartbeats, as `mrworker` does, whenever the task loop has not heard
/// from the coordinator for an interval; until the connection breaks (the
/// session aborts it).
async fn heartbeat(client: CoordinatorClient, me: WorkerId, every: Duration, heard: Arc<Heard>) {
    loop {
        let since = heard.since();
        if since < every {
            tokio::time::sleep(every - since).await;
            continue;
        }
        if client.heartbeat(ctx(), me, Vec::new()).await.is_err() {
            return;
        }
        tokio::time::sleep(every).await;
    }
}

/// Asks for tasks and reports each done at once, until told to exit. A
/// report's answer carries the next assignment; both kinds of call count
/// as task requests in the latency figures (a report's includes the
/// journal's fsync).
async fn tasks(
    load: &Load,
    client: &CoordinatorClient,
    me: WorkerId,
    heard: &Heard,
    samples: &mut Samples,
) -> Ending {
    let mut next: Option<Assignment> = None;
    // The last call's timing, filed once its answer's kind is known.
    let mut sample: Option<(u64, u32)> = None;
    loop {
        let assignment = match next.take() {
            Some(a) => a,
            None => {
                let asked = Instant::now();
                match client.request_task(ctx(), me).await {
                    Ok(Ok(a)) => {
                        sample = Some((load.at(asked), micros(asked)));
                        heard.now();
                        a
                    }
                    Ok(Err(e)) => {
                        load.error(format!("{me}: task request refused: {e}"));
                        return Ending::Lost;
                    }
                    Err(_) => return Ending::Lost,
                }
            }
        };
        if let Some((t, us)) = sample.take() {
            samples.requests.push((t, us, Kind::of(&assignment)));
        }
        let work = match assignment {
            Assignment::Exit => return Ending::Exit,
            Assignment::Wait { millis } => {
                tokio::time::sleep(Duration::from_millis(millis)).await;
                continue;
            }
            Assignment::Work(w) => w,
        };
        load.assigned(&work);
        if !load.task_time.is_zero() {
            tokio::time::sleep(load.task_time).await;
        }
        let counters = Counters {
            input_bytes: 1,
            input_records: 1,
            ..Counters::default()
        };
        let output = match &work {
            Work::Map(_) => TaskOutput::Map(counters),
            Work::Reduce(r) => {
                // Sharing nothing, a reduce uploads its output (empty here).
                let upload = client
                    .upload_output(ctx(), me, r.attempt, 0, Vec::new().into(), true)
                    .await;
                match upload {
                    Ok(Ok(())) => {}
                    // A backup whose task another attempt finished.
                    Ok(Err(ProtocolError::UploadRefused { .. })) => continue,
                    Ok(Err(e)) => {
                        load.error(format!("{me}: upload refused: {e}"));
                        continue;
                    }
                    Err(_) => return Ending::Lost,
                }
                TaskOutput::Reduce(counters)
            }
        };
        let sent = Instant::now();
        match client
            .report(ctx(), me, work.attempt(), Ok(output), true)
            .await
        {
            Ok(Ok(answer)) => {
                sample = Some((load.at(sent), micros(sent)));
                heard.now();
                if answer.ack == ReportAck::Accepted {
                    samples.reports.push(micros(sent));
                    load.acknowledged(&work);
                }
                next = answer.next;
            }
            Ok(Err(e)) => load.error(format!("{me}: report refused: {e}")),
            Err(_) => return Ending::Lost,
        }
    }
}

/// A coordinator process this program started, reaped with its resource use.
struct Coordinator {
    pid: libc::pid_t,
    started: Instant,
    log: PathBuf,
    reaped: bool,
}

/// How a coordinator process ended and what it used.
struct Ended {
    status: std::process::ExitStatus,
    cpu_s: f64,
    wall_s: f64,
    peak_mib: f64,
}

impl Coordinator {
    /// Starts `cmd` (its stderr into `coordinator-<n>.log`) and waits until
    /// it is listening (it writes its address file then).
    async fn start(cmd: &mut std::process::Command, dir: &Path, n: u32) -> Result<Coordinator> {
        let log = dir.join(format!("coordinator-{n}.log"));
        let child = cmd
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting the coordinator")?;
        let mut c = Coordinator {
            pid: child.id() as libc::pid_t,
            started: Instant::now(),
            log,
            reaped: false,
        };
        // Reaped by pid (wait4, for its resource use), not through `child`.
        drop(child);
        let addr = dir.join("addr");
        while !addr.is_file() {
            if let Some(e) = c.try_reap()? {
                bail!(
                    "the coordinator exited ({}) before listening\n{}",
                    e.status,
                    c.log_tail()
                );
            }
            if c.started.elapsed() > Duration::from_secs(60) {
                bail!(
                    "the coordinator was not listening after 60 s\n{}",
                    c.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(c)
    }

    /// The end of its log, for error messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Reaps it if it has exited (never blocks).
    fn try_reap(&mut self) -> Result<Option<Ended>> {
        let ended = wait4(self.pid, libc::WNOHANG, self.started)?;
        self.reaped |= ended.is_some();
        Ok(ended)
    }

    /// Waits for it to exit (on a blocking thread: wait4 blocks).
    async fn wait(&mut self) -> Result<Ended> {
        let (pid, started) = (self.pid, self.started);
        let ended = tokio::task::spawn_blocking(move || wait4(pid, 0, started)).await??;
        self.reaped = true;
        ended.context("wait4 returned no status")
    }

    /// Kills it (SIGKILL) and reaps it.
    async fn kill(&mut self) -> Result<Ended> {
        // SAFETY: kill(2) on a child this program started and has not reaped.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        self.wait().await
    }
}

impl Drop for Coordinator {
    /// A coordinator left running (an error path) is killed and reaped.
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: as in `kill`; then reap the zombie.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

/// Reaps child `pid` (with `flags`, e.g. WNOHANG) with its resource use;
/// None if it has not exited.
fn wait4(pid: libc::pid_t, flags: libc::c_int, started: Instant) -> Result<Option<Ended>> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of the plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 writes only into the two locals passed.
    let r = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
    if r == 0 {
        return Ok(None);
    }
    if r < 0 {
        bail!(
            "waiting for the coordinator: {}",
            std::io::Error::last_os_error()
        );
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    use std::os::unix::process::ExitStatusExt;
    Ok(Some(Ended {
        status: std::process::ExitStatus::from_raw(status),
        cpu_s: secs(usage.ru_utime) + secs(usage.ru_stime),
        wall_s: started.elapsed().as_secs_f64(),
        peak_mib: usage.ru_maxrss as f64 / 1024.0,
    }))
}

/// A loopback port free now (the coordinator keeps it across a restart, as
/// a real coordinator keeps its address).
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// CPU seconds this process used.
fn self_cpu_s() -> f64 {
    // SAFETY: getrusage writes into a local struct.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}
