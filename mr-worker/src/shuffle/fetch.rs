//! The reduce side of the network shuffle: gathers one partition of every
//! map output, reading the ones this worker can see and fetching the others
//! from the workers that hold them.
//!
//! A fetched partition is written to a file in the worker's own directory as
//! it arrives, in bounded chunks, each block's CRC32C checked before it is
//! written; the reduce then merges those files like local run files. Several
//! map outputs are fetched at once. A call that fails in transport is
//! retried with backoff on a fresh connection; a holder that says it has no
//! such output, or whose copy is damaged, or that stays unreachable, makes
//! the reduce fail with `MapOutputLost` naming the map and the host, and
//! the coordinator re-runs that map. A holder that refuses this worker (its
//! token or job id) says nothing about the output: the reduce fails with
//! `FetchRefused`, a strike against the reduce, and no map runs again.

use crate::engine::reduce::ReduceInput;
use crate::shuffle::local::LocalStore;
use futures::StreamExt;
use mr_protocol::wire;
use mr_protocol::{
    names, FetchChunk, FetchError, FetchRequest, MapOutputRef, ReduceTaskId, ShuffleClient,
    TaskFailure, MAX_CHUNK,
};
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tarpc::{client, context};
use tracing::{debug, warn};

/// Map outputs fetched at once by one reduce.
const PARALLEL: usize = 16;
/// Tries of one call before the holder is given up on.
const TRIES: u32 = 5;

/// Why one map output's partition could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchFailure {
    /// The holder answered and would not serve this worker (wrong token,
    /// another job): the output may be fine, so no map must re-run.
    #[error("the worker at {host} refused the fetch: {reason}")]
    Refused {
        /// The holder as reached.
        host: String,
        /// What it said.
        reason: FetchError,
    },
    /// The holder answered that it has no such output, or that its copy is
    /// damaged.
    #[error("the worker at {host} cannot serve it: {reason}")]
    Unavailable {
        /// The holder as reached.
        host: String,
        /// What it said.
        reason: FetchError,
    },
    /// The holder could not be reached, or stopped answering.
    #[error("gave up on the worker at {host}: {last}")]
    Unreachable {
        /// The holder as reached.
        host: String,
        /// The last transport error.
        last: String,
    },
    /// What arrived is not what a run file partition holds.
    #[error("the partition from the worker at {host} is damaged: {damage}")]
    Damaged {
        /// The holder as reached.
        host: String,
        /// What was wrong.
        damage: Damage,
    },
    /// Writing the fetched bytes here failed.
    #[error("cannot write the fetched partition {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// How fetched bytes failed their checks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    /// A block's CRC32C does not match its payload.
    #[error("block checksum mismatch")]
    Checksum,
    /// The partition ended in the middle of a block.
    #[error("it ends inside a block")]
    Truncated,
    /// The holder sent nothing before the partition's end.
    #[error("nothing was sent at offset {0}")]
    Empty(u64),
    /// The holder promised a partition longer than the whole map output.
    #[error("a partition of {promised} bytes was promised, but the map output has {limit}")]
    Overlong {
        /// What the holder said.
        promised: u64,
        /// The map output's size as its map reported it.
        limit: u64,
    },
    /// The holder changed the partition's length between chunks.
    #[error("the partition's length changed from {was} to {now} bytes")]
    LengthChanged {
        /// The length first promised.
        was: u64,
        /// The length now claimed.
        now: u64,
    },
    /// More bytes arrived than asked for, or past the promised end.
    #[error("{got} bytes arrived at offset {offset} of a {promised}-byte partition (asking for at most {asked})")]
    Overrun {
        /// Where they were asked for.
        offset: u64,
        /// How many came.
        got: u64,
        /// The partition's promised length.
        promised: u64,
        /// The most asked for.
        asked: u64,
    },
    /// A block longer than any writer makes.
    #[error("a block of {0} bytes (more than any run file holds)")]
    OversizeBlock(u64),
}

impl FetchFailure {
    /// The attempt's failure: a refusal or a local write error is the
    /// reduce's own; anything else means map `m`'s output is lost.
    fn into_task_failure(self, m: &MapOutputRef, reduce: ReduceTaskId) -> TaskFailure {
        match self {
            FetchFailure::Refused { host, reason } => TaskFailure::FetchRefused {
                map: m.map,
                host,
                reason,
            },
            FetchFailure::Io { path, source } => TaskFailure::Io {
                path: path.display().to_string(),
                reason: source.to_string(),
            },
            other => TaskFailure::MapOutputLost {
                map: m.map,
                attempt: m.attempt,
                reason: format!("cannot fetch partition {}: {other}", reduce.0),
            },
        }
    }
}

/// Connections to other workers' shuffle services, one per address.
#[derive(Default)]
pub struct Peers {
    clients: tokio::sync::Mutex<HashMap<String, ShuffleClient>>,
}

impl Peers {
    /// A client of the holder at `host` (`addr` or `addr#<fingerprint>`,
    /// whose certificate is then pinned).
    async fn client(&self, host: &str) -> std::io::Result<ShuffleClient> {
        if let Some(c) = self.clients.lock().await.get(host) {
            return Ok(c.clone());
        }
        let (addr, pin) = mr_protocol::join::split_pinned(host)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let (stream, _, _) = wire::connect(addr, pin, Duration::from_secs(3)).await?;
        let c = ShuffleClient::new(client::Config::default(), wire::transport(stream)).spawn();
        self.clients
            .lock()
            .await
            .insert(host.to_string(), c.clone());
        Ok(c)
    }

    async fn forget(&self, host: &str) {
        self.clients.lock().await.remove(host);
    }
}

/// Who is fetching what.
pub struct Gather<'a> {
    /// Connections to other workers.
    pub peers: &'a Peers,
    /// The job's token and id, presented to the holders.
    pub token: &'a str,
    /// The job's id.
    pub job_id: &'a str,
    /// The partition wanted.
    pub reduce: ReduceTaskId,
    /// Whether this worker sees the shared job directory.
    pub shared: bool,
    /// The shared job directory.
    pub job_dir: &'a Path,
    /// This worker's store and shuffle address, if it serves outputs.
    pub own: Option<(&'a LocalStore, &'a str)>,
    /// Where fetched partitions go (the caller removes it afterwards).
    pub into: &'a Path,
    /// The coordinator's address as this worker reaches it: a holder that
    /// advertises a loopback address is on the coordinator's host.
    pub coordinator_ip: Option<std::net::IpAddr>,
}

/// Where to reach a holder: its advertised address, except that a loopback
/// one (a worker on the coordinator's machine, which reached it over
/// loopback) means the coordinator's host to a worker reaching it otherwise.
fn reachable(host: &str, coordinator: Option<std::net::IpAddr>) -> String {
    // The certificate's fingerprint, if any, stays with the address.
    let Ok((addr, pin)) = mr_protocol::join::split_pinned(host) else {
        return host.to_string();
    };
    match (addr.parse::<std::net::SocketAddr>(), coordinator) {
        (Ok(a), Some(c)) if a.ip().is_loopback() && !c.is_loopback() => {
            let moved = std::net::SocketAddr::new(c, a.port()).to_string();
            mr_protocol::join::pinned(&moved, pin)
        }
        _ => host.to_string(),
    }
}

/// The reduce's inputs, and what fetching them took.
pub struct Gathered {
    /// One per map, in map order.
    pub inputs: Vec<ReduceInput>,
    /// Bytes fetched from other workers.
    pub bytes: u64,
    /// Wall time of the fetching.
    pub took: Duration,
}

/// Finds or fetches partition `g.reduce` of every map output in `maps`.
pub async fn gather(g: &Gather<'_>, maps: &[MapOutputRef]) -> Result<Gathered, TaskFailure> {
    let started = Instant::now();
    let mut inputs = Vec::with_capacity(maps.len());
    let mut remote = Vec::new();
    for (i, m) in maps.iter().enumerate() {
        let in_job_dir = || g.job_dir.join(names::map_output(m.map, m.attempt));
        let here = match (&m.host, g.own) {
            _ if m.in_job_dir && g.shared => Some(in_job_dir()),
            (Some(h), Some((store, me))) if **h == *me => Some(
                store
                    .lookup(m.map, m.attempt)
                    .unwrap_or_else(|| store.map_output(m.map, m.attempt)),
            ),
            (Some(_), _) => None,
            // Nobody serves it: where it should be (if not, the map reruns).
            (None, _) => Some(in_job_dir()),
        };
        match here {
            Some(path) => inputs.push(Some(ReduceInput::run_file(m.map, m.attempt, path))),
            None => {
                inputs.push(None);
                remote.push(i);
            }
        }
    }
    let mut results = futures::stream::iter(
        remote
            .iter()
            .map(|&i| async move { (i, fetch_one(g, &maps[i]).await) }),
    )
    .buffer_unordered(PARALLEL);
    let mut bytes = 0;
    while let Some((i, r)) = results.next().await {
        // The first failure ends the gathering; unfinished fetches are dropped.
        let (input, n) = r?;
        bytes += n;
        inputs[i] = Some(input);
    }
    Ok(Gathered {
        inputs: inputs
            .into_iter()
            .map(|i| i.expect("every map found or fetched"))
            .collect(),
        bytes,
        took: started.elapsed(),
    })
}

/// Fetches one map output's partition into a file; returns it and its size.
async fn fetch_one(g: &Gather<'_>, m: &MapOutputRef) -> Result<(ReduceInput, u64), TaskFailure> {
    let path = g.into.join(format!(
        "{}-part{}",
        names::map_output(m.map, m.attempt),
        g.reduce.0
    ));
    fetch_into(g, m, &path)
        .await
        .map(|n| {
            let input = ReduceInput {
                map: m.map,
                attempt: m.attempt,
                path: path.clone(),
                fetched: true,
            };
            (input, n)
        })
        .map_err(|f| f.into_task_failure(m, g.reduce))
}

/// Fetches map output `m`'s partition into `path`, verifying every block;
/// returns the bytes fetched.
async fn fetch_into(g: &Gather<'_>, m: &MapOutputRef, path: &Path) -> Result<u64, FetchFailure> {
    let host = reachable(
        m.host.as_deref().expect("remote outputs have a holder"),
        g.coordinator_ip,
    );
    let io = |source| FetchFailure::Io {
        path: path.to_path_buf(),
        source,
    };
    let damaged = |damage| FetchFailure::Damaged {
        host: host.clone(),
        damage,
    };
    let file = File::create(path).map_err(io)?;
    let mut intake = Some(Intake::new(file, m.bytes));
    loop {
        let req = FetchRequest {
            token: g.token.to_string(),
            job_id: g.job_id.to_string(),
            map: m.map,
            attempt: m.attempt,
            reduce: g.reduce,
            offset: intake.as_ref().expect("put back after each chunk").offset,
            max: MAX_CHUNK,
        };
        let chunk = call(g.peers, &host, req).await?;
        let mut taken = intake.take().expect("put back after each chunk");
        // Checking CRCs and writing are blocking work: off the runtime.
        let (taken, r) = tokio::task::spawn_blocking(move || {
            let r = taken.accept(&chunk);
            (taken, r)
        })
        .await
        .map_err(|e| {
            io(std::io::Error::other(format!(
                "verifying thread failed: {e}"
            )))
        })?;
        let complete = r.map_err(|e| match e {
            IntakeError::Damage(d) => damaged(d),
            IntakeError::Write(e) => io(e),
        })?;
        intake = Some(taken);
        if complete {
            break;
        }
    }
    let offset = intake.expect("present").finish().map_err(damaged)?;
    debug!(map = %m.map, %host, bytes = offset, "fetched");
    Ok(offset)
}

/// One fetch call with retries; Err says why the holder was given up on.
async fn call(peers: &Peers, host: &str, req: FetchRequest) -> Result<FetchChunk, FetchFailure> {
    let mut last = String::new();
    let mut timeouts = 0;
    for attempt in 0..TRIES {
        if attempt > 0 {
            // 100 ms, 300 ms, 900 ms, 2 s (+ jitter): a restarting or briefly
            // overloaded holder is waited for; a dead one costs ~3.5 s.
            let ms = (100u64 * 3u64.pow(attempt - 1)).min(2000);
            tokio::time::sleep(Duration::from_millis(ms + fastrand::u64(0..ms / 4 + 1))).await;
        }
        let client = match peers.client(host).await {
            Ok(c) => c,
            // Refused twice: the host is up but nothing listens, so the
            // worker is gone (the coordinator will have noticed too).
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused && attempt >= 1 => {
                last = format!("cannot connect: {e}");
                break;
            }
            Err(e) => {
                last = format!("cannot connect: {e}");
                continue;
            }
        };
        // 4 MiB in 10 s or the holder is taken as stuck.
        let mut ctx = context::current();
        ctx.deadline = Instant::now() + Duration::from_secs(10);
        match client.fetch(ctx, req.clone()).await {
            Ok(Ok(chunk)) => return Ok(chunk),
            // The holder answered: retrying cannot help.
            Ok(Err(reason @ (FetchError::BadToken | FetchError::WrongJob(_)))) => {
                return Err(FetchFailure::Refused {
                    host: host.to_string(),
                    reason,
                })
            }
            Ok(Err(reason)) => {
                return Err(FetchFailure::Unavailable {
                    host: host.to_string(),
                    reason,
                })
            }
            Err(e) => {
                last = e.to_string();
                peers.forget(host).await;
                // A holder that takes the connection but never answers (a
                // stopped process) is given up on after two deadlines, not five.
                if matches!(e, tarpc::client::RpcError::DeadlineExceeded) {
                    timeouts += 1;
                    if timeouts >= 2 {
                        break;
                    }
                }
            }
        }
    }
    warn!(%host, map = %req.map, "giving up fetching: {last}");
    Err(FetchFailure::Unreachable {
        host: host.to_string(),
        last,
    })
}

/// Why a chunk was not accepted by an [`Intake`].
#[derive(Debug)]
pub enum IntakeError {
    /// The holder's bytes or claims are wrong.
    Damage(Damage),
    /// Writing the verified bytes failed.
    Write(std::io::Error),
}

/// Takes a holder's answers for one partition into a file: checks each
/// answer's claims before keeping any byte of it, then its bytes block by
/// block (`len u32 | payload | crc32c u32`), writing each whole, verified
/// block. A hostile or broken holder can neither stream forever nor make
/// the reducer hold more than a chunk and a block.
pub struct Intake {
    file: File,
    /// Bytes of a block not yet whole.
    carry: Vec<u8>,
    /// Bytes taken so far: where the next request starts.
    offset: u64,
    /// The partition length the first answer gave.
    promised: Option<u64>,
    /// The map output's whole size as its map reported it (0: unknown).
    limit: u64,
}

impl Intake {
    /// Takes a partition into `file`, of a map output of `limit` bytes.
    pub fn new(file: File, limit: u64) -> Intake {
        Intake {
            file,
            carry: Vec::new(),
            offset: 0,
            promised: None,
            limit,
        }
    }

    /// Takes one answer; true once the whole promised partition is in.
    /// Blocking (checksums and a file write).
    pub fn accept(&mut self, chunk: &FetchChunk) -> Result<bool, IntakeError> {
        let n = chunk.data.len() as u64;
        let len = *self.promised.get_or_insert(chunk.partition_len);
        let damage = |d| Err(IntakeError::Damage(d));
        if chunk.partition_len != len {
            return damage(Damage::LengthChanged {
                was: len,
                now: chunk.partition_len,
            });
        }
        if self.limit > 0 && len > self.limit {
            return damage(Damage::Overlong {
                promised: len,
                limit: self.limit,
            });
        }
        if n > u64::from(MAX_CHUNK) || n > len - self.offset.min(len) {
            return damage(Damage::Overrun {
                offset: self.offset,
                got: n,
                promised: len,
                asked: u64::from(MAX_CHUNK),
            });
        }
        self.push(&chunk.data)?;
        self.offset += n;
        if self.offset >= len {
            return Ok(true);
        }
        if n == 0 {
            return damage(Damage::Empty(self.offset));
        }
        Ok(false)
    }

    /// The bytes taken, once the partition is complete: a partition that
    /// ends inside a block is damaged.
    pub fn finish(self) -> Result<u64, Damage> {
        if !self.carry.is_empty() {
            return Err(Damage::Truncated);
        }
        Ok(self.offset)
    }

    fn push(&mut self, data: &[u8]) -> Result<(), IntakeError> {
        self.carry.extend_from_slice(data);
        let mut pos = 0;
        while self.carry.len() - pos >= 8 {
            let len = u32::from_le_bytes(self.carry[pos..pos + 4].try_into().unwrap()) as usize;
            // Bounds what is carried while a block arrives.
            if len > crate::engine::runfile::MAX_BLOCK {
                return Err(IntakeError::Damage(Damage::OversizeBlock(len as u64)));
            }
            if self.carry.len() - pos < 8 + len {
                break;
            }
            let payload = &self.carry[pos + 4..pos + 4 + len];
            let crc = &self.carry[pos + 4 + len..pos + 8 + len];
            if crc32c::crc32c(payload).to_le_bytes() != crc {
                return Err(IntakeError::Damage(Damage::Checksum));
            }
            pos += 8 + len;
        }
        self.file
            .write_all(&self.carry[..pos])
            .map_err(IntakeError::Write)?;
        self.carry.drain(..pos);
        Ok(())
    }
}

/// Removes a directory of fetched partitions.
pub fn discard(dir: &PathBuf) {
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(test)]
mod tests {
    use super::Intake;

    fn block(payload: &[u8]) -> Vec<u8> {
        let mut b = (payload.len() as u32).to_le_bytes().to_vec();
        b.extend_from_slice(payload);
        b.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
        b
    }

    fn verifier(dir: &tempfile::TempDir) -> Intake {
        Intake::new(std::fs::File::create(dir.path().join("part")).unwrap(), 0)
    }

    #[test]
    fn blocks_split_anywhere_arrive_whole_and_a_flipped_byte_is_caught() {
        let stream: Vec<u8> = [block(b"alpha"), block(b""), block(&[7u8; 300])].concat();
        for cut in 0..=stream.len() {
            let dir = tempfile::tempdir().unwrap();
            let mut v = verifier(&dir);
            v.push(&stream[..cut]).unwrap();
            v.push(&stream[cut..]).unwrap();
            assert!(v.carry.is_empty(), "cut at {cut}");
            assert_eq!(std::fs::read(dir.path().join("part")).unwrap(), stream);
        }
        for flip in 0..stream.len() {
            let mut bad = stream.clone();
            bad[flip] ^= 0x10;
            let dir = tempfile::tempdir().unwrap();
            let mut v = verifier(&dir);
            // A flipped length may only leave the stream unfinished; either
            // way nothing unverified is accepted as the whole partition.
            let r = v.push(&bad);
            assert!(
                matches!(r, Err(super::IntakeError::Damage(_))) || !v.carry.is_empty(),
                "flip at {flip} went unnoticed"
            );
        }
    }

    #[test]
    fn a_block_longer_than_any_writer_makes_is_refused_before_it_is_carried() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = verifier(&dir);
        let mut head = (u32::MAX).to_le_bytes().to_vec();
        head.extend_from_slice(&[0u8; 64]);
        let r = v.push(&head);
        assert!(
            matches!(
                r,
                Err(super::IntakeError::Damage(super::Damage::OversizeBlock(n))) if n == u64::from(u32::MAX)
            ),
            "{r:?}"
        );
    }
}
