//! Where workers stand and what follows from it: which inputs each reads
//! itself (so maps are given by locality, as in the paper), and which map
//! outputs live only on a worker's own disk (so they go when it goes).

use super::tasks::Worker;
use super::{Scheduler, TaskRef};
use mr_protocol::{MapTaskId, WorkerId, WorkerPlace};

impl Scheduler {
    /// Records where `worker` stands: whether it sees the job directory,
    /// where it serves map outputs, which inputs it reads itself.
    pub fn announce(&mut self, worker: WorkerId, place: WorkerPlace) -> bool {
        match self.workers.get_mut(&worker) {
            Some(w) if w.alive => {
                w.place = Some(place);
                true
            }
            _ => false,
        }
    }

    /// Whether `w` can read every file of map `m`'s split itself.
    fn reads_locally(&self, w: &Worker, m: usize) -> bool {
        match &w.place {
            None => true,
            Some(p) => p.shared || self.split_files[m].iter().all(|&f| p.has_input(f)),
        }
    }

    /// Maps whose outputs were lost with their worker since the last call
    /// (for the journal).
    pub fn take_lost_outputs(&mut self) -> Vec<MapTaskId> {
        std::mem::take(&mut self.lost_unjournaled)
    }

    /// The shuffle address of the worker holding map `m`'s accepted output
    /// on its own disk (None when it is in the job directory, or not done).
    pub fn held_at(&self, m: MapTaskId) -> Option<String> {
        self.maps
            .get(m.0 as usize)
            .filter(|t| !t.in_job_dir)
            .and_then(|t| t.held_at.clone())
    }

    /// An idle map for `worker`, by locality as in the paper: one whose
    /// input it reads itself, else one no other live worker reads itself
    /// (so those stay for the workers that can), else any.
    pub(super) fn pick_map(&self, worker: WorkerId) -> Option<usize> {
        let idle: Vec<usize> = (0..self.maps.len())
            .filter(|&i| self.maps[i].done.is_none() && self.maps[i].running.is_empty())
            .collect();
        let first = *idle.first()?;
        let Some(me) = self.workers.get(&worker) else {
            return Some(first);
        };
        if me.place.is_none() && self.workers.values().all(|w| w.place.is_none()) {
            return Some(first);
        }
        if let Some(&i) = idle.iter().find(|&&i| self.reads_locally(me, i)) {
            return Some(i);
        }
        let others: Vec<&Worker> = self
            .workers
            .iter()
            .filter(|&(&id, w)| id != worker && w.alive)
            .map(|(_, w)| w)
            .collect();
        let unclaimed = idle
            .iter()
            .find(|&&i| !others.iter().any(|w| self.reads_locally(w, i)));
        Some(*unclaimed.unwrap_or(&first))
    }

    /// A lost worker's map outputs that lived only on its disk: those maps
    /// are no longer done (unless the job is). Returns them.
    pub(super) fn outputs_gone_with(&mut self, place: Option<&WorkerPlace>) -> Vec<TaskRef> {
        let held = place.filter(|p| !p.shared).and_then(|p| p.shuffle.clone());
        let mut gone = Vec::new();
        let Some(addr) = held.filter(|_| !self.is_done()) else {
            return gone;
        };
        for (i, t) in self.maps.iter_mut().enumerate() {
            if t.done.is_some() && !t.in_job_dir && t.held_at.as_deref() == Some(addr.as_str()) {
                t.done = None;
                t.held_at = None;
                let m = MapTaskId(i as u32);
                self.lost_unjournaled.push(m);
                gone.push(TaskRef::Map(m));
            }
        }
        gone
    }
}
