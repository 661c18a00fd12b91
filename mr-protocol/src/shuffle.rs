//! The worker-to-worker part of the wire: the shuffle service through
//! which reducers fetch their partitions of map outputs kept on other
//! workers' disks (when workers share no file system).

use crate::ids::{AttemptId, MapTaskId, ReduceTaskId};
use serde::{Deserialize, Serialize};

/// A reducer asking a worker for part of one partition of a map output.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FetchRequest {
    /// The job's token (empty when the job runs without one).
    pub token: String,
    /// The job's id: a worker serves only its current job.
    pub job_id: String,
    /// The map task.
    pub map: MapTaskId,
    /// Its accepted attempt.
    pub attempt: AttemptId,
    /// The partition (reduce task) wanted.
    pub reduce: ReduceTaskId,
    /// Offset within the partition's byte range.
    pub offset: u64,
    /// Most bytes to return (at most [`crate::MAX_CHUNK`]).
    pub max: u32,
}

/// Bytes of a partition: whole checksummed blocks as the run file holds
/// them, which the reducer verifies on arrival.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FetchChunk {
    /// Length of the whole partition, so the reducer knows when it is done.
    pub partition_len: u64,
    /// The bytes at the requested offset.
    pub data: serde_bytes::ByteBuf,
}

/// Why a worker would not serve a fetch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum FetchError {
    /// Wrong or missing token.
    #[error("the worker refused the job token")]
    BadToken,
    /// The worker serves another job.
    #[error("the worker serves job {0}")]
    WrongJob(String),
    /// The worker holds no such map output (never made it, or discarded it).
    #[error("the worker holds no output of {map} {attempt}")]
    Unknown {
        /// The map task.
        map: MapTaskId,
        /// The attempt.
        attempt: AttemptId,
    },
    /// The worker's copy failed its own checks.
    #[error("the worker's copy is unusable: {0}")]
    Unusable(String),
}

/// The service every worker that keeps its map outputs on its own disk runs,
/// so reducers elsewhere can fetch their partitions.
#[cfg(feature = "rpc")]
#[tarpc::service]
pub trait Shuffle {
    /// Part of one partition of one map output.
    async fn fetch(req: FetchRequest) -> Result<FetchChunk, FetchError>;
}
