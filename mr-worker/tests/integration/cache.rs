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

#[test]
fn an_unchanged_rerun_reuses_every_map_and_reduce() {
    let t = TestDir::new();
    let files = inputs(&t);
    let cache = cache_dir(&t);
    let args = ["--app", "wc", "--reduces", "5"];
    let (maps, reduces) = run(&t, "first", Some(&cache), &args, &files);
    assert!(maps >= 8 && reduces == 5, "{maps} maps, {reduces} reduces");
    let (maps, reduces) = run(&t, "again", Some(&cache), &args, &files);
    assert_eq!((maps, reduces), (0, 0), "nothing runs again");
    assert_eq!(outputs(&t, "again", 5), outputs(&t, "first", 5));
    // And both are what a job without a cache gives, file for file.
    run(&t, "fresh", None, &args, &files);
    assert_eq!(outputs(&t, "again", 5), outputs(&t, "fresh", 5));
}

#[test]
fn an_edited_file_remaps_only_the_splits_around_the_edit() {
    let t = TestDir::new();
    let files = inputs(&t);
    let cache = cache_dir(&t);
    let args = ["--app", "wc", "--reduces", "12"];
    let (first_maps, _) = run(&t, "first", Some(&cache), &args, &files);
    // A line inserted in the middle of one file.
    let edited = &files[3];
    let mut bytes = std::fs::read(edited).unwrap();
    let mid = bytes.len() / 2;
    let at = mid + bytes[mid..].iter().position(|&b| b == b'\n').unwrap() + 1;
    bytes.splice(at..at, b"zyzzyva zyzzyva\n".iter().copied());
    std::fs::write(edited, &bytes).unwrap();
    let (maps, reduces) = run(&t, "edited", Some(&cache), &args, &files);
    assert!(
        (1..=2).contains(&maps),
        "{maps} of {first_maps} maps ran again after a one-line edit"
    );
    // Only the reduces whose partitions changed run: the new word's, and
    // those of words that moved between splits if a cut moved.
    assert!((1..12).contains(&reduces), "{reduces} of 12 reduces ran");
    run(&t, "fresh", None, &args, &files);
    assert_eq!(outputs(&t, "edited", 12), outputs(&t, "fresh", 12));
    // A new file: only its maps run, and the reduces of its words.
    let extra = t.write("in/zz-new.txt", b"brand new words\n");
    let mut more = files.clone();
    more.push(extra);
    let (maps, reduces) = run(&t, "appended", Some(&cache), &args, &more);
    assert!((1..=2).contains(&maps), "{maps} maps ran for one new file");
    assert!(
        (1..=3).contains(&reduces),
        "{reduces} reduces ran for 3 words"
    );
    run(&t, "fresh-appended", None, &args, &more);
    assert_eq!(
        outputs(&t, "appended", 12),
        outputs(&t, "fresh-appended", 12)
    );
    // A new file first in name order: every later split is numbered anew,
    // and their cached outputs are still used.
    let first = t.write(
        "in/aa-first.txt",
        b"words that come first
",
    );
    let mut ahead = vec![first];
    ahead.extend(more.iter().cloned());
    let (maps, _) = run(&t, "ahead", Some(&cache), &args, &ahead);
    assert!(
        (1..=2).contains(&maps),
        "{maps} maps ran for a new first file"
    );
    run(&t, "fresh-ahead", None, &args, &ahead);
    assert_eq!(outputs(&t, "ahead", 12), outputs(&t, "fresh-ahead", 12));
    // Nothing changed since: nothing runs, and the answer is the same.
    let (maps, reduces) = run(&t, "ahead-again", Some(&cache), &args, &ahead);
    assert_eq!((maps, reduces), (0, 0));
    assert_eq!(
        outputs(&t, "ahead-again", 12),
        outputs(&t, "fresh-ahead", 12)
    );
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

#[test]
fn an_edit_re_reduces_only_the_segments_it_touches_and_the_rest_is_copied() {
    let (picked, plain) = new_words();
    for app in ["wc", "indexer"] {
        let t = TestDir::new();
        let files = inputs(&t);
        let cache = cache_dir(&t);
        let args = ["--app", app, "--reduces", "3"];
        run(&t, "first", Some(&cache), &args, &files);
        // A line of new words inserted in one file (one of them starts a
        // segment of its own).
        let edit = |f: &str, change: &dyn Fn(&mut Vec<u8>, usize)| {
            let mut bytes = std::fs::read(f).unwrap();
            let mid = bytes.len() / 2;
            let at = mid + bytes[mid..].iter().position(|&b| b == b'\n').unwrap() + 1;
            change(&mut bytes, at);
            std::fs::write(f, &bytes).unwrap();
        };
        let line = format!("{picked} {plain} {plain}\n");
        edit(&files[1], &|b, at| {
            b.splice(at..at, line.bytes());
        });
        let (_, reduces) = run(&t, "edited", Some(&cache), &args, &files);
        run(&t, "fresh", None, &args, &files);
        assert_eq!(outputs(&t, "edited", 3), outputs(&t, "fresh", 3), "{app}");
        // The reduces that ran copied most of their outputs.
        let info = cache_report(&t, "edited");
        let partly = info["reduces_partly_reused"].as_u64().unwrap() as usize;
        let copied = info["output_bytes_copied"].as_u64().unwrap();
        let outs = outputs(&t, "edited", 3);
        let total: usize = reduces_run(&t, "edited")
            .iter()
            .map(|&r| outs[r].len())
            .sum();
        assert!(partly >= 1 && partly <= reduces, "{app}: {info}");
        assert!(
            copied as usize > total / 2,
            "{app}: only {copied} of {total} bytes copied: {info}"
        );
        // Again from the outputs just kept (the index a partly reused reduce
        // gave is as good as a full one's), with a line taken out of another
        // file: words whose counts fall, some perhaps to nothing.
        edit(&files[5], &|b, at| {
            let end = at + b[at..].iter().position(|&c| c == b'\n').unwrap() + 1;
            b.drain(at..end);
        });
        run(&t, "again", Some(&cache), &args, &files);
        run(&t, "fresh-again", None, &args, &files);
        assert_eq!(
            outputs(&t, "again", 3),
            outputs(&t, "fresh-again", 3),
            "{app}"
        );
        let info = cache_report(&t, "again");
        assert!(
            info["output_bytes_copied"].as_u64().unwrap() > 0,
            "{app}: {info}"
        );
        // Every file edited: nothing to copy, and still right.
        for f in &files {
            edit(f, &|b, at| {
                b.splice(at..at, b"everywhere\n".iter().copied());
            });
        }
        run(&t, "all", Some(&cache), &args, &files);
        run(&t, "fresh-all", None, &args, &files);
        assert_eq!(outputs(&t, "all", 3), outputs(&t, "fresh-all", 3), "{app}");
    }
}

#[test]
fn outputs_that_skipped_bad_records_are_not_kept_for_runs_without_skipping() {
    let t = TestDir::new();
    let mut files = inputs(&t);
    files.truncate(2);
    files.push(t.write("in/bad.txt", b"a poisonrecord here\nmore words\n"));
    let cache = cache_dir(&t);
    // A poison job into `out`: with --skip-bad-records or without it (and
    // then one attempt per task), with the cache or not.
    let job = |out: &str, skip: bool, cached: bool| {
        let flag = if skip {
            "--skip-bad-records"
        } else {
            "--max-attempts=1"
        };
        let args = ["--app", "poison", "--reduces", "2", flag];
        let cache = cached.then_some(cache.as_path());
        job_command(&t, out, cache, &args, &files).output().unwrap()
    };
    let first = job("skipping", true, true);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    // Without the flag the bad record fails the job, as it does with no
    // cache: the output that left it out was not kept.
    let strict = job("strict", false, true);
    let err = String::from_utf8_lossy(&strict.stderr);
    assert!(
        !strict.status.success(),
        "a skipped record was reused: {err}"
    );
    assert!(err.contains("poison"), "{err}");
    // With the flag again, the answer is a fresh run's.
    assert!(job("skipping-again", true, true).status.success());
    assert!(job("fresh", true, false).status.success());
    assert_eq!(outputs(&t, "skipping-again", 2), outputs(&t, "fresh", 2));
    assert_eq!(outputs(&t, "skipping", 2), outputs(&t, "fresh", 2));
}

#[test]
fn another_app_or_r_or_command_reuses_nothing_wrongly() {
    let t = TestDir::new();
    let files = inputs(&t);
    let cache = cache_dir(&t);
    let wc = ["--app", "wc", "--reduces", "4"];
    let (all, _) = run(&t, "wc", Some(&cache), &wc, &files);
    // The same inputs with another app, another R, another command: each
    // runs every task, and gives what a fresh run gives.
    for (name, args, r) in [
        ("indexer", vec!["--app", "indexer", "--reduces", "4"], 4),
        ("wc-r3", vec!["--app", "wc", "--reduces", "3"], 3),
        (
            "awk",
            vec![
                "--map-cmd",
                "tr -s ' ' '\\n' | awk 'NF {print $1 \"\\t1\"}'",
                "--reduce-cmd",
                "awk -F'\\t' '{c[$1]+=$2} END {for (k in c) print k \"\\t\" c[k]}'",
                "--reduces",
                "4",
            ],
            4,
        ),
    ] {
        let (maps, reduces) = run(&t, name, Some(&cache), &args, &files);
        // The same inputs planned by content make the same splits: all run.
        assert_eq!((maps, reduces), (all, r as usize), "{name}");
        let fresh = format!("{name}-fresh");
        run(&t, &fresh, None, &args, &files);
        let sorted = |dir: &str| {
            let mut lines: Vec<Vec<u8>> = outputs(&t, dir, r)
                .concat()
                .split(|&b| b == b'\n')
                .map(<[u8]>::to_vec)
                .collect();
            lines.sort();
            lines
        };
        assert_eq!(sorted(name), sorted(&fresh), "{name}");
    }
    // The streaming job again with another reduce command: its maps are
    // its own, but nothing of the reduce is reused.
    let (_, reduces) = run(
        &t,
        "awk-other",
        Some(&cache),
        &[
            "--map-cmd",
            "tr -s ' ' '\\n' | awk 'NF {print $1 \"\\t1\"}'",
            "--reduce-cmd",
            "awk -F'\\t' '{c[$1]+=$2} END {for (k in c) print k \"\\t\" c[k] \"!\"}'",
            "--reduces",
            "4",
        ],
        &files,
    );
    assert_eq!(reduces, 4);
}

#[test]
fn a_damaged_cache_entry_is_recomputed_never_used() {
    let t = TestDir::new();
    let files = inputs(&t);
    let cache = cache_dir(&t);
    let args = ["--app", "wc", "--reduces", "3"];
    let (maps, _) = run(&t, "first", Some(&cache), &args, &files);
    // Every stored output rewritten with one byte changed (a new file, so
    // the first run's outputs, which the cache shares, stay as they were).
    let mut damaged = 0;
    for kind in ["map", "reduce"] {
        let dir = cache.join("mr-cache-v2").join(kind);
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "data") {
                let mut b = std::fs::read(&p).unwrap();
                if b.is_empty() {
                    continue;
                }
                let i = b.len() / 2;
                b[i] ^= 0x20;
                std::fs::remove_file(&p).unwrap();
                std::fs::write(&p, &b).unwrap();
                damaged += 1;
            }
        }
    }
    assert!(damaged > maps, "{damaged} entries damaged");
    let (again, reduces) = run(&t, "again", Some(&cache), &args, &files);
    assert_eq!((again, reduces), (maps, 3), "every damaged task ran again");
    assert_eq!(outputs(&t, "again", 3), outputs(&t, "first", 3));
}

#[test]
fn a_cache_without_an_app_or_in_a_plain_file_is_refused_by_name() {
    let t = TestDir::new();
    let f = t.write("in.txt", b"a b\n");
    let out = Command::new(bin("mrcoordinator"))
        .args([
            "--quiet",
            "--no-socket",
            "--listen",
            "127.0.0.1:0",
            "--cache",
            "c",
            &f,
        ])
        .current_dir(t.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--cache") && err.contains("--app"), "{err}");
    // A cache path that is a file.
    let out = Command::new(bin("mrcoordinator"))
        .args([
            "--quiet",
            "--no-socket",
            "--workers",
            "1",
            "--app",
            "wc",
            "--cache",
            &f,
            &f,
        ])
        .current_dir(t.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in.txt") && err.contains("--cache"), "{err}");
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

#[test]
fn mrsequential_reuses_its_own_results_and_the_coordinators() {
    let t = TestDir::new();
    let files = inputs(&t);
    let cache = cache_dir(&t);
    let fresh = t.sequential("wc", &files);
    let (err, first) = sequential(&t, "first", &cache, &files);
    assert!(err.contains("reused from the cache: 0 of"), "{err}");
    assert!(
        sorted_lines(&[first]) == fresh,
        "a cached run's output differs from mrsequential's"
    );
    let (err, again) = sequential(&t, "again", &cache, &files);
    assert!(err.contains(" and the output"), "{err}");
    assert!(sorted_lines(&[again]) == fresh);
    // One file edited: its splits map again, the rest come from the cache.
    let edited = &files[2];
    let mut bytes = std::fs::read(edited).unwrap();
    bytes.extend_from_slice(b"\nzyzzyva\n");
    std::fs::write(edited, &bytes).unwrap();
    let fresh = t.sequential_in("fresh-edited", "wc", &files);
    let (err, edited_out) = sequential(&t, "edited", &cache, &files);
    assert!(sorted_lines(&[edited_out]) == fresh, "after an edit");
    let counts: Vec<usize> = err
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let (reused, maps) = (counts[0], counts[1]);
    assert!(reused + 2 >= maps && reused < maps, "{err}");
    assert!(!err.contains(" and the output"), "{err}");
    // Most of the output was copied from the first run's.
    assert!(
        err.contains("output bytes copied from an earlier output"),
        "{err}"
    );
    // The coordinator with one reduce at the same split size makes the same
    // addresses: a sequential run after it reuses everything it did.
    let shared = t.path().join("shared-cache");
    run(
        &t,
        "coord",
        Some(&shared),
        &["--app", "wc", "--reduces", "1"],
        &files,
    );
    let (err, out) = sequential(&t, "after-coord", &shared, &files);
    assert!(err.contains(" and the output"), "{err}");
    assert!(out == std::fs::read(t.path().join("coord/mr-out-0")).unwrap());
    assert!(sorted_lines(&[out]) == fresh);
}

/// A cache under an object store prefix, with object inputs, against a
/// real S3-compatible server on loopback (SKIP without moto): reuse,
/// an edited object, a damaged entry and eviction behave as in a
/// directory, and every answer equals a fresh run's.
#[test]
fn a_cache_in_an_object_store_over_object_inputs_reuses_exactly() {
    let t = TestDir::new();
    let Some(moto) = crate::objects::Moto::start(&t) else {
        return;
    };
    moto.bucket("mr-in");
    moto.bucket("mr-cache");
    let texts: Vec<(String, Vec<u8>)> = data_files()
        .iter()
        .enumerate()
        .map(|(i, f)| (format!("{i}.txt"), std::fs::read(f).unwrap()))
        .collect();
    // Through boto3 (a whole book is more than the bare PUT helper's
    // requests get through).
    let upload = |key: &str, bytes: &[u8]| {
        let f = t.write(&format!("up/{}", key.replace('/', "_")), bytes);
        moto.boto(&format!(
            "s3.put_object(Bucket='mr-in', Key='{key}', Body=open('{f}', 'rb').read())"
        ));
    };
    for (name, bytes) in &texts {
        upload(&format!("texts/{name}"), bytes);
    }
    let inputs = vec!["s3://mr-in/texts/*".to_string()];
    let cache = Path::new("s3://mr-cache/jobs/c");
    let args = ["--app", "wc", "--reduces", "4"];
    let env = |c: &mut Command| moto.env(c);
    let (first, reduces) = run_in(&t, "first", Some(cache), &args, &inputs, &env);
    assert!(
        first >= 8 && reduces == 4,
        "{first} maps, {reduces} reduces"
    );
    let kept = moto.keys("mr-cache", "jobs/c/mr-cache-v2/map/");
    assert_eq!(
        kept.len(),
        2 * first,
        "data and meta of every map: {kept:?}"
    );
    run_in(&t, "fresh", None, &args, &inputs, &env);
    assert_eq!(outputs(&t, "first", 4), outputs(&t, "fresh", 4));
    // Nothing changed: nothing runs.
    let (maps, reduces) = run_in(&t, "again", Some(cache), &args, &inputs, &env);
    assert_eq!((maps, reduces), (0, 0));
    assert_eq!(outputs(&t, "again", 4), outputs(&t, "fresh", 4));
    // One object rewritten with a line inserted in its middle: the splits
    // around the edit run again, and the answer is a fresh run's.
    let (name, bytes) = &texts[2];
    let mut edited = bytes.clone();
    let mid = edited.len() / 2;
    let at = mid + edited[mid..].iter().position(|&b| b == b'\n').unwrap() + 1;
    edited.splice(at..at, b"zyzzyva quux\n".iter().copied());
    upload(&format!("texts/{name}"), &edited);
    let (maps, _) = run_in(&t, "edited", Some(cache), &args, &inputs, &env);
    assert!((1..=2).contains(&maps), "{maps} of {first} maps ran again");
    run_in(&t, "fresh-edited", None, &args, &inputs, &env);
    assert_eq!(outputs(&t, "edited", 4), outputs(&t, "fresh-edited", 4));
    // Every map entry's data and one reduce entry's damaged in the store
    // (a byte changed): misses, recomputed; no attempt fails (run_in
    // checks) and the answer holds. (With every output cached, no map
    // output is even looked at: the reduce's damage makes the maps needed.)
    // One boto3 call: every map entry's data, and the newest reduce's (one
    // the edited run kept, so one this job looks up).
    moto.boto(
        "def damage(key):\n\
         \x20 b = bytearray(s3.get_object(Bucket='mr-cache', Key=key)['Body'].read())\n\
         \x20 b[-1] ^= 1\n\
         \x20 s3.put_object(Bucket='mr-cache', Key=key, Body=bytes(b))\n\
         def data(kind):\n\
         \x20 r = s3.list_objects_v2(Bucket='mr-cache', Prefix='jobs/c/mr-cache-v2/' + kind + '/')\n\
         \x20 return sorted(o['Key'] for o in r.get('Contents', []) if o['Key'].endswith('.data'))\n\
         for k in data('map'):\n\
         \x20 damage(k)\n\
         r = s3.list_objects_v2(Bucket='mr-cache', Prefix='jobs/c/mr-cache-v2/reduce/')\n\
         newest = max((o for o in r['Contents'] if o['Key'].endswith('.data')), key=lambda o: o['LastModified'])\n\
         damage(newest['Key'])\n",
    );
    let (maps, reduces) = run_in(&t, "damaged", Some(cache), &args, &inputs, &env);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.path().join("damaged/mr-report.json")).unwrap())
            .unwrap();
    assert_eq!(report["cache"]["maps_reused"], 0, "{report}");
    assert!(
        maps >= first - 1 && reduces == 1,
        "{maps} maps, {reduces} reduces ran"
    );
    assert_eq!(outputs(&t, "damaged", 4), outputs(&t, "fresh-edited", 4));
    // --cache-max 1: after the job, everything is evicted.
    let tight = ["--app", "wc", "--reduces", "4", "--cache-max", "1"];
    run_in(&t, "evicting", Some(cache), &tight, &inputs, &env);
    let left: Vec<String> = moto
        .keys("mr-cache", "jobs/c/mr-cache-v2/")
        .into_iter()
        .filter(|k| !k.contains("/tmp/"))
        .collect();
    assert!(left.is_empty(), "evicted to 1 byte, yet {left:?}");
    // mrsequential with the same cache and inputs: its answer is the sum.
    let dir = t.path().join("seq");
    std::fs::create_dir_all(&dir).unwrap();
    let mut seq = Command::new(bin("mrsequential"));
    moto.env(&mut seq);
    let o = seq
        .arg("--output-dir")
        .arg(&dir)
        .arg("--cache")
        .arg(cache)
        .args(["--split-size", "64KiB", "wc"])
        .args(&inputs)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Empty outputs (one word, seven partitions) are kept and taken back
    // as empty objects.
    let tiny = vec![t.write("tiny.txt", b"solitary\n")];
    let small = Path::new("s3://mr-cache/jobs/tiny");
    let seven = ["--app", "wc", "--reduces", "7"];
    run_in(&t, "tiny", Some(small), &seven, &tiny, &env);
    let (maps, reduces) = run_in(&t, "tiny-again", Some(small), &seven, &tiny, &env);
    assert_eq!(
        (maps, reduces),
        (0, 0),
        "all seven outputs, six of them empty, reused"
    );
    let again = outputs(&t, "tiny-again", 7);
    assert_eq!(again, outputs(&t, "tiny", 7));
    assert_eq!(again.iter().filter(|o| o.is_empty()).count(), 6);
    let seq_out = std::fs::read(dir.join("mr-out-0")).unwrap();
    assert_eq!(
        sorted_lines(&[seq_out]),
        sorted_lines(&outputs(&t, "fresh-edited", 4))
    );
}

/// A cache prefix in a bucket that does not exist is refused at start,
/// naming the prefix, before any work.
#[test]
fn a_cache_in_a_missing_bucket_is_refused_by_name() {
    let t = TestDir::new();
    let Some(moto) = crate::objects::Moto::start(&t) else {
        return;
    };
    let f = t.write("in.txt", b"a b\n");
    let (code, err) = crate::objects::run(
        &moto,
        &t,
        "mrcoordinator",
        &[
            "--quiet",
            "--no-socket",
            "--workers",
            "1",
            "--app",
            "wc",
            "--cache",
            "s3://no-such-bucket/c",
            &f,
        ],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("s3://no-such-bucket/c") && err.contains("--cache"),
        "{err}"
    );
    assert!(!err.contains(crate::objects::SECRET), "{err}");
}

#[test]
fn an_edited_script_or_key_file_is_never_answered_from_the_cache() {
    let t = TestDir::new();
    let files = inputs(&t);
    let cache = cache_dir(&t);
    // A streaming job whose map is a script file: the command line stays
    // the same when the script is edited.
    let script = t.write(
        "map.sh",
        b"tr -s ' ' '\\n' | awk 'NF {print $1 \"\\t1\"}'\n",
    );
    let lib = t.write("words.cfg", b"lower\n");
    let map = format!("sh {script}");
    let reduce = "awk -F'\\t' '{c[$1]+=$2} END {for (k in c) print k \"\\t\" c[k]}'";
    let args = [
        "--map-cmd",
        &map,
        "--reduce-cmd",
        reduce,
        "--reduces",
        "3",
        "--cache-key-file",
        &lib,
    ];
    let (maps, reduces) = run(&t, "first", Some(&cache), &args, &files);
    assert!(maps > 0 && reduces == 3);
    assert_eq!(run(&t, "again", Some(&cache), &args, &files), (0, 0));
    // The script now upper-cases its words: every map and reduce runs again
    // and the answer is a fresh run's, not the cached lower-case one.
    std::fs::write(
        &script,
        "tr -s ' ' '\\n' | awk 'NF {print toupper($1) \"\\t1\"}'\n",
    )
    .unwrap();
    assert_eq!(
        run(&t, "edited", Some(&cache), &args, &files),
        (maps, reduces)
    );
    run(&t, "edited-fresh", None, &args[..6], &files);
    let sorted = |dir: &str| sorted_lines(&outputs(&t, dir, 3));
    assert_eq!(sorted("edited"), sorted("edited-fresh"));
    assert!(sorted("edited").iter().any(|l| l.starts_with(b"THE ")));
    // A file the key cannot see, named with --cache-key-file: an edit to it
    // runs everything again too.
    std::fs::write(&lib, "upper\n").unwrap();
    assert_eq!(
        run(&t, "key-file", Some(&cache), &args, &files),
        (maps, reduces)
    );
    // A key file that cannot be read is refused by name.
    let gone = t.path().join("gone.cfg");
    let mut bad = args.to_vec();
    bad[7] = gone.to_str().unwrap();
    let out = job_command(&t, "gone", Some(&cache), &bad, &files)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("gone.cfg"), "{err}");
}

#[test]
fn an_input_written_after_it_was_planned_never_poisons_the_cache() {
    let t = TestDir::new();
    let original = b"alpha beta gamma\n".repeat(1000);
    let edited = b"delta omega zeta\n".repeat(1000);
    assert_eq!(original.len(), edited.len(), "a size check cannot see it");
    let input = t.write("in/words.txt", &original);
    let cache = cache_dir(&t);
    let first = t.path().join("first");
    std::fs::create_dir_all(&first).unwrap();
    // The coordinator listens once it has planned (hashed the input); the
    // input is rewritten then, before any worker reads it.
    let (mut c, addr, log) = t.coordinator_logged(&[
        "--no-socket",
        "--split-size",
        "64KiB",
        "--app",
        "wc",
        "--reduces",
        "2",
        "--output-dir",
        first.to_str().unwrap(),
        "--cache",
        cache.to_str().unwrap(),
        &input,
    ]);
    std::fs::write(&input, &edited).unwrap();
    let _w = t.worker(&addr, "wc");
    let st = c.wait_for(std::time::Duration::from_secs(60));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(st.is_some_and(|s| s.success()), "{text}");
    // Back to the planned bytes: the cache must not answer with the map
    // output of the bytes the worker read (it did before: the output of
    // 'delta omega zeta' came back for 'alpha beta gamma').
    std::fs::write(&input, &original).unwrap();
    let wc = ["--app", "wc", "--reduces", "2"];
    let (maps, _) = run(
        &t,
        "second",
        Some(&cache),
        &wc,
        std::slice::from_ref(&input),
    );
    assert_eq!(maps, 1, "the map of bytes it did not read was kept");
    run(&t, "fresh", None, &wc, std::slice::from_ref(&input));
    let sorted = |dir: &str| sorted_lines(&outputs(&t, dir, 2));
    assert_eq!(sorted("second"), sorted("fresh"));
    assert!(sorted("second").contains(&b"alpha 1000".to_vec()));
    assert!(
        text.contains("the input changed after it was planned"),
        "{text}"
    );
}
