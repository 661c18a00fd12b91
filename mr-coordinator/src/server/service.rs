//! The RPC service: what the coordinator does with each call of the
//! protocol, one [`Handler`] per connection. A worker id is good only on
//! the connection that registered it; the decisions on shared state are
//! [`super::shared`]'s.

use super::shared::Shared;
use crate::journal::Record;
use crate::scheduler::{TaskRef, Verdict};
use mr_protocol::{
    names, Assignment, AttemptId, Coordinator, HeartbeatReply, JobSettings, OutputsPage,
    ProtocolError, RegisterError, RegisterRequest, ReportAck, Reported, TaskFailure, TaskOutput,
    WorkerId, WorkerPlace,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tarpc::context::Context;
use tracing::{info, warn};

/// Most input files listed to a registering worker (for locality).
const MAX_LISTED_INPUTS: usize = 100_000;

/// How a connection reached the coordinator.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Via {
    /// The TCP port: workers prove membership with the job's token.
    Tcp,
    /// The Unix domain socket: the peer's uid (from the kernel) must be
    /// this process's; then no token is needed.
    Socket {
        /// The peer's uid, if the kernel told it.
        uid: Option<u32>,
    },
}

/// One connection's view of the service.
#[derive(Clone)]
pub(crate) struct Handler {
    pub(crate) shared: Arc<Shared>,
    pub(crate) conn: u64,
    pub(crate) via: Via,
    /// A TCP connection's bounds until it registers (None on the socket).
    pub(crate) admission: Option<Arc<super::admission::Admission>>,
}

impl Handler {
    /// Refuses a worker id not registered on this connection: an id is
    /// good only on the connection that registered it.
    fn registered(&self, worker: WorkerId) -> Result<(), ProtocolError> {
        match self.shared.conns.worker_on(self.conn) == Some(worker) {
            true => Ok(()),
            false => Err(ProtocolError::UnknownWorker(worker)),
        }
    }

    /// Refuses a worker that may not join, before anything changes: another
    /// user on the socket, a wrong token over TCP, another build, an app
    /// the job was not set up for, a worker of an earlier coordinator.
    fn admit(&self, req: &RegisterRequest) -> Result<(), RegisterError> {
        let me = nix::unistd::getuid().as_raw();
        match self.via {
            Via::Socket { uid } if uid == Some(me) => {}
            Via::Socket { uid } => {
                warn!(host = %req.host, pid = req.pid, ?uid, "refused a worker of another user on the socket");
                return Err(RegisterError::OtherUser { uid, owner: me });
            }
            Via::Tcp => self.check_token(req)?,
        }
        // Another build may map or reduce differently from what the job's
        // cache keys name (and from the other workers): refused.
        if req.build != mr_build::BUILD_ID {
            let short = |b: &str| b.chars().take(12).collect::<String>();
            warn!(host = %req.host, pid = req.pid, build = %short(&req.build), "refused a worker of another build");
            return Err(RegisterError::OtherBuild {
                coordinator: mr_build::short().to_string(),
                worker: short(&req.build),
            });
        }
        if let Some(needs) = self.unmet_needs(req) {
            warn!(host = %req.host, pid = req.pid, app = %req.app, "refused a worker whose app {needs}");
            return Err(RegisterError::NotSetUpFor {
                app: req.app.clone(),
                needs,
                hint: format!("start mrcoordinator with --app {}", req.app),
            });
        }
        // Left by a predecessor killed mid-job: this coordinator starts its
        // own workers, so these would only be more than were asked for.
        if let Some(pid) = req.embedded_by.filter(|&p| p != std::process::id()) {
            warn!(host = %req.host, worker_pid = req.pid, coordinator_pid = pid, "dismissed a worker started by an earlier coordinator of this job (this one starts its own)");
            return Err(RegisterError::Superseded { pid });
        }
        Ok(())
    }

    /// What the worker's app needs that the job was not set up for: its
    /// records or its order (without --app, the first worker fixes the app
    /// after the job planned).
    fn unmet_needs(&self, req: &RegisterRequest) -> Option<String> {
        let shape = &self.shared.shape;
        if req.record_size > 0 && req.record_size != shape.record_size {
            Some(format!(
                "reads {}-byte records, which this job was not started for",
                req.record_size
            ))
        } else if req.total_order && shape.split_points.is_none() && self.shared.reduces > 1 {
            Some(
                "needs its outputs in total order (sampled key ranges), which this job was not started for"
                    .to_string(),
            )
        } else {
            None
        }
    }

    /// Registers the worker with the scheduler. The first worker fixes the
    /// plan: made outside the lock and off the runtime (a million splits
    /// take most of a second, which other workers and the status page
    /// would otherwise wait out).
    async fn join(&self, req: &RegisterRequest) -> Result<WorkerId, RegisterError> {
        let needs_plan = |s: &Shared| s.sched().plan_inputs(&req.app, req.whole_file);
        let mut planning = None;
        let mut plan = None;
        if needs_plan(&self.shared).is_some() {
            planning = Some(self.shared.planning.lock().await);
            // The one before may have planned while this one waited.
            if let Some(p) = needs_plan(&self.shared) {
                plan = tokio::task::spawn_blocking(move || p.plan()).await.ok();
            }
        }
        let mut s = self.shared.sched();
        let planned = s.planned_app().is_some();
        let worker = s.register_planned(Instant::now(), &req.app, req.whole_file, plan);
        drop(planning);
        if !planned {
            if let Some(app) = s.planned_app() {
                // Sent under the lock so the journal's order is the state's.
                self.shared.journal.append_later(Record::AppFixed {
                    app: app.name,
                    whole_file: app.whole_file,
                });
            }
        }
        match worker {
            Ok(w) => {
                s.name_worker(w, &format!("{}:{}", req.host, req.pid));
                Ok(w)
            }
            // A worker arriving after the end (an embedded one slower to
            // start than the job was to finish, or one started late) is
            // simply sent home: nothing is wrong.
            Err(e @ RegisterError::JobOver) => {
                info!(host = %req.host, pid = req.pid, "worker not needed: {e}");
                Err(e)
            }
            Err(e) => {
                warn!(host = %req.host, pid = req.pid, "refused worker: {e}");
                Err(e)
            }
        }
    }

    /// Ties `worker` to this connection (whose end loses it), lifting the
    /// bounds on connections that have not registered.
    fn bind(&self, worker: WorkerId, req: &RegisterRequest) {
        let previous = self.shared.conns.bind(self.conn, worker);
        if let Some(old) = previous {
            // The same connection registering again: its old identity is gone.
            self.shared.sched().worker_lost(old, Instant::now());
        }
        if let Some(a) = &self.admission {
            a.registered();
        }
        info!(%worker, host = %req.host, pid = req.pid, app = %req.app, "worker joined");
        self.shared.changed.notify_one();
    }

    /// What a registered worker is told about the job.
    fn settings(&self, worker: WorkerId) -> JobSettings {
        let shared = &self.shared;
        JobSettings {
            worker,
            job_id: shared.job_id.clone(),
            reduces: shared.reduces,
            job_dir: shared.job_dir.clone(),
            output_dir: shared.output_dir.clone(),
            output_store: shared.store.as_ref().map(|s| s.prefix.clone()),
            tls: shared.tls,
            heartbeat_ms: shared.heartbeat.as_millis() as u64,
            // Past this many files the list alone would be a large frame:
            // the worker then learns locality split by split instead.
            inputs: if shared.inputs.len() <= MAX_LISTED_INPUTS {
                shared.inputs.clone()
            } else {
                Vec::new()
            },
            // A worker of this user on the socket may know the token: it
            // presents it to other workers' shuffle services.
            token: match self.via {
                Via::Socket { .. } => shared.token.clone(),
                Via::Tcp => None,
            },
            shape: shared.shape.clone(),
        }
    }

    /// Over TCP, a worker proves membership with the job's token.
    fn check_token(&self, req: &RegisterRequest) -> Result<(), RegisterError> {
        match &self.shared.token {
            Some(expected) if !mr_protocol::join::matches(&req.token, expected) => {
                warn!(host = %req.host, pid = req.pid, "refused a worker that did not present the job's token");
                Err(RegisterError::BadToken {
                    hint: self.shared.token_hint.clone(),
                })
            }
            _ => Ok(()),
        }
    }
}

impl Coordinator for Handler {
    async fn register(
        self,
        _: Context,
        req: RegisterRequest,
    ) -> Result<JobSettings, RegisterError> {
        self.admit(&req)?;
        let worker = self.join(&req).await?;
        self.bind(worker, &req);
        Ok(self.settings(worker))
    }

    async fn request_task(self, _: Context, worker: WorkerId) -> Result<Assignment, ProtocolError> {
        self.registered(worker)?;
        // A long poll: with nothing to hand out, the request is held for
        // the pause the scheduler suggests and answered as soon as there is
        // (the last maps' reports freeing the reduces, the job's end), so
        // an idle worker starts at once instead of at its next poll. A
        // request held to the end is answered with a wait of 0: the worker
        // asks again at once, so idle workers ask as often as before.
        let mut until = None;
        loop {
            // Registered before the state is read, so no wake is missed
            // between the answer "wait" and the wait.
            let woken = self.shared.work.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let now = Instant::now();
            let answer = {
                let mut s = self.shared.sched();
                if !s.touch(worker, now) {
                    return Err(ProtocolError::UnknownWorker(worker));
                }
                s.assign(worker, now)
            };
            let Assignment::Wait { millis } = answer else {
                return Ok(answer);
            };
            let deadline = *until.get_or_insert(now + Duration::from_millis(millis));
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep_until(deadline.into()) => {
                    return Ok(Assignment::Wait { millis: 0 });
                }
            }
        }
    }

    async fn report(
        self,
        _: Context,
        worker: WorkerId,
        attempt: AttemptId,
        outcome: Result<TaskOutput, TaskFailure>,
        next: bool,
    ) -> Result<Reported, ProtocolError> {
        self.registered(worker)?;
        // The next assignment after the upload's publishing, outside the lock.
        let assign_next = || {
            let now = Instant::now();
            let mut s = self.shared.sched();
            let next = s
                .touch(worker, now)
                .then(|| next.then(|| s.assign(worker, now)));
            (next, s.progress())
        };
        let (verdict, next, progress) = match outcome {
            // An output in the object store: published with store I/O,
            // outside the scheduler's lock (see `publish`).
            Ok(TaskOutput::Uploaded(counters, upload)) => {
                let v = self.shared.publish(worker, attempt, counters, upload).await;
                let (next, progress) = assign_next();
                (v, next, progress)
            }
            outcome => {
                let d = self.shared.decide(worker, attempt, outcome, next);
                if d.reduce_lookup {
                    tokio::spawn(self.shared.clone().look_up_reduces());
                }
                if let Some(durable) = d.durable {
                    // A failed append is logged by the journal; the job goes on.
                    let _ = durable.await;
                }
                (d.verdict, d.next, d.progress)
            }
        };
        if let Verdict::Accepted(task) = verdict {
            info!(%task, %attempt, maps_done = progress.maps_done, reduces_done = progress.reduces_done, "task done");
        }
        // The supervising loop ends the job once every output is committed
        // or a task failed for good; it also looks every 200 ms, so a map's
        // success (tens of thousands a second at scale) need not wake it.
        if matches!(
            verdict,
            Verdict::Accepted(TaskRef::Reduce(_)) | Verdict::FailureRecorded(_)
        ) {
            self.shared.changed.notify_one();
        }
        // A worker declared lost (silent too long) must join again.
        let mut next = next.ok_or(ProtocolError::UnknownWorker(worker))?;
        // Nothing to do yet: the worker asks with request_task, whose long
        // poll answers as soon as there is (a Wait here would have it sleep
        // through the work appearing, e.g. the reduces the last map frees).
        if matches!(next, Some(Assignment::Wait { .. })) {
            next = None;
        }
        let ack = match verdict {
            Verdict::Ignored => ReportAck::Ignored,
            _ => ReportAck::Accepted,
        };
        Ok(Reported { ack, next })
    }

    async fn heartbeat(
        self,
        _: Context,
        worker: WorkerId,
        running: Vec<AttemptId>,
    ) -> Result<HeartbeatReply, ProtocolError> {
        self.registered(worker)?;
        let mut s = self.shared.sched();
        if !s.touch(worker, Instant::now()) {
            return Err(ProtocolError::UnknownWorker(worker));
        }
        Ok(HeartbeatReply {
            cancel: s.cancellable(worker, &running),
        })
    }

    async fn announce(
        self,
        _: Context,
        worker: WorkerId,
        place: WorkerPlace,
    ) -> Result<(), ProtocolError> {
        self.registered(worker)?;
        let local = (0..self.shared.inputs.len())
            .filter(|&i| place.has_input(i))
            .count();
        info!(%worker, shared = place.shared, shuffle = ?place.shuffle, local_inputs = local, "worker placed");
        let outside = (!place.shared).then(|| place.shuffle.clone()).flatten();
        let mut s = self.shared.sched();
        if !s.announce(worker, place) {
            return Err(ProtocolError::UnknownWorker(worker));
        }
        if let Some(addr) = outside {
            // Reports and the status page show where its outputs live.
            s.name_worker(worker, &format!(" (own disk, serves {addr})"));
        }
        Ok(())
    }

    async fn map_outputs(
        self,
        _: Context,
        worker: WorkerId,
        version: u64,
        from: u32,
    ) -> Result<OutputsPage, ProtocolError> {
        self.registered(worker)?;
        // A clone of a shared page: its encoding is made once, on the
        // first send, not once per reader.
        self.shared.sched().outputs_page(version, from)
    }

    async fn read_input(
        self,
        _: Context,
        worker: WorkerId,
        path: PathBuf,
        offset: u64,
        len: u32,
    ) -> Result<serde_bytes::ByteBuf, ProtocolError> {
        self.registered(worker)?;
        super::data::read_input(&self.shared.inputs, path, offset, len).await
    }

    async fn upload_output(
        self,
        _: Context,
        worker: WorkerId,
        attempt: AttemptId,
        offset: u64,
        data: serde_bytes::ByteBuf,
        last: bool,
    ) -> Result<(), ProtocolError> {
        self.registered(worker)?;
        let target = {
            let s = self.shared.sched();
            match s.would_accept(worker, attempt) {
                Some(TaskRef::Reduce(r)) => r,
                _ => {
                    return Err(ProtocolError::UploadRefused {
                        attempt,
                        why: "not a running reduce attempt of this worker (its task may be done)"
                            .into(),
                    })
                }
            }
        };
        let path = self
            .shared
            .output_dir
            .join(names::reduce_temp(target, attempt));
        super::data::write_upload(path, attempt, offset, data.into_vec(), last).await
    }
}
