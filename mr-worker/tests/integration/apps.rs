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
        .args(["--quiet", "--listen", "127.0.0.1:0", "--workers", "2"])
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
    assert_eq!(sorted_lines(&t.outputs(t.path(), 3)), want);
}
