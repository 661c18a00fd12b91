//! Command-line behaviour of whole jobs: locking, signals, embedded workers.

use crate::util::{bin, data_files, Proc, TestDir};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Processes whose command line mentions `needle` (other than this test).
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmd).contains(needle) && pid != std::process::id() {
                found.push(pid);
            }
        }
    }
    found
}

#[test]
fn a_second_job_on_the_same_output_directory_is_refused() {
    let t = TestDir::new();
    let f = t.write("in.txt", b"words\n");
    let (_first, _addr) = t.coordinator(&["--app", "wc", &f]);
    let out = Command::new(bin("mrcoordinator"))
        .args(["--listen", "127.0.0.1:0", &f])
        .current_dir(t.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("already running") && msg.contains(t.path().to_str().unwrap()),
        "{msg}"
    );
}

#[test]
fn sigterm_stops_the_job_and_reaps_embedded_workers() {
    let t = TestDir::new();
    let files = data_files();
    let addr_file = t.path().join("addr");
    let mut cmd = Command::new(bin("mrcoordinator"));
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--app",
        "jobcount",
        "--workers",
        "2",
        "--addr-file",
    ])
    .arg(&addr_file)
    .args(&files);
    let log = t.path().join("coordinator.log");
    let mut c = Proc::start_logged(cmd, t.path(), &log);
    let mut addr = String::new();
    for _ in 0..200 {
        if let Ok(a) = std::fs::read_to_string(&addr_file) {
            addr = a.trim().to_string();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!addr.is_empty(), "coordinator did not start");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        processes_mentioning(&addr).len(),
        2,
        "two embedded workers run"
    );
    c.signal("TERM");
    let st = c.wait_for(Duration::from_secs(10)).expect("exits promptly");
    assert_eq!(st.code(), Some(1));
    assert!(
        processes_mentioning(&addr).is_empty(),
        "embedded workers were reaped"
    );
    let leftovers: Vec<String> = std::fs::read_dir(t.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("mr-out") || n.starts_with(".mr-out"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The journal stays, and the message says how to go on from it.
    assert!(t.path().join("mr-job/journal").exists());
    let msg = std::fs::read_to_string(&log).unwrap();
    assert!(
        msg.contains("interrupted by SIGTERM")
            && msg.contains("run the same command again to resume")
            && msg.contains("--fresh"),
        "{msg}"
    );
}

#[test]
fn a_job_stopped_by_sigterm_resumes_where_it_stopped_with_the_same_command() {
    // early_exit's maps are quick and two of its reduces take 3 s: stopped
    // once some outputs are committed, before the slow ones are. Its keys
    // are the inputs' paths, so which reduces are slow depends on where
    // the inputs are: when the two slow ones are the first handed out, the
    // rest commit only as they end and the job finishes before the signal
    // lands. Each try copies the inputs under a directory of its own, so a
    // try that finished first is followed by one with other slow reduces.
    let job = |files: &[String]| {
        let mut cmd = Command::new(bin("mrcoordinator"));
        cmd.args(["--listen", "127.0.0.1:0", "--no-socket"])
            .args(["--app", "early_exit", "--workers", "2"])
            .args(files);
        cmd
    };
    let mut tries = 0;
    let (t, files, done) = loop {
        tries += 1;
        let t = TestDir::new();
        let files: Vec<String> = data_files()
            .iter()
            .map(|f| {
                let name = Path::new(f).file_name().unwrap().to_string_lossy();
                t.write(&format!("in-{name}"), &std::fs::read(f).unwrap())
            })
            .collect();
        let log = t.path().join("first.log");
        let mut c = Proc::start_logged(job(&files), t.path(), &log);
        let committed = || {
            (0..10)
                .filter(|r| t.path().join(format!("mr-out-{r}")).exists())
                .count()
        };
        assert!(crate::util::eventually(
            Duration::from_secs(30),
            || committed() >= 3
        ));
        c.signal("TERM");
        let st = c.wait_for(Duration::from_secs(10)).expect("exits promptly");
        // Every output there: it finished (or all but finished) first.
        if committed() == 10 && tries < 5 {
            continue;
        }
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        assert_eq!(
            st.code(),
            Some(1),
            "try {tries}, {} outputs committed; its log:\n{said}",
            committed()
        );
        let done = committed();
        assert!(done < 10, "stopped too late to show a resume");
        break (t, files, done);
    };
    // Before, SIGTERM removed the journal and the same command ran every
    // task again; now it takes up what was committed.
    let out = job(&files).current_dir(t.path()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("{done} outputs were already done")),
        "{err}"
    );
    let want = t.sequential("early_exit", &files);
    assert_eq!(crate::util::sorted_lines(&t.outputs(t.path(), 10)), want);
    assert!(
        !t.path().join("mr-job").exists(),
        "a finished job leaves no journal"
    );
}

#[test]
fn a_job_that_goes_well_says_nothing_but_its_summary() {
    // Workers hang up when the job ends; over TLS that must not read as a
    // broken connection (it once warned twice at the end of every job).
    let t = TestDir::new();
    let files = data_files();
    let out = Command::new(bin("mrcoordinator"))
        .args(["--listen", "127.0.0.1:0", "--app", "wc", "--workers", "2"])
        .args(&files)
        .current_dir(t.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("job complete"), "{err}");
    for bad in ["WARN", "ERROR", "close_notify"] {
        assert!(!err.contains(bad), "{bad} in:\n{err}");
    }
}

#[test]
fn embedded_workers_replace_crashed_ones() {
    let t = TestDir::new();
    let files = data_files();
    let want = t.sequential("nocrash", &files);
    // The crash app kills its worker process a third of the time: the
    // coordinator must keep replacing its embedded workers until done.
    let mut cmd = Command::new(bin("mrcoordinator"));
    cmd.args([
        "--quiet",
        "--listen",
        "127.0.0.1:0",
        "--app",
        "crash",
        "--workers",
        "3",
    ])
    .args(&files);
    let mut c = Proc::start(cmd, t.path());
    let st = c.wait_for(Duration::from_secs(150)).expect("job finishes");
    assert!(st.success(), "{st}");
    assert_eq!(crate::util::sorted_lines(&t.outputs(t.path(), 10)), want);
}

#[test]
fn an_app_unknown_here_is_named_at_once_and_the_job_waits_for_workers() {
    let t = TestDir::new();
    let input = t.write("in.txt", b"a b\n");
    for (app, says) in [
        ("grepper", "is not a built-in app (wc, indexer,"),
        (
            "./plugins/libmissing.so",
            "is not a plugin file on this machine",
        ),
    ] {
        // --fresh: the one stopped before keeps its journal to resume from.
        let (mut c, _addr, log) =
            t.coordinator_logged(&["--no-socket", "--fresh", "--app", app, &input]);
        let said = crate::util::eventually(Duration::from_secs(5), || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains(says))
        });
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(said, "{app}: {text}");
        assert!(
            text.contains("waits for workers running an app of that name"),
            "{text}"
        );
        // It still waits: remote workers may bring that app.
        assert!(
            c.wait_for(Duration::from_millis(300)).is_none(),
            "{app}: exited"
        );
        c.signal("TERM");
        c.wait_for(Duration::from_secs(10))
            .expect("stops on SIGTERM");
        let _ = std::fs::remove_file(&log);
    }
}
