//! Moving bytes between hosts when workers share no file system: the
//! worker's own directory of map outputs and fetched data ([`local`]), the
//! shuffle service that serves its map outputs to reducers elsewhere
//! ([`server`]), the reduce side that gathers a partition of every map
//! output ([`fetch`]), and input ranges fetched from the coordinator
//! ([`remote_input`]).

pub mod fetch;
pub mod local;
pub mod remote_input;
pub mod server;
