//! The MapReduce coordinator: the scheduling state machine and the RPC
//! server that drives it, the journal, and what a user watches a job by.
//! The wire it serves is defined in `mr-protocol`, shared with the workers.
//!
//! - [`scheduler`]: pure state with time passed in; every decision.
//! - [`server`]: sockets, files and the clock around it: the RPC service,
//!   the data calls (input ranges, uploads), embedded local workers.
//! - [`journal`] and [`jobdir`]: what survives a coordinator crash.
//! - [`observe`]: the job report, status page, progress display, timeline.
//! - [`job`]: the job's settings and its end-of-job summary.
//! - [`reuse`]: incremental re-runs, what a job takes from and gives to
//!   its cache.

pub mod job;
pub mod jobdir;
pub mod journal;
pub mod observe;
pub mod reuse;
pub mod scheduler;
pub mod server;
pub mod shape;
