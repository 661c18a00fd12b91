//! Workers that share no files with the coordinator (on loopback here;
//! `tests/hosts.sh` runs the same across network namespaces): map outputs
//! kept in each worker's own directory and fetched by reducers, inputs
//! fetched from the coordinator, outputs uploaded; and a worker killed after
//! the map phase, whose outputs are re-made elsewhere.

use crate::util::{ascii_inputs, bin, data_files, eventually, sorted_lines, Proc, TestDir};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A worker keeping its outputs under `local` (and fetching every input).
fn remote_worker(t: &TestDir, addr: &str, local: &Path, app: &[&str]) -> Proc {
    std::fs::create_dir_all(local).unwrap();
    let mut cmd = Command::new(bin("mrworker"));
    cmd.args(["--coordinator", addr, "--remote-inputs", "--local-dir"])
        .arg(local)
        .args(app);
    Proc::start(cmd, t.path())
}

fn report(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("mr-report.json")).unwrap()).unwrap()
}

fn counter(r: &serde_json::Value, name: &str) -> u64 {
    r["counters"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {name}: {r}"))
}

/// Leftover worker directories under `local`.
fn leftovers(local: &Path) -> Vec<String> {
    std::fs::read_dir(local)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn workers_sharing_nothing_produce_the_sequential_answer() {
    let t = TestDir::new();
    let mut inputs = data_files();
    // Edge cases: empty, no final newline, invalid UTF-8, a line longer than a split.
    inputs.push(t.write("empty.txt", b""));
    inputs.push(t.write("tail.txt", b"no final newline here"));
    inputs.push(t.write("latin1.txt", b"caf\xe9 na\xefve caf\xe9\n\xff\xfe bytes\n"));
    let long: Vec<u8> = (0..40_000)
        .flat_map(|i| format!("w{} ", i % 97).into_bytes())
        .collect();
    inputs.push(t.write("long.txt", &long));
    // nocrash maps whole files (their names and sizes are in its output).
    for (app, reduces) in [("wc", "3"), ("indexer", "7"), ("nocrash", "2")] {
        let out = t.path().join(format!("out-{app}"));
        std::fs::create_dir_all(&out).unwrap();
        let mut args = vec!["--app", app, "--reduces", reduces, "--split-size", "64KiB"];
        args.extend(["--output-dir", out.to_str().unwrap()]);
        args.extend(inputs.iter().map(String::as_str));
        let (mut c, addr) = t.coordinator(&args);
        let locals = [
            t.path().join(format!("{app}-a")),
            t.path().join(format!("{app}-b")),
        ];
        let mut workers: Vec<Proc> = locals
            .iter()
            .map(|l| remote_worker(&t, &addr, l, &[app]))
            .collect();
        let st = c.wait_for(Duration::from_secs(120)).expect("job finishes");
        assert!(st.success(), "{app} job failed");
        let r: u32 = reduces.parse().unwrap();
        assert_eq!(
            sorted_lines(&t.outputs(&out, r)),
            t.sequential(app, &inputs),
            "{app}"
        );
        let rep = report(&out);
        // Every input byte came over the wire (a little more: the byte before
        // each range and the line running past its end).
        assert!(
            counter(&rep, "input bytes fetched") >= counter(&rep, "input bytes"),
            "{rep}"
        );
        assert!(counter(&rep, "shuffle bytes fetched") > 0, "{rep}");
        assert_eq!(
            counter(&rep, "output bytes uploaded"),
            counter(&rep, "output bytes")
        );
        for w in &mut workers {
            assert!(w
                .wait_for(Duration::from_secs(10))
                .is_some_and(|s| s.success()));
        }
        for l in &locals {
            assert!(
                leftovers(l).is_empty(),
                "left in {}: {:?}",
                l.display(),
                leftovers(l)
            );
        }
        assert!(
            !t.path().join("mr-job").exists() && !out.join("mr-job").exists(),
            "the job directory is removed"
        );
    }
}

const MAP: &str = r#"tr -cs 'A-Za-z' '\n' | awk 'NF { print $1 "\t1" }'"#;
const REDUCE: &str = r#"sleep 0.4; awk -F'\t' '$1 != k { if (NR > 1) print k "\t" n; k = $1; n = 0 } { n += $2 } END { if (NR > 0) print k "\t" n }'"#;

#[test]
fn a_worker_killed_after_the_map_phase_has_its_outputs_made_again() {
    lose_a_holder_after_the_map_phase("KILL");
}

#[test]
fn a_worker_stopped_after_the_map_phase_does_not_hold_up_the_job() {
    // Reducers fetching from it get no answer: they give up after two
    // 10 s deadlines, while the coordinator has declared it lost (2 s).
    lose_a_holder_after_the_map_phase("STOP");
}

/// Runs a job on three workers sharing nothing and, once reduces are
/// fetching, sends `signal` to a worker that holds map outputs.
fn lose_a_holder_after_the_map_phase(signal: &str) {
    let t = TestDir::new();
    let inputs = ascii_inputs(&t);
    let want = t.sequential("wc", &inputs);
    let mut args = vec![
        "--reduces",
        "8",
        "--split-size",
        "512KiB",
        "--task-timeout",
        "2",
        "--map-cmd",
        MAP,
        "--reduce-cmd",
        REDUCE,
    ];
    args.extend(inputs.iter().map(String::as_str));
    let (mut c, addr, log) = t.coordinator_logged(&args);
    let app = ["--map-cmd", MAP, "--reduce-cmd", REDUCE];
    let locals: Vec<_> = (0..3).map(|i| t.path().join(format!("host{i}"))).collect();
    let mut workers: Vec<Option<Proc>> = locals
        .iter()
        .map(|l| {
            std::fs::create_dir_all(l).unwrap();
            let mut cmd = Command::new(bin("mrworker"));
            cmd.args(["--coordinator", &addr, "--local-dir"])
                .arg(l)
                .args(app);
            Some(Proc::start(cmd, t.path()))
        })
        .collect();
    // Once some reduce is fetching, every map is done: kill a worker that
    // holds map outputs (one not fetching, if there is one). At most 4 of
    // the 8 outputs committed (at most 3 reduces running) leaves a reduce
    // that has fetched nothing: the job cannot end without the victim's
    // maps, so they must run again.
    let fetching = |l: &Path| walk(l).iter().any(|n| n.starts_with("fetch-"));
    let committed = || t.outputs_named(t.path()).len();
    let mut victim = None;
    let seen = eventually(Duration::from_secs(60), || {
        let holders: Vec<usize> = (0..3).filter(|&i| !served(&locals[i]).is_empty()).collect();
        victim = holders
            .iter()
            .copied()
            .min_by_key(|&i| fetching(&locals[i]));
        locals.iter().any(|l| fetching(l)) && victim.is_some() && committed() <= 4
    });
    assert!(seen, "no map holder while the reduce phase was young");
    let v = victim.unwrap();
    let victim = workers[v].take().unwrap();
    victim.signal(signal);
    let st = c.wait_for(Duration::from_secs(120)).expect("job finishes");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(st.success(), "{text}");
    assert_eq!(sorted_lines(&t.outputs(t.path(), 8)), want);
    assert!(
        text.contains("its output was on a lost worker's disk; the map will run again"),
        "{text}"
    );
    drop(victim);
    let rep = report(t.path());
    let maps = rep["progress"]["maps"].as_u64().unwrap();
    let map_successes = rep["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["phase"] == "map" && a["outcome"] == "succeeded")
        .count() as u64;
    assert!(
        map_successes > maps,
        "{map_successes} map successes for {maps} maps"
    );
}

/// The map outputs a worker keeping its files under `local` serves: the
/// `mr-*` files in its own directory (not the partitions it fetched).
fn served(local: &Path) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for d in std::fs::read_dir(local).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
            if f.file_name().to_string_lossy().starts_with("mr-") {
                v.push(f.path());
            }
        }
    }
    v
}

/// File names anywhere under `dir`.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(d) = std::fs::read_dir(dir) {
        for e in d.flatten() {
            out.push(e.file_name().to_string_lossy().into_owned());
            if e.path().is_dir() {
                out.extend(walk(&e.path()));
            }
        }
    }
    out
}

#[test]
fn workers_in_the_shared_directory_and_workers_outside_it_mix() {
    let t = TestDir::new();
    let inputs = data_files();
    let mut args = vec!["--app", "indexer", "--workers", "1", "--reduces", "5"];
    args.extend(["--split-size", "128KiB"]);
    args.extend(inputs.iter().map(String::as_str));
    let (mut c, addr) = t.coordinator(&args);
    let local = t.path().join("remote");
    let _w = remote_worker(&t, &addr, &local, &["indexer"]);
    let st = c.wait_for(Duration::from_secs(120)).expect("job finishes");
    assert!(st.success());
    assert_eq!(
        sorted_lines(&t.outputs(t.path(), 5)),
        t.sequential("indexer", &inputs)
    );
    let rep = report(t.path());
    let workers: Vec<u64> = rep["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["outcome"] == "succeeded")
        .map(|a| a["worker"].as_u64().unwrap())
        .collect();
    // Both took part, so outputs crossed between the two kinds of worker.
    assert!(workers.contains(&0) && workers.contains(&1), "{workers:?}");
    assert!(counter(&rep, "shuffle bytes fetched") > 0, "{rep}");
}

#[test]
fn a_restarted_coordinator_finds_map_outputs_on_the_workers_that_hold_them() {
    let t = TestDir::new();
    let files = data_files();
    let addr = crate::util::free_addr();
    let start = |t: &TestDir| {
        let mut cmd = Command::new(bin("mrcoordinator"));
        cmd.args(["--listen", &addr, "--app", "jobcount"])
            .args(&files);
        Proc::start_logged(cmd, t.path(), &t.path().join("coordinator.log"))
    };
    let first = start(&t);
    let locals = [t.path().join("a"), t.path().join("b")];
    let _w: Vec<Proc> = locals
        .iter()
        .map(|l| remote_worker(&t, &addr, l, &["jobcount"]))
        .collect();
    // jobcount maps take 2-5 s: wait until some are made, then kill.
    let made = || {
        locals
            .iter()
            .flat_map(|l| walk(l))
            .filter(|n| n.starts_with("mr-") && !n.starts_with("mr-worker-"))
            .count()
    };
    assert!(
        eventually(Duration::from_secs(30), || made() >= 3),
        "no progress"
    );
    std::thread::sleep(Duration::from_millis(300));
    first.signal("KILL");
    drop(first);
    let mut second = start(&t);
    let st = second
        .wait_for(Duration::from_secs(90))
        .expect("resumed job finishes");
    let log = std::fs::read_to_string(t.path().join("coordinator.log")).unwrap();
    assert!(st.success(), "{log}");
    let lines = sorted_lines(&t.outputs(t.path(), 10));
    let n: u32 = String::from_utf8_lossy(&lines[0][2..]).parse().unwrap();
    // Journaled maps were fetched from the workers, not run again: 8 maps
    // plus at most the two running at the kill.
    assert!((8..=10).contains(&n), "map executions: {n}\n{log}");
}

#[test]
fn map_outputs_vanishing_from_a_live_worker_are_reported_and_made_again() {
    let t = TestDir::new();
    let inputs = ascii_inputs(&t);
    let want = t.sequential("wc", &inputs);
    let mut args = vec!["--reduces", "8", "--split-size", "512KiB"];
    args.extend(["--map-cmd", MAP, "--reduce-cmd", REDUCE]);
    args.extend(inputs.iter().map(String::as_str));
    let (mut c, addr, log) = t.coordinator_logged(&args);
    let app = ["--map-cmd", MAP, "--reduce-cmd", REDUCE];
    let locals: Vec<_> = (0..3).map(|i| t.path().join(format!("w{i}"))).collect();
    let _workers: Vec<Proc> = locals
        .iter()
        .map(|l| remote_worker(&t, &addr, l, &app))
        .collect();
    // Once the first reduces are fetching, the other reduces are still to
    // come: delete one worker's map outputs behind its back (it stays up).
    let fetching = || {
        locals
            .iter()
            .any(|l| walk(l).iter().any(|n| n.starts_with("fetch-")))
    };
    assert!(
        eventually(Duration::from_secs(60), fetching),
        "no reduce started"
    );
    let victim = locals
        .iter()
        .find(|l| !served(l).is_empty())
        .expect("a worker holds map outputs");
    for f in served(victim) {
        let _ = std::fs::remove_file(f);
    }
    let st = c.wait_for(Duration::from_secs(120)).expect("job finishes");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(st.success(), "{text}");
    assert_eq!(sorted_lines(&t.outputs(t.path(), 8)), want);
    assert!(
        text.contains("is unusable"),
        "the loss was reported: {text}"
    );
}

#[test]
fn a_backup_reduce_that_loses_has_its_upload_refused_and_the_winner_kept() {
    // early_exit's reduce sleeps 3 s on each key holding "tom"; keys are
    // the input paths, so a directory name holding it would slow them all.
    let t = std::iter::repeat_with(TestDir::new)
        .find(|t| !t.path().to_string_lossy().contains("tom"))
        .unwrap();
    // Reduce 0 gets one slow key (3 s), reduce 1 two (6 s), reduce 2 none.
    // With three workers: reduce 2 ends at once, so after the 1 s task
    // timeout its worker backs up reduce 0; the first attempt wins at 3 s;
    // the backup ends at 4 s while reduce 1 keeps the job going, and its
    // upload must be refused and thrown away.
    let dir = t.path().to_string_lossy().into_owned();
    let part = |p: &String| mr_apps::ihash(p.as_bytes()) % 3;
    let mut names = Vec::new();
    for (stem, r, n) in [("tom", 0, 1), ("tom", 1, 2), ("plain", 2, 1)] {
        names.extend(
            (0..)
                .map(|i| format!("{dir}/{stem}-{i}.txt"))
                .filter(|p| part(p) == r)
                .filter(|p| !names.contains(p))
                .take(n)
                .collect::<Vec<_>>(),
        );
    }
    let inputs: Vec<String> = names
        .iter()
        .map(|p| t.write(Path::new(p).file_name().unwrap().to_str().unwrap(), b"x\n"))
        .collect();
    assert_eq!(inputs, names);
    let mut args = vec![
        "--app",
        "early_exit",
        "--reduces",
        "3",
        "--task-timeout",
        "1",
    ];
    args.extend(inputs.iter().map(String::as_str));
    let (mut c, addr, log) = t.coordinator_logged(&args);
    let logs: Vec<_> = (0..3).map(|i| t.path().join(format!("w{i}.log"))).collect();
    let mut workers: Vec<Proc> = logs
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let local = t.path().join(format!("w{i}"));
            std::fs::create_dir_all(&local).unwrap();
            let mut cmd = Command::new(bin("mrworker"));
            // A backup asleep in a key when the job ends may outlive the
            // coordinator's two seconds of dismissals; not seeing the job
            // directory, its worker then waits out the reconnect timeout
            // (a crashed coordinator is expected back) before it exits 0.
            cmd.args(["--coordinator", &addr, "--remote-inputs", "--local-dir"])
                .arg(&local)
                .args(["--reconnect-timeout", "5", "early_exit"]);
            Proc::start_logged(cmd, t.path(), l)
        })
        .collect();
    let st = c.wait_for(Duration::from_secs(60)).expect("job finishes");
    assert!(st.success(), "{}", std::fs::read_to_string(&log).unwrap());
    // Hand-computed: every input path once.
    let mut want: Vec<Vec<u8>> = inputs
        .iter()
        .map(|p| format!("{p} 1").into_bytes())
        .collect();
    want.sort();
    assert_eq!(sorted_lines(&t.outputs(t.path(), 3)), want);
    let rep = report(t.path());
    let reduce0: Vec<&serde_json::Value> = rep["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["phase"] == "reduce" && a["task"] == 0)
        .collect();
    assert_eq!(reduce0.len(), 2, "reduce 0 was backed up: {rep}");
    assert_eq!(
        reduce0
            .iter()
            .filter(|a| a["outcome"] == "succeeded")
            .count(),
        1,
        "{rep}"
    );
    // Only the winners' uploads count, and the loser said it was refused.
    assert_eq!(
        counter(&rep, "output bytes uploaded"),
        counter(&rep, "output bytes")
    );
    let worker_logs: String = logs
        .iter()
        .map(|l| std::fs::read_to_string(l).unwrap_or_default())
        .collect();
    assert!(worker_logs.contains("upload refused"), "{worker_logs}");
    // A backup still running when the job ends (reduce 1's, asleep in a
    // key) stops at its next key and only then removes its temporary
    // output: look once every worker has exited.
    for w in &mut workers {
        let Some(st) = w.wait_for(Duration::from_secs(30)) else {
            let now: String = logs
                .iter()
                .map(|l| std::fs::read_to_string(l).unwrap_or_default())
                .collect();
            panic!(
                "a worker did not exit within 30 s of the job's end:\n{now}\ncoordinator:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        assert!(st.success(), "{st}");
    }
    let temps: Vec<String> = walk(t.path())
        .into_iter()
        .filter(|n| n.starts_with(".mr-out-"))
        .collect();
    assert!(temps.is_empty(), "uncommitted outputs left: {temps:?}");
}

#[test]
fn tiny_splits_of_one_huge_line_fetch_the_line_about_twice_not_once_per_split() {
    let t = TestDir::new();
    // One 1 MiB line (no newline at all) and a normal file, cut in 4 KiB splits.
    let line: Vec<u8> = (0..1u32 << 20)
        .map(|i| {
            if i % 7 == 6 {
                b' '
            } else {
                b'a' + (i % 5) as u8
            }
        })
        .collect();
    let inputs = vec![
        t.write("line.txt", &line),
        t.write("two.txt", b"one two\nthree\n"),
    ];
    let mut args = vec!["--app", "wc", "--reduces", "3", "--split-size", "4KiB"];
    args.extend(inputs.iter().map(String::as_str));
    let (mut c, addr) = t.coordinator(&args);
    let _w = remote_worker(&t, &addr, &t.path().join("w"), &["wc"]);
    let st = c.wait_for(Duration::from_secs(120)).expect("job finishes");
    assert!(st.success());
    assert_eq!(
        sorted_lines(&t.outputs(t.path(), 3)),
        t.sequential("wc", &inputs)
    );
    // Each split's own bytes (plus one before it), and the whole line once
    // more for the split it starts in; splits inside the line fetch nothing
    // past their end (else 256 splits would fetch ~128 MiB).
    let rep = report(t.path());
    let maps = rep["progress"]["maps"].as_u64().unwrap();
    let fetched = counter(&rep, "input bytes fetched");
    let total = line.len() as u64 + 14;
    assert!(
        fetched <= 2 * total + maps,
        "{fetched} bytes fetched for {total} bytes in {maps} splits"
    );
}
