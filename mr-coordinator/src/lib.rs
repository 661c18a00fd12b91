//! The MapReduce coordinator: the wire protocol both sides share, job
//! planning, the scheduling state machine, and the RPC server that drives it.
//!
//! The scheduler ([`scheduler`]) is pure state with time passed in; the
//! server ([`server`]) owns sockets, files and the clock around it.

mod data_service;
pub mod embedded;
pub mod job;
pub mod jobdir;
pub mod journal;
pub mod outcome;
pub mod plan;
pub mod progress;
pub mod protocol;
pub mod report;
pub mod scheduler;
pub mod server;
mod service;
pub mod size;
pub mod status;
mod task_state;
pub mod timeline;
pub mod token;

/// The default coordinator address when neither a flag nor `MR_COORDINATOR` gives one.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7878";

/// The largest RPC frame either side accepts (reduce assignments list every
/// map output, so they grow with M; intermediate data never travels in RPCs).
pub const MAX_FRAME: usize = 64 << 20;

/// Sets up `tracing` logs on stderr for the binaries: warnings and errors
/// unless `RUST_LOG` asks for more; colours only on a terminal.
pub fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
