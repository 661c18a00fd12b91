//! The claim on an output prefix in an object store: one job at a time.
//!
//! Two jobs writing under one `s3://` prefix would abort each other's
//! uploads (each one's end-of-job sweep takes every open upload on an
//! output key for a leftover of its own) and delete each other's
//! `_SUCCESS`. So a job first creates `prefix/_mr-lock` with a conditional
//! PUT (`If-None-Match: *`: of two jobs starting together, exactly one
//! succeeds) naming the job, its owner (host and job directory) and when
//! its lease ends; renews the lease every 20 s with `If-Match` on the ETag
//! it last wrote; and deletes the lock when it ends. A second job is
//! refused, naming the holder. A lock whose lease ran out (its coordinator
//! died) is taken over with `If-Match` on that lock's ETag (of two takers,
//! one wins); a restarted coordinator of the same job (same owner) takes
//! its own lock back at once. A job whose renewal finds the lock taken has
//! lost the prefix and stops without touching it again.

use crate::job::CoordinatorError;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tracing::warn;

/// The lock's name under the prefix.
pub(crate) const LOCK: &str = "_mr-lock";

/// How long a claim holds without renewal: a dead coordinator's prefix is
/// free again after this.
pub(crate) const LEASE: Duration = Duration::from_secs(60);

/// How often a live claim is renewed (a third of the lease: two renewals
/// may fail in a row before it could lapse).
const RENEW_EVERY: Duration = Duration::from_secs(20);

/// What the lock object says.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Lock {
    /// The holding job's id.
    job_id: String,
    /// Who holds it: host and job directory (a restart of the same job
    /// has the same).
    owner: String,
    /// When the lease ends, in milliseconds since the Unix epoch.
    expires_ms: u64,
}

/// Milliseconds since the Unix epoch, now.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A held claim, renewed in the background until released.
pub(crate) struct PrefixClaim {
    url: String,
    state: Arc<ClaimState>,
    renewal: tokio::task::JoinHandle<()>,
}

/// What the claim and its renewal share.
struct ClaimState {
    /// The ETag of the lock as this job last wrote it.
    etag: Mutex<String>,
    /// Whether another job holds the prefix now (or the lease lapsed).
    lost: AtomicBool,
}

impl PrefixClaim {
    /// Claims `prefix` for job `job_id` of `owner`, or says who holds it.
    pub(crate) async fn take(
        prefix: &str,
        job_id: &str,
        owner: &str,
    ) -> Result<PrefixClaim, CoordinatorError> {
        let url = format!("{prefix}{LOCK}");
        let body = |expires_ms| {
            serde_json::to_vec(&Lock {
                job_id: job_id.to_string(),
                owner: owner.to_string(),
                expires_ms,
            })
            .expect("a lock always serializes")
        };
        // A few rounds: each race lost (the lock released, or taken over,
        // between our calls) is looked at again.
        for _ in 0..4 {
            let mine = body(now_ms() + LEASE.as_millis() as u64);
            if let Some(etag) = mr_store::put_if(&url, mine.clone(), None).await? {
                return Ok(Self::held(url, etag, job_id, owner));
            }
            let Some((bytes, etag)) = mr_store::get_object(&url).await? else {
                continue;
            };
            let held: Option<Lock> = serde_json::from_slice(&bytes).ok();
            let Some(held) = held else {
                return Err(CoordinatorError::PrefixInUse {
                    prefix: prefix.to_string(),
                    holder: format!("{url} exists but is not a lock of this framework"),
                });
            };
            let ours = held.owner == owner && held.job_id == job_id;
            let lapsed = held.expires_ms < now_ms();
            if !ours && !lapsed {
                let left = held.expires_ms.saturating_sub(now_ms()).div_ceil(1000);
                return Err(CoordinatorError::PrefixInUse {
                    prefix: prefix.to_string(),
                    holder: format!(
                        "job {} of {}, its lease renewed for another {left} s",
                        held.job_id, held.owner
                    ),
                });
            }
            if lapsed && !ours {
                warn!(%url, holder = %held.owner, "taking over an output prefix whose job stopped renewing its claim");
            }
            if let Some(etag) = mr_store::put_if(&url, mine, Some(etag)).await? {
                return Ok(Self::held(url, etag, job_id, owner));
            }
        }
        Err(CoordinatorError::PrefixInUse {
            prefix: prefix.to_string(),
            holder: "other jobs claiming it at the same moment".into(),
        })
    }

    /// A claim just written with `etag`, its renewal started.
    fn held(url: String, etag: String, job_id: &str, owner: &str) -> PrefixClaim {
        let state = Arc::new(ClaimState {
            etag: Mutex::new(etag),
            lost: AtomicBool::new(false),
        });
        let renewal = tokio::spawn(renew(
            url.clone(),
            state.clone(),
            job_id.to_string(),
            owner.to_string(),
        ));
        PrefixClaim {
            url,
            state,
            renewal,
        }
    }

    /// Whether the prefix was lost: another job took the lock, or the
    /// lease lapsed before a renewal got through. The job must stop and
    /// leave the prefix alone.
    pub(crate) fn lost(&self) -> bool {
        self.state.lost.load(Ordering::Acquire)
    }

    /// Ends the claim: renewal stopped, the lock deleted if it is still
    /// the one this job wrote.
    pub(crate) async fn release(self) {
        let PrefixClaim {
            url,
            state,
            renewal,
        } = self;
        renewal.abort();
        let _ = renewal.await;
        if state.lost.load(Ordering::Acquire) {
            return;
        }
        let mine = state.etag.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let still_mine = matches!(
            mr_store::get_object(&url).await,
            Ok(Some((_, etag))) if etag == mine
        );
        if still_mine {
            if let Err(e) = mr_store::delete_object(&url).await {
                warn!(%url, "cannot remove the claim on the output prefix (it lapses within {LEASE:?}): {e}");
            }
        }
    }
}

/// Renews the claim every [`RENEW_EVERY`] until aborted; marks it lost
/// when the lock was taken, or the lease lapsed without a renewal.
async fn renew(url: String, state: Arc<ClaimState>, job_id: String, owner: String) {
    let mut renewed = now_ms();
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let lock = Lock {
            job_id: job_id.clone(),
            owner: owner.clone(),
            expires_ms: now_ms() + LEASE.as_millis() as u64,
        };
        let body = serde_json::to_vec(&lock).expect("a lock always serializes");
        let etag = state.etag.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match mr_store::put_if(&url, body, Some(etag)).await {
            Ok(Some(new)) => {
                *state.etag.lock().unwrap_or_else(|e| e.into_inner()) = new;
                renewed = now_ms();
            }
            Ok(None) => {
                warn!(%url, "another job took the output prefix: this job stops and leaves it alone");
                state.lost.store(true, Ordering::Release);
                return;
            }
            Err(e) => {
                warn!(%url, "cannot renew the claim on the output prefix: {e}");
                if now_ms().saturating_sub(renewed) >= LEASE.as_millis() as u64 {
                    state.lost.store(true, Ordering::Release);
                    return;
                }
            }
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
