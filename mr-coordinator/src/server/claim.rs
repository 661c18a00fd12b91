//! The claim on an output prefix in an object store: one job at a time.
//!
//! Two jobs writing under one `s3://` prefix would abort each other's
//! uploads (each one's end-of-job sweep takes every open upload on an
//! output key for a leftover of its own) and delete each other's
//! `_SUCCESS`. So a job first creates `prefix/_mr-lock` with a conditional
//! PUT (`If-None-Match: *`: of two jobs starting together, exactly one
//! succeeds) naming the job, its owner (host and job directory) and when
//! its lease ends; renews the lease every 20 s with `If-Match` on the ETag
//! it last wrote; and releases it at the end by writing it again, lease
//! ended (`expires_ms` 0), with `If-Match` (a plain DELETE could remove a
//! lock another job had just taken over; the released lock stays, and the
//! next job takes it at once).
//!
//! A second job is refused, naming the holder. A lock whose lease ran out
//! (its coordinator died) is taken over with `If-Match` on that lock's
//! ETag (of two takers, one wins), [`SKEW`] after its end by the taker's
//! clock. A restarted coordinator of the same job (same owner) takes its
//! own lock back at once. The holder counts itself lost [`MARGIN`] before
//! its lease ends (by its own monotonic clock, from when it sent the last
//! renewal that got through) unless a renewal got through meanwhile: so it
//! has stopped before anyone may take over. A lost job stops without
//! touching the prefix again: no commit, no sweep, no manifest, no report.

use crate::job::CoordinatorError;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tracing::warn;

/// The lock's name under the prefix.
pub(crate) const LOCK: &str = "_mr-lock";

/// How long a claim holds without renewal: a dead coordinator's prefix is
/// free again after this (and [`SKEW`]).
pub(crate) const LEASE: Duration = Duration::from_secs(60);

/// How often a live claim is renewed.
const RENEW_EVERY: Duration = Duration::from_secs(20);

/// How long before its lease ends a holder that could not renew counts
/// itself lost (and stops).
const MARGIN: Duration = Duration::from_secs(15);

/// How long past a lease's end (by the taker's clock) a taker waits before
/// taking the lock over: room for two hosts' clocks to differ.
const SKEW: Duration = Duration::from_secs(10);

/// A failed renewal is tried again this soon (within the lease).
const RETRY: Duration = Duration::from_secs(2);

/// What the lock object says.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Lock {
    /// The holding job's id.
    job_id: String,
    /// Who holds it: host and job directory (a restart of the same job
    /// has the same).
    owner: String,
    /// When the lease ends, in milliseconds since the Unix epoch; 0 once
    /// released.
    expires_ms: u64,
}

/// Milliseconds since the Unix epoch, now.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The lock `job_id` of `owner` writes, its lease ending at `expires_ms`.
fn lock_bytes(job_id: &str, owner: &str, expires_ms: u64) -> Vec<u8> {
    serde_json::to_vec(&Lock {
        job_id: job_id.to_string(),
        owner: owner.to_string(),
        expires_ms,
    })
    .expect("a lock always serializes")
}

/// A held claim, renewed in the background until released (or dropped:
/// then released in the background, best effort).
pub(crate) struct PrefixClaim {
    held: Option<Held>,
}

/// What a claim holds.
struct Held {
    url: String,
    job_id: String,
    owner: String,
    state: Arc<ClaimState>,
    renewal: tokio::task::JoinHandle<()>,
}

/// What the claim, its renewal and the commits share.
struct ClaimState {
    /// The ETag of the lock as this job last wrote it.
    etag: Mutex<String>,
    /// Whether the prefix is lost: another job holds it, or may soon.
    lost: Arc<AtomicBool>,
}

impl ClaimState {
    fn etag(&self) -> String {
        self.etag.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_etag(&self, etag: String) {
        *self.etag.lock().unwrap_or_else(|e| e.into_inner()) = etag;
    }

    fn lose(&self, url: &str, why: &str) {
        warn!(%url, "{why}: this job stops and leaves the output prefix alone");
        self.lost.store(true, Ordering::Release);
    }
}

impl PrefixClaim {
    /// Claims `prefix` for job `job_id` of `owner`, or says who holds it.
    pub(crate) async fn take(
        prefix: &str,
        job_id: &str,
        owner: &str,
    ) -> Result<PrefixClaim, CoordinatorError> {
        let url = format!("{prefix}{LOCK}");
        // A few rounds: each race lost (the lock released, or taken over,
        // between our calls) is looked at again.
        for _ in 0..4 {
            let sent = Instant::now();
            let mine = lock_bytes(job_id, owner, now_ms() + LEASE.as_millis() as u64);
            if let Some(etag) = mr_store::put_if(&url, mine.clone(), None).await? {
                return Ok(Self::held(url, etag, job_id, owner, sent));
            }
            let Some(mr_store::Versioned { bytes, etag }) = mr_store::get_object(&url).await?
            else {
                continue;
            };
            let Ok(held) = serde_json::from_slice::<Lock>(&bytes) else {
                return Err(CoordinatorError::PrefixInUse {
                    prefix: prefix.to_string(),
                    holder: format!("{url} exists but is not a lock of this framework"),
                });
            };
            let ours = held.owner == owner && held.job_id == job_id;
            let released = held.expires_ms == 0;
            let lapsed = held.expires_ms + (SKEW.as_millis() as u64) < now_ms();
            if !(ours || released || lapsed) {
                let left = held.expires_ms.saturating_sub(now_ms()).div_ceil(1000);
                return Err(CoordinatorError::PrefixInUse {
                    prefix: prefix.to_string(),
                    holder: format!(
                        "job {} of {}, its lease renewed for another {left} s",
                        held.job_id, held.owner
                    ),
                });
            }
            if lapsed && !ours && !released {
                warn!(%url, holder = %held.owner, "taking over an output prefix whose job stopped renewing its claim");
            }
            if let Some(etag) = mr_store::put_if(&url, mine, Some(etag)).await? {
                return Ok(Self::held(url, etag, job_id, owner, sent));
            }
        }
        Err(CoordinatorError::PrefixInUse {
            prefix: prefix.to_string(),
            holder: "other jobs claiming it at the same moment".into(),
        })
    }

    /// A claim written with `etag` by a request sent at `sent`, its
    /// renewal started.
    fn held(url: String, etag: String, job_id: &str, owner: &str, sent: Instant) -> PrefixClaim {
        let state = Arc::new(ClaimState {
            etag: Mutex::new(etag),
            lost: Arc::new(AtomicBool::new(false)),
        });
        let renewal = tokio::spawn(renew(
            url.clone(),
            state.clone(),
            job_id.to_string(),
            owner.to_string(),
            sent + LEASE,
        ));
        PrefixClaim {
            held: Some(Held {
                url,
                job_id: job_id.to_string(),
                owner: owner.to_string(),
                state,
                renewal,
            }),
        }
    }

    /// The flag that says the prefix was lost, for those who must not
    /// touch it then (the commits).
    pub(crate) fn lost_flag(&self) -> Arc<AtomicBool> {
        match &self.held {
            Some(h) => h.state.lost.clone(),
            None => Arc::new(AtomicBool::new(true)),
        }
    }

    /// Whether the prefix was lost: another job took the lock, or the
    /// lease came near its end without a renewal. The job must stop and
    /// leave the prefix alone.
    pub(crate) fn lost(&self) -> bool {
        self.held
            .as_ref()
            .is_none_or(|h| h.state.lost.load(Ordering::Acquire))
    }

    /// Ends the claim: renewal stopped, the lock released if it is still
    /// this job's.
    pub(crate) async fn release(mut self) {
        if let Some(h) = self.held.take() {
            h.renewal.abort();
            let _ = h.renewal.await;
            release_lock(&h.url, &h.job_id, &h.owner, &h.state).await;
        }
    }
}

impl Drop for PrefixClaim {
    /// A claim dropped unreleased (a start that failed after claiming):
    /// renewal stops at once, and the lock is released in the background
    /// if a runtime is there to do it (else it lapses after the lease; the
    /// same job run again takes it back at once).
    fn drop(&mut self) {
        if let Some(h) = self.held.take() {
            h.renewal.abort();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = h.renewal.await;
                    release_lock(&h.url, &h.job_id, &h.owner, &h.state).await;
                });
            }
        }
    }
}

/// Writes the lock at `url` released (lease 0), if it is still this job's
/// (by what it says, not by ETag: a renewal in flight when the renewing
/// stopped may have landed since) and the prefix was not lost.
async fn release_lock(url: &str, job_id: &str, owner: &str, state: &ClaimState) {
    if state.lost.load(Ordering::Acquire) {
        return;
    }
    for _ in 0..3 {
        let Ok(Some(mr_store::Versioned { bytes, etag })) = mr_store::get_object(url).await else {
            return;
        };
        let ours = serde_json::from_slice::<Lock>(&bytes)
            .is_ok_and(|l| l.job_id == job_id && l.owner == owner);
        if !ours {
            return;
        }
        match mr_store::put_if(url, lock_bytes(job_id, owner, 0), Some(etag)).await {
            Ok(Some(_)) => return,
            // Changed between the two calls: look again.
            Ok(None) => continue,
            Err(e) => {
                warn!(%url, "cannot release the claim on the output prefix (it lapses within {LEASE:?}): {e}");
                return;
            }
        }
    }
}

/// Renews the claim until aborted: every [`RENEW_EVERY`], a failed try
/// again after [`RETRY`]. Marks it lost when the lock was taken, or when
/// [`MARGIN`] before the lease's end comes without a renewal through
/// (however long a request hangs: each is bounded by that moment).
async fn renew(
    url: String,
    state: Arc<ClaimState>,
    job_id: String,
    owner: String,
    mut valid_until: Instant,
) {
    let mut next = Instant::now() + RENEW_EVERY;
    loop {
        let deadline = valid_until - MARGIN;
        tokio::time::sleep_until(next.min(deadline)).await;
        if Instant::now() >= deadline {
            state.lose(
                &url,
                "the claim on the output prefix could not be renewed in time",
            );
            return;
        }
        let sent = Instant::now();
        let body = lock_bytes(&job_id, &owner, now_ms() + LEASE.as_millis() as u64);
        let put = mr_store::put_if(&url, body.clone(), Some(state.etag()));
        let renewed = match tokio::time::timeout_at(deadline, put).await {
            Err(_) => None,
            Ok(Ok(Some(etag))) => Some(etag),
            Ok(Ok(None)) => {
                // Refused. A retry of a write that had landed is refused
                // too (its ETag changed): the lock as we wrote it is ours.
                let got = tokio::time::timeout_at(deadline, mr_store::get_object(&url)).await;
                match got {
                    Ok(Ok(Some(got))) if got.bytes.as_ref() == body.as_slice() => Some(got.etag),
                    _ => {
                        state.lose(&url, "another job took the output prefix");
                        return;
                    }
                }
            }
            Ok(Err(e)) => {
                warn!(%url, "cannot renew the claim on the output prefix: {e}");
                None
            }
        };
        match renewed {
            Some(etag) => {
                state.set_etag(etag);
                valid_until = sent + LEASE;
                next = sent + RENEW_EVERY;
            }
            None => next = Instant::now() + RETRY,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_reads_back_as_written() {
        let l = Lock {
            job_id: "77068acda22ad1a4".into(),
            owner: "host:/work/mr-job".into(),
            expires_ms: 1_800_000_000_000,
        };
        let bytes = serde_json::to_vec(&l).unwrap();
        assert_eq!(serde_json::from_slice::<Lock>(&bytes).unwrap(), l);
        assert!(serde_json::from_slice::<Lock>(b"not a lock").is_err());
    }
}
