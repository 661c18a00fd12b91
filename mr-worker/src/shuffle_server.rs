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

use crate::local::LocalStore;
use crate::runfile::{RunError, RunFile};
use futures::StreamExt;
use mr_coordinator::protocol::{FetchChunk, FetchError, FetchRequest, Shuffle, MAX_CHUNK};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tarpc::context::Context;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;
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
        if !mr_coordinator::token::matches(&req.token, &adm.token) {
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
            let run = RunFile::open(&path, req.map.0, adm.reduces)?;
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
) -> std::io::Result<(Arc<ShuffleState>, SocketAddr)> {
    let mut listener = tarpc::serde_transport::tcp::listen(listen, Bincode::default).await?;
    listener
        .config_mut()
        .max_frame_length(mr_coordinator::MAX_FRAME);
    let addr = listener.local_addr();
    let state = Arc::new(ShuffleState {
        store,
        admission: Mutex::new(None),
    });
    let shared = state.clone();
    tokio::spawn(async move {
        listener
            // A failed accept drops that one connection only.
            .filter_map(|r| std::future::ready(r.ok()))
            .for_each(|transport| {
                let handler = Handler(shared.clone());
                tokio::spawn(async move {
                    // Garbage from a stranger only ends its own channel.
                    BaseChannel::with_defaults(transport)
                        .execute(handler.serve())
                        .for_each(|call| async {
                            tokio::spawn(call);
                        })
                        .await;
                });
                std::future::ready(())
            })
            .await;
    });
    info!(%addr, "serving map outputs");
    Ok((state, addr))
}
