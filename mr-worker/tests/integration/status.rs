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
    let w1 = t.worker(&addr, "jobcount");
    let w2 = t.worker(&addr, "jobcount");
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
    // Pages of the attempts and workers: each the stretch of the whole
    // lists it names, with the lists' lengths beside.
    let json = |path: &str| -> serde_json::Value {
        let (line, body) = get(&status, path);
        assert!(line.contains("200"), "{path}: {line} {body}");
        serde_json::from_str(&body).unwrap()
    };
    let all = json("/status?from=0&limit=10000");
    let total = all["listed"]["attempts_total"].as_u64().unwrap();
    assert!(total >= 2, "{all}");
    assert_eq!(all["attempts"].as_array().unwrap().len() as u64, total);
    let page = json("/status?from=1&limit=1&workers_from=1&workers_limit=1");
    assert_eq!(page["listed"]["attempts_from"], 1);
    assert_eq!(page["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(
        page["attempts"][0]["attempt"],
        all["attempts"][1]["attempt"]
    );
    assert_eq!(page["listed"]["workers_total"], 2);
    assert_eq!(page["workers"].as_array().unwrap().len(), 1);
    assert_eq!(page["workers"][0]["id"], all["workers"][1]["id"]);
    // Each worker is named by its host and pid, as it registered.
    let mut named: Vec<String> = all["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            w["label"]
                .as_str()
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    named.sort();
    let mut pids = vec![w1.pid().to_string(), w2.pid().to_string()];
    pids.sort();
    assert_eq!(named, pids, "{all}");
    let (line, body) = get(&status, "/status?limit=lots");
    assert!(
        line.contains("400") && body.contains("limit=lots"),
        "{line} {body}"
    );

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

/// The Prometheus exposition parsed by Prometheus' own Python client, as
/// One sample as Prometheus' own parser reads it: name, labels, value.
type Sample = (String, serde_json::Value, f64);
/// One metric family: name and type.
type Family = (String, String);

/// (sample name, labels, value) and (family, type); None (and a SKIP) when
/// python3 or prometheus_client is missing.
fn parse_metrics(t: &TestDir, text: &str) -> Option<(Vec<Sample>, Vec<Family>)> {
    let file = t.path().join("metrics.txt");
    std::fs::write(&file, text).unwrap();
    let script = "import json,sys\n\
        from prometheus_client.parser import text_string_to_metric_families as parse\n\
        fams=list(parse(open(sys.argv[1]).read()))\n\
        print(json.dumps({'types':[[f.name,f.type] for f in fams],\
        'samples':[[s.name,s.labels,s.value] for f in fams for s in f.samples]}))\n";
    let out = match Command::new("python3")
        .args(["-c", script])
        .arg(&file)
        .output()
    {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                err.contains("No module named 'prometheus_client'"),
                "the parser refused the exposition: {err}"
            );
            eprintln!(
                "SKIP metrics parse: prometheus_client is missing (pip install prometheus_client)"
            );
            return None;
        }
        Err(_) => {
            eprintln!("SKIP metrics parse: python3 is missing");
            return None;
        }
    };
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let samples = v["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s[0].as_str().unwrap().to_string(),
                s[1].clone(),
                s[2].as_f64().unwrap(),
            )
        })
        .collect();
    let types = v["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f[0].as_str().unwrap().to_string(),
                f[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    Some((samples, types))
}

#[test]
fn metrics_health_and_readiness_while_a_job_runs_and_json_logs() {
    let t = TestDir::new();
    let files = data_files();
    let status = free_addr();
    let mut args = vec![
        "--app",
        "jobcount",
        "--status-addr",
        &status,
        "--log-format",
        "json",
    ];
    args.extend(files.iter().map(String::as_str));
    let (mut c, addr, log) = t.coordinator_logged(&args);
    let _w1 = t.worker(&addr, "jobcount");
    let _w2 = t.worker(&addr, "jobcount");
    // Mid-map, after some map is done (jobcount maps take 2-5 s each).
    assert!(eventually(Duration::from_secs(30), || {
        get(&status, "/metrics")
            .1
            .contains("mapreduce_tasks{phase=\"map\",state=\"done\"} 2")
    }));
    let (line, body) = get(&status, "/healthz");
    assert!(line.contains("200") && body == "ok\n", "{line} {body}");
    let (line, body) = get(&status, "/readyz");
    assert!(
        line.contains("200") && body.starts_with("ready"),
        "{line} {body}"
    );
    let (line, text) = get(&status, "/metrics");
    assert!(line.contains("200"), "{line}");
    if let Some((samples, types)) = parse_metrics(&t, &text) {
        let kind = |name: &str| {
            types
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, k)| k.as_str())
                .unwrap_or_else(|| panic!("no family {name}: {types:?}"))
        };
        assert_eq!(kind("mapreduce_tasks"), "gauge");
        assert_eq!(kind("mapreduce_attempts_started"), "counter");
        assert_eq!(kind("mapreduce_task_duration_seconds"), "histogram");
        assert_eq!(kind("mapreduce_journal_fsyncs"), "counter");
        let get = |name: &str, labels: &[(&str, &str)]| -> f64 {
            samples
                .iter()
                .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l[*k] == *v))
                .map(|(_, _, v)| *v)
                .sum()
        };
        // 8 maps in all, by state; two done, the two workers on two more.
        let map_tasks = get("mapreduce_tasks", &[("phase", "map")]);
        assert_eq!(map_tasks, 8.0);
        assert!(get("mapreduce_tasks", &[("phase", "map"), ("state", "done")]) >= 2.0);
        assert_eq!(
            get("mapreduce_tasks", &[("phase", "reduce"), ("state", "idle")]),
            10.0
        );
        assert_eq!(get("mapreduce_workers_connected", &[]), 2.0);
        assert!(get("mapreduce_attempts_started_total", &[("phase", "map")]) >= 3.0);
        // Each done map's winning attempt took 2-5 s.
        let count = get("mapreduce_task_duration_seconds_count", &[("phase", "map")]);
        let sum = get("mapreduce_task_duration_seconds_sum", &[("phase", "map")]);
        assert!(
            count >= 2.0 && sum >= 2.0 * count,
            "{count} maps in {sum} s"
        );
        assert_eq!(
            get(
                "mapreduce_task_duration_seconds_bucket",
                &[("phase", "map"), ("le", "1.0")]
            ),
            0.0
        );
        assert!(get("mapreduce_journal_fsyncs_total", &[]) >= 1.0);
        assert!(get("mapreduce_input_bytes_total", &[]) > 0.0);
        assert_eq!(get("mapreduce_attempt_failures_total", &[]), 0.0);
    }
    let st = c.wait_for(Duration::from_secs(60)).expect("job ends");
    let log = std::fs::read_to_string(log).unwrap();
    assert!(st.success(), "{log}");
    // JSON logs: every line one object with a level and a message, the
    // story of the job included (info by default), and no progress line.
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(events
        .iter()
        .all(|e| e["level"].is_string() && e["message"].is_string()));
    assert!(
        events.iter().any(|e| e["message"] == "worker joined"),
        "{log}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["message"].as_str().unwrap().contains("job complete")),
        "{log}"
    );
}
