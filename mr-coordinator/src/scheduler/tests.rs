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

#[test]
fn runs_maps_then_reduces_then_exits() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(cfg(2), inputs(2));
    let w = s.register(t0, "wc", false).unwrap();
    // 2 files of 150 bytes with 100-byte splits: 3 map tasks (the second
    // split packs the first file's tail with the second file's head).
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (m, a) = map_of(&s.assign(w, t0));
        seen.push(m.0);
        assert_eq!(ok(&mut s, a, t0), Verdict::Accepted(TaskRef::Map(m)));
    }
    assert_eq!(seen, [0, 1, 2]);
    let (r0, a0, v) = reduce_of(&s.assign(w, t0));
    let maps = list(&mut s, v);
    assert_eq!(maps.len(), 3);
    let (r1, a1, _) = reduce_of(&s.assign(w, t0));
    assert_eq!((r0.0, r1.0), (0, 1));
    assert!(matches!(s.assign(w, t0), Assignment::Wait { .. }));
    ok(&mut s, a0, t0);
    ok(&mut s, a1, t0);
    assert!(s.is_done());
    assert!(matches!(s.assign(w, t0), Assignment::Exit));
    assert!(s.all_workers_dismissed());
    // Told, but not gone until it hangs up.
    assert!(!s.all_workers_gone());
    s.worker_lost(w, t0);
    assert!(s.all_workers_gone());
}

#[test]
fn whole_file_apps_get_one_split_per_file() {
    let mut s = Scheduler::new(cfg(1), inputs(3));
    s.register(Instant::now(), "nocrash", true).unwrap();
    assert_eq!(s.progress().maps, 3);
}

#[test]
fn reduces_wait_for_every_map() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(cfg(1), inputs(1));
    let w1 = s.register(t0, "wc", false).unwrap();
    let w2 = s.register(t0, "wc", false).unwrap();
    let (_, a) = map_of(&s.assign(w1, t0));
    let (_, b) = map_of(&s.assign(w2, t0));
    ok(&mut s, a, t0);
    // One map still running: no reduce may start.
    assert!(matches!(s.assign(w1, t0), Assignment::Wait { .. }));
    ok(&mut s, b, t0);
    reduce_of(&s.assign(w1, t0));
}

#[test]
fn idle_workers_are_told_to_wait_longer_the_more_there_are() {
    let t0 = Instant::now();
    let wait_of = |a: Assignment| match a {
        Assignment::Wait { millis } => millis,
        other => panic!("expected a wait, got {other:?}"),
    };
    let mut s = Scheduler::new(cfg(1), inputs(1));
    let w1 = s.register(t0, "wc", false).unwrap();
    let w2 = s.register(t0, "wc", false).unwrap();
    // Both maps running, none done: nothing to do but wait.
    map_of(&s.assign(w1, t0));
    map_of(&s.assign(w2, t0));
    // Two workers: the configured 50 ms.
    assert_eq!(wait_of(s.assign(w2, t0)), 50);
    // 4,000 workers asking every 200 ms make the 20,000 asks a second allowed.
    for _ in 2..4_000 {
        s.register(t0, "wc", false).unwrap();
    }
    assert_eq!(wait_of(s.assign(w2, t0)), 200);
    // Never more than a second, however many.
    for _ in 4_000..50_000 {
        s.register(t0, "wc", false).unwrap();
    }
    assert_eq!(wait_of(s.assign(w2, t0)), 1000);
}

#[test]
fn lost_worker_tasks_are_reissued_and_late_reports_ignored() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(cfg(1), inputs(1));
    let w1 = s.register(t0, "wc", false).unwrap();
    let w2 = s.register(t0, "wc", false).unwrap();
    let (m, a) = map_of(&s.assign(w1, t0));
    assert_eq!(s.worker_lost(w1, Instant::now()), vec![TaskRef::Map(m)]);
    assert!(!s.touch(w1, t0), "a lost worker must register again");
    assert_eq!(s.attempt_tally().abandoned, 1, "the lost worker's attempt");
    let (m2, b) = map_of(&s.assign(w2, t0));
    assert_eq!(m, m2);
    assert_ne!(a, b);
    assert_eq!(ok(&mut s, b, t0), Verdict::Accepted(TaskRef::Map(m)));
    assert_eq!(s.attempt_tally().abandoned, 1);
    // The lost worker's attempt finishing late, or a duplicate report.
    assert_eq!(ok(&mut s, a, t0), Verdict::Ignored);
    assert_eq!(ok(&mut s, b, t0), Verdict::Ignored);
    assert_eq!(
        fail(
            &mut s,
            AttemptId(999),
            TaskFailure::Io {
                path: "x".into(),
                reason: "y".into()
            }
        ),
        Verdict::Ignored
    );
}

#[test]
fn silent_workers_expire_after_the_timeout() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(cfg(1), inputs(1));
    let w1 = s.register(t0, "wc", false).unwrap();
    let w2 = s.register(t0, "wc", false).unwrap();
    map_of(&s.assign(w1, t0));
    assert!(s.expire(t0 + Duration::from_secs(5)).is_empty());
    assert!(s.touch(w2, t0 + Duration::from_secs(9)));
    assert_eq!(s.expire(t0 + Duration::from_secs(11)), vec![w1]);
    assert_eq!(s.progress().workers_alive, 1);
    map_of(&s.assign(w2, t0 + Duration::from_secs(11)));
}

#[test]
fn failures_retry_then_fail_the_job() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(cfg(1), inputs(1));
    let w = s.register(t0, "wc", false).unwrap();
    let panic = TaskFailure::AppPanic {
        message: "boom".into(),
        phase: Phase::Map,
        record: BadRecord::Line {
            input: "in-0".into(),
            offset: 120,
        },
    };
    for i in 0..3 {
        let (m, a) = map_of(&s.assign(w, t0));
        assert_eq!(m.0, 0);
        assert_eq!(
            fail(&mut s, a, panic.clone()),
            Verdict::FailureRecorded(TaskRef::Map(m))
        );
        assert_eq!(s.failure().is_some(), i == 2);
    }
    let msg = s.failure().unwrap().to_string();
    assert!(
        msg.contains("map-0")
            && msg.contains("boom")
            && msg.contains("'in-0'")
            && msg.contains("byte offset 120"),
        "{msg}"
    );
    assert!(matches!(s.assign(w, t0), Assignment::Exit));
}

#[test]
fn a_worker_whose_disk_failed_rests_while_others_take_its_task() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(cfg(1), inputs(2));
    let full = s.register(t0, "wc", false).unwrap();
    let healthy = s.register(t0, "wc", false).unwrap();
    let io = TaskFailure::Io {
        path: "/small/disk/mr-0.tmp".into(),
        reason: "No space left on device (os error 28)".into(),
    };
    let (m, a) = map_of(&s.assign(full, t0));
    s.failed(full, a, io.clone(), t0);
    // The full worker is told to wait; the task goes to the other one.
    assert!(matches!(s.assign(full, t0), Assignment::Wait { .. }));
    let (again, b) = map_of(&s.assign(healthy, t0));
    assert_eq!(again, m);
    ok(&mut s, b, t0);
    // After its rest it gets work again; failing again, it rests twice as
    // long (and the task's strikes still count).
    let t1 = t0 + IO_REST;
    let (_, c) = map_of(&s.assign(full, t1));
    s.failed(full, c, io.clone(), t1);
    assert!(matches!(
        s.assign(full, t1 + IO_REST),
        Assignment::Wait { .. }
    ));
    let (_, d) = map_of(&s.assign(full, t1 + 2 * IO_REST));
    // A success ends the run of failures: the next rest is the first's.
    let t2 = t1 + 2 * IO_REST;
    ok(&mut s, d, t2);
    let (_, e) = map_of(&s.assign(full, t2));
    s.failed(full, e, io, t2);
    assert!(matches!(s.assign(full, t2), Assignment::Wait { .. }));
    assert!(!matches!(
        s.assign(full, t2 + IO_REST),
        Assignment::Wait { .. }
    ));
    assert!(s.failure().is_none());
}

#[test]
fn only_a_workers_own_disk_makes_it_rest_not_the_store_or_a_commit() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(cfg(1), inputs(3));
    let w = s.register(t0, "wc", false).unwrap();
    // The store failed the worker's upload: no rest.
    let (_, a) = map_of(&s.assign(w, t0));
    let store = TaskFailure::Io {
        path: "s3://b/out/mr-out-0".into(),
        reason: "503 Slow Down".into(),
    };
    s.failed(w, a, store, t0);
    let (_, b) = map_of(&s.assign(w, t0));
    // The coordinator could not move a committed output into place: no rest.
    let rename = TaskFailure::Io {
        path: "/out/.mr-out-0.7.tmp".into(),
        reason: "cannot commit".into(),
    };
    s.failed_at_commit(w, b, rename, t0);
    assert!(!matches!(s.assign(w, t0), Assignment::Wait { .. }));
}

#[test]
fn a_refused_fetch_is_a_strike_against_the_reduce_and_reruns_no_map() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(cfg(1), inputs(1));
    let w = s.register(t0, "wc", false).unwrap();
    for _ in 0..2 {
        let (_, a) = map_of(&s.assign(w, t0));
        ok(&mut s, a, t0);
    }
    let refused = TaskFailure::FetchRefused {
        map: MapTaskId(1),
        host: "10.0.0.2:4000".into(),
        reason: mr_protocol::FetchError::BadToken,
    };
    for i in 0..3 {
        let (_, ra, _) = reduce_of(&s.assign(w, t0));
        fail(&mut s, ra, refused.clone());
        // The maps stay done: the next assignment is the reduce again.
        assert!(s.map_done(MapTaskId(0)) && s.map_done(MapTaskId(1)));
        assert_eq!(s.failure().is_some(), i == 2, "strike {i}");
    }
    let msg = s.failure().unwrap().to_string();
    assert!(
        msg.contains("reduce-0") && msg.contains("refused") && msg.contains("10.0.0.2:4000"),
        "{msg}"
    );
}

#[test]
fn lost_map_output_reruns_the_map_without_a_strike() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(cfg(1), inputs(1));
    let w = s.register(t0, "wc", false).unwrap();
    let mut first = Vec::new();
    for _ in 0..2 {
        let (_, a) = map_of(&s.assign(w, t0));
        ok(&mut s, a, t0);
        first.push(a);
    }
    let (_, ra, _) = reduce_of(&s.assign(w, t0));
    let lost = TaskFailure::MapOutputLost {
        map: MapTaskId(1),
        attempt: first[1],
        reason: "checksum mismatch".into(),
    };
    assert!(matches!(
        fail(&mut s, ra, lost),
        Verdict::FailureRecorded(_)
    ));
    let (m, again) = map_of(&s.assign(w, t0));
    assert_eq!(m, MapTaskId(1));
    ok(&mut s, again, t0);
    let (_, _, v) = reduce_of(&s.assign(w, t0));
    let maps = list(&mut s, v);
    assert_eq!(maps[0].attempt, first[0]);
    assert_eq!(
        maps[1].attempt, again,
        "the reduce must read the new output"
    );
    assert!(s.failure().is_none());
}

#[test]
fn wrong_app_is_refused() {
    let mut c = cfg(1);
    c.app = Some("wc".into());
    let mut s = Scheduler::new(c, inputs(1));
    let err = s.register(Instant::now(), "indexer", false).unwrap_err();
    assert!(err.to_string().contains("'wc'") && err.to_string().contains("'indexer'"));
    // Without --app, the first worker fixes the app.
    let mut s = Scheduler::new(cfg(1), inputs(1));
    s.register(Instant::now(), "indexer", false).unwrap();
    assert!(s.register(Instant::now(), "wc", false).is_err());
}

#[test]
fn backups_only_for_genuine_stragglers() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(cfg(1), inputs(2)); // 3 maps
    let w1 = s.register(t0, "wc", false).unwrap();
    let w2 = s.register(t0, "wc", false).unwrap();
    let (slow, slow_a) = map_of(&s.assign(w1, t0));
    for _ in 0..2 {
        let (_, a) = map_of(&s.assign(w2, t0));
        ok(&mut s, a, t0 + Duration::from_secs(1));
    }
    // Running 5 s: over twice the median (1 s) but under the 10 s floor.
    assert!(matches!(
        s.assign(w2, t0 + Duration::from_secs(5)),
        Assignment::Wait { .. }
    ));
    // The straggler's own worker never gets its backup.
    assert!(matches!(
        s.assign(w1, t0 + Duration::from_secs(11)),
        Assignment::Wait { .. }
    ));
    let later = t0 + Duration::from_secs(11);
    let (m, backup) = map_of(&s.assign(w2, later));
    assert_eq!(m, slow);
    assert_eq!(
        ok(&mut s, backup, later),
        Verdict::Accepted(TaskRef::Map(m))
    );
    assert_eq!(s.cancellable(w1, &[slow_a]), vec![slow_a]);
    assert_eq!(ok(&mut s, slow_a, later), Verdict::Ignored);
}

#[test]
fn a_lower_backup_floor_backs_up_short_stragglers_sooner() {
    let t0 = Instant::now();
    let mut c = cfg(1);
    c.backup_after = Duration::from_millis(1500);
    let mut s = Scheduler::new(c, inputs(2)); // 3 maps
    let w1 = s.register(t0, "wc", false).unwrap();
    let w2 = s.register(t0, "wc", false).unwrap();
    let (slow, _) = map_of(&s.assign(w1, t0));
    for _ in 0..2 {
        let (_, a) = map_of(&s.assign(w2, t0));
        ok(&mut s, a, t0 + Duration::from_millis(500));
    }
    // Median 0.5 s: twice it is 1 s, and the floor 1.5 s is the bound.
    assert!(matches!(
        s.assign(w2, t0 + Duration::from_millis(1400)),
        Assignment::Wait { .. }
    ));
    let (m, _) = map_of(&s.assign(w2, t0 + Duration::from_millis(1600)));
    assert_eq!(m, slow);
}

fn skips_of(a: &Assignment) -> Vec<BadRecord> {
    match a {
        Assignment::Work(w) => w.skip().to_vec(),
        other => panic!("expected a task, got {other:?}"),
    }
}

#[test]
fn with_skipping_a_bad_record_is_skipped_by_the_next_attempt_without_a_strike() {
    let t0 = Instant::now();
    let mut c = cfg(1);
    c.skip_bad_records = true;
    let mut s = Scheduler::new(c, inputs(1));
    let w = s.register(t0, "wc", false).unwrap();
    let bad = |offset| TaskFailure::AppPanic {
        message: "boom".into(),
        phase: Phase::Map,
        record: BadRecord::Line {
            input: "in-0".into(),
            offset,
        },
    };
    // Five different bad records in one split: more than max_attempts (3),
    // yet none is a strike, because each is new and gets skipped.
    let mut want = Vec::new();
    for off in [0, 10, 20, 30, 40] {
        let a = s.assign(w, t0);
        assert_eq!(skips_of(&a), want);
        let (_, id) = map_of(&a);
        fail(&mut s, id, bad(off));
        assert!(s.failure().is_none());
        want.push(BadRecord::Line {
            input: "in-0".into(),
            offset: off,
        });
    }
    let a = s.assign(w, t0);
    assert_eq!(skips_of(&a).len(), 5);
    // A combine panic has no record to skip: it counts.
    for _ in 0..3 {
        let (_, id) = map_of(&s.assign(w, t0));
        fail(
            &mut s,
            id,
            TaskFailure::AppPanic {
                message: "c".into(),
                phase: Phase::Combine,
                record: BadRecord::Combined("in-0".into()),
            },
        );
    }
    assert!(s.failure().is_some());
}

/// The word count, planned to split its inputs.
fn wc() -> PlannedApp {
    PlannedApp {
        name: "wc".into(),
        whole_file: false,
    }
}

/// Map `task` done by `attempt`, its output in the job directory.
fn in_job_dir(task: MapTaskId, attempt: AttemptId, counters: Counters) -> ResumedMap {
    ResumedMap {
        done: Finished {
            task,
            attempt,
            counters,
        },
        holder: None,
    }
}

#[test]
fn restore_keeps_journaled_work_and_starts_a_new_attempt_range() {
    let t0 = Instant::now();
    let c = |n| Counters {
        input_records: n,
        ..Counters::default()
    };
    let r = Resume {
        incarnation: 2,
        app: Some(wc()),
        maps: vec![
            in_job_dir(MapTaskId(0), AttemptId(7), c(10)),
            in_job_dir(MapTaskId(2), AttemptId(9), c(20)),
        ],
        reduces: vec![Finished {
            task: ReduceTaskId(1),
            attempt: AttemptId(11),
            counters: c(0),
        }],
    };
    let mut s = Scheduler::new(cfg(2), inputs(2));
    s.restore(&r);
    assert_eq!(s.planned_app(), Some(wc()));
    let p = s.progress();
    assert_eq!((p.maps, p.maps_done, p.reduces_done), (3, 2, 1));
    let w = s.register(t0, "wc", false).unwrap();
    // Only map 1 is left; its attempt id is in incarnation 2's range.
    let (m, a) = map_of(&s.assign(w, t0));
    assert_eq!(m, MapTaskId(1));
    assert_eq!(a.0, 2 << 32);
    ok(&mut s, a, t0);
    // Only reduce 0 is left, and it reads the journaled map outputs.
    let (red, ra, v) = reduce_of(&s.assign(w, t0));
    let maps = list(&mut s, v);
    assert_eq!(red, ReduceTaskId(0));
    assert_eq!(
        maps.iter().map(|m| m.attempt.0).collect::<Vec<_>>(),
        vec![7, 2 << 32, 9]
    );
    // A report naming an attempt of the old incarnation is ignored.
    assert_eq!(ok(&mut s, AttemptId(5), t0), Verdict::Ignored);
    // Counters carry over from the journal and add up with new ones.
    s.set_counters(TaskRef::Map(MapTaskId(1)), c(5));
    assert_eq!(s.counters().input_records, 35);
    ok(&mut s, ra, t0);
    assert!(s.is_done());
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

#[test]
fn maps_go_first_to_workers_that_read_their_inputs() {
    let t0 = Instant::now();
    // Split size 150: one map per file.
    let mut c = cfg(1);
    c.split_size = 150;
    let mut s = Scheduler::new(c, inputs(3));
    let near = s.register(t0, "wc", false).unwrap();
    let far = s.register(t0, "wc", false).unwrap();
    assert!(s.announce(near, outside("10.0.0.1:1", &[2])));
    assert!(s.announce(far, outside("10.0.0.2:1", &[])));
    // The far worker asks first: it gets a map nobody reads locally, not
    // map 2, which stays for the worker holding its input.
    assert_eq!(map_of(&s.assign(far, t0)).0, MapTaskId(0));
    assert_eq!(map_of(&s.assign(near, t0)).0, MapTaskId(2));
    assert_eq!(map_of(&s.assign(far, t0)).0, MapTaskId(1));
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

#[test]
fn a_lost_worker_takes_the_map_outputs_on_its_disk_but_not_the_shared_ones() {
    let t0 = Instant::now();
    let shared = WorkerPlace {
        shared: true,
        shuffle: Some("10.0.0.1:7".into()),
        local_inputs: vec![u64::MAX],
    };
    let (mut s, gone, stays) = two_workers(t0, outside("10.0.0.9:7", &[]), shared);
    let (m0, a0) = map_of(&s.assign(gone, t0));
    ok(&mut s, a0, t0);
    let (m1, a1) = map_of(&s.assign(stays, t0));
    ok(&mut s, a1, t0);
    assert_eq!(s.output_holder(m0).as_deref(), Some("10.0.0.9:7"));
    assert_eq!(
        s.output_holder(m1),
        None,
        "in the job directory: nothing to journal"
    );
    let reissued = s.worker_lost(gone, Instant::now());
    assert_eq!(reissued, vec![TaskRef::Map(m0)]);
    assert_eq!(s.take_lost_outputs(), vec![m0]);
    assert!(!s.map_done(m0) && s.map_done(m1));
    let (again, a2) = map_of(&s.assign(stays, t0));
    assert_eq!(again, m0);
    ok(&mut s, a2, t0);
    let (_, ra, v) = reduce_of(&s.assign(stays, t0));
    let maps = list(&mut s, v);
    assert_eq!(maps[0].attempt, a2);
    assert!(maps[0].in_job_dir && maps[1].in_job_dir);
    assert_eq!(maps[0].host.as_deref(), Some("10.0.0.1:7"));
    // A late report of the lost output's loss does not undo the new one.
    let stale = TaskFailure::MapOutputLost {
        map: m0,
        attempt: a0,
        reason: "fetch failed".into(),
    };
    fail(&mut s, ra, stale);
    assert!(
        s.map_done(m0),
        "a loss report about an older attempt changes nothing"
    );
}

#[test]
fn only_an_attempts_own_worker_may_report_it() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(cfg(1), inputs(1));
    let w1 = s.register(t0, "wc", false).unwrap();
    let w2 = s.register(t0, "wc", false).unwrap();
    let (m, a) = map_of(&s.assign(w1, t0));
    let io = TaskFailure::Io {
        path: "x".into(),
        reason: "y".into(),
    };
    // Another worker can neither fail nor complete w1's attempt.
    assert_eq!(s.reported_task(w2, a), None);
    assert_eq!(s.would_accept(w2, a), None);
    assert_eq!(s.failed(w2, a, io.clone(), t0), Verdict::Ignored);
    assert_eq!(s.succeeded(w2, a, t0), Verdict::Ignored);
    assert_eq!(s.progress().maps_done, 0);
    assert_eq!(s.attempt_log()[0].outcome, Outcome::Running);
    // Its owner can.
    assert_eq!(s.reported_task(w1, a), Some(TaskRef::Map(m)));
    assert_eq!(s.succeeded(w1, a, t0), Verdict::Accepted(TaskRef::Map(m)));
}

#[test]
fn attempt_end_times_are_the_times_passed_in() {
    let t0 = Instant::now();
    let t1 = t0 + Duration::from_secs(3);
    let t2 = t0 + Duration::from_secs(7);
    let mut s = Scheduler::new(cfg(1), inputs(1));
    let w1 = s.register(t0, "wc", false).unwrap();
    let w2 = s.register(t0, "wc", false).unwrap();
    let (_, a) = map_of(&s.assign(w1, t0));
    let io = TaskFailure::Io {
        path: "x".into(),
        reason: "y".into(),
    };
    s.failed(w1, a, io, t1);
    let (_, b) = map_of(&s.assign(w2, t1));
    s.worker_lost(w2, t2);
    let log = s.attempt_log();
    assert_eq!((log[0].attempt, log[0].ended), (a, Some(t1)));
    assert_eq!((log[1].attempt, log[1].ended), (b, Some(t2)));
    assert_eq!(log[1].outcome, Outcome::Abandoned);
}

#[test]
fn a_reduce_being_committed_is_neither_won_by_another_attempt_nor_reissued() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(cfg(2), inputs(1));
    let w1 = s.register(t0, "wc", false).unwrap();
    let w2 = s.register(t0, "wc", false).unwrap();
    for _ in 0..2 {
        let (_, a) = map_of(&s.assign(w1, t0));
        ok(&mut s, a, t0);
    }
    let (r0, a, _) = reduce_of(&s.assign(w1, t0));
    let (r1, b, _) = reduce_of(&s.assign(w2, t0));
    assert_eq!(s.begin_commit(w1, a), Some(r0));
    // Not twice, and not by another worker.
    assert_eq!(s.begin_commit(w1, a), None);
    assert_eq!(s.begin_commit(w1, b), None);
    // Its worker lost mid-commit: the output is in the store, not on the
    // worker, so the task is not reissued; the commit still counts.
    assert!(s.worker_lost(w1, t0).is_empty());
    let w3 = s.register(t0, "wc", false).unwrap();
    assert!(matches!(s.assign(w3, t0), Assignment::Wait { .. }));
    assert_eq!(
        s.finish_commit(r0, a, Ok(()), t0),
        Verdict::Accepted(TaskRef::Reduce(r0))
    );
    assert_eq!(s.finish_commit(r0, a, Ok(()), t0), Verdict::Ignored);
    // A commit that fails is a failed attempt: the task runs again.
    assert_eq!(s.begin_commit(w2, b), Some(r1));
    let broken = TaskFailure::Io {
        path: "s3://b/out/mr-out-1".into(),
        reason: "completing the upload failed".into(),
    };
    assert_eq!(
        s.finish_commit(r1, b, Err(broken), t0),
        Verdict::FailureRecorded(TaskRef::Reduce(r1))
    );
    let (again, c, _) = reduce_of(&s.assign(w3, t0));
    assert_eq!(again, r1);
    assert_eq!(s.begin_commit(w3, c), Some(r1));
    assert_eq!(
        s.finish_commit(r1, c, Ok(()), t0),
        Verdict::Accepted(TaskRef::Reduce(r1))
    );
    assert!(s.is_done());
}

#[test]
fn counts_kept_beside_the_records_agree_with_them() {
    // The job's totals, running and failed counts are kept as decisions
    // happen (not recounted per report): a lost output's counters leave
    // the totals, its re-run's come in, each counted once.
    let t0 = Instant::now();
    let (mut s, gone, stays) =
        two_workers(t0, outside("10.0.0.9:7", &[]), outside("10.0.0.1:7", &[]));
    let counted = |bytes: u64| Counters {
        input_bytes: bytes,
        ..Counters::default()
    };
    let (m0, a0) = map_of(&s.assign(gone, t0));
    let (m1, a1) = map_of(&s.assign(stays, t0));
    let p = s.progress();
    assert_eq!(
        (p.maps_running, p.reduces_running, p.failed_attempts),
        (2, 0, 0)
    );
    ok(&mut s, a0, t0);
    s.set_counters(TaskRef::Map(m0), counted(100));
    assert_eq!(fail(&mut s, a1, TaskFailure::Cancelled), Verdict::Ignored);
    assert_eq!(s.progress().maps_running, 0);
    let (again1, a1) = map_of(&s.assign(stays, t0));
    assert_eq!(again1, m1);
    let io = TaskFailure::Input {
        path: "x".into(),
        reason: "unreadable".into(),
    };
    fail(&mut s, a1, io);
    assert_eq!(s.progress().failed_attempts, 1);
    let (_, a1) = map_of(&s.assign(stays, t0));
    ok(&mut s, a1, t0);
    s.set_counters(TaskRef::Map(m1), counted(10));
    assert_eq!(s.counters().input_bytes, 110);
    // The holder of map 0's output goes: its 100 bytes leave the totals.
    s.worker_lost(gone, t0);
    assert_eq!(s.counters().input_bytes, 10);
    let (again0, a2) = map_of(&s.assign(stays, t0));
    assert_eq!(again0, m0);
    ok(&mut s, a2, t0);
    s.set_counters(TaskRef::Map(m0), counted(100));
    assert_eq!(s.counters().input_bytes, 110);
    let (_, ra, _) = reduce_of(&s.assign(stays, t0));
    assert_eq!(s.progress().reduces_running, 1);
    ok(&mut s, ra, t0);
    let p = s.progress();
    assert_eq!(
        (p.maps_running, p.reduces_running, p.failed_attempts),
        (0, 0, 1)
    );
    assert_eq!((p.maps_done, p.reduces_done), (2, 1));
    // What each worker did, kept as it happened: the lost holder keeps its
    // attempt given but not the task (its output went), the other has
    // both maps' bytes and the reduce.
    let page = s.worker_page(0, 10);
    let did = |w: WorkerId| page.iter().find(|p| p.id == w).unwrap().tally;
    assert_eq!(
        (did(gone).given, did(gone).tasks_done, did(gone).input_bytes),
        (1, 0, 0)
    );
    assert_eq!(
        (
            did(stays).given,
            did(stays).tasks_done,
            did(stays).input_bytes
        ),
        (5, 3, 110)
    );
    // The attempt figures agree with the attempt log, counted here.
    let log = s.attempt_log();
    let t = s.attempt_tally();
    let maps = log
        .iter()
        .filter(|a| matches!(a.task, TaskRef::Map(_)))
        .count() as u64;
    assert_eq!((t.maps_started, t.reduces_started), (maps, 1));
    for w in [gone, stays] {
        let given = log.iter().filter(|a| a.worker == w).count() as u64;
        assert_eq!(did(w).given, given);
    }
    let abandoned = log
        .iter()
        .filter(|a| a.outcome == Outcome::Abandoned)
        .count() as u64;
    assert_eq!(t.abandoned, abandoned);
    assert_eq!((t.map_seconds.count, t.reduce_seconds.count), (3, 1));
    // A page of the log is that stretch of it.
    assert_eq!(s.attempt_page(1, 2), log[1..3].to_vec());
    assert_eq!(s.attempt_page(log.len() as u64 + 5, 2), Vec::new());
}

#[test]
fn held_reduces_wait_for_the_cache_lookup_then_run_only_what_it_lacked() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(cfg(3), inputs(1));
    let w = s.register(t0, "wc", false).unwrap();
    s.hold_reduces();
    // No lookup is due while maps run.
    let (m0, a0) = map_of(&s.assign(w, t0));
    ok(&mut s, a0, t0);
    assert!(!s.reduce_lookup_due());
    let (_, a1) = map_of(&s.assign(w, t0));
    assert_eq!(m0.0, 0);
    ok(&mut s, a1, t0);
    // The maps are done: the lookup is due once, and until it is over
    // workers wait rather than start a reduce the cache may hold.
    assert!(s.reduce_lookup_due());
    assert!(!s.reduce_lookup_due());
    assert!(matches!(s.assign(w, t0), Assignment::Wait { .. }));
    assert_eq!(s.reduces_left().len(), 3);
    // Reduces 0 and 2 came from the cache: only reduce 1 runs.
    let cached = |r: u32| Finished {
        task: ReduceTaskId(r),
        attempt: AttemptId::cached(r),
        counters: Counters::default(),
    };
    s.release_reduces(&[cached(0), cached(2)], Vec::new(), t0);
    assert_eq!(s.reduces_left(), vec![ReduceTaskId(1)]);
    let (r, a, v) = reduce_of(&s.assign(w, t0));
    let maps = list(&mut s, v);
    assert_eq!((r.0, maps.len()), (1, 2));
    assert!(matches!(s.assign(w, t0), Assignment::Wait { .. }));
    ok(&mut s, a, t0);
    assert!(s.is_done());
    // Holding is a no-op once the maps are done (looked up at the start).
    let mut s = Scheduler::new(cfg(1), inputs(1));
    let w = s.register(t0, "wc", false).unwrap();
    for _ in 0..2 {
        let (_, a) = map_of(&s.assign(w, t0));
        ok(&mut s, a, t0);
    }
    s.hold_reduces();
    assert!(!s.reduce_lookup_due());
    reduce_of(&s.assign(w, t0));
}

/// The assignment of a reduce: whether it is asked for its index, and the
/// pieces it may copy.
fn reuse_of(a: &Assignment) -> (bool, Option<Arc<ReduceReuse>>) {
    match a {
        Assignment::Work(Work::Reduce(r)) => (r.index, r.reuse.clone()),
        other => panic!("expected a reduce, got {other:?}"),
    }
}

#[test]
fn pieces_to_copy_go_with_a_reduce_until_an_attempt_fails_or_a_map_output_changes() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(cfg(2), inputs(1));
    let w = s.register(t0, "wc", false).unwrap();
    s.hold_reduces();
    let mut maps = Vec::new();
    for _ in 0..2 {
        let (_, a) = map_of(&s.assign(w, t0));
        ok(&mut s, a, t0);
        maps.push(a);
    }
    assert!(s.reduce_lookup_due());
    let plan = |r: u32| {
        let reuse = ReduceReuse {
            previous: format!("earlier-{r}"),
            pieces: vec![ReusePiece::Copy {
                start: None,
                offset: 0,
                len: 5,
            }],
        };
        (ReduceTaskId(r), Arc::new(reuse))
    };
    s.release_reduces(&[], vec![plan(0), plan(1)], t0);
    // Each reduce gets its own plan, and is asked for its index.
    let a0 = s.assign(w, t0);
    let (index, reuse) = reuse_of(&a0);
    assert!(index);
    assert_eq!(reuse.unwrap().previous, "earlier-0");
    // A failed attempt: the next reduces every key.
    let (r0, att0, _) = reduce_of(&a0);
    assert_eq!(r0, ReduceTaskId(0));
    fail(
        &mut s,
        att0,
        TaskFailure::Input {
            path: "x".into(),
            reason: "y".into(),
        },
    );
    let again = s.assign(w, t0);
    assert_eq!(reduce_of(&again).0, ReduceTaskId(0));
    assert!(reuse_of(&again).1.is_none());
    // Reduce 1 still has its plan, until a map's output is found lost.
    let a1 = s.assign(w, t0);
    assert_eq!(reuse_of(&a1).1.unwrap().previous, "earlier-1");
    let lost = TaskFailure::MapOutputLost {
        map: MapTaskId(0),
        attempt: maps[0],
        reason: "gone".into(),
    };
    fail(&mut s, reduce_of(&a1).1, lost);
    let (m, rerun) = map_of(&s.assign(w, t0));
    assert_eq!(m, MapTaskId(0));
    ok(&mut s, rerun, t0);
    let a1 = s.assign(w, t0);
    assert_eq!(reduce_of(&a1).0, ReduceTaskId(1));
    assert!(
        reuse_of(&a1).1.is_none(),
        "the plan named blocks of the lost output"
    );
    // A job without a cache never asks for an index.
    let mut s = Scheduler::new(cfg(1), inputs(1));
    let w = s.register(t0, "wc", false).unwrap();
    for _ in 0..2 {
        let (_, a) = map_of(&s.assign(w, t0));
        ok(&mut s, a, t0);
    }
    assert_eq!(reuse_of(&s.assign(w, t0)), (false, None));
}

/// The work mark wakes waiting workers exactly when there is more to hand
/// out: the first maps planned, reduces freed by the last map, a task
/// made idle again, the job's end; never when work is only taken.
#[test]
fn the_work_mark_rises_only_when_waiting_workers_have_something_to_do() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(cfg(2), inputs(1));
    let before = s.work_mark();
    let w1 = s.register(t0, "wc", false).unwrap();
    let w2 = s.register(t0, "wc", false).unwrap();
    // Registering planned two maps.
    assert!(s.work_mark().wakes_after(before));
    let before = s.work_mark();
    let (_, a) = map_of(&s.assign(w1, t0));
    let (_, b) = map_of(&s.assign(w2, t0));
    assert!(
        !s.work_mark().wakes_after(before),
        "taking work wakes no one"
    );
    let before = s.work_mark();
    ok(&mut s, a, t0);
    assert!(!s.work_mark().wakes_after(before), "a map is still running");
    // A failed map is idle again: a waiting worker can take it.
    let before = s.work_mark();
    fail(
        &mut s,
        b,
        TaskFailure::Input {
            path: "x".into(),
            reason: "disk".into(),
        },
    );
    assert!(s.work_mark().wakes_after(before));
    let (_, b) = map_of(&s.assign(w2, t0));
    // The last map frees both reduces.
    let before = s.work_mark();
    ok(&mut s, b, t0);
    assert!(s.work_mark().wakes_after(before));
    let (_, r0, _) = reduce_of(&s.assign(w1, t0));
    let (_, r1, _) = reduce_of(&s.assign(w2, t0));
    ok(&mut s, r0, t0);
    // The job's end wakes everyone to hear "exit".
    let before = s.work_mark();
    ok(&mut s, r1, t0);
    assert!(s.work_mark().wakes_after(before));
}

/// Held reduces are work only once let go.
#[test]
fn held_reduces_wake_waiting_workers_when_released() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(cfg(1), inputs(1));
    let w = s.register(t0, "wc", false).unwrap();
    s.hold_reduces();
    let (_, a) = map_of(&s.assign(w, t0));
    let (_, b) = map_of(&s.assign(w, t0));
    ok(&mut s, a, t0);
    let before = s.work_mark();
    ok(&mut s, b, t0);
    assert!(
        !s.work_mark().wakes_after(before),
        "held: nothing to hand out"
    );
    assert!(s.reduce_lookup_due());
    let before = s.work_mark();
    s.release_reduces(&[], Vec::new(), t0);
    assert!(s.work_mark().wakes_after(before));
}
