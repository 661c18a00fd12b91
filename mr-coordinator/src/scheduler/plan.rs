//! Planning the maps: the inputs cut into splits (or the plan made by
//! content, for a job with a cache) and a record per map, all idle. A
//! million splits take most of a second, so the server takes what planning
//! needs under the scheduler's lock ([`Scheduler::plan_inputs`]), plans
//! without it ([`PlanInputs::plan`]) and hands the result to the
//! registration that fixes the plan.

use super::tasks::Task;
use super::Scheduler;
use mr_protocol::plan::{plan_splits, InputFile, SplitPlan};
use std::collections::BTreeSet;

/// What planning the maps starts from (see [`Scheduler::plan_inputs`]).
pub struct PlanInputs {
    inputs: Vec<InputFile>,
    split_size: u64,
    record_size: u32,
    content_plan: Option<SplitPlan>,
    whole_file: bool,
}

/// The maps planned, ready to install.
pub struct PlannedMaps {
    pub(super) whole_file: bool,
    pub(super) splits: SplitPlan,
    pub(super) maps: Vec<Task>,
    pub(super) idle: BTreeSet<u32>,
}

impl PlanInputs {
    /// Cuts the inputs into splits (or takes the plan made by content) and
    /// makes a record for each map, all idle.
    pub fn plan(self) -> PlannedMaps {
        let splits = match self.content_plan {
            Some(p) => p,
            None => plan_splits(
                &self.inputs,
                self.split_size,
                self.whole_file,
                self.record_size,
            ),
        };
        PlannedMaps {
            whole_file: self.whole_file,
            maps: vec![Task::default(); splits.len()],
            idle: (0..splits.len() as u32).collect(),
            splits,
        }
    }
}

impl Scheduler {
    /// What planning the maps for a worker running `app` would start from,
    /// if this worker would fix the plan (none is made yet, and the job's
    /// app, if fixed, is `app`). The server takes it under the lock and
    /// plans without it ([`PlanInputs::plan`]: a million splits and their
    /// records take most of a second), then registers the worker with the
    /// result ([`Self::register_planned`]).
    pub fn plan_inputs(&self, app: &str, whole_file: bool) -> Option<PlanInputs> {
        let fixes =
            self.maps.is_empty() && !self.is_over() && self.app.as_deref().is_none_or(|a| a == app);
        fixes.then(|| self.planning(whole_file))
    }

    /// What planning the maps with `whole_file` starts from.
    pub(super) fn planning(&self, whole_file: bool) -> PlanInputs {
        PlanInputs {
            inputs: self.inputs.clone(),
            split_size: self.cfg.split_size,
            record_size: self.cfg.record_size,
            content_plan: self.content_plan.clone(),
            whole_file,
        }
    }

    /// Makes `p` the job's maps.
    pub(super) fn install(&mut self, p: PlannedMaps) {
        self.whole_file = p.whole_file;
        self.splits = p.splits;
        self.maps = p.maps;
        self.idle[0] = p.idle;
        self.backup_candidates[0].clear();
        self.done[0] = 0;
        self.outputs_stale = true;
    }

    /// Plans the maps as `plan` (splits planned by content, for a job that
    /// keeps a cache) instead of cutting the inputs by size.
    pub fn use_plan(&mut self, plan: SplitPlan) {
        self.content_plan = Some(plan);
    }
}
