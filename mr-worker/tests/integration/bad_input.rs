//! Every kind of bad input, in one place: each must end quickly with a
//! non-zero exit and a message naming the culprit (file, flag, address),
//! never a panic or a hang. Binary input is the exception: it is processed.

use crate::util::{bin, sorted_lines, Proc, TestDir};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// What one bad invocation must produce.
struct Case<'a> {
    name: &'a str,
    binary: &'a str,
    args: Vec<String>,
    /// Expected exit status.
    code: i32,
    /// Text the message must contain (the culprit).
    names: &'a str,
}

/// Runs `binary args` in `dir` as `user` (a uid to drop to, when running as
/// root), with a time limit; returns (exit status, stderr).
fn run_as(dir: &TestDir, user: Option<u32>, binary: &str, args: &[String]) -> (i32, String) {
    let log = dir.path().join(format!("stderr-{}", next_log_id()));
    let mut cmd = match user {
        Some(uid) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={uid}"))
                .arg("--clear-groups")
                .arg(bin(binary));
            c
        }
        None => Command::new(bin(binary)),
    };
    cmd.args(args);
    let mut p = Proc::start_logged(cmd, dir.path(), &log);
    let st = p
        .wait_for(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("{binary} {args:?} hung"));
    let err = std::fs::read_to_string(&log).unwrap_or_default();
    (st.code().unwrap_or(-1), err)
}

fn next_log_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn check(dir: &TestDir, user: Option<u32>, c: &Case<'_>) {
    let (code, err) = run_as(dir, user, c.binary, &c.args);
    assert_eq!(code, c.code, "{}: exit status; stderr: {err}", c.name);
    assert!(
        err.contains(c.names),
        "{}: message does not name '{}': {err}",
        c.name,
        c.names
    );
    assert!(!err.contains("panicked"), "{}: panicked: {err}", c.name);
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// Builds a tiny shared library from Rust source with rustc; None (and a
/// message) if no rustc is at hand.
fn cdylib(dir: &Path, name: &str, source: &str) -> Option<String> {
    let src = dir.join(format!("{name}.rs"));
    std::fs::write(&src, source).unwrap();
    let out = dir.join(format!("lib{name}.so"));
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let ok = Command::new(rustc)
        .args(["--crate-type", "cdylib", "--edition", "2021", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIP part of bad_input: rustc is not available to build a test plugin");
        return None;
    }
    Some(out.display().to_string())
}

#[test]
fn every_bad_input_gets_a_clear_message_and_a_non_zero_exit() {
    let t = TestDir::new();
    let good = t.write("good.txt", b"some words\n");
    std::fs::create_dir_all(t.path().join("adir")).unwrap();
    let adir = t.path().join("adir").display().to_string();
    std::fs::write(t.path().join("fake.so"), b"not a library").unwrap();
    // A port that is certainly taken while this test runs.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    // A port that is certainly closed.
    let closed_addr = crate::util::free_addr();
    let co = |extra: &[&str]| {
        let mut v = s(&["--listen", "127.0.0.1:0", "--app", "wc"]);
        v.extend(s(extra));
        v
    };
    let long_socket = t.path().join("s".repeat(120)).display().to_string();
    let mut cases = vec![
        Case {
            name: "--socket naming a regular file",
            binary: "mrcoordinator",
            args: co(&["--socket", &good, &good]),
            code: 1,
            names: "is not a socket",
        },
        Case {
            name: "--socket path too long",
            binary: "mrcoordinator",
            args: co(&["--socket", &long_socket, &good]),
            code: 1,
            names: "longer than 107 bytes",
        },
        Case {
            name: "--socket with --no-socket",
            binary: "mrcoordinator",
            args: co(&["--socket", "/tmp/x", "--no-socket", &good]),
            code: 2,
            names: "--no-socket",
        },
        Case {
            name: "missing input",
            binary: "mrcoordinator",
            args: co(&["no-such-file.txt"]),
            code: 1,
            names: "no-such-file.txt",
        },
        Case {
            name: "directory as input",
            binary: "mrcoordinator",
            args: co(&[&adir]),
            code: 1,
            names: "is a directory",
        },
        Case {
            name: "glob matching nothing",
            binary: "mrcoordinator",
            args: co(&["nothing-*.txt"]),
            code: 1,
            names: "nothing-*.txt",
        },
        Case {
            name: "malformed glob",
            binary: "mrcoordinator",
            args: co(&["[oops"]),
            code: 1,
            names: "[oops",
        },
        Case {
            name: "zero inputs",
            binary: "mrcoordinator",
            args: co(&[]),
            code: 1,
            names: "no input files",
        },
        Case {
            name: "--reduces 0",
            binary: "mrcoordinator",
            args: co(&["--reduces", "0", &good]),
            code: 1,
            names: "--reduces",
        },
        Case {
            name: "negative reduces",
            binary: "mrcoordinator",
            args: co(&["--reduces", "-2", &good]),
            code: 2,
            names: "--reduces",
        },
        Case {
            name: "malformed size",
            binary: "mrcoordinator",
            args: co(&["--split-size", "12XB", &good]),
            code: 2,
            names: "12XB",
        },
        Case {
            name: "negative size",
            binary: "mrcoordinator",
            args: co(&["--split-size", "-5MiB", &good]),
            code: 2,
            names: "-5MiB",
        },
        Case {
            name: "zero size",
            binary: "mrcoordinator",
            args: co(&["--split-size", "0", &good]),
            code: 2,
            names: "--split-size",
        },
        Case {
            name: "negative timeout",
            binary: "mrcoordinator",
            args: co(&["--task-timeout", "-3", &good]),
            code: 2,
            names: "-3",
        },
        Case {
            name: "malformed timeout",
            binary: "mrcoordinator",
            args: co(&["--task-timeout", "soon", &good]),
            code: 2,
            names: "soon",
        },
        Case {
            name: "--max-attempts 0",
            binary: "mrcoordinator",
            args: co(&["--max-attempts", "0", &good]),
            code: 1,
            names: "--max-attempts",
        },
        Case {
            name: "missing output directory",
            binary: "mrcoordinator",
            args: co(&["--output-dir", "nowhere", &good]),
            code: 1,
            names: "nowhere",
        },
        Case {
            name: "output directory is a file",
            binary: "mrcoordinator",
            args: co(&["--output-dir", &good, &good]),
            code: 1,
            names: "not a directory",
        },
        Case {
            name: "address in use",
            binary: "mrcoordinator",
            args: s(&["--listen", &taken_addr, &good]),
            code: 1,
            names: &taken_addr,
        },
        Case {
            name: "status address in use",
            binary: "mrcoordinator",
            args: co(&["--status-addr", &taken_addr, &good]),
            code: 1,
            names: "--status-addr",
        },
        Case {
            name: "malformed address",
            binary: "mrcoordinator",
            args: s(&["--listen", "not-an-address", &good]),
            code: 1,
            names: "not-an-address",
        },
        Case {
            name: "empty token",
            binary: "mrcoordinator",
            args: co(&["--token", " ", &good]),
            code: 1,
            names: "--token",
        },
        Case {
            name: "unknown app (embedded)",
            binary: "mrcoordinator",
            args: s(&[
                "--listen",
                "127.0.0.1:0",
                "--app",
                "nosuchapp",
                "--workers",
                "1",
                &good,
            ]),
            code: 1,
            names: "refused to start",
        },
        Case {
            name: "unknown app (worker)",
            binary: "mrworker",
            args: s(&["--coordinator", &closed_addr, "nosuchapp"]),
            code: 3,
            names: "nosuchapp",
        },
        Case {
            name: "not a plugin",
            binary: "mrworker",
            args: s(&["--coordinator", &closed_addr, "./fake.so"]),
            code: 3,
            names: "fake.so",
        },
        Case {
            name: "missing plugin",
            binary: "mrworker",
            args: s(&["--coordinator", &closed_addr, "./absent.so"]),
            code: 3,
            names: "absent.so",
        },
        Case {
            name: "unusable --local-dir",
            binary: "mrworker",
            args: s(&["--local-dir", "/proc/no-such-dir", "wc"]),
            code: 1,
            names: "/proc/no-such-dir",
        },
        Case {
            name: "unreachable coordinator",
            binary: "mrworker",
            args: s(&[
                "--connect-timeout",
                "0.5",
                "--coordinator",
                &closed_addr,
                "wc",
            ]),
            code: 1,
            names: &closed_addr,
        },
        Case {
            name: "malformed worker memory",
            binary: "mrworker",
            args: s(&["--memory", "lots", "wc"]),
            code: 2,
            names: "lots",
        },
        Case {
            name: "unknown app (sequential)",
            binary: "mrsequential",
            args: s(&["nosuchapp", &good]),
            code: 1,
            names: "nosuchapp",
        },
        Case {
            name: "missing input (sequential)",
            binary: "mrsequential",
            args: s(&["wc", "absent.txt"]),
            code: 1,
            names: "absent.txt",
        },
    ];
    let old_abi = cdylib(
        t.path(),
        "oldabi",
        "#[no_mangle] pub extern \"C\" fn mr_plugin_abi_version() -> u32 { 999 }",
    );
    let no_symbol = cdylib(
        t.path(),
        "nosymbol",
        "#[no_mangle] pub extern \"C\" fn other() {}",
    );
    if let (Some(old), Some(none)) = (&old_abi, &no_symbol) {
        cases.push(Case {
            name: "plugin of another ABI version",
            binary: "mrworker",
            args: s(&["--coordinator", &closed_addr, old]),
            code: 3,
            names: "ABI version 999",
        });
        cases.push(Case {
            name: "library that is not a plugin",
            binary: "mrworker",
            args: s(&["--coordinator", &closed_addr, none]),
            code: 3,
            names: "not a MapReduce plugin",
        });
    }
    for c in &cases {
        check(&t, None, c);
    }
    drop(taken);
}

#[test]
fn a_worker_for_another_app_is_refused_naming_both() {
    let t = TestDir::new();
    let f = t.write("in.txt", b"x\n");
    let (_c, addr) = t.coordinator(&["--app", "wc", &f]);
    check(
        &t,
        None,
        &Case {
            name: "worker for another app",
            binary: "mrworker",
            args: s(&["--coordinator", &addr, "indexer"]),
            code: 3,
            names: "this job runs app 'wc', but the worker runs 'indexer'",
        },
    );
}

/// Runs as an unprivileged user when the test runs as root (root reads and
/// writes regardless of permissions); None when that is impossible.
fn unprivileged(t: &TestDir) -> Option<Option<u32>> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return Some(None);
    }
    if Command::new("setpriv").arg("--help").output().is_err() {
        eprintln!("SKIP permission cases: running as root and setpriv (util-linux) is missing");
        return None;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    Some(Some(65534))
}

#[test]
fn unreadable_inputs_and_read_only_output_directories_are_named() {
    use std::os::unix::fs::PermissionsExt;
    let t = TestDir::new();
    let Some(user) = unprivileged(&t) else { return };
    let good = t.write("good.txt", b"some words\n");
    std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o644)).unwrap();
    let secret = t.write("secret.txt", b"hidden\n");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    let ro = t.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    let ro = ro.display().to_string();
    // The job's default output directory must be writable for the first case.
    let out = t.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = out.display().to_string();
    for c in [
        Case {
            name: "unreadable input",
            binary: "mrcoordinator",
            args: s(&["--listen", "127.0.0.1:0", "--output-dir", &out, &secret]),
            code: 1,
            names: "secret.txt",
        },
        Case {
            name: "read-only output directory",
            binary: "mrcoordinator",
            args: s(&["--listen", "127.0.0.1:0", "--output-dir", &ro, &good]),
            code: 1,
            names: &ro,
        },
        Case {
            name: "unreadable input (sequential)",
            binary: "mrsequential",
            args: s(&["--output-dir", &out, "wc", &secret]),
            code: 1,
            names: "secret.txt",
        },
    ] {
        check(&t, user, &c);
    }
}

#[test]
fn binary_input_is_processed_not_refused() {
    let t = TestDir::new();
    // Every byte value, NULs and invalid UTF-8 included, with some words.
    let mut bytes: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    bytes.extend_from_slice(b"\nplain words among binary\n\xff\xfe\x00words\n");
    let f = t.write("blob.bin", &bytes);
    let want = t.sequential("wc", std::slice::from_ref(&f));
    assert!(
        want.iter().any(|l| l == b"words 2"),
        "the words are counted"
    );
    let st = Command::new(bin("mrcoordinator"))
        .args([
            "--quiet",
            "--listen",
            "127.0.0.1:0",
            "--app",
            "wc",
            "--workers",
            "2",
        ])
        .args(["--split-size", "64KiB", "--reduces", "3", &f])
        .current_dir(t.path())
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(sorted_lines(&t.outputs(t.path(), 3)), want);
}

/// Whether process `pid` has `path` mapped (a line of its maps names it).
fn maps_file(pid: u32, path: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/maps")).is_ok_and(|m| m.contains(path))
}

/// Truncates `path` to nothing, as a log rotated by copytruncate is.
fn truncate(path: &str) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(0)
        .unwrap();
}

#[test]
fn an_input_truncated_while_a_worker_maps_it_fails_the_job_by_name_and_kills_no_one() {
    use std::os::unix::process::ExitStatusExt;
    let t = TestDir::new();
    let line = b"the quick brown fox jumps over the lazy dog again and again\n";
    let text: Vec<u8> = line.iter().copied().cycle().take(32 << 20).collect();
    let f = t.write("rotated.log", &text);
    // A slow streaming map: it sleeps before reading, so the worker is
    // stopped part-way through writing a chunk of the mapping into its
    // pipe when the file is cut; then it reads on, past the new end.
    let map = format!("sleep 2; {}", crate::streaming::MAP);
    let (mut c, addr, log) = t.coordinator_logged(&[
        "--map-cmd",
        &map,
        "--reduce-cmd",
        crate::streaming::REDUCE,
        "--max-attempts",
        "2",
        "--split-size",
        "64MiB",
        &f,
    ]);
    let map_flag = format!("--map-cmd={map}");
    let mut w = t.worker_with(
        &addr,
        &map_flag,
        &["--reduce-cmd", crate::streaming::REDUCE],
    );
    let pid = w.pid();
    assert!(
        crate::util::eventually(Duration::from_secs(30), || maps_file(pid, &f)),
        "the worker never mapped the input"
    );
    truncate(&f);
    let status = w.wait_for(Duration::from_secs(90));
    let job = c.wait_for(Duration::from_secs(60));
    let msg = std::fs::read_to_string(&log).unwrap_or_default();
    // Before the guard: the worker died of SIGBUS and the job waited on.
    assert_ne!(
        status.and_then(|s| s.signal()),
        Some(7),
        "the worker died of SIGBUS"
    );
    assert!(
        job.is_some_and(|s| !s.success()),
        "the job did not fail: {job:?}\n{msg}"
    );
    assert!(
        msg.contains("rotated.log") && (msg.contains("shrank") || msg.contains("size changed")),
        "{msg}"
    );
    assert!(
        !t.path().join("mr-out-0").exists(),
        "an output was published"
    );
}

#[test]
fn an_input_truncated_while_it_is_planned_is_refused_by_name() {
    use std::os::unix::process::ExitStatusExt;
    let t = TestDir::new();
    // Two sparse GiB (no disk): hashing them for the cache takes a while.
    let f = t.write("sparse.log", b"");
    std::fs::File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let log = t.path().join("coordinator.log");
    let mut cmd = Command::new(bin("mrcoordinator"));
    cmd.args(["--listen", "127.0.0.1:0", "--app", "wc", "--cache"])
        .arg(t.path().join("cache"))
        .arg(&f);
    let mut c = Proc::start_logged(cmd, t.path(), &log);
    let pid = c.pid();
    assert!(
        crate::util::eventually(Duration::from_secs(30), || maps_file(pid, &f)),
        "the coordinator never mapped the input"
    );
    truncate(&f);
    let status = c.wait_for(Duration::from_secs(60));
    let msg = std::fs::read_to_string(&log).unwrap_or_default();
    let status = status.expect("the coordinator went on after planning a truncated input");
    assert_eq!(
        status.signal(),
        None,
        "killed by a signal: {status:?}\n{msg}"
    );
    assert!(!status.success());
    assert!(
        msg.contains("sparse.log") && msg.contains("shrank") && msg.contains("planning"),
        "{msg}"
    );
}
