//! The coordinator's journal: an append-only, fsynced, checksummed log of
//! the job's committed progress, so a coordinator killed mid-job and started
//! again with the same command keeps the work already done.
//!
//! File layout (`<job dir>/journal`): an 8-byte magic, then records, each
//! `len: u32 LE | crc32c(payload): u32 LE | payload (bincode, integers as
//! varints: a record of a million-task job's is about 60 bytes, mostly
//! its counters, instead of 200)`. The first
//! record is [`Record::Begin`] with the job's [`JobIdentity`]; a journal
//! whose identity differs from the command's is refused, never merged.
//! A crash can tear only the last append: replay stops at the first record
//! that is short or fails its checksum and truncates the file there, which
//! only forgets work that will simply be redone.
//!
//! The journal holds one record per accepted task and per lost output, so
//! it grows with the attempts that succeeded (about 80 bytes a task). A
//! coordinator opening a journal in which most records were superseded
//! (outputs lost and made again) rewrites it first with only the progress
//! they add up to (written beside it, synced, renamed over it).
//!
//! Appends go through one dedicated thread ([`writer`]) that batches whatever is queued
//! into one write and one `fdatasync` (group commit); callers on the tokio
//! runtime await an acknowledgement instead of blocking on the disk.

use mr_protocol::{AttemptId, Counters, MapTaskId, OutputUpload, PlannedApp, ReduceTaskId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use tracing::warn;

mod writer;
pub use writer::{Durable, Journal, JournalStats};

/// The first bytes of a journal file of this version.
pub const MAGIC: &[u8; 8] = b"MRJRNL06";
/// Journals of earlier versions (different record layout).
const OLD_MAGIC: &[u8; 6] = b"MRJRNL";
/// Name of the journal inside the job directory.
pub const FILE_NAME: &str = "journal";
/// A record larger than this is corruption, not data.
const MAX_RECORD: u32 = 16 << 20;

/// What makes two runs "the same job": the inputs as planned (path, size,
/// modification time) and every flag that shapes the plan or the outputs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobIdentity {
    /// (absolute path, size, mtime in ns since the epoch) of every input.
    pub inputs: Vec<(PathBuf, u64, i128)>,
    /// R.
    pub reduces: u32,
    /// Maximum split size.
    pub split_size: u64,
    /// The app named with `--app`, if any.
    pub app: Option<String>,
    /// Where outputs are committed.
    pub output_dir: PathBuf,
    /// The job's shape (`--conf`, records, a total order's split points)
    /// as its cache keys encode it.
    pub shape: Vec<u8>,
}

impl JobIdentity {
    /// A short human description of how `self` (the journal's job) differs
    /// from `other` (the command's).
    pub fn difference(&self, other: &JobIdentity) -> String {
        if self.reduces != other.reduces {
            return format!("--reduces {} there, {} here", self.reduces, other.reduces);
        }
        if self.split_size != other.split_size {
            return format!(
                "--split-size {} there, {} here",
                self.split_size, other.split_size
            );
        }
        if self.app != other.app {
            let show = |a: &Option<String>| match a {
                Some(a) => format!("--app {a}"),
                None => "no --app".to_string(),
            };
            return format!("{} there, {} here", show(&self.app), show(&other.app));
        }
        if self.shape != other.shape {
            return "other --conf, --record-size or --total-order there (or inputs whose sampled keys differ)".to_string();
        }
        if self.output_dir != other.output_dir {
            return format!(
                "output directory {} there, {} here",
                self.output_dir.display(),
                other.output_dir.display()
            );
        }
        if self.inputs.len() != other.inputs.len() {
            return format!(
                "{} input files there, {} here",
                self.inputs.len(),
                other.inputs.len()
            );
        }
        for (a, b) in self.inputs.iter().zip(&other.inputs) {
            if a.0 != b.0 {
                return format!("input {} there, {} here", a.0.display(), b.0.display());
            }
            if a != b {
                return format!("input {} changed since (size or time)", a.0.display());
            }
        }
        "the job format changed".into()
    }
}

/// One journal entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// First record: which job this journal belongs to.
    Begin(JobIdentity),
    /// A coordinator process started on this journal (the n-th, from 0).
    Incarnation(u32),
    /// The job's app became known (it decides how inputs are split).
    AppFixed {
        /// The app's name.
        app: String,
        /// Whether it maps whole files.
        whole_file: bool,
    },
    /// A map task's output was accepted (with the attempt's counters, and
    /// the shuffle address of the worker holding it when not in the job
    /// directory).
    MapDone(MapTaskId, AttemptId, Counters, Option<String>),
    /// A map task's accepted output was found lost or corrupt.
    MapLost(MapTaskId),
    /// `mr-out-r` was committed (with the attempt's counters).
    ReduceDone(ReduceTaskId, AttemptId, Counters),
    /// The coordinator is about to complete this reduce attempt's upload to
    /// the object store (publishing `mr-out-r`); a [`Record::ReduceDone`]
    /// of the same attempt follows once it has. Without one, a restarted
    /// coordinator completes it again or checks that it was.
    Completing(ReduceTaskId, AttemptId, Counters, OutputUpload),
}

/// What replaying a journal yields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// This process's incarnation number (0 for a fresh journal).
    pub incarnation: u32,
    /// The app, if the previous run had learned it.
    pub app: Option<PlannedApp>,
    /// Maps whose output was accepted (and not since lost).
    pub maps: BTreeMap<MapTaskId, MapDone>,
    /// Committed reduce outputs.
    pub reduces: BTreeMap<ReduceTaskId, Done>,
    /// Uploads of reduce outputs being completed, or completed (then the
    /// task is also in `reduces` with the same attempt): what a restart
    /// must finish, and what the `_SUCCESS` manifest lists.
    pub uploads: BTreeMap<ReduceTaskId, Completing>,
}

/// A task done: the attempt whose output was accepted, and its counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Done {
    /// The attempt.
    pub attempt: AttemptId,
    /// What it counted.
    pub counters: Counters,
}

/// A map done, and where its output is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapDone {
    /// The attempt and its counters.
    pub done: Done,
    /// The worker serving its output (`host:port`), or None when it is in
    /// the job directory.
    pub holder: Option<String>,
}

/// A reduce output upload being completed (its commit in a store).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completing {
    /// The attempt and its counters.
    pub done: Done,
    /// The upload.
    pub upload: OutputUpload,
}

impl Recovered {
    /// Uploads journaled as being completed with no record that they were.
    pub fn unfinished_uploads(&self) -> Vec<(ReduceTaskId, Completing)> {
        self.uploads
            .iter()
            .filter(|(r, c)| !self.is_committed(**r, c.done.attempt))
            .map(|(&r, c)| (r, c.clone()))
            .collect()
    }

    /// Whether reduce `r` was committed with `attempt`'s output.
    pub fn is_committed(&self, r: ReduceTaskId, attempt: AttemptId) -> bool {
        self.reduces.get(&r).is_some_and(|d| d.attempt == attempt)
    }
}

impl Recovered {
    /// The fewest records that replay to this progress (the incarnation
    /// aside): what a compacted journal holds after its `Begin`.
    fn live_records(&self) -> Vec<Record> {
        let mut out = Vec::with_capacity(1 + self.maps.len() + self.reduces.len());
        if let Some(app) = &self.app {
            out.push(Record::AppFixed {
                app: app.name.clone(),
                whole_file: app.whole_file,
            });
        }
        for (&m, d) in &self.maps {
            let done = &d.done;
            out.push(Record::MapDone(
                m,
                done.attempt,
                done.counters.clone(),
                d.holder.clone(),
            ));
        }
        for (&r, c) in &self.uploads {
            let done = &c.done;
            out.push(Record::Completing(
                r,
                done.attempt,
                done.counters.clone(),
                c.upload.clone(),
            ));
        }
        for (&r, d) in &self.reduces {
            out.push(Record::ReduceDone(r, d.attempt, d.counters.clone()));
        }
        out
    }

    fn apply(&mut self, r: Record) {
        match r {
            Record::Begin(_) => {}
            // A damaged journal may hold any number: the next one must not
            // wrap to 0, which would make this run look like the first.
            Record::Incarnation(n) => self.incarnation = n.saturating_add(1),
            Record::AppFixed { app, whole_file } => {
                self.app = Some(PlannedApp {
                    name: app,
                    whole_file,
                })
            }
            Record::MapDone(m, attempt, counters, holder) => {
                let done = Done { attempt, counters };
                self.maps.insert(m, MapDone { done, holder });
            }
            Record::MapLost(m) => {
                self.maps.remove(&m);
            }
            Record::ReduceDone(r, attempt, counters) => {
                self.reduces.insert(r, Done { attempt, counters });
            }
            Record::Completing(r, attempt, counters, upload) => {
                let done = Done { attempt, counters };
                self.uploads.insert(r, Completing { done, upload });
            }
        }
    }
}

/// Why a journal cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// It belongs to another job.
    #[error("'{path}' is the journal of an unfinished job with other inputs or flags ({difference}); run that job's command again to finish it, or add --fresh to discard it")]
    Foreign {
        /// The journal file.
        path: String,
        /// How the jobs differ.
        difference: String,
    },
    /// It is not a journal at all, or unreadable.
    #[error("cannot use journal '{path}': {reason}; add --fresh to discard it")]
    Unusable {
        /// The journal file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// How a record's payload is encoded: bincode with variable-length integers.
fn payload_options() -> impl bincode::Options {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_varint_encoding()
        .with_limit(u64::from(MAX_RECORD))
}

/// One record as the journal file holds it (length, checksum, payload).
pub fn encode(r: &Record) -> Vec<u8> {
    use bincode::Options;
    let payload = payload_options()
        .serialize(r)
        .expect("journal records always serialize");
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Decodes records from `bytes` (after the magic); returns them and the
/// length of the valid prefix.
fn decode_all(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= 8 {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let end = at + 8 + len as usize;
        if len > MAX_RECORD || end > bytes.len() {
            break;
        }
        let payload = &bytes[at + 8..end];
        if crc32c::crc32c(payload) != crc {
            break;
        }
        match bincode::Options::deserialize::<Record>(payload_options(), payload) {
            Ok(r) => records.push(r),
            Err(_) => break,
        }
        at = end;
    }
    (records, at)
}

fn unusable(path: &Path, reason: impl std::fmt::Display) -> JournalError {
    JournalError::Unusable {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Makes a file's directory entry durable.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// What a journal file's bytes hold.
#[derive(Debug)]
pub struct Replay {
    /// The job it belongs to.
    pub identity: JobIdentity,
    /// The progress its records add up to.
    pub recovered: Recovered,
    /// Length of its valid prefix (what follows is a torn or damaged tail).
    pub valid: usize,
    /// Records in that prefix.
    pub records: usize,
}

/// Replays a whole journal file's bytes (magic included); Err says why
/// they are not a journal this version can use. Pure: any bytes at all give
/// a typed answer, which is what the fuzz target checks.
pub fn replay(bytes: &[u8]) -> Result<Replay, &'static str> {
    if bytes.len() < MAGIC.len() || &bytes[..8] != MAGIC {
        return Err(if bytes.starts_with(OLD_MAGIC) {
            "written by another version of mrcoordinator; finish that job with it, or start afresh with --fresh"
        } else {
            "not a MapReduce journal"
        });
    }
    let (records, valid) = decode_all(&bytes[8..]);
    let count = records.len();
    let mut records = records.into_iter();
    let Some(Record::Begin(identity)) = records.next() else {
        return Err("its first record is damaged");
    };
    let mut recovered = Recovered::default();
    for r in records {
        recovered.apply(r);
    }
    Ok(Replay {
        identity,
        recovered,
        valid: valid + 8,
        records: count,
    })
}

/// Opens the journal in `dir` for `identity`: replays an existing one (after
/// checking it is this job's), or starts a new one. Records this start as a
/// new incarnation. Blocking: call before serving, or on a blocking thread.
pub fn open(dir: &Path, identity: &JobIdentity) -> Result<(Journal, Recovered), JournalError> {
    let path = dir.join(FILE_NAME);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| unusable(&path, e))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| unusable(&path, e))?;
    let mut recovered = Recovered::default();
    let mut fresh = Vec::new();
    if bytes.len() < MAGIC.len() {
        // New (or torn before its first record was whole): start it.
        file.set_len(0).map_err(|e| unusable(&path, e))?;
        fresh.extend_from_slice(MAGIC);
        fresh.extend(encode(&Record::Begin(identity.clone())));
    } else {
        let replay = replay(&bytes).map_err(|what| unusable(&path, what))?;
        if replay.identity != *identity {
            return Err(JournalError::Foreign {
                path: path.display().to_string(),
                difference: replay.identity.difference(identity),
            });
        }
        if replay.valid < bytes.len() {
            warn!(journal = %path.display(), dropped = bytes.len() - replay.valid, "journal ends in a torn or damaged record (a crash mid-write); replaying up to it");
            file.set_len(replay.valid as u64)
                .map_err(|e| unusable(&path, e))?;
        }
        recovered = replay.recovered;
        // Begin and the incarnations aside, more than twice the records
        // the progress needs: most were superseded. Rewrite it.
        let live = recovered.live_records();
        let overhead = 1 + recovered.incarnation as usize;
        if replay.records > 2 * (live.len() + overhead) + 64 {
            file = compact(dir, &path, identity, recovered.incarnation, &live)?;
        }
    }
    fresh.extend(encode(&Record::Incarnation(recovered.incarnation)));
    file.seek(SeekFrom::End(0))
        .and_then(|_| file.write_all(&fresh))
        .and_then(|()| file.sync_data())
        .map_err(|e| unusable(&path, e))?;
    sync_dir(dir);
    Ok((Journal::spawn(file, path), recovered))
}

/// Replaces the journal at `path` with one holding only `live` records after
/// its `Begin` (and the last incarnation, so numbering goes on): written to
/// a file beside it, synced, renamed over it. Returns it open for appends.
fn compact(
    dir: &Path,
    path: &Path,
    identity: &JobIdentity,
    incarnation: u32,
    live: &[Record],
) -> Result<File, JournalError> {
    let tmp = dir.join(format!("{FILE_NAME}.compact"));
    let mut bytes = MAGIC.to_vec();
    bytes.extend(encode(&Record::Begin(identity.clone())));
    if let Some(last) = incarnation.checked_sub(1) {
        bytes.extend(encode(&Record::Incarnation(last)));
    }
    for r in live {
        bytes.extend(encode(r));
    }
    let written = File::create(&tmp)
        .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(unusable(path, format!("cannot compact it: {e}")));
    }
    sync_dir(dir);
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| unusable(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(reduces: u32) -> JobIdentity {
        JobIdentity {
            inputs: vec![(PathBuf::from("/in/a.txt"), 10, 5)],
            reduces,
            split_size: 1 << 20,
            app: Some("wc".into()),
            output_dir: PathBuf::from("/out"),
            shape: Vec::new(),
        }
    }

    fn counted(n: u64) -> Counters {
        Counters {
            input_records: n,
            ..Counters::default()
        }
    }

    async fn write_some(j: &Journal) {
        j.append(Record::AppFixed {
            app: "wc".into(),
            whole_file: false,
        })
        .await
        .unwrap();
        j.append(Record::MapDone(
            MapTaskId(0),
            AttemptId(3),
            Counters::default(),
            None,
        ))
        .await
        .unwrap();
        j.append(Record::MapDone(
            MapTaskId(1),
            AttemptId(4),
            counted(7),
            Some("10.0.0.2:4000".into()),
        ))
        .await
        .unwrap();
        j.append(Record::MapLost(MapTaskId(0))).await.unwrap();
        j.append(Record::ReduceDone(
            ReduceTaskId(2),
            AttemptId(9),
            counted(5),
        ))
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn an_upload_being_completed_is_unfinished_until_its_reduce_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = open(dir.path(), &identity(3)).unwrap();
        let upload = |r: u32| OutputUpload {
            url: format!("s3://b/out/mr-out-{r}"),
            upload_id: format!("u{r}"),
            parts: vec!["\"e1\"".into()],
            bytes: 10,
            crc32c: 7,
            tag: format!("t{r}"),
        };
        for r in 0..3 {
            let rec =
                Record::Completing(ReduceTaskId(r), AttemptId(r.into()), counted(1), upload(r));
            j.append(rec).await.unwrap();
        }
        // Task 0 published by its attempt; task 1 by another attempt (a
        // journal never says so, but only the same attempt counts); task 2 not.
        j.append(Record::ReduceDone(
            ReduceTaskId(0),
            AttemptId(0),
            counted(1),
        ))
        .await
        .unwrap();
        j.append(Record::ReduceDone(
            ReduceTaskId(1),
            AttemptId(9),
            counted(1),
        ))
        .await
        .unwrap();
        drop(j);
        let (_j, r) = open(dir.path(), &identity(3)).unwrap();
        let pending: Vec<u32> = r.unfinished_uploads().iter().map(|u| u.0 .0).collect();
        assert_eq!(pending, vec![1, 2]);
        assert_eq!(r.uploads[&ReduceTaskId(2)].upload, upload(2));
    }

    /// A tmpfs of `size` mounted on a new directory, unmounted when dropped;
    /// None where mounting is not allowed (not root).
    struct SmallDisk(tempfile::TempDir);

    impl SmallDisk {
        fn mount(size: &str) -> Option<SmallDisk> {
            let dir = tempfile::tempdir().ok()?;
            let ok = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(dir.path())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            ok.then_some(SmallDisk(dir))
        }
    }

    impl Drop for SmallDisk {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg(self.0.path())
                .status();
        }
    }

    #[tokio::test]
    async fn after_a_failed_write_nothing_more_is_acknowledged_and_replay_sees_every_ack() {
        let Some(disk) = SmallDisk::mount("32k") else {
            eprintln!("SKIP journal on a full disk: cannot mount a tmpfs (needs root and mount)");
            return;
        };
        let dir = disk.0.path();
        let filler = dir.join("filler");
        std::fs::write(&filler, vec![0u8; 8192]).unwrap();
        let (j, _) = open(dir, &identity(3)).unwrap();
        let record = |i: u32| {
            let holder = Some(format!("10.0.0.{}:4000/{}", i % 250, "x".repeat(150)));
            Record::MapDone(MapTaskId(i), AttemptId(i.into()), counted(i.into()), holder)
        };
        // Appended until the disk is full, then on: once one append failed,
        // none may succeed, even with room again (the filler removed).
        let (mut acked, mut failed) = (0u32, 0u32);
        for i in 0..400 {
            if failed == 5 {
                std::fs::remove_file(&filler).unwrap();
            }
            match j.append(record(i)).await {
                Ok(()) => {
                    assert_eq!(failed, 0, "record {i} acknowledged after a failed write");
                    acked += 1;
                }
                Err(e) => {
                    failed += 1;
                    if failed > 5 {
                        assert!(e.to_string().contains("journal broke"), "{e}");
                    }
                }
            }
        }
        assert!(acked > 10 && failed > 100, "{acked} acked, {failed} failed");
        drop(j);
        // Every acknowledged record replays, and the file ends whole.
        let bytes = std::fs::read(dir.join(FILE_NAME)).unwrap();
        let replayed = replay(&bytes).unwrap();
        assert_eq!(
            replayed.valid,
            bytes.len(),
            "the journal ends in a torn record"
        );
        assert_eq!(replayed.recovered.maps.len(), acked as usize);
        assert!((0..acked).all(|m| replayed.recovered.maps.contains_key(&MapTaskId(m))));
    }

    #[tokio::test]
    async fn replays_what_was_appended_and_counts_incarnations() {
        let dir = tempfile::tempdir().unwrap();
        let (j, r) = open(dir.path(), &identity(3)).unwrap();
        assert_eq!(r, Recovered::default());
        let opened = std::fs::metadata(dir.path().join(FILE_NAME)).unwrap().len();
        write_some(&j).await;
        // Each append was awaited before the next: five records, five syncs,
        // and the bytes counted are the bytes the file grew by.
        let grown = std::fs::metadata(dir.path().join(FILE_NAME)).unwrap().len() - opened;
        let stats = j.stats();
        assert_eq!((stats.records, stats.commits, stats.bytes), (5, 5, grown));
        drop(j);
        let (_j, r) = open(dir.path(), &identity(3)).unwrap();
        assert_eq!(r.incarnation, 1);
        assert_eq!(
            r.app,
            Some(PlannedApp {
                name: "wc".into(),
                whole_file: false
            })
        );
        assert_eq!(
            r.maps.into_iter().collect::<Vec<_>>(),
            vec![(
                MapTaskId(1),
                MapDone {
                    done: Done {
                        attempt: AttemptId(4),
                        counters: counted(7)
                    },
                    holder: Some("10.0.0.2:4000".to_string())
                }
            )]
        );
        assert_eq!(
            r.reduces.into_iter().collect::<Vec<_>>(),
            vec![(
                ReduceTaskId(2),
                Done {
                    attempt: AttemptId(9),
                    counters: counted(5)
                }
            )]
        );
        let (_j, r) = open(dir.path(), &identity(3)).unwrap();
        assert_eq!(r.incarnation, 2);
    }

    #[tokio::test]
    async fn a_torn_or_corrupt_tail_is_dropped_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = open(dir.path(), &identity(3)).unwrap();
        write_some(&j).await;
        drop(j);
        let path = dir.path().join(FILE_NAME);
        let full = std::fs::read(&path).unwrap();
        // Cut inside the last record (ReduceDone): it is forgotten.
        std::fs::write(&path, &full[..full.len() - 3]).unwrap();
        let (j, r) = open(dir.path(), &identity(3)).unwrap();
        assert!(r.reduces.is_empty());
        assert_eq!(r.maps.len(), 1);
        j.append(Record::ReduceDone(
            ReduceTaskId(0),
            AttemptId(20),
            counted(1),
        ))
        .await
        .unwrap();
        drop(j);
        // Appends after the repair are readable again.
        let (_j, r) = open(dir.path(), &identity(3)).unwrap();
        assert_eq!(r.reduces.len(), 1);
        // A flipped byte in an early record stops replay there.
        let mut bytes = std::fs::read(&path).unwrap();
        let second = 8 + 8 + u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        bytes[second + 9] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let (_j, r) = open(dir.path(), &identity(3)).unwrap();
        assert!(r.maps.is_empty() && r.reduces.is_empty() && r.app.is_none());
    }

    #[tokio::test]
    async fn a_journal_of_mostly_superseded_records_is_compacted_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = open(dir.path(), &identity(3)).unwrap();
        write_some(&j).await;
        // Map 5's output lost and made again 200 times.
        for a in 100..300u64 {
            j.append(Record::MapDone(
                MapTaskId(5),
                AttemptId(a),
                counted(a),
                None,
            ))
            .await
            .unwrap();
            j.append(Record::MapLost(MapTaskId(5))).await.unwrap();
        }
        j.append(Record::MapDone(
            MapTaskId(5),
            AttemptId(300),
            counted(1),
            None,
        ))
        .await
        .unwrap();
        drop(j);
        let path = dir.path().join(FILE_NAME);
        let before = std::fs::metadata(&path).unwrap().len();
        let (j, r) = open(dir.path(), &identity(3)).unwrap();
        let after = std::fs::metadata(&path).unwrap().len();
        assert!(after * 10 < before, "{before} bytes, then {after}");
        assert_eq!(r.incarnation, 1);
        assert_eq!(r.maps.len(), 2);
        let done = Done {
            attempt: AttemptId(300),
            counters: counted(1),
        };
        assert_eq!(r.maps[&MapTaskId(5)], MapDone { done, holder: None });
        j.append(Record::MapLost(MapTaskId(1))).await.unwrap();
        drop(j);
        // The compacted journal replays to the same progress, incarnations
        // counting on, and takes appends.
        let (_j, again) = open(dir.path(), &identity(3)).unwrap();
        assert_eq!(again.incarnation, 2);
        assert_eq!(again.app, r.app);
        assert_eq!(again.reduces, r.reduces);
        assert_eq!(again.maps.keys().collect::<Vec<_>>(), vec![&MapTaskId(5)]);
        assert!(!dir.path().join("journal.compact").exists());
    }

    #[test]
    fn another_jobs_journal_is_refused_naming_the_difference() {
        let dir = tempfile::tempdir().unwrap();
        drop(open(dir.path(), &identity(3)).unwrap());
        let err = open(dir.path(), &identity(5)).err().unwrap().to_string();
        assert!(err.contains("--reduces 3 there, 5 here"), "{err}");
        assert!(err.contains("--fresh"), "{err}");
        std::fs::write(dir.path().join(FILE_NAME), b"not a journal at all").unwrap();
        let err = open(dir.path(), &identity(3)).err().unwrap().to_string();
        assert!(err.contains("not a MapReduce journal"), "{err}");
        // One written by the previous version (other record layout).
        std::fs::write(dir.path().join(FILE_NAME), b"MRJRNL01\x05\0\0\0junk").unwrap();
        let err = open(dir.path(), &identity(3)).err().unwrap().to_string();
        assert!(
            err.contains("another version") && err.contains("--fresh"),
            "{err}"
        );
    }
}
