//! Polls the coordinator's `/status` once a second while the load runs, as
//! a person's browser or `mrstatus` would: how large and how slow the
//! answer is at the job's size (it must stay small at any size).

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the polls saw.
#[derive(Default)]
pub(crate) struct Polled {
    /// The largest answer, in KiB.
    pub(crate) kib: f64,
    /// The slowest answer, in milliseconds (connect to last byte).
    pub(crate) ms: f64,
    /// Answers read.
    pub(crate) polls: usize,
}

/// A poller running on a thread of its own until [`StatusPoller::finish`].
pub(crate) struct StatusPoller {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Polled>,
}

impl StatusPoller {
    /// Starts polling `http://addr/status`.
    pub(crate) fn start(addr: String) -> StatusPoller {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = Polled::default();
            while !stopping.load(Ordering::SeqCst) {
                // None: not answering (starting, or killed and restarting).
                // Once a second; soon again while it does not answer yet.
                let pause = match get_status(&addr) {
                    Some((bytes, took)) => {
                        seen.kib = seen.kib.max(bytes as f64 / 1024.0);
                        seen.ms = seen.ms.max(took.as_secs_f64() * 1e3);
                        seen.polls += 1;
                        Duration::from_secs(1)
                    }
                    None => Duration::from_millis(50),
                };
                std::thread::sleep(pause);
            }
            seen
        });
        StatusPoller { stop, thread }
    }

    /// Stops polling; what was seen.
    pub(crate) fn finish(self) -> Polled {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap_or_default()
    }
}

/// One `GET /status`: the body's size and the time it took, if answered 200.
fn get_status(addr: &str) -> Option<(usize, Duration)> {
    let began = Instant::now();
    let mut c = std::net::TcpStream::connect(addr).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(c, "GET /status HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    c.read_to_end(&mut raw).ok()?;
    let took = began.elapsed();
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let status_line = raw.split(|&b| b == b'\n').next()?;
    status_line
        .windows(5)
        .any(|w| w == b" 200 ")
        .then_some((raw.len() - head_end - 4, took))
}
