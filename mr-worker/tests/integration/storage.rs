//! Storage faults: intermediate files lost, truncated or flipped after their
//! map finished; a full disk under the outputs; records that crash the app.

use crate::util::{bin, data_files, eventually, map_outputs, sorted_lines, Proc, TestDir};
use std::process::Command;
use std::time::Duration;

#[test]
fn map_outputs_lost_truncated_or_flipped_are_rebuilt_and_the_answer_is_right() {
    let t = TestDir::new();
    let files = data_files();
    let want = t.sequential("early_exit", &files);
    let addr_file = t.path().join("addr");
    let mut cmd = Command::new(bin("mrcoordinator"));
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--app",
        "early_exit",
        "--addr-file",
    ])
    .arg(&addr_file)
    .args(&files);
    let log = t.path().join("coordinator.log");
    let mut c = Proc::start_logged(cmd, t.path(), &log);
    assert!(eventually(Duration::from_secs(10), || addr_file.exists()));
    let addr = std::fs::read_to_string(&addr_file)
        .unwrap()
        .trim()
        .to_string();
    let _w = t.worker(&addr, "early_exit");
    // early_exit's 8 maps are quick; two of its reduces take 3 s each. Once
    // every map output exists, damage them all while the reduces run.
    let job_dir = t.path().join("mr-job");
    assert!(eventually(Duration::from_secs(30), || map_outputs(
        &job_dir
    )
    .len()
        == 8));
    for (i, f) in map_outputs(&job_dir).iter().enumerate() {
        match i % 3 {
            0 => std::fs::remove_file(f).unwrap(),
            1 => {
                let len = std::fs::metadata(f).unwrap().len();
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(f)
                    .unwrap()
                    .set_len(len / 2)
                    .unwrap();
            }
            _ => {
                let mut b = std::fs::read(f).unwrap();
                let mid = b.len() / 3;
                b[mid] ^= 0x10;
                std::fs::write(f, b).unwrap();
            }
        }
    }
    let st = c.wait_for(Duration::from_secs(90)).expect("job finishes");
    assert!(st.success(), "{st}");
    assert_eq!(sorted_lines(&t.outputs(t.path(), 10)), want);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("is unusable"),
        "a reducer met the damage: {log}"
    );
}

#[test]
fn a_full_disk_fails_the_job_naming_the_path_and_leaves_no_output() {
    let t = TestDir::new();
    let f = t.write("in.txt", b"alpha beta gamma\n");
    let (mut c, addr, log) =
        t.coordinator_logged(&["--app", "wc", "--reduces", "2", "--max-attempts", "2", &f]);
    // Every reduce attempt's temp output is a link to /dev/full: writes fail
    // with ENOSPC exactly as on a full file system.
    for r in 0..2 {
        for a in 0..64 {
            std::os::unix::fs::symlink("/dev/full", t.path().join(format!(".mr-out-{r}.{a}.tmp")))
                .unwrap();
        }
    }
    let _w = t.worker(&addr, "wc");
    let st = c.wait_for(Duration::from_secs(30)).expect("job ends");
    assert_eq!(st.code(), Some(1));
    let msg = std::fs::read_to_string(&log).unwrap();
    let last = msg.lines().last().unwrap_or_default();
    assert!(
        last.contains("job failed")
            && last.contains(".mr-out-")
            && last.contains("No space left on device"),
        "{msg}"
    );
    let visible: Vec<String> = std::fs::read_dir(t.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("mr-out"))
        .collect();
    assert!(visible.is_empty(), "{visible:?}");
    // What was done is kept to resume from, and the message says so.
    assert!(t.path().join("mr-job/journal").exists());
    assert!(
        last.contains("run the same command again to resume"),
        "{msg}"
    );
}

/// Lines of `text` without those containing `word`.
fn without(text: &str, word: &str) -> String {
    text.lines()
        .filter(|l| !l.split_whitespace().any(|w| w == word))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn a_crashing_record_fails_the_job_naming_task_file_and_offset() {
    let t = TestDir::new();
    let text = "alpha beta\n".repeat(1000) + "gamma poisonrecord\n" + &"delta\n".repeat(10);
    let f = t.write("bad.txt", text.as_bytes());
    let out = Command::new(bin("mrcoordinator"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--app",
            "poison",
            "--workers",
            "2",
        ])
        .args(["--max-attempts", "2", "--reduces", "3", &f])
        .current_dir(t.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&out.stderr);
    let last = msg.lines().last().unwrap_or_default();
    assert!(
        last.contains("map-0 failed 2 times")
            && last.contains("poison: bad record")
            && last.contains(&format!("input '{f}'"))
            && last.contains("byte offset 11000"),
        "{msg}"
    );
    assert!(t.outputs_named(t.path()).is_empty());
}

#[test]
fn skip_bad_records_skips_them_counts_them_and_keeps_the_rest() {
    let t = TestDir::new();
    let mut a = String::new();
    for i in 0..3000 {
        a += &format!("line {i} of words\n");
        if i % 1000 == 500 {
            a += "this poisonrecord line\n";
        }
    }
    let b = "calm words only\n".repeat(500) + "a poisonkey here\n";
    let fa = t.write("a.txt", a.as_bytes());
    let fb = t.write("b.txt", b.as_bytes());
    // What wc says of the same text without the bad lines and the bad key.
    let ca = t.write("clean/a.txt", without(&a, "poisonrecord").as_bytes());
    let cb = t.write("clean/b.txt", b.as_bytes());
    let want: Vec<Vec<u8>> = t
        .sequential("wc", &[ca, cb])
        .into_iter()
        .filter(|l| !l.starts_with(b"poisonkey "))
        .collect();
    let out = Command::new(bin("mrcoordinator"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--app",
            "poison",
            "--workers",
            "2",
        ])
        .args([
            "--skip-bad-records",
            "--split-size",
            "16KiB",
            "--reduces",
            "5",
            &fa,
            &fb,
        ])
        .current_dir(t.path())
        .output()
        .unwrap();
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{msg}");
    assert!(msg.contains("skipped 4 bad records"), "{msg}");
    assert_eq!(sorted_lines(&t.outputs(t.path(), 5)), want);
}

/// A tmpfs of `size` mounted on a new directory, unmounted when dropped;
/// None where mounting is not allowed (not root, no mount).
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk(dir))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// Regular files anywhere under `dir`.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => out.extend(files_under(&p)),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
    out
}

#[test]
fn a_worker_whose_disk_fills_fails_by_path_cleans_up_and_the_job_finishes_elsewhere() {
    let Some(disk) = SmallDisk::mount("256k") else {
        eprintln!("SKIP a worker's full disk: cannot mount a tmpfs (needs root and mount)");
        return;
    };
    let t = TestDir::new();
    // Words of each file unique to it: every map's output is far past the
    // 256 KiB of the small disk.
    let word = |mut n: u32| {
        let mut w = String::new();
        while n > 0 {
            w.push(char::from(b'a' + (n % 26) as u8));
            n /= 26;
        }
        w
    };
    let files: Vec<String> = (0..4u32)
        .map(|i| {
            let text: String = (0..60_000u32)
                .map(|j| {
                    let end = if j % 10 == 9 { "\n" } else { " " };
                    format!("{}{end}", word((i + 1) * 1_000_000 + j))
                })
                .collect();
            t.write(&format!("in-{i}.txt"), text.as_bytes())
        })
        .collect();
    let want = t.sequential("wc", &files);
    let mut args = vec!["--app", "wc", "--reduces", "3", "--split-size", "256KiB"];
    args.extend(files.iter().map(String::as_str));
    let (mut c, addr, log) = t.coordinator_logged(&args);
    // First the worker on the small disk alone, until one of its attempts
    // failed; then a healthy one.
    let local = disk.0.path().display().to_string();
    let mut full = t.worker_with(&addr, "wc", &["--local-dir", &local]);
    assert!(
        eventually(Duration::from_secs(30), || std::fs::read_to_string(&log)
            .is_ok_and(|l| l.contains("No space left on device"))),
        "no attempt failed on the full disk"
    );
    let _healthy = t.worker(&addr, "wc");
    let st = c.wait_for(Duration::from_secs(90)).expect("the job ends");
    let msg = std::fs::read_to_string(&log).unwrap();
    assert!(st.success(), "{msg}");
    assert_eq!(sorted_lines(&t.outputs(t.path(), 3)), want);
    // The failure named the file on the small disk.
    assert!(
        msg.lines()
            .any(|l| l.contains("No space left on device") && l.contains(&local)),
        "{msg}"
    );
    // Nothing half-written stays on the small disk once its worker is gone.
    assert!(
        full.wait_for(Duration::from_secs(30)).is_some(),
        "the worker did not exit"
    );
    let left = files_under(disk.0.path());
    assert!(left.is_empty(), "{left:?}");
}
