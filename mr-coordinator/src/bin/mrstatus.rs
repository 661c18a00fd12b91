//! `mrstatus ADDR`: prints the state of a running job from the coordinator's
//! status endpoint (`mrcoordinator --status-addr ADDR`).

use clap::Parser;
use mr_coordinator::observe::report::Report;
use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

/// Show a running MapReduce job: phase, tasks, workers, counters.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The coordinator's status address (its --status-addr), host:port.
    #[arg(env = "MR_STATUS_ADDR")]
    addr: String,
    /// Print the raw JSON report instead.
    #[arg(long)]
    json: bool,
}

/// GETs `/status` from `addr`; the body on a 200.
fn fetch(addr: &str) -> Result<Vec<u8>, String> {
    let addr = addr.trim_start_matches("http://").trim_end_matches('/');
    let unreachable = |e: std::io::Error| {
        format!("cannot reach the status endpoint at {addr}: {e}; is mrcoordinator running with --status-addr {addr}?")
    };
    let mut conn = std::net::TcpStream::connect(addr).map_err(unreachable)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(unreachable)?;
    write!(conn, "GET /status HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(unreachable)?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).map_err(unreachable)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{addr} did not answer HTTP"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") {
        return Err(format!("{addr} answered '{status}', not a job status"));
    }
    Ok(raw[split + 4..].to_vec())
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
    let body = match fetch(&args.addr) {
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
