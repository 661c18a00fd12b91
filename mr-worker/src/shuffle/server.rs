//! The worker's shuffle service: serves byte ranges of one partition of the
//! map outputs it holds, to reducers on other hosts.
//!
//! A request names a map output by (map task, attempt) and a partition;
//! only outputs in the worker's [`LocalStore`] for the current job, asked
//! for with the job's token, are served. Each call opens the run file
//! (checking its header, index and footer, so a damaged file is refused
//! rather than sent) and reads at most [`MAX_CHUNK`] bytes on a blocking
//! thread. The bytes are the run file's own checksummed blocks: the reducer
//! verifies them on arrival.

use crate::engine::runfile::{RunError, RunFile};
use crate::shuffle::local::LocalStore;
use futures::StreamExt;
use mr_protocol::wire::{self, Identity};
use mr_protocol::{FetchChunk, FetchError, FetchRequest, Shuffle, MAX_CHUNK};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tarpc::context::Context;
use tarpc::server::{BaseChannel, Channel};
use tracing::{info, warn};

/// What a fetch must match: the job the worker is in and its token.
#[derive(Clone, Debug, Default)]
pub struct Admission {
    /// The current job's id.
    pub job_id: String,
    /// The job's token (empty when the job runs without one).
    pub token: String,
    /// R, the job's number of partitions.
    pub reduces: u32,
}

/// State every shuffle connection shares.
pub struct ShuffleState {
    store: Arc<LocalStore>,
    admission: Mutex<Option<Admission>>,
}

impl ShuffleState {
    /// Sets (or, after re-registering, updates) what requests must match.
    pub fn admit(&self, a: Admission) {
        *self.admission.lock().unwrap_or_else(|e| e.into_inner()) = Some(a);
    }
}

#[derive(Clone)]
struct Handler(Arc<ShuffleState>);

impl Shuffle for Handler {
    async fn fetch(self, _: Context, req: FetchRequest) -> Result<FetchChunk, FetchError> {
        let Some(adm) = self
            .0
            .admission
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        else {
            return Err(FetchError::WrongJob(String::new()));
        };
        if !mr_protocol::join::matches(&req.token, &adm.token) {
            warn!(map = %req.map, "refused a fetch without the job's token");
            return Err(FetchError::BadToken);
        }
        if req.job_id != adm.job_id {
            return Err(FetchError::WrongJob(adm.job_id));
        }
        let Some(path) = self.0.store.lookup(req.map, req.attempt) else {
            return Err(FetchError::Unknown {
                map: req.map,
                attempt: req.attempt,
            });
        };
        if req.reduce.0 >= adm.reduces {
            return Err(FetchError::Unusable(format!(
                "no partition {} (the job has {})",
                req.reduce.0, adm.reduces
            )));
        }
        let read = move || -> Result<FetchChunk, RunError> {
            let run = RunFile::open(&path, Some(req.map.0), adm.reduces)?;
            let (start, len) = run.extent(req.reduce.0);
            let offset = req.offset.min(len);
            let n = (len - offset).min(u64::from(req.max.min(MAX_CHUNK))) as usize;
            let mut data = vec![0u8; n];
            run.read_at(&mut data, start + offset)?;
            Ok(FetchChunk {
                partition_len: len,
                data: serde_bytes::ByteBuf::from(data),
            })
        };
        match tokio::task::spawn_blocking(read).await {
            Ok(Ok(chunk)) => Ok(chunk),
            Ok(Err(e)) => Err(FetchError::Unusable(e.to_string())),
            Err(e) => Err(FetchError::Unusable(format!("read failed: {e}"))),
        }
    }
}

/// Starts the shuffle service on `listen` (port 0 for any free port) and
/// returns its state and the address it is bound to.
pub async fn start(
    listen: &str,
    store: Arc<LocalStore>,
    identity: Option<Identity>,
) -> std::io::Result<(Arc<ShuffleState>, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(ShuffleState {
        store,
        admission: Mutex::new(None),
    });
    let shared = state.clone();
    tokio::spawn(wire::accept_loop(
        listener,
        identity,
        "shuffle",
        move |stream| {
            let handler = Handler(shared.clone());
            // Garbage from a stranger only ends its own channel.
            tokio::spawn(
                BaseChannel::with_defaults(wire::transport(stream))
                    .execute(handler.serve())
                    .for_each(|call| async {
                        tokio::spawn(call);
                    }),
            );
        },
    ));
    info!(%addr, "serving map outputs");
    Ok((state, addr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::runfile::RunWriter;
    use mr_protocol::{AttemptId, MapTaskId, ReduceTaskId, ShuffleClient};

    #[tokio::test]
    async fn only_known_outputs_of_the_job_with_its_token_are_served() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalStore::create(Some(dir.path())).unwrap());
        let (m, a) = (MapTaskId(3), AttemptId(11));
        let path = store.map_output(m, a);
        let mut w = RunWriter::create(&path, 3, 2).unwrap();
        w.end_partition().unwrap();
        w.push(b"key", b"value").unwrap();
        w.end_partition().unwrap();
        w.finish().unwrap();
        store.serve(m, a, path.clone());
        // Over TLS, as a job's shuffle runs by default.
        let id = Identity::generate().unwrap();
        let (state, addr) = start("127.0.0.1:0", store.clone(), Some(id.clone()))
            .await
            .unwrap();
        state.admit(Admission {
            job_id: "job".into(),
            token: "t0ken".into(),
            reduces: 2,
        });
        let five = std::time::Duration::from_secs(5);
        let (stream, _, _) = wire::connect(&addr.to_string(), Some(id.fingerprint()), five)
            .await
            .unwrap();
        let c =
            ShuffleClient::new(tarpc::client::Config::default(), wire::transport(stream)).spawn();
        let req = |token: &str, job: &str, attempt: u64, reduce: u32| FetchRequest {
            token: token.into(),
            job_id: job.into(),
            map: m,
            attempt: AttemptId(attempt),
            reduce: ReduceTaskId(reduce),
            offset: 0,
            max: MAX_CHUNK,
        };
        let ctx = tarpc::context::current;
        let got = c
            .fetch(ctx(), req("t0ken", "job", 11, 1))
            .await
            .unwrap()
            .unwrap();
        let run = RunFile::open(&path, Some(3), 2).unwrap();
        let (off, len) = run.extent(1);
        assert_eq!(got.partition_len, len);
        assert_eq!(
            &got.data[..],
            &std::fs::read(&path).unwrap()[off as usize..(off + len) as usize]
        );
        let empty = c
            .fetch(ctx(), req("t0ken", "job", 11, 0))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((empty.partition_len, empty.data.len()), (0, 0));
        let refused = |r: Result<FetchChunk, FetchError>| r.unwrap_err();
        assert_eq!(
            refused(c.fetch(ctx(), req("guess", "job", 11, 1)).await.unwrap()),
            FetchError::BadToken
        );
        assert!(matches!(
            refused(c.fetch(ctx(), req("t0ken", "other", 11, 1)).await.unwrap()),
            FetchError::WrongJob(_)
        ));
        assert!(matches!(
            refused(c.fetch(ctx(), req("t0ken", "job", 12, 1)).await.unwrap()),
            FetchError::Unknown { .. }
        ));
        assert!(matches!(
            refused(c.fetch(ctx(), req("t0ken", "job", 11, 2)).await.unwrap()),
            FetchError::Unusable(_)
        ));
        // A damaged copy is refused, not sent.
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(
            refused(c.fetch(ctx(), req("t0ken", "job", 11, 1)).await.unwrap()),
            FetchError::Unusable(_)
        ));
        // Forgotten outputs are no longer served (and are deleted).
        store.forget(m, a);
        assert!(!path.exists());
        assert!(matches!(
            refused(c.fetch(ctx(), req("t0ken", "job", 11, 1)).await.unwrap()),
            FetchError::Unknown { .. }
        ));
    }
}
