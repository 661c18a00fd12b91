//! Odd inputs through the whole distributed path, against `mrsequential`,
//! hand-computed counts, and the partition and order invariants.

use crate::util::{sorted_lines, TestDir};
use std::time::Duration;

/// Files that stress splitting, decoding and partitioning.
fn odd_inputs(t: &TestDir) -> Vec<String> {
    let mut huge = b"long ".repeat(300_000); // 1.5 MB on one line, no newline at all
    huge.extend_from_slice("конец".as_bytes());
    let mut files = vec![
        t.write(
            "scripts.txt",
            "Привет мир! 日本語のテキスト مرحبا بالعالم naïve café\nΕλληνικά ελληνικά\n"
                .repeat(400)
                .as_bytes(),
        ),
        t.write(
            "marks.txt",
            "e\u{301}te\u{301} क\u{903}ख xⅫy a😀b ½ ٣ ʰmodifier ǅtitle\n"
                .repeat(300)
                .as_bytes(),
        ),
        t.write(
            "invalid.bin",
            &b"ab\xffcd \xc3( \xe2\x82 ok\x80\x80ok \xf0\x9f\x98 end\n".repeat(500),
        ),
        t.write("empty.txt", b""),
        t.write("newlines.txt", &b"\n".repeat(5000)),
        t.write("crlf.txt", "one two\r\nthree\r\n".repeat(700).as_bytes()),
        t.write("huge-line.txt", &huge),
        t.write("no-final-newline.txt", b"tail words here"),
    ];
    files.push(t.write("dir with space/and 'quotes'.txt", b"spaced out words\n"));
    files
}

/// Checks mr-out-r holds only keys with ihash % R == r, sorted and distinct.
fn check_partitions(outs: &[Vec<u8>]) {
    let r_total = outs.len() as u32;
    for (r, out) in outs.iter().enumerate() {
        let mut prev: Option<&[u8]> = None;
        for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let sp = line.iter().position(|&b| b == b' ').expect("key value");
            let key = &line[..sp];
            assert_eq!(
                mr_apps::ihash(key) % r_total,
                r as u32,
                "key {:?} in mr-out-{r}",
                String::from_utf8_lossy(key)
            );
            if let Some(p) = prev {
                assert!(p < key, "keys out of order in mr-out-{r}");
            }
            prev = Some(key);
        }
    }
}

#[test]
fn odd_inputs_tiny_splits_and_odd_reduce_counts_match_sequential() {
    let t = TestDir::new();
    let files = odd_inputs(&t);
    let want = t.sequential("wc", &files);
    // Hand-computed counts: independent of both code paths.
    let has = |l: &str| want.iter().any(|w| w == l.as_bytes());
    assert!(has("long 300000"), "the huge line's word");
    assert!(has("конец 1"));
    assert!(has("Привет 400") && has("ελληνικά 400") && has("Ελληνικά 400"));
    assert!(
        has("e 300")
            && has("te 300")
            && has("a 300")
            && has("b 300")
            && has("x 300")
            && has("y 300"),
        "marks and Nl split words"
    );
    assert!(
        has("ab 500") && has("cd 500") && has("ok 1000") && has("end 500"),
        "invalid bytes split words"
    );
    assert!(has("one 700") && has("here 1") && has("spaced 1"));
    assert!(has("ʰmodifier 300") && has("ǅtitle 300"));
    for (reduces, split) in [("1", "1KiB"), ("3", "4096"), ("13", "64KiB")] {
        let out = t.path().join(format!("out-{reduces}"));
        std::fs::create_dir_all(&out).unwrap();
        let out_s = out.display().to_string();
        let mut argv = vec![
            "--reduces",
            reduces,
            "--split-size",
            split,
            "--output-dir",
            &out_s,
        ];
        argv.extend(files.iter().map(String::as_str));
        let (mut c, addr) = t.coordinator(&argv);
        let _w1 = t.worker(&addr, "wc");
        let _w2 = t.worker(&addr, "wc");
        let st = c.wait_for(Duration::from_secs(120)).expect("job finishes");
        assert!(st.success(), "R={reduces} split={split}: {st}");
        let outs = t.outputs(&out, reduces.parse().unwrap());
        check_partitions(&outs);
        assert_eq!(sorted_lines(&outs), want, "R={reduces} split={split}");
    }
}

#[test]
fn more_maps_than_the_descriptor_limit_allows_open_at_once_still_reduce_right() {
    // 1,600 maps under a limit of 256 descriptors: a reduce that held
    // every map's output open at once failed each attempt "Too many open
    // files"; it now merges them in groups first.
    let t = TestDir::new();
    let words = ["alpha", "beta", "gamma", "深い", "café", "x"];
    let text: String = (0..20_000)
        .map(|i| format!("{} {} w{}\n", words[i % 6], words[(i / 6) % 6], i % 97))
        .collect();
    let input = t.write("many.txt", text.as_bytes());
    let want = t.sequential("wc", std::slice::from_ref(&input));
    let has = |l: &str| want.iter().any(|w| w == l.as_bytes());
    // Words are runs of letters: `w17` counts as `w`.
    let counted = ["alpha 6670", "x 6663", "w 20000", "深い 6665", "café 6663"];
    assert!(counted.iter().all(|l| has(l)), "hand-counted");
    let out = t.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let coordinator = crate::util::bin("mrcoordinator");
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 256 && exec \"$@\"")
        .arg("sh")
        .arg(&coordinator)
        .args(["--quiet", "--app", "wc", "--workers", "2", "--reduces", "3"])
        .args([
            "--split-size",
            "256",
            "--listen",
            "127.0.0.1:0",
            "--no-socket",
        ])
        .arg("--output-dir")
        .arg(&out)
        .arg(&input)
        .status()
        .unwrap();
    assert!(st.success(), "{st}");
    let report = std::fs::read_to_string(out.join("mr-report.json")).unwrap();
    let maps: serde_json::Value = serde_json::from_str(&report).unwrap();
    let maps = maps["progress"]["maps"].as_u64().unwrap();
    assert!(
        maps > 1024,
        "{maps} maps: not more than 256 descriptors allow"
    );
    let outs = t.outputs(&out, 3);
    check_partitions(&outs);
    assert_eq!(sorted_lines(&outs), want);
}

#[test]
fn indexer_counts_each_document_once_across_splits() {
    let t = TestDir::new();
    let a = t.write("a.txt", "shared alpha\n".repeat(5000).as_bytes());
    let b = t.write("b.txt", "shared beta\n".repeat(5000).as_bytes());
    let (mut c, addr) = t.coordinator(&["--reduces", "2", "--split-size", "4KiB", &a, &b]);
    let _w = t.worker(&addr, "indexer");
    assert!(c
        .wait_for(Duration::from_secs(60))
        .expect("finishes")
        .success());
    let lines = sorted_lines(&t.outputs(t.path(), 2));
    let text: Vec<String> = lines
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    assert_eq!(
        text,
        [
            format!("alpha 1 {a}"),
            format!("beta 1 {b}"),
            format!("shared 2 {a},{b}")
        ]
    );
}

#[test]
fn whole_file_apps_see_whole_files_including_empty_ones() {
    let t = TestDir::new();
    let e = t.write("empty.txt", b"");
    let f = t.write("f.txt", &b"x\n".repeat(100_000));
    let (mut c, addr) = t.coordinator(&["--reduces", "3", "--split-size", "1KiB", &e, &f]);
    let _w = t.worker(&addr, "nocrash");
    assert!(c
        .wait_for(Duration::from_secs(60))
        .expect("finishes")
        .success());
    let lines = sorted_lines(&t.outputs(t.path(), 3));
    // Map ran once per file, seeing all 200000 bytes of f.txt.
    let c_line = lines.iter().find(|l| l.starts_with(b"c ")).unwrap();
    assert_eq!(String::from_utf8_lossy(c_line), "c 0 200000");
}
