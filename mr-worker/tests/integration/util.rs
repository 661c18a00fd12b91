//! Helpers: a directory per test, the binaries, and child processes that are
//! always reaped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Where the release (or debug) binaries are: beside this package's mrworker.
pub fn bin(name: &str) -> PathBuf {
    let worker = PathBuf::from(env!("CARGO_BIN_EXE_mrworker"));
    let p = worker.with_file_name(name);
    assert!(
        p.exists(),
        "{} is missing: build the workspace first (cargo build --workspace, with the same profile)",
        p.display()
    );
    p
}

/// The lab texts shipped in `data/`.
pub fn data_files() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data");
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".txt"))
        .collect();
    v.sort();
    v
}

/// A child process that is killed and reaped when dropped.
pub struct Proc {
    child: Option<Child>,
}

impl Proc {
    /// Starts `cmd` in `dir` with stdout/stderr discarded unless `MR_TEST_LOGS` is set.
    pub fn start(mut cmd: Command, dir: &Path) -> Proc {
        cmd.current_dir(dir);
        if std::env::var_os("MR_TEST_LOGS").is_none() {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        Proc {
            child: Some(cmd.spawn().expect("spawn")),
        }
    }

    /// Starts `cmd` in `dir` with its stderr appended to `log`.
    pub fn start_logged(mut cmd: Command, dir: &Path, log: &Path) -> Proc {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        cmd.current_dir(dir).stdout(Stdio::null()).stderr(f);
        Proc {
            child: Some(cmd.spawn().expect("spawn")),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Waits up to `limit` for exit; None if still running.
    pub fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.as_mut().unwrap().try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal (by number) with kill(1).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // A stopped child must be continued to die; one that already
            // exited makes kill complain, which is of no interest here.
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(c.id().to_string())
                .stderr(Stdio::null())
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A test's own directory.
pub struct TestDir {
    dir: tempfile::TempDir,
}

impl TestDir {
    /// A fresh directory.
    pub fn new() -> TestDir {
        TestDir {
            dir: tempfile::Builder::new().prefix("mr-it-").tempdir().unwrap(),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file (and its parent directories) and returns its path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> String {
        let p = self.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    }

    /// Starts a coordinator with `args` on a free port; returns it and its address.
    pub fn coordinator(&self, args: &[&str]) -> (Proc, String) {
        let addr_file = self.path().join("addr");
        let _ = std::fs::remove_file(&addr_file);
        let mut cmd = Command::new(bin("mrcoordinator"));
        cmd.args(["--quiet", "--listen", "127.0.0.1:0", "--addr-file"]);
        cmd.arg(&addr_file).args(args);
        let mut p = Proc::start(cmd, self.path());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(a) = std::fs::read_to_string(&addr_file) {
                return (p, a.trim().to_string());
            }
            if let Some(s) = p.wait_for(Duration::from_millis(20)) {
                panic!("coordinator exited before listening: {s}");
            }
            assert!(
                Instant::now() < deadline,
                "coordinator never wrote its address"
            );
        }
    }

    /// Starts a coordinator with `args` on a free port with its stderr kept
    /// in `coordinator.log`; returns it, its address and the log's path.
    pub fn coordinator_logged(&self, args: &[&str]) -> (Proc, String, PathBuf) {
        let addr_file = self.path().join("addr");
        let _ = std::fs::remove_file(&addr_file);
        let log = self.path().join("coordinator.log");
        let mut cmd = Command::new(bin("mrcoordinator"));
        cmd.args(["--listen", "127.0.0.1:0", "--addr-file"]);
        cmd.arg(&addr_file).args(args);
        let mut p = Proc::start_logged(cmd, self.path(), &log);
        let ok = eventually(Duration::from_secs(10), || {
            addr_file.exists() || p.wait_for(Duration::ZERO).is_some()
        });
        assert!(
            ok && addr_file.exists(),
            "coordinator did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let addr = std::fs::read_to_string(&addr_file)
            .unwrap()
            .trim()
            .to_string();
        (p, addr, log)
    }

    /// Starts a worker for `app` against `addr`.
    pub fn worker(&self, addr: &str, app: &str) -> Proc {
        self.worker_with(addr, app, &[])
    }

    /// Starts a worker for `app` against `addr` with extra flags.
    pub fn worker_with(&self, addr: &str, app: &str, flags: &[&str]) -> Proc {
        let mut cmd = Command::new(bin("mrworker"));
        cmd.args(["--coordinator", addr]).args(flags).arg(app);
        Proc::start(cmd, self.path())
    }

    /// Runs `mrsequential app inputs` in a subdirectory; returns its sorted lines.
    pub fn sequential(&self, app: &str, inputs: &[String]) -> Vec<Vec<u8>> {
        self.sequential_in("seq", app, inputs)
    }

    /// Runs `mrsequential app inputs` writing into subdirectory `dir`;
    /// returns its sorted lines.
    pub fn sequential_in(&self, dir: &str, app: &str, inputs: &[String]) -> Vec<Vec<u8>> {
        let out = self.path().join(dir);
        std::fs::create_dir_all(&out).unwrap();
        let st = Command::new(bin("mrsequential"))
            .arg("--output-dir")
            .arg(&out)
            .arg(app)
            .args(inputs)
            .status()
            .unwrap();
        assert!(st.success(), "mrsequential {app} failed");
        sorted_lines(&[std::fs::read(out.join("mr-out-0")).unwrap()])
    }

    /// Names of the visible `mr-out*` files in `dir`.
    pub fn outputs_named(&self, dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("mr-out"))
            .collect()
    }

    /// The `mr-out-<r>` files of `dir`, in order of r; asserts there are exactly `reduces`.
    pub fn outputs(&self, dir: &Path, reduces: u32) -> Vec<Vec<u8>> {
        let names = self.outputs_named(dir);
        assert_eq!(names.len(), reduces as usize, "output files: {names:?}");
        (0..reduces)
            .map(|r| std::fs::read(dir.join(format!("mr-out-{r}"))).unwrap())
            .collect()
    }
}

/// A loopback address with a port that was free a moment ago (for tests
/// that must restart a coordinator on the same address). It is drawn below
/// the kernel's ephemeral range (32768 and up), so coordinators of other
/// tests listening on port 0 cannot be handed it in the meantime.
pub fn free_addr() -> String {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = (std::process::id() as u16).wrapping_mul(7919) % 10_000;
    loop {
        let port = 20_000 + (seed + NEXT.fetch_add(17, Ordering::Relaxed)) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return format!("127.0.0.1:{port}");
        }
    }
}

/// Waits up to `limit` for `cond`; false if it never held.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// The lab texts with every byte that is not an ASCII letter or newline
/// turned into a space: there `tr` and the built-in splitter agree on words.
pub fn ascii_inputs(t: &TestDir) -> Vec<String> {
    data_files()
        .iter()
        .map(|f| {
            let bytes: Vec<u8> = std::fs::read(f)
                .unwrap()
                .into_iter()
                .map(|b| {
                    if b.is_ascii_alphabetic() || b == b'\n' {
                        b
                    } else {
                        b' '
                    }
                })
                .collect();
            let name = std::path::Path::new(f)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            t.write(&format!("ascii/{name}"), &bytes)
        })
        .collect()
}

/// Accepted map outputs (`mr-<m>-<attempt>`, no suffix) in a job directory.
pub fn map_outputs(job_dir: &Path) -> Vec<PathBuf> {
    let Ok(d) = std::fs::read_dir(job_dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = d
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let mut parts = n.split('-');
            parts.next() == Some("mr")
                && parts.all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// All lines of `files`, sorted bytewise.
pub fn sorted_lines(files: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = files
        .iter()
        .flat_map(|f| {
            f.split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| l.to_vec())
        })
        .collect();
    v.sort();
    v
}

/// `data` gzip-compressed (one member).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// `data` bzip2-compressed.
pub fn bzip2(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// `data` zstd-compressed (one frame).
pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 1).unwrap()
}

/// Joins the coordinator at `addr` (on this machine) as its local workers
/// do: with the join secret it published, pinning its certificate.
/// Returns a client and the job's token.
pub async fn join_coordinator(addr: &str) -> (mr_protocol::CoordinatorClient, String) {
    use mr_protocol::join::{discover, JoinSecret};
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let join = JoinSecret::parse(&discover(port).expect("join secret published")).unwrap();
    assert!(join.pin.is_some(), "a job speaks TLS by default");
    let (stream, _, _) = mr_protocol::wire::connect(addr, join.pin, Duration::from_secs(5))
        .await
        .unwrap();
    let transport = mr_protocol::wire::transport(stream);
    let client =
        mr_protocol::CoordinatorClient::new(tarpc::client::Config::default(), transport).spawn();
    (client, join.token)
}
