//! Outputs in an S3-compatible object store (`--output-dir s3://...`),
//! against moto's server on loopback (SKIP when it is missing): every
//! output published whole by completing one attempt's multipart upload,
//! the `_SUCCESS` manifest written last, and no multipart upload left open
//! after a worker killed mid-reduce, crashing workers, or a coordinator
//! killed between the steps of a commit. What the store holds is read back
//! with boto3, a client independent of ours.

use crate::objects::{run, Moto};
use crate::streaming::{MAP, REDUCE};
use crate::util::{
    ascii_inputs, bin, bzip2, data_files, eventually, gzip, sorted_lines, zstd, Proc, TestDir,
};
use std::process::Command;
use std::time::{Duration, Instant};

/// The outputs `mr-out-0..reduces` under `bucket/prefix`, asserting that
/// they are exactly the objects named so (no more, no fewer).
fn outputs(moto: &Moto, bucket: &str, prefix: &str, reduces: u32) -> Vec<Vec<u8>> {
    let named: Vec<String> = moto
        .keys(bucket, prefix)
        .into_iter()
        .filter(|k| k[prefix.len()..].starts_with("mr-out"))
        .collect();
    let want: Vec<String> = (0..reduces)
        .map(|r| format!("{prefix}mr-out-{r}"))
        .collect();
    let mut sorted_want = want.clone();
    sorted_want.sort();
    assert_eq!(named, sorted_want, "output objects");
    want.iter()
        .map(|k| moto.get(bucket, k).expect("listed, so present"))
        .collect()
}

/// Checks `_SUCCESS` under `bucket/prefix` against the outputs: it lists
/// exactly them, each with its size and CRC-32C. Returns it.
fn check_manifest(moto: &Moto, bucket: &str, prefix: &str, outs: &[Vec<u8>]) -> serde_json::Value {
    let raw = moto
        .get(bucket, &format!("{prefix}_SUCCESS"))
        .expect("_SUCCESS written");
    let m: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let listed = m["outputs"].as_array().unwrap();
    assert_eq!(listed.len(), outs.len(), "{m}");
    for (r, (entry, bytes)) in listed.iter().zip(outs).enumerate() {
        assert_eq!(entry["name"], format!("mr-out-{r}"));
        assert_eq!(entry["size"].as_u64(), Some(bytes.len() as u64));
        let crc = format!("{:08x}", crc32c::crc32c(bytes));
        assert_eq!(entry["crc32c"].as_str(), Some(crc.as_str()));
    }
    assert!(m["job_id"].as_str().is_some_and(|id| !id.is_empty()));
    m
}

/// Runs `mrcoordinator` with `args` and local workers against `moto`,
/// in directory `t`; asserts it succeeds.
fn job(moto: &Moto, t: &TestDir, args: &[&str]) {
    let mut all = vec!["--quiet", "--listen", "127.0.0.1:0", "--no-socket"];
    all.extend(args);
    let (code, err) = run(moto, t, "mrcoordinator", &all);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn outputs_in_the_store_are_published_whole_with_a_manifest_and_no_open_uploads() {
    let t = TestDir::new();
    let Some(moto) = Moto::start(&t) else { return };
    moto.bucket("mr-io");
    // Inputs: objects plain, .gz, .zst and .bz2, and a local file.
    let mut copies = Vec::new();
    for (i, f) in data_files().iter().enumerate() {
        let data = std::fs::read(f).unwrap();
        copies.push(t.write(&format!("copies/{i}.txt"), &data));
        match i % 4 {
            0 => moto.put("mr-io", &format!("in/{i}.txt"), &data),
            1 => moto.put("mr-io", &format!("in/{i}.txt.gz"), &gzip(&data)),
            2 => moto.put("mr-io", &format!("in/{i}.txt.zst"), &zstd(&data)),
            _ => moto.put("mr-io", &format!("in/{i}.txt.bz2"), &bzip2(&data)),
        }
    }
    let local = t.write("local.txt", b"local words only here\nlast line");
    copies.push(local.clone());
    // Left by "an earlier run": an open upload of one of the outputs (the
    // job aborts it), one of another key (not the job's: left alone), and a
    // _SUCCESS that must not vouch for this run's outputs.
    moto.start_upload("mr-io", "run/mr-out-1");
    moto.start_upload("mr-io", "run/notes.txt");
    moto.put("mr-io", "run/_SUCCESS", b"{\"job_id\": \"an earlier job\"}");
    std::fs::create_dir_all(t.path().join("wd")).unwrap();

    let want = t.sequential("wc", &copies);
    let mut args = vec!["--app", "wc", "--workers", "2", "--reduces", "3"];
    args.extend(["--split-size", "64KiB", "--work-dir", "wd"]);
    args.extend(["--output-dir", "s3://mr-io/run", "s3://mr-io/in/*", &local]);
    job(&moto, &t, &args);
    let outs = outputs(&moto, "mr-io", "run/", 3);
    assert_eq!(sorted_lines(&outs), want);
    let m = check_manifest(&moto, "mr-io", "run/", &outs);
    let lines = want.len() as u64;
    assert_eq!(m["counters"]["output_records"].as_u64(), Some(lines), "{m}");
    assert_eq!(moto.open_uploads("mr-io"), vec!["run/notes.txt"]);
    // The report and timeline sit beside the outputs; nothing is left
    // in the work directory, and no output was written locally.
    let keys = moto.keys("mr-io", "run/");
    for k in ["run/mr-report.json", "run/mr-timeline.svg"] {
        assert!(keys.contains(&k.to_string()), "{keys:?}");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&moto.get("mr-io", "run/mr-report.json").unwrap()).unwrap();
    assert_eq!(report["job"]["id"], m["job_id"]);
    assert_eq!(report["job"]["state"], "succeeded");
    assert_eq!(report["job"]["output_dir"], "s3://mr-io/run/");
    // Every stored byte of the inputs was read from the store (a little
    // more: the byte before each split and the line crossing its end, a
    // few KiB per split at most), and every output byte written there.
    let stored: u64 = moto
        .keys("mr-io", "in/")
        .iter()
        .map(|k| moto.get("mr-io", k).unwrap().len() as u64)
        .sum();
    let read = report["counters"]["object bytes read"].as_u64().unwrap();
    assert!(
        (stored..stored + stored / 4).contains(&read),
        "{read} of {stored}"
    );
    let written: u64 = outs.iter().map(|o| o.len() as u64).sum();
    assert_eq!(
        report["counters"]["object bytes written"].as_u64(),
        Some(written)
    );
    let left: Vec<_> = std::fs::read_dir(t.path().join("wd")).unwrap().collect();
    assert!(left.is_empty(), "work directory: {left:?}");
    assert!(t.outputs_named(t.path()).is_empty());

    // The indexer (documents named by their URLs, as mrsequential over
    // the same URLs names them) to a prefix of its own.
    let seq = t.path().join("seq-ix");
    std::fs::create_dir_all(&seq).unwrap();
    let seq_args = [
        "--output-dir",
        seq.to_str().unwrap(),
        "indexer",
        "s3://mr-io/in/*",
        &local,
    ];
    let (code, err) = run(&moto, &t, "mrsequential", &seq_args);
    assert_eq!(code, 0, "{err}");
    let want_ix = sorted_lines(&[std::fs::read(seq.join("mr-out-0")).unwrap()]);
    let mut args = vec!["--app", "indexer", "--workers", "2", "--reduces", "2"];
    args.extend(["--work-dir", "wd", "--output-dir", "s3://mr-io/ix/"]);
    args.extend(["s3://mr-io/in/*", &local]);
    job(&moto, &t, &args);
    let outs = outputs(&moto, "mr-io", "ix/", 2);
    assert_eq!(sorted_lines(&outs), want_ix);
    check_manifest(&moto, "mr-io", "ix/", &outs);

    // A streaming (awk) word count of ASCII objects, which equals the
    // built-in one.
    let ascii = ascii_objects(&moto, &t, "mr-io");
    let want_ascii = t.sequential_in("seq-ascii", "wc", &ascii);
    let mut args = vec!["--workers", "2", "--reduces", "2"];
    args.extend(["--map-cmd", MAP, "--reduce-cmd", REDUCE]);
    args.extend(["--work-dir", "wd", "--output-dir", "s3://mr-io/stream/"]);
    args.push("s3://mr-io/ascii/*");
    job(&moto, &t, &args);
    let outs = outputs(&moto, "mr-io", "stream/", 2);
    assert_eq!(sorted_lines(&outs), want_ascii);
    check_manifest(&moto, "mr-io", "stream/", &outs);
    assert_eq!(moto.open_uploads("mr-io"), vec!["run/notes.txt"]);
}

/// Puts ASCII-only copies of the data files in `bucket` under `ascii/`
/// (gzipped every other one); returns the local copies.
fn ascii_objects(moto: &Moto, t: &TestDir, bucket: &str) -> Vec<String> {
    let local = ascii_inputs(t);
    for (i, f) in local.iter().enumerate() {
        let data = std::fs::read(f).unwrap();
        match i % 2 {
            0 => moto.put(bucket, &format!("ascii/{i}.txt"), &data),
            _ => moto.put(bucket, &format!("ascii/{i}.txt.gz"), &gzip(&data)),
        }
    }
    local
}

#[test]
fn a_worker_killed_mid_reduce_leaves_no_upload_and_its_task_is_published_once() {
    worker_lost_mid_reduce(Loss::Killed);
}

#[test]
fn a_worker_stalled_mid_reduce_then_resumed_leaves_one_output_and_no_upload() {
    worker_lost_mid_reduce(Loss::Stalled);
}

/// How the first reduce attempt's worker goes.
#[derive(Clone, Copy, PartialEq)]
enum Loss {
    /// SIGKILL: its upload is never reported.
    Killed,
    /// SIGSTOP past the task timeout (declared lost, the task runs on
    /// another worker), then SIGCONT while that attempt runs: the two race,
    /// and whichever loses has its upload aborted.
    Stalled,
}

/// One reduce whose first worker is lost mid-reduce, its upload open.
fn worker_lost_mid_reduce(loss: Loss) {
    let t = TestDir::new();
    let Some(moto) = Moto::start(&t) else { return };
    moto.bucket("mr-kill");
    let local = ascii_objects(&moto, &t, "mr-kill");
    let want = t.sequential("wc", &local);
    // A reduce that takes seconds: its attempt opens its upload at once,
    // then dawdles, so the loss lands mid-reduce.
    let slow_reduce = format!("sleep 3; {REDUCE}");
    let addr = crate::util::free_addr();
    let mut c = Command::new(bin("mrcoordinator"));
    moto.env(&mut c);
    c.env("RUST_LOG", "info")
        .args(["--listen", &addr, "--no-token", "--reduces", "1"])
        .args(["--task-timeout", "2"])
        .args(["--map-cmd", MAP, "--reduce-cmd", &slow_reduce])
        .args(["--output-dir", "s3://mr-kill/out/", "s3://mr-kill/ascii/*"]);
    let log = t.path().join("coordinator.log");
    let mut coord = Proc::start_logged(c, t.path(), &log);
    let worker = |t: &TestDir| {
        let mut w = Command::new(bin("mrworker"));
        moto.env(&mut w);
        w.args(["--coordinator", &addr, "--map-cmd", MAP])
            .args(["--reduce-cmd", &slow_reduce]);
        Proc::start(w, t.path())
    };
    let first = worker(&t);
    let uploads = |n: usize| {
        eventually(Duration::from_secs(60), || {
            moto.open_uploads("mr-kill").len() >= n
        })
    };
    let opened = uploads(1);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(opened, "no reduce began: {}", log_text());
    let _second;
    let mut _resumed = None;
    match loss {
        Loss::Killed => {
            first.signal("KILL");
            drop(first);
            _second = worker(&t);
        }
        Loss::Stalled => {
            first.signal("STOP");
            _second = worker(&t);
            // The task runs again once the first is declared lost.
            assert!(uploads(2), "no second attempt: {}", log_text());
            first.signal("CONT");
            // Kept (and reaped at the end) while it finishes and reports.
            _resumed = Some(first);
        }
    }
    let st = coord.wait_for(Duration::from_secs(90)).expect("job ends");
    assert!(st.success(), "{}", log_text());
    let outs = outputs(&moto, "mr-kill", "out/", 1);
    assert_eq!(sorted_lines(&outs), want);
    check_manifest(&moto, "mr-kill", "out/", &outs);
    // Give a resumed loser time to report and abort, then look.
    let clean = eventually(Duration::from_secs(20), || {
        moto.open_uploads("mr-kill").is_empty()
    });
    assert!(clean, "open uploads: {:?}", moto.open_uploads("mr-kill"));
    if loss == Loss::Stalled {
        assert!(log_text().contains("declared lost"), "{}", log_text());
    }
}

#[test]
fn crashing_workers_and_losing_backups_leave_exactly_one_output_per_partition() {
    let t = TestDir::new();
    let Some(moto) = Moto::start(&t) else { return };
    moto.bucket("mr-crash");
    let files = data_files();
    let want = t.sequential("nocrash", &files);
    let addr = crate::util::free_addr();
    let mut c = Command::new(bin("mrcoordinator"));
    moto.env(&mut c);
    c.args([
        "--listen",
        &addr,
        "--no-token",
        "--app",
        "crash",
        "--reduces",
        "3",
    ])
    .args(["--task-timeout", "3", "--output-dir", "s3://mr-crash/out/"])
    .args(&files);
    let log = t.path().join("coordinator.log");
    let mut coord = Proc::start_logged(c, t.path(), &log);
    // The crash app exits (mid-map, mid-reduce) or stalls at random; like
    // the lab's crash test, dead workers are replaced until the job ends.
    let mut workers: Vec<Proc> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(st) = coord.wait_for(Duration::from_millis(200)) {
            break st;
        }
        assert!(Instant::now() < deadline, "the job did not finish");
        workers.retain_mut(|w| w.wait_for(Duration::ZERO).is_none());
        while workers.len() < 3 {
            let mut w = Command::new(bin("mrworker"));
            moto.env(&mut w);
            w.args(["--coordinator", &addr, "crash"]);
            workers.push(Proc::start(w, t.path()));
        }
    };
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let outs = outputs(&moto, "mr-crash", "out/", 3);
    assert_eq!(sorted_lines(&outs), want);
    check_manifest(&moto, "mr-crash", "out/", &outs);
    assert!(moto.open_uploads("mr-crash").is_empty());
}

#[test]
fn a_coordinator_killed_between_the_steps_of_a_commit_finishes_it_on_restart() {
    let t = TestDir::new();
    let Some(moto) = Moto::start(&t) else { return };
    moto.bucket("mr-halt");
    let files: Vec<String> = data_files().into_iter().take(4).collect();
    let want = t.sequential("wc", &files);
    // Killed after journaling that it is completing an upload (the upload
    // still open), or after completing it (the object published, the
    // journal not yet saying so): either way the same command finishes.
    for point in ["completing-journaled", "completed"] {
        let prefix = format!("{point}/");
        let out = format!("s3://mr-halt/{prefix}");
        let mut args = vec!["--quiet", "--listen", "127.0.0.1:0", "--no-socket"];
        args.extend(["--app", "wc", "--workers", "2", "--reduces", "2"]);
        args.extend(["--output-dir", &out]);
        args.extend(files.iter().map(String::as_str));
        let mut c = Command::new(bin("mrcoordinator"));
        moto.env(&mut c);
        c.env("MR_FAULT_POINT", point).args(&args);
        // Its stderr goes to a file, not a pipe: the embedded workers it
        // leaves behind hold their copy open while they wait for it to
        // come back, and a pipe's reader would wait for them too.
        let log = t.path().join(format!("killed-{point}.log"));
        let mut killed = Proc::start_logged(c, t.path(), &log);
        let status = killed.wait_for(Duration::from_secs(60)).expect("hung");
        let err = std::fs::read_to_string(&log).unwrap_or_default();
        assert_eq!(status.code(), Some(137), "{err}");
        assert!(err.contains(point), "{err}");
        assert!(
            t.path().join("mr-job").exists(),
            "the journal stays for the restart"
        );
        let keys = moto.keys("mr-halt", &prefix);
        assert!(!keys.iter().any(|k| k.ends_with("_SUCCESS")), "{keys:?}");

        let mut args = args.clone();
        args.retain(|a| *a != "--quiet");
        let (code, err) = run(&moto, &t, "mrcoordinator", &args);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("resumed from the journal"), "{err}");
        let outs = outputs(&moto, "mr-halt", &prefix, 2);
        assert_eq!(sorted_lines(&outs), want, "{point}");
        check_manifest(&moto, "mr-halt", &prefix, &outs);
        assert!(moto.open_uploads("mr-halt").is_empty(), "{point}");
        assert!(!t.path().join("mr-job").exists());
    }
}

#[test]
fn an_unusable_output_prefix_is_named_within_seconds() {
    let t = TestDir::new();
    let Some(moto) = Moto::start(&t) else { return };
    moto.bucket("mr-here");
    let input = t.write("in.txt", b"a b c\n");
    for (prefix, says) in [
        ("s3://mr-missing-bucket/out/", "NoSuchBucket"),
        ("s3://mr-here/out/*", "cannot be a pattern"),
        ("s3:///out/", "no bucket"),
        ("gs://mr-here/out/", "not s3://"),
    ] {
        let started = Instant::now();
        let args = ["--listen", "127.0.0.1:0", "--app", "wc", "--workers", "1"];
        let mut args = args.to_vec();
        args.extend(["--output-dir", prefix, &input]);
        let (code, err) = run(&moto, &t, "mrcoordinator", &args);
        assert_eq!(code, 1, "{prefix}: {err}");
        assert!(
            err.contains(prefix) && err.contains(says),
            "{prefix}: {err}"
        );
        assert!(!err.contains("<?xml"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{prefix}: slow"
        );
    }
    assert!(!t.path().join("mr-job").exists());
    assert!(
        moto.keys("mr-here", "").is_empty(),
        "the probe leaves nothing"
    );
    assert!(moto.open_uploads("mr-here").is_empty());
}

/// What [`proxy`] does with a request, by its first line.
pub(crate) enum Act {
    /// Passes it on.
    Pass,
    /// Holds it this long, then passes it on.
    Hold(Duration),
    /// Answers `503 Slow Down` itself, with S3's error document, and
    /// closes the connection.
    Refuse,
}

/// A TCP proxy in front of `upstream` that treats each request as `act`
/// says from its first line: a store that is slow or refuses some calls.
/// Returns its address; its threads end with the test process.
pub(crate) fn proxy(upstream: String, act: impl Fn(&str) -> Act + Send + Sync + 'static) -> String {
    use std::io::{Read, Write};
    let act = std::sync::Arc::new(act);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = std::net::TcpStream::connect(&upstream) else {
                continue;
            };
            let (mut c_read, mut s_write) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut s_read, mut c_write) = (server, client);
            let mut refuse = c_write.try_clone().unwrap();
            let act = act.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = c_read.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let chunk = &buf[..n];
                    let line_end = chunk.iter().position(|&b| b == b'\n').unwrap_or(n);
                    match act(&String::from_utf8_lossy(&chunk[..line_end])) {
                        Act::Pass => {}
                        Act::Hold(d) => std::thread::sleep(d),
                        Act::Refuse => {
                            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>R1</RequestId></Error>";
                            let head = format!("HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                            let _ = refuse.write_all(format!("{head}{body}").as_bytes());
                            let _ = refuse.shutdown(std::net::Shutdown::Both);
                            break;
                        }
                    }
                    if s_write.write_all(chunk).is_err() {
                        break;
                    }
                }
                let _ = s_write.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_read, &mut c_write);
                let _ = c_write.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    addr
}

/// A proxy that holds every `CompleteMultipartUpload` (`POST
/// ...?uploadId=`) for `delay`: a store slower to commit than an RPC's
/// deadline.
fn slow_completing_proxy(upstream: String, delay: Duration) -> String {
    proxy(upstream, move |line| {
        match line.starts_with("POST ") && line.contains("uploadId=") {
            true => Act::Hold(delay),
            false => Act::Pass,
        }
    })
}

#[test]
fn the_end_of_job_sweep_finds_every_open_upload_through_a_store_that_refuses_at_first() {
    let t = TestDir::new();
    let Some(moto) = Moto::start(&t) else { return };
    moto.bucket("mr-sweep");
    let inputs: Vec<String> = data_files().into_iter().take(2).collect();
    let want = t.sequential("wc", &inputs);
    // An upload left open on an output key by a worker killed before it
    // reported: only the store knows it, only the sweep's listing finds it.
    moto.start_upload("mr-sweep", "out/mr-out-1");
    assert_eq!(moto.open_uploads("mr-sweep").len(), 1);
    // The store answers the first two listings 503 Slow Down.
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let count = refused.clone();
    let proxy = proxy(moto.addr.clone(), move |line| {
        let listing = line.starts_with("GET ") && line.contains("uploads");
        match listing && count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
            true => Act::Refuse,
            false => Act::Pass,
        }
    });
    let mut cmd = Command::new(bin("mrcoordinator"));
    moto.env(&mut cmd);
    let out = cmd
        .env("AWS_ENDPOINT_URL", format!("http://{proxy}"))
        .args(["--listen", "127.0.0.1:0", "--no-socket"])
        .args(["--app", "wc", "--workers", "2", "--reduces", "2"])
        .args(["--output-dir", "s3://mr-sweep/out"])
        .args(&inputs)
        .current_dir(t.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        refused.load(std::sync::atomic::Ordering::SeqCst) >= 3,
        "the sweep never listed"
    );
    // Before the listing retried, the sweep failed on the first refusal
    // and the stray upload stayed open.
    assert_eq!(moto.open_uploads("mr-sweep"), Vec::<String>::new(), "{err}");
    let outs = outputs(&moto, "mr-sweep", "out/", 2);
    assert_eq!(sorted_lines(&outs), want);
    check_manifest(&moto, "mr-sweep", "out/", &outs);
}

#[test]
fn a_store_slower_to_commit_than_the_rpc_deadline_still_publishes_every_output_once() {
    let t = TestDir::new();
    let Some(moto) = Moto::start(&t) else { return };
    moto.bucket("mr-slow");
    let inputs: Vec<String> = data_files().into_iter().take(3).collect();
    let want = t.sequential("wc", &inputs);
    // Every CompleteMultipartUpload answered 20 s late: twice the 10 s
    // deadline of the report that asks for the commit.
    let proxy = slow_completing_proxy(moto.addr.clone(), Duration::from_secs(20));
    let mut cmd = Command::new(bin("mrcoordinator"));
    moto.env(&mut cmd);
    cmd.env("AWS_ENDPOINT_URL", format!("http://{proxy}"))
        .args(["--quiet", "--listen", "127.0.0.1:0", "--no-socket"])
        .args(["--app", "wc", "--workers", "2", "--reduces", "2"])
        .args(["--output-dir", "s3://mr-slow/out"])
        .args(&inputs);
    let started = Instant::now();
    let mut job = Proc::start(cmd, t.path());
    // Before the commit ran apart from the report, the reduces stayed
    // "committing" for ever and the job never ended.
    let status = job.wait_for(Duration::from_secs(150));
    let took = started.elapsed();
    assert!(
        status.is_some_and(|s| s.success()),
        "the job did not finish within {took:?}: {status:?}"
    );
    eprintln!("slow store: the job took {took:?}");
    let outs = outputs(&moto, "mr-slow", "out/", 2);
    assert_eq!(sorted_lines(&outs), want);
    check_manifest(&moto, "mr-slow", "out/", &outs);
    // Each output published by one completed upload; none left open (the
    // workers, whose reports went unanswered, aborted nothing they had
    // handed over).
    assert_eq!(moto.open_uploads("mr-slow"), Vec::<String>::new());
    let report: serde_json::Value =
        serde_json::from_slice(&moto.get("mr-slow", "out/mr-report.json").unwrap()).unwrap();
    assert_eq!(report["progress"]["failed_attempts"], 0, "{report}");
}

/// Asserts that the claim on `bucket`'s `out/` prefix was released: the
/// lock written back with its lease ended (a plain delete could remove a
/// lock another job had just taken over).
fn assert_released(moto: &Moto, bucket: &str) {
    let lock = moto.get(bucket, "out/_mr-lock").expect("the lock object");
    let lock: serde_json::Value = serde_json::from_slice(&lock).unwrap();
    assert_eq!(lock["expires_ms"], 0, "{lock}");
}

#[test]
fn a_second_job_on_a_prefix_in_use_is_refused_and_the_first_finishes_alone() {
    let t = TestDir::new();
    let Some(moto) = Moto::start(&t) else { return };
    moto.bucket("mr-shared");
    let inputs: Vec<String> = data_files().into_iter().take(3).collect();
    let want = t.sequential("wc", &inputs);
    // The first job's commits are held 4 s each, so it is still at work
    // when the second starts.
    let proxy = slow_completing_proxy(moto.addr.clone(), Duration::from_secs(4));
    let mut cmd = Command::new(bin("mrcoordinator"));
    moto.env(&mut cmd);
    cmd.env("AWS_ENDPOINT_URL", format!("http://{proxy}"))
        .args(["--quiet", "--listen", "127.0.0.1:0", "--no-socket"])
        .args(["--app", "wc", "--workers", "2", "--reduces", "2"])
        .args(["--output-dir", "s3://mr-shared/out"])
        .args(&inputs);
    let mut first = Proc::start(cmd, t.path());
    assert!(
        eventually(Duration::from_secs(30), || moto
            .keys("mr-shared", "out/")
            .contains(&"out/_mr-lock".to_string())),
        "the first job never claimed the prefix"
    );
    // A second job (its own work directory, other inputs) on the same
    // prefix: refused at once, naming the prefix and the holder. Before,
    // it ran, and the two aborted each other's uploads.
    let other = t.write("other.txt", b"entirely different words\n");
    let work = t.path().join("second");
    std::fs::create_dir_all(&work).unwrap();
    let args = ["--listen", "127.0.0.1:0", "--no-socket", "--app", "wc"];
    let mut args = args.to_vec();
    let work_arg = work.display().to_string();
    args.extend(["--workers", "1", "--work-dir", &work_arg]);
    args.extend(["--output-dir", "s3://mr-shared/out", &other]);
    let started = Instant::now();
    let (code, err) = run(&moto, &t, "mrcoordinator", &args);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("s3://mr-shared/out/") && err.contains("in use by another job"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(20), "slow refusal");
    // The first ends alone and right, and lets go of the prefix.
    let st = first.wait_for(Duration::from_secs(120));
    assert!(st.is_some_and(|s| s.success()), "{st:?}");
    let outs = outputs(&moto, "mr-shared", "out/", 2);
    assert_eq!(sorted_lines(&outs), want);
    check_manifest(&moto, "mr-shared", "out/", &outs);
    assert_released(&moto, "mr-shared");
    assert!(moto.open_uploads("mr-shared").is_empty());
}

#[test]
fn an_earlier_runs_outputs_and_a_lapsed_claim_do_not_outlive_a_new_run() {
    let t = TestDir::new();
    let Some(moto) = Moto::start(&t) else { return };
    moto.bucket("mr-again");
    let inputs: Vec<String> = data_files().into_iter().take(3).collect();
    let want = t.sequential("wc", &inputs);
    let base = [
        "--app",
        "wc",
        "--workers",
        "2",
        "--output-dir",
        "s3://mr-again/out",
    ];
    let mut four = base.to_vec();
    four.extend(["--reduces", "4"]);
    four.extend(inputs.iter().map(String::as_str));
    job(&moto, &t, &four);
    assert_eq!(outputs(&moto, "mr-again", "out/", 4).len(), 4);
    // A claim another job holds, renewed an hour ahead: refused.
    let far = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 3_600_000;
    let held = format!(r#"{{"job_id":"other","owner":"elsewhere:/x/mr-job","expires_ms":{far}}}"#);
    let put_lock = |body: &str| {
        moto.boto(&format!(
            "s3.put_object(Bucket='mr-again', Key='out/_mr-lock', Body='{body}'.encode())"
        ));
    };
    put_lock(&held);
    let mut two = base.to_vec();
    two.extend(["--reduces", "2"]);
    two.extend(inputs.iter().map(String::as_str));
    let mut refused = vec!["--listen", "127.0.0.1:0", "--no-socket"];
    refused.extend(&two);
    let (code, err) = run(&moto, &t, "mrcoordinator", &refused);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("elsewhere:/x/mr-job"), "{err}");
    // The same claim, its lease long lapsed (its coordinator died): taken
    // over. The run with R = 2 leaves exactly its two outputs: before,
    // mr-out-2 and mr-out-3 of the earlier run stood beside its _SUCCESS.
    let lapsed = r#"{"job_id":"other","owner":"elsewhere:/x/mr-job","expires_ms":1000}"#;
    put_lock(lapsed);
    job(&moto, &t, &two);
    let outs = outputs(&moto, "mr-again", "out/", 2);
    assert_eq!(sorted_lines(&outs), want);
    check_manifest(&moto, "mr-again", "out/", &outs);
    assert_released(&moto, "mr-again");
    // A released lock is taken at once by the next job.
    job(&moto, &t, &two);
    assert_released(&moto, "mr-again");
}
