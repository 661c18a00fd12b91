//! Process-level tests: real `mrcoordinator`, `mrworker` and `mrsequential`
//! binaries, each test in its own directory, on ports the OS picks, with
//! every child killed and reaped when its handle drops.

mod apps;
mod bad_input;
mod cache;
mod cli;
mod compressed;
mod faults;
mod hostile;
mod inputs;
mod network;
mod object_outputs;
mod objects;
mod records;
mod replay;
mod report;
mod security;
mod socket;
mod status;
mod storage;
mod streaming;
mod util;
