//! The coordinator's Unix domain socket: the lab's way of running (workers
//! given no address find `/var/tmp/5840-mr-<uid>`), its lifetime (made
//! private at start, removed after success, failure and SIGTERM; a stale one
//! replaced; a live one refused by name) and whom it admits (its own user).

use crate::util::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A coordinator command with nothing configured but `args`, as a user of
/// the lab would start it (no address or token in the environment).
fn bare_coordinator(args: &[&str]) -> Command {
    let mut cmd = Command::new(bin("mrcoordinator"));
    cmd.env_remove("MR_COORDINATOR")
        .env_remove("MR_TOKEN")
        .arg("--quiet")
        .args(args);
    cmd
}

/// A worker command for `app` with no address or token.
fn bare_worker(app: &str) -> Command {
    let mut cmd = Command::new(bin("mrworker"));
    cmd.env_remove("MR_COORDINATOR")
        .env_remove("MR_TOKEN")
        .arg(app);
    cmd
}

/// Waits for the socket at `path` to appear while `coord` runs.
fn socket_appears(path: &Path, coord: &mut Proc) -> bool {
    eventually(Duration::from_secs(10), || {
        path.exists() || coord.wait_for(Duration::ZERO).is_some()
    }) && path.exists()
}

fn lab_socket() -> PathBuf {
    PathBuf::from(format!("/var/tmp/5840-mr-{}", nix::unistd::getuid()))
}

/// The lab's way, and two embedded jobs at once needing no port: in one
/// test, because both use this user's one lab socket.
#[test]
fn workers_with_no_address_find_the_lab_socket_and_embedded_jobs_need_no_port() {
    let sock = lab_socket();
    if sock.exists() {
        eprintln!(
            "SKIP: {} exists (a coordinator of this user is running)",
            sock.display()
        );
        return;
    }
    let t = TestDir::new();
    let inputs = data_files();
    let want = t.sequential("wc", &inputs);
    let mut args: Vec<&str> = Vec::new();
    args.extend(inputs.iter().map(String::as_str));
    let mut coord = Proc::start(bare_coordinator(&args), t.path());
    assert!(
        socket_appears(&sock, &mut coord),
        "no socket at {}",
        sock.display()
    );
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the socket must be private");
    let _w1 = Proc::start(bare_worker("wc"), t.path());
    let _w2 = Proc::start(bare_worker("wc"), t.path());
    let st = coord
        .wait_for(Duration::from_secs(60))
        .expect("job finished");
    assert!(st.success(), "coordinator: {st}");
    assert_eq!(sorted_lines(&t.outputs(t.path(), 10)), want);
    assert!(!sock.exists(), "the socket must go with its coordinator");

    // Two embedded jobs at once, neither given --listen: the first takes the
    // socket, the second's workers use TCP on a free port; both finish.
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let embedded = |dir: &Path| {
        let mut args = vec!["--app", "wc", "--workers", "2"];
        args.extend(inputs.iter().map(String::as_str));
        Proc::start(bare_coordinator(&args), dir)
    };
    let mut ja = embedded(&a);
    let mut jb = embedded(&b);
    for (j, dir) in [(&mut ja, &a), (&mut jb, &b)] {
        let st = j.wait_for(Duration::from_secs(60)).expect("job finished");
        assert!(st.success(), "embedded job in {}: {st}", dir.display());
        assert_eq!(sorted_lines(&t.outputs(dir, 10)), want);
    }
    assert!(!sock.exists());
}

#[test]
fn the_socket_goes_when_the_job_succeeds_fails_or_is_terminated() {
    let t = TestDir::new();
    let inputs = data_files();
    let sock = t.path().join("sock");
    let s = sock.to_str().unwrap();
    // Success, embedded workers reaching the coordinator over the socket.
    let mut args = vec!["--socket", s, "--app", "wc", "--workers", "1"];
    args.extend(inputs.iter().map(String::as_str));
    let (mut c, _) = t.coordinator(&args);
    assert!(c.wait_for(Duration::from_secs(60)).unwrap().success());
    assert!(!sock.exists(), "left after success");
    let note = t.path().join("sock.job");
    assert!(!note.exists(), "note left after success");

    // Failure: a poisoned record with one attempt allowed.
    std::fs::remove_file(t.path().join("mr-report.json")).ok();
    let bad = t.write("bad.txt", b"fine words\npoisonrecord here\n");
    let (mut c, _) = t.coordinator(&[
        "--socket",
        s,
        "--app",
        "poison",
        "--workers",
        "1",
        "--max-attempts",
        "1",
        "--fresh",
        &bad,
    ]);
    let st = c.wait_for(Duration::from_secs(60)).unwrap();
    assert!(!st.success(), "the poisoned job must fail");
    assert!(!sock.exists(), "left after failure");

    // SIGTERM while waiting for workers.
    let (mut c, _) = t.coordinator(&["--socket", s, "--fresh", &bad]);
    assert!(socket_appears(&sock, &mut c));
    c.signal("TERM");
    let st = c
        .wait_for(Duration::from_secs(10))
        .expect("exits on SIGTERM");
    assert!(!st.success());
    assert!(!sock.exists() && !note.exists(), "left after SIGTERM");
}

#[test]
fn a_stale_socket_is_replaced_and_a_live_one_is_refused_naming_its_job() {
    let t = TestDir::new();
    let sock = t.path().join("sock");
    let s = sock.to_str().unwrap();
    // What a killed coordinator leaves: a socket file nobody listens on.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let input = t.write("in.txt", b"one two two three three three\n");
    let (mut first, _) = t.coordinator(&["--socket", s, "--reduces", "2", &input]);
    // The stale file was replaced: the new coordinator answers on it.
    assert!(eventually(Duration::from_secs(10), || {
        std::os::unix::net::UnixStream::connect(&sock).is_ok()
    }));

    // A second job wanting the same socket is refused, naming the first.
    let other = t.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let out = Command::new(bin("mrcoordinator"))
        .args(["--quiet", "--listen", "127.0.0.1:0", "--socket", s, &input])
        .current_dir(&other)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(s)
            && err.contains(&t.path().display().to_string())
            && err.contains("--socket"),
        "{err}"
    );
    assert!(
        sock.exists(),
        "the refused job must not remove the live socket"
    );

    // A worker given the socket as its address joins the first job.
    let mut cmd = Command::new(bin("mrworker"));
    cmd.env_remove("MR_TOKEN")
        .args(["--coordinator", &format!("unix:{s}"), "wc"]);
    let _w = Proc::start(cmd, t.path());
    assert!(first.wait_for(Duration::from_secs(30)).unwrap().success());
    let got = sorted_lines(&t.outputs(t.path(), 2));
    let want: Vec<Vec<u8>> = vec![b"one 1".to_vec(), b"three 3".to_vec(), b"two 2".to_vec()];
    assert_eq!(got, want);
    assert!(!sock.exists());
}

#[test]
fn a_worker_of_another_user_is_refused() {
    if !nix::unistd::getuid().is_root() {
        eprintln!("SKIP: needs root to run a worker as another user");
        return;
    }
    use std::os::unix::process::CommandExt;
    // The socket must be reachable by the other user's path lookup.
    let dir = tempfile::Builder::new()
        .prefix("mr-it-sock-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = dir.path().join("sock");
    let s = sock.to_str().unwrap();
    let t = TestDir::new();
    let input = t.write("in.txt", b"a b c\n");
    let (mut c, _) = t.coordinator(&["--socket", s, &input]);
    assert!(socket_appears(&sock, &mut c));
    let nobody = |extra: &[&str]| {
        let mut cmd = Command::new(bin("mrworker"));
        cmd.uid(65534)
            .gid(65534)
            .current_dir("/")
            .env_remove("MR_TOKEN")
            .args([
                "--connect-timeout",
                "1",
                "--coordinator",
                &format!("unix:{s}"),
            ])
            .args(extra)
            .arg("wc");
        cmd.output().unwrap()
    };
    // The socket's mode keeps the other user out...
    let out = nobody(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(s) && err.contains("ermission denied"), "{err}");
    // ...and were it opened up, the peer's uid still would.
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = nobody(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("only its own user's workers") && err.contains("65534"),
        "{err}"
    );
    assert_eq!(c.wait_for(Duration::ZERO), None, "the job goes on");
}
