//! The MapReduce wire: everything the coordinator and the workers share, and
//! nothing else of either.
//!
//! Both sides import this crate and no other part of each other, so a change
//! to what crosses the network is a change here, seen by both at once (the
//! service trait lives beside its messages, as in tarpc's example service).
//! The coordinator serves [`Coordinator`]; workers serve [`Shuffle`] to each
//! other. Besides the services: the ids, the counters every attempt reports,
//! the job token and how local workers discover it ([`join`]), the planning
//! of inputs into splits that `mrsequential` shares with the coordinator
//! ([`plan`]), what a job's report records for replaying one of its tasks
//! ([`replay`]), the size and duration syntax of every binary's flags
//! ([`size`]), and what a job starts from besides its inputs, which the
//! coordinator's journal and scheduler and the cache hand one another
//! ([`done`]: tasks already finished, the app the plan was made for).

pub mod codec;
pub mod counters;
pub mod done;
#[cfg(feature = "rpc")]
pub mod framing;
pub mod ids;
pub mod join;
#[cfg(feature = "rpc")]
pub mod listing;
pub mod messages;
pub mod outputs;
pub mod packed;
pub mod plan;
pub mod replay;
#[cfg(feature = "rpc")]
pub mod service;
pub mod shuffle;
pub mod size;
#[cfg(feature = "rpc")]
pub mod wire;

pub use counters::Counters;
pub use done::{Finished, PlannedApp};
pub use ids::{AttemptId, MapTaskId, ReduceTaskId, WorkerId};
pub use messages::*;
pub use outputs::MapOutputs;
#[cfg(feature = "rpc")]
pub use service::{Coordinator, CoordinatorClient};
pub use shuffle::{FetchChunk, FetchError, FetchRequest};
#[cfg(feature = "rpc")]
pub use shuffle::{Shuffle, ShuffleClient};

/// Raises this process's open-file limit to its hard maximum: a reduce task
/// holds one descriptor per map output, a coordinator one per connected
/// worker, and default soft limits (often 1024) are far below both at scale.
pub fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

/// The default coordinator address when neither a flag nor `MR_COORDINATOR` gives one.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7878";

/// The largest RPC frame either side accepts (no message grows with M:
/// map outputs are listed in pages, and intermediate data never travels in
/// RPCs).
pub const MAX_FRAME: usize = 64 << 20;

/// The most map outputs one page of [`service::Coordinator::map_outputs`]
/// lists: about 33 KB on the wire (8 bytes a map and the page's holders).
/// A thousand workers fetch at once when the reduces start, and each page
/// sits in its connection's buffer until sent: pages of 16,384 held 130 MB
/// of the coordinator's memory in flight, these about 33 MB, for about 25
/// more calls a worker per 100,000 maps.
pub const OUTPUTS_PAGE: u32 = 4_096;

/// Largest chunk of bytes one data call carries (input ranges, uploads,
/// shuffle fetches), well under [`MAX_FRAME`].
pub const MAX_CHUNK: u32 = 4 << 20;

/// Exit status `mrworker` uses when it refuses to start (unknown app, refused
/// registration); a coordinator supervising embedded workers treats any
/// other non-zero status as a crash.
pub const EXIT_REFUSED: i32 = 3;

/// How the binaries write their logs (`--log-format`, or `MR_LOG_FORMAT`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Lines for a person: time, level, target, message and fields.
    #[default]
    Text,
    /// One JSON object a line, for log collectors (Fluent Bit, Vector, ...).
    Json,
}

impl LogFormat {
    /// The name `--log-format` and `MR_LOG_FORMAT` take.
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<LogFormat, String> {
        match s.trim() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("'{other}' is not a log format: give text or json")),
        }
    }
}

/// The environment variable that carries the log format to a binary (and
/// from a coordinator to the workers it starts).
pub const LOG_FORMAT_ENV: &str = "MR_LOG_FORMAT";

static LOG_FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// The log format this process set up (text if it set up none).
pub fn log_format() -> LogFormat {
    LOG_FORMAT.get().copied().unwrap_or_default()
}

/// Says `message` on stderr as binary `who` does: a `who: message` line,
/// or with JSON logs an event (an error when `error`), so a log collector
/// reads every line the process writes as JSON.
pub fn say(who: &str, error: bool, message: &str) {
    match (log_format(), error) {
        (LogFormat::Text, _) => eprintln!("{who}: {message}"),
        #[cfg(feature = "rpc")]
        (LogFormat::Json, false) => tracing::info!("{message}"),
        #[cfg(feature = "rpc")]
        (LogFormat::Json, true) => tracing::error!("{message}"),
        #[cfg(not(feature = "rpc"))]
        (LogFormat::Json, _) => eprintln!("{who}: {message}"),
    }
}

/// Sets up `tracing` logs on stderr for the binaries, as text: see
/// [`init_logging_as`].
pub fn init_logging() {
    init_logging_as(LogFormat::Text)
}

/// Sets up `tracing` logs on stderr for the binaries: warnings and errors
/// unless `RUST_LOG` asks for more; as text (colours only on a terminal)
/// or as one JSON object a line. Here so every binary of both sides logs
/// alike.
pub fn init_logging_as(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::{
        filter::LevelFilter, filter::Targets, layer::SubscriberExt, util::SubscriberInitExt,
    };
    let _ = LOG_FORMAT.set(format);
    // A log collector wants the job's story (workers joining, tasks
    // reissued): info by default in JSON; a terminal wants quiet.
    let default = match format {
        LogFormat::Text => LevelFilter::WARN,
        LogFormat::Json => LevelFilter::INFO,
    };
    // RUST_LOG takes `level` and `target=level` directives, comma-separated
    // (tracing-subscriber's `Targets`: no regex engine to build); one it
    // cannot parse leaves the default.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|s| s.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(default));
    let fmt = tracing_subscriber::fmt().with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => fmt
            .with_ansi(std::io::stderr().is_terminal())
            .finish()
            .with(filter)
            .try_init(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_span_list(false)
            .finish()
            .with(filter)
            .try_init(),
    };
}
