//! The journal's writer: one dedicated thread that batches whatever is
//! queued into one write and one `fdatasync` (group commit), and the
//! [`Journal`] handle through which async code queues records and awaits
//! their durability without blocking on the disk.

use super::{encode, Record};
use std::fs::File;
use std::io::{Seek, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;
use tracing::warn;

type Ack = oneshot::Sender<std::io::Result<()>>;

/// A record's way to disk: resolves once it is durable (or failed).
pub type Durable =
    std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send + 'static>>;

/// What the journal has written since it was opened: the group commit's
/// effect is `records / commits`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JournalStats {
    /// Records appended.
    pub records: u64,
    /// Writes, each followed by one `fdatasync`.
    pub commits: u64,
    /// Bytes appended.
    pub bytes: u64,
}

/// The counts behind [`JournalStats`], bumped by the journal's thread.
#[derive(Default)]
struct Counts {
    records: AtomicU64,
    commits: AtomicU64,
    bytes: AtomicU64,
}

/// How long the journal's thread waits for more records before a sync when
/// records are arriving faster than it syncs. Each sync is a device
/// flush (about half a millisecond here, much of it CPU in a VM); at 15,000
/// reports a second a millisecond's lingering cut syncs from about 1,500 to
/// 470 a second and the coordinator's CPU by a tenth, and the p99 of an
/// answer fell rather than rose (`mr-loadgen --task-ms 40`). A lone record
/// (light load) is synced at once.
const LINGER: std::time::Duration = std::time::Duration::from_millis(1);

/// A handle for appending to the journal from async code.
#[derive(Clone)]
pub struct Journal {
    tx: mpsc::Sender<(Record, Option<Ack>)>,
    counts: Arc<Counts>,
}

impl Journal {
    /// Starts the journal's thread, appending to `file` (at `path`, for
    /// messages) from where it stands.
    pub(super) fn spawn(mut file: File, path: PathBuf) -> Journal {
        let (tx, rx) = mpsc::channel::<(Record, Option<Ack>)>();
        let counts = Arc::new(Counts::default());
        let writer = Writer {
            good: file.stream_position().unwrap_or(0),
            file,
            path,
            broken: None,
            counts: counts.clone(),
        };
        std::thread::Builder::new()
            .name("mr-journal".into())
            .spawn(move || writer.run(rx))
            .expect("spawn journal thread");
        Journal { tx, counts }
    }

    /// What has been made durable since the journal was opened.
    pub fn stats(&self) -> JournalStats {
        JournalStats {
            records: self.counts.records.load(Ordering::Relaxed),
            commits: self.counts.commits.load(Ordering::Relaxed),
            bytes: self.counts.bytes.load(Ordering::Relaxed),
        }
    }

    /// Appends `r` and waits until it is on disk.
    pub async fn append(&self, r: Record) -> std::io::Result<()> {
        self.submit(r).await
    }

    /// Queues `r` now (so its place in the journal is fixed by the caller's
    /// order, e.g. under a lock) and returns a future that resolves once it
    /// is on disk.
    pub fn submit(
        &self,
        r: Record,
    ) -> impl std::future::Future<Output = std::io::Result<()>> + Send + 'static {
        let (ack, done) = oneshot::channel();
        let sent = self.tx.send((r, Some(ack))).is_ok();
        async move {
            if !sent {
                return Err(std::io::Error::other("journal closed"));
            }
            done.await
                .unwrap_or_else(|_| Err(std::io::Error::other("journal closed")))
        }
    }

    /// [`Self::submit`], as a nameable future (to keep in a struct).
    pub fn submit_boxed(&self, r: Record) -> Durable {
        Box::pin(self.submit(r))
    }

    /// Appends `r` without waiting (ordering with later appends is kept).
    pub fn append_later(&self, r: Record) {
        let _ = self.tx.send((r, None));
    }
}

/// The journal's thread: appends batches of records, one write and one
/// `fdatasync` each (group commit), and acknowledges them.
struct Writer {
    file: File,
    path: PathBuf,
    /// Where the last record known to be whole ends.
    good: u64,
    /// Why the journal broke, once a write or sync failed: after that
    /// nothing may be acknowledged as durable, since replay stops at the
    /// first torn record and would never see it.
    broken: Option<String>,
    counts: Arc<Counts>,
}

impl Writer {
    /// Commits what arrives on `rx` until every handle is dropped.
    fn run(mut self, rx: mpsc::Receiver<(Record, Option<Ack>)>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            batch.extend(rx.try_iter());
            // Records that queued up during the last sync mean load:
            // linger a moment to sync more of them at once.
            if batch.len() > 1 {
                std::thread::sleep(LINGER);
                batch.extend(rx.try_iter());
            }
            let result = self.commit(&batch);
            for (_, ack) in batch {
                if let Some(ack) = ack {
                    let _ = ack.send(match &result {
                        Ok(()) => Ok(()),
                        Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
                    });
                }
            }
        }
    }

    /// Writes and syncs `batch`, or says why it cannot (now, or since an
    /// earlier failure).
    fn commit(&mut self, batch: &[(Record, Option<Ack>)]) -> std::io::Result<()> {
        if let Some(why) = &self.broken {
            return Err(std::io::Error::other(format!(
                "the journal broke at an earlier write ({why}); nothing is recorded as durable since"
            )));
        }
        let mut buf = Vec::new();
        for (r, _) in batch {
            buf.extend(encode(r));
        }
        let written = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data());
        match &written {
            Ok(()) => {
                self.good += buf.len() as u64;
                let counts = &self.counts;
                counts
                    .records
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                counts.commits.fetch_add(1, Ordering::Relaxed);
                counts.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                // Cut a partly written batch off, so the file ends at a
                // whole record (best effort: replay drops a torn tail
                // anyway, and nothing follows it now).
                let cut = self
                    .file
                    .set_len(self.good)
                    .and_then(|()| self.file.sync_data());
                warn!(journal = %self.path.display(), cut_back = cut.is_ok(), "cannot append to the journal: {e}; nothing more is recorded as durable: the job goes on, but a coordinator restarted after this redoes what was done since");
                self.broken = Some(e.to_string());
            }
        }
        written
    }
}
