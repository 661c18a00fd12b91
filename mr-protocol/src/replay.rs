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

/// What a [`ReplayInfo`] is made from, written out as one without being
/// built: a million maps' splits and output paths are about 300 bytes each
/// as values, and the report at a job's end must not hold them all at
/// once. Serializes exactly as the `ReplayInfo` it stands for
/// ([`ReplayPlan::to_info`]), a split at a time.
#[derive(Clone, Debug)]
pub struct ReplayPlan {
    /// As [`ReplayInfo::app_args`].
    pub app_args: Vec<String>,
    /// R.
    pub reduces: u32,
    /// The job's splits, as planned.
    pub plan: crate::plan::SplitPlan,
    /// The inputs the plan was made from.
    pub inputs: Vec<crate::plan::InputFile>,
    /// Each map's accepted attempt whose output is in the job directory.
    pub in_job_dir: Vec<Option<crate::AttemptId>>,
    /// The job directory.
    pub job_dir: std::path::PathBuf,
    /// As [`ReplayInfo::shape`].
    pub shape: crate::JobShape,
}

impl ReplayPlan {
    fn map_output(&self, m: usize) -> Option<String> {
        let a = self.in_job_dir.get(m).copied().flatten()?;
        let name = crate::names::map_output(crate::MapTaskId(m as u32), a);
        Some(self.job_dir.join(name).display().to_string())
    }

    /// The replay section it stands for, built whole.
    pub fn to_info(&self) -> ReplayInfo {
        ReplayInfo {
            app_args: self.app_args.clone(),
            reduces: self.reduces,
            splits: (0..self.plan.len())
                .map(|m| self.plan.split(m, &self.inputs))
                .collect(),
            map_outputs: (0..self.plan.len()).map(|m| self.map_output(m)).collect(),
            shape: self.shape.clone(),
        }
    }
}

impl Serialize for ReplayPlan {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        /// A sequence whose items are made as they are written.
        struct Lazy<F>(usize, F);
        impl<T: Serialize, F: Fn(usize) -> T> Serialize for Lazy<F> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq((0..self.0).map(&self.1))
            }
        }
        let n = self.plan.len();
        // The fields of ReplayInfo, in its order.
        let mut st = s.serialize_struct("ReplayInfo", 5)?;
        st.serialize_field("app_args", &self.app_args)?;
        st.serialize_field("reduces", &self.reduces)?;
        st.serialize_field("splits", &Lazy(n, |m| self.plan.split(m, &self.inputs)))?;
        st.serialize_field("map_outputs", &Lazy(n, |m| self.map_output(m)))?;
        st.serialize_field("shape", &self.shape)?;
        st.end()
    }
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
    fn a_replay_plan_writes_the_replay_info_it_stands_for() {
        let inputs: Vec<crate::plan::InputFile> = (0..3)
            .map(|i| crate::plan::InputFile {
                name: format!("in-{i}"),
                path: format!("/data/in-{i}").into(),
                len: 250,
                version: (i == 1).then(|| "etag".to_string()),
            })
            .collect();
        let plan = crate::plan::plan_splits(&inputs, 100, false, 0);
        let n = plan.len();
        assert!(n > 3, "several splits, some spanning files: {n}");
        let p = ReplayPlan {
            app_args: vec!["wc".into()],
            reduces: 3,
            plan,
            inputs,
            in_job_dir: (0..n)
                .map(|m| (m % 2 == 0).then_some(crate::AttemptId(m as u64 + 40)))
                .collect(),
            job_dir: "/jobs/j1".into(),
            shape: crate::JobShape::default(),
        };
        let info = p.to_info();
        assert_eq!(info.splits.len(), n);
        assert_eq!(info.map_outputs[1], None);
        assert!(info.map_outputs[0]
            .as_deref()
            .unwrap()
            .starts_with("/jobs/j1/"));
        // Written lazily, it reads back as the one built whole.
        let written = serde_json::to_string(&p).unwrap();
        assert_eq!(written, serde_json::to_string(&info).unwrap());
        let back: ReplayInfo = serde_json::from_str(&written).unwrap();
        assert_eq!(back, info);
    }

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
