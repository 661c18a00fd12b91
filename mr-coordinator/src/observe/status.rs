//! The status endpoint (`--status-addr`): `GET /status` returns the live job
//! report as JSON, with a page of its attempts and workers
//! (`?from=&limit=&workers_from=&workers_limit=`; by default the latest 100
//! attempts and the first 100 workers, so the answer stays small at any
//! job size), `GET /` a small page showing the same that refreshes
//! itself every two seconds, `GET /metrics` the same figures for Prometheus
//! (see [`crate::observe::metrics`]), and `/healthz` (the process serves)
//! and `/readyz` (the job still takes workers) for a cluster's probes.
//! Served by `tiny_http` on a thread of its own, so a slow or hostile HTTP
//! client never touches the RPC runtime.

use crate::observe::report::{Listing, PageRequest, Report, PAGE_LIMIT};
use std::fmt::Write;
use std::sync::Arc;
use tiny_http::{Header, Method, Response, Server};

/// A running status server; stops when dropped.
pub struct StatusServer {
    server: Arc<Server>,
    thread: Option<std::thread::JoinHandle<()>>,
    addr: std::net::SocketAddr,
}

/// Why the status page cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The address cannot be bound.
    #[error("cannot serve status on --status-addr {addr}: {reason}; choose another address")]
    Bind {
        /// The address given.
        addr: String,
        /// What the HTTP server said.
        reason: String,
    },
    /// The address is not an IP address and port.
    #[error("--status-addr {0} is not an IP address and port")]
    NotIp(String),
    /// The serving thread could not start.
    #[error("cannot start the status thread: {0}")]
    Thread(std::io::Error),
}

impl StatusServer {
    /// Binds `addr` and serves reports made by `report` until dropped,
    /// each listing what the request asks for.
    pub fn start(
        addr: &str,
        report: impl Fn(Listing) -> Report + Send + 'static,
    ) -> Result<StatusServer, StatusError> {
        let server = Server::http(addr).map_err(|e| StatusError::Bind {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?;
        let bound = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| StatusError::NotIp(addr.to_string()))?;
        let server = Arc::new(server);
        let serving = server.clone();
        let thread = std::thread::Builder::new()
            .name("mr-status".into())
            .spawn(move || {
                // Ends when `unblock` is called on drop.
                for req in serving.incoming_requests() {
                    let response = respond(req.method(), req.url(), &report);
                    let _ = req.respond(response);
                }
            })
            .map_err(StatusError::Thread)?;
        Ok(StatusServer {
            server,
            thread: Some(thread),
            addr: bound,
        })
    }

    /// The address actually bound.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static header is valid")
}

/// The page of attempts and workers `query` (a URL's part after `?`) asks
/// for, or what is wrong with it.
pub fn page_request(query: &str) -> Result<PageRequest, String> {
    let mut q = PageRequest::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let n: u64 = value.parse().map_err(|_| {
            format!("{key}={value}: give a whole number, e.g. /status?from=0&limit=100")
        })?;
        let count = |n: u64| {
            usize::try_from(n)
                .ok()
                .filter(|&n| n <= PAGE_LIMIT)
                .ok_or_else(|| format!("{key}={n}: at most {PAGE_LIMIT} a page"))
        };
        match key {
            "from" => q.attempts_from = Some(n),
            "limit" => q.attempts = count(n)?,
            "workers_from" => q.workers_from = usize::try_from(n).unwrap_or(usize::MAX),
            "workers_limit" => q.workers = count(n)?,
            _ => {
                return Err(format!(
                    "unknown parameter {key}: use from, limit, workers_from or workers_limit"
                ))
            }
        }
    }
    Ok(q)
}

fn respond(
    method: &Method,
    url: &str,
    report: &dyn Fn(Listing) -> Report,
) -> Response<std::io::Cursor<Vec<u8>>> {
    if *method != Method::Get && *method != Method::Head {
        return Response::from_string("only GET is served here\n").with_status_code(405);
    }
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    match path {
        "/status" => match page_request(query) {
            Ok(q) => {
                let json = serde_json::to_vec_pretty(&report(Listing::Page(q))).unwrap_or_default();
                Response::from_data(json).with_header(header("Content-Type", "application/json"))
            }
            Err(e) => Response::from_string(format!("{e}\n")).with_status_code(400),
        },
        "/" => {
            let q = PageRequest {
                attempts: LATEST_SHOWN,
                ..PageRequest::default()
            };
            Response::from_string(page(&report(Listing::Page(q))))
                .with_header(header("Content-Type", "text/html; charset=utf-8"))
        }
        // The figures only: the metrics are kept as totals, never counted
        // from the lists.
        "/metrics" => {
            Response::from_string(crate::observe::metrics::render(&report(Listing::Figures)))
                .with_header(header(
                    "Content-Type",
                    crate::observe::metrics::CONTENT_TYPE,
                ))
        }
        // Alive: this thread answers.
        "/healthz" => Response::from_string("ok\n"),
        // Ready while the job takes workers; once it has ended, a probe
        // sees it at once (the process is about to exit).
        "/readyz" => {
            let r = report(Listing::Figures);
            let state = r.job.state;
            let all_done = r.progress.reduces > 0 && r.progress.reduces_done == r.progress.reduces;
            let over = all_done || matches!(state.as_str(), "succeeded" | "failed" | "interrupted");
            let code = if over { 503 } else { 200 };
            Response::from_string(format!(
                "{}: {state}\n",
                if over { "not ready" } else { "ready" }
            ))
            .with_status_code(code)
        }
        _ => Response::from_string("not found: try /, /status, /metrics, /healthz or /readyz\n")
            .with_status_code(404),
    }
}

/// Attempts the HTML page shows: the latest.
const LATEST_SHOWN: usize = 50;

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn bar(done: usize, total: usize) -> String {
    let pct = if total == 0 {
        0.0
    } else {
        100.0 * done as f64 / total as f64
    };
    format!("<div class=bar><div style=\"width:{pct:.1}%\"></div></div> {done} / {total}")
}

/// The status page: plain server-rendered HTML that reloads itself, so it
/// needs no script and shows the same to a browser and to `--dump-dom`.
pub fn page(r: &Report) -> String {
    let j = &r.job;
    let p = &r.progress;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=utf-8>\
         <meta http-equiv=refresh content=2><title>MapReduce job {id}: {state}</title>\
         <style>body{{font:14px sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{padding:2px 10px;text-align:left}}td.n{{text-align:right}}\
         .bar{{display:inline-block;width:300px;height:12px;background:#ddd;vertical-align:middle}}\
         .bar div{{height:100%;background:#3a7}}.failed{{color:#b00}}</style></head><body>\
         <h1>MapReduce job {id}</h1>\
         <p id=state>State: <b>{state}</b>{error} &middot; app {app} &middot; {inputs} input files \
         &middot; {elapsed:.1} s elapsed &middot; outputs in {out}</p>",
        id = esc(&j.id),
        state = esc(&j.state),
        error = j
            .error
            .as_deref()
            .map(|e| format!(" <span class=failed>{}</span>", esc(e)))
            .unwrap_or_default(),
        app = esc(j.app.as_deref().unwrap_or("(not yet known)")),
        inputs = j.inputs,
        elapsed = j.elapsed_s,
        out = esc(&j.output_dir),
    );
    let _ = write!(
        h,
        "<table id=progress><tr><th>map tasks</th><td>{}</td><td>{} running</td></tr>\
         <tr><th>reduce tasks</th><td>{}</td><td>{} running</td></tr>\
         <tr><th>attempts</th><td>{} started, {} failed</td><td></td></tr>\
         <tr><th>workers</th><td>{} alive</td><td></td></tr></table>",
        bar(p.maps_done, p.maps),
        p.maps_running,
        bar(p.reduces_done, p.reduces),
        p.reduces_running,
        p.attempts,
        p.failed_attempts,
        p.workers_alive,
    );
    let l = &r.listed;
    let shown = if r.workers.len() < l.workers_total {
        format!(
            " <small>({} to {} of {})</small>",
            l.workers_from + 1,
            l.workers_from + r.workers.len(),
            l.workers_total
        )
    } else {
        String::new()
    };
    let _ = write!(h, "<h2>Workers{shown}</h2><table id=workers><tr><th>id</th><th>host:pid</th><th>state</th><th>attempts</th></tr>");
    for w in &r.workers {
        let _ = write!(
            h,
            "<tr><td>worker-{}</td><td>{}</td><td>{}</td><td class=n>{}</td></tr>",
            w.id,
            esc(&w.label),
            if w.alive { "alive" } else { "gone" },
            w.attempts
        );
    }
    h.push_str("</table><h2>Counters</h2><table id=counters>");
    for (k, v) in &r.counters {
        let _ = write!(h, "<tr><th>{}</th><td class=n>{v}</td></tr>", esc(k));
    }
    let _ = write!(
        h,
        "</table><h2>Latest attempts <small>({} started)</small></h2><table id=attempts>",
        l.attempts_total
    );
    h.push_str("<tr><th>attempt</th><th>task</th><th>worker</th><th>start (s)</th><th>end (s)</th><th>outcome</th></tr>");
    for a in r.attempts.iter().rev().take(LATEST_SHOWN) {
        let _ = write!(
            h,
            "<tr><td>attempt-{}</td><td>{}-{}</td><td>worker-{}</td><td class=n>{:.2}</td><td class=n>{}</td><td class={}>{}</td></tr>",
            a.attempt,
            a.phase.as_str(),
            a.task,
            a.worker,
            a.start_s,
            a.end_s.map(|e| format!("{e:.2}")).unwrap_or_default(),
            a.outcome.as_str(),
            a.outcome.as_str(),
        );
    }
    h.push_str("</table></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_asked_for_in_the_query() {
        assert_eq!(page_request("").unwrap(), PageRequest::default());
        let q = page_request("from=10&limit=5&workers_from=2&workers_limit=3").unwrap();
        assert_eq!(
            q,
            PageRequest {
                attempts_from: Some(10),
                attempts: 5,
                workers_from: 2,
                workers: 3,
            }
        );
        let e = page_request("limit=100000").unwrap_err();
        assert!(e.contains("at most 10000"), "{e}");
        let e = page_request("from=x").unwrap_err();
        assert!(e.contains("from=x") && e.contains("whole number"), "{e}");
        let e = page_request("size=3").unwrap_err();
        assert!(e.contains("unknown parameter size"), "{e}");
    }
}
