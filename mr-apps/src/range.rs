//! An app as one job runs it: records of the size the job chose
//! (`--record-size`), and partitions by key ranges when the job is in
//! total order, from split points chosen over a sample of the job's keys
//! (as TeraSort's partition file).
//!
//! With R reduces there are at most R-1 split points, sorted and distinct;
//! a key goes to the number of points at or below it, so every key of
//! partition r sorts before every key of partition r+1, and the outputs,
//! each sorted by its reduce's merge, concatenate in number order into
//! sorted data.

use crate::{App, AppRef, Conf, ConfError, Emit, Values};
use std::sync::Arc;

/// An app with the job's record size and range partitions applied.
pub struct JobApp {
    app: AppRef,
    record_size: Option<u32>,
    points: Option<Arc<[Vec<u8>]>>,
}

impl JobApp {
    /// `app` (configured) reading records of `record_size` bytes (None:
    /// as the app says) and, with `points` (sorted and distinct),
    /// partitioning by the key ranges they start; `app` itself when the
    /// job changes neither.
    pub fn wrap(app: AppRef, record_size: Option<u32>, points: Option<Arc<[Vec<u8>]>>) -> AppRef {
        if record_size.is_none() && points.is_none() {
            return app;
        }
        debug_assert!(points.iter().all(|p| p.windows(2).all(|w| w[0] < w[1])));
        Arc::new(JobApp {
            app,
            record_size,
            points,
        })
    }
}

/// The R-1 split points (at most) that cut `sample`, a sample of the job's
/// keys, into `reduces` ranges of nearly equal counts: the keys at ranks
/// n/R, 2n/R, ... of the sorted sample, each kept only when greater than
/// the one before (a key too common for one range fills its range, and the
/// ranges after it start later).
pub fn split_points(mut sample: Vec<Vec<u8>>, reduces: u32) -> Vec<Vec<u8>> {
    sample.sort_unstable();
    let (n, r) = (sample.len(), reduces.max(1) as usize);
    let mut points: Vec<Vec<u8>> = Vec::with_capacity(r.saturating_sub(1));
    if n == 0 {
        return points;
    }
    for i in 1..r {
        let key = &sample[(i * n / r).min(n - 1)];
        if points.last().is_none_or(|p| p < key) {
            points.push(key.clone());
        }
    }
    points
}

impl App for JobApp {
    fn name(&self) -> &str {
        self.app.name()
    }
    fn configure(&mut self, _conf: &Conf) -> Result<(), ConfError> {
        // Wrapped only once configured: the app inside has its parameters.
        Ok(())
    }
    fn whole_file(&self) -> bool {
        self.app.whole_file()
    }
    fn record_size(&self) -> Option<u32> {
        self.record_size.or(self.app.record_size())
    }
    fn values_only(&self) -> bool {
        self.app.values_only()
    }
    fn total_order(&self) -> bool {
        self.points.is_some() || self.app.total_order()
    }
    fn map(&self, filename: &str, chunk: &[u8], emit: &mut dyn Emit) {
        self.app.map(filename, chunk, emit)
    }
    fn has_combiner(&self) -> bool {
        self.app.has_combiner()
    }
    fn combine(&self, key: &[u8], values: &mut dyn Values, out: &mut dyn FnMut(&[u8])) {
        self.app.combine(key, values, out)
    }
    fn sums_counts(&self) -> bool {
        self.app.sums_counts()
    }
    fn has_partitioner(&self) -> bool {
        self.points.is_some() || self.app.has_partitioner()
    }
    fn partition(&self, key: &[u8], reduces: u32) -> u32 {
        match &self.points {
            Some(points) => points.partition_point(|p| p.as_slice() <= key) as u32,
            None => self.app.partition(key, reduces),
        }
    }
    fn reduce_command(&self) -> Option<&str> {
        self.app.reduce_command()
    }
    fn reduce(&self, key: &[u8], values: &mut dyn Values, out: &mut Vec<u8>) {
        self.app.reduce(key, values, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn points_cut_a_sample_into_equal_ranges() {
        let sample: Vec<Vec<u8>> = (0..100u8).rev().map(|i| vec![i]).collect();
        assert_eq!(
            split_points(sample.clone(), 4),
            vec![vec![25], vec![50], vec![75]]
        );
        assert_eq!(split_points(sample, 1), Vec::<Vec<u8>>::new());
        assert!(split_points(Vec::new(), 5).is_empty());
    }

    #[test]
    fn a_common_key_is_one_point_not_several() {
        let mut sample = keys(&["a", "b"]);
        sample.extend(keys(&["m"; 20]));
        sample.extend(keys(&["y", "z"]));
        assert_eq!(split_points(sample, 4), keys(&["m"]));
    }

    #[test]
    fn keys_go_to_the_range_they_fall_in() {
        let app = crate::load("wc").unwrap();
        let wc: AppRef = Arc::from(app);
        let ranged = JobApp::wrap(wc.clone(), None, Some(keys(&["b", "d"]).into()));
        let p = |k: &str| ranged.partition(k.as_bytes(), 3);
        assert_eq!(
            [p(""), p("a"), p("b"), p("c"), p("d"), p("zz")],
            [0, 0, 1, 1, 2, 2]
        );
        assert!(ranged.has_partitioner() && ranged.total_order());
        assert_eq!(ranged.record_size(), None);
        let sized = JobApp::wrap(wc.clone(), Some(7), None);
        assert_eq!(sized.record_size(), Some(7));
        assert!(!sized.has_partitioner() && !sized.total_order());
        assert!(Arc::ptr_eq(&JobApp::wrap(wc.clone(), None, None), &wc));
    }
}
