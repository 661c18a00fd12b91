//! A job's cache: what it takes from the cache instead of computing it,
//! and what it gives back (`mrcoordinator --cache`, `mrsequential --cache`).
//!
//! With a cache the inputs are planned by content ([`crate::plan`]):
//! each split's content address is the hash of everything that determines
//! its map's output (its files' names and bytes, the app's identity, R and
//! the run-file format). A reduce's address is made of the addresses of
//! its partition of every map's output ([`crate::partitions`]), known
//! for a cached map from its entry and for a map that ran once its output
//! is kept; so reduces are looked up when every map's is known: before the
//! job starts if every map is cached, else when the maps are done (the
//! scheduler holds reduces back until then). Reduce outputs found are
//! committed as `mr-out-<r>`; map outputs found are placed in the job
//! directory as accepted outputs of a reserved attempt; both count as done,
//! as a journal's progress does. As tasks finish, their outputs go into the
//! cache (map outputs only when a worker wrote them to the shared job
//! directory). A reduce output is checked against its SHA-256 when taken,
//! a map output by the block checksums every reader checks, so a damaged
//! entry is recomputed, never used.
//!
//! A reduce whose address is not in the cache may still find an earlier
//! output of its partition, from a job like this one (same app, R and input
//! directories: the lineage entry names the last kept), whose inputs
//! differ in a few maps: it is then handed out with the pieces of that
//! output to copy and the key ranges to reduce again ([`crate::reuse`]).
//!
//! This module orchestrates; [`meta`] is what entries say besides their
//! data, [`lineage`] how a reduce finds its earlier output, and
//! [`crate::identity`] what the app's identity is made of.

use crate::partitions::{partition_index, reduce_key};
use crate::{Cache, Key, Kind};
use mr_protocol::plan::{InputFile, SplitPlan};
use mr_protocol::{
    names, AttemptId, Counters, Finished, MapTaskId, OutputIndex, PlannedApp, ReduceReuse,
    ReduceTaskId,
};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tracing::{debug, info, warn};

mod lineage;
mod meta;

use meta::{decode, index_holds, MapParts, ReduceMeta};

/// Bumped with any change to what a map's or reduce's output is made of
/// that the app's identity does not cover (the run-file format, the
/// partitioner's framing, how a reduce's address is made).
const OUTPUTS_VERSION: &[u8] = b"outputs-3 run-file MRRUN 1 segments 512 64";

/// Why a job cannot keep a cache.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The cache directory cannot be used.
    #[error(transparent)]
    Cache(#[from] crate::CacheError),
    /// An input cannot be read.
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    /// The app's code cannot be identified.
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
}

/// The app and settings that shape a job's outputs.
pub struct AppSpec<'a> {
    /// `--app` (a built-in name or a plugin path), or a streaming job's name.
    pub app: &'a str,
    /// A streaming job's map and reduce commands.
    pub streaming: Option<&'a (String, String)>,
    /// R.
    pub reduces: u32,
    /// The target split size.
    pub split_size: u64,
    /// `--cache-key-file`: files whose contents are part of every key.
    pub key_files: &'a [PathBuf],
    /// The size of fixed-length input records (`--record-size`, or the
    /// app's own); None when records are lines.
    pub record_size: Option<u32>,
    /// Everything else the job decided that its outputs depend on, in an
    /// unambiguous encoding: its parameters (`--conf`), a total order's
    /// split points. Part of every key.
    pub params: &'a [u8],
}

/// A job's cache and the content addresses of its tasks.
pub struct JobCache {
    cache: Cache,
    /// The app's identity (see [`crate::identity`]).
    identity: Vec<u8>,
    /// R.
    reduces: u32,
    maps: Vec<Key>,
    /// Input bytes of each map's split (for the summary).
    map_bytes: Vec<u64>,
    /// `--cache-max`: evict down to this after the job.
    max: Option<u64>,
    /// What names this job's lineage entries (with the reduce's number):
    /// the app, R and the inputs' directories.
    lineage: Key,
    /// What is learned as the job runs (puts run on blocking threads).
    known: Mutex<KnownAddresses>,
    /// Each input's [`crate::plan::stamp`] when planned (None: an object,
    /// whose reads are pinned to its planned ETag instead).
    stamps: Vec<Option<Key>>,
    /// Per map, the inputs it reads.
    map_files: Vec<Vec<u32>>,
    /// The inputs themselves, to stamp them again.
    files: Vec<InputFile>,
}

/// Addresses learned from the cache or from outputs as they are kept.
struct KnownAddresses {
    /// Per map, its output's partitions' addresses and segments (None for
    /// an empty partition), once known.
    parts: Vec<Option<Arc<MapParts>>>,
    /// Per reduce, its address, once every map's partitions are known.
    reduces: Vec<Option<Key>>,
}

/// What was taken from the cache.
#[derive(Debug, Default)]
pub struct Reused {
    /// Maps done by a cached output, under the attempt reserved for it.
    pub maps: Vec<Finished<MapTaskId>>,
    /// Outputs committed from the cache, likewise.
    pub reduces: Vec<Finished<ReduceTaskId>>,
    /// Input bytes whose maps did not run.
    pub input_bytes: u64,
    /// Reduces that may copy pieces of an earlier output, and which.
    pub reusing_earlier: Vec<(ReduceTaskId, Arc<ReduceReuse>)>,
}

impl JobCache {
    /// Opens the cache in `dir`, plans the inputs by content and works out
    /// every map's address. Blocking (reads the inputs not seen before).
    pub fn plan(
        dir: &Path,
        max: Option<u64>,
        files: &[InputFile],
        spec: &AppSpec<'_>,
    ) -> Result<(JobCache, SplitPlan, PlannedApp), SetupError> {
        let started = std::time::Instant::now();
        let cache = Cache::open(dir)?;
        let app = crate::identity::app_identity(spec.app, spec.streaming, spec.key_files)?;
        debug!(app = %app.name, build = mr_build::short(), files = ?app.files, "the cache keys cover this code");
        let (mut identity, name, whole_file) = (app.bytes, app.name, app.whole_file);
        let cut = match (whole_file, spec.record_size) {
            (true, _) => crate::chunk::Cut::Never,
            (false, Some(n)) => crate::chunk::Cut::Records(u64::from(n)),
            (false, None) => crate::chunk::Cut::Lines,
        };
        identity.extend_from_slice(b"\0records\0");
        identity.extend_from_slice(&cut.tag());
        identity.extend_from_slice(b"\0params\0");
        identity.extend_from_slice(&(spec.params.len() as u64).to_le_bytes());
        identity.extend_from_slice(spec.params);
        // Each local input's stamp before it is read and after: a write
        // in between would key outputs by bytes no map reads.
        let stamps: Vec<Option<Key>> = files.par_iter().map(crate::plan::stamp).collect();
        let pieces = cache
            .with_io_width(|| crate::plan::all_pieces(files, spec.split_size, cut, Some(&cache)))?;
        for (f, before) in files.iter().zip(&stamps) {
            if *before != crate::plan::stamp(f) {
                return Err(crate::plan::PlanError {
                    path: f.name.clone(),
                    reason: "it changed while the job was being planned; run the job again once it is written".into(),
                }
                .into());
            }
        }
        let (plan, split_keys) = crate::plan::plan(files, &pieces, spec.split_size);
        debug!(files = files.len(), splits = plan.len(), took = ?started.elapsed(), "planned by content");
        let r = spec.reduces.to_le_bytes();
        let maps: Vec<Key> = split_keys
            .iter()
            .map(|k| Key::of(&[b"map", OUTPUTS_VERSION, &identity, &r, &k.0]))
            .collect();
        let map_bytes = (0..plan.len())
            .map(|i| plan.ranges(i).iter().map(|p| p.end - p.start).sum())
            .collect();
        let known = KnownAddresses {
            parts: vec![None; maps.len()],
            reduces: vec![None; spec.reduces as usize],
        };
        // Jobs over the same directories are one lineage: a file edited or
        // added there still finds the outputs of the runs before.
        let mut dirs: Vec<std::borrow::Cow<'_, str>> = files
            .iter()
            .map(|f| f.path.parent().unwrap_or(Path::new("")).to_string_lossy())
            .collect();
        dirs.sort_unstable();
        dirs.dedup();
        let dirs = dirs.join("\0");
        let lineage = Key::of(&[b"lineage", OUTPUTS_VERSION, &identity, &r, dirs.as_bytes()]);
        // Per map, the files it reads (their numbers among the inputs).
        let map_files = (0..plan.len())
            .map(|i| {
                let mut f: Vec<u32> = plan.ranges(i).iter().map(|p| p.file).collect();
                f.dedup();
                f
            })
            .collect();
        let job = JobCache {
            files: files.to_vec(),
            stamps,
            map_files,
            cache,
            identity,
            reduces: spec.reduces,
            maps,
            map_bytes,
            max,
            lineage,
            known: Mutex::new(known),
        };
        Ok((job, plan, PlannedApp { name, whole_file }))
    }

    fn known(&self) -> std::sync::MutexGuard<'_, KnownAddresses> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes what the cache holds for the tasks not already done, before
    /// the job starts: `done` maps (from a journal) with their outputs'
    /// paths in the job directory (None: on a worker's disk), `reduces_done`
    /// likewise. Reduce outputs are committed into `output_dir` (None:
    /// outputs go to an object store, not cached) if every map's address
    /// is known by now; for the reduces left, cached map outputs are placed
    /// in `job_dir`. Blocking.
    pub fn take(
        &self,
        job_dir: &Path,
        output_dir: Option<&Path>,
        done: &[(MapTaskId, Option<PathBuf>)],
        reduces_done: &dyn Fn(ReduceTaskId) -> bool,
    ) -> Reused {
        let started = std::time::Instant::now();
        let mut got = Reused::default();
        // What the cache says of each map: its counters and partitions.
        let mut cached = Vec::new();
        let done_maps: std::collections::HashSet<MapTaskId> =
            done.iter().map(|(m, _)| *m).collect();
        // Read in parallel: from an object store each is a request.
        let metas: Vec<Option<(Counters, MapParts)>> = self.cache.with_io_width(|| {
            self.maps
                .par_iter()
                .enumerate()
                .map(|(m, key)| {
                    if done_maps.contains(&MapTaskId(m as u32)) {
                        return None;
                    }
                    MapParts::decode(&self.cache.meta(Kind::Map, key)?, self.reduces)
                })
                .collect()
        });
        for (m, meta) in metas.into_iter().enumerate() {
            let Some((counters, parts)) = meta else {
                continue;
            };
            self.known().parts[m] = Some(Arc::new(parts));
            cached.push((MapTaskId(m as u32), counters));
        }
        self.learn(done);
        let left: Vec<ReduceTaskId> = (0..self.reduces)
            .map(ReduceTaskId)
            .filter(|&r| !reduces_done(r))
            .collect();
        let reduces = self.take_reduces(job_dir, output_dir, &left);
        (got.reduces, got.reusing_earlier) = (reduces.committed, reduces.reusing_earlier);
        debug!(took = ?started.elapsed(), "looked the maps and reduces up");
        let running = left.len() - got.reduces.len();
        // Every output came from the cache: no reduce reads a map's, which
        // is then done without being placed anywhere. Otherwise each is
        // linked and checked (a CRC32C of its bytes), on every core.
        let placed: Vec<bool> = self.cache.with_io_width(|| {
            cached
                .par_iter()
                .map(|(task, _)| {
                    let m = task.0 as usize;
                    running == 0 || {
                        let dest = job_dir.join(names::map_output(*task, reserved(m)));
                        self.cache.take(Kind::Map, &self.maps[m], &dest).is_some()
                    }
                })
                .collect()
        });
        for ((task, counters), placed) in cached.into_iter().zip(placed) {
            let m = task.0 as usize;
            if placed {
                got.maps.push(Finished {
                    task,
                    attempt: reserved(m),
                    counters,
                });
                got.input_bytes += self.map_bytes[m];
            } else {
                self.known().parts[m] = None;
            }
        }
        debug!(took = ?started.elapsed(), "took the cached outputs");
        if !got.maps.is_empty() || !got.reduces.is_empty() {
            info!(
                maps = got.maps.len(),
                reduces = got.reduces.len(),
                input_bytes = got.input_bytes,
                "reusing results from the cache"
            );
        }
        got
    }

    /// Learns the partitions of the outputs in `outputs` (map, path in the
    /// job directory) whose partitions are not known yet. Blocking.
    fn learn(&self, outputs: &[(MapTaskId, Option<PathBuf>)]) {
        for (m, path) in outputs {
            if self.known().parts[m.0 as usize].is_some() {
                continue;
            }
            let Some(path) = path else { continue };
            match partition_index(path, self.reduces) {
                Ok(parts) => {
                    self.known().parts[m.0 as usize] = Some(Arc::new(MapParts::indexed(parts)))
                }
                Err(e) => warn!(map = %m, "cannot address the output's partitions: {e}"),
            }
        }
    }

    /// The maps whose outputs' partitions are not known (yet).
    pub fn unknown_maps(&self) -> Vec<MapTaskId> {
        let known = self.known();
        (0..self.maps.len() as u32)
            .map(MapTaskId)
            .filter(|m| known.parts[m.0 as usize].is_none())
            .collect()
    }

    /// Once every map is done: learns the partitions of `outputs` (those
    /// not known yet, see [`JobCache::unknown_maps`]), works out the
    /// reduces' addresses, and commits into `output_dir` the outputs the
    /// cache holds of the reduces in `left`. Returns those committed, and
    /// the reduces that may copy pieces of an earlier output (placed in
    /// `job_dir`). Blocking.
    pub fn reduces_at_map_end(
        &self,
        outputs: &[(MapTaskId, Option<PathBuf>)],
        job_dir: &Path,
        output_dir: Option<&Path>,
        left: &[ReduceTaskId],
    ) -> TakenReduces {
        self.learn(outputs);
        let got = self.take_reduces(job_dir, output_dir, left);
        if !got.committed.is_empty() || !got.reusing_earlier.is_empty() {
            info!(
                reduces = got.committed.len(),
                reusing_earlier = got.reusing_earlier.len(),
                "reusing outputs from the cache"
            );
        }
        got
    }

    /// If every map's partitions are known: the reduces' addresses, the
    /// outputs the cache holds of those in `left` committed into
    /// `output_dir`, and for the others found in an earlier form, the
    /// pieces to copy (that output placed in `job_dir`).
    fn take_reduces(
        &self,
        job_dir: &Path,
        output_dir: Option<&Path>,
        left: &[ReduceTaskId],
    ) -> TakenReduces {
        let (keys, parts) = {
            let mut known = self.known();
            let Some(parts) = known.parts.iter().cloned().collect::<Option<Vec<_>>>() else {
                return Default::default();
            };
            let r_count = self.reduces.to_le_bytes();
            let base: [&[u8]; 3] = [OUTPUTS_VERSION, &self.identity, &r_count];
            let keys: Vec<Key> = (0..self.reduces)
                .map(|r| {
                    let inputs = parts.iter().map(|p| p.keys[r as usize].as_ref());
                    reduce_key(&base, r, inputs)
                })
                .collect();
            known.reduces = keys.iter().copied().map(Some).collect();
            (keys, parts)
        };
        let Some(dir) = output_dir else {
            return Default::default();
        };
        // In parallel: from an object store each is a download.
        let found: Vec<CachedReduce> = self.cache.with_io_width(|| {
            left.par_iter()
                .map(|&task| {
                    let key = &keys[task.0 as usize];
                    let tmp = dir.join(format!(".{}.cached.tmp", names::output(task)));
                    let Some(meta) = self.cache.take(Kind::Reduce, key, &tmp) else {
                        return match self.earlier_output(task, &parts, job_dir) {
                            Some(reuse) => CachedReduce::Earlier(reuse),
                            None => CachedReduce::Absent,
                        };
                    };
                    let Some(meta) = decode::<ReduceMeta>(&meta) else {
                        let _ = std::fs::remove_file(&tmp);
                        return CachedReduce::Absent;
                    };
                    // Committed as a reduce commits: rename into place.
                    match std::fs::rename(&tmp, dir.join(names::output(task))) {
                        Ok(()) => CachedReduce::Committed(Finished {
                            task,
                            attempt: reserved(task.0 as usize),
                            counters: meta.counters,
                        }),
                        Err(e) => {
                            warn!(reduce = %task, "cannot commit the cached output: {e}; the reduce runs");
                            let _ = std::fs::remove_file(&tmp);
                            CachedReduce::Absent
                        }
                    }
                })
                .collect()
        });
        let mut got = TakenReduces::default();
        for (found, &task) in found.into_iter().zip(left) {
            match found {
                CachedReduce::Committed(t) => got.committed.push(t),
                CachedReduce::Earlier(reuse) => got.reusing_earlier.push((task, reuse)),
                CachedReduce::Absent => {}
            }
        }
        got
    }

    /// Keeps map `m`'s accepted output (the run file at `path`), with its
    /// partitions' addresses. Blocking.
    pub fn put_map(&self, m: MapTaskId, path: &Path, counters: &Counters) {
        let started = std::time::Instant::now();
        // The map read its files after they were planned: if one was
        // written since, its output is of other bytes than its address
        // names. Not kept (nor its partitions known, so no reduce is kept
        // under an address made from it).
        let files = self.map_files.get(m.0 as usize).map_or(&[][..], |f| &f[..]);
        for &f in files {
            let (file, planned) = (&self.files[f as usize], &self.stamps[f as usize]);
            if planned.is_some() && crate::plan::stamp(file) != *planned {
                warn!(map = %m, input = %file.name, "not cached: the input changed after it was planned");
                return;
            }
        }
        let parts = match partition_index(path, self.reduces) {
            Ok(p) => p,
            Err(e) => {
                warn!(map = %m, "not cached: cannot address the output's partitions: {e}");
                return;
            }
        };
        let (parts, meta) = MapParts::encode(counters, parts);
        self.known().parts[m.0 as usize] = Some(Arc::new(parts));
        let indexed = started.elapsed();
        self.put(Kind::Map, &self.maps[m.0 as usize], path, &meta);
        debug!(map = %m, ?indexed, took = ?started.elapsed(), "kept a map output");
    }

    /// Keeps reduce `r`'s committed output (at `path`) with its index (if
    /// its attempt gave one), if its address is known (every map's
    /// partitions were), and names it the last of its lineage. Blocking.
    pub fn put_reduce(
        &self,
        r: ReduceTaskId,
        path: &Path,
        counters: &Counters,
        index: Option<OutputIndex>,
    ) {
        let (key, inputs) = {
            let known = self.known();
            let Some(key) = known.reduces[r.0 as usize] else {
                return;
            };
            // Every map's partitions are known once the address is.
            let mut inputs = Vec::new();
            for (parts, map) in known.parts.iter().zip(&self.maps) {
                if let Some(key) = parts.as_ref().and_then(|p| p.keys[r.0 as usize]) {
                    inputs.push((key, *map));
                }
            }
            (key, inputs)
        };
        let len = match std::fs::metadata(path) {
            Ok(m) => m.len(),
            Err(e) => {
                warn!(reduce = %r, "not cached: {}: {e}", path.display());
                return;
            }
        };
        // The index is the worker's word: kept only if the output bears it
        // out, since a later run copies byte ranges by it.
        let starts = index.map(|i| i.starts).filter(|starts| {
            let holds = index_holds(path, len, starts);
            if !holds {
                warn!(reduce = %r, "the output's reported segment index does not match it; kept without one");
            }
            holds
        });
        let meta = ReduceMeta {
            counters: counters.clone(),
            starts,
            len,
            inputs,
        };
        let meta = bincode::serialize(&meta).unwrap_or_default();
        self.put(Kind::Reduce, &key, path, &meta);
        if let Err(e) = self
            .cache
            .put_bytes(Kind::Lineage, &self.lineage_of(r), &key.0)
        {
            warn!("{e}");
        }
    }

    fn put(&self, kind: Kind, key: &Key, path: &Path, meta: &[u8]) {
        if let Err(e) = self.cache.put(kind, key, path, meta) {
            // A cache that cannot take it only costs a later run the task.
            warn!("{e}");
        }
    }

    /// Evicts down to `--cache-max`, if given. Blocking.
    pub fn evict(&self) {
        if let Some(max) = self.max {
            let freed = self.cache.evict(max);
            if freed > 0 {
                info!(freed, max, "evicted least recently used cache entries");
            }
        }
    }
}

fn reserved(task: usize) -> AttemptId {
    AttemptId::cached(task as u32)
}

/// What the cache gave for one reduce.
enum CachedReduce {
    /// Its output, committed into the output directory.
    Committed(Finished<ReduceTaskId>),
    /// An earlier output of its lineage, whose pieces that still hold may
    /// be copied.
    Earlier(Arc<ReduceReuse>),
    /// Nothing: the reduce runs.
    Absent,
}

/// What the cache gave the reduces looked up.
#[derive(Debug, Default)]
pub struct TakenReduces {
    /// Those whose outputs were committed from the cache.
    pub committed: Vec<Finished<ReduceTaskId>>,
    /// Those that may copy pieces of an earlier output, and which.
    pub reusing_earlier: Vec<(ReduceTaskId, Arc<ReduceReuse>)>,
}
