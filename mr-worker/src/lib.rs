//! The MapReduce worker: the task loop that talks to the coordinator, the
//! map and reduce engines, and the intermediate run file format.
//!
//! Imports run one way: binaries -> [`task_loop`] -> [`map`] / [`reduce`] ->
//! [`runfile`], [`pairs`], [`split`]. `mrsequential` ([`sequential`]) calls
//! the same engines in one process, so there is one code path to trust.

pub mod map;
pub mod pairs;
pub mod reduce;
pub mod runfile;
pub mod sequential;
pub mod split;
pub mod task_loop;

/// Sets up `tracing` logs on stderr: warnings and errors unless `RUST_LOG` says more.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
