//! Figures about attempts and workers kept as the decisions happen, so the
//! report, the status page and a metrics scrape read them as they stand:
//! none of them walks every attempt or task of a million-task job to learn
//! how many started, how long the winners ran, or what each worker did.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Upper bounds, in seconds, of the buckets task run times are counted in
/// (the last bucket, past the final bound, takes the rest).
pub const DURATION_BOUNDS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Run times counted into [`DURATION_BOUNDS`]' buckets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DurationCounts {
    /// How many fell in each bucket (not cumulative); one more than the
    /// bounds, the last for those past every bound.
    pub buckets: Vec<u64>,
    /// Their sum, in seconds.
    pub sum_s: f64,
    /// How many there are.
    pub count: u64,
}

impl Default for DurationCounts {
    fn default() -> Self {
        DurationCounts {
            buckets: vec![0; DURATION_BOUNDS.len() + 1],
            sum_s: 0.0,
            count: 0,
        }
    }
}

impl DurationCounts {
    /// Counts one run time.
    pub fn observe(&mut self, took: Duration) {
        let s = took.as_secs_f64();
        let i = DURATION_BOUNDS.partition_point(|&b| b < s);
        if let Some(n) = self.buckets.get_mut(i) {
            *n += 1;
        }
        self.sum_s += s;
        self.count += 1;
    }
}

/// The job's attempts in figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AttemptTally {
    /// Map attempts started (backups and re-runs included).
    pub maps_started: u64,
    /// Reduce attempts started.
    pub reduces_started: u64,
    /// Attempts abandoned now: their worker was lost or another attempt
    /// won (one that later succeeds after all leaves this count).
    pub abandoned: u64,
    /// Run times of the maps' accepted attempts, assignment to report.
    pub map_seconds: DurationCounts,
    /// Run times of the reduces' accepted attempts.
    pub reduce_seconds: DurationCounts,
}

/// What one worker did, in figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerTally {
    /// Attempts it was given.
    pub given: u64,
    /// Tasks whose accepted attempt it ran (less those whose output was
    /// later lost).
    pub tasks_done: u64,
    /// Input bytes those attempts mapped.
    pub input_bytes: u64,
    /// Bytes those attempts read from the object store.
    pub object_bytes_read: u64,
}

impl WorkerTally {
    /// Credits (`gain`) or takes back the accepted attempt of one task whose
    /// counters, if known yet, are `c`.
    pub(super) fn credit(&mut self, gain: bool, c: Option<&mr_protocol::Counters>) {
        let (input, object) = c.map_or((0, 0), |c| (c.input_bytes, c.store_read_bytes));
        if gain {
            self.tasks_done += 1;
            self.input_bytes += input;
            self.object_bytes_read += object;
        } else {
            self.tasks_done = self.tasks_done.saturating_sub(1);
            self.input_bytes = self.input_bytes.saturating_sub(input);
            self.object_bytes_read = self.object_bytes_read.saturating_sub(object);
        }
    }

    /// Replaces the counters credited for one of its tasks: `old` out, `new` in.
    pub(super) fn recount(
        &mut self,
        old: Option<&mr_protocol::Counters>,
        new: &mr_protocol::Counters,
    ) {
        if let Some(o) = old {
            self.input_bytes = self.input_bytes.saturating_sub(o.input_bytes);
            self.object_bytes_read = self.object_bytes_read.saturating_sub(o.store_read_bytes);
        }
        self.input_bytes += new.input_bytes;
        self.object_bytes_read += new.store_read_bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_times_fall_in_the_bucket_of_their_first_bound_not_below_them() {
        let mut d = DurationCounts::default();
        d.observe(Duration::from_millis(50)); // exactly the first bound
        d.observe(Duration::from_millis(51));
        d.observe(Duration::from_secs(4000)); // past every bound
        assert_eq!(d.buckets[0], 1);
        assert_eq!(d.buckets[1], 1);
        assert_eq!(d.buckets[DURATION_BOUNDS.len()], 1);
        assert_eq!(d.buckets.iter().sum::<u64>(), 3);
        assert_eq!(d.count, 3);
        assert!((d.sum_s - 4000.101).abs() < 1e-9);
    }
}
