//! Replays every input the fuzzers kept (`fuzz/corpus/<target>/`) and every
//! input that ever made one fail (`fuzz/regressions/<target>/`) through the
//! targets, as ordinary tests: no fuzzer, no nightly flags. Also checks
//! that the targets' seeds, made by the product's own writers, parse.

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Runs `target` over every file in `dir`; returns how many there were.
fn replay(target: fn(&[u8]), dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in entries {
        let path = e.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("corpus file");
        // A panic names the input that caused it.
        let r = std::panic::catch_unwind(|| target(&data));
        assert!(r.is_ok(), "{} fails its target", path.display());
        n += 1;
    }
    n
}

#[test]
fn every_kept_input_passes_its_target() {
    let mut total = 0;
    for (name, target) in mr_fuzz::TARGETS {
        let corpus = replay(*target, &fuzz_dir().join("corpus").join(name));
        let found = replay(*target, &fuzz_dir().join("regressions").join(name));
        eprintln!("{name}: {corpus} corpus inputs, {found} regressions");
        total += corpus;
    }
    mr_fuzz::cleanup();
    assert!(total > 0, "no corpus under {}", fuzz_dir().display());
}

#[test]
fn seeds_pass_their_targets() {
    for (name, seed) in mr_fuzz::seeds::all() {
        let (_, target) = mr_fuzz::TARGETS
            .iter()
            .find(|(n, _)| *n == name)
            .expect("a seed's target exists");
        target(&seed);
    }
    mr_fuzz::cleanup();
}

/// Frames as large as the transport admits (the fuzzers' inputs are small):
/// every side's decoder gives up or decodes, quickly and without a panic,
/// whatever the filling (length prefixes of all ones, zeros, continuation
/// bytes, or a real message followed by junk).
#[test]
fn frames_at_the_limit_decode_or_fail_without_a_panic() {
    let n = mr_protocol::MAX_FRAME;
    let real = mr_fuzz::seeds::all()
        .into_iter()
        .find(|(t, _)| *t == "messages")
        .expect("a message seed")
        .1;
    for fill in [0u8, 0xff, 0x80, 0x7f] {
        for which in 0..4u8 {
            let mut frame = vec![fill; n + 1];
            frame[0] = which;
            let started = std::time::Instant::now();
            mr_fuzz::messages(&frame);
            assert!(started.elapsed() < std::time::Duration::from_secs(10));
        }
    }
    let mut padded = real.clone();
    padded.resize(n + 1, 0x41);
    mr_fuzz::messages(&padded);
}

/// Writes the seeds into the corpus (run by `fuzz/run.sh`).
#[test]
#[ignore = "writes fuzz/corpus; run by fuzz/run.sh"]
fn write_seeds() {
    for (i, (name, seed)) in mr_fuzz::seeds::all().into_iter().enumerate() {
        let dir = fuzz_dir().join("corpus").join(name);
        std::fs::create_dir_all(&dir).expect("corpus directory");
        std::fs::write(dir.join(format!("seed-{i}")), seed).expect("seed written");
    }
}

/// Every target has its libFuzzer wrapper in fuzz/, and nothing else does.
#[test]
fn every_target_is_wrapped_for_cargo_fuzz() {
    let mut wrapped: Vec<String> = std::fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .expect("fuzz/fuzz_targets")
        .map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    wrapped.sort();
    let mut names: Vec<String> = mr_fuzz::TARGETS
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    names.sort();
    assert_eq!(wrapped, names);
}
