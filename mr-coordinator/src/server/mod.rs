//! The coordinator's runtime: prepares the job (directories, journal
//! replay, token), binds the RPC port and serves the [`service`] on it,
//! watches for lost workers and signals, and cleans up at the end.
//!
//! [`service`] answers each RPC under the scheduler's lock; [`data`] moves
//! bytes for workers outside the shared directory (input ranges, uploads);
//! [`embedded`] starts and supervises local workers (`--workers N`).

mod admission;
mod claim;
mod data;
pub mod embedded;
mod publish;
mod service;
pub mod socket;

pub use crate::job::{CoordinatorError, JobConfig, JobSummary, SocketChoice};
use crate::jobdir::{
    dir_error, identity, job_id, job_token, lock_output_dir, reconcile, usable_dir,
    warn_stale_outputs, JOB_DIR,
};
use crate::scheduler::{Scheduler, SchedulerConfig};
use embedded::EmbeddedWorkers;
use futures::StreamExt;
use mr_protocol::join::{Endpoint, JoinSecret};
use mr_protocol::plan::expand_inputs_with;
use mr_protocol::wire::{self, Identity};
use mr_protocol::{names, Coordinator, PlannedFile};
use service::{Handler, Shared, Via};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tarpc::server::{BaseChannel, Channel};
use tokio::sync::Notify;
use tracing::{debug, info, warn};

fn outcome_text(outcome: &Result<(), CoordinatorError>) -> String {
    match outcome {
        Ok(()) => String::new(),
        Err(e) => e.to_string(),
    }
}

/// Removes a job directory this start created (incarnation 0) when the
/// start fails after all: an unresumable empty journal must not stay behind.
fn abandon_fresh(job_dir: &std::path::Path, incarnation: u32) {
    if incarnation == 0 {
        let _ = std::fs::remove_dir_all(job_dir);
    }
}

/// A job whose coordinator is listening; [`RunningJob::wait`] drives it to the end.
pub struct RunningJob {
    shared: Arc<Shared>,
    addr: SocketAddr,
    started: Instant,
    embedded: EmbeddedWorkers,
    task_timeout: Duration,
    /// Held for the life of the job (see [`lock_output_dir`]): the output
    /// directory's, and the work directory's when it is another.
    _locks: Vec<std::fs::File>,
    /// The published token file, removed at the end.
    token_file: Option<PathBuf>,
    /// Tasks found done in an earlier run's journal.
    resumed: (usize, usize),
    /// The status endpoint, if asked for (stops when dropped).
    status: Option<crate::observe::status::StatusServer>,
    /// The progress display, if shown.
    progress: Option<crate::observe::progress::Progress>,
    /// The file holding the join secret (None with neither token nor TLS).
    token_kept: Option<PathBuf>,
    /// The join secret published in `token_file`.
    join: Option<String>,
    /// The Unix domain socket, removed when the job ends (with `self`).
    socket: Option<socket::SocketClaim>,
    /// The claim on the output prefix, when outputs go to a store:
    /// released at the end.
    claim: Option<claim::PrefixClaim>,
}

impl RunningJob {
    /// Validates the job, prepares its directories, binds the port and starts
    /// serving (and any embedded workers). Returns once workers can connect.
    pub async fn start(cfg: JobConfig) -> Result<RunningJob, CoordinatorError> {
        if cfg.reduces == 0 {
            return Err(CoordinatorError::Config(
                "--reduces must be at least 1".into(),
            ));
        }
        if cfg.max_attempts == 0 {
            return Err(CoordinatorError::Config(
                "--max-attempts must be at least 1".into(),
            ));
        }
        if cfg.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(CoordinatorError::Config(
                "--token (or MR_TOKEN) is empty; give a non-empty secret, or leave it unset to have one generated".into(),
            ));
        }
        if cfg.cache.is_some() && cfg.app.is_none() {
            return Err(CoordinatorError::Config(
                "--cache needs to know the app's code: add --app NAME (or --map-cmd and --reduce-cmd)".into(),
            ));
        }
        if cfg.workers > 0 && cfg.app.is_none() {
            return Err(CoordinatorError::Config(
                "--workers starts local workers, which need to know the app: add --app NAME".into(),
            ));
        }
        if cfg.workers == 0 {
            if let Some(note) = unknown_app_note(&cfg) {
                warn!("{note}");
            }
        }
        // Listing objects waits on the network: off the runtime's threads.
        let args = cfg.inputs.clone();
        let files =
            tokio::task::spawn_blocking(move || expand_inputs_with(&args, Some(&mr_store::Lister)))
                .await
                .map_err(|e| CoordinatorError::Internal {
                    what: "input listing",
                    reason: e.to_string(),
                })??;
        // The app's parameters, records and partitions, before anything
        // is written: a refusal leaves nothing behind.
        let shape = crate::shape::decide(&cfg, &files).await?;
        // Outputs in an object store: checked writable now, so a bad
        // prefix fails in seconds; the journal and intermediate files then
        // need a local directory: the work directory (default: here).
        let output_store = output_prefix(&cfg.output_dir)?;
        if let Some(prefix) = &output_store {
            mr_store::probe_writable(prefix).await?;
        }
        let output_dir = match &output_store {
            None => usable_dir(&cfg.output_dir, "output directory")?,
            Some(_) => {
                let here = std::path::Path::new(".");
                usable_dir(cfg.work_dir.as_deref().unwrap_or(here), "work directory")?
            }
        };
        let mut locks = vec![lock_output_dir(&output_dir)?];
        if output_store.is_none() {
            warn_stale_outputs(&output_dir, cfg.reduces);
        }
        // How the job names where its outputs go (in messages, the report
        // and the journal's identity).
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
        // The socket first: when another job holds it, that is what to say.
        let id = job_id(&files, &cfg);
        let socket = claim_socket(&cfg, &id, &output_label)?;
        // Without --listen, a job whose workers are all embedded needs no
        // well-known port (they use the socket): a free one keeps two such
        // jobs on one machine from colliding.
        let listen = match &cfg.listen {
            Some(a) => a.clone(),
            None if cfg.workers > 0 => "127.0.0.1:0".to_string(),
            None => mr_protocol::DEFAULT_ADDR.to_string(),
        };
        // Bound before the job directory exists, so a busy port leaves nothing behind.
        let bind_error = |e: std::io::Error| CoordinatorError::Bind {
            addr: listen.clone(),
            reason: e.to_string(),
        };
        // Bound now, listening only once the join secret is published: a
        // local worker that can connect can also find the fingerprint to pin.
        let tcp = bind_tcp(&listen).await.map_err(bind_error)?;
        let addr = tcp.local_addr().map_err(bind_error)?;
        let job_dir = work_dir.join(JOB_DIR);
        // One job at a time under an output prefix: claimed before
        // anything there or here is touched (--fresh included). The owner
        // is this job directory on this host, so a restart of the same
        // job takes its claim back.
        let claim = match &output_store {
            Some(prefix) => {
                let host = nix::unistd::gethostname()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let dir = std::path::absolute(&job_dir).unwrap_or_else(|_| job_dir.clone());
                let owner = format!("{host}:{}", dir.display());
                Some(claim::PrefixClaim::take(prefix, &id, &owner).await?)
            }
            None => None,
        };
        if cfg.fresh && job_dir.exists() {
            warn!(dir = %job_dir.display(), "--fresh: discarding an unfinished job's journal and files");
            std::fs::remove_dir_all(&job_dir).map_err(|e| dir_error(&job_dir, e.to_string()))?;
        }
        std::fs::create_dir_all(&job_dir)
            .map_err(|e| dir_error(&job_dir, format!("cannot create job directory: {e}")))?;
        // Lets a worker tell whether it sees this directory (see WorkerPlace).
        let marker = job_dir.join(names::JOB_MARKER);
        std::fs::write(&marker, &id).map_err(|e| dir_error(&marker, e.to_string()))?;
        // A journal left by a coordinator that died is this job's progress
        // (or, if another job's, a refusal): replay it on a blocking thread.
        let ident = identity(&files, &cfg, &output_label, &shape)?;
        let (jd, od) = (job_dir.clone(), output_dir.clone());
        let local_outputs = output_store.is_none();
        let (journal, mut recovered) = tokio::task::spawn_blocking(move || {
            let (journal, mut recovered) = crate::journal::open(&jd, &ident)?;
            reconcile(&jd, &od, local_outputs, &mut recovered);
            Ok::<_, CoordinatorError>((journal, recovered))
        })
        .await
        .map_err(|e| CoordinatorError::Internal {
            what: "journal replay",
            reason: e.to_string(),
        })??;
        if let Some(prefix) = &output_store {
            let recovered_outputs = match publish::recover(prefix, &mut recovered, &journal).await {
                Ok(()) => publish::clear_stale(prefix, cfg.reduces, &recovered).await,
                Err(e) => Err(e),
            };
            if let Err(e) = recovered_outputs {
                abandon_fresh(&job_dir, recovered.incarnation);
                return Err(e.into());
            }
        }
        // The store's outputs already published, for the manifest.
        let published = recovered
            .uploads
            .iter()
            .filter(|(r, (a, _, _))| recovered.reduces.get(r).is_some_and(|(d, _)| d == a))
            .map(|(&r, (_, _, u))| (r, u.clone()))
            .collect();
        let resumed = (recovered.maps.len(), recovered.reduces.len());
        if recovered.incarnation > 0 {
            info!(
                maps = resumed.0,
                outputs = resumed.1,
                "resuming an unfinished run of this job from its journal"
            );
        }
        let token = match cfg.no_token {
            true => None,
            false => match job_token(&job_dir, cfg.token.as_deref()) {
                Ok(t) => Some(t),
                Err(e) => {
                    abandon_fresh(&job_dir, recovered.incarnation);
                    return Err(e);
                }
            },
        };

        // The job's certificate, kept in the job directory so that a
        // restarted coordinator keeps the fingerprint its workers pinned.
        // Or the one an operator provisioned, whose fingerprint is known
        // before the job starts.
        let identity = match (cfg.no_tls, &cfg.tls_files) {
            (true, _) => None,
            (false, given) => match given.as_ref().map_or_else(
                || Identity::load_or_create(&job_dir),
                |(cert, key)| Identity::from_pem(cert, key),
            ) {
                Ok(i) => Some(i),
                Err(e) => {
                    abandon_fresh(&job_dir, recovered.incarnation);
                    return Err(CoordinatorError::Tls(e));
                }
            },
        };
        // What a worker elsewhere is given: the token and the fingerprint
        // to pin. Kept in the job directory (0600) and published for this
        // machine's workers.
        let join = (token.is_some() || identity.is_some()).then(|| {
            JoinSecret {
                token: token.clone().unwrap_or_default(),
                pin: identity.as_ref().map(Identity::fingerprint),
            }
            .to_string()
        });
        let join_kept = job_dir.join(crate::jobdir::TOKEN_FILE);
        if let Some(j) = &join {
            if let Err(e) = mr_protocol::join::write_private(&join_kept, j) {
                abandon_fresh(&job_dir, recovered.incarnation);
                return Err(dir_error(
                    &join_kept,
                    format!("cannot write the job's join secret: {e}"),
                ));
            }
        }
        let mut token_file = None;
        let mut token_hint = String::new();
        if token.is_none() && !addr.ip().is_loopback() {
            warn!(%addr, "LISTENING ON A NON-LOOPBACK ADDRESS WITH --no-token: any host that can reach it may join the job and make it read and write files in its directories");
        }
        if identity.is_none() && !addr.ip().is_loopback() {
            warn!(%addr, "LISTENING ON A NON-LOOPBACK ADDRESS WITH --no-tls: the job's token, its input and its output cross the network unencrypted, readable and changeable by anyone on the path");
        }
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

        let planned = files
            .iter()
            .map(|f| PlannedFile {
                path: f.path.clone(),
                len: f.len,
            })
            .collect();
        // With a cache: splits by content, and whatever the cache holds
        // counts as done, as the journal's progress does.
        let (cache, content, reused) = match &cfg.cache {
            None => (None, None, Default::default()),
            Some(dir) => {
                let stored = output_store.is_some();
                let planned = crate::reuse::prepare(
                    dir,
                    &cfg,
                    &shape,
                    &files,
                    &recovered,
                    crate::reuse::Places {
                        job_dir: &job_dir,
                        output_dir: &output_dir,
                        outputs_in_store: stored,
                    },
                )
                .await;
                let (jc, plan, app, taken) = match planned {
                    Ok(p) => p,
                    Err(e) => {
                        abandon_fresh(&job_dir, recovered.incarnation);
                        return Err(e);
                    }
                };
                let reused = crate::observe::report::CacheInfo {
                    maps_reused: taken.maps.len(),
                    reduces_reused: taken.reduces.len(),
                    input_bytes_reused: taken.input_bytes,
                    ..Default::default()
                };
                (Some(Arc::new(jc)), Some((plan, app, taken)), reused)
            }
        };
        let sched = Scheduler::new(
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
        let mut sched = sched;
        let mut resume = resume_from(&recovered);
        let mut partly = Vec::new();
        if let Some((plan, app, mut taken)) = content {
            partly = std::mem::take(&mut taken.partly);
            sched.use_plan(plan);
            resume.app = resume.app.or(Some(app));
            resume
                .maps
                .extend(taken.maps.into_iter().map(|(m, a, c)| (m, a, c, None)));
            resume.reduces.extend(taken.reduces);
        }
        sched.restore(&resume);
        if !partly.is_empty() {
            // Every map was cached: these reduces may start from earlier outputs.
            sched.release_reduces(&[], partly, Instant::now());
        }
        if cache.is_some() {
            // Reduces are looked up in the cache once every map's output
            // (and so every reduce's address) is known.
            sched.hold_reduces();
        }
        let heartbeat =
            (cfg.task_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
        let prefix_lost = claim
            .as_ref()
            .map_or_else(Default::default, |c| c.lost_flag());
        let shared = Arc::new(Shared {
            prefix_lost,
            sched: Mutex::new(sched),
            planning: tokio::sync::Mutex::new(()),
            job_id: id,
            reduces: cfg.reduces,
            job_dir,
            output_dir,
            heartbeat,
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
            changed: Notify::new(),
            work: Notify::new(),
            journal,
            token: token.clone(),
            token_hint,
            tls: identity.is_some(),
            started: Instant::now(),
            inputs: planned,
            output_store,
            published: Mutex::new(published),
            cache,
            cache_puts: Mutex::new(Vec::new()),
            reused: Mutex::new(reused),
            app_args: cfg.replay_app_args(),
            shape,
        });

        let listener = tcp.listen(1024).map_err(bind_error)?;
        tokio::spawn(serve_tcp(listener, shared.clone(), identity));
        let socket = match socket {
            Some((std_listener, claim)) => {
                let listener = tokio::net::UnixListener::from_std(std_listener).map_err(|e| {
                    CoordinatorError::Socket(socket::SocketError::Io {
                        path: claim.path().to_path_buf(),
                        source: e,
                    })
                })?;
                tokio::spawn(serve_socket(listener, shared.clone()));
                info!(socket = %claim.path().display(), "coordinator serving its socket");
                Some(claim)
            }
            None => None,
        };

        let status = match &cfg.status_addr {
            None => None,
            Some(a) => {
                let s = shared.clone();
                match crate::observe::status::StatusServer::start(a, move |listing| {
                    s.report(None, listing)
                }) {
                    Ok(server) => Some(server),
                    Err(e) => {
                        abandon_fresh(&shared.job_dir, recovered.incarnation);
                        return Err(e.into());
                    }
                }
            }
        };
        let progress = cfg.progress.then(|| {
            let s = shared.clone();
            crate::observe::progress::Progress::start(move || {
                s.report(None, crate::observe::report::Listing::Figures)
            })
        });
        // Nothing left to run (all from the cache): no workers to start.
        let all_done = shared.sched().is_done();
        let embedded = match (&cfg.app, cfg.workers) {
            (Some(_), n) if n > 0 && !all_done => {
                let endpoint = match &socket {
                    Some(c) => Endpoint::Unix(c.path().to_path_buf()),
                    None => Endpoint::Tcp(addr.to_string()),
                };
                let every_interface = addr.ip().is_unspecified();
                let args = cfg.worker_app_args();
                // Not planned yet (the plan waits for the first worker):
                // every worker will have maps to run.
                let maps_left = match shared.sched().progress() {
                    p if p.maps == 0 => n as usize,
                    p => p.maps - p.maps_done,
                };
                let started = EmbeddedWorkers::start(
                    n,
                    maps_left,
                    &args,
                    endpoint,
                    every_interface,
                    join.as_deref(),
                );
                match started {
                    Ok(w) => w,
                    Err(e) => {
                        abandon_fresh(&shared.job_dir, recovered.incarnation);
                        return Err(e);
                    }
                }
            }
            _ => EmbeddedWorkers::none(),
        };
        info!(%addr, "coordinator listening");
        let token_kept = join.is_some().then_some(join_kept);
        Ok(RunningJob {
            shared,
            addr,
            started: Instant::now(),
            embedded,
            task_timeout: cfg.task_timeout,
            _locks: locks,
            token_file,
            resumed,
            status,
            progress,
            token_kept,
            join,
            socket,
            claim,
        })
    }

    /// The file where the job's join secret is kept, for telling users of
    /// other hosts where to find it.
    pub fn token_file(&self) -> Option<&std::path::Path> {
        self.token_kept.as_deref()
    }

    /// Where the status page is served, if it is.
    pub fn status_addr(&self) -> Option<SocketAddr> {
        self.status.as_ref().map(|s| s.addr())
    }

    /// The address workers connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The Unix domain socket workers on this machine may connect to, if served.
    pub fn socket_path(&self) -> Option<&std::path::Path> {
        self.socket.as_ref().map(|c| c.path())
    }

    /// Runs the job to its end: every output committed (Ok), or a task failed
    /// for good (Err). Either way workers are dismissed and temporary files removed.
    pub async fn wait(mut self) -> Result<JobSummary, CoordinatorError> {
        let mut outcome = self.supervise().await;
        if let Some(p) = self.progress.take() {
            // Joining the drawing thread is a short wait; not on the runtime.
            let _ = tokio::task::spawn_blocking(move || p.finish()).await;
        }
        if matches!(outcome, Err(CoordinatorError::Interrupted(_))) {
            // The user wants out now: no grace period for workers.
            self.embedded.kill_all().await;
        } else {
            self.dismiss_workers().await;
        }
        // What the cache is still taking in, before the job directory goes.
        let puts = std::mem::take(
            &mut *self
                .shared
                .cache_puts
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for p in puts {
            let _ = p.await;
        }
        if let Some(jc) = self.shared.cache.clone() {
            let _ = tokio::task::spawn_blocking(move || jc.evict()).await;
        }
        // A prefix lost to another job is left alone: no sweep (its open
        // uploads are the other job's now), no report; and the job did not
        // finish, whatever it had done (its journal stays).
        let lost = self.claim.as_ref().is_some_and(|c| c.lost());
        if lost && outcome.is_ok() {
            let prefix = self.shared.output_store.clone().unwrap_or_default();
            outcome = Err(CoordinatorError::PrefixLost(prefix));
        }
        // Before the journal goes: a crash here resumes, not restarts.
        if let Some(prefix) = self.shared.output_store.clone().filter(|_| !lost) {
            if let Err(e) = self.seal(&prefix, outcome.is_ok()).await {
                match outcome {
                    Ok(()) => outcome = Err(e.into()),
                    Err(_) => warn!("{e}"),
                }
            }
        }
        // A job that stops short keeps its journal and accepted outputs:
        // the same command resumes it (what an orchestrator's SIGTERM or a
        // failed last write must not throw away).
        let keep = outcome.is_err();
        self.cleanup(keep).await;
        let ended = match &outcome {
            Ok(()) => ("succeeded", None),
            Err(CoordinatorError::Interrupted(_)) => ("interrupted", Some(outcome_text(&outcome))),
            Err(_) => ("failed", Some(outcome_text(&outcome))),
        };
        // Made and written off the runtime: a million attempts' report
        // takes seconds of CPU.
        let shared = self.shared.clone();
        let store = self.shared.output_store.clone();
        let local = store.is_none();
        let report = tokio::task::spawn_blocking(move || {
            let report = shared.report(Some(ended), crate::observe::report::Listing::Everything);
            if local {
                let dir = &shared.output_dir;
                if let Err(e) = crate::observe::report::write(dir, &report) {
                    warn!(dir = %dir.display(), "cannot write the job report: {e}");
                }
                if let Err(e) = crate::observe::timeline::write(dir, &report) {
                    warn!(dir = %dir.display(), "cannot write the timeline: {e}");
                }
            }
            report
        })
        .await;
        match (store, report) {
            (Some(prefix), Ok(report)) if !lost => publish::put_report(&prefix, &report).await,
            (_, Err(e)) => warn!("cannot make the job report: {e}"),
            _ => {}
        }
        // Last of all under the prefix: the claim goes.
        if let Some(c) = self.claim.take() {
            c.release().await;
        }
        let sched = self.shared.sched();
        let p = sched.progress();
        let phases = sched.phase_times_at(Instant::now());
        let outcome = outcome.map_err(|cause| CoordinatorError::Stopped {
            cause: Box::new(cause),
            job_dir: self.shared.job_dir.display().to_string(),
        });
        outcome.map(|()| JobSummary {
            maps: p.maps,
            reduces: p.reduces,
            attempts: p.attempts,
            elapsed: self.started.elapsed(),
            output_dir: self.shared.output_label(),
            counters: sched.counters(),
            map_phase: phases.0,
            reduce_phase: phases.1,
            resumed: self.resumed,
            reused: self.shared.reused(),
        })
    }

    async fn supervise(&mut self) -> Result<(), CoordinatorError> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut sigint = signal(SignalKind::interrupt()).ok();
        let mut sigterm = signal(SignalKind::terminate()).ok();
        loop {
            // Checked before the first wait: a job whose every output came
            // from the cache is done at once.
            {
                let mut s = self.shared.sched();
                for w in s.expire(Instant::now()) {
                    warn!(worker = %w, timeout = ?self.task_timeout, "worker silent too long; declared lost");
                }
                self.shared.journal_lost_outputs(&mut s);
                if s.is_done() {
                    return Ok(());
                }
                if let Some(f) = s.failure() {
                    return Err(f.clone().into());
                }
            }
            if let (Some(c), Some(prefix)) = (&self.claim, &self.shared.output_store) {
                if c.lost() {
                    return Err(CoordinatorError::PrefixLost(prefix.clone()));
                }
            }
            self.embedded.supervise()?;
            tokio::select! {
                _ = self.shared.changed.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                Some(_) = async { sigint.as_mut()?.recv().await } => {
                    return Err(CoordinatorError::Interrupted("SIGINT"));
                }
                Some(_) = async { sigterm.as_mut()?.recv().await } => {
                    return Err(CoordinatorError::Interrupted("SIGTERM"));
                }
            }
        }
    }

    /// Ends a job whose outputs are in an object store: aborts every upload
    /// still open on its output keys, then (if it succeeded) writes the
    /// `_SUCCESS` manifest, last.
    async fn seal(&self, prefix: &str, succeeded: bool) -> Result<(), mr_store::StoreError> {
        let aborted = publish::sweep(prefix, self.shared.reduces).await?;
        if aborted > 0 {
            info!(aborted, "aborted uploads left by attempts that did not win");
        }
        if !succeeded {
            return Ok(());
        }
        let uploads = self
            .shared
            .published
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let counters = self.shared.sched().counters();
        publish::write_manifest(prefix, &self.shared.job_id, &uploads, &counters).await
    }

    /// Lets connected workers hear "exit" before the port closes, without
    /// waiting long for ones busy with abandoned attempts. Being told is not
    /// enough: the answer must have reached them, which shows when they
    /// hang up (a process that exited at once after telling them could
    /// close their connections first, and they would then try to rejoin
    /// a job that is over).
    async fn dismiss_workers(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && !self.shared.sched().all_workers_gone() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        self.embedded.wait_or_kill(Duration::from_secs(3)).await;
    }

    /// Removes any uncommitted reduce outputs, the published token (unless
    /// another coordinator has replaced it since) and, unless `keep`, the
    /// job directory (with `keep`, its journal and accepted map outputs
    /// stay for a later run to resume from).
    async fn cleanup(&self, keep: bool) {
        if let (Some(f), Some(t)) = (&self.token_file, &self.join) {
            if std::fs::read_to_string(f).is_ok_and(|s| s.trim() == t) {
                let _ = std::fs::remove_file(f);
            }
        }
        let job_dir = self.shared.job_dir.clone();
        let temps: Vec<PathBuf> = self
            .shared
            .sched()
            .reduce_attempts()
            .into_iter()
            .map(|(r, a)| self.shared.output_dir.join(names::reduce_temp(r, a)))
            .collect();
        let done = tokio::task::spawn_blocking(move || {
            for t in temps {
                let _ = std::fs::remove_file(t);
            }
            match keep {
                true => Ok(()),
                false => std::fs::remove_dir_all(&job_dir),
            }
        })
        .await;
        if let Ok(Err(e)) = done {
            warn!(dir = %self.shared.job_dir.display(), "cannot remove job directory: {e}");
        }
    }
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
            .map(|(&m, (a, c, at))| (m, *a, c.clone(), at.clone()))
            .collect(),
        reduces: r
            .reduces
            .iter()
            .map(|(&red, (a, c))| (red, *a, c.clone()))
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

/// Serves one connection (TCP or socket) until it ends, then tells the
/// scheduler its worker is gone.
fn serve_connection<T>(
    shared: Arc<Shared>,
    transport: T,
    via: Via,
    admission: Option<Arc<admission::Admission>>,
) where
    T: tarpc::Transport<
            tarpc::Response<mr_protocol::service::CoordinatorResponse>,
            tarpc::ClientMessage<mr_protocol::service::CoordinatorRequest>,
        > + Send
        + 'static,
{
    let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let handler = Handler {
        shared: shared.clone(),
        conn,
        via,
        admission: admission.clone(),
    };
    tokio::spawn(async move {
        // Garbage or a half-open client only ends this channel.
        let serving = BaseChannel::with_defaults(transport)
            .execute(handler.serve())
            .for_each(|call| async {
                tokio::spawn(call);
            });
        match &admission {
            // A connection that does not register in time is closed.
            Some(a) => tokio::select! {
                _ = serving => {}
                _ = a.expired() => debug!(conn, "closed a connection that did not register in time"),
            },
            None => serving.await,
        }
        shared.connection_closed(conn);
    });
}

/// Accepts connections on the job's socket, noting each peer's uid (the
/// service admits only this user's workers there).
async fn serve_socket(listener: tokio::net::UnixListener, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors, say: drop this one, keep serving.
                warn!("accepting on the socket failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let uid = stream.peer_cred().ok().map(|c| c.uid());
        // The socket admits only this user's processes: no stranger's bounds.
        serve_connection(
            shared.clone(),
            wire::transport(stream),
            Via::Socket { uid },
            None,
        );
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

/// Serves the coordinator's RPCs on TCP connections (TLS with `identity`).
async fn serve_tcp(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    identity: Option<Identity>,
) {
    let waiting = admission::Waiting::default();
    wire::accept_loop(listener, identity, "coordinator", move |stream| {
        // Strangers may not pile up connections before they register.
        let Some(ticket) = waiting.admit() else {
            debug!("closed a connection: too many are waiting to register");
            return;
        };
        let guarded = admission::FrameGuard::new(stream, ticket.clone());
        serve_connection(
            shared.clone(),
            wire::transport(guarded),
            Via::Tcp,
            Some(ticket),
        )
    })
    .await;
}
