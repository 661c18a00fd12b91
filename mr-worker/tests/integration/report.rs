//! What a job tells afterwards: the summary on stderr and `mr-report.json`,
//! checked against counts computed here from the inputs and outputs.

use crate::util::{bin, data_files, TestDir};
use std::process::Command;

#[test]
fn the_report_and_summary_count_what_really_happened() {
    let t = TestDir::new();
    let files = data_files();
    let out = Command::new(bin("mrcoordinator"))
        .args(["--listen", "127.0.0.1:0", "--app", "wc", "--workers", "2"])
        .args(["--split-size", "256KiB", "--reduces", "4"])
        .args(&files)
        .current_dir(t.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let summary = String::from_utf8_lossy(&out.stderr);
    // Independent counts: from the inputs and the committed outputs.
    let inputs: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let input_bytes: usize = inputs.iter().map(Vec::len).sum();
    let lines: usize = inputs
        .iter()
        .map(|d| d.iter().filter(|&&b| b == b'\n').count() + usize::from(d.last() != Some(&b'\n')))
        .sum();
    let outputs = t.outputs(t.path(), 4);
    let output_bytes: usize = outputs.iter().map(Vec::len).sum();
    let keys = outputs
        .iter()
        .flat_map(|o| o.split(|&b| b == b'\n'))
        .filter(|l| !l.is_empty());
    let (mut distinct, mut words) = (0u64, 0u64);
    for l in keys {
        let count = l.rsplit(|&b| b == b' ').next().unwrap();
        words += std::str::from_utf8(count).unwrap().parse::<u64>().unwrap();
        distinct += 1;
    }

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.path().join("mr-report.json")).unwrap()).unwrap();
    let c = &report["counters"];
    let get = |name: &str| {
        c[name]
            .as_u64()
            .unwrap_or_else(|| panic!("counter {name}: {c}"))
    };
    assert_eq!(get("input bytes"), input_bytes as u64);
    assert_eq!(get("input records"), lines as u64);
    assert_eq!(get("map output records"), words);
    assert_eq!(get("combine input records"), words);
    assert_eq!(get("reduce input groups"), distinct);
    assert_eq!(get("output records"), distinct);
    assert_eq!(get("output bytes"), output_bytes as u64);
    assert_eq!(get("reduce input records"), get("combine output records"));
    assert!(get("map output bytes") > 0);
    assert_eq!(report["job"]["state"], "succeeded");
    assert_eq!(report["job"]["app"], "wc");
    let p = &report["progress"];
    let maps = p["maps"].as_u64().unwrap();
    assert!(maps > 8, "256 KiB splits cut the larger texts: {maps}");
    assert_eq!(p["reduces_done"], 4);
    let attempts = report["attempts"].as_array().unwrap();
    assert_eq!(attempts.len() as u64, p["attempts"].as_u64().unwrap());
    let succeeded = attempts
        .iter()
        .filter(|a| a["outcome"] == "succeeded")
        .count() as u64;
    assert_eq!(succeeded, maps + 4);
    for a in attempts {
        let (s, e) = (a["start_s"].as_f64().unwrap(), a["end_s"].as_f64().unwrap());
        assert!(0.0 <= s && s <= e, "{a}");
    }
    assert_eq!(report["workers"].as_array().unwrap().len(), 2);
    // Each worker's attempts, counted from the attempt list independently.
    for w in report["workers"].as_array().unwrap() {
        let mine = attempts.iter().filter(|a| a["worker"] == w["id"]).count() as u64;
        assert_eq!(w["attempts"].as_u64(), Some(mine), "{w}");
    }
    // The timeline: well-formed SVG with one bar (a rectangle in a bar
    // colour) per attempt.
    let svg = std::fs::read_to_string(t.path().join("mr-timeline.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the timeline is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let palette = ["#4682B4", "#2E8B57", "#D62728", "#999999", "#FF9F1C"];
    let bars = doc
        .descendants()
        .filter(|n| n.has_tag_name("rect"))
        .filter(|n| {
            n.attribute("fill")
                .is_some_and(|f| palette.contains(&f.to_uppercase().as_str()))
        })
        .count();
    assert_eq!(bars, attempts.len());
    // The terminal summary shows the same figures.
    let grouped = |n: u64| {
        let d = n.to_string();
        let mut s = String::new();
        for (i, ch) in d.chars().enumerate() {
            if i > 0 && (d.len() - i).is_multiple_of(3) {
                s.push(',');
            }
            s.push(ch);
        }
        s
    };
    for (name, v) in [("map output records", words), ("output records", distinct)] {
        let line = summary
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap();
        assert!(line.trim_end().ends_with(&grouped(v)), "{line}");
    }
}
