//! Outputs in an object store (`--output-dir s3://BUCKET/prefix/`): the
//! commit without rename, in the manner of S3A's magic committer.
//!
//! Each reduce attempt uploads `prefix/mr-out-<r>` as a multipart upload it
//! does not complete, and reports it. Publishing one is three steps:
//! journal `Completing(r, attempt, upload)`, complete the upload (the
//! object appears whole or not at all), journal `ReduceDone`. The
//! scheduler holds the task in "committing" meanwhile, so no other attempt
//! can win it and a lost worker does not make it run again; every other
//! attempt's upload is aborted when its report comes (or by its worker).
//! A restarted coordinator finishes what its journal left between the
//! steps ([`recover`]). At the end of the job a sweep aborts every upload
//! still open on the job's output keys (a worker killed mid-upload never
//! reported its own), then `prefix/_SUCCESS` is written last: a JSON
//! manifest of the outputs, so its presence means the output is whole.

use super::shared::Shared;
use crate::journal::{Done, Journal, Record, Recovered};
use crate::scheduler::{TaskRef, Verdict};
use mr_protocol::{names, AttemptId, Counters, OutputUpload, ReduceTaskId, TaskFailure, WorkerId};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tracing::{info, warn};

/// Name of the manifest written last under the output prefix.
pub const SUCCESS: &str = "_SUCCESS";

/// The object URL of output `r` under `prefix`.
pub(crate) fn output_url(prefix: &str, r: ReduceTaskId) -> String {
    names::output_object(prefix, r)
}

/// A job's outputs in an object store while it runs: the prefix, whether
/// the claim on it was lost, and the outputs published so far (a leaf
/// lock: see `Shared`).
pub(crate) struct StoreOutputs {
    /// The prefix (`s3://BUCKET/dir/`).
    pub(crate) prefix: String,
    /// Set when the job lost its claim on the prefix: nothing more may be
    /// published there.
    lost: Arc<std::sync::atomic::AtomicBool>,
    /// Published outputs, by task (for the `_SUCCESS` manifest).
    published: Mutex<BTreeMap<ReduceTaskId, OutputUpload>>,
}

impl StoreOutputs {
    /// Outputs under `prefix`, held by the claim whose loss sets `lost`,
    /// with those a recovered run had `published` already.
    pub(crate) fn new(
        prefix: String,
        lost: Arc<std::sync::atomic::AtomicBool>,
        published: BTreeMap<ReduceTaskId, OutputUpload>,
    ) -> StoreOutputs {
        StoreOutputs {
            prefix,
            lost,
            published: Mutex::new(published),
        }
    }

    /// Whether the claim on the prefix was lost.
    fn claim_lost(&self) -> bool {
        self.lost.load(std::sync::atomic::Ordering::Acquire)
    }

    fn published(&self) -> std::sync::MutexGuard<'_, BTreeMap<ReduceTaskId, OutputUpload>> {
        self.published.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The outputs published so far.
    pub(crate) fn published_so_far(&self) -> BTreeMap<ReduceTaskId, OutputUpload> {
        self.published().clone()
    }
}

impl Shared {
    /// Publishes the output a reduce attempt uploaded, if the scheduler
    /// takes it: see the module's description. Returns the verdict.
    ///
    /// The upload's URL is checked before anything else: only the task's
    /// own output key is journaled, completed or aborted (a URL a worker
    /// made up is never touched with the coordinator's credentials). The
    /// commit then runs in a task of its own, to its end: the report that
    /// asked for it may time out (the store may take longer than the
    /// caller's deadline) and its handler be dropped, but a commit never
    /// stops halfway with the reduce left "committing" for ever.
    pub(crate) async fn publish(
        self: &Arc<Self>,
        worker: WorkerId,
        attempt: AttemptId,
        counters: Counters,
        upload: OutputUpload,
    ) -> Verdict {
        let Some(prefix) = self.store.as_ref().map(|s| s.prefix.clone()) else {
            // Not a job with outputs in a store: no upload of this job's,
            // so nothing of the worker's to touch.
            warn!(%attempt, url = %upload.url, "ignored an upload reported to a job whose outputs are not in a store");
            return Verdict::Ignored;
        };
        let begun = {
            let mut s = self.sched();
            s.touch(worker, Instant::now());
            match s.reported_task(worker, attempt) {
                Some(TaskRef::Reduce(r)) if upload.url == output_url(&prefix, r) => {
                    match s.begin_commit(worker, attempt) {
                        // Queued under the lock, so the journal's order is the state's.
                        Some(r) => Begun::Commit(
                            r,
                            self.journal.submit_boxed(Record::Completing(
                                r,
                                attempt,
                                counters.clone(),
                                upload.clone(),
                            )),
                        ),
                        // This very attempt is being committed (a report
                        // repeated): that commit owns the upload.
                        None if s.committing(r) == Some(attempt) => return Verdict::Ignored,
                        // Lost the race (or the task failed): its upload,
                        // checked to be this job's, is not needed.
                        None => Begun::Discard,
                    }
                }
                Some(TaskRef::Reduce(r)) => {
                    // Only the task's own output key may be published; a
                    // URL of anything else is neither journaled nor aborted.
                    let failure = TaskFailure::Io {
                        path: upload.url.clone(),
                        reason: format!(
                            "uploaded to the wrong object (expected {})",
                            output_url(&prefix, r)
                        ),
                    };
                    warn!(%attempt, "{failure}");
                    return match s.begin_commit(worker, attempt) {
                        Some(r) => s.finish_commit(r, attempt, Err(failure), Instant::now()),
                        None => Verdict::Ignored,
                    };
                }
                _ => Begun::Unknown,
            }
        };
        let (r, durable) = match begun {
            Begun::Commit(r, durable) => (r, durable),
            Begun::Discard => {
                discard(&upload).await;
                return Verdict::Ignored;
            }
            Begun::Unknown => {
                // Not an attempt this worker runs: abort it only if it is
                // one of the job's output keys (the end-of-job sweep would).
                if is_job_output(&prefix, self.reduces, &upload.url) {
                    discard(&upload).await;
                }
                return Verdict::Ignored;
            }
        };
        let shared = self.clone();
        let commit = tokio::spawn(async move {
            let mut guard = CommitGuard {
                shared: &shared,
                r,
                attempt,
                done: false,
            };
            let verdict = shared.commit(r, attempt, counters, upload, durable).await;
            guard.done = true;
            verdict
        });
        // Awaited here only to answer the report; dropping this wait (the
        // caller's deadline passed) leaves the commit running.
        commit.await.unwrap_or_else(|e| {
            warn!(%attempt, "the commit of reduce {r} ended abnormally: {e}");
            Verdict::Ignored
        })
    }

    /// The commit's steps, after the `Completing` record was submitted:
    /// wait for it to be durable, complete the upload, record the verdict.
    async fn commit(
        &self,
        r: ReduceTaskId,
        attempt: AttemptId,
        counters: Counters,
        upload: OutputUpload,
        durable: crate::journal::Durable,
    ) -> Verdict {
        let published = if let Err(e) = durable.await {
            // Without the record a restart could not finish the commit.
            discard(&upload).await;
            Err(TaskFailure::Io {
                path: "journal".into(),
                reason: format!("cannot journal the commit: {e}"),
            })
        } else if self.store.as_ref().is_none_or(StoreOutputs::claim_lost) {
            // Another job holds the prefix now: its keys are not ours to write.
            Err(TaskFailure::Io {
                path: upload.url.clone(),
                reason: "not published: this job lost its output prefix to another job".into(),
            })
        } else {
            fault_point("completing-journaled");
            let done = mr_store::complete_upload(&upload)
                .await
                .map(|_| ())
                .map_err(|e| TaskFailure::Io {
                    path: upload.url.clone(),
                    reason: format!("completing the upload failed: {e}"),
                });
            fault_point("completed");
            done
        };
        let durable = {
            let mut s = self.sched();
            let verdict = s.finish_commit(r, attempt, published.clone(), Instant::now());
            match verdict {
                Verdict::Accepted(task) => {
                    s.set_counters(task, counters.clone());
                    if let Some(store) = &self.store {
                        store.published().insert(r, upload.clone());
                    }
                    Some((
                        verdict,
                        self.journal
                            .submit(Record::ReduceDone(r, attempt, counters)),
                    ))
                }
                _ => {
                    if let Err(f) = &published {
                        warn!(%attempt, "{f}");
                    }
                    return verdict;
                }
            }
        };
        let (verdict, done) = durable.expect("accepted above");
        // A failed append is logged by the journal; a restart would find
        // the object published and complete nothing twice.
        let _ = done.await;
        self.changed.notify_one();
        verdict
    }
}

/// What a report of an upload starts.
enum Begun {
    /// The commit of reduce `r`, its `Completing` record submitted.
    Commit(ReduceTaskId, crate::journal::Durable),
    /// Nothing: the upload (the job's own key) is aborted.
    Discard,
    /// Nothing: not an attempt of the reporting worker.
    Unknown,
}

/// Ends a commit that stopped before its verdict (a panic, the runtime
/// shutting down) as a failed attempt, so the reduce runs again rather
/// than staying "committing" for ever.
struct CommitGuard<'a> {
    shared: &'a Shared,
    r: ReduceTaskId,
    attempt: AttemptId,
    done: bool,
}

impl Drop for CommitGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            let failure = TaskFailure::Io {
                path: "commit".into(),
                reason: "the commit stopped before its end".into(),
            };
            let mut s = self.shared.sched();
            s.finish_commit(self.r, self.attempt, Err(failure), Instant::now());
        }
    }
}

/// Whether `url` is one of the output keys of a job of `reduces` under
/// `prefix`.
fn is_job_output(prefix: &str, reduces: u32, url: &str) -> bool {
    url.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix("mr-out-"))
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|r| r < reduces && url == output_url(prefix, ReduceTaskId(r)))
}

/// Fault injection for chaos tests: with `MR_FAULT_POINT=<name>` the
/// coordinator exits at once, as if killed, when a commit reaches the step
/// `name` ("completing-journaled": the record is on disk, the upload not
/// completed; "completed": published, `ReduceDone` not yet journaled).
fn fault_point(name: &str) {
    if std::env::var("MR_FAULT_POINT").is_ok_and(|v| v == name) {
        eprintln!("mrcoordinator: exiting at fault point {name} (MR_FAULT_POINT)");
        std::process::exit(137);
    }
}

/// Aborts an upload that will not be published (best effort: the end of
/// job sweep catches what this misses).
pub(crate) async fn discard(upload: &OutputUpload) {
    if let Err(e) = mr_store::abort_upload(&upload.url, &upload.upload_id).await {
        warn!(url = %upload.url, "cannot abort an unneeded upload: {e}");
    }
}

/// After replaying the journal of a job with outputs under `prefix`:
/// finishes the commits it left half done (completes the upload again, or
/// finds the object it produced), forgets outputs that are gone (they run
/// again), and removes a `_SUCCESS` a previous run left, since outputs may
/// now change until this run writes its own.
pub(crate) async fn recover(
    prefix: &str,
    r: &mut Recovered,
    journal: &Journal,
) -> Result<(), mr_store::StoreError> {
    mr_store::delete_object(&format!("{prefix}{SUCCESS}")).await?;
    for (red, completing) in r.unfinished_uploads() {
        let upload = completing.upload;
        let done = match mr_store::complete_upload(&upload).await {
            Ok(_) => true,
            // A store that does not answer now cannot say what became of
            // the upload: stop, and let a later restart decide.
            Err(e) if e.kind().is_transient() => return Err(e),
            // Completed before the crash (or aborted): the object tells.
            Err(_) => is_from(&upload).await?,
        };
        if done {
            info!(url = %upload.url, "finished publishing an output the previous run was committing");
            let Done { attempt, counters } = completing.done;
            let _ = journal
                .submit(Record::ReduceDone(red, attempt, counters.clone()))
                .await;
            r.reduces.insert(red, Done { attempt, counters });
        } else {
            warn!(url = %upload.url, "an output the previous run was committing was not published; its reduce will run again");
            discard(&upload).await;
            r.uploads.remove(&red);
        }
    }
    let done: Vec<ReduceTaskId> = r.reduces.keys().copied().collect();
    for red in done {
        let url = output_url(prefix, red);
        if !mr_store::exists(&url).await? {
            warn!(%url, "journaled output is missing; the reduce will run again");
            r.reduces.remove(&red);
            r.uploads.remove(&red);
        }
    }
    Ok(())
}

/// The outputs a recovered run had already published to the store (those
/// of the attempts the journal says committed), for the manifest.
pub(crate) fn already_published(r: &Recovered) -> BTreeMap<ReduceTaskId, OutputUpload> {
    r.uploads
        .iter()
        .filter(|(&red, c)| r.is_committed(red, c.done.attempt))
        .map(|(&red, c)| (red, c.upload.clone()))
        .collect()
}

/// Removes the outputs under `prefix` that this run did not publish: an
/// earlier run's `mr-out-<k>` (for any k, and those past this job's R,
/// which nothing would replace) must not stand beside this run's outputs
/// and `_SUCCESS` as if they were part of them. Only keys of that exact
/// form directly under the prefix are touched.
pub(crate) async fn clear_stale(
    prefix: &str,
    reduces: u32,
    r: &Recovered,
) -> Result<(), mr_store::StoreError> {
    let listing = prefix.to_string();
    let listed = tokio::task::spawn_blocking(move || mr_store::blob::list_under(&listing))
        .await
        .map_err(|e| mr_store::StoreError::other(prefix, e))??;
    let mut removed = 0;
    for o in listed {
        let Some(k) = o
            .url
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix("mr-out-"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if o.url != output_url(prefix, ReduceTaskId(k)) {
            // mr-out-007 and the like: not a name a run gives.
            continue;
        }
        if k >= reduces || !r.reduces.contains_key(&ReduceTaskId(k)) {
            mr_store::delete_object(&o.url).await?;
            removed += 1;
        }
    }
    if removed > 0 {
        info!(removed, %prefix, "removed outputs an earlier run left under the output prefix");
    }
    Ok(())
}

/// Whether the object at `upload.url` is the one completing `upload`
/// made: it bears the upload's tag (metadata the store keeps from the
/// upload's start; its ETag is no proof: not an MD5 under SSE-KMS).
async fn is_from(upload: &OutputUpload) -> Result<bool, mr_store::StoreError> {
    let Some(head) = mr_store::head_object(&upload.url).await? else {
        return Ok(false);
    };
    Ok(head.size == upload.bytes && head.upload_tag.as_deref() == Some(upload.tag.as_str()))
}

/// Aborts every upload still open on one of the job's `reduces` output
/// keys under `prefix`; returns how many.
pub(crate) async fn sweep(prefix: &str, reduces: u32) -> Result<usize, mr_store::StoreError> {
    let ours: std::collections::HashSet<String> = (0..reduces)
        .map(|r| output_url(prefix, ReduceTaskId(r)))
        .collect();
    let mut aborted = 0;
    for u in mr_store::pending_uploads(prefix).await? {
        if ours.contains(&u.url) {
            mr_store::abort_upload(&u.url, &u.upload_id).await?;
            aborted += 1;
        }
    }
    Ok(aborted)
}

/// One output in the manifest.
#[derive(Serialize)]
struct ManifestOutput {
    name: String,
    size: u64,
    /// CRC-32C of the object's bytes, as 8 hex digits.
    crc32c: String,
}

/// The `_SUCCESS` manifest.
#[derive(Serialize)]
struct Manifest<'a> {
    job_id: &'a str,
    outputs: Vec<ManifestOutput>,
    counters: &'a Counters,
}

/// Writes `prefix/_SUCCESS`: the job id, every output with its size and
/// checksum, and the counters. Written last, so present means whole.
pub(crate) async fn write_manifest(
    prefix: &str,
    job_id: &str,
    uploads: &std::collections::BTreeMap<ReduceTaskId, OutputUpload>,
    counters: &Counters,
) -> Result<(), mr_store::StoreError> {
    let outputs = uploads
        .iter()
        .map(|(&r, u)| ManifestOutput {
            name: names::output(r),
            size: u.bytes,
            crc32c: format!("{:08x}", u.crc32c),
        })
        .collect();
    let manifest = Manifest {
        job_id,
        outputs,
        counters,
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("the manifest always serializes");
    mr_store::put_object(&format!("{prefix}{SUCCESS}"), json).await
}

/// Puts the job report and timeline beside the outputs (a failure is only
/// logged: the outputs and manifest are what matter).
pub(crate) async fn put_report(prefix: &str, report: &crate::observe::report::Report) {
    use crate::observe::{report, timeline};
    let json = serde_json::to_vec_pretty(report).expect("the report always serializes");
    let url = format!("{prefix}{}", report::FILE_NAME);
    if let Err(e) = mr_store::put_object(&url, json).await {
        warn!("cannot write the job report: {e}");
    }
    match timeline::render(report) {
        Ok(svg) => {
            let url = format!("{prefix}{}", timeline::FILE_NAME);
            if let Err(e) = mr_store::put_object(&url, svg.into_bytes()).await {
                warn!("cannot write the timeline: {e}");
            }
        }
        Err(e) => warn!("cannot draw the timeline: {e}"),
    }
}
