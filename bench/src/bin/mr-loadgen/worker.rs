//! One fake worker: a real connection (TLS pinned, the job's token) doing
//! what `mrworker` does with no data: register, announce, take a task,
//! report it, heartbeat, reconnect when the connection breaks.

use crate::load::Load;
use mr_protocol::listing::read_map_outputs;
use mr_protocol::service::CoordinatorClient;
use mr_protocol::{
    wire, Assignment, Counters, ProtocolError, ReduceWork, RegisterError, RegisterRequest,
    ReportAck, TaskOutput, Work, WorkerId, WorkerPlace,
};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a task request was answered with, for the latency figures: a
/// reduce assignment lists every map output, so it is the long one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Map,
    Reduce,
    Other,
    /// Asked with nothing to do: the coordinator holds such a request
    /// until work appears (a long poll), so its time is not a service time.
    Waited,
}

impl Kind {
    pub(crate) fn of(a: &Assignment) -> Kind {
        match a {
            Assignment::Work(Work::Map(_)) => Kind::Map,
            Assignment::Work(Work::Reduce(_)) => Kind::Reduce,
            _ => Kind::Other,
        }
    }
}

/// One worker's latencies, merged into the [`Load`]'s when it ends.
#[derive(Default)]
pub(crate) struct Samples {
    /// Task requests: when sent (ns since the origin), latency (us), answer.
    pub(crate) requests: Vec<(u64, u32, Kind)>,
    /// Accepted reports' latencies (us).
    pub(crate) reports: Vec<u32>,
    /// From the worker's start (its first connection attempt) to its first
    /// task (us): the join storm as a worker feels it.
    pub(crate) first_task: Option<u32>,
    /// From the worker's start to its first connection's TLS handshake's
    /// end (us): how much of that wait is the handshake's.
    pub(crate) connected: Option<u32>,
}

/// How one connection's session ended.
pub(crate) enum Ending {
    /// Told to exit, or refused: this worker is finished.
    Exit,
    /// The connection broke (the coordinator died): connect again.
    Lost,
}

/// One fake worker: connects, runs sessions until told to exit, and
/// reconnects (every 100 ms, as real workers do) when the connection breaks.
pub(crate) async fn worker(load: Arc<Load>, i: u32) {
    let began = Instant::now();
    let mut samples = Samples::default();
    while !load.done.load(Ordering::SeqCst) {
        let client = match connect(&load).await {
            Ok(c) => {
                samples.connected.get_or_insert_with(|| micros(began));
                c
            }
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match session(&load, i, &client, &mut samples, began).await {
            Ending::Exit => break,
            Ending::Lost => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    load.request_us.lock().unwrap().extend(samples.requests);
    load.report_us.lock().unwrap().extend(samples.reports);
    load.first_task_us
        .lock()
        .unwrap()
        .extend(samples.first_task);
    load.connected_us.lock().unwrap().extend(samples.connected);
}

/// A connection to the coordinator, TLS pinned to the job's certificate
/// unless the job runs in clear.
pub(crate) async fn connect(load: &Load) -> std::io::Result<CoordinatorClient> {
    let (stream, _, _) =
        wire::connect(&load.endpoint, load.secret.pin, Duration::from_secs(10)).await?;
    let transport = wire::transport(stream);
    Ok(CoordinatorClient::new(tarpc::client::Config::default(), transport).spawn())
}

pub(crate) fn ctx() -> tarpc::context::Context {
    tarpc::context::current()
}

pub(crate) fn micros(since: Instant) -> u32 {
    since.elapsed().as_micros().min(u128::from(u32::MAX)) as u32
}

/// One registration's life on one connection.
pub(crate) async fn session(
    load: &Load,
    i: u32,
    client: &CoordinatorClient,
    samples: &mut Samples,
    began: Instant,
) -> Ending {
    let req = RegisterRequest {
        app: "wc".into(),
        whole_file: false,
        record_size: 0,
        total_order: false,
        host: "loadgen".into(),
        pid: i,
        capacity: 1,
        token: load.secret.token.clone(),
        embedded_by: None,
        build: mr_build::BUILD_ID.into(),
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
    let ending = tasks(load, client, me, &heard, samples, began).await;
    heartbeats.abort();
    ending
}

/// When a worker's task loop last heard from the coordinator.
pub(crate) struct Heard(Mutex<Instant>);

impl Default for Heard {
    fn default() -> Heard {
        Heard(Mutex::new(Instant::now()))
    }
}

impl Heard {
    pub(crate) fn now(&self) {
        *self.0.lock().unwrap() = Instant::now();
    }

    pub(crate) fn since(&self) -> Duration {
        self.0.lock().unwrap().elapsed()
    }
}

/// Heartbeats, as `mrworker` does, whenever the task loop has not heard
/// from the coordinator for an interval; until the connection breaks (the
/// session aborts it).
pub(crate) async fn heartbeat(
    client: CoordinatorClient,
    me: WorkerId,
    every: Duration,
    heard: Arc<Heard>,
) {
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
pub(crate) async fn tasks(
    load: &Load,
    client: &CoordinatorClient,
    me: WorkerId,
    heard: &Heard,
    samples: &mut Samples,
    began: Instant,
) -> Ending {
    let mut next: Option<Assignment> = None;
    // The last call's timing, filed once its answer's kind is known.
    let mut sample: Option<(u64, u32)> = None;
    // Whether the last answer said there was nothing to do (the next
    // request is then a long poll).
    let mut idle = false;
    // The version of the map outputs list this session read, as `mrworker`
    // keeps it: its first reduce of a version reads the list's pages.
    let mut outputs_read: Option<u64> = None;
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
            let kind = match std::mem::take(&mut idle) {
                true => Kind::Waited,
                false => Kind::of(&assignment),
            };
            samples.requests.push((t, us, kind));
        }
        let work = match assignment {
            Assignment::Exit => return Ending::Exit,
            Assignment::Wait { millis } => {
                idle = true;
                tokio::time::sleep(Duration::from_millis(millis)).await;
                continue;
            }
            Assignment::Work(w) => w,
        };
        load.assigned(&work);
        if samples.first_task.is_none() {
            samples.first_task = Some(micros(began));
        }
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
            Work::Reduce(r) => match reduce(load, client, me, r, &mut outputs_read).await {
                Uploaded::Done => TaskOutput::Reduce(counters),
                Uploaded::Skip => continue,
                Uploaded::Lost => return Ending::Lost,
            },
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
                // None: nothing to do yet (or it was not asked).
                idle = answer.next.is_none();
                next = answer.next;
            }
            Ok(Err(e)) => load.error(format!("{me}: report refused: {e}")),
            Err(_) => return Ending::Lost,
        }
    }
}

/// What became of a reduce before its report.
enum Uploaded {
    /// Its (empty) output is uploaded: report it.
    Done,
    /// Its upload was refused (a backup whose task another attempt
    /// finished): no report.
    Skip,
    /// The connection broke.
    Lost,
}

/// Runs reduce `r` as a worker sharing nothing does: reads the map outputs
/// list (once per version this session) and uploads its output.
async fn reduce(
    load: &Load,
    client: &CoordinatorClient,
    me: WorkerId,
    r: &ReduceWork,
    outputs_read: &mut Option<u64>,
) -> Uploaded {
    if outputs_read.is_none_or(|v| v < r.outputs.version) {
        // Read as `mrworker` reads it, but only counted: a thousand
        // workers in one process keeping a list each would hold a
        // thousand copies of it.
        let mut entries = 0usize;
        let read = read_map_outputs(client, me, r.outputs, |from, page| {
            entries = from as usize + page.len();
        })
        .await;
        match read {
            Ok(v) if entries == r.outputs.maps as usize => *outputs_read = Some(v.version),
            Ok(_) => load.error(format!(
                "{me}: a map outputs list of {entries} entries, not {}",
                r.outputs.maps
            )),
            Err(e) => {
                load.error(format!("{me}: {e}"));
                return Uploaded::Lost;
            }
        }
    }
    let upload = client
        .upload_output(ctx(), me, r.attempt, 0, Vec::new().into(), true)
        .await;
    match upload {
        Ok(Ok(())) => Uploaded::Done,
        Ok(Err(ProtocolError::UploadRefused { .. })) => Uploaded::Skip,
        Ok(Err(e)) => {
            load.error(format!("{me}: upload refused: {e}"));
            Uploaded::Skip
        }
        Err(_) => Uploaded::Lost,
    }
}
