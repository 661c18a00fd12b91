//! Crashed, stalled and vanished processes.

use crate::util::{data_files, sorted_lines, TestDir};
use std::time::Duration;

#[test]
fn a_killed_worker_is_noticed_by_its_dropped_connection() {
    let t = TestDir::new();
    let files = data_files();
    // A task timeout far beyond the test's patience: only the dropped
    // connection can get the killed worker's task reissued in time.
    let mut args = vec!["--task-timeout", "600"];
    args.extend(files.iter().map(String::as_str));
    let (mut c, addr) = t.coordinator(&args);
    let victim = t.worker(&addr, "jobcount");
    std::thread::sleep(Duration::from_millis(700)); // mid-map: jobcount maps take 2-5 s
    victim.signal("KILL");
    drop(victim);
    let _w = t.worker(&addr, "jobcount");
    let st = c
        .wait_for(Duration::from_secs(90))
        .expect("job finishes without waiting for the timeout");
    assert!(st.success());
    let lines = sorted_lines(&t.outputs(t.path(), 10));
    assert_eq!(lines.len(), 1);
    let n: u32 = String::from_utf8_lossy(&lines[0][2..]).parse().unwrap();
    assert!(n >= 9, "8 maps plus at least the killed one: {n}");
}

#[test]
fn a_stopped_worker_times_out_and_its_task_runs_elsewhere() {
    let t = TestDir::new();
    let files = data_files();
    let mut args = vec!["--task-timeout", "1", "--app", "early_exit"];
    args.extend(files.iter().map(String::as_str));
    let (mut c, addr) = t.coordinator(&args);
    let stalled = t.worker(&addr, "early_exit");
    // Reduces of keys containing "sherlock" or "tom" sleep 3 s: stop the
    // worker while it is inside one, then let another worker finish.
    std::thread::sleep(Duration::from_millis(1500));
    stalled.signal("STOP");
    let _w = t.worker(&addr, "early_exit");
    let st = c.wait_for(Duration::from_secs(60)).expect("job finishes");
    assert!(st.success());
    drop(stalled);
    let lines = sorted_lines(&t.outputs(t.path(), 10));
    assert_eq!(lines.len(), 8, "one line per input file");
    assert!(lines.iter().all(|l| l.ends_with(b" 1")));
}

#[test]
fn workers_exit_zero_when_the_coordinator_vanishes() {
    let t = TestDir::new();
    let files = data_files();
    let mut args = vec!["--app", "jobcount"];
    args.extend(files.iter().map(String::as_str));
    let (c, addr) = t.coordinator(&args);
    let mut w = t.worker(&addr, "jobcount");
    std::thread::sleep(Duration::from_millis(500));
    c.signal("KILL");
    drop(c);
    let st = w.wait_for(Duration::from_secs(20)).expect("worker exits");
    assert!(st.success(), "{st}");
}

#[test]
fn refused_worker_exits_with_status_3() {
    let t = TestDir::new();
    let f = t.write("in.txt", b"x\n");
    let (_c, addr) = t.coordinator(&["--app", "wc", &f]);
    let mut w = t.worker(&addr, "indexer");
    let st = w
        .wait_for(Duration::from_secs(20))
        .expect("refused at once");
    assert_eq!(st.code(), Some(3));
}
