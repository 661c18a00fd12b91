//! An app written outside the framework (`examples/avglen`), loaded as a
//! plugin by embedded workers, checked against averages computed here.

use crate::util::{ascii_inputs, bin, sorted_lines, TestDir};
use std::process::Command;

#[test]
fn the_example_plugin_computes_average_word_length_per_document() {
    let t = TestDir::new();
    let inputs = ascii_inputs(&t);
    let plugin = bin("libavglen.so");
    let out = Command::new(bin("mrcoordinator"))
        .args(["--listen", "127.0.0.1:0", "--workers", "2"])
        .args(["--split-size", "128KiB", "--reduces", "3", "--app"])
        .arg(&plugin)
        .args(&inputs)
        .current_dir(t.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Independently: words are runs of ASCII letters in these inputs.
    let mut want: Vec<Vec<u8>> = inputs
        .iter()
        .map(|f| {
            let text = std::fs::read(f).unwrap();
            let words: Vec<usize> = text
                .split(|b| !b.is_ascii_alphabetic())
                .filter(|w| !w.is_empty())
                .map(<[u8]>::len)
                .collect();
            let avg = words.iter().sum::<usize>() as f64 / words.len() as f64;
            format!("{f} {avg:.2}").into_bytes()
        })
        .collect();
    want.sort();
    let outputs = t.outputs(t.path(), 3);
    assert_eq!(sorted_lines(&outputs), want);
    // The app's partitioner: a document goes to reduce `name length % 3`.
    for (r, o) in outputs.iter().enumerate() {
        for line in o.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let name_len = line.iter().rposition(|&b| b == b' ').unwrap();
            assert_eq!(name_len % 3, r, "{}", String::from_utf8_lossy(line));
        }
    }
    // The app's counters, summed over the job, in the report and summary.
    let words: u64 = inputs
        .iter()
        .map(|f| {
            let text = std::fs::read(f).unwrap();
            text.split(|b| !b.is_ascii_alphabetic())
                .filter(|w| !w.is_empty())
                .count() as u64
        })
        .sum();
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.path().join("mr-report.json")).unwrap()).unwrap();
    assert_eq!(report["counters"]["app: words"], words);
    assert_eq!(report["counters"]["app: documents"], inputs.len() as u64);
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(summary.contains("app: documents"), "{summary}");
}
