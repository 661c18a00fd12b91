//! The status endpoint while a job runs: JSON, the HTML page (also as a real
//! browser renders it, when chromium-headless-shell is installed) and
//! `mrstatus`.

use crate::util::{bin, data_files, eventually, free_addr, TestDir};
use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

/// GETs `path` from `addr`; (status line, body).
fn get(addr: &str, path: &str) -> (String, String) {
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    write!(c, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut raw = String::new();
    c.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

#[test]
fn a_running_job_shows_its_state_as_json_html_and_in_mrstatus() {
    let t = TestDir::new();
    let files = data_files();
    let status = free_addr();
    let mut args = vec!["--app", "jobcount", "--status-addr", &status];
    args.extend(files.iter().map(String::as_str));
    let (mut c, addr, log) = t.coordinator_logged(&args);
    let _w1 = t.worker(&addr, "jobcount");
    let _w2 = t.worker(&addr, "jobcount");
    // jobcount maps take 2-5 s: catch the job mid-map.
    assert!(eventually(Duration::from_secs(20), || {
        get(&status, "/status").1.contains("\"workers_alive\": 2")
    }));
    let (line, json) = get(&status, "/status");
    assert!(line.contains("200"), "{line}");
    let r: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(r["job"]["app"], "jobcount");
    assert_eq!(r["job"]["state"], "map");
    assert_eq!(r["progress"]["maps"], 8);
    assert_eq!(r["progress"]["reduces"], 10);
    assert!(r["progress"]["maps_running"].as_u64().unwrap() >= 1);

    let (line, html) = get(&status, "/");
    assert!(line.contains("200"));
    assert!(
        html.contains("<title>MapReduce job") && html.contains("map tasks"),
        "{html}"
    );
    assert!(get(&status, "/nope").0.contains("404"));

    let out = Command::new(bin("mrstatus")).arg(&status).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("(jobcount): map") && text.contains("/ 8"),
        "{text}"
    );

    browser_sees_the_page(&t, &status);

    let st = c.wait_for(Duration::from_secs(60)).expect("job ends");
    let log = std::fs::read_to_string(log).unwrap();
    assert!(st.success(), "{log}");
    // Not a terminal: a plain progress line every few seconds, then the summary.
    let progress = log
        .lines()
        .find(|l| l.contains("s] map: map "))
        .unwrap_or_default();
    assert!(
        progress.contains("/8 (") && progress.contains("workers"),
        "{log}"
    );
    assert!(log.contains("job complete"), "{log}");
    // Once the coordinator is gone, mrstatus says where it looked.
    let out = Command::new(bin("mrstatus")).arg(&status).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&status));
}

/// What a person would see: the page as chromium renders it.
fn browser_sees_the_page(t: &TestDir, addr: &str) {
    let shell = "chromium-headless-shell";
    if Command::new(shell).arg("--version").output().is_err() {
        eprintln!("SKIP browser check: {shell} is not installed (apt-get install {shell})");
        return;
    }
    let url = format!("http://{addr}/");
    let mut base = Command::new(shell);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        base.arg("--no-sandbox");
    }
    base.args(["--disable-gpu", "--timeout=5000"]);
    let dom = Command::new(shell)
        .args(base.get_args())
        .args(["--dump-dom", &url])
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("MapReduce job"), "{dom}");
    assert!(
        dom.contains("map tasks") && dom.contains("worker-0") && dom.contains("worker-1"),
        "{dom}"
    );
    assert!(dom.contains("jobcount"), "{dom}");
    let shot = t.path().join("status.png");
    let ok = Command::new(shell)
        .args(base.get_args())
        .arg(format!("--screenshot={}", shot.display()))
        .args(["--window-size=1000,800", &url])
        .output()
        .unwrap()
        .status
        .success();
    assert!(ok);
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 5000,
        "a real picture"
    );
}
