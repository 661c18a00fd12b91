//! The MapReduce worker: the task loop that talks to the coordinator, the
//! map and reduce engines, and the intermediate run file format.
//!
//! Imports run one way: binaries -> [`task_loop`] -> [`map`] / [`reduce`] ->
//! [`runfile`], [`pairs`], [`split`]. `mrsequential` ([`sequential`]) calls
//! the same engines in one process, so there is one code path to trust.

pub mod map;
pub mod merge;
pub mod pairs;
pub mod reduce;
pub mod runfile;
pub mod sequential;
pub mod split;
pub mod table;
pub mod task_loop;

pub use mr_coordinator::init_logging;
