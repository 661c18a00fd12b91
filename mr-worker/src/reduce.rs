//! The reduce engine: a streaming k-way merge of one partition of every map
//! output, one `reduce` call per key, output written to a temp file.
//!
//! Memory holds one block per input plus the current key: values are handed
//! to the app straight from the read buffers as a stream ([`Values`]), so a
//! key with millions of values costs nothing extra unless the app keeps them.

use crate::runfile::{PartitionReader, RunError, RunFile};
use mr_apps::{plugin::panic_message, App, Values};
use mr_coordinator::protocol::{MapTaskId, TaskFailure};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// One reduce task's inputs and output.
#[derive(Clone, Debug)]
pub struct ReduceJob<'a> {
    /// The partition to reduce.
    pub reduce: u32,
    /// R, the number of partitions in each run file.
    pub reduces: u32,
    /// Every map task's run file.
    pub inputs: Vec<(MapTaskId, PathBuf)>,
    /// Where the output goes (the caller commits it by rename).
    pub out: &'a Path,
}

/// What a reduce task did.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReduceStats {
    /// Distinct keys reduced.
    pub keys: u64,
    /// Records read.
    pub records: u64,
    /// Output bytes.
    pub bytes: u64,
}

fn lost(map: MapTaskId, e: RunError) -> TaskFailure {
    match e {
        RunError::Missing { .. } | RunError::Corrupt { .. } => TaskFailure::MapOutputLost {
            map,
            reason: e.to_string(),
        },
        RunError::Io { path, source } => TaskFailure::Io {
            path: path.display().to_string(),
            reason: source.to_string(),
        },
    }
}

/// The k-way merge: a binary min-heap of input indices ordered by each
/// input's current key (ties by input index, so the order is deterministic).
struct Merger {
    inputs: Vec<(MapTaskId, PartitionReader)>,
    heap: Vec<usize>,
    records: u64,
}

impl Merger {
    fn less(&self, a: usize, b: usize) -> bool {
        let (ka, kb) = (self.inputs[a].1.key(), self.inputs[b].1.key());
        ka < kb || (ka == kb && a < b)
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut m = i;
            if l < self.heap.len() && self.less(self.heap[l], self.heap[m]) {
                m = l;
            }
            if r < self.heap.len() && self.less(self.heap[r], self.heap[m]) {
                m = r;
            }
            if m == i {
                return;
            }
            self.heap.swap(i, m);
            i = m;
        }
    }

    fn new(mut inputs: Vec<(MapTaskId, PartitionReader)>) -> Result<Self, TaskFailure> {
        let mut live = Vec::new();
        for (i, (map, r)) in inputs.iter_mut().enumerate() {
            if r.advance().map_err(|e| lost(*map, e))? {
                live.push(i);
            }
        }
        let mut m = Merger {
            inputs,
            heap: live,
            records: 0,
        };
        for i in (0..m.heap.len() / 2).rev() {
            m.sift_down(i);
        }
        Ok(m)
    }

    fn top(&self) -> Option<&PartitionReader> {
        self.heap.first().map(|&i| &self.inputs[i].1)
    }

    /// Moves the smallest input to its next record.
    fn advance_top(&mut self) -> Result<(), TaskFailure> {
        let Some(&i) = self.heap.first() else {
            return Ok(());
        };
        self.records += 1;
        let (map, reader) = &mut self.inputs[i];
        if !reader.advance().map_err(|e| lost(*map, e))? {
            let last = self.heap.pop().expect("non-empty");
            if self.heap.is_empty() {
                return Ok(());
            }
            self.heap[0] = last;
        }
        self.sift_down(0);
        Ok(())
    }
}

/// The values of the current key, streamed from the merge.
struct KeyValues<'a> {
    merger: &'a mut Merger,
    key: &'a [u8],
    /// The top record was handed out and must be stepped past first.
    pending: bool,
    error: Option<TaskFailure>,
}

impl Values for KeyValues<'_> {
    fn next_value(&mut self) -> Option<&[u8]> {
        if self.error.is_some() {
            return None;
        }
        if self.pending {
            self.pending = false;
            if let Err(e) = self.merger.advance_top() {
                self.error = Some(e);
                return None;
            }
        }
        let top = self.merger.top()?;
        if top.key() != self.key {
            return None;
        }
        self.pending = true;
        self.merger.top().map(|t| t.value())
    }
}

/// Runs one reduce task, writing `key value` lines to `job.out`.
pub fn run_reduce(app: &dyn App, job: &ReduceJob<'_>) -> Result<ReduceStats, TaskFailure> {
    let mut readers = Vec::with_capacity(job.inputs.len());
    for (map, path) in &job.inputs {
        let f = RunFile::open(path, map.0, job.reduces).map_err(|e| lost(*map, e))?;
        readers.push((*map, f.partition(job.reduce)));
    }
    let mut merger = Merger::new(readers)?;
    let io = |e: std::io::Error| TaskFailure::Io {
        path: job.out.display().to_string(),
        reason: e.to_string(),
    };
    let mut out = BufWriter::with_capacity(1 << 20, File::create(job.out).map_err(io)?);
    let mut key = Vec::new();
    let mut value = Vec::new();
    let mut stats = ReduceStats::default();
    while let Some(top) = merger.top() {
        key.clear();
        key.extend_from_slice(top.key());
        value.clear();
        let mut values = KeyValues {
            merger: &mut merger,
            key: &key,
            pending: false,
            error: None,
        };
        let called = catch_unwind(AssertUnwindSafe(|| {
            app.reduce(&key, &mut values, &mut value)
        }));
        if let Err(p) = called {
            return Err(TaskFailure::AppPanic {
                message: format!(
                    "{} (in reduce of key '{}')",
                    panic_message(p.as_ref()),
                    String::from_utf8_lossy(&key[..key.len().min(80)])
                ),
                input: format!("partition {}", job.reduce),
                offset: 0,
            });
        }
        // Skip whatever values the app did not consume.
        while values.next_value().is_some() {}
        if let Some(e) = values.error.take() {
            return Err(e);
        }
        out.write_all(&key).map_err(io)?;
        out.write_all(b" ").map_err(io)?;
        out.write_all(&value).map_err(io)?;
        out.write_all(b"\n").map_err(io)?;
        stats.keys += 1;
        stats.bytes += (key.len() + value.len() + 2) as u64;
    }
    out.flush().map_err(io)?;
    stats.records = merger.records;
    Ok(stats)
}
