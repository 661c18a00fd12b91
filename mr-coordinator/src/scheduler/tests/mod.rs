//! Unit tests of the scheduling state machine: time is passed in, no processes.

use super::report::IO_REST;
use super::*;
use mr_protocol::{
    BadRecord, Counters, MapOutputRef, OutputsVersion, Phase, ReusePiece, TaskFailure, WorkerPlace,
};

/// Reports `a` succeeded as its own worker would (an unknown attempt as
/// worker 0); the rule that only the owner may report has its own test.
fn ok(s: &mut Scheduler, a: AttemptId, now: Instant) -> Verdict {
    let owner = s.attempts.get(&a).map_or(WorkerId(0), |x| x.worker);
    s.succeeded(owner, a, now)
}

/// Reports `a` failed as its own worker would.
fn fail(s: &mut Scheduler, a: AttemptId, f: TaskFailure) -> Verdict {
    let owner = s.attempts.get(&a).map_or(WorkerId(0), |x| x.worker);
    s.failed(owner, a, f, Instant::now())
}

fn cfg(reduces: u32) -> SchedulerConfig {
    SchedulerConfig {
        reduces,
        split_size: 100,
        task_timeout: Duration::from_secs(10),
        max_attempts: 3,
        app: None,
        wait: Duration::from_millis(50),
        skip_bad_records: false,
        record_size: 0,
        backups: true,
        backup_after: Duration::from_secs(10),
    }
}

fn inputs(n: usize) -> Vec<InputFile> {
    (0..n)
        .map(|i| InputFile {
            version: None,
            name: format!("in-{i}"),
            path: format!("/in-{i}").into(),
            len: 150,
        })
        .collect()
}

fn map_of(a: &Assignment) -> (MapTaskId, AttemptId) {
    match a {
        Assignment::Work(Work::Map(w)) => (w.task, w.attempt),
        other => panic!("expected a map, got {other:?}"),
    }
}

fn reduce_of(a: &Assignment) -> (ReduceTaskId, AttemptId, OutputsVersion) {
    match a {
        Assignment::Work(Work::Reduce(w)) => (w.task, w.attempt, w.outputs),
        other => panic!("expected a reduce, got {other:?}"),
    }
}

/// The map outputs list of version `v` as a reduce reads it, page by page
/// (the newest, which is `v` right after the assignment naming it).
fn list(s: &mut Scheduler, v: OutputsVersion) -> Vec<MapOutputRef> {
    let mut all = Vec::new();
    loop {
        let page = s.outputs_page(v.version, all.len() as u32).unwrap();
        assert_eq!((page.version, page.maps), (v.version, v.maps));
        all.extend(page.outputs.iter().cloned());
        if all.len() as u32 == page.maps {
            return all;
        }
    }
}

fn outside(addr: &str, local: &[usize]) -> WorkerPlace {
    let mut p = WorkerPlace {
        shared: false,
        shuffle: Some(addr.into()),
        local_inputs: Vec::new(),
    };
    for &i in local {
        p.set_input(i);
    }
    p
}

/// A one-reduce job of two one-map inputs, and two workers placed at
/// `first` and `second`.
fn two_workers(
    t0: Instant,
    first: WorkerPlace,
    second: WorkerPlace,
) -> (Scheduler, WorkerId, WorkerId) {
    let mut c = cfg(1);
    c.split_size = 150;
    let mut s = Scheduler::new(c, inputs(2));
    let a = s.register(t0, "wc", false).unwrap();
    let b = s.register(t0, "wc", false).unwrap();
    assert!(s.announce(a, first) && s.announce(b, second));
    (s, a, b)
}

mod assign;
mod failures;
mod records;
mod resume;
