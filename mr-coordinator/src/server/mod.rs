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
mod shared;
pub mod socket;
mod start;

pub use start::resume_from;

pub use crate::job::{CoordinatorError, JobConfig, JobSummary, SocketChoice};
use embedded::EmbeddedWorkers;
use futures::StreamExt;
use mr_protocol::wire::{self, Identity};
use mr_protocol::{names, Coordinator};
use service::{Handler, Via};
use shared::Shared;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tarpc::server::{BaseChannel, Channel};
use tracing::{debug, info, warn};

fn outcome_text(outcome: &Result<(), CoordinatorError>) -> String {
    match outcome {
        Ok(()) => String::new(),
        Err(e) => e.to_string(),
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
        if let Some(c) = &self.shared.cache {
            c.puts_done().await;
            let jc = c.cache.clone();
            let _ = tokio::task::spawn_blocking(move || jc.evict()).await;
        }
        // A prefix lost to another job is left alone: no sweep (its open
        // uploads are the other job's now), no report; and the job did not
        // finish, whatever it had done (its journal stays).
        let lost = self.claim.as_ref().is_some_and(|c| c.lost());
        if lost && outcome.is_ok() {
            let prefix = self.shared.output_label().display().to_string();
            outcome = Err(CoordinatorError::PrefixLost(prefix));
        }
        // Before the journal goes: a crash here resumes, not restarts.
        let prefix = self.shared.store.as_ref().map(|s| s.prefix.clone());
        if let Some(prefix) = prefix.filter(|_| !lost) {
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
        let store = self.shared.store.as_ref().map(|s| s.prefix.clone());
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
            map_phase: phases.map,
            reduce_phase: phases.reduce,
            resumed: self.resumed,
            reused: self
                .shared
                .cache
                .as_ref()
                .map(|c| c.reused())
                .unwrap_or_default(),
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
            if let (Some(c), Some(store)) = (&self.claim, &self.shared.store) {
                if c.lost() {
                    return Err(CoordinatorError::PrefixLost(store.prefix.clone()));
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
        let uploads = match &self.shared.store {
            Some(store) => store.published_so_far(),
            None => Default::default(),
        };
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
    let conn = shared.conns.open();
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
