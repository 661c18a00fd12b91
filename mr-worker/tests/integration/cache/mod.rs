//! Incremental re-runs (`--cache`): what is reused is exactly what
//! recomputing would give, and only what is unchanged is reused. Each job
//! runs the real `mrcoordinator` with two embedded workers; reuse is read
//! from the job report (which attempts ran), answers are compared with
//! fresh runs without a cache, file by file.

use crate::util::{bin, data_files, sorted_lines, TestDir};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The lab's texts, copied into the test's directory (so they can be edited).
fn inputs(t: &TestDir) -> Vec<String> {
    data_files()
        .iter()
        .map(|f| {
            let name = Path::new(f)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            t.write(&format!("in/{name}"), &std::fs::read(f).unwrap())
        })
        .collect()
}

/// Runs a job into `out` (with `--cache cache` if given); returns the
/// number of map and reduce attempts it ran, from its report.
fn run(
    t: &TestDir,
    out: &str,
    cache: Option<&Path>,
    args: &[&str],
    inputs: &[String],
) -> (usize, usize) {
    run_in(t, out, cache, args, inputs, &|_| {})
}

/// The `mrcoordinator` command of a job into `out` (with `--cache cache`
/// if given), its output directory made.
fn job_command(
    t: &TestDir,
    out: &str,
    cache: Option<&Path>,
    args: &[&str],
    inputs: &[String],
) -> Command {
    let dir = t.path().join(out);
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new(bin("mrcoordinator"));
    cmd.args([
        "--quiet",
        "--no-socket",
        "--workers",
        "2",
        "--split-size",
        "64KiB",
    ])
    .args(args)
    .arg("--output-dir")
    .arg(&dir);
    if let Some(c) = cache {
        cmd.arg("--cache").arg(c);
    }
    cmd.args(inputs).current_dir(t.path());
    cmd
}

/// [`run`] with `env` setting up the process's environment.
fn run_in(
    t: &TestDir,
    out: &str,
    cache: Option<&Path>,
    args: &[&str],
    inputs: &[String],
    env: &dyn Fn(&mut Command),
) -> (usize, usize) {
    let dir = t.path().join(out);
    let mut cmd = job_command(t, out, cache, args, inputs);
    env(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "job failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("mr-report.json")).unwrap()).unwrap();
    // Nothing taken from the cache may make an attempt fail.
    assert_eq!(report["progress"]["failed_attempts"], 0, "{report}");
    let attempts = report["attempts"].as_array().unwrap();
    let count = |phase: &str| attempts.iter().filter(|a| a["phase"] == phase).count();
    // The report says what was reused: every task either ran or was reused.
    if cache.is_some() {
        let total = |k: &str| report["progress"][k].as_u64().unwrap() as usize;
        let reused = |k: &str| report["cache"][k].as_u64().unwrap() as usize;
        assert_eq!(
            count("map") + reused("maps_reused"),
            total("maps"),
            "{report}"
        );
        assert_eq!(
            count("reduce") + reused("reduces_reused"),
            total("reduces"),
            "{report}"
        );
    } else {
        assert!(report["cache"].is_null());
    }
    (count("map"), count("reduce"))
}

/// The `mr-out-<r>` files of `dir`, in order.
fn outputs(t: &TestDir, dir: &str, reduces: u32) -> Vec<Vec<u8>> {
    t.outputs(&t.path().join(dir), reduces)
}

fn cache_dir(t: &TestDir) -> PathBuf {
    t.path().join("cache")
}

/// A word that starts a segment (see `mr_runfile::starts_segment`) and
/// one that does not, neither in the lab's texts.
fn new_words() -> (String, String) {
    use mr_worker::engine::runfile::starts_segment;
    let find = |picked: bool| {
        (0..)
            .map(|i| format!("qqx{i}"))
            .find(|w| starts_segment(w.as_bytes()) == picked)
            .unwrap()
    };
    (find(true), find(false))
}

/// The reduces the job that wrote into `out` ran.
fn reduces_run(t: &TestDir, out: &str) -> Vec<usize> {
    let report = std::fs::read(t.path().join(out).join("mr-report.json")).unwrap();
    let report: serde_json::Value = serde_json::from_slice(&report).unwrap();
    let attempts = report["attempts"].as_array().unwrap();
    attempts
        .iter()
        .filter(|a| a["phase"] == "reduce")
        .map(|a| a["task"].as_u64().unwrap() as usize)
        .collect()
}

/// The report's `cache` section of the job that wrote into `out`.
fn cache_report(t: &TestDir, out: &str) -> serde_json::Value {
    let report = std::fs::read(t.path().join(out).join("mr-report.json")).unwrap();
    serde_json::from_slice::<serde_json::Value>(&report).unwrap()["cache"].clone()
}

/// `mrsequential --cache DIR --split-size 64KiB APP INPUTS` into `out`;
/// returns its stderr and `mr-out-0`.
fn sequential(t: &TestDir, out: &str, cache: &Path, inputs: &[String]) -> (String, Vec<u8>) {
    let dir = t.path().join(out);
    std::fs::create_dir_all(&dir).unwrap();
    let o = Command::new(bin("mrsequential"))
        .arg("--output-dir")
        .arg(&dir)
        .arg("--cache")
        .arg(cache)
        .args(["--split-size", "64KiB", "wc"])
        .args(inputs)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    (err, std::fs::read(dir.join("mr-out-0")).unwrap())
}

mod never_stale;
mod objects;
mod refused;
mod reuse;
