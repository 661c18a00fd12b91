//! The paper's sort and grep, and what they rest on: fixed-length records,
//! values-only outputs, a sampled total order and job parameters. Each
//! answer is checked against a plain sort (or search) done here, and the
//! sort's outputs also by the project's valsort-like checker.

use crate::util::{bin, data_files, eventually, sorted_lines, Proc, TestDir};
use std::process::Command;
use std::time::{Duration, Instant};

/// Writes `count` sort-benchmark records (gensort's) in `files` files under
/// `dir` with `mr-corpus`; returns their paths.
fn records(t: &TestDir, dir: &str, count: u64, files: u32, flags: &[&str]) -> Vec<String> {
    let out = t.path().join(dir);
    let st = Command::new(bin("mr-corpus"))
        .args([
            "--records",
            &count.to_string(),
            "--files",
            &files.to_string(),
        ])
        .args(flags)
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    (0..files)
        .map(|i| out.join(format!("records-{i:04}")).display().to_string())
        .collect()
}

/// The records of `inputs`, sorted as plain bytes (what `sort` of whole
/// records gives): the independent answer.
fn plainly_sorted(inputs: &[String]) -> Vec<u8> {
    let all: Vec<u8> = inputs
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect();
    assert_eq!(all.len() % 100, 0);
    let mut recs: Vec<&[u8]> = all.chunks(100).collect();
    recs.sort();
    recs.concat()
}

/// `mr-corpus --check [flags] files`: its report, and whether it passed.
fn check(files: &[String], flags: &[&str]) -> (bool, String) {
    let o = Command::new(bin("mr-corpus"))
        .arg("--check")
        .args(flags)
        .args(files)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

/// Runs `mrcoordinator` with embedded workers in `t`'s directory to the
/// end; panics with its stderr unless it succeeds.
fn run_job(t: &TestDir, args: &[&str], inputs: &[String]) {
    let o = Command::new(bin("mrcoordinator"))
        .args(["--listen", "127.0.0.1:0", "--quiet"])
        .args(args)
        .args(inputs)
        .current_dir(t.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Checks the sort's `reduces` outputs in `dir`: in order across files by
/// the checker, the same records and checksum as the inputs, and byte for
/// byte the plain sort. Returns the outputs' sizes.
fn check_sorted(t: &TestDir, dir: &std::path::Path, reduces: u32, inputs: &[String]) -> Vec<usize> {
    let outputs = t.outputs(dir, reduces);
    let names: Vec<String> = (0..reduces)
        .map(|r| dir.join(format!("mr-out-{r}")).display().to_string())
        .collect();
    let (ok, got) = check(&names, &[]);
    assert!(ok && got.contains("SUCCESS"), "{got}");
    let (_, want) = check(inputs, &["--unordered"]);
    assert!(
        got.starts_with(want.trim_end()),
        "inputs:\n{want}\noutputs:\n{got}"
    );
    assert!(
        outputs.concat() == plainly_sorted(inputs),
        "not the plain sort"
    );
    outputs.iter().map(Vec::len).collect()
}

#[test]
fn sort_of_ascii_and_binary_records_is_the_plain_sort() {
    for (name, flags) in [("ascii", &["--ascii"][..]), ("binary", &[][..])] {
        let t = TestDir::new();
        // Binary records hold newlines anywhere: only records frame them.
        let inputs = records(&t, "in", 30_000, 3, flags);
        run_job(
            &t,
            &[
                "--app",
                "sort",
                "--workers",
                "2",
                "--reduces",
                "7",
                "--split-size",
                "64KiB",
            ],
            &inputs,
        );
        let sizes = check_sorted(&t, t.path(), 7, &inputs);
        assert!(
            sizes.iter().all(|&s| s > 0 && s % 100 == 0),
            "{name}: {sizes:?}"
        );
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(t.path().join("mr-report.json")).unwrap())
                .unwrap();
        assert_eq!(report["shape"]["record_size"], 100, "{name}");
        assert_eq!(report["shape"]["total_order"], true, "{name}");
        assert_eq!(report["shape"]["split_points"], 6, "{name}");
        // 64 KiB splits of 3 MB: many maps, each cut between records.
        assert!(report["progress"]["maps"].as_u64().unwrap() >= 40, "{name}");
    }
}

#[test]
fn skewed_keys_stay_balanced_across_the_outputs() {
    let t = TestDir::new();
    let inputs = records(&t, "in", 200_000, 4, &["--skew"]);
    run_job(
        &t,
        &["--app", "sort", "--workers", "2", "--reduces", "7"],
        &inputs,
    );
    let sizes = check_sorted(&t, t.path(), 7, &inputs);
    let mean = sizes.iter().sum::<usize>() as f64 / sizes.len() as f64;
    let largest = *sizes.iter().max().unwrap() as f64;
    assert!(
        largest <= 1.5 * mean,
        "largest {largest} vs mean {mean}: {sizes:?}"
    );
}

#[test]
fn mrsequential_sorts_into_one_output() {
    let t = TestDir::new();
    let inputs = records(&t, "in", 20_000, 2, &["--ascii", "--skew"]);
    let out = t.path().join("seq");
    std::fs::create_dir_all(&out).unwrap();
    let st = Command::new(bin("mrsequential"))
        .arg("--output-dir")
        .arg(&out)
        .arg("sort")
        .args(&inputs)
        .status()
        .unwrap();
    assert!(st.success());
    check_sorted(&t, &out, 1, &inputs);
}

#[test]
fn hand_started_workers_sort_right_with_one_killed() {
    let t = TestDir::new();
    // Enough maps (about 230) that one worker alone is far from done when
    // its first output appears.
    let inputs = records(&t, "in", 300_000, 3, &[]);
    let mut args = vec![
        "--app",
        "sort",
        "--reduces",
        "5",
        "--split-size",
        "128KiB",
        "--task-timeout",
        "2",
        "--no-token",
        "--no-tls",
    ];
    args.extend(inputs.iter().map(String::as_str));
    let (mut coord, addr) = t.coordinator(&args);
    // One worker alone first, killed once it has map outputs behind it.
    let first = t.worker(&addr, "sort");
    let job_dir = t.path().join("mr-job");
    assert!(
        eventually(Duration::from_secs(20), || {
            !crate::util::map_outputs(&job_dir).is_empty()
        }),
        "the first worker never finished a map"
    );
    first.signal("KILL");
    assert!(
        coord.wait_for(Duration::ZERO).is_none(),
        "the job ended before its worker was killed: the test proves nothing"
    );
    drop(first);
    let _others: Vec<Proc> = (0..2).map(|_| t.worker(&addr, "sort")).collect();
    let st = coord
        .wait_for(Duration::from_secs(60))
        .expect("job did not finish");
    assert!(st.success(), "{st}");
    check_sorted(&t, t.path(), 5, &inputs);
}

#[test]
fn grep_outputs_every_matching_line_as_often_as_it_occurs() {
    let t = TestDir::new();
    // Lines in other scripts, invalid UTF-8, CR LF, a repeated line, and a
    // last line without its newline.
    let mut a = "the needle here\nno match\nneedle\r\nnaïve needle ü\nстрока needle\n"
        .as_bytes()
        .to_vec();
    a.extend_from_slice(b"\xff\xfe needle in bytes\nneedle\r\nneedleneedle twice\n");
    for i in 0..5000 {
        a.extend_from_slice(format!("filler line {i} with a need le\n").as_bytes());
        if i % 997 == 0 {
            a.extend_from_slice(format!("line {i} has the needle\n").as_bytes());
        }
    }
    let mut inputs = vec![
        t.write("a.txt", &a),
        t.write("b.txt", b"last needle without newline"),
    ];
    inputs.extend(data_files());
    // Hand-started workers learn the pattern from the coordinator.
    let mut args = vec![
        "--app",
        "grep",
        "--conf",
        "pattern=needle",
        "--reduces",
        "3",
        "--split-size",
        "32KiB",
        "--no-token",
        "--no-tls",
    ];
    args.extend(inputs.iter().map(String::as_str));
    let (mut coord, addr) = t.coordinator(&args);
    let _workers: Vec<Proc> = (0..2).map(|_| t.worker(&addr, "grep")).collect();
    let st = coord
        .wait_for(Duration::from_secs(60))
        .expect("job did not finish");
    assert!(st.success(), "{st}");
    let got = sorted_lines(&t.outputs(t.path(), 3));
    // Independently: every line of every input holding the bytes.
    let mut want: Vec<Vec<u8>> = inputs
        .iter()
        .flat_map(|f| {
            let data = std::fs::read(f).unwrap();
            data.split(|&b| b == b'\n')
                .filter(|l| l.windows(6).any(|w| w == b"needle"))
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect();
    want.sort();
    assert!(want.len() > 10);
    assert_eq!(got, want);
    // And what grep -F itself prints, where there is one.
    if let Ok(o) = Command::new("grep")
        .args(["-F", "-h", "-a", "needle"])
        .args(&inputs)
        .output()
    {
        assert_eq!(got, sorted_lines(&[o.stdout]));
    }
}

#[test]
fn total_order_word_count_concatenates_to_the_sequential_answer() {
    let t = TestDir::new();
    let inputs = data_files();
    run_job(
        &t,
        &[
            "--app",
            "wc",
            "--total-order",
            "--workers",
            "2",
            "--reduces",
            "5",
            "--split-size",
            "256KiB",
        ],
        &inputs,
    );
    let outputs = t.outputs(t.path(), 5);
    let out = t.path().join("seq");
    std::fs::create_dir_all(&out).unwrap();
    let st = Command::new(bin("mrsequential"))
        .arg("--output-dir")
        .arg(&out)
        .arg("wc")
        .args(&inputs)
        .status()
        .unwrap();
    assert!(st.success());
    // mrsequential's one output is in key order; the five, concatenated, are too.
    let seq = std::fs::read(out.join("mr-out-0")).unwrap();
    assert!(
        outputs.concat() == seq,
        "the outputs concatenated are not the sorted count"
    );
    assert!(outputs.iter().filter(|o| !o.is_empty()).count() >= 4);
}

/// Runs `program args` in `t`, expecting a refusal with exit status 2
/// within a few seconds; returns its stderr.
fn refused(t: &TestDir, program: &str, args: &[&str]) -> String {
    let started = Instant::now();
    let o = Command::new(bin(program))
        .args(args)
        .current_dir(t.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{program} {args:?}: {err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{program} took {:?}",
        started.elapsed()
    );
    err
}

#[test]
fn a_missing_parameter_and_a_partial_record_are_refused_by_name() {
    let t = TestDir::new();
    let text = t.write("in.txt", b"some text\n");
    let odd = t.write("odd.dat", &[b'x'; 1234]);
    for program in ["mrcoordinator", "mrsequential"] {
        let (app_flag, workers): (&[&str], &[&str]) = match program {
            "mrcoordinator" => (&["--app"], &["--workers", "1", "--listen", "127.0.0.1:0"]),
            _ => (&[], &[]),
        };
        let mut args: Vec<&str> = workers.to_vec();
        args.extend(app_flag);
        args.extend(["grep", text.as_str()]);
        let err = refused(&t, program, &args);
        assert!(err.contains("--conf pattern="), "{program}: {err}");
        let mut args: Vec<&str> = workers.to_vec();
        args.extend(app_flag);
        args.extend(["sort", odd.as_str()]);
        let err = refused(&t, program, &args);
        assert!(
            err.contains("odd.dat") && err.contains("1234 bytes"),
            "{program}: {err}"
        );
        let mut args: Vec<&str> = workers.to_vec();
        args.extend(["--record-size", "50"]);
        args.extend(app_flag);
        args.extend(["sort", odd.as_str()]);
        let err = refused(&t, program, &args);
        assert!(err.contains("--record-size 50"), "{program}: {err}");
    }
    // A total order samples keys with the app's map: it needs the app.
    let o = Command::new(bin("mrcoordinator"))
        .args(["--listen", "127.0.0.1:0", "--total-order", &text])
        .current_dir(t.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--app"));
    // Nothing was left behind by any refusal.
    let left: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("mr-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
