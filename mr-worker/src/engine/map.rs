//! The map engine: one map task from input split to intermediate run file.
//!
//! Each input range of the split becomes a record source (see
//! [`crate::source`]: mapped and aligned to whole lines, given whole, or
//! decompressed), whose chunks one thread per core pulls and maps into its
//! own accumulator:
//! a [`CountTable`] for apps whose values are counts (word count), else
//! per-partition [`PairBuffers`]. Memory stays within the task's budget: a
//! thread whose accumulator passes its share writes it out as a sorted,
//! combined spill run (the same checksummed format) and starts afresh, and
//! input pages are released as soon as their chunk is mapped. At the end the
//! accumulators (and spills, if any) become ONE run file, temp + rename.

use crate::engine::merge::{GroupError, Merger};
use crate::engine::records::map_chunk;
use crate::engine::runfile::{RunError, RunFile, RunWriter};
use crate::engine::split::Framing;
use crate::engine::table::{decimal, Accumulator, AppCounters, CountTable, PairBuffers};
use crate::source::{Chunk, RecordSource};
use mr_apps::{plugin::panic_message, App};
use mr_protocol::{BadRecord, FilePart, TaskFailure};
use rayon::prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The default memory budget of one map task's buffers.
pub const DEFAULT_MEMORY: usize = 128 << 20;

/// One map task's input and output.
#[derive(Clone, Debug)]
pub struct MapJob<'a> {
    /// Map task number (recorded in the run file header).
    pub map: u32,
    /// R, the number of partitions.
    pub reduces: u32,
    /// The byte ranges to map, in order (names are what the app's map sees).
    pub parts: &'a [FilePart],
    /// Bytes of parts already fetched into memory, by the part's index (a
    /// shorter slice, or None: the part is read from its path).
    pub fetched: &'a [Option<crate::source::Fetched>],
    /// Where the run file goes (written as `<out>.tmp`, then renamed; spills
    /// go beside it as `<out>.spill<k>` and are removed).
    pub out: &'a Path,
    /// Bytes the task's in-memory buffers may hold before spilling.
    pub memory: usize,
    /// Records not to map: each made an earlier attempt panic.
    pub skip: &'a [BadRecord],
    /// Looked at between chunks: set when the attempt is abandoned.
    pub cancel: crate::engine::cancel::Cancel,
}

/// What a map task did.
#[derive(Clone, Debug, Default)]
pub struct MapStats {
    /// Bytes of input mapped.
    pub input_bytes: u64,
    /// Records written after combining.
    pub records: u64,
    /// Size of the run file.
    pub bytes: u64,
    /// Spill runs written (0 when everything fit in memory).
    pub spills: u32,
    /// Records skipped as told by `skip`.
    pub skipped: u64,
    /// Records (lines, or files for whole-file apps) mapped.
    pub input_records: u64,
    /// Pairs the app emitted.
    pub emitted: u64,
    /// Bytes written to spill runs.
    pub spilled_bytes: u64,
    /// App-defined counters.
    pub app_counters: AppCounters,
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> TaskFailure {
    TaskFailure::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Runs combine code (`f`), turning a panic into the typed failure.
fn combine_call<T>(job: &MapJob<'_>, f: impl FnOnce() -> T) -> Result<T, TaskFailure> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| TaskFailure::AppPanic {
        message: panic_message(p.as_ref()),
        phase: mr_protocol::Phase::Combine,
        record: BadRecord::Combined(spill_input(job)),
    })
}

/// A task's chunks, from its inputs in order, pulled by the engine's
/// threads in turn (so a decompressing input decodes its next chunk while
/// other threads map the ones before it).
struct Feed {
    state: Mutex<FeedState>,
    /// The attempt's cancellation, looked at before each chunk.
    cancel: crate::engine::cancel::Cancel,
    /// Bytes of records handed out.
    bytes: AtomicU64,
}

struct FeedState {
    sources: Vec<Box<dyn RecordSource>>,
    current: usize,
}

impl Feed {
    fn new(sources: Vec<Box<dyn RecordSource>>, cancel: crate::engine::cancel::Cancel) -> Feed {
        Feed {
            cancel,
            state: Mutex::new(FeedState {
                sources,
                current: 0,
            }),
            bytes: AtomicU64::new(0),
        }
    }

    /// The next chunk and the number of its input; None when all are done.
    fn next(&self) -> Result<Option<(usize, Chunk)>, TaskFailure> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(stop) = self.cancel.check() {
            // Every thread stops at its next pull.
            st.current = st.sources.len();
            return Err(stop);
        }
        while st.current < st.sources.len() {
            let i = st.current;
            match st.sources[i].next_chunk() {
                Ok(Some(c)) => {
                    self.bytes
                        .fetch_add(c.data().len() as u64, Ordering::Relaxed);
                    return Ok(Some((i, c)));
                }
                Ok(None) => st.current += 1,
                Err(e) => {
                    // Every thread stops at its next pull.
                    st.current = st.sources.len();
                    return Err(e);
                }
            }
        }
        Ok(None)
    }

    /// Checks every input's bytes once all have been mapped (see
    /// [`RecordSource::verify`]).
    fn verify(&self) -> Result<(), TaskFailure> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.sources.iter().try_for_each(|s| s.verify())
    }
}

/// How often (in pairs) an accumulator is checked against its share
/// while a chunk is mapped.
const CHECK_EVERY: u32 = 4096;

/// The emitter a chunk is mapped into: the thread's accumulator, spilled
/// whenever it passes its share in the middle of the chunk. A spill's
/// failure is kept and reported after the chunk (the app's call cannot
/// return it).
struct Budgeted<'a, A> {
    acc: &'a mut A,
    share: usize,
    spill: &'a dyn Fn(&mut A) -> Result<(), TaskFailure>,
    since_check: u32,
    failed: Option<TaskFailure>,
}

impl<A: Accumulator> mr_apps::Emit for Budgeted<'_, A> {
    fn emit(&mut self, key: &[u8], value: &[u8]) {
        self.acc.emit(key, value);
        self.since_check += 1;
        if self.since_check >= CHECK_EVERY {
            self.since_check = 0;
            if self.failed.is_none() && self.acc.over(self.share) {
                if let Err(f) = (self.spill)(self.acc) {
                    self.failed = Some(f);
                }
            }
        }
    }

    fn count(&mut self, name: &str, delta: u64) {
        self.acc.count(name, delta);
    }
}

/// What a map task leaves behind.
#[derive(Clone, Copy, PartialEq, Debug)]
enum MapLeaves {
    /// One run file, `job.out`.
    OneRun,
    /// Its runs as they are once no more than [`MERGE_FAN_IN`]: for a
    /// caller that merges them anyway (a reduce over this task alone).
    SortedRuns,
}

/// Runs one map task.
pub fn run_map(app: &dyn App, job: &MapJob<'_>) -> Result<MapStats, TaskFailure> {
    run(app, job, MapLeaves::OneRun).map(|(stats, _)| stats)
}

/// Runs one map task whose output is read by one merge only (`mrsequential`'s
/// reduce): if it spilled, its spills are merged down to at most
/// [`MERGE_FAN_IN`] runs and those are left, saving the pass that would
/// merge them into one file for that merge to read again. Returns the run
/// files (`job.out` when nothing spilled); the caller removes them.
pub fn run_map_runs(
    app: &dyn App,
    job: &MapJob<'_>,
) -> Result<(MapStats, Vec<PathBuf>), TaskFailure> {
    run(app, job, MapLeaves::SortedRuns)
}

fn run(
    app: &dyn App,
    job: &MapJob<'_>,
    leave: MapLeaves,
) -> Result<(MapStats, Vec<PathBuf>), TaskFailure> {
    let threads = rayon::current_num_threads().max(1);
    let total: u64 = job.parts.iter().map(|p| p.end - p.start).sum();
    let target = (total as usize / (threads * 4)).clamp(256 << 10, 8 << 20);
    let sources = job
        .parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let fetched = job.fetched.get(i).and_then(Option::as_ref);
            crate::source::open(p, fetched, Framing::of(app), target)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let feed = Feed::new(sources, job.cancel.clone());
    // Integer counting keys partitions by the default hash; an app that
    // partitions itself gets pair buffers.
    let mapped = if app.sums_counts() && !app.has_partitioner() {
        map_into::<CountTable>(app, job, &feed, leave)
    } else {
        map_into::<PairBuffers>(app, job, &feed, leave)
    };
    // Checked whatever the outcome: an app that failed on the zeros of a
    // vanished page failed because the input shrank, and says so.
    if let Err(f) = feed.verify() {
        // Made of bytes that were not the input's: nothing of it may stay.
        let _ = std::fs::remove_file(job.out);
        for r in mapped.iter().flat_map(|(_, runs)| runs) {
            let _ = std::fs::remove_file(r);
        }
        return Err(f);
    }
    let (mut stats, runs) = mapped?;
    stats.input_bytes = feed.bytes.load(Ordering::Relaxed);
    Ok((stats, runs))
}

/// How a failure in combine names its input: the task's first file (combine
/// works on keys from all of the task's inputs).
fn spill_input(job: &MapJob<'_>) -> String {
    match job.parts {
        [] => format!("map task {}", job.map),
        [one] => one.name.clone(),
        [first, ..] => format!(
            "{} (and {} more inputs of map task {})",
            first.name,
            job.parts.len() - 1,
            job.map
        ),
    }
}

/// Spill runs of one task, named after its output.
struct Spills<'a> {
    out: &'a Path,
    map: u32,
    files: Mutex<Vec<PathBuf>>,
    /// Bytes written to spill runs so far.
    bytes: AtomicU64,
}

impl Spills<'_> {
    /// Writes `acc` as a new spill run and empties it.
    fn spill<A: Accumulator>(
        &self,
        app: &dyn App,
        job: &MapJob<'_>,
        acc: &mut A,
    ) -> Result<(), TaskFailure> {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        let path = self.out.with_extension(format!("spill{}", files.len()));
        files.push(path.clone());
        drop(files);
        let mut w =
            RunWriter::create(&path, self.map, job.reduces).map_err(|e| io_error(&path, e))?;
        combine_call(job, || acc.write_sorted(app, &mut w))?.map_err(|e| io_error(&path, e))?;
        let size = w.finish().map_err(|e| io_error(&path, e))?;
        self.bytes.fetch_add(size, Ordering::Relaxed);
        Ok(())
    }

    /// Leaves `kept` in place when the others are removed.
    fn keep(&self, kept: &[PathBuf]) {
        self.files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|f| !kept.contains(f));
    }

    fn remove_all(&self) {
        for f in self
            .files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// Per input part of `job`: the sorted offsets of the records to skip.
fn skip_offsets(job: &MapJob<'_>) -> Vec<Vec<u64>> {
    job.parts
        .iter()
        .map(|part| {
            let mut v: Vec<u64> = job
                .skip
                .iter()
                .filter_map(|r| match r {
                    BadRecord::Line { input: n, offset } if *n == part.name => Some(*offset),
                    _ => None,
                })
                .collect();
            v.sort_unstable();
            v
        })
        .collect()
}

/// Maps `job`'s input from `feed` on every thread, each into an
/// accumulator of type `A` over its share of the memory (spilled to runs
/// when full), then writes the map's output as `leave` says; returns the
/// figures and the runs it left (`job.out` alone when it wrote one).
fn map_into<A: Accumulator>(
    app: &dyn App,
    job: &MapJob<'_>,
    feed: &Feed,
    leave: MapLeaves,
) -> Result<(MapStats, Vec<PathBuf>), TaskFailure> {
    let threads = rayon::current_num_threads().max(1);
    let share = (job.memory / threads).max(64 << 10);
    let spills = Spills {
        out: job.out,
        map: job.map,
        files: Mutex::new(Vec::new()),
        bytes: AtomicU64::new(0),
    };
    let skipped = AtomicU64::new(0);
    let records = AtomicU64::new(0);
    let emitted = AtomicU64::new(0);
    let app_counters = Mutex::new(AppCounters::new());
    let collect = |acc: &mut A| {
        let mut total = app_counters.lock().unwrap_or_else(|e| e.into_inner());
        for (k, v) in acc.take_app_counters() {
            *total.entry(k).or_default() += v;
        }
    };
    let skips = skip_offsets(job);
    // Writes an accumulator over its share out as a spill run.
    let spill = |acc: &mut A| -> Result<(), TaskFailure> {
        emitted.fetch_add(acc.take_emitted(), Ordering::Relaxed);
        collect(acc);
        spills.spill(app, job, acc)
    };
    // One accumulator per thread (not per chunk or per rayon split), so the
    // memory held is at most `threads` shares.
    let worker = || -> Result<A, TaskFailure> {
        let mut acc = A::new(job.reduces);
        acc.limit(share);
        if app.has_partitioner() {
            acc.defer_partitioning();
        }
        while let Some((i, chunk)) = feed.next()? {
            let name = job.parts[i].name.as_str();
            let data = chunk.data();
            // Checked within a chunk too: one chunk of input can emit many
            // times its size (a streaming command printing a pair per
            // word), and a chunk of a large vocabulary brings enough new
            // keys to fill a count table.
            let mut within = Budgeted {
                acc: &mut acc,
                share,
                spill: &spill,
                since_check: 0,
                failed: None,
            };
            let n = map_chunk(app, name, data, chunk.base, &skips[i], &mut within);
            if let Some(f) = within.failed.take() {
                return Err(f);
            }
            let n = n?;
            if n > 0 {
                skipped.fetch_add(n, Ordering::Relaxed);
            }
            // Counted while the chunk is still in cache.
            let count = Framing::of(app).count(data);
            records.fetch_add(count.saturating_sub(n), Ordering::Relaxed);
            chunk.release();
            if acc.over(share) {
                spill(&mut acc)?;
            }
        }
        emitted.fetch_add(acc.take_emitted(), Ordering::Relaxed);
        collect(&mut acc);
        Ok(acc)
    };
    // Each of `threads` workers pulls chunks from the shared counter; if the
    // pool is busy, one thread simply runs several workers in turn.
    let results: Vec<Result<A, TaskFailure>> =
        (0..threads).into_par_iter().map(|_| worker()).collect();
    let tmp = job.out.with_extension("tmp");
    let result = finish(app, job, results, &spills, &tmp, leave);
    spills.remove_all();
    match result {
        Ok((mut stats, mut runs)) => {
            if runs.is_empty() {
                std::fs::rename(&tmp, job.out).map_err(|e| io_error(job.out, e))?;
                runs.push(job.out.to_path_buf());
            }
            stats.skipped = skipped.into_inner();
            stats.input_records = records.into_inner();
            stats.emitted = emitted.into_inner();
            stats.spilled_bytes = spills.bytes.load(Ordering::Relaxed);
            stats.app_counters = app_counters.into_inner().unwrap_or_else(|e| e.into_inner());
            Ok((stats, runs))
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Turns the threads' accumulators (and any spills) into the run file
/// `tmp`, or, when told to leave runs and there are spills, into at most
/// [`MERGE_FAN_IN`] runs (returned; empty when `tmp` was written).
fn finish<A: Accumulator>(
    app: &dyn App,
    job: &MapJob<'_>,
    results: Vec<Result<A, TaskFailure>>,
    spills: &Spills<'_>,
    tmp: &Path,
    leave: MapLeaves,
) -> Result<(MapStats, Vec<PathBuf>), TaskFailure> {
    let accs = results.into_iter().collect::<Result<Vec<A>, _>>()?;
    // Merging the threads' accumulators in memory must itself fit the budget.
    let held: usize = accs.iter().map(Accumulator::bytes).sum();
    let spilled = !spills
        .files
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_empty()
        || held > job.memory;
    let mut stats = MapStats::default();
    if !spilled {
        // Everything fit: one in-memory sort, no merge.
        let mut w = RunWriter::create(tmp, job.map, job.reduces).map_err(|e| io_error(tmp, e))?;
        stats.records = combine_call(job, || A::write_all_sorted(accs, app, &mut w))?
            .map_err(|e| io_error(tmp, e))?;
        stats.bytes = w.finish().map_err(|e| io_error(tmp, e))?;
        return Ok((stats, Vec::new()));
    }
    for mut a in accs {
        if a.bytes() > 0 {
            spills.spill(app, job, &mut a)?;
        }
    }
    let files = spills
        .files
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    stats.spills = files.len() as u32;
    let (files, mut rounds) = merge_down(app, job, files)?;
    if leave == MapLeaves::SortedRuns {
        // The caller owns them now: neither the spills' removal nor the
        // rounds' may take them.
        spills.keep(&files);
        rounds.0.clear();
        stats.bytes = files
            .iter()
            .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
            .sum();
        return Ok((stats, files));
    }
    let mut w = RunWriter::create(tmp, job.map, job.reduces).map_err(|e| io_error(tmp, e))?;
    stats.records = merge_runs(app, job, &files, &mut w)?;
    drop(rounds);
    stats.bytes = w.finish().map_err(|e| io_error(tmp, e))?;
    Ok((stats, Vec::new()))
}

/// Runs merged at once: more are merged in rounds, each round's groups
/// in parallel. A large task can spill a hundred times and more (10 GiB of
/// text with five million distinct words spilled 135 runs); one merge of
/// them all ran on one core with a deep tree, a round of groups of 16 runs
/// on every core with a shallow one.
const MERGE_FAN_IN: usize = 16;

/// Files removed when dropped: a merge round's outputs.
struct Removed(Vec<PathBuf>);

impl Drop for Removed {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// Merges runs in rounds, each round's groups of at most [`MERGE_FAN_IN`]
/// in parallel (combining each key's values across them: summing counts,
/// or the app's combine), until no more than that are left. Returns them,
/// and the last round's outputs among them as files removed when dropped.
fn merge_down(
    app: &dyn App,
    job: &MapJob<'_>,
    mut files: Vec<PathBuf>,
) -> Result<(Vec<PathBuf>, Removed), TaskFailure> {
    // The previous round's outputs, removed once merged (or on failure).
    let mut merged = Removed(Vec::new());
    let mut round = 0;
    while files.len() > MERGE_FAN_IN {
        let outputs: Vec<PathBuf> = (0..files.len().div_ceil(MERGE_FAN_IN))
            .map(|g| job.out.with_extension(format!("merge{round}-{g}")))
            .collect();
        // Listed before they are written, so a failed round leaves none.
        let this_round = Removed(outputs.clone());
        files
            .par_chunks(MERGE_FAN_IN)
            .zip(outputs.par_iter())
            .try_for_each(|(group, out)| {
                let mut gw =
                    RunWriter::create(out, job.map, job.reduces).map_err(|e| io_error(out, e))?;
                merge_runs(app, job, group, &mut gw)?;
                gw.finish().map_err(|e| io_error(out, e)).map(|_| ())
            })?;
        files = outputs;
        merged = this_round;
        round += 1;
    }
    Ok((files, merged))
}

/// K-way merges `files` partition by partition into `w`, combining each
/// key's values across them.
fn merge_runs(
    app: &dyn App,
    job: &MapJob<'_>,
    files: &[PathBuf],
    w: &mut RunWriter,
) -> Result<u64, TaskFailure> {
    let mut records = 0u64;
    let counts = app.sums_counts();
    let combine = app.has_combiner();
    for r in 0..job.reduces {
        let mut readers = Vec::with_capacity(files.len());
        for (i, f) in files.iter().enumerate() {
            let run = RunFile::open(f, Some(job.map), job.reduces).map_err(|e| io_error(f, e))?;
            readers.push((i, run.partition(r)));
        }
        let read_err = |(i, e): (usize, RunError)| io_error(&files[i], e);
        let mut merger = Merger::new(readers).map_err(read_err)?;
        let mut num = [0u8; 20];
        let merged = merger.for_each_group(|key, values| -> Result<(), TaskFailure> {
            let mut put_err = None;
            let mut put = |v: &[u8]| {
                records += 1;
                if let Err(e) = w.push(key, v) {
                    put_err.get_or_insert(e);
                }
            };
            if counts {
                // Runs hold the counts this task wrote; one that is not a
                // count, or a sum past 64 bits, fails the attempt naming
                // the key rather than being counted as zero or wrapping.
                let total = combine_call(job, || {
                    let mut total = 0u64;
                    while let Some(v) = values.next_value() {
                        let n = crate::engine::table::check_count(v);
                        total = total.checked_add(n).unwrap_or_else(|| {
                            panic!(
                                "the counts of key {:?} overflow 64 bits",
                                String::from_utf8_lossy(&key[..key.len().min(40)])
                            )
                        });
                    }
                    total
                })?;
                put(decimal(total, &mut num));
            } else if combine {
                combine_call(job, || app.combine(key, values, &mut put))?;
            } else {
                while let Some(v) = values.next_value() {
                    put(v);
                }
            }
            put_err.map_or(Ok(()), |e| Err(io_error(job.out, e)))
        });
        match merged {
            Ok(()) => {}
            Err(GroupError::Read(e)) => return Err(read_err(e)),
            Err(GroupError::Callback(f)) => return Err(f),
        }
        w.end_partition().map_err(|e| io_error(job.out, e))?;
    }
    Ok(records)
}
