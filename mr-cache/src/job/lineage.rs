//! A reduce's lineage: the last output kept of the same reduce of a job
//! like this one (same app, R, partition and input directories), from
//! which a reduce not in the cache copies the pieces that still hold
//! ([`crate::reuse`]).

use super::meta::{decode, MapParts, Part, ReduceMeta};
use super::JobCache;
use crate::partitions::PartitionIndex;
use crate::reuse::MapPartition;
use crate::{Key, Kind};
use mr_protocol::{names, ReduceReuse, ReduceTaskId};
use rayon::prelude::*;
use std::path::Path;
use std::sync::Arc;
use tracing::debug;

impl JobCache {
    /// For reduce `task`, not in the cache: the pieces of the last output
    /// of its lineage that still hold, that output placed in `job_dir`.
    pub(super) fn earlier_output(
        &self,
        task: ReduceTaskId,
        parts: &[Arc<MapParts>],
        job_dir: &Path,
    ) -> Option<Arc<ReduceReuse>> {
        let r = task.0 as usize;
        let last = self
            .cache
            .take_bytes(Kind::Lineage, &self.lineage_of(task))?;
        let last = Key(last.try_into().ok()?);
        let meta: ReduceMeta = decode(&self.cache.meta(Kind::Reduce, &last)?)?;
        let starts = meta.starts.as_ref()?;
        let inputs: Vec<Key> = meta.inputs.iter().map(|(part, _)| *part).collect();
        let earlier = crate::reuse::Earlier {
            starts,
            len: meta.len,
            inputs: &inputs,
        };
        // Every map's blocks, parsed in parallel, once for every reduce
        // (the first to get here parses, the others wait for it).
        let started = std::time::Instant::now();
        parts.par_iter().for_each(|p| {
            p.blocks();
        });
        debug!(reduce = %task, took = ?started.elapsed(), "the map outputs' blocks");
        let new: Vec<Option<Part<'_>>> = parts.iter().map(|p| p.partition(r)).collect();
        let new: Vec<Option<&dyn MapPartition>> = new
            .iter()
            .map(|p| p.as_ref().map(|p| p as &dyn MapPartition))
            .collect();
        // An old map's index, read back from its entry.
        let old_index = |i: usize| -> Option<PartitionIndex> {
            let (part, map) = meta.inputs.get(i)?;
            let (_, old) = MapParts::decode(&self.cache.meta(Kind::Map, map)?, self.reduces)?;
            let segments = old.segments()?.get(r)?.clone()?;
            let blocks = Vec::new();
            (old.keys[r] == Some(*part)).then_some(PartitionIndex {
                key: *part,
                segments,
                blocks,
            })
        };
        let pieces = crate::reuse::plan(&earlier, &new, &old_index)?;
        let previous = names::previous_output(task);
        self.cache
            .take(Kind::Reduce, &last, &job_dir.join(&previous))?;
        debug!(reduce = %task, pieces = pieces.len(), "an earlier output to copy from");
        Some(Arc::new(ReduceReuse { previous, pieces }))
    }

    /// The lineage entry's address for reduce `task`.
    pub(super) fn lineage_of(&self, task: ReduceTaskId) -> Key {
        Key::of(&[&self.lineage.0, &task.0.to_le_bytes()])
    }
}
