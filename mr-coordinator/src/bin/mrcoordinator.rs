//! `mrcoordinator`: plans a MapReduce job, hands its tasks to workers, and
//! exits 0 once every `mr-out-*` file is committed.

use clap::Parser;
use mr_coordinator::server::{JobConfig, RunningJob, SocketChoice};
use mr_protocol::size::{parse_secs, parse_size};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// mimalloc: glibc's per-thread pools kept freed memory resident (a
/// million-map job peaked 25% higher). Built without transparent huge pages
/// (`no_thp`): mimalloc asks for them by default, and 10,000 connections'
/// small buffers then touched whole 2 MiB pages, which the kernel zeroes
/// first (the join storm's peak 446 -> 408 MiB).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Coordinate a MapReduce job over INPUT files (paths or glob patterns).
///
/// Workers (mrworker) connect to --listen; with --workers N the coordinator
/// starts N local workers itself. Outputs are mr-out-0 .. mr-out-<R-1> in
/// --output-dir. Exit status 0 when all are committed, 1 when the job
/// cannot finish, 2 for bad usage.
#[derive(Parser, Debug)]
#[command(version = mr_build::VERSION)]
struct Args {
    /// Number of reduce tasks R (and output files).
    #[arg(long, allow_hyphen_values = true, default_value_t = 10)]
    reduces: u32,
    /// Address to listen on for workers (port 0 picks a free port). Default
    /// 127.0.0.1:7878, or a free loopback port with --workers (its workers
    /// use the socket).
    #[arg(long, env = "MR_COORDINATOR")]
    listen: Option<String>,
    /// Also serve workers on this machine on a Unix domain socket here
    /// (default without --listen: the lab's /var/tmp/5840-mr-<uid>). Only
    /// this user's workers are admitted, without a token; removed at exit.
    #[arg(long, conflicts_with = "no_socket")]
    socket: Option<PathBuf>,
    /// Serve no Unix domain socket, only TCP.
    #[arg(long)]
    no_socket: bool,
    /// Seconds a worker may stay silent before its tasks are reissued elsewhere.
    #[arg(long, allow_hyphen_values = true, default_value = "10", value_parser = parse_secs)]
    task_timeout: Duration,
    /// Largest input split per map task: bytes, or with a unit (512KiB, 64MiB, 1GiB).
    #[arg(long, allow_hyphen_values = true, default_value = "64MiB", value_parser = parse_size)]
    split_size: u64,
    /// The app workers must run; workers running another app are refused.
    #[arg(long, conflicts_with = "map_cmd")]
    app: Option<String>,
    /// A streaming job: the shell command that maps (reads input lines on
    /// stdin, writes key<TAB>value lines). Needs --reduce-cmd.
    #[arg(long, requires = "reduce_cmd")]
    map_cmd: Option<String>,
    /// A streaming job: the shell command that reduces (reads key<TAB>value
    /// lines sorted by key, writes key<TAB>value lines). Needs --map-cmd.
    #[arg(long, requires = "map_cmd")]
    reduce_cmd: Option<String>,
    /// Start this many local mrworker processes for the job (needs --app).
    #[arg(long, allow_hyphen_values = true, default_value_t = 0)]
    workers: u32,
    /// Directory where mr-out-* files are written, or an object store
    /// prefix (s3://BUCKET/prefix/; ends with a _SUCCESS manifest).
    #[arg(long, default_value = ".")]
    output_dir: PathBuf,
    /// Directory for the job's intermediate files (default: the output
    /// directory, or . when outputs go to an object store).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep map and reduce results in this directory (or under an
    /// s3://BUCKET/prefix) and reuse them: a re-run computes only what its
    /// changed inputs (or app, or R) change. Inputs are then split by
    /// content (needs --app).
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    cache: Option<PathBuf>,
    /// With --cache: after the job, evict least recently used results
    /// until the cache holds at most this much (e.g. 10GiB).
    #[arg(long, requires = "cache", value_parser = parse_size)]
    cache_max: Option<u64>,
    /// With --cache: a file whose contents the cache keys must include
    /// (repeatable): what the keys cannot see themselves, such as a module
    /// a streaming script imports. The keys already cover this build of
    /// the framework, a plugin's file, and the executables and files a
    /// streaming command names.
    #[arg(long, requires = "cache", value_name = "PATH")]
    cache_key_file: Vec<PathBuf>,
    /// A job parameter for the app (repeatable), e.g. --conf pattern=ERROR
    /// for grep. Shipped to every worker, recorded in the report, part of
    /// every cache key; an app refuses to start without a key it needs.
    #[arg(long, value_name = "KEY=VALUE", value_parser = mr_apps::Conf::parse_flag)]
    conf: Vec<(String, String)>,
    /// Inputs are records of this many bytes (any bytes, newlines
    /// included) instead of lines: splits are cut between records, and a
    /// file that is not whole records is refused. Apps with records of
    /// their own (sort: 100 bytes) need no flag.
    #[arg(long, value_name = "BYTES")]
    record_size: Option<u32>,
    /// Put the outputs in total order: the inputs' keys are sampled before
    /// the map phase and each reduce gets a key range, so mr-out-0,
    /// mr-out-1, ... concatenated are sorted by key (needs --app; sort
    /// always does this).
    #[arg(long)]
    total_order: bool,
    /// Launch no backup attempts of slow tasks near the end of a phase (the
    /// paper's measurement of what backups are worth); a stalled worker's
    /// tasks are then only reissued once it is declared lost.
    #[arg(long)]
    no_backups: bool,
    /// Seconds a task's only attempt must have run before a backup may be
    /// launched for it (it must also have run twice the phase's median);
    /// default: the --task-timeout. Lower it for jobs of short tasks.
    #[arg(long, value_name = "SECS", conflicts_with = "no_backups", value_parser = parse_secs)]
    backup_after: Option<Duration>,
    /// Failed attempts of one task (app panics, I/O errors) before the job fails.
    #[arg(long, allow_hyphen_values = true, default_value_t = 4)]
    max_attempts: u32,
    /// Skip records on which the app's map or reduce panics (each is retried
    /// once without the record, as in the MapReduce paper) instead of failing
    /// the job; skipped records are logged and counted in the summary.
    #[arg(long)]
    skip_bad_records: bool,
    /// The secret workers must present to join (default: generated per job;
    /// workers on this machine find it themselves, others need the job's
    /// join secret, kept in <work dir>/mr-job/token, as --token or MR_TOKEN).
    #[arg(long, env = "MR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Let any worker join without a token (only for trusted networks).
    #[arg(long, conflicts_with = "token")]
    no_token: bool,
    /// Speak plain TCP instead of TLS: the token and the job's data then
    /// cross the network readable by anyone on the path (only for trusted
    /// networks; it saves the encryption's CPU).
    #[arg(long)]
    no_tls: bool,
    /// Serve this certificate (a PEM file, or from MR_TLS_CERT the PEM
    /// itself) instead of one made for the job, so the join secret is known
    /// before the job starts (mrj1:<token>:<SHA-256 of the certificate's
    /// DER, in hex>): for a cluster's Secret. Needs --tls-key.
    #[arg(long, value_name = "PEM", env = "MR_TLS_CERT", hide_env_values = true, requires = "tls_key", conflicts_with = "no_tls", value_parser = parse_pem)]
    tls_cert: Option<mr_protocol::wire::Pem>,
    /// The private key of --tls-cert (a PEM file, or from MR_TLS_KEY the PEM
    /// itself: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PEM", env = "MR_TLS_KEY", hide_env_values = true, requires = "tls_cert", value_parser = parse_pem)]
    tls_key: Option<mr_protocol::wire::Pem>,
    /// Start over: discard an unfinished run's journal and intermediate files
    /// instead of resuming from them.
    #[arg(long)]
    fresh: bool,
    /// Serve a status page (GET /) and the live job report as JSON
    /// (GET /status) on this address, e.g. 127.0.0.1:8080; `mrstatus ADDR`
    /// prints it in a terminal.
    #[arg(long, env = "MR_STATUS_ADDR")]
    status_addr: Option<String>,
    /// Write the address actually bound (useful with port 0) to this file once listening.
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// Print nothing on success: no progress, no summary.
    #[arg(long, short)]
    quiet: bool,
    /// How logs are written to stderr: text, or json (one object a line,
    /// for log collectors).
    #[arg(
        long,
        value_name = "FORMAT",
        env = "MR_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: mr_protocol::LogFormat,
    /// Input files or glob patterns (quote patterns to let the coordinator expand them).
    #[arg(value_name = "INPUT")]
    inputs: Vec<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    mr_protocol::init_logging_as(args.log_format);
    // One descriptor per connected worker: 1,024 would cap the cluster.
    mr_protocol::raise_open_file_limit();
    let quiet = args.quiet;
    // JSON logs are for a collector: no progress line among them.
    let json = args.log_format == mr_protocol::LogFormat::Json;
    let say = |message: &str| mr_protocol::say("mrcoordinator", false, message);
    let fail = |message: &str| mr_protocol::say("mrcoordinator", true, message);
    let addr_file = args.addr_file.clone();
    let cfg = job_config(args, json);
    let result = match RunningJob::start(cfg).await {
        Ok(job) => {
            announce(&job, quiet);
            if let Some(Err(e)) = addr_file.map(|f| write_addr(&f, job.addr())) {
                fail(&e.to_string());
                return ExitCode::FAILURE;
            }
            job.wait().await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(s) => {
            if !quiet {
                match json {
                    false => eprint!("mrcoordinator: {}", s.render()),
                    true => say(s.render().trim_end()),
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            fail(&e.to_string());
            match e {
                // The command itself must change: bad usage.
                mr_coordinator::job::CoordinatorError::Refused(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// The job the flags describe (`json`: logs go to a collector, so no
/// progress line among them).
fn job_config(args: Args, json: bool) -> JobConfig {
    let cfg = JobConfig {
        inputs: args.inputs,
        reduces: args.reduces,
        listen: args.listen,
        socket: match (args.socket, args.no_socket) {
            (Some(p), _) => SocketChoice::Path(p),
            (None, true) => SocketChoice::Off,
            (None, false) => SocketChoice::Default,
        },
        task_timeout: args.task_timeout,
        split_size: args.split_size,
        app: args.app,
        workers: args.workers,
        output_dir: args.output_dir,
        work_dir: args.work_dir,
        cache: args.cache,
        cache_max: args.cache_max,
        cache_key_files: args.cache_key_file,
        max_attempts: args.max_attempts,
        skip_bad_records: args.skip_bad_records,
        token: args.token,
        no_token: args.no_token,
        no_tls: args.no_tls,
        fresh: args.fresh,
        status_addr: args.status_addr,
        progress: !args.quiet && !json,
        streaming: None,
        conf: args.conf,
        record_size: args.record_size,
        total_order: args.total_order,
        backups: !args.no_backups,
        backup_after: args.backup_after,
        tls_files: args.tls_cert.zip(args.tls_key),
    };
    match (args.map_cmd, args.reduce_cmd) {
        (Some(m), Some(r)) => JobConfig {
            app: Some(mr_apps::apps::streaming::app_name(&m, &r)),
            streaming: Some((m, r)),
            ..cfg
        },
        _ => cfg,
    }
}

/// Says where the job's status page is, and, when workers may come from
/// other hosts, how they join.
fn announce(job: &RunningJob, quiet: bool) {
    let say = |message: &str| mr_protocol::say("mrcoordinator", false, message);
    if let (Some(s), false) = (job.status_addr(), quiet) {
        say(&format!(
            "status page at http://{s}/ (JSON at /status, Prometheus at /metrics)"
        ));
    }
    if let (Some(f), false) = (job.token_file(), job.addr().ip().is_loopback()) {
        say(&format!(
            "listening on {}; workers on other hosts need the job's join secret: MR_TOKEN=$(cat {}) mrworker --coordinator <this host>:{} ...",
            job.addr(),
            f.display(),
            job.addr().port()
        ));
    }
}

/// Publishes the bound address atomically (temp file + rename), so a reader
/// never sees a partial address.
fn write_addr(file: &std::path::Path, addr: std::net::SocketAddr) -> Result<(), String> {
    mr_coordinator::jobdir::write_replacing(file, |out| writeln!(out, "{addr}"))
        .map_err(|e| format!("cannot write --addr-file '{}': {e}", file.display()))
}

/// `--tls-cert` and `--tls-key`: a path, or the PEM text itself.
fn parse_pem(given: &str) -> Result<mr_protocol::wire::Pem, String> {
    Ok(mr_protocol::wire::Pem::parse(given))
}
