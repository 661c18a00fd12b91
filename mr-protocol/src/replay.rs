//! What a job's report records so that one of its tasks can be run again
//! alone (`mrworker --replay REPORT TASK`): the app and its settings, every
//! map's split, and where each map's accepted output was kept.
//!
//! The coordinator writes it into `mr-report.json` when the job ends
//! (succeeded or failed); the worker reads it back from there. It is the
//! only part of the report a worker reads, so it is defined here, beside
//! the other things both sides share.

use crate::InputSplit;
use serde::{Deserialize, Serialize};

/// Everything needed to replay any task of a job.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayInfo {
    /// The arguments naming the app, as a worker is given them: a built-in
    /// name or a plugin's absolute path, or `--map-cmd M --reduce-cmd R`.
    pub app_args: Vec<String>,
    /// R.
    pub reduces: u32,
    /// Every map task's split, by task number.
    pub splits: Vec<InputSplit>,
    /// Where each map task's accepted output was written, when it was in
    /// the job directory (None: on a worker's own disk, or no output yet).
    /// The job directory goes when the job ends, so these are used only if
    /// they still exist; otherwise a reduce's replay maps the splits again.
    pub map_outputs: Vec<Option<String>>,
    /// The job's parameters, record size and split points (a report of a
    /// job without them has the default: none, lines, hash partitions).
    #[serde(default)]
    pub shape: crate::JobShape,
}

/// A task as a report names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskName {
    /// `map-N`.
    Map(u32),
    /// `reduce-N`.
    Reduce(u32),
}

impl std::str::FromStr for TaskName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("'{s}' is not a task name: give map-N or reduce-N, as the report names tasks")
        };
        let (kind, n) = s.split_once('-').ok_or_else(bad)?;
        let n: u32 = n.parse().map_err(|_| bad())?;
        match kind {
            "map" => Ok(TaskName::Map(n)),
            "reduce" => Ok(TaskName::Reduce(n)),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for TaskName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskName::Map(n) => write!(f, "map-{n}"),
            TaskName::Reduce(n) => write!(f, "reduce-{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_names_parse_as_reports_write_them() {
        for name in ["map-0", "map-41", "reduce-7"] {
            assert_eq!(name.parse::<TaskName>().unwrap().to_string(), name);
        }
        for bad in ["map", "map-", "map-x", "reduce--1", "shuffle-3", "3", ""] {
            let e = bad.parse::<TaskName>().unwrap_err();
            assert!(e.contains("map-N or reduce-N"), "{e}");
        }
    }
}
