//! The app interface of the MapReduce framework and the apps that ship with it.
//!
//! An [`App`] is what a user writes: a `map` over a line-aligned chunk of an
//! input file, an optional `combine`, and a `reduce` over one key's values.
//! Keys and values are byte strings. This crate knows nothing of RPC, files or
//! threads, so apps can be unit-tested by calling them directly; the worker
//! crate drives them. The same apps also build as plugins (see [`plugin`]),
//! which `mrworker` loads from a path, as the lab's `mrworker wc.so` does.

pub mod apps;
pub mod conf;
pub mod hash;
pub mod keys;
pub mod plugin;
pub mod words;

use std::sync::Arc;

pub use apps::builtin::{builtin, builtin_names};
pub use conf::{Conf, ConfError};
pub use range::JobApp;
pub mod range;

/// The map's context: receives the key/value pairs a map call emits, and
/// app-defined counters.
pub trait Emit {
    /// Emits one intermediate pair.
    fn emit(&mut self, key: &[u8], value: &[u8]);

    /// Adds `delta` to the app-defined counter `name`. The job sums each
    /// counter over its accepted attempts and shows it with the built-in ones.
    fn count(&mut self, _name: &str, _delta: u64) {}
}

/// Streams the values of one key to `combine` or `reduce`.
///
/// A lending iterator: each value borrows from the stream until the next call,
/// so the framework can hand values straight out of its read buffers without
/// holding a key's values in memory.
pub trait Values {
    /// The next value for the current key, or `None` when they are exhausted.
    fn next_value(&mut self) -> Option<&[u8]>;

    /// Adds `delta` to the app-defined counter `name` (the value stream is
    /// also the reduce's context; see [`Emit::count`]).
    fn count(&mut self, _name: &str, _delta: u64) {}
}

/// A MapReduce application.
///
/// Implementations must be deterministic functions of their input for the
/// framework's re-execution to give the same answer (the lab's test apps are
/// deliberately not, and the tests account for it). A panic inside any method
/// fails the task attempt with the panic message; the worker catches it.
pub trait App: Send + Sync {
    /// The app's name, as given to `mrworker` and checked against `--app`.
    fn name(&self) -> &str;

    /// Takes the job's parameters (`--conf KEY=VALUE`), once, before any
    /// map or reduce. An app that needs a key asks for it with
    /// [`Conf::require`]; the refusal names the flag to give, and the job
    /// does not start.
    fn configure(&mut self, conf: &Conf) -> Result<(), ConfError> {
        let _ = conf;
        Ok(())
    }

    /// True when `map` must see each input file whole: such inputs are never
    /// cut into splits or chunks (the lab's test apps count file lengths).
    fn whole_file(&self) -> bool {
        false
    }

    /// The size of the app's input records when they are fixed-length
    /// (the sort benchmark's 100 bytes): inputs are then cut on record
    /// boundaries, never on lines, and `map` receives whole records (any
    /// bytes, newlines included). None (the default): records are lines.
    fn record_size(&self) -> Option<u32> {
        None
    }

    /// True when the app's outputs hold its reduce's output values alone,
    /// byte for byte (no key, no separator, no newline added), instead of
    /// the lab's `key value` lines: a sort writes its records back as they
    /// were.
    fn values_only(&self) -> bool {
        false
    }

    /// True when the app's outputs must be in total order: the keys of
    /// `mr-out-0` all sort before those of `mr-out-1`, and so on. The job
    /// then samples its inputs' keys before the map phase and partitions
    /// by range ([`JobApp`]) instead of by hash or
    /// [`App::partition`].
    fn total_order(&self) -> bool {
        false
    }

    /// Maps one chunk of `filename` (a run of whole lines, or the whole file
    /// when [`App::whole_file`] is true), emitting intermediate pairs.
    fn map(&self, filename: &str, chunk: &[u8], emit: &mut dyn Emit);

    /// True when the app defines [`App::combine`].
    fn has_combiner(&self) -> bool {
        false
    }

    /// Pre-reduces the values one map task emitted for `key`, calling `out`
    /// with each value to keep (usually one). Only called when
    /// [`App::has_combiner`] is true; must be safe to apply zero or more times.
    fn combine(&self, key: &[u8], values: &mut dyn Values, out: &mut dyn FnMut(&[u8])) {
        let _ = key;
        while let Some(v) = values.next_value() {
            out(v);
        }
    }

    /// True when every value this app emits is a decimal count (`1`, `42`)
    /// and its combine and reduce output their sum, as word count's do. The
    /// framework then aggregates counts as integers inside each map task,
    /// without calling `combine` (the role Hadoop's LongSumReducer plays).
    fn sums_counts(&self) -> bool {
        false
    }

    /// True when the app chooses partitions itself with [`App::partition`].
    fn has_partitioner(&self) -> bool {
        false
    }

    /// The reduce task (0..reduces) that receives `key`. The default spreads
    /// keys by [`ihash`], as the lab does; an app that overrides it must also
    /// return true from [`App::has_partitioner`]. Values out of range wrap.
    fn partition(&self, key: &[u8], reduces: u32) -> u32 {
        ihash(key) % reduces.max(1)
    }

    /// A shell command that reduces a whole partition at once (streaming
    /// apps): it reads `key<TAB>value` lines sorted by key on stdin and
    /// writes `key<TAB>value` lines. When set, the engine runs it instead of
    /// calling [`App::reduce`] per key.
    fn reduce_command(&self) -> Option<&str> {
        None
    }

    /// Reduces all values of `key` to the output value written after the key
    /// (appended to `out`, which starts empty).
    fn reduce(&self, key: &[u8], values: &mut dyn Values, out: &mut Vec<u8>);
}

/// A shared, thread-safe app handle as the engines use it.
pub type AppRef = Arc<dyn App>;

/// Why an app could not be resolved from a name or plugin path.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The name is neither a built-in app nor a path to a file.
    #[error("unknown app '{name}': not a built-in app ({known}) and not a plugin file path")]
    Unknown {
        /// The name as given.
        name: String,
        /// The built-in names, comma-separated.
        known: String,
    },
    /// The app refused the job's parameters.
    #[error("the app '{app}' {source}")]
    Conf {
        /// The app's name.
        app: String,
        /// What it refused.
        source: ConfError,
    },
    /// The plugin file exists but could not be loaded or is not a plugin.
    #[error("cannot load plugin '{path}': {reason}")]
    Plugin {
        /// The plugin path as given.
        path: String,
        /// What went wrong, in words.
        reason: String,
    },
}

/// Loads `spec`, not yet configured: a built-in name (`wc`, `indexer`, ...)
/// or a path to a plugin shared library (anything containing `/` or ending
/// in `.so`). Enough to learn the app's name and how it reads its inputs;
/// [`resolve`] gives an app ready to run.
pub fn load(spec: &str) -> Result<Box<dyn App>, LoadError> {
    let looks_like_path = spec.contains('/') || spec.ends_with(".so");
    if !looks_like_path {
        if let Some(app) = builtin(spec) {
            return Ok(app);
        }
        return Err(LoadError::Unknown {
            name: spec.to_string(),
            known: builtin_names().join(", "),
        });
    }
    plugin::load(std::path::Path::new(spec)).map(|p| Box::new(p) as Box<dyn App>)
}

/// Resolves `spec` (see [`load`]) to an app configured with the job's
/// parameters `conf`, ready to run.
pub fn resolve(spec: &str, conf: &Conf) -> Result<AppRef, LoadError> {
    let mut app = load(spec)?;
    configure(&mut *app, conf)?;
    Ok(Arc::from(app))
}

/// Gives `app` the job's parameters, naming the app in a refusal.
pub fn configure(app: &mut dyn App, conf: &Conf) -> Result<(), LoadError> {
    app.configure(conf).map_err(|source| LoadError::Conf {
        app: app.name().to_string(),
        source,
    })
}

/// The lab's partition hash: 32-bit FNV-1a of the key, masked to 31 bits.
///
/// Reduce task `r` receives exactly the keys with `ihash(key) % R == r`, the
/// same assignment as the Go reference, so outputs match file for file.
#[inline]
pub fn ihash(key: &[u8]) -> u32 {
    fnv1a(key) & 0x7fff_ffff
}

/// 32-bit FNV-1a of `bytes`: the partition hash before its mask, and the
/// stable digest behind streaming app names.
#[inline]
pub fn fnv1a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Parses a decimal count as [`App::sums_counts`] apps emit them (`1`, `42`);
/// `None` for anything else, including values past `u64::MAX`.
#[inline]
pub fn parse_count(v: &[u8]) -> Option<u64> {
    if v == b"1" {
        return Some(1);
    }
    if v.is_empty() || v.len() > 20 {
        return None;
    }
    v.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit()
            .then_some(())
            .and_then(|()| n.checked_mul(10)?.checked_add(u64::from(b - b'0')))
    })
}

/// Collects every value of a [`Values`] stream into owned vectors: for apps
/// whose reduce genuinely needs them all at once (sorting, dedup).
pub fn collect_values(values: &mut dyn Values) -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    while let Some(v) = values.next_value() {
        all.push(v.to_vec());
    }
    all
}

/// Counts the values of a stream without keeping them.
pub fn count_values(values: &mut dyn Values) -> u64 {
    let mut n = 0;
    while values.next_value().is_some() {
        n += 1;
    }
    n
}

/// A [`Values`] stream over an in-memory list: for tests and simple drivers.
pub struct SliceValues<'a, T: AsRef<[u8]>> {
    items: std::slice::Iter<'a, T>,
}

impl<'a, T: AsRef<[u8]>> SliceValues<'a, T> {
    /// Streams the items of `items` in order.
    pub fn new(items: &'a [T]) -> Self {
        Self {
            items: items.iter(),
        }
    }
}

impl<T: AsRef<[u8]>> Values for SliceValues<'_, T> {
    fn next_value(&mut self) -> Option<&[u8]> {
        self.items.next().map(|v| v.as_ref())
    }
}

/// An [`Emit`] that keeps every pair: for tests and simple drivers.
#[derive(Debug, Default)]
pub struct VecEmit {
    /// The pairs emitted so far, in order.
    pub pairs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Emit for VecEmit {
    fn emit(&mut self, key: &[u8], value: &[u8]) {
        self.pairs.push((key.to_vec(), value.to_vec()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ihash_matches_fnv1a_reference_values() {
        // FNV-1a 32 of "" is the offset basis; of "a" is 0xe40c292c (published
        // test vector); the lab masks the top bit.
        assert_eq!(ihash(b""), 0x811c_9dc5 & 0x7fff_ffff);
        assert_eq!(ihash(b"a"), 0xe40c_292c & 0x7fff_ffff);
        assert_eq!(ihash(b"foobar"), 0xbf9c_f968 & 0x7fff_ffff);
    }

    #[test]
    fn resolve_refuses_unknown_names() {
        let err = resolve("nosuchapp", &Conf::default())
            .err()
            .expect("must fail");
        let msg = err.to_string();
        assert!(msg.contains("nosuchapp") && msg.contains("wc"), "{msg}");
    }

    #[test]
    fn resolve_finds_builtins() {
        for name in builtin_names() {
            assert_eq!(load(name).unwrap().name(), *name);
        }
    }
}
