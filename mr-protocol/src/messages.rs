//! The messages of the coordinator's service: what a worker sends when it
//! joins, asks for work and reports, and what the coordinator answers.
//! Failures travel as typed enums ([`TaskFailure`]) the scheduler acts on,
//! never as formatted strings.

use crate::counters::Counters;
use crate::ids::{AttemptId, MapTaskId, ReduceTaskId, WorkerId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// A worker introducing itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// The app the worker runs (its built-in name or plugin's name).
    pub app: String,
    /// True when the app must see whole input files (never split).
    pub whole_file: bool,
    /// The size of the app's own fixed-length records; 0 for lines.
    pub record_size: u32,
    /// True when the app needs its outputs in total order.
    pub total_order: bool,
    /// Host name, for logs.
    pub host: String,
    /// Process id, for logs.
    pub pid: u32,
    /// How many tasks the worker runs at once.
    pub capacity: u32,
    /// The job's token (see [`crate::join`]); empty if the worker has none.
    pub token: String,
    /// For a worker a coordinator started itself (`--workers N`), that
    /// coordinator's pid: a restarted coordinator dismisses the workers its
    /// killed predecessor left, since it starts its own.
    pub embedded_by: Option<u32>,
    /// The worker's build id (`mr_build::BUILD_ID`): a coordinator admits
    /// only workers of its own build, whose outputs its cache keys name.
    pub build: String,
}

/// What a registered worker needs to know about the job.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobSettings {
    /// The id the coordinator gave this worker.
    pub worker: WorkerId,
    /// The job's id (a hash of its inputs and settings).
    pub job_id: String,
    /// R, the number of reduce tasks and output files.
    pub reduces: u32,
    /// Absolute directory for intermediate files.
    pub job_dir: PathBuf,
    /// Absolute directory where `mr-out-*` files are committed.
    pub output_dir: PathBuf,
    /// When outputs go to an object store: the prefix (`s3://BUCKET/dir/`)
    /// under which each reduce attempt uploads `mr-out-<r>` (uncompleted).
    pub output_store: Option<String>,
    /// How often the worker must send a heartbeat, in milliseconds.
    pub heartbeat_ms: u64,
    /// Every input file of the job, as the coordinator sees it (index = the
    /// file's number in [`WorkerPlace::local_inputs`]).
    pub inputs: Vec<PlannedFile>,
    /// The job's token, told only to workers that joined over the
    /// coordinator's socket (the socket authenticated them; they present
    /// the token to other workers' shuffle services). None over TCP.
    pub token: Option<String>,
    /// Whether the job's connections are encrypted (TLS, see
    /// [`crate::wire`]): then a worker's shuffle service speaks TLS too.
    pub tls: bool,
    /// How the job's inputs, its partitions and its app are set up.
    pub shape: JobShape,
}

/// What a job decided about its records, partitions and parameters, which
/// every worker applies the same way (the report records it, and every
/// cache key holds it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobShape {
    /// The job's parameters (`--conf KEY=VALUE`), in key order.
    pub conf: Vec<(String, String)>,
    /// The size of fixed-length input records (`--record-size`, or the
    /// app's own); 0 when records are lines.
    pub record_size: u32,
    /// With a total order (`--total-order`, or an app that needs it): the
    /// sorted, distinct keys at which the key ranges of the partitions
    /// start (R-1 at most). None: keys are partitioned by hash (or by the
    /// app's partitioner).
    pub split_points: Option<Vec<Vec<u8>>>,
}

impl JobShape {
    /// An unambiguous encoding of everything here, for cache keys.
    pub fn key_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut put = |b: &[u8]| {
            out.extend_from_slice(&(b.len() as u64).to_le_bytes());
            out.extend_from_slice(b);
        };
        put(b"conf");
        for (k, v) in &self.conf {
            put(k.as_bytes());
            put(v.as_bytes());
        }
        put(b"records");
        put(&self.record_size.to_le_bytes());
        match &self.split_points {
            None => put(b"hash"),
            Some(points) => {
                put(b"ranges");
                put(&(points.len() as u64).to_le_bytes());
                for p in points {
                    put(p);
                }
            }
        }
        out
    }
}

/// One input file of the job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedFile {
    /// Absolute path on the coordinator's host.
    pub path: PathBuf,
    /// Size when planned.
    pub len: u64,
}

/// Where a worker stands relative to the coordinator's files, told once
/// after registering (see [`Coordinator::announce`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerPlace {
    /// The worker sees the job directory and output directory (a shared
    /// file system, or the same machine): it writes map outputs to the job
    /// directory and reduce outputs straight into the output directory.
    pub shared: bool,
    /// Where the worker serves its map outputs (`host:port` of its
    /// [`Shuffle`] service), so reducers that do not see the job directory
    /// can fetch them. A shared-directory worker serves the ones it wrote
    /// there too, for such reducers.
    pub shuffle: Option<String>,
    /// Bitmap over [`JobSettings::inputs`]: bit `i` set when the worker can
    /// read input `i` itself (same path, same size). Maps over such files
    /// are preferably given to it; others it fetches from the coordinator.
    pub local_inputs: Vec<u64>,
}

impl WorkerPlace {
    /// Whether input file `i` is readable where the worker runs.
    pub fn has_input(&self, i: usize) -> bool {
        self.local_inputs
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Marks input file `i` readable where the worker runs.
    pub fn set_input(&mut self, i: usize) {
        if self.local_inputs.len() <= i / 64 {
            self.local_inputs.resize(i / 64 + 1, 0);
        }
        self.local_inputs[i / 64] |= 1 << (i % 64);
    }
}

/// Why a registration was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RegisterError {
    /// The worker runs a different app than the job.
    #[error("this job runs app '{job_app}', but the worker runs '{worker_app}'; start the worker with '{job_app}'")]
    WrongApp {
        /// The job's app.
        job_app: String,
        /// The worker's app.
        worker_app: String,
    },
    /// The job has finished or failed; there is nothing to join.
    #[error("the job is over; no more workers are needed")]
    JobOver,
    /// A worker of another user connected to the coordinator's socket.
    #[error("the coordinator's socket admits only its own user's workers (uid {owner}); this worker runs as uid {}", uid.map_or("unknown".to_string(), |u| u.to_string()))]
    OtherUser {
        /// The worker's uid, if the kernel told it.
        uid: Option<u32>,
        /// The coordinator's uid.
        owner: u32,
    },
    /// The worker was started by an earlier coordinator of this job, which
    /// is gone; the running one starts its own workers.
    #[error("this worker was started by an earlier coordinator of the job (pid {pid}), which is gone; the coordinator now running starts its own workers")]
    Superseded {
        /// The pid of the coordinator that started the worker.
        pid: u32,
    },
    /// The worker is another build of the framework than the coordinator:
    /// its outputs could differ from what the job's cache keys name.
    #[error("this worker is build {worker} of the framework, the coordinator build {coordinator}; start workers from the same build as mrcoordinator (mrworker --version shows it)")]
    OtherBuild {
        /// The coordinator's build id (abbreviated).
        coordinator: String,
        /// The worker's build id (abbreviated).
        worker: String,
    },
    /// The worker's app reads fixed-length records, or needs its outputs
    /// in total order, and the job was not set up for it.
    #[error("the worker's app '{app}' {needs}; {hint}")]
    NotSetUpFor {
        /// The worker's app.
        app: String,
        /// What it needs, in words.
        needs: String,
        /// What to do.
        hint: String,
    },
    /// The worker did not present the job's token.
    #[error("wrong or missing job token; give the worker the job's token with --token or MR_TOKEN{hint}")]
    BadToken {
        /// Where the token can be found, if the coordinator published it.
        hint: String,
    },
}

/// A byte range of one input file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePart {
    /// The path exactly as the user gave it (or the glob produced it); this is
    /// what the app's map receives as its file name.
    pub name: String,
    /// The absolute path the worker opens.
    pub path: PathBuf,
    /// First byte of the range (before aligning to a line start).
    pub start: u64,
    /// One past the last byte (before aligning).
    pub end: u64,
    /// The file's size when planned; a different size at map time is an error.
    pub file_len: u64,
    /// For an object input: its ETag when planned (a read of another
    /// version fails the map, naming it).
    pub version: Option<String>,
}

/// What one map task reads: byte ranges of one or more files, in order.
/// Small files are packed together so that a task is worth its overhead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSplit {
    /// The ranges, in input order.
    pub parts: Vec<FilePart>,
}

impl InputSplit {
    /// Bytes covered (before line alignment).
    pub fn len(&self) -> u64 {
        self.parts.iter().map(|p| p.end - p.start).sum()
    }

    /// True when the split covers no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A finished map's output, as a reduce task needs to find it (a list of
/// them crosses the wire as [`crate::outputs::MapOutputs`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapOutputRef {
    /// The map task.
    pub map: MapTaskId,
    /// The attempt whose output the coordinator accepted.
    pub attempt: AttemptId,
    /// The [`Shuffle`] address of the worker that made it and serves it
    /// (None if that worker serves nothing).
    pub host: Option<std::sync::Arc<str>>,
    /// True when it is in the shared job directory: a reducer that sees
    /// that directory reads it there; others fetch it from `host`.
    pub in_job_dir: bool,
    /// The run file's size as its map reported it (0 if unknown): no
    /// partition of it can be longer, whatever a holder claims.
    pub bytes: u64,
}

/// What the coordinator tells a worker to do next.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Assignment {
    /// Run this attempt of a task.
    Work(Work),
    /// Nothing to do yet; ask again after this many milliseconds.
    Wait {
        /// Suggested pause (0 when the coordinator held the request as
        /// long as it meant the worker to wait).
        millis: u64,
    },
    /// The job is over: exit.
    Exit,
}

/// One attempt of a task, as a worker runs it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Work {
    /// A map task.
    Map(MapWork),
    /// A reduce task.
    Reduce(ReduceWork),
}

impl Work {
    /// This execution's id.
    pub fn attempt(&self) -> AttemptId {
        match self {
            Work::Map(m) => m.attempt,
            Work::Reduce(r) => r.attempt,
        }
    }

    /// The task's name (`map-3`, `reduce-0`), for logs.
    pub fn task_name(&self) -> String {
        match self {
            Work::Map(m) => m.task.to_string(),
            Work::Reduce(r) => r.task.to_string(),
        }
    }

    /// The records this attempt skips.
    pub fn skip(&self) -> &[BadRecord] {
        match self {
            Work::Map(m) => &m.skip,
            Work::Reduce(r) => &r.skip,
        }
    }
}

/// Run map task `task` over `split`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MapWork {
    /// The task.
    pub task: MapTaskId,
    /// This execution's id.
    pub attempt: AttemptId,
    /// The input to read.
    pub split: std::sync::Arc<InputSplit>,
    /// Records to skip: each made an earlier attempt's app code panic
    /// (only with `--skip-bad-records`).
    pub skip: Vec<BadRecord>,
}

/// Run reduce task `task` over partition `task` of every map output.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReduceWork {
    /// The task.
    pub task: ReduceTaskId,
    /// This execution's id.
    pub attempt: AttemptId,
    /// Which list of the map tasks' accepted outputs to read: not the list
    /// itself, which is O(M) and would make every reduce assignment so
    /// (see [`OutputsVersion`]).
    pub outputs: OutputsVersion,
    /// Keys to skip: each made an earlier attempt's reduce panic.
    pub skip: Vec<BadRecord>,
    /// Report where the output's segments begin ([`TaskOutput::Indexed`]):
    /// a job that keeps a cache asks, so that a later run can copy the
    /// segments its changes leave alone.
    pub index: bool,
    /// The parts of an earlier output of this partition that still hold,
    /// to copy rather than reduce again (a job that keeps a cache, re-run
    /// on inputs that changed in a few keys).
    pub reuse: Option<std::sync::Arc<ReduceReuse>>,
}

/// A version of the coordinator's list of accepted map outputs: `maps`
/// entries, one per map task in map order, fetched in pages with
/// [`crate::Coordinator::map_outputs`]. The version changes whenever an
/// accepted output does (one lost and made again); a worker keeps the last
/// list it fetched, so its next reduce of the same version fetches nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputsVersion {
    /// The list's version.
    pub version: u64,
    /// Its length: the job's number of map tasks.
    pub maps: u32,
}

/// One page of the list of accepted map outputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputsPage {
    /// The version this page is of: the one asked for, or a newer one when
    /// the outputs changed since (a reader then starts again from 0).
    pub version: u64,
    /// The whole list's length.
    pub maps: u32,
    /// The entries of maps `from..from + outputs.len()`, in map order.
    pub from: u32,
    /// The entries (encoded compactly: see [`crate::outputs`]).
    pub outputs: crate::outputs::MapOutputs,
}

/// How to make a reduce's output from an earlier one: its pieces, in key
/// order, each copied from the earlier output or reduced again. The
/// result is byte for byte what reducing every key would give.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReduceReuse {
    /// The earlier output's file name in the job directory.
    pub previous: String,
    /// The new output's pieces, in order.
    pub pieces: Vec<ReusePiece>,
}

/// One piece of a reduce output made from an earlier one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReusePiece {
    /// One segment of the earlier output, unchanged: its bytes
    /// `offset..offset + len`, which begin at key `start` (None: the head
    /// segment, before the first key that starts one).
    Copy {
        /// The segment's first key.
        start: Option<Vec<u8>>,
        /// Where its lines begin in the earlier output.
        offset: u64,
        /// Their length.
        len: u64,
    },
    /// The keys in `from..to` (None: unbounded on that side), reduced from
    /// partition r of every map's output: map i's read from the block at
    /// file offset `blocks[i]` of its run file (`u64::MAX`: it has no
    /// records there).
    Reduce {
        /// The first key of the range.
        from: Option<Vec<u8>>,
        /// The first key past it.
        to: Option<Vec<u8>>,
        /// Per map, in map order, the block to start reading at.
        blocks: Vec<u64>,
    },
}

/// Where each segment of a reduce output after the head begins, and what
/// was copied rather than reduced (see [`ReduceReuse`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputIndex {
    /// Each segment's first key and the offset of its first line, in order.
    pub starts: Vec<(Vec<u8>, u64)>,
    /// Output bytes copied from an earlier output.
    pub copied: u64,
}

/// What a successful attempt produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum TaskOutput {
    /// A map task wrote its intermediate file.
    Map(Counters),
    /// A reduce task wrote its temporary output, ready to commit.
    Reduce(Counters),
    /// A reduce task asked for its index wrote its temporary output, ready
    /// to commit, and says where its segments begin.
    Indexed(Counters, OutputIndex),
    /// A reduce task uploaded its output to the object store as a multipart
    /// upload it did not complete: the coordinator completes it (publishes
    /// the object) when it commits the task, or aborts it.
    Uploaded(Counters, OutputUpload),
}

/// A reduce output in an object store, uploaded but not yet published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputUpload {
    /// The object it becomes: `s3://BUCKET/prefix/mr-out-<r>`.
    pub url: String,
    /// The store's id of the multipart upload.
    pub upload_id: String,
    /// The ETag of each part, in order (what completing the upload needs).
    pub parts: Vec<String>,
    /// The output's size in bytes.
    pub bytes: u64,
    /// CRC-32C of the output's bytes.
    pub crc32c: u32,
    /// The upload's own random tag, stored as the object's metadata when
    /// the upload began: the completed object bears it, whatever its ETag,
    /// so a restarted coordinator knows the object its upload made.
    pub tag: String,
}

impl TaskOutput {
    /// The attempt's counters.
    pub fn counters(&self) -> &Counters {
        match self {
            TaskOutput::Map(c)
            | TaskOutput::Reduce(c)
            | TaskOutput::Indexed(c, _)
            | TaskOutput::Uploaded(c, _) => c,
        }
    }
}

/// The record app code was working on when it panicked.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum BadRecord {
    /// A line (or, for whole-file apps, a whole file) given to map.
    Line {
        /// The input file as the user named it.
        input: String,
        /// Byte offset of the line's first byte in the file.
        offset: u64,
    },
    /// A key given to reduce.
    Key(Vec<u8>),
    /// The keys a map task combines (combine sees keys from its whole split).
    Combined(String),
}

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadRecord::Line { input, offset } => match crate::codec::Codec::of(input) {
                Some(c) => write!(
                    f,
                    "input '{input}', record at byte offset {offset} of its decompressed ({}) stream",
                    c.name()
                ),
                None => write!(f, "input '{input}', record at byte offset {offset}"),
            },
            BadRecord::Key(k) => write!(
                f,
                "key '{}'{}",
                String::from_utf8_lossy(&k[..k.len().min(80)]),
                if k.len() > 80 { "..." } else { "" }
            ),
            BadRecord::Combined(what) => write!(f, "the keys of {what}"),
        }
    }
}

/// Which of the app's functions was running.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// `map`, over a record of the input.
    Map,
    /// `combine`, over keys gathered from a whole map split: no one record
    /// to blame, so nothing a retry could skip.
    Combine,
    /// `reduce`, over one key's values.
    Reduce,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Map => "map",
            Phase::Combine => "combine",
            Phase::Reduce => "reduce",
        })
    }
}

/// Why an attempt failed, typed so the coordinator can act on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TaskFailure {
    /// The attempt stopped because the coordinator said another attempt
    /// had finished its task (or it was otherwise abandoned).
    #[error("cancelled: the task was done by another attempt")]
    Cancelled,
    /// App code panicked (in map, combine or reduce).
    #[error("app panicked: {message} ({phase} of {record})")]
    AppPanic {
        /// The panic message.
        message: String,
        /// Which app function panicked.
        phase: Phase,
        /// The record it panicked on.
        record: BadRecord,
    },
    /// The intermediate output of a map task is missing or corrupt: the map
    /// must run again before this reduce can.
    #[error("intermediate output of {map} ({attempt}) is unusable: {reason}")]
    MapOutputLost {
        /// The map task whose output is bad.
        map: MapTaskId,
        /// The accepted attempt whose output it was.
        attempt: AttemptId,
        /// What was wrong with it.
        reason: String,
    },
    /// A worker holding a map output refused to serve it to this reduce
    /// (wrong token, another job): a fault of the setup, not of the output,
    /// so the map is not re-run; the reduce takes a strike.
    #[error("the worker at {host} refused to serve {map}: {reason}")]
    FetchRefused {
        /// The map task whose output was asked for.
        map: MapTaskId,
        /// The holder's shuffle address.
        host: String,
        /// What the holder said.
        reason: crate::shuffle::FetchError,
    },
    /// The input file could not be read, or changed since planning.
    #[error("cannot read input {path}: {reason}")]
    Input {
        /// The input as the user named it.
        path: String,
        /// Why.
        reason: String,
    },
    /// A local file operation failed (disk full, permissions).
    #[error("I/O error on {path}: {reason}")]
    Io {
        /// The file or directory.
        path: String,
        /// Why.
        reason: String,
    },
}

/// How the coordinator took a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReportAck {
    /// The report was the first good one for its task (or a failure noted).
    Accepted,
    /// The task was already done, or the attempt is unknown: the worker should
    /// discard what it produced.
    Ignored,
}

/// What the coordinator answers a report with: its verdict, and, if the
/// worker asked, its next assignment (as a task request would answer), so
/// that a task costs one round trip, not two.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reported {
    /// How the report was taken.
    pub ack: ReportAck,
    /// What the worker does next: None when it did not ask, or when
    /// there is nothing to do yet (it then asks with `request_task`, which
    /// waits for work to appear).
    pub next: Option<Assignment>,
}

/// What the coordinator answers a heartbeat with.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// Attempts the worker may abandon: their task is done elsewhere.
    pub cancel: Vec<AttemptId>,
}

/// Protocol-level refusals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ProtocolError {
    /// The coordinator does not know this worker (it restarted, or declared
    /// the worker lost): register again.
    #[error("unknown worker {0}; register again")]
    UnknownWorker(WorkerId),
    /// A byte range of something the job did not plan as an input.
    #[error("{0} is not an input of this job")]
    NotAnInput(PathBuf),
    /// A byte range past the end of a planned input, or a chunk too large.
    #[error("bytes {offset}..+{len} are outside input {path} ({file_len} bytes) or over the chunk limit")]
    BadRange {
        /// The input.
        path: PathBuf,
        /// First byte asked for.
        offset: u64,
        /// Bytes asked for.
        len: u64,
        /// The file's planned size.
        file_len: u64,
    },
    /// An upload for an attempt that is not a running reduce of this worker,
    /// or not where the previous chunk ended.
    #[error("upload refused for {attempt}: {why}")]
    UploadRefused {
        /// The attempt.
        attempt: AttemptId,
        /// Why.
        why: String,
    },
    /// No list of map outputs to page through: no reduce was assigned yet.
    #[error("no list of map outputs yet (asked for version {0})")]
    NoOutputs(u64),
    /// The coordinator failed to read or write a file.
    #[error("coordinator I/O error on {path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// File names both sides derive from ids. Names never travel over the wire,
/// so a peer cannot make the other read or write an arbitrary path.
pub mod names {
    use crate::ids::{AttemptId, MapTaskId, ReduceTaskId};

    /// The intermediate file of one map attempt, inside the job directory.
    pub fn map_output(map: MapTaskId, attempt: AttemptId) -> String {
        format!("mr-{}-{}", map.0, attempt.0)
    }

    /// The final output of reduce task `r`, inside the output directory.
    pub fn output(reduce: ReduceTaskId) -> String {
        format!("mr-out-{}", reduce.0)
    }

    /// The object `mr-out-<r>` becomes under an object store output
    /// prefix (`s3://BUCKET/dir/`, ending with `/`).
    pub fn output_object(prefix: &str, reduce: ReduceTaskId) -> String {
        format!("{prefix}{}", output(reduce))
    }

    /// Marks a job directory as job `id`'s, so a worker can tell whether it
    /// sees the coordinator's files (same machine or shared file system).
    pub const JOB_MARKER: &str = "job-id";

    /// A reduce attempt's uncommitted output, in the output directory (so
    /// the commit is a rename within one file system). Hidden, so globs like
    /// `mr-out*` never see it.
    pub fn reduce_temp(reduce: ReduceTaskId, attempt: AttemptId) -> String {
        format!(".mr-out-{}.{}.tmp", reduce.0, attempt.0)
    }

    /// An earlier output of reduce `reduce` (from the cache), in the job
    /// directory, that its attempts copy pieces of.
    pub fn previous_output(reduce: ReduceTaskId) -> String {
        format!("mr-earlier-out-{}", reduce.0)
    }
}
