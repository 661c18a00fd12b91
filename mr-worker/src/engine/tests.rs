//! Tests of the map and reduce engines together, through real files.

use crate::engine::map::{run_map, MapJob, DEFAULT_MEMORY};
use crate::engine::reduce::{run_reduce, ReduceInput, ReduceJob};
use mr_apps::{ihash, App, Emit, Values};
use mr_protocol::FilePart;
use mr_protocol::{AttemptId, BadRecord, MapTaskId, TaskFailure};
use std::path::{Path, PathBuf};

/// A byte range of a file, as the planner would send it.
fn part(name: &str, path: &Path, start: u64, end: u64, file_len: u64) -> FilePart {
    FilePart {
        version: None,
        name: name.to_string(),
        path: path.to_path_buf(),
        start,
        end,
        file_len,
    }
}

/// Maps `input` (one map task per entry, whole file) with R partitions and
/// reduces every partition; returns each partition's output text.
fn run_job(app: &dyn App, dir: &Path, inputs: &[PathBuf], reduces: u32, split: u64) -> Vec<String> {
    let mut runs = Vec::new();
    let mut m = 0;
    for input in inputs {
        let len = std::fs::metadata(input).unwrap().len();
        let mut start = 0;
        loop {
            let out = dir.join(format!("mr-{m}"));
            run_map(
                app,
                &MapJob {
                    map: m,
                    reduces,
                    parts: &[part(
                        input.to_str().unwrap(),
                        input,
                        start,
                        (start + split).min(len),
                        len,
                    )],
                    fetched: &[],
                    out: &out,
                    memory: DEFAULT_MEMORY,
                    skip: &[],
                    cancel: Default::default(),
                },
            )
            .unwrap();
            runs.push(ReduceInput::run_file(MapTaskId(m), AttemptId(0), out));
            m += 1;
            start += split;
            if start >= len {
                break;
            }
        }
    }
    (0..reduces)
        .map(|r| {
            let out = dir.join(format!("out-{r}"));
            run_reduce(
                app,
                &ReduceJob {
                    reduce: r,
                    reduces,
                    inputs: runs.clone(),
                    out: &out,
                    upload_to: None,
                    skip: &[],
                    cancel: Default::default(),
                    index: false,
                    reuse: None,
                },
            )
            .unwrap();
            std::fs::read_to_string(out).unwrap()
        })
        .collect()
}

#[test]
fn splits_and_partitions_give_the_same_counts_as_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let mut text = String::new();
    for i in 0..1000 {
        text.push_str(&format!("w{} the cat Ünïcödé x{}\r\n", i % 17, i % 5));
    }
    text.push_str("last line without newline the");
    std::fs::write(&input, &text).unwrap();
    let app = mr_apps::apps::wc::WordCount;
    let one = run_job(&app, dir.path(), std::slice::from_ref(&input), 1, 1 << 30).concat();
    for (reduces, split) in [(3, 1000), (7, 64), (13, 7)] {
        let parts = run_job(
            &app,
            dir.path(),
            std::slice::from_ref(&input),
            reduces,
            split,
        );
        for (r, p) in parts.iter().enumerate() {
            let keys: Vec<&str> = p.lines().map(|l| l.rsplit_once(' ').unwrap().0).collect();
            assert!(
                keys.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes()),
                "sorted, distinct"
            );
            assert!(keys
                .iter()
                .all(|k| ihash(k.as_bytes()) % reduces == r as u32));
        }
        let mut all: Vec<&str> = parts.iter().flat_map(|p| p.lines()).collect();
        all.sort_unstable();
        let mut want: Vec<&str> = one.lines().collect();
        want.sort_unstable();
        assert_eq!(all, want, "R={reduces} split={split}");
    }
    // Hand-computed: "the" occurs once per line plus once on the last line.
    assert!(one.lines().any(|l| l == "the 1001"), "{one}");
    assert!(one.lines().any(|l| l == "Ünïcödé 1000"));
}

#[test]
fn range_partitions_concatenate_to_the_one_sorted_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    // Words are runs of letters: numbers spelled in letters, "wbaaa" on.
    let word = |mut n: usize| {
        let mut w = String::from("w");
        for _ in 0..4 {
            w.insert(1, (b'a' + (n % 26) as u8) as char);
            n /= 26;
        }
        w
    };
    let mut text = String::new();
    for i in 0..3000 {
        text.push_str(&format!(
            "{} alpha zulu mike {}\n",
            word(i * 7 % 3000),
            word(i)
        ));
    }
    std::fs::write(&input, &text).unwrap();
    let wc: mr_apps::AppRef = std::sync::Arc::new(mr_apps::apps::wc::WordCount);
    let one = run_job(&*wc, dir.path(), std::slice::from_ref(&input), 1, 1 << 30).concat();
    // Split points inside the keys, one that no key reaches, one below all.
    let points: Vec<Vec<u8>> = ["", "mike", "waabm", "waadb", "zz"]
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect();
    let ranged = mr_apps::JobApp::wrap(wc, None, Some(points.clone().into()));
    for (split, memory_note) in [(1u64 << 30, "one map"), (4096, "many maps")] {
        let parts = run_job(&*ranged, dir.path(), std::slice::from_ref(&input), 6, split);
        assert_eq!(parts.concat(), one, "{memory_note}");
        for (r, p) in parts.iter().enumerate() {
            for key in p.lines().map(|l| l.rsplit_once(' ').unwrap().0.as_bytes()) {
                assert!(r == 0 || key >= points[r - 1].as_slice(), "{r}: {key:?}");
                assert!(r == 5 || key < points[r].as_slice(), "{r}: {key:?}");
            }
        }
        assert!(parts[0].is_empty() && parts[5].is_empty() && !parts[3].is_empty());
    }
}

/// Panics on the word "boom"; otherwise a word count without a combiner.
struct Fragile;

impl App for Fragile {
    fn name(&self) -> &str {
        "fragile"
    }
    fn map(&self, _f: &str, chunk: &[u8], emit: &mut dyn Emit) {
        mr_apps::words::for_each_word(chunk, |w| {
            assert!(w != b"boom", "found a bomb");
            emit.emit(w, b"");
        });
    }
    fn reduce(&self, key: &[u8], values: &mut dyn Values, out: &mut Vec<u8>) {
        assert!(key != b"defuse", "reduce refused");
        out.extend_from_slice(mr_apps::count_values(values).to_string().as_bytes());
    }
}

#[test]
fn app_panics_become_typed_failures_naming_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bombs.txt");
    std::fs::write(&input, "fine line\n".repeat(100) + "boom\n").unwrap();
    let len = std::fs::metadata(&input).unwrap().len();
    let out = dir.path().join("mr-0");
    let err = run_map(
        &Fragile,
        &MapJob {
            map: 0,
            reduces: 2,
            parts: &[part("bombs.txt", &input, 0, len, len)],
            fetched: &[],
            out: &out,
            memory: DEFAULT_MEMORY,
            skip: &[],
            cancel: Default::default(),
        },
    )
    .unwrap_err();
    // The failure names the exact record: the line starting at byte 1000.
    let bad = match err {
        TaskFailure::AppPanic {
            message,
            phase,
            record,
        } => {
            assert!(message.contains("found a bomb"));
            assert_eq!(phase, mr_protocol::Phase::Map);
            assert_eq!(
                record,
                BadRecord::Line {
                    input: "bombs.txt".into(),
                    offset: 1000
                }
            );
            record
        }
        other => panic!("expected an app panic, got {other:?}"),
    };
    assert!(
        !out.exists() && !out.with_extension("tmp").exists(),
        "no partial output"
    );
    // Told to skip that record, the next attempt maps everything else.
    let stats = run_map(
        &Fragile,
        &MapJob {
            map: 0,
            reduces: 1,
            parts: &[part("bombs.txt", &input, 0, len, len)],
            fetched: &[],
            out: &out,
            memory: DEFAULT_MEMORY,
            skip: std::slice::from_ref(&bad),
            cancel: Default::default(),
        },
    )
    .unwrap();
    assert_eq!(stats.skipped, 1);
    let reduced = dir.path().join("out");
    assert_eq!(
        reduce_runs(&Fragile, 0, &[out], &reduced),
        "fine 100\nline 100\n"
    );
}

#[test]
fn skipping_works_on_records_anywhere_in_a_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    // Bad lines first, in the middle, and last without a newline.
    let text = "boom\na b\nboom boom\nc\nboom";
    std::fs::write(&input, text).unwrap();
    let len = text.len() as u64;
    let out = dir.path().join("mr-0");
    let skip: Vec<BadRecord> = [0u64, 9, 21]
        .iter()
        .map(|&offset| BadRecord::Line {
            input: "in.txt".into(),
            offset,
        })
        .collect();
    let stats = run_map(
        &Fragile,
        &MapJob {
            map: 0,
            reduces: 1,
            parts: &[part("in.txt", &input, 0, len, len)],
            fetched: &[],
            out: &out,
            memory: DEFAULT_MEMORY,
            skip: &skip,
            cancel: Default::default(),
        },
    )
    .unwrap();
    assert_eq!(stats.skipped, 3);
    let reduced = dir.path().join("out");
    run_reduce(
        &Fragile,
        &ReduceJob {
            reduce: 0,
            reduces: 1,
            inputs: vec![ReduceInput::run_file(MapTaskId(0), AttemptId(0), out)],
            out: &reduced,
            upload_to: None,
            skip: &[],
            cancel: Default::default(),
            index: false,
            reuse: None,
        },
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(&reduced).unwrap(),
        "a 1\nb 1\nc 1\n"
    );
}

#[test]
fn reduce_panics_and_corrupt_inputs_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "defuse me\n").unwrap();
    let len = std::fs::metadata(&input).unwrap().len();
    let run = dir.path().join("mr-4");
    let job = MapJob {
        map: 4,
        reduces: 1,
        parts: &[part("in.txt", &input, 0, len, len)],
        fetched: &[],
        out: &run,
        memory: DEFAULT_MEMORY,
        skip: &[],
        cancel: Default::default(),
    };
    run_map(&Fragile, &job).unwrap();
    let out = dir.path().join("out");
    let reduce = ReduceJob {
        reduce: 0,
        reduces: 1,
        inputs: vec![ReduceInput::run_file(
            MapTaskId(4),
            AttemptId(0),
            run.clone(),
        )],
        out: &out,
        upload_to: None,
        skip: &[],
        cancel: Default::default(),
        index: false,
        reuse: None,
    };
    let err = run_reduce(&Fragile, &reduce).unwrap_err();
    let TaskFailure::AppPanic {
        message, record, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(message.contains("reduce refused"), "{err:?}");
    assert_eq!(*record, BadRecord::Key(b"defuse".to_vec()));
    // Skipping that key, the reduce completes without it.
    let skip = [record.clone()];
    let stats = run_reduce(
        &Fragile,
        &ReduceJob {
            skip: &skip,
            cancel: Default::default(),
            ..reduce.clone()
        },
    )
    .unwrap();
    assert_eq!(stats.skipped, 1);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "me 1\n");
    // Flip a byte in the data: the reduce names the map whose output is bad.
    let mut bytes = std::fs::read(&run).unwrap();
    bytes[24] ^= 1;
    std::fs::write(&run, bytes).unwrap();
    let err = run_reduce(&mr_apps::apps::wc::WordCount, &reduce).unwrap_err();
    assert!(
        matches!(
            err,
            TaskFailure::MapOutputLost {
                map: MapTaskId(4),
                ..
            }
        ),
        "{err:?}"
    );
    std::fs::remove_file(&run).unwrap();
    let err = run_reduce(&mr_apps::apps::wc::WordCount, &reduce).unwrap_err();
    assert!(
        matches!(
            err,
            TaskFailure::MapOutputLost {
                map: MapTaskId(4),
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_changed_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "abc\n").unwrap();
    let out = dir.path().join("mr-0");
    let err = run_map(
        &mr_apps::apps::wc::WordCount,
        &MapJob {
            map: 0,
            reduces: 1,
            parts: &[part("in.txt", &input, 0, 10, 10)],
            fetched: &[],
            out: &out,
            memory: DEFAULT_MEMORY,
            skip: &[],
            cancel: Default::default(),
        },
    )
    .unwrap_err();
    assert!(matches!(err, TaskFailure::Input { .. }), "{err:?}");
}

/// Maps `input` as one task with `memory` bytes of budget, reduces its one
/// partition, and returns the output text and how many spills the map made.
fn map_reduce_one(app: &dyn App, dir: &Path, input: &Path, memory: usize) -> (String, u32) {
    let len = std::fs::metadata(input).unwrap().len();
    let run = dir.join(format!("mr-9-{memory}"));
    let stats = run_map(
        app,
        &MapJob {
            map: 9,
            reduces: 1,
            parts: &[part("big.txt", input, 0, len, len)],
            fetched: &[],
            out: &run,
            memory,
            skip: &[],
            cancel: Default::default(),
        },
    )
    .unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.contains("spill") || name.contains("merge")
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "spill and merge files must be removed"
    );
    let out = dir.join(format!("out-{memory}"));
    (reduce_runs(app, 9, &[run], &out), stats.spills)
}

/// Reduces the one-partition `runs` of map `map` into `out` and reads it.
fn reduce_runs(app: &dyn App, map: u32, runs: &[PathBuf], out: &Path) -> String {
    run_reduce(
        app,
        &ReduceJob {
            reduce: 0,
            reduces: 1,
            inputs: runs
                .iter()
                .map(|r| ReduceInput::run_file(MapTaskId(map), AttemptId(0), r.clone()))
                .collect(),
            out,
            upload_to: None,
            skip: &[],
            cancel: Default::default(),
            index: false,
            reuse: None,
        },
    )
    .unwrap();
    std::fs::read_to_string(out).unwrap()
}

#[test]
fn input_far_beyond_the_budget_spills_and_merges_to_the_same_answer() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.txt");
    // ~4 MB with ~60,000 distinct words: its tables are many times the budget.
    let mut text = String::new();
    let mut x: u64 = 7;
    for _ in 0..400_000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let w = x >> 48;
        // A word of letters spelling w % 60000 in base 26.
        let mut n = w % 60_000;
        text.push('w');
        while n > 0 {
            text.push((b'a' + (n % 26) as u8) as char);
            n /= 26;
        }
        text.push(' ');
        if w.is_multiple_of(9) {
            text.push('\n');
        }
    }
    std::fs::write(&input, &text).unwrap();
    let apps: [(&dyn App, &str); 3] = [
        (&mr_apps::apps::wc::WordCount, "wc (count table)"),
        (
            &mr_apps::apps::indexer::Indexer,
            "indexer (pairs + combine)",
        ),
        (&Fragile, "no combiner"),
    ];
    for (app, what) in apps {
        let (want, no_spills) = map_reduce_one(app, dir.path(), &input, DEFAULT_MEMORY);
        assert_eq!(no_spills, 0, "{what}: the default budget holds this input");
        let (got, spills) = map_reduce_one(app, dir.path(), &input, 128 << 10);
        // More than one merge's fan-in (16): merged in rounds.
        assert!(spills > 16, "{what}: expected many spills, got {spills}");
        assert_eq!(got, want, "{what}: spilled output differs");
        // Left as runs for the reduce to merge (as mrsequential does).
        let len = std::fs::metadata(&input).unwrap().len();
        let out = dir.path().join("mr-runs");
        let (_, runs) = crate::engine::map::run_map_runs(
            app,
            &MapJob {
                map: 9,
                reduces: 1,
                parts: &[part("big.txt", &input, 0, len, len)],
                fetched: &[],
                out: &out,
                memory: 128 << 10,
                skip: &[],
                cancel: Default::default(),
            },
        )
        .unwrap();
        assert!(
            (2..=16).contains(&runs.len()),
            "{what}: {} runs",
            runs.len()
        );
        let reduced = dir.path().join("out-runs");
        let got = reduce_runs(app, 9, &runs, &reduced);
        assert_eq!(got, want, "{what}: runs");
        for r in &runs {
            std::fs::remove_file(r).unwrap();
        }
        let others: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("spill") || n.contains("merge"))
            .collect();
        assert!(others.is_empty(), "{what}: left behind {others:?}");
    }
}

/// Emits, for the line "huge", a value just over the pair limit (a zeroed
/// buffer: its pages are never touched, since the pair is refused first).
struct Bloated;

impl App for Bloated {
    fn name(&self) -> &str {
        "bloated"
    }
    fn map(&self, _f: &str, chunk: &[u8], emit: &mut dyn Emit) {
        for line in chunk.split(|&b| b == b'\n') {
            if line == b"huge" {
                emit.emit(b"k", &vec![0u8; crate::engine::runfile::MAX_PAIR]);
            } else if !line.is_empty() {
                emit.emit(line, b"1");
            }
        }
    }
    fn reduce(&self, _key: &[u8], values: &mut dyn Values, out: &mut Vec<u8>) {
        out.extend_from_slice(mr_apps::count_values(values).to_string().as_bytes());
    }
}

#[test]
fn a_pair_too_large_for_the_format_fails_the_attempt_naming_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "small\nhuge\n").unwrap();
    let len = std::fs::metadata(&input).unwrap().len();
    let out = dir.path().join("mr-0");
    let err = run_map(
        &Bloated,
        &MapJob {
            map: 0,
            reduces: 1,
            parts: &[part("in.txt", &input, 0, len, len)],
            fetched: &[],
            out: &out,
            memory: DEFAULT_MEMORY,
            skip: &[],
            cancel: Default::default(),
        },
    )
    .unwrap_err();
    match err {
        TaskFailure::AppPanic {
            message, record, ..
        } => {
            assert!(message.contains("must stay under 256 MiB"), "{message}");
            assert_eq!(
                record,
                BadRecord::Line {
                    input: "in.txt".into(),
                    offset: 6
                }
            );
        }
        other => panic!("expected the pair refused, got {other:?}"),
    }
    // The format refuses it too, by size, when written directly.
    let mut w = crate::engine::runfile::RunWriter::create(&out, 0, 1).unwrap();
    let e = w
        .push(b"k", &vec![0u8; crate::engine::runfile::MAX_PAIR])
        .unwrap_err();
    assert!(
        e.to_string().contains("exceeds the limit of 256 MiB"),
        "{e}"
    );
}

#[test]
fn a_cancelled_attempt_stops_with_cancelled_in_map_and_in_reduce() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "some words here\n".repeat(1000)).unwrap();
    let len = std::fs::metadata(&input).unwrap().len();
    let run = dir.path().join("mr-2");
    let cancel = crate::engine::cancel::Cancel::default();
    let mut job = MapJob {
        map: 2,
        reduces: 1,
        parts: &[part("in.txt", &input, 0, len, len)],
        fetched: &[],
        out: &run,
        memory: DEFAULT_MEMORY,
        skip: &[],
        cancel: cancel.clone(),
    };
    run_map(&Fragile, &job).unwrap();
    let reduce_job = |cancel: crate::engine::cancel::Cancel, out: &std::path::Path| {
        run_reduce(
            &Fragile,
            &ReduceJob {
                reduce: 0,
                reduces: 1,
                inputs: vec![ReduceInput::run_file(
                    MapTaskId(2),
                    AttemptId(0),
                    run.clone(),
                )],
                out,
                upload_to: None,
                skip: &[],
                cancel,
                index: false,
                reuse: None,
            },
        )
    };
    let out = dir.path().join("out");
    reduce_job(cancel.clone(), &out).unwrap();
    // Once cancelled, neither engine goes on.
    cancel.cancel();
    let again = dir.path().join("mr-2-again");
    job.out = &again;
    assert_eq!(run_map(&Fragile, &job).unwrap_err(), TaskFailure::Cancelled);
    assert_eq!(
        reduce_job(cancel, &out).unwrap_err(),
        TaskFailure::Cancelled
    );
}
