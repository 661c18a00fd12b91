//! The MIT 6.5840 lab's test apps, with the lab's behaviour.
//!
//! They probe the framework rather than compute anything useful: crashes and
//! stalls (`crash`), parallelism (`mtiming`, `rtiming`), re-execution
//! (`jobcount`) and premature exit (`early_exit`). All need whole files, and
//! several leave marker files in the worker's working directory, as the lab's do.
//! One more, `poison`, is ours: word count with records that crash it, for
//! the bad-record handling (`--skip-bad-records`).

use crate::{collect_values, count_values, App, Emit, Values};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Sorts the values and joins them with single spaces (nocrash, crash, mtiming).
fn sorted_join(values: &mut dyn Values, out: &mut Vec<u8>) {
    let mut all = collect_values(values);
    all.sort_unstable();
    out.extend_from_slice(&all.join(&b' '));
}

/// The four pairs nocrash and crash emit for a file.
fn nocrash_pairs(filename: &str, contents: &[u8], emit: &mut dyn Emit) {
    emit.emit(b"a", filename.as_bytes());
    emit.emit(b"b", filename.len().to_string().as_bytes());
    emit.emit(b"c", contents.len().to_string().as_bytes());
    emit.emit(b"d", b"xyzzy");
}

/// `nocrash`: the crash app's answers without the crashes.
#[derive(Debug, Default)]
pub struct NoCrash;

impl App for NoCrash {
    fn name(&self) -> &str {
        "nocrash"
    }
    fn whole_file(&self) -> bool {
        true
    }
    fn map(&self, filename: &str, chunk: &[u8], emit: &mut dyn Emit) {
        nocrash_pairs(filename, chunk, emit);
    }
    fn reduce(&self, _key: &[u8], values: &mut dyn Values, out: &mut Vec<u8>) {
        sorted_join(values, out);
    }
}

/// `crash`: at the start of every map and reduce call, exits the process
/// with probability 0.33 and sleeps up to 10 s with probability 0.33.
#[derive(Debug, Default)]
pub struct Crash;

fn maybe_crash() {
    let roll = fastrand::u32(0..1000);
    if roll < 330 {
        std::process::exit(1);
    } else if roll < 660 {
        std::thread::sleep(Duration::from_millis(fastrand::u64(0..10_000)));
    }
}

impl App for Crash {
    fn name(&self) -> &str {
        "crash"
    }
    fn whole_file(&self) -> bool {
        true
    }
    fn map(&self, filename: &str, chunk: &[u8], emit: &mut dyn Emit) {
        maybe_crash();
        nocrash_pairs(filename, chunk, emit);
    }
    fn reduce(&self, _key: &[u8], values: &mut dyn Values, out: &mut Vec<u8>) {
        maybe_crash();
        sorted_join(values, out);
    }
}

/// Registers this process as running `phase` by creating
/// `mr-worker-<phase>-<pid>` in the working directory, counts how many such
/// files belong to live processes, sleeps a second, and removes the file.
fn nparallel(phase: &str) -> usize {
    let me = std::process::id();
    let mine = format!("mr-worker-{phase}-{me}");
    // Failures to write or list are counted as "no parallelism seen", which
    // makes the parallelism tests fail loudly rather than pass wrongly.
    let _ = std::fs::write(&mine, b"x");
    let prefix = format!("mr-worker-{phase}-");
    let mut live = 0;
    if let Ok(dir) = std::fs::read_dir(".") {
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
                continue;
            };
            if pid.parse::<u32>().is_ok() && std::path::Path::new("/proc").join(pid).exists() {
                live += 1;
            }
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let _ = std::fs::remove_file(&mine);
    live
}

/// `mtiming`: records when and how parallel each map ran.
#[derive(Debug, Default)]
pub struct MTiming;

impl App for MTiming {
    fn name(&self) -> &str {
        "mtiming"
    }
    fn whole_file(&self) -> bool {
        true
    }
    fn map(&self, _filename: &str, _chunk: &[u8], emit: &mut dyn Emit) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let pid = std::process::id();
        let n = nparallel("map");
        emit.emit(
            format!("times-{pid}").as_bytes(),
            format!("{now:.1}").as_bytes(),
        );
        emit.emit(
            format!("parallel-{pid}").as_bytes(),
            n.to_string().as_bytes(),
        );
    }
    fn reduce(&self, _key: &[u8], values: &mut dyn Values, out: &mut Vec<u8>) {
        sorted_join(values, out);
    }
}

/// `rtiming`: records how many reduces ran in parallel.
#[derive(Debug, Default)]
pub struct RTiming;

impl App for RTiming {
    fn name(&self) -> &str {
        "rtiming"
    }
    fn whole_file(&self) -> bool {
        true
    }
    fn map(&self, _filename: &str, _chunk: &[u8], emit: &mut dyn Emit) {
        for k in ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"] {
            emit.emit(k.as_bytes(), b"1");
        }
    }
    fn reduce(&self, _key: &[u8], values: &mut dyn Values, out: &mut Vec<u8>) {
        count_values(values);
        out.extend_from_slice(nparallel("reduce").to_string().as_bytes());
    }
}

/// `jobcount`: counts map executions through marker files, so a map that runs
/// twice without a failure shows up in the answer.
#[derive(Debug, Default)]
pub struct JobCount {
    calls: AtomicUsize,
}

impl App for JobCount {
    fn name(&self) -> &str {
        "jobcount"
    }
    fn whole_file(&self) -> bool {
        true
    }
    fn map(&self, _filename: &str, _chunk: &[u8], emit: &mut dyn Emit) {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let marker = format!("mr-worker-jobcount-{}-{n}", std::process::id());
        if let Err(e) = std::fs::write(&marker, b"x") {
            panic!("jobcount: cannot create marker file {marker}: {e}");
        }
        std::thread::sleep(Duration::from_millis(2000 + fastrand::u64(0..3000)));
        emit.emit(b"a", b"x");
    }
    fn reduce(&self, _key: &[u8], values: &mut dyn Values, out: &mut Vec<u8>) {
        count_values(values);
        let invocations = std::fs::read_dir(".")
            .map(|d| {
                d.flatten()
                    .filter(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with("mr-worker-jobcount")
                    })
                    .count()
            })
            .unwrap_or(0);
        out.extend_from_slice(invocations.to_string().as_bytes());
    }
}

/// `early_exit`: some reduces are slow, to catch workers or a coordinator
/// that exit before every output is committed.
#[derive(Debug, Default)]
pub struct EarlyExit;

impl App for EarlyExit {
    fn name(&self) -> &str {
        "early_exit"
    }
    fn whole_file(&self) -> bool {
        true
    }
    fn map(&self, filename: &str, _chunk: &[u8], emit: &mut dyn Emit) {
        emit.emit(filename.as_bytes(), b"1");
    }
    fn reduce(&self, key: &[u8], values: &mut dyn Values, out: &mut Vec<u8>) {
        let k = String::from_utf8_lossy(key);
        if k.contains("sherlock") || k.contains("tom") {
            std::thread::sleep(Duration::from_secs(3));
        }
        out.extend_from_slice(count_values(values).to_string().as_bytes());
    }
}

/// `poison`: word count whose map panics on any line holding the word
/// `poisonrecord` and whose reduce panics on the key `poisonkey`, so that
/// tests can check failures name the record and that skipping works.
#[derive(Debug, Default)]
pub struct Poison;

impl App for Poison {
    fn name(&self) -> &str {
        "poison"
    }
    fn map(&self, filename: &str, chunk: &[u8], emit: &mut dyn Emit) {
        crate::words::for_each_word(chunk, |w| {
            assert!(w != b"poisonrecord", "poison: bad record in {filename}");
            emit.emit(w, b"1");
        });
    }
    fn reduce(&self, key: &[u8], values: &mut dyn Values, out: &mut Vec<u8>) {
        assert!(key != b"poisonkey", "poison: bad key");
        out.extend_from_slice(count_values(values).to_string().as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SliceValues, VecEmit};

    #[test]
    fn nocrash_emits_the_labs_four_pairs() {
        let mut e = VecEmit::default();
        NoCrash.map("../pg-x.txt", b"hello", &mut e);
        let got: Vec<(&[u8], &[u8])> = e
            .pairs
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        assert_eq!(
            got,
            [
                (&b"a"[..], &b"../pg-x.txt"[..]),
                (b"b", b"11"),
                (b"c", b"5"),
                (b"d", b"xyzzy")
            ]
        );
        let mut out = Vec::new();
        NoCrash.reduce(b"a", &mut SliceValues::new(&["z", "b", "m"]), &mut out);
        assert_eq!(out, b"b m z");
    }

    #[test]
    fn early_exit_counts_values() {
        let mut out = Vec::new();
        EarlyExit.reduce(b"x", &mut SliceValues::new(&["1", "1"]), &mut out);
        assert_eq!(out, b"2");
    }
}
