//! Crashed, stalled and vanished processes.

use crate::util::{
    bin, data_files, eventually, free_addr, map_outputs, sorted_lines, Proc, TestDir,
};
use std::process::Command;
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
    let _w2 = t.worker(&addr, "jobcount");
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
fn workers_exit_zero_when_the_coordinator_vanishes_for_good() {
    let t = TestDir::new();
    let files = data_files();
    let mut args = vec!["--app", "jobcount"];
    args.extend(files.iter().map(String::as_str));
    let (c, addr) = t.coordinator(&args);
    // The journal stays behind (a restart is expected), so the worker waits
    // for --reconnect-timeout before giving up.
    let mut w = t.worker_with(&addr, "jobcount", &["--reconnect-timeout", "1"]);
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

/// Kills coordinator `first`, starts the same command again with `start`,
/// and waits for it to succeed; returns the coordinator log.
fn kill_and_rerun(first: Proc, start: impl FnOnce() -> Proc, t: &TestDir) -> String {
    first.signal("KILL");
    drop(first);
    let mut second = start();
    let st = second
        .wait_for(Duration::from_secs(90))
        .expect("resumed job finishes");
    assert!(st.success(), "{st}");
    std::fs::read_to_string(t.path().join("coordinator.log")).unwrap()
}

#[test]
fn a_coordinator_killed_mid_job_resumes_from_its_journal() {
    let t = TestDir::new();
    let files = data_files();
    let addr = free_addr();
    let start = |t: &TestDir| {
        let mut cmd = Command::new(bin("mrcoordinator"));
        cmd.args(["--listen", &addr, "--app", "jobcount"])
            .args(&files);
        Proc::start_logged(cmd, t.path(), &t.path().join("coordinator.log"))
    };
    let first = start(&t);
    let _w1 = t.worker(&addr, "jobcount");
    let _w2 = t.worker(&addr, "jobcount");
    // jobcount maps take 2-5 s: wait until some are accepted, then kill.
    let job_dir = t.path().join("mr-job");
    let progressed = eventually(Duration::from_secs(30), || map_outputs(&job_dir).len() >= 3);
    assert!(
        progressed,
        "no progress: {}",
        std::fs::read_to_string(t.path().join("coordinator.log")).unwrap_or_default()
    );
    // Same command again; the workers find it on their own.
    let log = kill_and_rerun(first, || start(&t), &t);
    assert!(log.contains("resumed from the journal"), "{log}");
    let lines = sorted_lines(&t.outputs(t.path(), 10));
    assert_eq!(lines.len(), 1);
    let n: u32 = String::from_utf8_lossy(&lines[0][2..]).parse().unwrap();
    // 8 maps, plus at most the two that were running at the kill: the
    // journaled ones were not run again.
    assert!((8..=10).contains(&n), "map executions: {n}");
    assert!(!job_dir.exists(), "job directory removed at the end");
}

#[test]
fn a_journal_of_another_job_is_refused_until_fresh() {
    let t = TestDir::new();
    let f = t.write("in.txt", b"one two\n");
    let addr = free_addr();
    let mut cmd = Command::new(bin("mrcoordinator"));
    cmd.args(["--listen", &addr, "--app", "wc", "--reduces", "3", &f]);
    let first = Proc::start(cmd, t.path());
    assert!(eventually(Duration::from_secs(10), || t
        .path()
        .join("mr-job/journal")
        .exists()));
    first.signal("KILL");
    drop(first);
    let other = |extra: &[&str]| {
        Command::new(bin("mrcoordinator"))
            .args(["--listen", "127.0.0.1:0", "--app", "wc", "--workers", "1"])
            .args(["--reduces", "4"])
            .args(extra)
            .arg(&f)
            .current_dir(t.path())
            .output()
            .unwrap()
    };
    let out = other(&[]);
    assert!(!out.status.success());
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("--reduces 3 there, 4 here") && msg.contains("--fresh"),
        "{msg}"
    );
    let out = other(&["--fresh"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        sorted_lines(&t.outputs(t.path(), 4)),
        vec![b"one 1".to_vec(), b"two 1".to_vec()]
    );
}

#[test]
fn a_slow_but_alive_worker_gets_a_backup_and_the_first_result_wins() {
    let t = TestDir::new();
    // A big input cut into 128 MiB splits: the throttled worker takes the
    // first, the healthy one the others, which set the phase's median. The
    // splits must be large enough that the throttled map runs well past
    // the one-second backup threshold however fast mapping gets (48 MiB
    // ones took the throttled worker just 1 s once the word splitter read
    // 64 bytes at a time, and the backup was sometimes too late).
    let line = "the quick brown fox jumps over the lazy dog\n";
    let big = t.write("big.txt", line.repeat(9_000_000).as_bytes());
    let small = t.write("small.txt", b"a small file\n");
    let want = t.sequential("wc", &[big.clone(), small.clone()]);
    let mut cmd = Command::new(bin("mrcoordinator"));
    cmd.env("RUST_LOG", "info")
        .args([
            "--listen",
            "127.0.0.1:0",
            "--addr-file",
            "addr",
            "--app",
            "wc",
        ])
        .args([
            "--task-timeout",
            "1",
            "--split-size",
            "128MiB",
            "--reduces",
            "3",
        ])
        .args([&big, &small]);
    let log = t.path().join("coordinator.log");
    let mut c = Proc::start_logged(cmd, t.path(), &log);
    let addr_file = t.path().join("addr");
    assert!(eventually(Duration::from_secs(10), || addr_file.exists()));
    let addr = std::fs::read_to_string(&addr_file)
        .unwrap()
        .trim()
        .to_string();
    // The slow worker joins first and so gets the first map; it is stopped
    // 90% of the time but never long enough to be declared lost (its
    // heartbeats get through in every running slice).
    let slow_log = t.path().join("slow.log");
    let mut w = Command::new(bin("mrworker"));
    w.env("RUST_LOG", "info")
        .args(["--coordinator", &addr, "--threads", "1", "wc"]);
    let slow = Proc::start_logged(w, t.path(), &slow_log);
    assert!(eventually(Duration::from_secs(10), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("worker joined"))
    }));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let throttle = {
        let done = done.clone();
        let pid = slow.pid() as i32;
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                // SAFETY: plain signals to our own child process.
                unsafe { libc::kill(pid, libc::SIGSTOP) };
                std::thread::sleep(Duration::from_millis(450));
                unsafe { libc::kill(pid, libc::SIGCONT) };
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let _fast = t.worker_with(&addr, "wc", &["--threads", "1"]);
    let st = c.wait_for(Duration::from_secs(120)).expect("job finishes");
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    throttle.join().unwrap();
    assert!(st.success(), "{st}");
    assert_eq!(sorted_lines(&t.outputs(t.path(), 3)), want);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("launching a backup attempt"), "{log}");
    assert!(
        !log.contains("declared lost"),
        "the slow worker stayed alive: {log}"
    );
    // The losing attempt was stopped, not run to its end.
    let slow_log = std::fs::read_to_string(&slow_log).unwrap();
    assert!(
        slow_log.contains("cancelling: its task was done by another attempt"),
        "{slow_log}"
    );
}

#[test]
fn a_restarted_coordinator_dismisses_the_workers_its_killed_predecessor_started() {
    let t = TestDir::new();
    let files = data_files();
    let addr = free_addr();
    let start = |t: &TestDir| {
        let mut cmd = Command::new(bin("mrcoordinator"));
        cmd.args(["--listen", &addr, "--no-socket", "--app", "jobcount"])
            .args(["--workers", "2"])
            .args(&files);
        Proc::start_logged(cmd, t.path(), &t.path().join("coordinator.log"))
    };
    let first = start(&t);
    let job_dir = t.path().join("mr-job");
    let progressed = eventually(Duration::from_secs(30), || map_outputs(&job_dir).len() >= 2);
    assert!(progressed, "no progress");
    let pid = first.pid();
    let orphans: Vec<u32> = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(orphans.len(), 2, "two embedded workers");
    let log = kill_and_rerun(first, || start(&t), &t);
    assert!(
        log.contains("dismissed a worker started by an earlier coordinator"),
        "{log}"
    );
    // The orphans are gone (they exit when dismissed), and the answer is right.
    let gone = eventually(Duration::from_secs(10), || {
        orphans.iter().all(|p| {
            !std::path::Path::new(&format!("/proc/{p}")).exists()
                || std::fs::read_to_string(format!("/proc/{p}/stat"))
                    .is_ok_and(|s| s.contains(") Z "))
        })
    });
    assert!(gone, "orphaned workers still running");
    let lines = sorted_lines(&t.outputs(t.path(), 10));
    assert_eq!(lines.len(), 1);
}

/// The jobcount answer (map executions) and the report's failed attempts.
fn jobcount_and_failures(t: &TestDir) -> (u32, u64) {
    let lines = sorted_lines(&t.outputs(t.path(), 10));
    assert_eq!(lines.len(), 1);
    let n: u32 = String::from_utf8_lossy(&lines[0][2..]).parse().unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.path().join("mr-report.json")).unwrap()).unwrap();
    let failed = report["progress"]["failed_attempts"].as_u64().unwrap();
    (n, failed)
}

#[test]
fn sigterm_drains_a_worker_whose_map_finishes_and_counts_once() {
    let t = TestDir::new();
    let files = data_files();
    // A task timeout far beyond the test's patience: the drained worker's
    // leaving must be noticed at once.
    let mut args = vec!["--task-timeout", "600", "--max-attempts", "1"];
    args.extend(files.iter().map(String::as_str));
    let (mut c, addr) = t.coordinator(&args);
    let mut drained = t.worker(&addr, "jobcount");
    std::thread::sleep(Duration::from_millis(700)); // mid-map: jobcount maps take 2-5 s
    drained.signal("TERM");
    let _w = t.worker(&addr, "jobcount");
    let _w2 = t.worker(&addr, "jobcount");
    // It finishes its map (at most 5 s), takes no other, and exits 0.
    let st = drained
        .wait_for(Duration::from_secs(15))
        .expect("the drained worker exits once its map is done");
    assert!(st.success(), "{st}");
    let st = c.wait_for(Duration::from_secs(90)).expect("job finishes");
    assert!(st.success());
    let (runs, failed) = jobcount_and_failures(&t);
    assert_eq!(runs, 8, "the drained worker's map was kept, not run again");
    assert_eq!(failed, 0);
}

#[test]
fn a_drain_timeout_hands_the_attempt_back_without_a_strike() {
    let t = TestDir::new();
    let files = data_files();
    // One strike would fail the job.
    let mut args = vec!["--task-timeout", "600", "--max-attempts", "1"];
    args.extend(files.iter().map(String::as_str));
    let (mut c, addr) = t.coordinator(&args);
    let mut drained = t.worker_with(&addr, "jobcount", &["--drain-timeout", "0.3"]);
    std::thread::sleep(Duration::from_millis(700));
    drained.signal("TERM");
    // Its map sleeps on past the drain timeout, then stops as cancelled.
    let st = drained
        .wait_for(Duration::from_secs(15))
        .expect("the drained worker exits");
    assert!(st.success(), "{st}");
    let _w = t.worker(&addr, "jobcount");
    let _w2 = t.worker(&addr, "jobcount");
    let st = c.wait_for(Duration::from_secs(90)).expect("job finishes");
    assert!(st.success());
    let (runs, failed) = jobcount_and_failures(&t);
    assert_eq!(runs, 9, "the handed-back map ran again elsewhere");
    assert_eq!(failed, 0, "a hand-back is no failure");
}
