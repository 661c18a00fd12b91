//! Starting a job: [`RunningJob::start`] is the list of steps, each a
//! function below, in the order they must happen. The order carries the
//! promises: a refused job (bad flags, inputs, parameters) writes nothing;
//! the port is bound before the job directory exists, so a busy port leaves
//! nothing behind; the output prefix is claimed before anything under it is
//! touched; the join secret is published before the port listens, so a
//! local worker that can connect can also find the fingerprint to pin. Once
//! the journal is replayed, a start that fails after all removes the job
//! directory it created ([`FreshJobDir`]): an unresumable empty journal
//! must not stay behind.

use super::shared::Shared;
use super::{claim, publish, serve_socket, serve_tcp, socket, RunningJob};
use crate::job::{CoordinatorError, JobConfig, SocketChoice};
use crate::jobdir::{
    dir_error, identity, job_id, job_token, lock_output_dir, reconcile, usable_dir,
    warn_stale_outputs, JOB_DIR,
};
use crate::journal::{Journal, Recovered};
use crate::observe::report::CacheInfo;
use crate::scheduler::{ResumedMap, Scheduler, SchedulerConfig};
use mr_protocol::join::{Endpoint, JoinSecret};
use mr_protocol::plan::{expand_inputs_with, InputFile};
use mr_protocol::wire::Identity;
use mr_protocol::{names, Finished, JobShape, PlannedFile};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tracing::{info, warn};

use super::embedded::EmbeddedWorkers;

impl RunningJob {
    /// Validates the job, prepares its directories, binds the port and starts
    /// serving (and any embedded workers). Returns once workers can connect.
    pub async fn start(cfg: JobConfig) -> Result<RunningJob, CoordinatorError> {
        check_flags(&cfg)?;
        let files = list_inputs(&cfg).await?;
        // The app's parameters, records and partitions, before anything
        // is written: a refusal leaves nothing behind.
        let shape = crate::shape::decide(&cfg, &files).await?;
        let mut dirs = Dirs::prepare(&cfg).await?;
        let locks = std::mem::take(&mut dirs.locks);
        let id = job_id(&files, &cfg);
        // The socket first: when another job holds it, that is what to say.
        let socket = claim_socket(&cfg, &id, &dirs.output_label)?;
        let port = Port::bind(&cfg).await?;
        let claim = claim_prefix(&dirs, &id).await?;
        make_job_dir(&cfg, &dirs.job_dir, &id)?;
        let ident = identity(&files, &cfg, &dirs.output_label, &shape)?;
        let (journal, mut recovered) = replay_journal(&dirs, ident).await?;
        let fresh = FreshJobDir::new(&dirs.job_dir, recovered.incarnation);
        if let Some(prefix) = &dirs.output_store {
            publish::recover(prefix, &mut recovered, &journal).await?;
            publish::clear_stale(prefix, cfg.reduces, &recovered).await?;
        }
        let resumed = (recovered.maps.len(), recovered.reduces.len());
        if recovered.incarnation > 0 {
            info!(
                maps = resumed.0,
                outputs = resumed.1,
                "resuming an unfinished run of this job from its journal"
            );
        }
        let access = Access::prepare(&cfg, &dirs.job_dir, port.addr)?;
        let cached = prepare_cache(&cfg, &shape, &files, &recovered, &dirs).await?;
        let published = publish::already_published(&recovered);
        let planned = files
            .iter()
            .map(|f| PlannedFile {
                path: f.path.clone(),
                len: f.len,
            })
            .collect();
        let sched = scheduler(&cfg, &shape, files, &recovered, cached.content);
        let heartbeat =
            (cfg.task_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
        let store = dirs.output_store.map(|prefix| {
            let lost = claim
                .as_ref()
                .map_or_else(Default::default, |c| c.lost_flag());
            publish::StoreOutputs::new(prefix, lost, published)
        });
        let shared = Arc::new(Shared {
            sched: Mutex::new(sched),
            planning: tokio::sync::Mutex::new(()),
            conns: Default::default(),
            changed: Notify::new(),
            work: Notify::new(),
            journal,
            store,
            cache: cached.cache,
            job_id: id,
            reduces: cfg.reduces,
            job_dir: dirs.job_dir,
            output_dir: dirs.output_dir,
            heartbeat,
            token: access.token.clone(),
            token_hint: access.token_hint.clone(),
            tls: access.identity.is_some(),
            started: Instant::now(),
            inputs: planned,
            app_args: cfg.replay_app_args(),
            shape,
        });
        let socket = serve(&shared, port.tcp, port.addr, access.identity, socket)?;
        let status = match &cfg.status_addr {
            None => None,
            Some(a) => {
                let s = shared.clone();
                let report = move |listing| s.report(None, listing);
                Some(crate::observe::status::StatusServer::start(a, report)?)
            }
        };
        let progress = cfg.progress.then(|| {
            let s = shared.clone();
            crate::observe::progress::Progress::start(move || {
                s.report(None, crate::observe::report::Listing::Figures)
            })
        });
        let join = access.join.as_deref();
        let embedded = start_embedded(&cfg, &shared, socket.as_ref(), port.addr, join)?;
        info!(addr = %port.addr, "coordinator listening");
        fresh.keep();
        Ok(RunningJob {
            shared,
            addr: port.addr,
            started: Instant::now(),
            embedded,
            task_timeout: cfg.task_timeout,
            _locks: locks,
            token_file: access.token_file,
            resumed,
            status,
            progress,
            token_kept: access.join.is_some().then_some(access.join_kept),
            join: access.join,
            socket,
            claim,
        })
    }
}

/// Refuses flags that cannot make a job, before anything is read or written.
fn check_flags(cfg: &JobConfig) -> Result<(), CoordinatorError> {
    let refuse = |what: &str| Err(CoordinatorError::Config(what.into()));
    if cfg.reduces == 0 {
        return refuse("--reduces must be at least 1");
    }
    if cfg.max_attempts == 0 {
        return refuse("--max-attempts must be at least 1");
    }
    if cfg.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
        return refuse("--token (or MR_TOKEN) is empty; give a non-empty secret, or leave it unset to have one generated");
    }
    if cfg.cache.is_some() && cfg.app.is_none() {
        return refuse(
            "--cache needs to know the app's code: add --app NAME (or --map-cmd and --reduce-cmd)",
        );
    }
    if cfg.workers > 0 && cfg.app.is_none() {
        return refuse(
            "--workers starts local workers, which need to know the app: add --app NAME",
        );
    }
    if cfg.workers == 0 {
        if let Some(note) = unknown_app_note(cfg) {
            warn!("{note}");
        }
    }
    Ok(())
}

/// The job's input files, from the paths and patterns given (listing
/// objects waits on the network: off the runtime's threads).
async fn list_inputs(cfg: &JobConfig) -> Result<Vec<InputFile>, CoordinatorError> {
    let args = cfg.inputs.clone();
    tokio::task::spawn_blocking(move || expand_inputs_with(&args, Some(&mr_store::Lister)))
        .await
        .map_err(|e| CoordinatorError::Internal {
            what: "input listing",
            reason: e.to_string(),
        })?
        .map_err(Into::into)
}

/// Where the job writes: its outputs (a directory, or a prefix in an
/// object store) and its work (journal, intermediate files), each locked
/// for the life of the job.
struct Dirs {
    /// With outputs in an object store, their prefix (`s3://BUCKET/dir/`).
    output_store: Option<String>,
    /// The local directory for outputs; with a store, the work directory.
    output_dir: PathBuf,
    /// How messages, the report and the journal's identity name where the
    /// outputs go.
    output_label: PathBuf,
    /// The job directory (journal, intermediate files) in the work directory.
    job_dir: PathBuf,
    /// The locks on the output and work directories.
    locks: Vec<std::fs::File>,
}

impl Dirs {
    /// Checks and locks the directories `cfg` names. A store's prefix is
    /// checked writable now, so a bad one fails in seconds; the journal and
    /// intermediate files then need a local directory: the work directory
    /// (default: here).
    async fn prepare(cfg: &JobConfig) -> Result<Dirs, CoordinatorError> {
        let output_store = output_prefix(&cfg.output_dir)?;
        if let Some(prefix) = &output_store {
            mr_store::probe_writable(prefix).await?;
        }
        let output_dir = match &output_store {
            None => usable_dir(&cfg.output_dir, "output directory")?,
            Some(_) => {
                let here = Path::new(".");
                usable_dir(cfg.work_dir.as_deref().unwrap_or(here), "work directory")?
            }
        };
        let mut locks = vec![lock_output_dir(&output_dir)?];
        if output_store.is_none() {
            warn_stale_outputs(&output_dir, cfg.reduces);
        }
        let output_label = output_store
            .as_ref()
            .map_or_else(|| output_dir.clone(), PathBuf::from);
        let work_dir = match &cfg.work_dir {
            Some(w) => usable_dir(w, "work directory")?,
            None => output_dir.clone(),
        };
        if work_dir != output_dir {
            locks.push(lock_output_dir(&work_dir)?);
        }
        Ok(Dirs {
            output_store,
            output_dir,
            output_label,
            job_dir: work_dir.join(JOB_DIR),
            locks,
        })
    }
}

/// The job's TCP port, bound but not yet listening (it listens once the
/// join secret is published).
struct Port {
    tcp: tokio::net::TcpSocket,
    addr: SocketAddr,
}

impl Port {
    /// Binds `--listen`. Without it, a job whose workers are all embedded
    /// needs no well-known port (they use the socket): a free one keeps two
    /// such jobs on one machine from colliding.
    async fn bind(cfg: &JobConfig) -> Result<Port, CoordinatorError> {
        let listen = match &cfg.listen {
            Some(a) => a.clone(),
            None if cfg.workers > 0 => "127.0.0.1:0".to_string(),
            None => mr_protocol::DEFAULT_ADDR.to_string(),
        };
        let bind_error = |e: std::io::Error| CoordinatorError::Bind {
            addr: listen.clone(),
            reason: e.to_string(),
        };
        let tcp = bind_tcp(&listen).await.map_err(bind_error)?;
        let addr = tcp.local_addr().map_err(bind_error)?;
        Ok(Port { tcp, addr })
    }
}

/// One job at a time under an output prefix: claimed before anything there
/// or here is touched (`--fresh` included). The owner is this job directory
/// on this host, so a restart of the same job takes its claim back.
async fn claim_prefix(
    dirs: &Dirs,
    id: &str,
) -> Result<Option<claim::PrefixClaim>, CoordinatorError> {
    let Some(prefix) = &dirs.output_store else {
        return Ok(None);
    };
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = std::path::absolute(&dirs.job_dir).unwrap_or_else(|_| dirs.job_dir.clone());
    let owner = format!("{host}:{}", dir.display());
    Ok(Some(claim::PrefixClaim::take(prefix, id, &owner).await?))
}

/// Makes the job directory (emptied first with `--fresh`) and its marker,
/// which lets a worker tell whether it sees this directory (see
/// `WorkerPlace`).
fn make_job_dir(cfg: &JobConfig, job_dir: &Path, id: &str) -> Result<(), CoordinatorError> {
    if cfg.fresh && job_dir.exists() {
        warn!(dir = %job_dir.display(), "--fresh: discarding an unfinished job's journal and files");
        std::fs::remove_dir_all(job_dir).map_err(|e| dir_error(job_dir, e.to_string()))?;
    }
    std::fs::create_dir_all(job_dir)
        .map_err(|e| dir_error(job_dir, format!("cannot create job directory: {e}")))?;
    let marker = job_dir.join(names::JOB_MARKER);
    std::fs::write(&marker, id).map_err(|e| dir_error(&marker, e.to_string()))
}

/// Opens the journal: one left by a coordinator that died is this job's
/// progress (or, if another job's, a refusal). Replayed on a blocking
/// thread, and reconciled with the files the job directory holds.
async fn replay_journal(
    dirs: &Dirs,
    ident: crate::journal::JobIdentity,
) -> Result<(Journal, Recovered), CoordinatorError> {
    let (jd, od) = (dirs.job_dir.clone(), dirs.output_dir.clone());
    let local_outputs = dirs.output_store.is_none();
    tokio::task::spawn_blocking(move || {
        let (journal, mut recovered) = crate::journal::open(&jd, &ident)?;
        reconcile(&jd, &od, local_outputs, &mut recovered);
        Ok::<_, CoordinatorError>((journal, recovered))
    })
    .await
    .map_err(|e| CoordinatorError::Internal {
        what: "journal replay",
        reason: e.to_string(),
    })?
}

/// Removes the job directory when dropped, if this start created it (its
/// journal is the first incarnation's), unless [`FreshJobDir::keep`] was
/// called: every step after the journal's replay that fails leaves nothing.
struct FreshJobDir {
    dir: Option<PathBuf>,
}

impl FreshJobDir {
    fn new(dir: &Path, incarnation: u32) -> FreshJobDir {
        FreshJobDir {
            dir: (incarnation == 0).then(|| dir.to_path_buf()),
        }
    }

    /// The start succeeded: the directory stays.
    fn keep(mut self) {
        self.dir = None;
    }
}

impl Drop for FreshJobDir {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Who may join the job and how they find it: the token, the certificate,
/// and the join secret made of both.
struct Access {
    token: Option<String>,
    /// The job's TLS identity; None with `--no-tls`.
    identity: Option<Identity>,
    /// The join secret (None with neither token nor TLS).
    join: Option<String>,
    /// Where the join secret is kept in the job directory.
    join_kept: PathBuf,
    /// Where it is published for this machine's workers, if it is.
    token_file: Option<PathBuf>,
    /// Where a refused worker can find the token (for its error message).
    token_hint: String,
}

impl Access {
    /// The token (given, or kept from an earlier run, or made), the
    /// certificate (kept in the job directory so that a restarted
    /// coordinator keeps the fingerprint its workers pinned, or the one an
    /// operator provisioned), and the join secret, kept in the job
    /// directory (0600) and published for this machine's workers.
    fn prepare(
        cfg: &JobConfig,
        job_dir: &Path,
        addr: SocketAddr,
    ) -> Result<Access, CoordinatorError> {
        let token = match cfg.no_token {
            true => None,
            false => Some(job_token(job_dir, cfg.token.as_deref())?),
        };
        let identity = match (cfg.no_tls, &cfg.tls_files) {
            (true, _) => None,
            (false, None) => Some(Identity::load_or_create(job_dir)?),
            (false, Some((cert, key))) => Some(Identity::from_pem(cert, key)?),
        };
        let join = (token.is_some() || identity.is_some()).then(|| {
            JoinSecret {
                token: token.clone().unwrap_or_default(),
                pin: identity.as_ref().map(Identity::fingerprint),
            }
            .to_string()
        });
        let join_kept = job_dir.join(crate::jobdir::TOKEN_FILE);
        if let Some(j) = &join {
            mr_protocol::join::write_private(&join_kept, j).map_err(|e| {
                dir_error(
                    &join_kept,
                    format!("cannot write the job's join secret: {e}"),
                )
            })?;
        }
        if token.is_none() && !addr.ip().is_loopback() {
            warn!(%addr, "LISTENING ON A NON-LOOPBACK ADDRESS WITH --no-token: any host that can reach it may join the job and make it read and write files in its directories");
        }
        if identity.is_none() && !addr.ip().is_loopback() {
            warn!(%addr, "LISTENING ON A NON-LOOPBACK ADDRESS WITH --no-tls: the job's token, its input and its output cross the network unencrypted, readable and changeable by anyone on the path");
        }
        let mut token_file = None;
        let mut token_hint = String::new();
        if let Some(j) = &join {
            match mr_protocol::join::publish(addr.port(), j) {
                Ok(f) => {
                    token_hint = format!(" (on this job's coordinator host it is in {})", f.display());
                    if !addr.ip().is_loopback() {
                        info!(%addr, file = %join_kept.display(), "workers on other hosts need the job's join secret: pass it with --token or MR_TOKEN");
                    }
                    token_file = Some(f);
                }
                Err(e) => warn!("cannot publish the job's join secret for local workers: {e}; start workers with --token or MR_TOKEN"),
            }
        } else {
            // This coordinator holds the port now: a join secret published
            // for it is a dead coordinator's, and would send local workers
            // to a handshake (or a token) this one does not expect.
            let _ = std::fs::remove_file(mr_protocol::join::local_file(addr.port()));
        }
        Ok(Access {
            token,
            identity,
            join,
            join_kept,
            token_file,
            token_hint,
        })
    }
}

/// What `--cache` brought: the cache, the plan by content with what it
/// holds (taken as done, as the journal's progress is), and the figures.
#[derive(Default)]
struct Cached {
    cache: Option<crate::reuse::CacheUse>,
    content: Option<crate::reuse::ContentPlan>,
}

/// With a cache: splits by content, and takes whatever the cache holds.
async fn prepare_cache(
    cfg: &JobConfig,
    shape: &JobShape,
    files: &[InputFile],
    recovered: &Recovered,
    dirs: &Dirs,
) -> Result<Cached, CoordinatorError> {
    let Some(dir) = &cfg.cache else {
        return Ok(Cached::default());
    };
    let places = crate::reuse::Places {
        job_dir: &dirs.job_dir,
        output_dir: &dirs.output_dir,
        outputs_in_store: dirs.output_store.is_some(),
    };
    let prepared = crate::reuse::prepare(dir, cfg, shape, files, recovered, places).await?;
    let taken = &prepared.content.taken;
    let reused = CacheInfo {
        maps_reused: taken.maps.len(),
        reduces_reused: taken.reduces.len(),
        input_bytes_reused: taken.input_bytes,
        ..Default::default()
    };
    Ok(Cached {
        cache: Some(crate::reuse::CacheUse::new(prepared.cache, reused)),
        content: Some(prepared.content),
    })
}

/// The scheduler, with the journal's progress restored and what the cache
/// held counted as done.
fn scheduler(
    cfg: &JobConfig,
    shape: &JobShape,
    files: Vec<InputFile>,
    recovered: &Recovered,
    content: Option<crate::reuse::ContentPlan>,
) -> Scheduler {
    let mut sched = Scheduler::new(
        SchedulerConfig {
            reduces: cfg.reduces,
            split_size: cfg.split_size,
            task_timeout: cfg.task_timeout,
            max_attempts: cfg.max_attempts,
            app: cfg.required_app(),
            wait: Duration::from_millis(50),
            skip_bad_records: cfg.skip_bad_records,
            backups: cfg.backups,
            backup_after: cfg.backup_after.unwrap_or(cfg.task_timeout),
            record_size: shape.record_size,
        },
        files,
    );
    let mut resume = resume_from(recovered);
    let mut reusing_earlier = Vec::new();
    let cached = content.is_some();
    if let Some(mut c) = content {
        reusing_earlier = std::mem::take(&mut c.taken.reusing_earlier);
        sched.use_plan(c.plan);
        resume.app = resume.app.or(Some(c.app));
        // Maps from the cache are placed in the job directory.
        resume.maps.extend(
            c.taken
                .maps
                .into_iter()
                .map(|done| ResumedMap { done, holder: None }),
        );
        resume.reduces.extend(c.taken.reduces);
    }
    sched.restore(&resume);
    if !reusing_earlier.is_empty() {
        // Every map was cached: these reduces may start from earlier outputs.
        sched.release_reduces(&[], reusing_earlier, Instant::now());
    }
    if cached {
        // Reduces are looked up in the cache once every map's output
        // (and so every reduce's address) is known.
        sched.hold_reduces();
    }
    sched
}

/// Listens on the bound port and serves the job's socket, if it has one.
fn serve(
    shared: &Arc<Shared>,
    tcp: tokio::net::TcpSocket,
    addr: SocketAddr,
    identity: Option<Identity>,
    socket: Option<(std::os::unix::net::UnixListener, socket::SocketClaim)>,
) -> Result<Option<socket::SocketClaim>, CoordinatorError> {
    let listener = tcp.listen(1024).map_err(|e| CoordinatorError::Bind {
        addr: addr.to_string(),
        reason: e.to_string(),
    })?;
    tokio::spawn(serve_tcp(listener, shared.clone(), identity));
    let Some((std_listener, claim)) = socket else {
        return Ok(None);
    };
    let listener = tokio::net::UnixListener::from_std(std_listener).map_err(|e| {
        CoordinatorError::Socket(socket::SocketError::Io {
            path: claim.path().to_path_buf(),
            source: e,
        })
    })?;
    tokio::spawn(serve_socket(listener, shared.clone()));
    info!(socket = %claim.path().display(), "coordinator serving its socket");
    Ok(Some(claim))
}

/// Starts `--workers N` local workers, connecting by the socket if the job
/// has one; none when nothing is left to run (all from the cache).
fn start_embedded(
    cfg: &JobConfig,
    shared: &Shared,
    socket: Option<&socket::SocketClaim>,
    addr: SocketAddr,
    join: Option<&str>,
) -> Result<EmbeddedWorkers, CoordinatorError> {
    let n = cfg.workers;
    if cfg.app.is_none() || n == 0 || shared.sched().is_done() {
        return Ok(EmbeddedWorkers::none());
    }
    let endpoint = match socket {
        Some(c) => Endpoint::Unix(c.path().to_path_buf()),
        None => Endpoint::Tcp(addr.to_string()),
    };
    // Not planned yet (the plan waits for the first worker): every worker
    // will have maps to run.
    let maps_left = match shared.sched().progress() {
        p if p.maps == 0 => n as usize,
        p => p.maps - p.maps_done,
    };
    EmbeddedWorkers::start(
        n,
        maps_left,
        &cfg.worker_app_args(),
        endpoint,
        addr.ip().is_unspecified(),
        join,
    )
}

/// When `--app` names neither a built-in app nor a plugin file on this
/// machine, what to tell the user at once: the job will wait for workers
/// that bring an app of that name (remote workers may well have it), which
/// otherwise looks like a hang.
fn unknown_app_note(cfg: &JobConfig) -> Option<String> {
    let app = cfg.app.as_deref()?;
    if cfg.streaming.is_some() || mr_apps::apps::builtin::builtin(app).is_some() {
        return None;
    }
    let is_path = app.contains('/') || app.ends_with(".so");
    if is_path && std::path::Path::new(app).is_file() {
        return None;
    }
    let what = match is_path {
        true => format!("--app '{app}' is not a plugin file on this machine"),
        false => format!(
            "--app '{app}' is not a built-in app ({}) nor a plugin file here",
            mr_apps::apps::builtin::builtin_names().join(", ")
        ),
    };
    Some(format!(
        "{what}; the job waits for workers running an app of that name (start them with mrworker, or check the name)"
    ))
}

/// The object store prefix `--output-dir` names, normalized to
/// `s3://BUCKET/dir/`, or None for a local directory.
fn output_prefix(dir: &std::path::Path) -> Result<Option<String>, CoordinatorError> {
    let Some(arg) = dir.to_str().filter(|a| a.contains("://")) else {
        return Ok(None);
    };
    let url = mr_store::ObjectUrl::parse_prefix(arg)?;
    Ok(Some(url.url()))
}

/// What the journal recovered, as the scheduler takes it: the conversion at
/// the edge, so the scheduler never imports the journal's types.
pub fn resume_from(r: &crate::journal::Recovered) -> crate::scheduler::Resume {
    crate::scheduler::Resume {
        incarnation: r.incarnation,
        app: r.app.clone(),
        maps: r
            .maps
            .iter()
            .map(|(&m, d)| ResumedMap {
                done: Finished {
                    task: m,
                    attempt: d.done.attempt,
                    counters: d.done.counters.clone(),
                },
                holder: d.holder.clone(),
            })
            .collect(),
        reduces: r
            .reduces
            .iter()
            .map(|(&red, d)| Finished {
                task: red,
                attempt: d.attempt,
                counters: d.counters.clone(),
            })
            .collect(),
    }
}

/// Claims the job's Unix domain socket as `cfg` asks (see [`SocketChoice`]);
/// None when the job goes without one.
fn claim_socket(
    cfg: &JobConfig,
    id: &str,
    output_dir: &std::path::Path,
) -> Result<Option<(std::os::unix::net::UnixListener, socket::SocketClaim)>, CoordinatorError> {
    let owner = format!(
        "job {id}, output directory {}, pid {}",
        output_dir.display(),
        std::process::id()
    );
    match &cfg.socket {
        SocketChoice::Off => Ok(None),
        SocketChoice::Path(p) => Ok(Some(socket::claim(p, &owner)?)),
        // With --listen the user chose TCP; the socket is only for the
        // lab's way of running (everything local, nothing configured).
        SocketChoice::Default if cfg.listen.is_some() => Ok(None),
        SocketChoice::Default => match socket::claim(&socket::default_path(), &owner) {
            Ok(c) => Ok(Some(c)),
            Err(socket::SocketError::Busy { path, owner }) if cfg.workers > 0 => {
                // Embedded workers are told where to connect; only workers
                // started by hand look for the socket, and they would find
                // the other job's.
                warn!(
                    "{} is served by another running coordinator ({owner}); this job's workers connect over TCP instead",
                    path.display()
                );
                Ok(None)
            }
            Err(e) => Err(e.into()),
        },
    }
}

/// A TCP socket bound to `listen` (not yet listening).
async fn bind_tcp(listen: &str) -> std::io::Result<tokio::net::TcpSocket> {
    let addr = tokio::net::lookup_host(listen)
        .await?
        .next()
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "the name has no address")
        })?;
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // As std's listeners do: a port in TIME_WAIT from a previous run is free.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    Ok(socket)
}
