//! `mrworker --replay REPORT TASK`: one task of a finished or failed job,
//! run again alone from what its report recorded. A replayed reduce must
//! give its committed output byte for byte; replayed maps must cover their
//! splits exactly (their counts add up to the job's answer); a map that
//! panicked must panic again on the same record.

use crate::util::{bin, data_files, TestDir};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs a job with two embedded workers into `out`; returns its status
/// and the report's path.
fn job(t: &TestDir, out: &str, args: &[&str]) -> (bool, PathBuf) {
    let dir = t.path().join(out);
    std::fs::create_dir_all(&dir).unwrap();
    let st = Command::new(bin("mrcoordinator"))
        .args(["--quiet", "--no-socket", "--workers", "2"])
        .args(args)
        .arg("--output-dir")
        .arg(&dir)
        .current_dir(t.path())
        .output()
        .unwrap();
    (st.status.success(), dir.join("mr-report.json"))
}

/// `mrworker --replay REPORT TASK [more]`, run in the test's directory.
fn replay(t: &TestDir, report: &Path, task: &str, more: &[&str]) -> Output {
    Command::new(bin("mrworker"))
        .arg("--replay")
        .arg(report)
        .arg(task)
        .args(more)
        .current_dir(t.path())
        .output()
        .unwrap()
}

fn report_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn a_replayed_reduce_gives_its_committed_output_and_maps_cover_their_splits() {
    let t = TestDir::new();
    let inputs = data_files();
    let mut args = vec!["--app", "wc", "--reduces", "3", "--split-size", "64KiB"];
    args.extend(inputs.iter().map(String::as_str));
    let (ok, report) = job(&t, "out", &args);
    assert!(ok);
    for r in 0..3 {
        let dir = format!("r{r}");
        let o = replay(&t, &report, &format!("reduce-{r}"), &["--replay-dir", &dir]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let got = std::fs::read(t.path().join(&dir).join(format!("mr-out-{r}"))).unwrap();
        let want = std::fs::read(t.path().join(format!("out/mr-out-{r}"))).unwrap();
        assert!(
            got == want,
            "reduce-{r} replayed differs from its committed output"
        );
        // It says where its output went, and that it mapped the splits
        // again (the job directory went with the job).
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(stdout.contains(&format!("mr-out-{r}")), "{stdout}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("mapped again"));
    }
    // Every map replayed, their pairs' counts summed: the job's answer.
    let maps = report_json(&report)["replay"]["splits"]
        .as_array()
        .unwrap()
        .len();
    assert!(maps > 10, "{maps} maps");
    let mut summed: BTreeMap<String, u64> = BTreeMap::new();
    for m in 0..maps {
        let dir = format!("m{m}");
        let o = replay(&t, &report, &format!("map-{m}"), &["--replay-dir", &dir]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let text =
            std::fs::read_to_string(t.path().join(&dir).join(format!("mr-map-{m}.txt"))).unwrap();
        for line in text.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            *summed.entry(f[1].to_string()).or_default() += f[2].parse::<u64>().unwrap();
        }
    }
    let mut answer: BTreeMap<String, u64> = BTreeMap::new();
    for r in 0..3 {
        let out = std::fs::read_to_string(t.path().join(format!("out/mr-out-{r}"))).unwrap();
        for line in out.lines() {
            let (k, v) = line.rsplit_once(' ').unwrap();
            answer.insert(k.to_string(), v.parse().unwrap());
        }
    }
    assert_eq!(summed, answer);
}

#[test]
fn a_reduce_replay_uses_the_map_outputs_that_still_exist() {
    let t = TestDir::new();
    let input = t.write(
        "in.txt",
        &b"one two three two\nthree three four\n".repeat(5000),
    );
    let (ok, report) = job(
        &t,
        "out",
        &[
            "--app",
            "wc",
            "--reduces",
            "2",
            "--split-size",
            "16KiB",
            &input,
        ],
    );
    assert!(ok);
    // Map 0's output put back where the job kept it: the replay reads it
    // there and maps only the other splits again.
    let o = replay(&t, &report, "map-0", &["--replay-dir", "m0"]);
    assert!(o.status.success());
    let v = report_json(&report);
    let kept = v["replay"]["map_outputs"][0].as_str().unwrap().to_string();
    let maps = v["replay"]["splits"].as_array().unwrap().len();
    std::fs::create_dir_all(Path::new(&kept).parent().unwrap()).unwrap();
    std::fs::copy(t.path().join("m0/mr-map-0"), &kept).unwrap();
    let o = replay(&t, &report, "reduce-1", &["--replay-dir", "r1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!("{} map outputs were gone", maps - 1)),
        "{err}"
    );
    assert_eq!(
        std::fs::read(t.path().join("r1/mr-out-1")).unwrap(),
        std::fs::read(t.path().join("out/mr-out-1")).unwrap()
    );
}

#[test]
fn a_replayed_poison_map_panics_on_the_same_record() {
    let t = TestDir::new();
    let mut text = b"harmless words\n".repeat(30_000);
    let offset = text.len();
    text.extend_from_slice(b"a poisonrecord here\nmore words\n");
    let input = t.write("p.txt", &text);
    let (ok, report) = job(
        &t,
        "out",
        &[
            "--app",
            "poison",
            "--max-attempts",
            "1",
            "--split-size",
            "64KiB",
            &input,
        ],
    );
    assert!(!ok, "the job fails on the poison record");
    let v = report_json(&report);
    let error = v["job"]["error"].as_str().unwrap().to_string();
    let record = format!("record at byte offset {offset}");
    assert!(error.contains(&record), "{error}");
    // The report names the failed attempt's map; its replay fails the same way.
    let failed = v["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["outcome"] == "failed")
        .unwrap();
    let task = format!("map-{}", failed["task"]);
    let o = replay(&t, &report, &task, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("replay of {task} failed"))
            && err.contains(&record)
            && err.contains("p.txt"),
        "{err}"
    );
    // Another map of the job runs through.
    let o = replay(&t, &report, "map-0", &[]);
    assert!(o.status.success());
    assert!(t.path().join("mr-replay-map-0/mr-map-0").exists());
}

#[test]
fn a_job_that_named_no_app_is_replayed_with_its_workers_app() {
    // The lab's way: the coordinator is told no app, workers bring theirs.
    let t = TestDir::new();
    let input = t.write("in.txt", &b"alpha beta\nbeta gamma\n".repeat(100));
    let (mut c, addr) = t.coordinator(&["--reduces", "2", &input]);
    let _w = t.worker(&addr, "wc");
    assert!(c
        .wait_for(std::time::Duration::from_secs(60))
        .is_some_and(|s| s.success()));
    let report = t.path().join("mr-report.json");
    assert_eq!(report_json(&report)["replay"]["app_args"][0], "wc");
    let o = replay(&t, &report, "reduce-0", &["--replay-dir", "r0"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read(t.path().join("r0/mr-out-0")).unwrap(),
        std::fs::read(t.path().join("mr-out-0")).unwrap()
    );
}

#[test]
fn what_cannot_be_replayed_is_refused_by_name() {
    let t = TestDir::new();
    let input = t.write("in.txt", b"a b c\n");
    let (ok, report) = job(&t, "out", &["--app", "wc", "--reduces", "2", &input]);
    assert!(ok);
    let no_section = t.write("old.json", b"{\"job\": {}}");
    let cases: Vec<(PathBuf, &str, &[&str], &str)> = vec![
        (report.clone(), "map-7", &[], "map-0 to map-0"),
        (report.clone(), "reduce-2", &[], "reduce-0 to reduce-1"),
        (report.clone(), "sort-1", &[], "map-N or reduce-N"),
        (t.path().join("missing.json"), "map-0", &[], "missing.json"),
        (no_section.into(), "map-0", &[], "no replay section"),
    ];
    for (rep, task, more, want) in cases {
        let o = replay(&t, &rep, task, more);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{task}: {err}");
        assert!(err.contains(want), "{task}: {err}");
    }
    // A directory holding something is not written into.
    t.write("busy/keep.txt", b"mine");
    let o = replay(&t, &report, "map-0", &["--replay-dir", "busy"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("busy"));
    assert_eq!(
        std::fs::read(t.path().join("busy/keep.txt")).unwrap(),
        b"mine"
    );
}
