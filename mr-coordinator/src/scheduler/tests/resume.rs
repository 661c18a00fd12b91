//! Starting from what was done before: a journal's Resume, reduces held for the cache's lookup, pieces of earlier outputs to copy.

use super::*;

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
