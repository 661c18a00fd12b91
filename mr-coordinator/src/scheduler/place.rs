//! Where workers stand and what follows from it: which inputs each reads
//! itself (so maps are given by locality, as in the paper), and which map
//! outputs live only on a worker's own disk (so they go when it goes).

use super::tasks::Worker;
use super::{Scheduler, TaskRef};
use mr_protocol::{MapTaskId, WorkerId, WorkerPlace};

/// How many idle maps (lowest first) a worker outside the job directory
/// looks through for one whose input it reads itself.
const LOOK_AHEAD: usize = 1024;

impl Scheduler {
    /// Records where `worker` stands: whether it sees the job directory,
    /// where it serves map outputs, which inputs it reads itself.
    pub fn announce(&mut self, worker: WorkerId, place: WorkerPlace) -> bool {
        let old = match self.workers.get_mut(&worker) {
            Some(w) if w.alive => w.place.replace(place.clone()),
            _ => return false,
        };
        self.count_readers(old.as_ref(), false);
        self.count_readers(Some(&place), true);
        true
    }

    /// Whether `w` can read every file of map `m`'s split itself.
    fn reads_locally(&self, w: &Worker, m: usize) -> bool {
        match &w.place {
            None => true,
            Some(p) => {
                p.shared
                    || self
                        .splits
                        .ranges(m)
                        .iter()
                        .all(|r| p.has_input(r.file as usize))
            }
        }
    }

    /// Maps whose outputs were lost with their worker since the last call
    /// (for the journal).
    pub fn take_lost_outputs(&mut self) -> Vec<MapTaskId> {
        std::mem::take(&mut self.lost_unjournaled)
    }

    /// The shuffle address of the worker holding map `m`'s accepted output
    /// on its own disk (None when it is in the job directory, or not done).
    pub fn output_holder(&self, m: MapTaskId) -> Option<String> {
        self.maps
            .get(m.0 as usize)
            .filter(|t| !t.in_job_dir)
            .and_then(|t| t.holder.as_deref().map(str::to_string))
    }

    /// An idle map for `worker`, by locality as in the paper: one whose
    /// input it reads itself, else one no other live worker reads itself
    /// (so those stay for the workers that can), else any. Only the first
    /// [`LOOK_AHEAD`] idle maps are looked at, so a decision costs the same
    /// with a million maps; "another worker reads it" counts readers per
    /// file (exact for a split of one file; a split packing several small
    /// files counts as read elsewhere when each of its files is).
    pub(super) fn pick_map(&self, worker: WorkerId) -> Option<u32> {
        let first = *self.idle[0].first()?;
        let Some(me) = self.workers.get(&worker) else {
            return Some(first);
        };
        let Some(place) = me.place.as_ref().filter(|p| !p.shared) else {
            // It reads every input: the lowest idle map is as local as any.
            return Some(first);
        };
        let window = || self.idle[0].iter().take(LOOK_AHEAD).map(|&i| i as usize);
        if place.local_inputs.iter().any(|&w| w != 0) {
            if let Some(i) = window().find(|&i| self.reads_locally(me, i)) {
                return Some(i as u32);
            }
        }
        // Some other live worker reads every input (every map is claimed),
        // or none reads any (none is).
        if self.all_readers > 0 || self.local_readers == 0 {
            return Some(first);
        }
        let read_elsewhere = |i: usize| {
            self.splits
                .ranges(i)
                .iter()
                .map(|r| r.file as usize)
                .all(|f| {
                    let mine = u32::from(place.has_input(f));
                    self.file_readers.get(f).is_some_and(|&n| n > mine)
                })
        };
        let unclaimed = window().find(|&i| !read_elsewhere(i));
        Some(unclaimed.map_or(first, |i| i as u32))
    }

    /// A lost worker's map outputs that lived only on its disk: those maps
    /// are no longer done (unless the job is). Returns them.
    pub(super) fn outputs_gone_with(&mut self, place: Option<&WorkerPlace>) -> Vec<TaskRef> {
        let held = place.filter(|p| !p.shared).and_then(|p| p.shuffle.clone());
        let mut gone = Vec::new();
        let Some(addr) = held.filter(|_| !self.is_done()) else {
            return gone;
        };
        // Entries of maps whose output later moved or was re-made elsewhere
        // are stale: the map's own record decides.
        let list = self.held_by.get_mut(addr.as_str()).map(std::mem::take);
        for i in list.unwrap_or_default() {
            let t = &mut self.maps[i as usize];
            if t.done.is_some() && !t.in_job_dir && t.holder.as_deref() == Some(addr.as_str()) {
                t.holder = None;
                let m = MapTaskId(i);
                self.lost_unjournaled.push(m);
                gone.push(TaskRef::Map(m));
                self.set_done(TaskRef::Map(m), None);
            }
        }
        gone
    }
}
