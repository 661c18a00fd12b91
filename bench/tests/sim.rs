//! The scale simulator at a size the test suite affords: the real
//! scheduler, 100 simulated workers and 10,000 maps, with stragglers,
//! killed and stalled workers. Checks the invariants `mr-sim` checks
//! (it exits 1 if one breaks) and that its figures mean something; never
//! its speed.

mod common;

use std::process::Command;

/// Runs `mr-sim` with `args` plus `--json`; whether it exited 0, and its JSON object.
fn sim(args: &[&str]) -> (bool, serde_json::Value) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mr-sim"));
    cmd.args(args);
    let (code, json) = common::json_of(cmd);
    (code == Some(0), json)
}

#[test]
fn a_small_cluster_with_faults_keeps_every_invariant() {
    let (ok, j) = sim(&[
        "--workers",
        "100",
        "--maps",
        "10000",
        "--reduces",
        "37",
        "--kill",
        "0.05",
        "--stall",
        "0.03",
    ]);
    assert!(ok, "an invariant broke: {j}");
    assert_eq!(j["sim_invariants_ok"], true);
    assert_eq!(j["sim_tasks"], 10037);
    // Faults happened, and what they took was made again.
    assert!(j["sim_killed"].as_u64().unwrap() > 0, "{j}");
    assert!(j["sim_maps_remade"].as_u64().unwrap() > 0, "{j}");
    // No schedule beats the ideal (all work spread evenly, nothing lost).
    let ratio = j["sim_makespan_ratio"].as_f64().unwrap();
    assert!(ratio >= 1.0, "{j}");
}

#[test]
fn backups_shorten_a_job_with_stragglers() {
    // 5% of workers 10x slower, no faults: without backups the job waits
    // for the slowest maps; with them it should not.
    let (ok, j) = sim(&[
        "--workers",
        "100",
        "--maps",
        "5000",
        "--reduces",
        "10",
        "--stragglers",
        "0.05",
        "--kill",
        "0",
        "--stall",
        "0",
    ]);
    assert!(ok, "{j}");
    let with = j["sim_makespan_ratio"].as_f64().unwrap();
    let without = j["sim_makespan_ratio_no_backups"].as_f64().unwrap();
    assert!(with < without, "backups did not help: {j}");
    assert_eq!(j["sim_maps_remade"], 0);
}

#[test]
fn a_one_worker_job_runs_every_task_on_it() {
    let (ok, j) = sim(&[
        "--workers",
        "1",
        "--maps",
        "50",
        "--reduces",
        "3",
        "--stragglers",
        "0",
        "--kill",
        "0",
        "--stall",
        "0",
        "--sigma",
        "0",
    ]);
    assert!(ok, "{j}");
    // With no spread and one worker, the makespan is exactly the work:
    // 50 maps of 10 s and 3 reduces of 20 s.
    assert_eq!(j["sim_makespan_s"].as_f64().unwrap(), 560.0, "{j}");
    assert_eq!(j["sim_extra_attempts"], 0);
}

#[test]
fn nonsense_sizes_are_refused_by_name() {
    let out = Command::new(env!("CARGO_BIN_EXE_mr-sim"))
        .args(["--workers", "0"])
        .output()
        .expect("mr-sim runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--workers"));
}

#[test]
fn a_restarted_coordinator_resumes_from_a_large_journal_exactly() {
    // 20,000 maps (1% lost and made again) and 101 reduces, 40 committed:
    // mr-replay exits 1 unless the restored scheduler holds exactly that
    // progress (maps done, reduces done, totals counting each map once)
    // and hands out the first uncommitted reduce.
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mr-replay"));
    cmd.args(["--maps", "20000", "--reduces", "101", "--committed", "0.4"])
        .arg("--dir")
        .arg(dir.path());
    let (code, j) = common::json_of(cmd);
    assert_eq!(code, Some(0), "{j}");
    assert_eq!(j["replay_ok"], true);
    assert_eq!(j["replay_tasks"], 20101);
    // Records: Begin, Incarnation, AppFixed, every map once, the 200 lost
    // ones twice more (lost, done again), 40 reduces.
    assert_eq!(j["replay_records"], 3 + 20000 + 2 * 200 + 40);
    // The journal file is removed afterwards.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
