//! Reduces over more map outputs than a process may hold open at once.
//!
//! A reduce merges one partition of every map's output, each an open file:
//! a job of 100,000 maps would have every reduce hold 100,000 descriptors,
//! past any process's limit (often 1,024; 20,000 on the machine this was
//! written on), and each attempt would fail "Too many open files". Past
//! [`fan_in`] inputs, groups of that many are first merged, in order, into
//! runs of the reduce's own beside the inputs, in rounds until few enough
//! are left; the reduce then merges those. The keys, and the order of each
//! key's values, are what one merge of every input gives: a tie goes to the
//! earlier input, and groups keep the inputs' order.

use crate::engine::merge::{GroupError, Merger};
use crate::engine::reduce::{ReduceInput, ReduceJob};
use crate::engine::runfile::{PartitionReader, RunError, RunFile, RunWriter};
use mr_protocol::{AttemptId, MapTaskId, TaskFailure};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The most inputs merged at once, whatever the descriptor limit: each
/// holds a block (64 KiB) in memory.
const MAX_FAN_IN: usize = 1024;

/// The fewest, however low the descriptor limit.
const MIN_FAN_IN: usize = 16;

/// Inputs a reduce merges at once: a quarter of this process's descriptor
/// limit (the rest is for the worker's connections, its other files and
/// a second attempt's), between [`MIN_FAN_IN`] and [`MAX_FAN_IN`].
pub(crate) fn fan_in() -> usize {
    static FAN_IN: OnceLock<usize> = OnceLock::new();
    *FAN_IN.get_or_init(|| {
        use nix::sys::resource::{getrlimit, Resource};
        let soft = getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft);
        usize::try_from(soft / 4)
            .unwrap_or(MAX_FAN_IN)
            .clamp(MIN_FAN_IN, MAX_FAN_IN)
    })
}

/// Where the records a reduce merges come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// A map's output (its accepted attempt): a bad one is the map's to redo.
    Map(MapTaskId, AttemptId),
    /// A run this reduce merged from a group of map outputs: a bad one is
    /// this attempt's own I/O.
    Merged,
}

impl From<&ReduceInput> for Source {
    fn from(input: &ReduceInput) -> Source {
        Source::Map(input.map, input.attempt)
    }
}

/// A bad map output is the map's problem (re-run it); other I/O is ours.
pub(crate) fn lost(source: Source, e: RunError) -> TaskFailure {
    match (source, e) {
        (Source::Map(map, attempt), e @ (RunError::Missing { .. } | RunError::Corrupt { .. })) => {
            TaskFailure::MapOutputLost {
                map,
                attempt,
                reason: e.to_string(),
            }
        }
        (_, RunError::Io { path, source }) => TaskFailure::Io {
            path: path.display().to_string(),
            reason: source.to_string(),
        },
        // A run of our own that is missing or damaged; and a writer's
        // refusal, which a reader never sees.
        (
            _,
            e @ (RunError::Missing { .. } | RunError::Corrupt { .. } | RunError::TooLarge { .. }),
        ) => {
            let path = match &e {
                RunError::Missing { path }
                | RunError::Corrupt { path, .. }
                | RunError::TooLarge { path, .. } => path.display().to_string(),
                RunError::Io { .. } => unreachable!("matched above"),
            };
            TaskFailure::Io {
                path,
                reason: e.to_string(),
            }
        }
    }
}

/// Files removed when dropped: the runs merged for one attempt.
#[derive(Default)]
pub(crate) struct Removed(Vec<PathBuf>);

impl Drop for Removed {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// A merge of partition `job.reduce` of every input: of the inputs
/// themselves when they are few enough, else of runs merged from groups of
/// them (removed when the returned [`Removed`] is dropped, so keep it until
/// the merge is done).
pub(crate) fn open_all(job: &ReduceJob<'_>) -> Result<(Merger<Source>, Removed), TaskFailure> {
    open_all_at(job, fan_in())
}

/// [`open_all`], merging at most `width` inputs at once.
fn open_all_at(
    job: &ReduceJob<'_>,
    width: usize,
) -> Result<(Merger<Source>, Removed), TaskFailure> {
    if job.inputs.len() <= width {
        let merger = Merger::new(open_inputs(job, &job.inputs)?).map_err(|(s, e)| lost(s, e))?;
        return Ok((merger, Removed::default()));
    }
    let dir = runs_dir(job);
    let stem = job
        .out
        .file_name()
        .map_or_else(|| "reduce".into(), |n| n.to_string_lossy().into_owned());
    let run_path = |round: usize, group: usize| dir.join(format!("{stem}.fan-in{round}-{group}"));
    // The first round reads the map outputs; later ones the runs before.
    let mut merged = Removed::default();
    let mut groups = job.inputs.len().div_ceil(width);
    for (g, group) in job.inputs.chunks(width).enumerate() {
        let out = run_path(0, g);
        merged.0.push(out.clone());
        merge_into(open_inputs(job, group)?, &out)?;
    }
    let mut round = 0;
    while groups > width {
        round += 1;
        let previous = std::mem::take(&mut merged);
        groups = previous.0.len().div_ceil(width);
        for (g, group) in previous.0.chunks(width).enumerate() {
            let out = run_path(round, g);
            merged.0.push(out.clone());
            merge_into(open_runs(group)?, &out)?;
        }
    }
    let merger = Merger::new(open_runs(&merged.0)?).map_err(|(s, e)| lost(s, e))?;
    Ok((merger, merged))
}

/// The directory for a reduce's merged runs: beside its first input (where
/// this worker keeps or fetched map outputs), else beside its output.
fn runs_dir(job: &ReduceJob<'_>) -> PathBuf {
    job.inputs
        .first()
        .and_then(|i| i.path.parent())
        .or_else(|| job.out.parent())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Readers of partition `job.reduce` of `inputs`.
fn open_inputs(
    job: &ReduceJob<'_>,
    inputs: &[ReduceInput],
) -> Result<Vec<(Source, PartitionReader)>, TaskFailure> {
    inputs
        .iter()
        .map(|i| {
            let reader = i
                .open(job.reduce, job.reduces)
                .map_err(|e| lost(i.into(), e))?;
            Ok((Source::from(i), reader))
        })
        .collect()
}

/// Readers of runs this reduce merged.
fn open_runs(runs: &[PathBuf]) -> Result<Vec<(Source, PartitionReader)>, TaskFailure> {
    runs.iter()
        .map(|p| {
            let run = RunFile::open(p, None, 1).map_err(|e| lost(Source::Merged, e))?;
            Ok((Source::Merged, run.partition(0)))
        })
        .collect()
}

/// Merges `readers` into a run of one partition at `out`, every record
/// kept (values are combined by the reduce, not here).
fn merge_into(readers: Vec<(Source, PartitionReader)>, out: &Path) -> Result<(), TaskFailure> {
    let write_err = |e: RunError| lost(Source::Merged, e);
    let mut merger = Merger::new(readers).map_err(|(s, e)| lost(s, e))?;
    let mut w = RunWriter::create(out, 0, 1).map_err(write_err)?;
    let merged = merger.for_each_group(|key, values| -> Result<(), RunError> {
        while let Some(v) = values.next_value() {
            w.push(key, v)?;
        }
        Ok(())
    });
    match merged {
        Ok(()) => {}
        Err(GroupError::Read((s, e))) => return Err(lost(s, e)),
        Err(GroupError::Callback(e)) => return Err(write_err(e)),
    }
    w.end_partition().map_err(write_err)?;
    w.finish().map_err(write_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `maps` run files of two partitions in `dir`: partition 0 of map `m`
    /// holds `k<m % 7>` and `same` (value `m<m>`), partition 1 `other`.
    fn runs(dir: &Path, maps: u32) -> Vec<ReduceInput> {
        (0..maps)
            .map(|m| {
                let path = dir.join(format!("mr-{m}"));
                let mut w = RunWriter::create(&path, m, 2).unwrap();
                let mut part0 = vec![(format!("k{}", m % 7), format!("v{m}"))];
                part0.push(("same".into(), format!("m{m}")));
                part0.sort();
                for (k, v) in &part0 {
                    w.push(k.as_bytes(), v.as_bytes()).unwrap();
                }
                w.end_partition().unwrap();
                w.push(b"other", b"x").unwrap();
                w.end_partition().unwrap();
                w.finish().unwrap();
                ReduceInput::run_file(MapTaskId(m), AttemptId(u64::from(m) + 100), path)
            })
            .collect()
    }

    fn job<'a>(inputs: Vec<ReduceInput>, out: &'a Path) -> ReduceJob<'a> {
        ReduceJob {
            reduce: 0,
            reduces: 2,
            inputs,
            out,
            upload_to: None,
            skip: &[],
            cancel: Default::default(),
            index: false,
            reuse: None,
        }
    }

    /// Every key of the merge, with its values in the order given.
    fn drain(mut merger: Merger<Source>) -> Vec<(String, Vec<String>)> {
        let mut got = Vec::new();
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
        merger
            .for_each_group(|key, values| -> Result<(), ()> {
                let mut vs = Vec::new();
                while let Some(v) = values.next_value() {
                    vs.push(text(v));
                }
                got.push((text(key), vs));
                Ok(())
            })
            .unwrap_or_else(|_| panic!("a run could not be read"));
        got
    }

    #[test]
    fn merging_in_rounds_gives_every_key_and_value_in_the_order_of_one_merge() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("mr-out-0.tmp");
        let j = job(runs(dir.path(), 50), &out);
        let (one, none) = open_all_at(&j, 1000).unwrap();
        assert!(none.0.is_empty());
        let want = drain(one);
        // 50 inputs, 4 at once: 13 runs, then 4, then the merge.
        let (rounds, merged) = open_all_at(&j, 4).unwrap();
        assert_eq!(merged.0.len(), 4);
        assert!(merged.0.iter().all(|p| p.exists()));
        let got = drain(rounds);
        assert_eq!(got, want);
        let same = &got.iter().find(|(k, _)| k == "same").unwrap().1;
        let in_map_order: Vec<String> = (0..50).map(|m| format!("m{m}")).collect();
        assert_eq!(same, &in_map_order);
        assert_eq!(got.iter().map(|(_, v)| v.len()).sum::<usize>(), 100);
        // Partition 1 is not read.
        assert!(got.iter().all(|(k, _)| k != "other"));
        // The runs go with the merge; the earlier rounds' went at once.
        drop(merged);
        let left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("fan-in"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_bad_map_output_in_a_group_is_that_maps_and_leaves_no_runs() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("mr-out-0.tmp");
        let inputs = runs(dir.path(), 30);
        // Map 21's output damaged, map 9's gone.
        let mut bytes = std::fs::read(&inputs[21].path).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 1;
        std::fs::write(&inputs[21].path, bytes).unwrap();
        let j = job(inputs.clone(), &out);
        let lost_map = |e: TaskFailure| match e {
            TaskFailure::MapOutputLost { map, attempt, .. } => (map, attempt),
            other => panic!("{other:?}"),
        };
        let err = open_all_at(&j, 4).err().unwrap();
        assert_eq!(lost_map(err), (MapTaskId(21), AttemptId(121)));
        std::fs::remove_file(&inputs[9].path).unwrap();
        let err = open_all_at(&j, 4).err().unwrap();
        assert_eq!(lost_map(err), (MapTaskId(9), AttemptId(109)));
        let runs_left = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains("fan-in")
            })
            .count();
        assert_eq!(runs_left, 0);
    }

    #[test]
    fn the_fan_in_is_a_quarter_of_the_descriptor_limit_within_bounds() {
        use nix::sys::resource::{getrlimit, Resource};
        let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        let want = (soft / 4).clamp(MIN_FAN_IN as u64, MAX_FAN_IN as u64) as usize;
        assert_eq!(fan_in(), want);
    }
}
