//! Strangers at the coordinator's port: workers without the job's token,
//! garbage bytes, half-open connections, stray and stale RPCs. None may
//! join, crash or stall the job.

use crate::util::{bin, data_files, sorted_lines, Proc, TestDir};
use mr_protocol::{
    AttemptId, CoordinatorClient, Counters, ProtocolError, RegisterError, RegisterRequest,
    ReportAck, TaskOutput, WorkerId,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;
use tarpc::context;

fn request(token: &str) -> RegisterRequest {
    RegisterRequest {
        app: "wc".into(),
        whole_file: false,
        record_size: 0,
        total_order: false,
        host: "test".into(),
        pid: 1,
        capacity: 1,
        token: token.into(),
        embedded_by: None,
        build: mr_build::BUILD_ID.into(),
    }
}

async fn client(addr: &str) -> CoordinatorClient {
    crate::util::join_coordinator(addr).await.0
}

/// A coordinator killed without cleaning up leaves its join secret
/// published for its port; a later coordinator without a token on that port
/// must not let local workers find it (they would try its TLS pin).
#[test]
fn a_dead_coordinators_published_secret_does_not_mislead_the_next_on_its_port() {
    let t = TestDir::new();
    let files = data_files();
    let want = t.sequential("wc", &files);
    let addr = crate::util::free_addr();
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let stale = mr_protocol::join::JoinSecret::parse(&format!(
        "mrj1:{}:{}",
        "ab".repeat(16),
        "cd".repeat(32)
    ))
    .unwrap();
    mr_protocol::join::publish(port, &stale.to_string()).unwrap();
    let mut cmd = Command::new(bin("mrcoordinator"));
    cmd.args([
        "--quiet",
        "--no-socket",
        "--no-tls",
        "--no-token",
        "--app",
        "wc",
    ])
    .args(["--listen", &addr])
    .args(&files);
    let mut c = Proc::start(cmd, t.path());
    assert!(
        crate::util::eventually(Duration::from_secs(10), || TcpStream::connect(&addr)
            .is_ok()),
        "the coordinator is not listening"
    );
    let wlog = t.path().join("worker.log");
    let mut w = Command::new(bin("mrworker"));
    w.args(["--coordinator", &addr, "wc"]);
    let _w = Proc::start_logged(w, t.path(), &wlog);
    let st = c.wait_for(Duration::from_secs(60));
    assert!(
        st.is_some_and(|s| s.success()),
        "{st:?}; the worker said:\n{}",
        std::fs::read_to_string(&wlog).unwrap_or_default()
    );
    assert_eq!(sorted_lines(&t.outputs(t.path(), 10)), want);
    assert!(
        mr_protocol::join::discover(port).is_none(),
        "the stale secret is gone"
    );
}

#[test]
fn strangers_garbage_and_stale_rpcs_neither_join_nor_stall_the_job() {
    let t = TestDir::new();
    let files = data_files();
    let mut args = vec!["--app", "wc"];
    args.extend(files.iter().map(String::as_str));
    let (mut c, addr) = t.coordinator(&args);
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let join = mr_protocol::join::discover(port).expect("join secret published for local workers");
    let token = mr_protocol::join::JoinSecret::parse(&join).unwrap().token;

    // Garbage: the server drops that connection (and only that one).
    let mut junk = TcpStream::connect(&addr).unwrap();
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    junk.write_all(&noise).unwrap();
    junk.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // At most a TLS alert comes back, then the end of the stream.
    let mut back = Vec::new();
    let closed = match junk.read_to_end(&mut back) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(
        closed && back.len() < 64,
        "the coordinator hung up on garbage: {back:?}"
    );
    // Half-open: a frame header promising bytes that never come, held open
    // for the whole job.
    let mut half = TcpStream::connect(&addr).unwrap();
    half.write_all(&[0, 0, 1, 0, 1, 2, 3]).unwrap();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let stranger = client(&addr).await;
        // No token, a wrong one: refused, with a hint where to find it.
        for bad in ["", "0123456789abcdef0123456789abcdef"] {
            match stranger
                .register(context::current(), request(bad))
                .await
                .unwrap()
            {
                Err(RegisterError::BadToken { hint }) => assert!(hint.contains(".token"), "{hint}"),
                other => panic!("a worker without the token joined: {other:?}"),
            }
        }
        // Naming a worker id it never registered: refused on every call.
        let w = WorkerId(0);
        let r = stranger.request_task(context::current(), w).await.unwrap();
        assert_eq!(r.err(), Some(ProtocolError::UnknownWorker(w)));
        let out = Ok(TaskOutput::Reduce(Counters::default()));
        let r = stranger
            .report(context::current(), w, AttemptId(0), out, true)
            .await
            .unwrap();
        assert_eq!(r.err(), Some(ProtocolError::UnknownWorker(w)));
        let r = stranger
            .heartbeat(context::current(), w, vec![])
            .await
            .unwrap();
        assert!(r.is_err());

        // The token, but another build of the framework: refused, naming
        // both builds (its outputs could differ from the cache keys').
        let mut other = request(&token);
        other.build = "0123456789ab".repeat(5);
        match stranger.register(context::current(), other).await.unwrap() {
            Err(e @ RegisterError::OtherBuild { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(mr_build::short()) && msg.contains("0123456789ab"),
                    "{msg}"
                );
            }
            other => panic!("a worker of another build joined: {other:?}"),
        }
        // A real registration, then a report for an attempt it never got.
        let member = client(&addr).await;
        let settings = member
            .register(context::current(), request(&token))
            .await
            .unwrap()
            .expect("the right token is accepted");
        let out = Ok(TaskOutput::Reduce(Counters::default()));
        let ack = member
            .report(
                context::current(),
                settings.worker,
                AttemptId(123_456),
                out,
                false,
            )
            .await
            .unwrap()
            .map(|r| (r.ack, r.next.is_none()));
        assert_eq!(ack, Ok((ReportAck::Ignored, true)));
        // Another connection cannot act for that worker.
        let r = stranger
            .request_task(context::current(), settings.worker)
            .await
            .unwrap();
        assert_eq!(r.err(), Some(ProtocolError::UnknownWorker(settings.worker)));
    });

    // Real workers (finding the token on their own) still finish the job.
    let _w1 = t.worker(&addr, "wc");
    let _w2 = t.worker(&addr, "wc");
    let st = c.wait_for(Duration::from_secs(60)).expect("job finishes");
    assert!(st.success());
    assert_eq!(
        sorted_lines(&t.outputs(t.path(), 10)),
        t.sequential("wc", &files)
    );
    drop(half);
    assert!(
        mr_protocol::join::discover(port).is_none(),
        "the published token is removed at the end"
    );
}

#[test]
fn a_worker_needs_the_token_and_may_be_given_it() {
    let t = TestDir::new();
    let f = t.write("in.txt", b"alpha beta alpha\n");
    let mut cmd = Command::new(bin("mrcoordinator"));
    let addr_file = t.path().join("addr");
    cmd.args([
        "--quiet",
        "--listen",
        "127.0.0.1:0",
        "--app",
        "wc",
        "--token",
        "s3cret-value",
    ])
    .arg("--addr-file")
    .arg(&addr_file)
    .arg(&f);
    let mut c = Proc::start(cmd, t.path());
    assert!(crate::util::eventually(Duration::from_secs(10), || {
        addr_file.exists()
    }));
    let addr = std::fs::read_to_string(&addr_file)
        .unwrap()
        .trim()
        .to_string();
    // The join secret workers elsewhere need: the given token and the
    // fingerprint of the job's certificate, kept in the job directory.
    let join = std::fs::read_to_string(t.path().join("mr-job/token")).unwrap();
    let (token, pin) = join.trim().rsplit_once(':').unwrap();
    assert_eq!(token, "mrj1:s3cret-value");
    assert_eq!(pin.len(), 64);
    let refused = |secret: &str| {
        let out = Command::new(bin("mrworker"))
            .args(["--coordinator", &addr, "--token", secret, "wc"])
            .current_dir(t.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // A worker told a wrong token is refused with exit status 3 and a
    // message saying what to do.
    let (code, msg) = refused(&format!("mrj1:wrong:{pin}"));
    assert_eq!(code, Some(3), "{msg}");
    assert!(msg.contains("token") && msg.contains("--token"), "{msg}");
    // The right token in clear: the coordinator hangs up on plain TCP, and
    // the worker says to give it the join secret.
    let (code, msg) = refused("s3cret-value");
    assert_eq!(code, Some(3), "{msg}");
    assert!(
        msg.contains("join secret") && msg.contains("mr-job/token"),
        "{msg}"
    );
    // Another certificate's fingerprint: the worker never sends the token
    // to a server that is not the job's.
    let other = format!("mrj1:s3cret-value:{}", "0".repeat(64));
    let (code, msg) = refused(&other);
    assert_ne!(code, Some(0), "{msg}");
    assert!(msg.contains("not the pinned"), "{msg}");
    // Nor is a bare token ever sent to another host in clear (TEST-NET-1:
    // the worker stops before connecting anywhere).
    let out = Command::new(bin("mrworker"))
        .args([
            "--coordinator",
            "192.0.2.1:7878",
            "--token",
            "s3cret-value",
            "wc",
        ])
        .current_dir(t.path())
        .output()
        .unwrap();
    let msg = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains("in clear") && msg.contains("join secret"),
        "{msg}"
    );
    let (code, msg) = refused("mrj1:s3cret-value:xyz");
    assert_eq!(code, Some(2), "{msg}");
    assert!(
        msg.contains("MR_TOKEN") && msg.contains("fingerprint"),
        "{msg}"
    );
    let mut w = Proc::start(
        {
            let mut cmd = Command::new(bin("mrworker"));
            cmd.env("MR_TOKEN", join.trim())
                .args(["--coordinator", &addr, "wc"]);
            cmd
        },
        t.path(),
    );
    assert!(c
        .wait_for(Duration::from_secs(30))
        .expect("job finishes")
        .success());
    assert!(w
        .wait_for(Duration::from_secs(30))
        .expect("worker exits")
        .success());
    assert_eq!(
        sorted_lines(&t.outputs(t.path(), 10)),
        vec![b"alpha 2".to_vec(), b"beta 1".to_vec()]
    );
}

#[test]
fn listening_beyond_loopback_without_a_token_is_said_loudly() {
    let t = TestDir::new();
    let f = t.write("in.txt", b"x\n");
    // Binds all interfaces but sends nothing anywhere: SIGTERM ends it.
    let mut cmd = Command::new(bin("mrcoordinator"));
    cmd.args(["--listen", "0.0.0.0:0", "--no-token", "--app", "wc", &f]);
    let log = t.path().join("log");
    let c = Proc::start_logged(cmd, t.path(), &log);
    let said = crate::util::eventually(Duration::from_secs(10), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("NON-LOOPBACK"))
    });
    c.signal("TERM");
    assert!(
        said,
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("--no-token") && text.contains("any host"),
        "{text}"
    );
}

/// The coordinator's resident memory now, in KiB (0 if it is gone).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_string();
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

#[test]
fn a_flood_of_strangers_neither_exhausts_the_coordinator_nor_stops_an_honest_job() {
    mr_protocol::raise_open_file_limit();
    let t = TestDir::new();
    let files = data_files();
    let want = t.sequential("wc", &files);
    // In clear, so the strangers' frames need no handshake (a TLS stream
    // is guarded the same way, after its handshake).
    let mut args = vec!["--no-socket", "--no-tls", "--no-token", "--app", "wc"];
    args.extend(files.iter().map(String::as_str));
    let (mut c, addr) = t.coordinator(&args);
    // 2,000 connections that never say a word.
    let idle: Vec<TcpStream> = (0..2000)
        .map_while(|_| TcpStream::connect(&addr).ok())
        .collect();
    assert!(idle.len() >= 1000, "only {} connections", idle.len());
    // Eight strangers sending 60 MiB frames, again and again.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooders: Vec<_> = (0..8)
        .map(|_| {
            let (addr, stop) = (addr.clone(), stop.clone());
            std::thread::spawn(move || {
                let chunk = vec![0x5au8; 1 << 20];
                let mut frames = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let Ok(mut s) = TcpStream::connect(&addr) else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    frames += 1;
                    let _ = s.write_all(&(60u32 << 20).to_be_bytes());
                    for _ in 0..60 {
                        if s.write_all(&chunk).is_err() {
                            break;
                        }
                    }
                }
                frames
            })
        })
        .collect();
    // The flood alone for a while, its peak sampled.
    let pid = c.pid();
    let mut peak = 0;
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(100));
        peak = peak.max(rss_kib(pid));
    }
    // An honest worker joins and the job finishes, right.
    let wlog = t.path().join("worker.log");
    let mut wcmd = Command::new(bin("mrworker"));
    wcmd.env("RUST_LOG", "info")
        .args(["--coordinator", &addr, "wc"]);
    let _w = Proc::start_logged(wcmd, t.path(), &wlog);
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let status = loop {
        peak = peak.max(rss_kib(pid));
        if let Some(s) = c.wait_for(Duration::from_millis(100)) {
            break Some(s);
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let frames: u32 = flooders.into_iter().map(|f| f.join().unwrap()).sum();
    drop(idle);
    eprintln!(
        "flood: {frames} frames of 60 MiB tried; coordinator peak {} MiB",
        peak >> 10
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "the job did not finish: {status:?}; the worker said:\n{}",
        std::fs::read_to_string(&wlog).unwrap_or_default()
    );
    assert_eq!(sorted_lines(&t.outputs(t.path(), 10)), want);
    assert!(frames >= 8, "the strangers sent {frames} frames");
    // Before the bounds, each stranger's frame header had the codec
    // reserve 60 MiB.
    assert!(peak < 256 << 10, "coordinator peaked at {} MiB", peak >> 10);
}
