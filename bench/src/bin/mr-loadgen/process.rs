//! The coordinator processes the load generator starts, kills and reaps
//! (with `wait4`, for their CPU time and peak memory), and its own CPU.

use anyhow::{bail, Context as _, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A coordinator process this program started, reaped with its resource use.
pub(crate) struct Coordinator {
    pub(crate) pid: libc::pid_t,
    pub(crate) started: Instant,
    pub(crate) log: PathBuf,
    pub(crate) reaped: bool,
}

/// How a coordinator process ended and what it used.
pub(crate) struct Ended {
    pub(crate) status: std::process::ExitStatus,
    pub(crate) cpu_s: f64,
    pub(crate) wall_s: f64,
    pub(crate) peak_mib: f64,
}

impl Coordinator {
    /// Starts `cmd` (its stderr into `coordinator-<n>.log`) and waits until
    /// it is listening (it writes its address file then).
    pub(crate) async fn start(
        cmd: &mut std::process::Command,
        dir: &Path,
        n: u32,
    ) -> Result<Coordinator> {
        let log = dir.join(format!("coordinator-{n}.log"));
        let child = cmd
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting the coordinator")?;
        let mut c = Coordinator {
            pid: child.id() as libc::pid_t,
            started: Instant::now(),
            log,
            reaped: false,
        };
        // Reaped by pid (wait4, for its resource use), not through `child`.
        drop(child);
        let addr = dir.join("addr");
        while !addr.is_file() {
            if let Some(e) = c.try_reap()? {
                bail!(
                    "the coordinator exited ({}) before listening\n{}",
                    e.status,
                    c.log_tail()
                );
            }
            if c.started.elapsed() > Duration::from_secs(60) {
                bail!(
                    "the coordinator was not listening after 60 s\n{}",
                    c.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(c)
    }

    /// The end of its log, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Reaps it if it has exited (never blocks).
    pub(crate) fn try_reap(&mut self) -> Result<Option<Ended>> {
        let ended = wait4(self.pid, libc::WNOHANG, self.started)?;
        self.reaped |= ended.is_some();
        Ok(ended)
    }

    /// Waits for it to exit (on a blocking thread: wait4 blocks).
    pub(crate) async fn wait(&mut self) -> Result<Ended> {
        let (pid, started) = (self.pid, self.started);
        let ended = tokio::task::spawn_blocking(move || wait4(pid, 0, started)).await??;
        self.reaped = true;
        ended.context("wait4 returned no status")
    }

    /// Kills it (SIGKILL) and reaps it.
    pub(crate) async fn kill(&mut self) -> Result<Ended> {
        // SAFETY: kill(2) on a child this program started and has not reaped.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        self.wait().await
    }
}

impl Drop for Coordinator {
    /// A coordinator left running (an error path) is killed and reaped.
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: as in `kill`; then reap the zombie.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

/// Reaps child `pid` (with `flags`, e.g. WNOHANG) with its resource use;
/// None if it has not exited.
pub(crate) fn wait4(
    pid: libc::pid_t,
    flags: libc::c_int,
    started: Instant,
) -> Result<Option<Ended>> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of the plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 writes only into the two locals passed.
    let r = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
    if r == 0 {
        return Ok(None);
    }
    if r < 0 {
        bail!(
            "waiting for the coordinator: {}",
            std::io::Error::last_os_error()
        );
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    use std::os::unix::process::ExitStatusExt;
    Ok(Some(Ended {
        status: std::process::ExitStatus::from_raw(status),
        cpu_s: secs(usage.ru_utime) + secs(usage.ru_stime),
        wall_s: started.elapsed().as_secs_f64(),
        peak_mib: usage.ru_maxrss as f64 / 1024.0,
    }))
}

/// A loopback port free now (the coordinator keeps it across a restart, as
/// a real coordinator keeps its address).
pub(crate) fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// CPU seconds this process used.
pub(crate) fn self_cpu_s() -> f64 {
    // SAFETY: getrusage writes into a local struct.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}
