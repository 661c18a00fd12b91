//! A graceful stop. SIGTERM is what Kubernetes sends a pod on scale-down or
//! eviction (SIGINT what a person sends from a terminal): the worker stops
//! asking for work, lets the attempt in hand finish within the drain
//! timeout, and leaves. An attempt still running when the timeout passes
//! (or at a second signal) is cancelled and reported `Cancelled`, which the
//! coordinator takes as handed back: no strike against the task, which is
//! idle again at once. Leaving closes the connection, so the coordinator
//! notices at once rather than after its task timeout.

use std::time::Duration;
use tokio::sync::watch;
use tracing::info;

/// How far a stop has gone. Ordered: each state includes the ones before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StopState {
    /// No stop asked: work as usual.
    Working,
    /// Take no new work; finish the attempt in hand.
    Draining,
    /// Cancel the attempt in hand (handing its task back) and leave.
    HandBack,
}

/// What the task loop watches for a stop; cheap to clone.
#[derive(Clone, Debug)]
pub struct Stop {
    state: watch::Receiver<StopState>,
}

/// The side that asks for a stop (the signal handler, or a test).
#[derive(Debug)]
pub struct StopHandle {
    state: watch::Sender<StopState>,
}

impl Stop {
    /// A stop and the handle that asks for it.
    pub fn new() -> (StopHandle, Stop) {
        let (tx, rx) = watch::channel(StopState::Working);
        (StopHandle { state: tx }, Stop { state: rx })
    }

    /// A stop nothing ever asks for.
    pub fn never() -> Stop {
        let (handle, stop) = Stop::new();
        // The receiver sees the last value forever once the sender is gone.
        drop(handle);
        stop
    }

    /// A stop asked for by SIGTERM or SIGINT: the first starts draining
    /// and hands back what still runs after `drain_timeout`; a second
    /// hands back at once. Must be called inside the tokio runtime.
    pub fn on_signals(drain_timeout: Duration) -> std::io::Result<Stop> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (handle, stop) = Stop::new();
        tokio::spawn(async move {
            let got = next(&mut term, &mut int).await;
            info!(
                "{got}: draining: no new work; the attempt in hand has {drain_timeout:?} to finish"
            );
            handle.ask(StopState::Draining);
            tokio::select! {
                _ = tokio::time::sleep(drain_timeout) => {
                    info!("drain timeout passed: handing back what still runs");
                }
                got = next(&mut term, &mut int) => {
                    info!("{got} again: handing back what still runs");
                }
            }
            handle.ask(StopState::HandBack);
            // Keep the handlers installed: a later signal must not kill
            // the process with its default action mid-report.
            loop {
                next(&mut term, &mut int).await;
            }
        });
        Ok(stop)
    }

    /// How far the stop has gone now.
    pub fn state(&self) -> StopState {
        *self.state.borrow()
    }

    /// Waits until the stop has reached `at` (forever if it never does).
    pub async fn reached(&self, at: StopState) {
        let mut rx = self.state.clone();
        if rx.wait_for(|s| *s >= at).await.is_err() {
            // No one can ask any more: wait forever, as documented.
            std::future::pending::<()>().await;
        }
    }
}

/// The next SIGTERM or SIGINT, by name.
async fn next(
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
) -> &'static str {
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

impl StopHandle {
    /// Moves the stop on to `to` (never back).
    pub fn ask(&self, to: StopState) {
        self.state.send_if_modified(|s| {
            let later = to > *s;
            if later {
                *s = to;
            }
            later
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_stop_only_moves_forward_and_wakes_its_waiters() {
        let (handle, stop) = Stop::new();
        assert_eq!(stop.state(), StopState::Working);
        let waiter = {
            let stop = stop.clone();
            tokio::spawn(async move { stop.reached(StopState::Draining).await })
        };
        handle.ask(StopState::Draining);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
        handle.ask(StopState::HandBack);
        handle.ask(StopState::Draining);
        assert_eq!(stop.state(), StopState::HandBack);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_stop_never_asked_never_wakes() {
        let stop = Stop::never();
        assert_eq!(stop.state(), StopState::Working);
        let waited =
            tokio::time::timeout(Duration::from_millis(50), stop.reached(StopState::Draining))
                .await;
        assert!(waited.is_err());
    }
}
