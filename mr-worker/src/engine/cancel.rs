//! Cooperative cancellation of an attempt: the coordinator tells a worker
//! (in its heartbeat reply) that an attempt it runs was abandoned, e.g. a
//! backup that lost; the worker sets the attempt's [`Cancel`], and the
//! engines, which look at it between chunks and between keys, stop with
//! [`TaskFailure::Cancelled`] and free what they hold.

use mr_protocol::TaskFailure;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Whether an attempt should stop; cheap to clone and to look at.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// Asks the attempt to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether it was asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err(Cancelled)` once asked to stop: for `?` at chunk and key boundaries.
    pub fn check(&self) -> Result<(), TaskFailure> {
        match self.is_cancelled() {
            true => Err(TaskFailure::Cancelled),
            false => Ok(()),
        }
    }
}
