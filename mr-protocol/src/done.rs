//! What a job starts from besides its inputs, as the journal, the cache
//! and the scheduler hand it to one another: tasks already done and the
//! app the inputs were planned for. Not on the wire.

use crate::{AttemptId, Counters};

/// Task `task`, done by `attempt`, which counted `counters`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished<T> {
    /// The task (a `MapTaskId` or a `ReduceTaskId`).
    pub task: T,
    /// The attempt whose output stands.
    pub attempt: AttemptId,
    /// What that attempt counted.
    pub counters: Counters,
}

/// The app a job's inputs were planned for: whole-file apps get one split
/// per file, so a plan holds only for the app it was made for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedApp {
    /// The app's name.
    pub name: String,
    /// Whether it reads each input whole.
    pub whole_file: bool,
}
