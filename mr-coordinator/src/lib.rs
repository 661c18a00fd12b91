//! The MapReduce coordinator: the scheduling state machine and the RPC
//! server that drives it, the journal, and what a user watches a job by.
//! The wire it serves is defined in `mr-protocol`, shared with the workers.
//!
//! The scheduler ([`scheduler`]) is pure state with time passed in; the
//! server ([`server`]) owns sockets, files and the clock around it.

mod data_service;
pub mod embedded;
pub mod job;
pub mod jobdir;
pub mod journal;
pub mod outcome;
pub mod progress;
pub mod report;
pub mod scheduler;
pub mod server;
mod service;
pub mod status;
mod task_state;
pub mod timeline;
