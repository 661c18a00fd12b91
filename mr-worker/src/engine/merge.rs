//! The k-way merge of sorted runs, shared by the reduce engine and by map
//! tasks merging their spills: one callback per distinct key with a stream of
//! that key's values, in key order.
//!
//! A binary min-heap of input indices ordered by each input's current key
//! (ties by input index, so value order is deterministic). Values are handed
//! out straight from the inputs' read buffers, one at a time.

use crate::engine::runfile::{PartitionReader, RunError};
use mr_apps::Values;
use mr_protocol::{AttemptId, MapTaskId, TaskFailure};

/// Inputs to merge, each tagged with a caller-chosen id used in errors.
pub struct Merger<T: Copy> {
    inputs: Vec<(T, PartitionReader)>,
    heap: Vec<usize>,
    records: u64,
    /// App-defined counters counted by the callbacks of [`Merger::for_each_group`].
    pub app_counters: crate::engine::table::AppCounters,
}

/// A failed read, tagged with the input it came from.
pub type MergeError<T> = (T, RunError);

impl<T: Copy> Merger<T> {
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

    /// Positions every input on its first record.
    pub fn new(mut inputs: Vec<(T, PartitionReader)>) -> Result<Self, MergeError<T>> {
        let mut live = Vec::new();
        for (i, (tag, r)) in inputs.iter_mut().enumerate() {
            if r.advance().map_err(|e| (*tag, e))? {
                live.push(i);
            }
        }
        let mut m = Merger {
            inputs,
            heap: live,
            records: 0,
            app_counters: Default::default(),
        };
        for i in (0..m.heap.len() / 2).rev() {
            m.sift_down(i);
        }
        Ok(m)
    }

    /// Records consumed so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    fn top(&self) -> Option<&PartitionReader> {
        self.heap.first().map(|&i| &self.inputs[i].1)
    }

    fn advance_top(&mut self) -> Result<(), MergeError<T>> {
        let Some(&i) = self.heap.first() else {
            return Ok(());
        };
        self.records += 1;
        let (tag, reader) = &mut self.inputs[i];
        if !reader.advance().map_err(|e| (*tag, e))? {
            let last = self.heap.pop().expect("non-empty");
            if self.heap.is_empty() {
                return Ok(());
            }
            self.heap[0] = last;
        }
        self.sift_down(0);
        Ok(())
    }

    /// Calls `f(key, values)` once per distinct key, in order. Values the
    /// callback does not consume are skipped. Stops at the first read error
    /// or the first error `f` returns.
    pub fn for_each_group<E>(
        &mut self,
        mut f: impl FnMut(&[u8], &mut dyn Values) -> Result<(), E>,
    ) -> Result<(), GroupError<T, E>> {
        let mut key = Vec::new();
        while let Some(top) = self.top() {
            key.clear();
            key.extend_from_slice(top.key());
            let mut values = KeyValues {
                merger: self,
                key: &key,
                pending: false,
                error: None,
            };
            let r = f(&key, &mut values);
            while values.next_value().is_some() {}
            if let Some(e) = values.error.take() {
                return Err(GroupError::Read(e));
            }
            r.map_err(GroupError::Callback)?;
        }
        Ok(())
    }
}

/// Why a merge stopped.
pub enum GroupError<T, E> {
    /// An input could not be read.
    Read(MergeError<T>),
    /// The callback failed.
    Callback(E),
}

/// The values of the current key, streamed from the merge.
struct KeyValues<'a, T: Copy> {
    merger: &'a mut Merger<T>,
    key: &'a [u8],
    /// The top record was handed out and must be stepped past first.
    pending: bool,
    error: Option<MergeError<T>>,
}

impl<T: Copy> Values for KeyValues<'_, T> {
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

    fn count(&mut self, name: &str, delta: u64) {
        crate::engine::table::add_counter(&mut self.merger.app_counters, name, delta);
    }
}

/// What a reduce task did.
#[derive(Clone, Debug, Default)]
pub struct ReduceStats {
    /// Distinct keys reduced.
    pub keys: u64,
    /// Records read.
    pub records: u64,
    /// Output bytes.
    pub bytes: u64,
    /// Keys skipped as told by `skip`.
    pub skipped: u64,
    /// Distinct keys read (for streaming reduces, where output lines need
    /// not match keys one to one; else `keys + skipped`).
    pub groups: u64,
    /// App-defined counters.
    pub app_counters: crate::engine::table::AppCounters,
    /// The output's upload, when it went to an object store.
    pub upload: Option<mr_protocol::OutputUpload>,
}

/// A bad map output is the map's problem (re-run it); other I/O is ours.
pub(crate) fn lost((map, attempt): (MapTaskId, AttemptId), e: RunError) -> TaskFailure {
    match e {
        RunError::Missing { .. } | RunError::Corrupt { .. } => TaskFailure::MapOutputLost {
            map,
            attempt,
            reason: e.to_string(),
        },
        RunError::Io { path, source } => TaskFailure::Io {
            path: path.display().to_string(),
            reason: source.to_string(),
        },
        // Only a writer refuses records; a reader never sees this.
        RunError::TooLarge { ref path, .. } => TaskFailure::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        },
    }
}
