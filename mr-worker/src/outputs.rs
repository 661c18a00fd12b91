//! The list of accepted map outputs this worker's reduces read, kept
//! between them.
//!
//! A reduce assignment names a version of the coordinator's list, not the
//! list (which is O(M)); the first reduce of a version fetches it in pages
//! and the worker's later reduces of that version (or an older one) use it
//! as it is. A list belongs to one registration: a restarted coordinator
//! numbers its versions afresh, so each session starts with an empty cache.

use mr_protocol::listing::{fetch_map_outputs, OutputsError};
use mr_protocol::{CoordinatorClient, MapOutputs, OutputsVersion, WorkerId};

/// The newest list this session fetched.
#[derive(Default)]
pub(crate) struct OutputsCache {
    /// One fetch at a time: reduces running side by side that need the
    /// same version wait for the first one's fetch and share its result.
    held: tokio::sync::Mutex<Option<(OutputsVersion, MapOutputs)>>,
}

impl OutputsCache {
    /// The list of version `v`, or a newer one: from the cache, else
    /// fetched (and then kept).
    pub(crate) async fn get(
        &self,
        client: &CoordinatorClient,
        worker: WorkerId,
        v: OutputsVersion,
    ) -> Result<MapOutputs, OutputsError> {
        let mut held = self.held.lock().await;
        if let Some((have, list)) = &*held {
            if have.version >= v.version {
                return Ok(list.clone());
            }
        }
        let (got, list) = fetch_map_outputs(client, worker, v).await?;
        *held = Some((got, list.clone()));
        Ok(list)
    }
}
