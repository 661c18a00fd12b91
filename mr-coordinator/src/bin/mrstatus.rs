//! `mrstatus ADDR`: prints the state of a running job from the coordinator's
//! status endpoint (`mrcoordinator --status-addr ADDR`).

use clap::Parser;
use mr_coordinator::observe::report::Report;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// Show a running MapReduce job: phase, tasks, workers, counters.
#[derive(Parser, Debug)]
#[command(version = mr_build::VERSION)]
struct Args {
    /// The coordinator's status address (its --status-addr), host:port.
    #[arg(env = "MR_STATUS_ADDR")]
    addr: String,
    /// Print the raw JSON report instead.
    #[arg(long)]
    json: bool,
}

/// An error with its causes, outermost first: reqwest's own message names
/// only the URL, its sources say what went wrong (connection refused, ...).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s += &format!(": {c}");
        cause = c.source();
    }
    s
}

/// GETs `/status` from `addr`; the body on a 200.
async fn fetch(addr: &str) -> Result<Vec<u8>, String> {
    let addr = addr.trim_start_matches("http://").trim_end_matches('/');
    // The status address speaks plain HTTP, but the client is built with
    // TLS support, which wants the process's provider chosen first.
    mr_store::use_ring();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
    let response = client
        .get(format!("http://{addr}/status?limit=0&workers_limit=0"))
        .send()
        .await
        .map_err(|e| {
            let e = with_causes(&e);
            format!("cannot reach the status endpoint at {addr}: {e}; is mrcoordinator running with --status-addr {addr}?")
        })?;
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        return Err(format!("{addr} answered '{status}', not a job status"));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("{addr} did not send a whole answer: {}", with_causes(&e)))?;
    Ok(body.to_vec())
}

fn render(r: &Report) -> String {
    let j = &r.job;
    let p = &r.progress;
    let mut s = format!(
        "job {} ({}): {}, {:.1} s elapsed\n",
        j.id,
        j.app.as_deref().unwrap_or("app not yet known"),
        j.state,
        j.elapsed_s
    );
    if let Some(e) = &j.error {
        s += &format!("  error: {e}\n");
    }
    s += &format!(
        "  map tasks     {:>6} / {:<6} done, {} running ({:.1} s)\n",
        p.maps_done, p.maps, p.maps_running, j.map_phase_s
    );
    s += &format!(
        "  reduce tasks  {:>6} / {:<6} done, {} running ({:.1} s)\n",
        p.reduces_done, p.reduces, p.reduces_running, j.reduce_phase_s
    );
    s += &format!(
        "  attempts      {} started, {} failed; {} workers alive\n",
        p.attempts, p.failed_attempts, p.workers_alive
    );
    for (k, v) in r.counters.iter().filter(|(_, v)| **v > 0) {
        s += &format!("  {k:<24}{v:>16}\n");
    }
    s
}

fn main() -> ExitCode {
    let args = Args::parse();
    let fetched = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))
        .and_then(|rt| rt.block_on(fetch(&args.addr)));
    let body = match fetched {
        Ok(b) => b,
        Err(e) => {
            eprintln!("mrstatus: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        let _ = std::io::stdout().write_all(&body);
        return ExitCode::SUCCESS;
    }
    match serde_json::from_slice::<Report>(&body) {
        Ok(r) => {
            print!("{}", render(&r));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mrstatus: {} did not send a job report: {e}", args.addr);
            ExitCode::FAILURE
        }
    }
}
