//! Progress while a job runs: on a terminal, a live bar (indicatif) with
//! tasks done and running per phase, input throughput, workers, failures and
//! an ETA; otherwise one plain line every few seconds, for logs.

use crate::observe::report::Report;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A running progress display; [`Progress::finish`] clears it.
pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// One line describing `r`: what the bar's message and the plain lines say.
pub fn line(r: &Report) -> String {
    let p = &r.progress;
    let mib = r.counters.get("input bytes").copied().unwrap_or(0) as f64 / (1 << 20) as f64;
    let rate = if r.job.elapsed_s > 0.0 {
        mib / r.job.elapsed_s
    } else {
        0.0
    };
    let mut s = format!(
        "map {}/{} ({} running) · reduce {}/{} ({} running) · {:.0} MiB in, {:.0} MiB/s · {} workers",
        p.maps_done,
        p.maps,
        p.maps_running,
        p.reduces_done,
        p.reduces,
        p.reduces_running,
        mib,
        rate,
        p.workers_alive,
    );
    let reissued = r.tally.abandoned;
    if p.failed_attempts > 0 || reissued > 0 {
        s += &format!(" · {} failed, {} reissued", p.failed_attempts, reissued);
    }
    s
}

/// Fraction of the job done, counting a map and a reduce task alike.
fn done(r: &Report) -> (u64, u64) {
    let p = &r.progress;
    let total = if p.maps == 0 { 0 } else { p.maps + p.reduces };
    ((p.maps_done + p.reduces_done) as u64, total as u64)
}

impl Progress {
    /// Starts showing the reports `report` makes, on stderr.
    pub fn start(report: impl Fn() -> Report + Send + 'static) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let terminal = std::io::stderr().is_terminal();
        // A dedicated thread: drawing must never wait on, or delay, RPCs.
        let thread = std::thread::Builder::new()
            .name("mr-progress".into())
            .spawn(move || {
                if terminal {
                    bar(&stopping, &report)
                } else {
                    plain(&stopping, &report)
                }
            })
            .ok();
        Progress { stop, thread }
    }

    /// Stops and removes the display (before the summary is printed).
    pub fn finish(self) {
        drop(self);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn bar(stop: &AtomicBool, report: &dyn Fn() -> Report) {
    let pb = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(5));
    pb.set_style(
        ProgressStyle::with_template("[{elapsed_precise}] {bar:25.green/white} ETA {eta} · {msg}")
            .expect("template is valid")
            .progress_chars("=> "),
    );
    while !stop.load(Ordering::Relaxed) {
        let r = report();
        let (pos, len) = done(&r);
        pb.set_length(len);
        pb.set_position(pos);
        pb.set_message(line(&r));
        std::thread::sleep(Duration::from_millis(200));
    }
    pb.finish_and_clear();
}

fn plain(stop: &AtomicBool, report: &dyn Fn() -> Report) {
    const EVERY: Duration = Duration::from_secs(5);
    let mut waited = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        waited += Duration::from_millis(100);
        if waited >= EVERY {
            waited = Duration::ZERO;
            let r = report();
            eprintln!(
                "mrcoordinator: [{:.0} s] {}: {}",
                r.job.elapsed_s,
                r.job.state,
                line(&r)
            );
        }
    }
}
