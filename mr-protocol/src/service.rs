//! The coordinator's RPC service: the one trait that is the whole
//! coordinator <-> worker protocol. The coordinator serves it; workers hold
//! its generated client. No call stays open for the length of a task: a
//! worker asks for work, runs it locally, and reports back in a separate call.

use crate::ids::{AttemptId, WorkerId};
use crate::messages::{
    Assignment, HeartbeatReply, JobSettings, OutputsPage, ProtocolError, RegisterError,
    RegisterRequest, Reported, TaskFailure, TaskOutput, WorkerPlace,
};
use std::path::PathBuf;

/// The coordinator's RPC service: the whole protocol.
#[tarpc::service]
pub trait Coordinator {
    /// Joins the job.
    async fn register(req: RegisterRequest) -> Result<JobSettings, RegisterError>;
    /// Asks for the next thing to do. With nothing to do yet, the answer
    /// is held until there is (or the job ends), for at most the pause a
    /// `Wait` would suggest: a long poll, so that an idle worker starts the
    /// moment work appears.
    async fn request_task(worker: WorkerId) -> Result<Assignment, ProtocolError>;
    /// Reports how an attempt ended; with `next`, the answer also carries
    /// the worker's next assignment (its slot is free), saving a
    /// `request_task` (a worker about to leave asks for none). An answer
    /// with nothing to do yet carries none: the worker's `request_task`
    /// then waits for work.
    async fn report(
        worker: WorkerId,
        attempt: AttemptId,
        outcome: Result<TaskOutput, TaskFailure>,
        next: bool,
    ) -> Result<Reported, ProtocolError>;
    /// Says the worker is alive and which attempts it holds.
    async fn heartbeat(
        worker: WorkerId,
        running: Vec<AttemptId>,
    ) -> Result<HeartbeatReply, ProtocolError>;
    /// Tells where the worker stands (shared directory or not, its shuffle
    /// address, which inputs it reads itself); sent once after registering.
    async fn announce(worker: WorkerId, place: WorkerPlace) -> Result<(), ProtocolError>;
    /// A page of the list of accepted map outputs a reduce reads, from map
    /// `from` on (see [`crate::OutputsVersion`]): of `version` while it is
    /// the newest, else of the newest. Pages are at most
    /// [`crate::OUTPUTS_PAGE`] entries, so no answer is O(M).
    async fn map_outputs(
        worker: WorkerId,
        version: u64,
        from: u32,
    ) -> Result<OutputsPage, ProtocolError>;
    /// Bytes `offset..offset+len` (at most [`crate::MAX_CHUNK`]) of a planned input
    /// file, for a worker that cannot read it itself. Shorter only at the
    /// end of the file.
    async fn read_input(
        worker: WorkerId,
        path: PathBuf,
        offset: u64,
        len: u32,
    ) -> Result<serde_bytes::ByteBuf, ProtocolError>;
    /// Writes a chunk of reduce attempt `attempt`'s output at `offset`
    /// (chunks in order, from 0) into its uncommitted file beside the
    /// outputs; after the `last` one the file is on disk, and the success
    /// report commits it like one written there directly.
    async fn upload_output(
        worker: WorkerId,
        attempt: AttemptId,
        offset: u64,
        data: serde_bytes::ByteBuf,
        last: bool,
    ) -> Result<(), ProtocolError>;
}
