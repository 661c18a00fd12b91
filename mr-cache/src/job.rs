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

use crate::partitions::{partition_index, reduce_key, MapSegment, PartitionIndex};
use crate::reuse::MapPartition;
use crate::{Cache, Key, Kind};
use mr_protocol::packed::{Reader, Writer};
use mr_protocol::plan::{InputFile, SplitPlan};
use mr_protocol::{names, AttemptId, Counters, MapTaskId, OutputIndex, ReduceReuse, ReduceTaskId};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use tracing::{debug, info, warn};

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

/// Each partition's blocks: file offset and first key.
type Blocks = Vec<Option<Vec<(u64, Vec<u8>)>>>;

/// Each partition's segments.
type Segments = Vec<Option<Vec<MapSegment>>>;

/// A map output's partitions as the job knows them: their addresses, and
/// their blocks and segments, each parsed only when a reduce needs it (an
/// unchanged re-run needs neither; a reduce copying from an earlier output
/// needs every map's blocks but only the changed maps' segments, which are
/// most of a map entry's meta).
struct MapParts {
    /// Each partition's address (None: empty).
    keys: Vec<Option<Key>>,
    /// The blocks and the segments, encoded (see [`MapParts::encode`]).
    encoded: (Vec<u8>, Vec<u8>),
    /// The blocks, once parsed (None: they do not parse).
    blocks: OnceLock<Option<Blocks>>,
    /// The segments, once parsed (None: they do not parse).
    segments: OnceLock<Option<Segments>>,
}

impl MapParts {
    /// The parts of a map output just indexed, and its entry's meta: the
    /// head's length and the head (counters, partition addresses, in
    /// bincode), the blocks' length and the blocks
    /// ([`crate::partitions::encode_blocks`]), then the segments
    /// ([`crate::partitions::encode_segments`]).
    fn encode(counters: &Counters, parts: Vec<Option<PartitionIndex>>) -> (MapParts, Vec<u8>) {
        let keys: Vec<Option<Key>> = parts.iter().map(|p| p.as_ref().map(|p| p.key)).collect();
        let blocks: Vec<_> = parts
            .iter()
            .map(|p| p.as_ref().map(|p| &p.blocks))
            .collect();
        let segments: Vec<_> = parts
            .iter()
            .map(|p| p.as_ref().map(|p| &p.segments))
            .collect();
        let head = bincode::serialize(&(counters, &keys)).unwrap_or_default();
        let (blocks, segments) = (
            crate::partitions::encode_blocks(&blocks),
            crate::partitions::encode_segments(&segments),
        );
        let mut meta = Vec::with_capacity(16 + head.len() + blocks.len() + segments.len());
        meta.put_bytes_u64(&head);
        meta.put_bytes_u64(&blocks);
        meta.extend_from_slice(&segments);
        (MapParts::indexed(parts), meta)
    }

    /// The parts of a map output just indexed, already parsed.
    fn indexed(parts: Vec<Option<PartitionIndex>>) -> MapParts {
        let keys = parts.iter().map(|p| p.as_ref().map(|p| p.key)).collect();
        let (blocks, segments): (Blocks, Segments) = parts
            .into_iter()
            .map(|p| match p {
                Some(p) => (Some(p.blocks), Some(p.segments)),
                None => (None, None),
            })
            .unzip();
        MapParts {
            keys,
            encoded: (Vec::new(), Vec::new()),
            blocks: OnceLock::from(Some(blocks)),
            segments: OnceLock::from(Some(segments)),
        }
    }

    /// A map entry's meta read back: its counters and parts, if it is one
    /// of this format with R partitions.
    fn decode(meta: &[u8], reduces: u32) -> Option<(Counters, MapParts)> {
        let mut r = Reader::new(meta);
        let head = r.bytes_u64().ok()?;
        let blocks = r.bytes_u64().ok()?.to_vec();
        let segments = r.rest().to_vec();
        let (counters, keys): (Counters, Vec<Option<Key>>) = bincode::deserialize(head).ok()?;
        let parts = MapParts {
            keys,
            encoded: (blocks, segments),
            blocks: OnceLock::new(),
            segments: OnceLock::new(),
        };
        (parts.keys.len() == reduces as usize).then_some((counters, parts))
    }

    /// Each partition's blocks (None if they do not parse).
    fn blocks(&self) -> Option<&Blocks> {
        let parsed = self.blocks.get_or_init(|| {
            let blocks = crate::partitions::decode_blocks(&self.encoded.0)?;
            self.agrees(&blocks).then_some(blocks)
        });
        parsed.as_ref()
    }

    /// Each partition's segments (None if they do not parse).
    fn segments(&self) -> Option<&Segments> {
        let parsed = self.segments.get_or_init(|| {
            let segments = crate::partitions::decode_segments(&self.encoded.1)?;
            self.agrees(&segments).then_some(segments)
        });
        parsed.as_ref()
    }

    /// Whether `per_partition` has an entry exactly for each non-empty
    /// partition.
    fn agrees<T>(&self, per_partition: &[Option<T>]) -> bool {
        per_partition.len() == self.keys.len()
            && self
                .keys
                .iter()
                .zip(per_partition)
                .all(|(k, p)| k.is_some() == p.is_some())
    }

    /// Partition `r` as the reuse planner sees it (None: empty).
    fn partition(&self, r: usize) -> Option<Part<'_>> {
        Some(Part {
            key: self.keys[r]?,
            parts: self,
            r,
        })
    }
}

/// One non-empty partition of a map output, read lazily.
struct Part<'a> {
    key: Key,
    parts: &'a MapParts,
    r: usize,
}

impl MapPartition for Part<'_> {
    fn key(&self) -> Key {
        self.key
    }
    fn segments(&self) -> Option<&[MapSegment]> {
        self.parts.segments()?[self.r].as_deref()
    }
    fn blocks(&self) -> Option<&[(u64, Vec<u8>)]> {
        self.parts.blocks()?[self.r].as_deref()
    }
}

/// What a reduce's cache entry says besides its output.
#[derive(serde::Serialize, serde::Deserialize)]
struct ReduceMeta {
    counters: Counters,
    /// Where the output's segments after the head begin (None: unknown,
    /// as for a streaming reduce's output, which is not cut by key).
    starts: Option<Vec<(Vec<u8>, u64)>>,
    /// The output's length.
    len: u64,
    /// Its inputs: the addresses of the map outputs' partitions, in map
    /// order, empty ones left out, each with its map's cache address.
    inputs: Vec<(Key, Key)>,
}

/// What was taken from the cache.
#[derive(Debug, Default)]
pub struct Reused {
    /// Maps done by a cached output: id, reserved attempt, counters.
    pub maps: Vec<(MapTaskId, AttemptId, Counters)>,
    /// Outputs committed from the cache.
    pub reduces: Vec<(ReduceTaskId, AttemptId, Counters)>,
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
    ) -> Result<(JobCache, SplitPlan, (String, bool)), SetupError> {
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
        Ok((job, plan, (name, whole_file)))
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
        (got.reduces, got.reusing_earlier) = self.take_reduces(job_dir, output_dir, &left);
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
                got.maps.push((task, reserved(m), counters));
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
        if !got.0.is_empty() || !got.1.is_empty() {
            info!(
                reduces = got.0.len(),
                reusing_earlier = got.1.len(),
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
                        Ok(()) => CachedReduce::Committed((task, reserved(task.0 as usize), meta.counters)),
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
                CachedReduce::Committed(t) => got.0.push(t),
                CachedReduce::Earlier(reuse) => got.1.push((task, reuse)),
                CachedReduce::Absent => {}
            }
        }
        got
    }

    /// For reduce `task`, not in the cache: the pieces of the last output
    /// of its lineage that still hold, that output placed in `job_dir`.
    fn earlier_output(
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
    fn lineage_of(&self, task: ReduceTaskId) -> Key {
        Key::of(&[&self.lineage.0, &task.0.to_le_bytes()])
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

/// Whether `starts` (each segment's first key and the offset of its first
/// line, in order) describes the output at `path` of `len` bytes: offsets
/// rising and inside it, keys rising and each one that starts a segment,
/// and at each offset a line beginning with its key and a space.
fn index_holds(path: &Path, len: u64, starts: &[(Vec<u8>, u64)]) -> bool {
    use std::os::unix::fs::FileExt;
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let mut last: Option<&(Vec<u8>, u64)> = None;
    for start @ (key, at) in starts {
        let rising = last.is_none_or(|(k, a)| a < at && k < key);
        if !rising || *at >= len || !mr_runfile::starts_segment(key) {
            return false;
        }
        // The byte before (a line's end) and the key with its space.
        let before = at.saturating_sub(1);
        let mut seen = vec![0u8; key.len() + 1 + (*at - before) as usize];
        if file.read_exact_at(&mut seen, before).is_err() {
            return false;
        }
        let (line_end, line) = seen.split_at((*at - before) as usize);
        if line_end.first().is_some_and(|&b| b != b'\n')
            || !line.starts_with(key)
            || line[key.len()] != b' '
        {
            return false;
        }
        last = Some(start);
    }
    true
}

fn decode<T: serde::de::DeserializeOwned>(meta: &[u8]) -> Option<T> {
    bincode::deserialize(meta).ok()
}

/// What the cache gave for one reduce.
enum CachedReduce {
    /// Its output, committed into the output directory.
    Committed(Taken),
    /// An earlier output of its lineage, whose pieces that still hold may
    /// be copied.
    Earlier(Arc<ReduceReuse>),
    /// Nothing: the reduce runs.
    Absent,
}

/// Reduces committed from the cache (task, reserved attempt, counters),
/// and reduces that may copy pieces of an earlier output.
pub type TakenReduces = (Vec<Taken>, Vec<(ReduceTaskId, Arc<ReduceReuse>)>);

/// A task done from the cache: its id, reserved attempt and counters.
pub type Taken = (ReduceTaskId, AttemptId, Counters);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partitions::MapSegment;

    /// An output's index: each segment's first key and its first line's offset.
    type Starts = Vec<(Vec<u8>, u64)>;

    fn index(key: u8, starts: &[&str]) -> PartitionIndex {
        PartitionIndex {
            key: Key([key; 32]),
            segments: starts
                .iter()
                .enumerate()
                .map(|(i, s)| MapSegment {
                    start: (i > 0).then(|| s.as_bytes().to_vec()),
                    last: format!("{s}z").into_bytes(),
                    digest: [i as u8; 32],
                })
                .collect(),
            blocks: vec![(20, starts[0].as_bytes().to_vec()), (99, b"n".to_vec())],
        }
    }

    #[test]
    fn a_reported_index_is_kept_only_if_the_output_bears_it_out() {
        // Keys that start segments, in order, and an output holding them.
        let mut keys: Vec<Vec<u8>> = (0..20_000u32)
            .map(|i| format!("k{i}").into_bytes())
            .filter(|k| mr_runfile::starts_segment(k))
            .take(3)
            .collect();
        keys.sort();
        let mut out = b"a 1\n".to_vec();
        let mut starts = Vec::new();
        for k in &keys {
            starts.push((k.clone(), out.len() as u64));
            out.extend_from_slice(k);
            out.extend_from_slice(b" 7\nzz 1\n");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        std::fs::write(&path, &out).unwrap();
        let len = out.len() as u64;
        assert!(index_holds(&path, len, &starts));
        assert!(index_holds(&path, len, &[]));
        let lie = |f: &dyn Fn(&mut Starts)| {
            let mut s = starts.clone();
            f(&mut s);
            index_holds(&path, len, &s)
        };
        assert!(!lie(&|s| s[1].1 += 1), "an offset inside a line");
        assert!(!lie(&|s| s[2].1 = len + 10), "an offset past the end");
        assert!(!lie(&|s| s.swap(0, 1)), "out of order");
        assert!(
            !lie(&|s| s[0].0 = b"a".to_vec()),
            "a key that starts no segment"
        );
        assert!(!lie(&|s| s[0].1 = 0), "another key's line");
    }

    #[test]
    fn a_map_entrys_meta_reads_back_its_head_at_once_and_its_segments_when_asked() {
        let counters = Counters {
            input_bytes: 7,
            ..Counters::default()
        };
        let parts = vec![Some(index(1, &["a", "m"])), None, Some(index(3, &["b"]))];
        let (_, meta) = MapParts::encode(&counters, parts.clone());
        let (got, read) = MapParts::decode(&meta, 3).unwrap();
        assert_eq!(got, counters);
        assert_eq!(
            read.keys,
            vec![Some(Key([1; 32])), None, Some(Key([3; 32]))]
        );
        assert!(read.blocks.get().is_none() && read.segments.get().is_none());
        let part = |i: usize| parts[i].as_ref();
        assert_eq!(
            read.partition(0).unwrap().blocks().unwrap(),
            part(0).unwrap().blocks
        );
        assert!(
            read.segments.get().is_none(),
            "segments parsed before they were needed"
        );
        assert_eq!(
            read.partition(2).unwrap().segments().unwrap(),
            part(2).unwrap().segments
        );
        assert!(read.partition(1).is_none());
        // Another R, a cut or damaged meta: not an entry, and no panic.
        assert!(MapParts::decode(&meta, 4).is_none());
        for cut in [0, 5, 8, 20, meta.len() - 1] {
            if let Some((_, p)) = MapParts::decode(&meta[..cut], 3) {
                assert!(
                    p.segments().is_none() || p.blocks().is_none(),
                    "cut at {cut}"
                );
            }
        }
        let mut bad = meta.clone();
        bad[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(MapParts::decode(&bad, 3).is_none());
    }
}
