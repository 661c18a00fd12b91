//! Streaming apps: map and reduce as shell commands (here awk), checked
//! against the built-in word count on ASCII text. [`MAP`] and [`REDUCE`]
//! serve other modules' streaming jobs too.

use crate::util::{ascii_inputs, bin, sorted_lines, TestDir};
use std::process::Command;
use std::time::Duration;

pub(crate) const MAP: &str = r#"tr -cs 'A-Za-z' '\n' | awk 'NF { print $1 "\t1" }'"#;
pub(crate) const REDUCE: &str = r#"awk -F'\t' '$1 != k { if (NR > 1) print k "\t" n; k = $1; n = 0 } { n += $2 } END { if (NR > 0) print k "\t" n }'"#;

#[test]
fn an_awk_word_count_equals_the_built_in_one() {
    let t = TestDir::new();
    let inputs = ascii_inputs(&t);
    let want = t.sequential("wc", &inputs);
    let out = Command::new(bin("mrcoordinator"))
        .args(["--quiet", "--listen", "127.0.0.1:0", "--workers", "2"])
        .args(["--split-size", "256KiB", "--reduces", "5"])
        .args(["--map-cmd", MAP, "--reduce-cmd", REDUCE])
        .args(&inputs)
        .current_dir(t.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sorted_lines(&t.outputs(t.path(), 5)), want);
}

#[test]
fn a_worker_with_other_commands_is_refused_and_a_failing_command_fails_the_job() {
    let t = TestDir::new();
    let f = t.write("in.txt", b"alpha beta\n");
    let (mut c, addr, log) = t.coordinator_logged(&[
        "--map-cmd",
        "cat",
        "--reduce-cmd",
        "echo reducer broke >&2; exit 7",
        "--max-attempts",
        "2",
        &f,
    ]);
    let other = Command::new(bin("mrworker"))
        .args([
            "--coordinator",
            &addr,
            "--map-cmd",
            "cat",
            "--reduce-cmd",
            "cat",
        ])
        .output()
        .unwrap();
    assert_eq!(other.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&other.stderr).contains("streaming-"));
    let _w = t.worker_with(
        &addr,
        "--map-cmd=cat",
        &["--reduce-cmd", "echo reducer broke >&2; exit 7"],
    );
    let st = c.wait_for(Duration::from_secs(30)).expect("job ends");
    assert_eq!(st.code(), Some(1));
    let log = std::fs::read_to_string(log).unwrap();
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.contains("reduce command `echo reducer broke >&2; exit 7` failed")
            && last.contains("exit status: 7")
            && last.contains("reducer broke"),
        "{log}"
    );
}

/// The largest resident set (VmHWM, MiB) any child of `pid` reached, polled
/// until `pid` exits; and its exit status.
fn peak_of_children(p: &mut crate::util::Proc) -> (u64, std::process::ExitStatus) {
    let mut peak = 0;
    loop {
        let pid = p.pid();
        let kids =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        for kid in kids.split_whitespace() {
            let status = std::fs::read_to_string(format!("/proc/{kid}/status")).unwrap_or_default();
            if let Some(l) = status.lines().find(|l| l.starts_with("VmHWM:")) {
                let kib: u64 = l
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0);
                peak = peak.max(kib / 1024);
            }
        }
        if let Some(st) = p.wait_for(Duration::from_millis(20)) {
            return (peak, st);
        }
    }
}

#[test]
fn a_hot_key_from_a_streaming_map_spills_within_the_memory_budget() {
    let t = TestDir::new();
    // 24 MiB of one word: the map command prints a pair per word, about
    // 1.5 times its input, and each pair costs its buffer far more.
    let line = "the ".repeat(16) + "\n";
    let input = t.write(
        "hot.txt",
        line.repeat(24 * 1024 * 1024 / line.len()).as_bytes(),
    );
    let words = 16 * (24 * 1024 * 1024 / line.len());
    let mut cmd = Command::new(bin("mrcoordinator"));
    // Embedded workers inherit the budget through MR_MEMORY.
    cmd.env("MR_MEMORY", "32MiB")
        .args([
            "--quiet",
            "--listen",
            "127.0.0.1:0",
            "--no-socket",
            "--workers",
            "1",
        ])
        .args(["--reduces", "1", "--map-cmd", MAP, "--reduce-cmd", REDUCE])
        .arg(&input);
    let mut c = crate::util::Proc::start(cmd, t.path());
    let (peak, st) = peak_of_children(&mut c);
    assert!(st.success(), "{st}");
    assert_eq!(
        sorted_lines(&t.outputs(t.path(), 1)),
        vec![format!("the {words}").into_bytes()]
    );
    // A 32 MiB budget and the process itself: without spilling within a
    // chunk, one 8 MiB chunk's pairs alone took well over 100 MiB.
    assert!(
        peak < 80,
        "the worker peaked at {peak} MiB with a 32 MiB budget"
    );
}
