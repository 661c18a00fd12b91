//! Handing out work: maps before reduces, splits per app, waiting and its pace, backups, locality, the work mark.

use super::*;

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
