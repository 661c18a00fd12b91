//! Embedded mode: the coordinator starts and supervises local `mrworker`
//! processes, so one command runs a whole job.
//!
//! A worker that dies while the job runs is replaced (its tasks are reissued
//! by the scheduler as for any lost worker). A worker that refuses to start
//! (exit status 2 or 3: bad usage or configuration) fails the job at once,
//! since its replacements would refuse too.

use crate::job::CoordinatorError;
use mr_protocol::join::Endpoint;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use tracing::warn;

/// The local worker processes of an embedded job.
pub struct EmbeddedWorkers {
    bin: PathBuf,
    /// What tells a worker its app: the app's name, or streaming commands.
    app: Vec<String>,
    children: Vec<Child>,
    restarts: u32,
    max_restarts: u32,
    /// Threads per worker: the machine's cores shared among the workers.
    threads: usize,
    /// The job's token, handed to each worker in its environment (not its
    /// command line, which other users can read).
    token: Option<String>,
    /// Where the workers reach the coordinator (its socket, when it has one).
    coordinator: Option<Endpoint>,
    /// The coordinator listens on every interface (see [`Self::spawn`]).
    every_interface: bool,
}

/// Finds `mrworker`: `MR_WORKER_BIN`, else beside the running executable.
fn worker_binary() -> Result<PathBuf, CoordinatorError> {
    if let Some(p) = std::env::var_os("MR_WORKER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()
        .map_err(|e| CoordinatorError::Workers(format!("cannot locate this executable: {e}")))?;
    let bin = exe.with_file_name("mrworker");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(CoordinatorError::Workers(format!(
            "--workers needs the mrworker binary, expected at {}; build it (cargo build --release) or set MR_WORKER_BIN",
            bin.display()
        )))
    }
}

impl EmbeddedWorkers {
    /// No embedded workers: workers are started by the user.
    pub fn none() -> Self {
        Self {
            bin: PathBuf::new(),
            app: Vec::new(),
            children: Vec::new(),
            restarts: 0,
            max_restarts: 0,
            threads: 0,
            token: None,
            coordinator: None,
            every_interface: false,
        }
    }

    /// Starts `n` workers for `app` (the worker's arguments naming its app)
    /// connecting to `coordinator`; `every_interface` when the coordinator
    /// listens on every interface, so remote workers may join. The
    /// machine's cores are shared among the maps that can run at once:
    /// `n`, or `maps_left` if fewer maps are left to run (a re-run whose
    /// other maps came from the cache), so that a lone map is not held to
    /// one worker's share while the others wait.
    pub fn start(
        n: u32,
        maps_left: usize,
        app: &[String],
        coordinator: Endpoint,
        every_interface: bool,
        token: Option<&str>,
    ) -> Result<Self, CoordinatorError> {
        let mut me = Self {
            bin: worker_binary()?,
            app: app.to_vec(),
            children: Vec::new(),
            restarts: 0,
            max_restarts: 10 * n,
            threads: (std::thread::available_parallelism().map_or(1, |c| c.get())
                / (n as usize).min(maps_left).max(1))
            .max(1),
            token: token.map(str::to_string),
            coordinator: Some(coordinator),
            every_interface,
        };
        for _ in 0..n {
            let child = me.spawn()?;
            me.children.push(child);
        }
        Ok(me)
    }

    fn spawn(&self) -> Result<Child, CoordinatorError> {
        let mut cmd = Command::new(&self.bin);
        // Lets a later coordinator of the job tell our workers from its own.
        cmd.env(
            mr_protocol::join::EMBEDDED_BY_ENV,
            std::process::id().to_string(),
        );
        // Its logs look like ours.
        cmd.env(
            mr_protocol::LOG_FORMAT_ENV,
            mr_protocol::log_format().name(),
        );
        if let Some(t) = &self.token {
            cmd.env(mr_protocol::join::ENV, t);
        }
        if let Some(c) = &self.coordinator {
            cmd.arg("--coordinator").arg(c.to_string());
        }
        cmd.arg("--threads").arg(self.threads.to_string());
        if self.every_interface {
            // Listening on every interface: remote workers may join, and
            // must reach these workers' map outputs too. They advertise
            // loopback (how they reach us), which remote reducers read as
            // this host (see fetch.rs), so they must listen on every
            // interface as well.
            cmd.args(["--shuffle-addr", "0.0.0.0:0"]);
        }
        cmd.args(&self.app).spawn().map_err(|e| {
            CoordinatorError::Workers(format!("cannot start {}: {e}", self.bin.display()))
        })
    }

    /// Replaces workers that died; fails when one refused to start or too
    /// many died.
    pub fn supervise(&mut self) -> Result<(), CoordinatorError> {
        for i in 0..self.children.len() {
            let status = match self.children[i].try_wait() {
                Ok(Some(status)) => status,
                _ => continue,
            };
            if matches!(status.code(), Some(2) | Some(mr_protocol::EXIT_REFUSED)) {
                return Err(CoordinatorError::Workers(format!(
                    "an embedded worker refused to start ({status}); see its message above"
                )));
            }
            if self.restarts >= self.max_restarts {
                return Err(CoordinatorError::Workers(format!(
                    "embedded workers died {} times (last: {status}); giving up",
                    self.restarts
                )));
            }
            warn!(%status, "embedded worker died; starting a replacement");
            self.restarts += 1;
            self.children[i] = self.spawn()?;
        }
        Ok(())
    }

    /// Waits up to `grace` for the workers to exit on their own, then kills
    /// the rest. Every child is reaped.
    pub async fn wait_or_kill(&mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline
            && self
                .children
                .iter_mut()
                .any(|c| matches!(c.try_wait(), Ok(None)))
        {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        self.kill_all().await;
    }

    /// Kills and reaps every worker.
    pub async fn kill_all(&mut self) {
        for mut c in self.children.drain(..) {
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
            }
            // Reaping a killed child is immediate; not worth a blocking thread.
            let _ = c.wait();
        }
    }
}

impl Drop for EmbeddedWorkers {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
