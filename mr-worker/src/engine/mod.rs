//! The engines: one map task from input split to intermediate run file
//! ([`map`]), one reduce task from partitions to output ([`reduce`],
//! [`stream_reduce`] for streaming apps), and what they share: the k-way
//! merge ([`merge`]), the in-memory accumulators ([`table`] over [`counts`]
//! and [`pairs`]), records within a chunk ([`records`]), line alignment of
//! splits ([`split`]) and the run file format ([`runfile`]).
//!
//! Engines read files and write files (or a reduce output to an object
//! store, through [`output`]'s sink); they never talk to the coordinator,
//! so `mrsequential` and the worker run exactly the same code.

pub mod cancel;
pub mod counts;
mod fan_in;
pub mod map;
pub mod merge;
mod output;
pub mod pairs;
mod records;
pub mod reduce;
pub use mr_runfile as runfile;
pub mod split;
mod stream_reduce;
pub mod table;

#[cfg(test)]
mod tests;
