//! Compressed inputs (`.gz`, `.zst`, `.bz2`) mixed with plain files, through
//! the distributed path and `mrsequential`, against `mrsequential` over the
//! decompressed copies; corrupt streams and bad records in them.

use crate::util::{ascii_inputs, bin, bzip2, data_files, gzip, sorted_lines, zstd, TestDir};
use std::process::Command;
use std::time::Duration;

/// The inputs twice: `plain/NAME` and `packed/NAME.<ext>`, cycling through
/// the codecs and leaving every fourth file plain; one gzip file is two
/// members. Returns (plain paths, mixed paths), in the same order.
fn inputs(t: &TestDir, sources: &[Vec<u8>]) -> (Vec<String>, Vec<String>) {
    let (mut plain, mut mixed) = (Vec::new(), Vec::new());
    for (i, data) in sources.iter().enumerate() {
        let name = format!("in{i}.txt");
        plain.push(t.write(&format!("plain/{name}"), data));
        let packed = match i % 4 {
            0 => {
                // Two gzip members: what `cat a.gz b.gz` makes.
                let half = data.len() / 2;
                let cut = data[..half]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |p| p + 1);
                let mut two = gzip(&data[..cut]);
                two.extend(gzip(&data[cut..]));
                t.write(&format!("packed/{name}.gz"), &two)
            }
            1 => t.write(&format!("packed/{name}.zst"), &zstd(data)),
            2 => t.write(&format!("packed/{name}.bz2"), &bzip2(data)),
            _ => t.write(&format!("packed/{name}"), data),
        };
        mixed.push(packed);
    }
    (plain, mixed)
}

/// The lab texts, an empty file, and one without a final newline.
fn sources() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = data_files()
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    v.push(Vec::new());
    v.push(b"last words without a newline".to_vec());
    v
}

/// Runs an embedded job with `args` in `dir`; asserts it succeeds.
fn job(t: &TestDir, dir: &str, args: &[&str]) -> std::path::PathBuf {
    let out = t.path().join(dir);
    std::fs::create_dir_all(&out).unwrap();
    let o = Command::new(bin("mrcoordinator"))
        .args(["--quiet", "--listen", "127.0.0.1:0", "--workers", "2"])
        .args(args)
        .current_dir(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

#[test]
fn compressed_and_plain_inputs_give_what_their_decompressed_copies_give() {
    let t = TestDir::new();
    let (plain, mixed) = inputs(&t, &sources());
    let want_wc = t.sequential_in("seq-plain-wc", "wc", &plain);
    // Small splits cut the plain files; the compressed ones stay whole.
    let mut args = vec!["--app", "wc", "--reduces", "3", "--split-size", "64KiB"];
    args.extend(mixed.iter().map(String::as_str));
    let out = job(&t, "wc", &args);
    assert_eq!(sorted_lines(&t.outputs(&out, 3)), want_wc);
    assert_eq!(t.sequential_in("seq-mixed-wc", "wc", &mixed), want_wc);

    // The indexer names documents: the mixed run names the compressed files.
    let rename = |lines: Vec<Vec<u8>>| -> Vec<Vec<u8>> {
        let mut s = String::from_utf8(lines.join(&b'\n')).unwrap();
        for (p, m) in plain.iter().zip(&mixed) {
            s = s.replace(p.as_str(), m);
        }
        let mut v: Vec<Vec<u8>> = s.split('\n').map(|l| l.as_bytes().to_vec()).collect();
        v.sort();
        v
    };
    let want_ix = rename(t.sequential_in("seq-plain-ix", "indexer", &plain));
    let mut args = vec!["--app", "indexer", "--reduces", "2"];
    args.extend(mixed.iter().map(String::as_str));
    let out = job(&t, "ix", &args);
    assert_eq!(sorted_lines(&t.outputs(&out, 2)), want_ix);
}

#[test]
fn a_streaming_job_reads_compressed_inputs() {
    use crate::streaming::{MAP, REDUCE};
    let t = TestDir::new();
    let ascii: Vec<Vec<u8>> = ascii_inputs(&t)
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    let (plain, mixed) = inputs(&t, &ascii);
    let want = t.sequential_in("seq", "wc", &plain);
    let mut args = vec!["--reduces", "2", "--map-cmd", MAP, "--reduce-cmd", REDUCE];
    args.extend(mixed.iter().map(String::as_str));
    let out = job(&t, "stream", &args);
    assert_eq!(sorted_lines(&t.outputs(&out, 2)), want);
}

#[test]
fn a_corrupt_stream_fails_the_job_naming_it_even_when_skipping_bad_records() {
    let t = TestDir::new();
    let good = t.write("good.txt", b"fine words\n");
    let mut bytes = gzip(&b"some words on a line\n".repeat(5000));
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 32] {
        *b ^= 0x77;
    }
    let bad = t.write("broken.txt.gz", &bytes);
    for extra in [&[][..], &["--skip-bad-records"][..]] {
        let o = Command::new(bin("mrcoordinator"))
            .args([
                "--quiet",
                "--listen",
                "127.0.0.1:0",
                "--workers",
                "1",
                "--fresh",
            ])
            .args(["--app", "wc", "--max-attempts", "2"])
            .args(extra)
            .args([&good, &bad])
            .current_dir(t.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            err.contains("broken.txt.gz") && err.contains("gzip"),
            "{err}"
        );
        assert!(t.outputs_named(t.path()).is_empty(), "no output may appear");
    }
    // mrsequential says the same.
    let o = Command::new(bin("mrsequential"))
        .args(["wc", &bad])
        .current_dir(t.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("broken.txt.gz") && err.contains("gzip"),
        "{err}"
    );
}

#[test]
fn a_bad_record_is_named_by_its_offset_in_the_decompressed_stream() {
    let t = TestDir::new();
    // Past the first 256 KiB chunk, so the offset is a chunk's base plus
    // the record's place in it.
    let head = b"harmless words\n".repeat(30_000);
    let mut text = head.clone();
    text.extend_from_slice(b"a poisonrecord here\nmore words\n");
    let input = t.write("p.txt.zst", &zstd(&text));
    let (mut c, addr, log) =
        t.coordinator_logged(&["--app", "poison", "--max-attempts", "1", &input]);
    let _w = t.worker(&addr, "poison");
    let st = c.wait_for(Duration::from_secs(60)).expect("job ends");
    assert!(!st.success());
    let err = std::fs::read_to_string(log).unwrap();
    let want = format!(
        "record at byte offset {} of its decompressed (zstd) stream",
        head.len()
    );
    assert!(err.contains(&want) && err.contains("p.txt.zst"), "{err}");
    // With skipping, that record is left out and the rest is counted.
    let out = job(
        &t,
        "skip",
        &[
            "--app",
            "poison",
            "--skip-bad-records",
            "--reduces",
            "1",
            &input,
        ],
    );
    let got = String::from_utf8(std::fs::read(out.join("mr-out-0")).unwrap()).unwrap();
    assert!(
        got.contains("harmless 30000") && got.contains("more 1"),
        "{got}"
    );
    assert!(!got.contains("poisonrecord"), "{got}");
}
