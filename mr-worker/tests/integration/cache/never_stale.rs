//! What is never answered from the cache: another app, R or command, a skipped record, a damaged entry, an edited script or key file, an input written after it was planned.

use super::*;

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
