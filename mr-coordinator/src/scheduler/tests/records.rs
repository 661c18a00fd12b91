//! What the scheduler records as it decides: attempt times, and the counts kept beside the records.

use super::*;

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
