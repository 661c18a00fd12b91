//! `mrworker`: joins a MapReduce job and runs its tasks until the job is done.

use clap::Parser;
use mr_protocol::join::Endpoint;
use mr_protocol::EXIT_REFUSED;
use mr_worker::task_loop::{run_worker, AppMaker, Ending, WorkerConfig, WorkerError};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Run map and reduce tasks for a MapReduce coordinator.
///
/// Exit status: 0 when the job is over (or the coordinator has gone away
/// after it, or SIGTERM stopped the worker gracefully), 1 when the
/// coordinator cannot be reached, 3 when the app is unknown or the
/// coordinator refuses this worker.
#[derive(Parser, Debug)]
#[command(version = mr_build::VERSION)]
struct Args {
    /// Coordinator address: host:port, or unix:PATH (or an absolute path)
    /// for its Unix domain socket. Default: the lab's socket
    /// /var/tmp/5840-mr-<uid> if a coordinator made it, else 127.0.0.1:7878.
    #[arg(long, env = "MR_COORDINATOR")]
    coordinator: Option<String>,
    /// Seconds to keep trying to reach the coordinator at start-up.
    #[arg(long, allow_hyphen_values = true, default_value = "5", value_parser = mr_protocol::size::parse_secs)]
    connect_timeout: Duration,
    /// Seconds to wait for a coordinator lost mid-job to come back (it may be
    /// restarting from its journal) before exiting. A worker that can see the
    /// job directory exits at once if the job finished.
    #[arg(long, allow_hyphen_values = true, default_value = "30", value_parser = mr_protocol::size::parse_secs)]
    reconnect_timeout: Duration,
    /// The job's join secret, `mrj1:<token>:<certificate fingerprint>`, as the
    /// coordinator keeps it in <work dir>/mr-job/token (printed nowhere).
    /// Workers on the coordinator's machine find it themselves.
    #[arg(long, env = "MR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Memory budget of a map task's buffers (bytes, or 64MiB, 1GiB...);
    /// past it, sorted runs are spilled to disk and merged at the end.
    #[arg(long, allow_hyphen_values = true, env = "MR_MEMORY", default_value = "128MiB", value_parser = mr_protocol::size::parse_size)]
    memory: u64,
    /// Threads for map and reduce work (0: one per core). Several workers on
    /// one machine do better splitting the cores than each using them all.
    #[arg(
        long,
        allow_hyphen_values = true,
        env = "MR_THREADS",
        default_value_t = 0
    )]
    threads: usize,
    /// A streaming app instead of APP: the shell command that maps (reads
    /// input lines on stdin, writes key<TAB>value lines). Needs --reduce-cmd.
    #[arg(long, requires = "reduce_cmd", conflicts_with = "app")]
    map_cmd: Option<String>,
    /// A streaming app: the shell command that reduces (reads key<TAB>value
    /// lines sorted by key, writes key<TAB>value lines). Needs --map-cmd.
    #[arg(long, requires = "map_cmd")]
    reduce_cmd: Option<String>,
    /// Keep map outputs in this directory (a private one is made inside it)
    /// and serve them to reducers over the network, instead of writing them
    /// to the coordinator's job directory. Workers that cannot see that
    /// directory (other hosts, no shared file system) do this anyway, in the
    /// system's temp directory unless this is given.
    #[arg(long, env = "MR_LOCAL_DIR")]
    local_dir: Option<std::path::PathBuf>,
    /// Where this worker's shuffle service listens (host:port) when it keeps
    /// map outputs itself. Default: the address this host reaches the
    /// coordinator from, on any free port.
    #[arg(long, env = "MR_SHUFFLE_ADDR")]
    shuffle_addr: Option<String>,
    /// Fetch every input range from the coordinator, even for files that
    /// exist here with the same size (when the same path may hold other data).
    #[arg(long)]
    remote_inputs: bool,
    /// Seconds SIGTERM (or SIGINT) gives the attempt in hand to finish: the
    /// worker takes no new work, and what still runs after this is handed
    /// back to the coordinator (no strike against the task); then it exits
    /// 0. A second signal hands back at once.
    #[arg(long, value_name = "SECS", env = "MR_DRAIN_TIMEOUT", default_value = "20", value_parser = mr_protocol::size::parse_secs)]
    drain_timeout: Duration,
    /// Instead of joining a job: run one task of a finished or failed job
    /// again, alone, in the foreground, with exactly the input it had: the
    /// job's report (mr-report.json) and the task as it names it (map-3,
    /// reduce-7). The app and settings come from the report; the output
    /// goes into --replay-dir. RUST_LOG=debug shows its steps.
    #[arg(long, num_args = 2, value_names = ["REPORT", "TASK"], conflicts_with_all = ["app", "map_cmd"])]
    replay: Option<Vec<String>>,
    /// With --replay: the directory the replay writes into (created; must
    /// be new or empty). Default: mr-replay-<TASK> here.
    #[arg(long, requires = "replay")]
    replay_dir: Option<std::path::PathBuf>,
    /// The app: a built-in name (wc, indexer, nocrash, crash, mtiming, rtiming,
    /// jobcount, early_exit, poison) or the path of a plugin (.so).
    /// How logs are written to stderr: text, or json (one object a line,
    /// for log collectors).
    #[arg(
        long,
        value_name = "FORMAT",
        env = "MR_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: mr_protocol::LogFormat,
    #[arg(required_unless_present_any = ["map_cmd", "replay"])]
    app: Option<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    mr_protocol::init_logging_as(args.log_format);
    mr_worker::raise_open_file_limit();
    mr_worker::return_freed_memory();
    if args.threads > 0 {
        // Only fails if a pool already exists, which cannot happen this early.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(args.threads)
            .build_global();
    }
    if let Some(replay) = &args.replay {
        let (report, task) = (replay[0].clone(), replay[1].clone());
        let (dir, memory) = (args.replay_dir.clone(), args.memory as usize);
        // CPU work: off the runtime, which has nothing else to do here.
        return tokio::task::spawn_blocking(move || replay_task(&report, &task, dir, memory))
            .await
            .unwrap_or(ExitCode::FAILURE);
    }
    // Resolve the app before connecting: a typo must not cost a round trip.
    let (app, make_app) = match resolve_app(&args) {
        Ok(resolved) => resolved,
        Err(e) => {
            mr_protocol::say("mrworker", true, &e);
            return ExitCode::from(EXIT_REFUSED as u8);
        }
    };
    let coordinator = match &args.coordinator {
        Some(a) => Endpoint::parse(a),
        None => Endpoint::local_default(),
    };
    if let Err(e) = check_token(args.token.as_deref(), &coordinator) {
        mr_protocol::say("mrworker", true, &e);
        return ExitCode::from(2);
    }
    let stop = match mr_worker::drain::Stop::on_signals(args.drain_timeout) {
        Ok(stop) => stop,
        Err(e) => {
            mr_protocol::say("mrworker", true, &format!("cannot watch for SIGTERM: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let cfg = WorkerConfig {
        coordinator,
        app,
        make_app,
        connect_for: args.connect_timeout,
        reconnect_for: args.reconnect_timeout,
        memory: args.memory as usize,
        // An empty MR_TOKEN is no token: found locally, as when unset.
        token: args.token.filter(|t| !t.trim().is_empty()),
        embedded_by: std::env::var(mr_protocol::join::EMBEDDED_BY_ENV)
            .ok()
            .and_then(|p| p.parse().ok()),
        placement: mr_worker::placement::PlacementConfig {
            local_dir: args.local_dir,
            shuffle_listen: args.shuffle_addr,
            remote_inputs: args.remote_inputs,
        },
        stop,
    };
    exit_status(run_worker(cfg).await)
}

/// The app the flags name (a built-in or plugin, or a streaming pair of
/// commands), and how each job makes it again with its `--conf`.
fn resolve_app(args: &Args) -> Result<(mr_apps::AppRef, AppMaker), String> {
    match (&args.map_cmd, &args.reduce_cmd, &args.app) {
        (Some(m), Some(r), _) => {
            let app = Arc::new(mr_apps::apps::streaming::Streaming::new(m, r)) as mr_apps::AppRef;
            let same = app.clone();
            Ok((app, Arc::new(move |_: &mr_apps::Conf| Ok(same.clone()))))
        }
        (_, _, Some(app)) => {
            let spec = app.clone();
            let loaded = mr_apps::load(app).map_err(|e| e.to_string())?;
            let make: AppMaker =
                Arc::new(move |conf: &mr_apps::Conf| mr_apps::resolve(&spec, conf));
            Ok((Arc::from(loaded), make))
        }
        _ => unreachable!("clap requires an app or both commands"),
    }
}

/// Refuses a `--token` that is not a join secret, or a bare token (no
/// `mrj1:` prefix) that would cross the network in clear: a bare token
/// goes only to this machine. A `--no-tls` job's join secret
/// (`mrj1:<token>:`) says that clear is meant.
fn check_token(token: Option<&str>, coordinator: &Endpoint) -> Result<(), String> {
    if let Some(Err(e)) = token.map(mr_protocol::join::JoinSecret::parse) {
        return Err(format!("--token (or MR_TOKEN): {e}; give the job's join secret as the coordinator keeps it in <work dir>/mr-job/token"));
    }
    let bare = token.is_some_and(|t| {
        !t.trim().is_empty() && !t.trim().starts_with(mr_protocol::join::JOIN_PREFIX)
    });
    match (bare, coordinator) {
        (true, Endpoint::Tcp(addr)) if !mr_protocol::wire::is_loopback(addr) => Err(format!("--token (or MR_TOKEN) is a bare token, which would cross the network to {addr} in clear; give the job's join secret (mrj1:<token>:<fingerprint>, kept in <work dir>/mr-job/token on the coordinator's host)")),
        _ => Ok(()),
    }
}

/// The exit status for how the worker ended: 0 when the job dismissed it
/// or ended, `EXIT_REFUSED` when it was refused, 1 otherwise.
fn exit_status(ended: Result<Ending, WorkerError>) -> ExitCode {
    match ended {
        Ok(Ending::Dismissed | Ending::CoordinatorGone) => ExitCode::SUCCESS,
        // At once: a blocking thread may still run an attempt left behind,
        // and the runtime would wait for it on the way out.
        Ok(Ending::Drained) => std::process::exit(0),
        Err(e @ (WorkerError::Refused { .. } | WorkerError::Plaintext { .. })) => {
            mr_protocol::say("mrworker", true, &e.to_string());
            ExitCode::from(EXIT_REFUSED as u8)
        }
        Err(e) => {
            mr_protocol::say("mrworker", true, &e.to_string());
            ExitCode::FAILURE
        }
    }
}

/// `--replay REPORT TASK`: runs the task and says where its output went;
/// exit status 0 when it ran through, 1 when it failed (the failure said
/// as the job would have said it), 2 when it cannot be replayed.
fn replay_task(
    report: &str,
    task: &str,
    dir: Option<std::path::PathBuf>,
    memory: usize,
) -> ExitCode {
    use mr_worker::replay::{app_of, read_report, replay, ReplayError};
    let task: mr_protocol::replay::TaskName = match task.parse() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("mrworker: --replay: {e}");
            return ExitCode::from(2);
        }
    };
    let dir = dir.unwrap_or_else(|| format!("mr-replay-{task}").into());
    let ran = read_report(std::path::Path::new(report)).and_then(|info| {
        let app = app_of(&info)?;
        replay(&app, &info, task, &dir, memory)
    });
    match ran {
        Ok(done) => {
            if done.maps_rerun > 0 {
                eprintln!(
                    "mrworker: {} map outputs were gone; their splits were mapped again",
                    done.maps_rerun
                );
            }
            for f in &done.outputs {
                println!("{}", f.display());
            }
            eprintln!("mrworker: replayed {task} into {}", dir.display());
            ExitCode::SUCCESS
        }
        Err(e @ ReplayError::Failed { .. }) => {
            eprintln!("mrworker: replay of {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("mrworker: --replay: {e}");
            ExitCode::from(2)
        }
    }
}
