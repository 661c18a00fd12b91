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

mod figures;
mod load;
mod process;
mod status;
mod worker;

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use figures::{Figures, Killed};
use load::{Acked, Load};
use mr_protocol::join::JoinSecret;
use process::{free_port, self_cpu_s, Coordinator};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

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
    let status_addr = format!("127.0.0.1:{}", free_port()?);
    let mut cmd = std::process::Command::new(&bin);
    cmd.args(["--app", "wc", "--split-size", "1", "--no-socket", "--quiet"])
        .args([
            "--task-timeout",
            "30",
            "--reduces",
            &args.reduces.to_string(),
        ])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--status-addr", &status_addr])
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
    let poller = status::StatusPoller::start(status_addr);
    let figures = runtime.block_on(drive(args, cmd, &dir, port));
    let polled = poller.finish();
    let mut figures = figures?;
    figures.status_kib = polled.kib;
    figures.status_ms = polled.ms;
    figures.status_polls = polled.polls;
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
        workers.spawn(worker::worker(load.clone(), i));
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
    // The job's end. Workers end first when they are dismissed, but ones
    // that were all refused (a coordinator of another build, say) would
    // leave it waiting for ever: a minute after the last worker ended, the
    // coordinator is killed.
    let mut workers_gone: Option<std::time::Instant> = None;
    let ended = loop {
        if let Some(ended) = coordinator.try_reap()? {
            break ended;
        }
        while workers.try_join_next().is_some() {}
        if workers.is_empty() {
            let since = *workers_gone.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() > Duration::from_secs(60) {
                figures
                    .problems
                    .push("every worker ended and the job did not".into());
                break coordinator.kill().await?;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
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
