//! Failures and losses: strikes, rests, lost workers and outputs, skipped records, reports only from an attempt's own worker, a commit in progress.

use super::*;

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
