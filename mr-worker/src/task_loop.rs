//! The worker's task loop: register with the coordinator, ask for tasks, run
//! them on a blocking thread (rayon inside), report, repeat until told to exit.
//!
//! Tokio only carries RPCs here: the heartbeat keeps flowing while a task
//! computes, because the task runs on `spawn_blocking`, never on the runtime.

use crate::attempt::{AttemptContext, Ended, Produced};
use crate::drain::{Stop, StopState};
use crate::engine::cancel::Cancel;
use crate::placement::{Placement, PlacementConfig};
use mr_apps::AppRef;
use mr_protocol::join::{Endpoint, Fingerprint, JoinSecret};
use mr_protocol::wire;
use mr_protocol::{
    Assignment, AttemptId, CoordinatorClient, JobSettings, RegisterError, RegisterRequest,
    ReportAck, Reported, TaskFailure, Work,
};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tarpc::tokio_serde::formats::Bincode;
use tarpc::{client, context};
use tracing::{debug, info, warn};

/// How the worker is started.
#[derive(Clone)]
pub struct WorkerConfig {
    /// Where the coordinator is: `host:port`, or its Unix domain socket.
    pub coordinator: Endpoint,
    /// The app, as loaded (its name and how it reads its inputs are told
    /// at registration); the job's own instance comes from `make_app`.
    pub app: AppRef,
    /// Makes the app configured with a job's parameters (`--conf`), once
    /// the coordinator has told them.
    pub make_app: AppMaker,
    /// How long to keep trying to reach the coordinator at start-up.
    pub connect_for: Duration,
    /// How long to keep trying after losing it mid-job (it may be restarting).
    pub reconnect_for: Duration,
    /// Memory budget of a map task's buffers, in bytes.
    pub memory: usize,
    /// The job's join secret (or a bare token); None to look for the one a
    /// coordinator on this machine published (see [`mr_protocol::join`]).
    pub token: Option<String>,
    /// Where map outputs, fetched data and the shuffle service go.
    pub placement: PlacementConfig,
    /// The pid of the coordinator that started this worker, if one did.
    pub embedded_by: Option<u32>,
    /// A graceful stop (SIGTERM): no new work, the attempt in hand finished
    /// or handed back, then leave (see [`crate::drain`]).
    pub stop: Stop,
}

/// Makes the app configured with a job's parameters.
pub type AppMaker = Arc<dyn Fn(&mr_apps::Conf) -> Result<AppRef, mr_apps::LoadError> + Send + Sync>;

/// The app as the job of `shape` runs it: configured with its parameters
/// (none are parameters too: `configure` runs before any map or reduce,
/// and refuses a job missing a key the app needs), reading its records,
/// partitioning by its key ranges.
pub fn job_app(
    make: &AppMaker,
    shape: &mr_protocol::JobShape,
) -> Result<AppRef, mr_apps::LoadError> {
    let app = make(&mr_apps::Conf::from_pairs(shape.conf.iter().cloned()))?;
    let record_size = (shape.record_size > 0).then_some(shape.record_size);
    let points = shape.split_points.clone().map(Arc::from);
    Ok(mr_apps::JobApp::wrap(app, record_size, points))
}

/// Why a worker stopped without finishing normally.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The coordinator could not be reached at start-up.
    #[error("cannot reach the coordinator at {addr} (tried for {secs} s): {reason}; is mrcoordinator running there? (set --coordinator or MR_COORDINATOR)")]
    Connect {
        /// The address tried.
        addr: String,
        /// Seconds spent trying.
        secs: u64,
        /// The last error.
        reason: String,
    },
    /// The coordinator refused this worker.
    #[error("the coordinator at {addr} refused this worker: {reason}")]
    Refused {
        /// The coordinator.
        addr: String,
        /// Why.
        reason: RegisterError,
    },
    /// The coordinator hung up on the first registration of a worker that
    /// spoke plain TCP: what a coordinator speaking TLS does.
    #[error("the coordinator at {addr} hung up on registering: unless it runs with --no-tls it speaks TLS, so give this worker the job's join secret (mrj1:<token>:<fingerprint>, kept in <work dir>/mr-job/token on the coordinator's host) with --token or MR_TOKEN")]
    Plaintext {
        /// The coordinator.
        addr: String,
    },
    /// The worker could not set up its own directory or shuffle service.
    #[error(transparent)]
    Setup(#[from] crate::placement::PlacementError),
}

/// How long a handed-back attempt may take to notice its cancel (it checks
/// between chunks and keys) before the worker leaves without it.
const HANDBACK_GRACE: Duration = Duration::from_secs(5);

/// How the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The coordinator said the job is over.
    Dismissed,
    /// The coordinator went away (normally: the job finished).
    CoordinatorGone,
    /// A stop was asked (SIGTERM) and the attempt in hand, if any, was
    /// finished or handed back.
    Drained,
}

/// A connection to the coordinator, and this host's and the coordinator's
/// addresses on it (None over a socket: then both are this host).
/// Over TCP the coordinator's certificate is pinned to `pin` (TLS), or,
/// without one, the connection is plain.
async fn connect(
    to: &Endpoint,
    pin: Option<Fingerprint>,
) -> std::io::Result<(CoordinatorClient, Option<(IpAddr, IpAddr)>)> {
    match to {
        Endpoint::Tcp(addr) => {
            if pin.is_none() && !wire::is_loopback(addr) {
                static WARNED: std::sync::Once = std::sync::Once::new();
                WARNED.call_once(|| warn!(%addr, "CONNECTING WITHOUT TLS to a coordinator on another host: the token and the job's data cross the network unencrypted (the join secret has no certificate fingerprint)"));
            }
            let (stream, local, peer) = wire::connect(addr, pin, Duration::from_secs(10)).await?;
            let transport = wire::transport(stream);
            let client = CoordinatorClient::new(client::Config::default(), transport).spawn();
            Ok((client, Some((local.ip(), peer.ip()))))
        }
        Endpoint::Unix(path) => {
            let mut conn = tarpc::serde_transport::unix::connect(path, Bincode::default);
            conn.config_mut().max_frame_length(mr_protocol::MAX_FRAME);
            let transport = conn.await?;
            let client = CoordinatorClient::new(client::Config::default(), transport).spawn();
            Ok((client, None))
        }
    }
}

/// Connects, retrying every 100 ms for up to `patience`.
/// `pin` is asked afresh at each try: a local coordinator publishes its
/// join secret before it starts listening.
async fn connect_retry(
    addr: &Endpoint,
    pin: impl Fn() -> Option<Fingerprint>,
    patience: Duration,
) -> Result<(CoordinatorClient, Option<(IpAddr, IpAddr)>), std::io::Error> {
    let deadline = Instant::now() + patience;
    loop {
        match connect(addr, pin()).await {
            Ok(c) => return Ok(c),
            // A certificate that is not the pinned one will not become it.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => return Err(e),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// This host's name, for the coordinator's logs and labels.
fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// The current connection and identity, shared with the heartbeat task.
#[derive(Clone)]
struct Session {
    client: CoordinatorClient,
    settings: Arc<JobSettings>,
    /// The app as this job runs it (see [`job_app`]).
    app: AppRef,
    /// The map outputs list this session's reduces read.
    outputs: Arc<crate::outputs::OutputsCache>,
}

struct Worker {
    cfg: WorkerConfig,
    session: Arc<Mutex<Option<Session>>>,
    /// Attempts in hand (reported in heartbeats), each with what stops it.
    running: Arc<Mutex<Vec<(AttemptId, Cancel)>>>,
    /// When the task loop last heard from the coordinator (a task request
    /// or a report answered), in milliseconds since `origin`.
    last_call: Arc<AtomicU64>,
    origin: Instant,
    /// Decided at the first registration.
    placement: Mutex<Option<Arc<Placement>>>,
    /// The app made for the job's shape at the last registration.
    job_app: Mutex<Option<(mr_protocol::JobShape, AppRef)>>,
    /// The worker's own directory.
    store: Arc<crate::shuffle::local::LocalStore>,
}

impl Worker {
    fn session(&self) -> Session {
        self.session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .expect("registered before use")
    }

    async fn register(
        &self,
        client: CoordinatorClient,
    ) -> Result<Result<(), RegisterError>, tarpc::client::RpcError> {
        let req = RegisterRequest {
            app: self.cfg.app.name().to_string(),
            whole_file: self.cfg.app.whole_file(),
            record_size: self.cfg.app.record_size().unwrap_or(0),
            total_order: self.cfg.app.total_order(),
            host: hostname(),
            pid: std::process::id(),
            capacity: 1,
            token: self.token(),
            embedded_by: self.cfg.embedded_by,
            build: mr_build::BUILD_ID.into(),
        };
        match client.register(context::current(), req).await? {
            Ok(settings) => {
                info!(worker = %settings.worker, job = %settings.job_id, "registered");
                // The job's parameters were checked by a coordinator that
                // knew the app; one that did not leaves the app to refuse.
                let app = match self.job_app(&settings.shape) {
                    Ok(app) => app,
                    Err(e) => {
                        return Ok(Err(RegisterError::NotSetUpFor {
                            app: self.cfg.app.name().to_string(),
                            needs: format!("cannot run this job ({e})"),
                            hint: "give mrcoordinator the parameters the app needs (with --app NAME it checks them at start)".into(),
                        }))
                    }
                };
                let placement = self.placement();
                if let Some(p) = &placement {
                    let place = p.announce(&settings, &self.token());
                    // An error here shows on the next call, which re-registers.
                    let _ = client
                        .announce(context::current(), settings.worker, place)
                        .await;
                }
                *self.session.lock().unwrap_or_else(|e| e.into_inner()) = Some(Session {
                    client,
                    settings: Arc::new(settings),
                    app,
                    outputs: Arc::default(),
                });
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    /// The app for a job of `shape`: the one made for the last
    /// registration if the shape is the same (a restarted coordinator's
    /// job is the same job: an app keeping state keeps it), else a new one.
    fn job_app(&self, shape: &mr_protocol::JobShape) -> Result<AppRef, mr_apps::LoadError> {
        let mut made = self.job_app.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((s, app)) = made.as_ref() {
            if s == shape {
                return Ok(app.clone());
            }
        }
        let app = job_app(&self.cfg.make_app, shape)?;
        *made = Some((shape.clone(), app.clone()));
        Ok(app)
    }

    fn placement(&self) -> Option<Arc<Placement>> {
        self.placement
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Decides the placement after the first registration and announces it.
    async fn place(&self, ips: Option<(IpAddr, IpAddr)>) -> Result<(), WorkerError> {
        let s = self.session();
        let p = Placement::decide(&self.cfg.placement, &s.settings, ips, self.store.clone())
            .await
            .map_err(WorkerError::Setup)?;
        let place = p.announce(&s.settings, &self.token());
        *self.placement.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(p));
        // A refusal shows on the next call, which re-registers (and re-announces).
        let _ = s
            .client
            .announce(context::current(), s.settings.worker, place)
            .await;
        Ok(())
    }

    /// The token to present: the configured one, else the one published by
    /// a local coordinator on the port we connect to (read afresh each time,
    /// since a restarted coordinator may publish it again). Over a socket
    /// none is needed, but the job's token is still what peers' shuffle
    /// services check, so the configured one is used if there is one.
    fn token(&self) -> String {
        if self.cfg.token.is_some() {
            return self.join().token;
        }
        let told = self
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|s| s.settings.token.clone());
        if let Some(t) = told {
            return t;
        }
        self.join().token
    }

    /// The join secret: the configured one, else the one a coordinator on
    /// this machine published for the port we connect to (read afresh each
    /// time, as a restarted coordinator publishes it again).
    fn join(&self) -> JoinSecret {
        let parse = |s: &str| {
            JoinSecret::parse(s).unwrap_or_else(|_| JoinSecret {
                token: s.to_string(),
                pin: None,
            })
        };
        if let Some(t) = &self.cfg.token {
            // Checked when the worker started.
            return parse(t);
        }
        let Endpoint::Tcp(addr) = &self.cfg.coordinator else {
            return parse("");
        };
        let port = addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
        parse(
            &port
                .and_then(mr_protocol::join::discover)
                .unwrap_or_default(),
        )
    }

    /// Registers; a token found on this machine may be refused only because
    /// a (re)starting coordinator has not yet published its own, so that
    /// refusal is retried until `deadline`.
    async fn register_patiently(
        &self,
        client: CoordinatorClient,
        deadline: Instant,
    ) -> Result<Result<(), RegisterError>, tarpc::client::RpcError> {
        loop {
            let r = self.register(client.clone()).await;
            let retry = self.cfg.token.is_none()
                && matches!(r, Ok(Err(RegisterError::BadToken { .. })))
                && Instant::now() < deadline;
            if !retry {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// After losing the coordinator: reconnect and re-register, or give up.
    /// A coordinator that finished its job removes the job directory before
    /// it exits; one that crashed leaves it (with its journal) and is
    /// expected back, so it is waited for up to `reconnect_for`.
    async fn rejoin(&self) -> bool {
        let job_dir = self.session().settings.job_dir.clone();
        let deadline = Instant::now() + self.cfg.reconnect_for;
        loop {
            match connect(&self.cfg.coordinator, self.join().pin).await {
                Ok((client, _)) => {
                    return match self.register_patiently(client, deadline).await {
                        Ok(Ok(())) => true,
                        Ok(Err(e)) => {
                            info!("the coordinator refused us on rejoining: {e}");
                            false
                        }
                        Err(_) => false,
                    }
                }
                // Another certificate: not this job's coordinator any more.
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    info!("not rejoining: {e}");
                    return false;
                }
                Err(_) => {}
            }
            // A worker that sees the job directory knows a finished job
            // from a crashed coordinator; others wait out the deadline.
            let shared = self.placement().is_none_or(|p| p.shared);
            if Instant::now() >= deadline || (shared && !job_dir.exists()) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Notes that the coordinator just answered the task loop.
    fn heard(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last_call.store(ms, Ordering::Relaxed);
    }

    /// Heartbeats whenever the task loop has not been heard from for an
    /// interval: its own calls already show the worker alive, and an
    /// attempt younger than an interval is not worth cancelling. (Thousands
    /// of workers running short tasks would otherwise add a heartbeat per
    /// worker per second to the coordinator's load for nothing.)
    fn spawn_heartbeat(&self) {
        let session = self.session.clone();
        let running = self.running.clone();
        let (last_call, origin) = (self.last_call.clone(), self.origin);
        tokio::spawn(async move {
            loop {
                let s = session.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let Some(s) = s else { return };
                let every = Duration::from_millis(s.settings.heartbeat_ms.max(50));
                let since = Duration::from_millis(
                    (origin.elapsed().as_millis() as u64)
                        .saturating_sub(last_call.load(Ordering::Relaxed)),
                );
                if since < every {
                    tokio::time::sleep(every - since).await;
                    continue;
                }
                let held: Vec<AttemptId> = running
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .map(|(a, _)| *a)
                    .collect();
                // Errors are the task loop's business: it sees them on its next call.
                if let Ok(Ok(reply)) = s
                    .client
                    .heartbeat(context::current(), s.settings.worker, held)
                    .await
                {
                    // Abandoned attempts (a backup that lost, say) stop at
                    // their next chunk or key and free what they hold.
                    for (a, c) in running.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                        if reply.cancel.contains(a) && !c.is_cancelled() {
                            info!(attempt = %a, "cancelling: its task was done by another attempt");
                            c.cancel();
                        }
                    }
                }
                tokio::time::sleep(every).await;
            }
        });
    }

    async fn run(&self) -> Result<Ending, WorkerError> {
        let addr = &self.cfg.coordinator;
        let (client, local_ip) = connect_retry(addr, || self.join().pin, self.cfg.connect_for)
            .await
            .map_err(|e| WorkerError::Connect {
                addr: addr.to_string(),
                secs: self.cfg.connect_for.as_secs(),
                reason: e.to_string(),
            })?;
        let deadline = Instant::now() + self.cfg.connect_for.max(Duration::from_secs(2));
        match self.register_patiently(client, deadline).await {
            Ok(Ok(())) => {}
            Ok(Err(RegisterError::JobOver)) => return Ok(Ending::Dismissed),
            Ok(Err(e @ RegisterError::Superseded { .. })) => {
                info!("{e}");
                return Ok(Ending::Dismissed);
            }
            Ok(Err(reason)) => {
                return Err(WorkerError::Refused {
                    addr: addr.to_string(),
                    reason,
                })
            }
            // Reached but hung up in clear: most likely a TLS coordinator.
            Err(_) if self.join().pin.is_none() && matches!(addr, Endpoint::Tcp(_)) => {
                return Err(WorkerError::Plaintext {
                    addr: addr.to_string(),
                })
            }
            // Reached but hung up: treat as gone, like the lab's workers.
            Err(_) => return Ok(Ending::CoordinatorGone),
        }
        self.place(local_ip).await?;
        self.spawn_heartbeat();
        // The next assignment when a report's answer carried it.
        let mut next: Option<Assignment> = None;
        loop {
            if self.cfg.stop.state() >= StopState::Draining {
                info!("drained: leaving the job");
                return Ok(Ending::Drained);
            }
            let s = self.session();
            let asked = match next.take() {
                Some(a) => Ok(Ok(a)),
                None => {
                    s.client
                        .request_task(context::current(), s.settings.worker)
                        .await
                }
            };
            if let Ok(Ok(_)) = &asked {
                self.heard();
            }
            let assignment = match asked {
                Ok(Ok(a)) => a,
                Ok(Err(e)) => {
                    // Only UnknownWorker is expected here: declared lost (e.g.
                    // after a long pause), so join afresh.
                    debug!("asking for a task: {e}");
                    if !matches!(self.register(s.client.clone()).await, Ok(Ok(()))) {
                        return Ok(Ending::Dismissed);
                    }
                    continue;
                }
                Err(e) => {
                    debug!("lost the coordinator: {e}");
                    tokio::select! {
                        back = self.rejoin() => if back { continue },
                        _ = self.cfg.stop.reached(StopState::Draining) => return Ok(Ending::Drained),
                    }
                    return Ok(Ending::CoordinatorGone);
                }
            };
            match assignment {
                Assignment::Exit => return Ok(Ending::Dismissed),
                Assignment::Wait { millis } => {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(millis)) => {}
                        _ = self.cfg.stop.reached(StopState::Draining) => {}
                    }
                }
                Assignment::Work(work) => next = self.execute(&s, work).await,
            }
        }
    }

    /// Runs a map or reduce assignment and reports its outcome; returns the
    /// next assignment the report's answer carried (None if the report
    /// failed: the loop then asks, and handles why).
    async fn execute(&self, s: &Session, task: Work) -> Option<Assignment> {
        let placement = self.placement().expect("placed after registering");
        let (attempt, what) = (task.attempt(), task.task_name());
        let cancel = Cancel::default();
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((attempt, cancel.clone()));
        let started = Instant::now();
        let token = self.token();
        let cx = AttemptContext {
            app: s.app.clone(),
            memory: self.cfg.memory,
            token: &token,
            client: &s.client,
            settings: s.settings.clone(),
            placement: &placement,
            outputs: &s.outputs,
            cancel,
        };
        let Ended {
            outcome,
            produced,
            scratch,
        } = self.run_attempt(&cx, task).await;
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(a, _)| *a != attempt);
        match &outcome {
            Ok(_) => debug!(%attempt, task = %what, took = ?started.elapsed(), "attempt finished"),
            Err(f) => warn!(%attempt, task = %what, "attempt failed: {f}"),
        }
        let failed = outcome.is_err();
        // Draining: report, but take no next task with the answer.
        let more = self.cfg.stop.state() == StopState::Working;
        let answer = s
            .client
            .report(
                context::current(),
                s.settings.worker,
                attempt,
                outcome,
                more,
            )
            .await
            .ok()
            .and_then(Result::ok);
        if answer.is_some() {
            self.heard();
        }
        for p in scratch {
            crate::shuffle::fetch::discard(&p);
        }
        // Anything not accepted is discarded.
        if failed
            || !matches!(
                answer,
                Some(Reported {
                    ack: ReportAck::Accepted,
                    ..
                })
            )
        {
            discard_unaccepted(produced, attempt);
        }
        answer.and_then(|a| a.next)
    }

    /// Runs `task`'s attempt to its end. Keeps polling it when a hand-back
    /// is asked: cancelling makes it stop at its next chunk or key and end
    /// `Cancelled`, which is reported like any outcome (no strike on the
    /// task). An attempt blocked where it cannot see the cancel (a read
    /// from a store that stopped answering) is left behind after
    /// HANDBACK_GRACE: the process is leaving anyway.
    async fn run_attempt(&self, cx: &AttemptContext<'_>, task: Work) -> Ended {
        let (attempt, what) = (task.attempt(), task.task_name());
        let ran = crate::attempt::run(cx, task);
        tokio::pin!(ran);
        let mut handed_back = None;
        loop {
            let grace_over = async {
                match handed_back {
                    Some(at) => tokio::time::sleep_until(at + HANDBACK_GRACE).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                out = &mut ran => break out,
                _ = self.cfg.stop.reached(StopState::HandBack), if handed_back.is_none() => {
                    info!(%attempt, task = %what, "stopping: handing the attempt back");
                    handed_back = Some(tokio::time::Instant::now());
                    cx.cancel.cancel();
                }
                _ = grace_over => {
                    warn!(%attempt, task = %what, "the attempt did not stop within {HANDBACK_GRACE:?}: leaving it");
                    break Ended {
                        outcome: Err(TaskFailure::Cancelled),
                        produced: Produced::LeftBehind,
                        scratch: Vec::new(),
                    };
                }
            }
        }
    }
}

/// Discards what an attempt that was not accepted produced, so stale
/// outputs never linger.
fn discard_unaccepted(produced: Produced, attempt: AttemptId) {
    match produced {
        Produced::Served(store, m) => store.forget(m, attempt),
        Produced::File(p) => {
            let _ = std::fs::remove_file(p);
        }
        // Handed over with the report: from then on the upload is
        // the coordinator's, which may be completing it while this
        // report's answer is late or lost. It aborts what it does
        // not publish (and its end-of-job sweep what it never
        // heard of), so the worker never does.
        Produced::Upload(u) => {
            debug!(url = %u.url, "left the upload to the coordinator");
        }
        Produced::LeftBehind => {}
    }
}

/// Runs a worker until the job ends.
pub async fn run_worker(cfg: WorkerConfig) -> Result<Ending, WorkerError> {
    let store = crate::placement::create_store(&cfg.placement).map_err(WorkerError::Setup)?;
    let w = Worker {
        store,
        cfg,
        session: Arc::new(Mutex::new(None)),
        running: Arc::new(Mutex::new(Vec::new())),
        last_call: Arc::new(AtomicU64::new(0)),
        origin: Instant::now(),
        placement: Mutex::new(None),
        job_app: Mutex::new(None),
    };
    let ending = w.run().await;
    // Stop the heartbeat task with the session.
    *w.session.lock().unwrap_or_else(|e| e.into_inner()) = None;
    ending
}
