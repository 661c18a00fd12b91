//! What an unchanged or edited re-run reuses: every task, only the splits and segments an edit touches, and the same between `mrsequential` and the coordinator.

use super::*;

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
