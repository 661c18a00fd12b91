//! The RPC load generator at a size the test suite affords: the real
//! `mrcoordinator` binary, 100 workers on real TLS connections, 10,000
//! maps, killed with SIGKILL halfway and started again. Checks what
//! `mr-loadgen` checks (nothing acknowledged lost, nothing handed out
//! twice, every output committed), and that those checks catch a loss;
//! never the speed.

mod common;

use std::path::PathBuf;
use std::process::Command;

/// The coordinator built beside the load generator (same profile).
fn coordinator() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_BIN_EXE_mr-loadgen"));
    let bin = dir.parent().unwrap().join("mrcoordinator");
    assert!(
        bin.is_file(),
        "{} is missing: build the workspace's binaries first (cargo build --release --workspace)",
        bin.display()
    );
    bin
}

/// Runs `mr-loadgen` with `args` plus `--json`; its exit code and JSON object.
fn loadgen(args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mr-loadgen"));
    cmd.args(args).arg("--coordinator").arg(coordinator());
    common::json_of(cmd)
}

#[test]
fn a_hundred_workers_lose_nothing_to_a_coordinator_killed_halfway() {
    let (code, j) = loadgen(&[
        "--workers",
        "100",
        "--maps",
        "10000",
        "--reduces",
        "37",
        "--kill-at",
        "0.5",
    ]);
    assert_eq!(code, Some(0), "{j}");
    assert_eq!(j["rpc_ok"], true);
    assert_eq!(j["rpc_tasks"], 10037);
    // The kill came halfway, and everything acknowledged by then was
    // journaled (the journal may hold a few more: acks still in flight).
    let before = j["kill_acked_before"].as_u64().unwrap();
    assert!((5018..10037).contains(&before), "{j}");
    assert!(j["kill_journaled"].as_u64().unwrap() >= before, "{j}");
    assert_eq!(j["kill_acked_missing"], 0);
    assert_eq!(j["kill_reissued"], 0);
    // The restarted coordinator handed out work, and every worker came back.
    assert!(j["resume_first_task_s"].as_f64().unwrap() > 0.0, "{j}");
    assert!(j["resume_all_workers_s"].as_f64().is_some(), "{j}");
    // Every worker had a first task; the status page answered while the
    // load ran, small.
    assert!(j["rpc_first_task_p99_ms"].as_f64().unwrap() > 0.0, "{j}");
    assert!(j["rpc_status_polls"].as_u64().unwrap() >= 1, "{j}");
    let kib = j["rpc_status_kib"].as_f64().unwrap();
    assert!(kib > 0.0 && kib < 1024.0, "{j}");
    // Its journal took the rest of the job's records.
    assert!(j["rpc_journal_records"].as_u64().unwrap() > 0, "{j}");
    let fsyncs = j["rpc_journal_fsyncs"].as_u64().unwrap();
    assert!(
        fsyncs > 0 && fsyncs <= j["rpc_journal_records"].as_u64().unwrap(),
        "{j}"
    );
}

#[test]
fn a_journal_that_lost_its_writes_is_caught() {
    // The killed coordinator's progress is dropped from its journal before
    // the restart: both checks must see it, and the run must fail.
    let (code, j) = loadgen(&[
        "--workers",
        "20",
        "--maps",
        "2000",
        "--reduces",
        "5",
        "--kill-at",
        "0.5",
        "--forget-journal",
        "--no-tls",
    ]);
    assert_eq!(code, Some(1), "{j}");
    assert_eq!(j["rpc_ok"], false);
    assert!(j["kill_acked_missing"].as_u64().unwrap() >= 1000, "{j}");
    assert!(j["kill_reissued"].as_u64().unwrap() > 0, "{j}");
}

#[test]
fn nonsense_is_refused_by_name() {
    let out = Command::new(env!("CARGO_BIN_EXE_mr-loadgen"))
        .args(["--kill-at", "1.5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--kill-at 1.5"));
    let out = Command::new(env!("CARGO_BIN_EXE_mr-loadgen"))
        .args(["--coordinator", "/nonexistent/mrcoordinator"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/mrcoordinator"));
}
