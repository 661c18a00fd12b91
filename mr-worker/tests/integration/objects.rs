//! Inputs in an S3-compatible object store, against a real server started
//! on loopback (moto's server mode; SKIP when `moto_server` is missing):
//! objects plain and compressed, mixed with local files, read by workers
//! straight from the store; bad object inputs named within seconds; an
//! object changed after planning.

use crate::util::{
    bin, bzip2, data_files, eventually, free_addr, gzip, sorted_lines, Proc, TestDir,
};
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

/// The secret key every test process gets; it must never be printed.
pub(crate) const SECRET: &str = "sEcReT-never-printed-0123";

/// A moto server on a free loopback port, killed when dropped.
pub(crate) struct Moto {
    _proc: Proc,
    pub(crate) addr: String,
}

impl Moto {
    /// Starts one, or None (after printing SKIP) when moto is missing.
    pub(crate) fn start(t: &TestDir) -> Option<Moto> {
        let found = Command::new("moto_server")
            .arg("--help")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            eprintln!(
                "SKIP object store tests: moto_server is missing (pip install 'moto[server]')"
            );
            return None;
        }
        let addr = free_addr();
        let port = addr.rsplit(':').next().unwrap().to_string();
        let mut cmd = Command::new("moto_server");
        cmd.args(["-H", "127.0.0.1", "-p", &port]);
        let p = Proc::start(cmd, t.path());
        let up = eventually(Duration::from_secs(20), || {
            std::net::TcpStream::connect(&addr).is_ok()
        });
        assert!(up, "moto_server did not start on {addr}");
        Some(Moto { _proc: p, addr })
    }

    /// A plain HTTP request to the server (moto takes unsigned requests);
    /// the status code.
    fn request(&self, method: &str, path: &str, body: &[u8]) -> u16 {
        let mut c = std::net::TcpStream::connect(&self.addr).unwrap();
        write!(
            c,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            body.len()
        )
        .unwrap();
        c.write_all(body).unwrap();
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    pub(crate) fn bucket(&self, name: &str) {
        assert_eq!(self.request("PUT", &format!("/{name}"), b""), 200);
    }

    pub(crate) fn put(&self, bucket: &str, key: &str, data: &[u8]) {
        let status = self.request("PUT", &format!("/{bucket}/{key}"), data);
        assert_eq!(status, 200, "PUT {bucket}/{key}");
    }

    /// The environment that points a process at this server.
    pub(crate) fn env(&self, cmd: &mut Command) {
        cmd.env("AWS_ENDPOINT_URL", format!("http://{}", self.addr))
            .env("AWS_ACCESS_KEY_ID", "test-key")
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE");
    }

    /// Runs a Python snippet with boto3 (which comes with moto) pointed
    /// at this server, as `s3`; its stdout. An independent client, for
    /// checking what the framework left in the store.
    pub(crate) fn boto(&self, code: &str) -> String {
        let mut py = Command::new("python3");
        self.env(&mut py);
        let script = format!("import boto3, json, sys\ns3 = boto3.client('s3')\n{code}");
        let o = py.args(["-c", &script]).output().unwrap();
        assert!(
            o.status.success(),
            "boto3: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// The object's bytes, or None if there is no such object.
    pub(crate) fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let hex = self.boto(&format!(
            "try:\n  print(s3.get_object(Bucket='{bucket}', Key='{key}')['Body'].read().hex())\nexcept s3.exceptions.NoSuchKey:\n  print('none')"
        ));
        let hex = hex.trim();
        (hex != "none").then(|| {
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect()
        })
    }

    /// Keys of the objects under `prefix`, sorted.
    pub(crate) fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let out = self.boto(&format!(
            "r = s3.list_objects_v2(Bucket='{bucket}', Prefix='{prefix}')\nprint(json.dumps(sorted(o['Key'] for o in r.get('Contents', []))))"
        ));
        serde_json::from_str(&out).unwrap()
    }

    /// Keys of the multipart uploads open in `bucket`, sorted.
    pub(crate) fn open_uploads(&self, bucket: &str) -> Vec<String> {
        let out = self.boto(&format!(
            "r = s3.list_multipart_uploads(Bucket='{bucket}')\nprint(json.dumps(sorted(u['Key'] for u in r.get('Uploads', []))))"
        ));
        serde_json::from_str(&out).unwrap()
    }

    /// Opens a multipart upload of `key` with one part, never completed.
    pub(crate) fn start_upload(&self, bucket: &str, key: &str) {
        self.boto(&format!(
            "u = s3.create_multipart_upload(Bucket='{bucket}', Key='{key}')\ns3.upload_part(Bucket='{bucket}', Key='{key}', UploadId=u['UploadId'], PartNumber=1, Body=b'stale part')"
        ));
    }
}

/// Runs `binary args` against `moto`; (exit code, stderr).
pub(crate) fn run(moto: &Moto, t: &TestDir, binary: &str, args: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(bin(binary));
    moto.env(&mut cmd);
    let o = cmd.args(args).current_dir(t.path()).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn object_inputs_plain_and_compressed_with_local_files_give_the_sequential_answer() {
    let t = TestDir::new();
    let Some(moto) = Moto::start(&t) else { return };
    moto.bucket("mr-in");
    let texts: Vec<Vec<u8>> = data_files()
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    // Plain objects in texts/, compressed ones in packed/, one local file.
    let mut plain_copies = Vec::new();
    for (i, data) in texts.iter().enumerate() {
        plain_copies.push(t.write(&format!("copies/{i}.txt"), data));
        match i % 4 {
            0 | 1 => moto.put("mr-in", &format!("texts/{i}.txt"), data),
            2 => moto.put("mr-in", &format!("packed/{i}.txt.gz"), &gzip(data)),
            _ => moto.put("mr-in", &format!("packed/{i}.txt.bz2"), &bzip2(data)),
        }
    }
    let local = t.write("local.txt", b"local words only here\nlast line");
    plain_copies.push(local.clone());
    let want = t.sequential("wc", &plain_copies);
    let inputs = [
        "s3://mr-in/texts/*.txt",
        "s3://mr-in/packed/*",
        local.as_str(),
    ];

    // Workers that share nothing and fetch every input they cannot read
    // from the coordinator: objects still come from the store.
    let addr = free_addr();
    let mut coord_args = vec![
        "--quiet",
        "--listen",
        &addr,
        "--app",
        "wc",
        "--reduces",
        "3",
    ];
    coord_args.extend(["--split-size", "128KiB", "--no-token"]);
    coord_args.extend(inputs);
    let mut c = Command::new(bin("mrcoordinator"));
    moto.env(&mut c);
    c.args(&coord_args);
    let mut coord = Proc::start(c, t.path());
    let mut workers = Vec::new();
    for i in 0..2 {
        let mut w = Command::new(bin("mrworker"));
        moto.env(&mut w);
        w.args(["--coordinator", &addr, "--remote-inputs", "--local-dir"])
            .arg(t.path().join(format!("w{i}")))
            .arg("wc");
        std::fs::create_dir_all(t.path().join(format!("w{i}"))).unwrap();
        workers.push(Proc::start(w, t.path()));
    }
    let st = coord.wait_for(Duration::from_secs(90)).expect("job ends");
    assert!(st.success(), "coordinator: {st}");
    assert_eq!(sorted_lines(&t.outputs(t.path(), 3)), want);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.path().join("mr-report.json")).unwrap()).unwrap();
    let fetched = report["counters"]["input bytes fetched"].as_u64().unwrap();
    let local_len = std::fs::metadata(&local).unwrap().len();
    assert!(
        fetched <= local_len,
        "only the local file may come through the coordinator, not {fetched} bytes"
    );

    // mrsequential reads the same inputs.
    let seq = t.path().join("seq");
    std::fs::create_dir_all(&seq).unwrap();
    let mut args = vec!["--output-dir", seq.to_str().unwrap(), "wc"];
    args.extend(inputs);
    let (code, err) = run(&moto, &t, "mrsequential", &args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        sorted_lines(&[std::fs::read(seq.join("mr-out-0")).unwrap()]),
        want
    );

    // The indexer names objects by their URLs.
    let out = t.path().join("ix");
    std::fs::create_dir_all(&out).unwrap();
    let mut args = vec!["--quiet", "--listen", "127.0.0.1:0", "--app", "indexer"];
    args.extend([
        "--workers",
        "2",
        "--reduces",
        "2",
        "--output-dir",
        out.to_str().unwrap(),
    ]);
    args.extend(inputs);
    let (code, err) = run(&moto, &t, "mrcoordinator", &args);
    assert_eq!(code, 0, "{err}");
    let ix = sorted_lines(&t.outputs(&out, 2));
    let text = String::from_utf8(ix.join(&b'\n')).unwrap();
    assert!(
        text.contains("s3://mr-in/packed/2.txt.gz"),
        "document names"
    );
    let mut args = vec!["--output-dir", seq.to_str().unwrap(), "indexer"];
    args.extend(inputs);
    let (code, err) = run(&moto, &t, "mrsequential", &args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        sorted_lines(&[std::fs::read(seq.join("mr-out-0")).unwrap()]),
        ix
    );
}

#[test]
fn bad_object_inputs_are_named_within_seconds() {
    let t = TestDir::new();
    let Some(moto) = Moto::start(&t) else { return };
    moto.bucket("mr-bad");
    moto.put("mr-bad", "here.txt", b"a b c\n");
    let cases: [(&str, &str); 4] = [
        ("s3://mr-bad/nothing-*.txt", "no object matches"),
        ("s3://mr-bad/missing.txt", "does not exist"),
        ("s3://no-such-bucket/x.txt", "no-such-bucket"),
        ("gs://mr-bad/here.txt", "scheme"),
    ];
    for (input, says) in cases {
        for binary in ["mrcoordinator", "mrsequential"] {
            let args: Vec<&str> = match binary {
                "mrcoordinator" => vec![
                    "--quiet",
                    "--listen",
                    "127.0.0.1:0",
                    "--app",
                    "wc",
                    "--workers",
                    "1",
                    input,
                ],
                _ => vec!["wc", input],
            };
            let started = Instant::now();
            let (code, err) = run(&moto, &t, binary, &args);
            assert_eq!(code, 1, "{binary} {input}: {err}");
            assert!(
                err.contains(input) && err.contains(says),
                "{binary} {input}: {err}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{binary} {input} took too long"
            );
        }
    }
    // An endpoint nobody listens on: a clear failure within seconds.
    let closed = free_addr();
    let started = Instant::now();
    let o = Command::new(bin("mrcoordinator"))
        .env("AWS_ENDPOINT_URL", format!("http://{closed}"))
        .env("AWS_ACCESS_KEY_ID", "k")
        .env("AWS_SECRET_ACCESS_KEY", "s")
        .env("AWS_REGION", "us-east-1")
        .args(["--quiet", "--listen", "127.0.0.1:0", "s3://mr-bad/here.txt"])
        .current_dir(t.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    // Named as unreachable, with where to look.
    assert!(
        err.contains("s3://mr-bad/here.txt") && err.contains("check AWS_ENDPOINT_URL"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_store_that_keeps_asking_to_slow_down_is_named_so_and_the_job_ends() {
    use crate::object_outputs::{proxy, Act};
    let t = TestDir::new();
    let Some(moto) = Moto::start(&t) else { return };
    moto.bucket("mr-busy");
    moto.put("mr-busy", "here.txt", b"a b c\n");
    // Every request answered 503 SlowDown, as S3 does under load.
    let busy = proxy(moto.addr.clone(), |_| Act::Refuse);
    for binary in ["mrcoordinator", "mrsequential"] {
        let mut cmd = Command::new(bin(binary));
        moto.env(&mut cmd);
        cmd.env("AWS_ENDPOINT_URL", format!("http://{busy}"));
        match binary {
            "mrcoordinator" => cmd.args(["--quiet", "--listen", "127.0.0.1:0", "--app", "wc"]),
            _ => cmd.arg("wc"),
        };
        let started = Instant::now();
        let o = cmd
            .arg("s3://mr-busy/here.txt")
            .current_dir(t.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{binary}: {err}");
        // The store's code, not its XML, and what to do about it.
        assert!(
            err.contains("s3://mr-busy/here.txt")
                && err.contains("SlowDown")
                && err.contains("overloaded or failing")
                && !err.contains("<?xml"),
            "{binary}: {err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{binary} took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn an_object_changed_after_planning_fails_the_job_naming_it() {
    let t = TestDir::new();
    let Some(moto) = Moto::start(&t) else { return };
    moto.bucket("mr-chg");
    moto.put("mr-chg", "in.txt", &b"first version words\n".repeat(100));
    let addr = free_addr();
    let mut c = Command::new(bin("mrcoordinator"));
    moto.env(&mut c);
    c.env("RUST_LOG", "trace").args([
        "--listen",
        &addr,
        "--no-token",
        "--max-attempts",
        "1",
        "s3://mr-chg/in.txt",
    ]);
    let log = t.path().join("coordinator.log");
    let mut coord = Proc::start_logged(c, t.path(), &log);
    // Planned (listed) once it listens; then the object changes.
    assert!(eventually(Duration::from_secs(10), || {
        std::net::TcpStream::connect(&addr).is_ok()
    }));
    // A signed overwrite (moto refuses unsigned ones), through boto3,
    // which comes with moto.
    let mut py = Command::new("python3");
    moto.env(&mut py);
    let code = "import boto3; boto3.client('s3').put_object(Bucket='mr-chg', Key='in.txt', Body=b'second version words' * 100)";
    let st = py.args(["-c", code]).status().unwrap();
    assert!(st.success(), "overwriting the object failed");
    // The worker logs everything it can, into the same file.
    let mut w = Command::new(bin("mrworker"));
    moto.env(&mut w);
    w.env("RUST_LOG", "trace")
        .args(["--coordinator", &addr, "wc"]);
    let _w = Proc::start_logged(w, t.path(), &log);
    let st = coord.wait_for(Duration::from_secs(60)).expect("job ends");
    assert!(!st.success());
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(
        err.contains("s3://mr-chg/in.txt") && err.contains("changed since the job was planned"),
        "{err}"
    );
    assert!(t.outputs_named(t.path()).is_empty());
    // The secret key appears in no log and not in the job report.
    let report = std::fs::read_to_string(t.path().join("mr-report.json")).unwrap();
    for (what, text) in [("log", &err), ("report", &report)] {
        assert!(!text.contains(SECRET), "the secret key is in the {what}");
    }
}
