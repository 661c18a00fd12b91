//! Reading the coordinator's list of accepted map outputs, page by page:
//! what a reduce does with the version its assignment names (see
//! [`crate::OutputsVersion`]). Both `mrworker` and the load generator read
//! it this way.

use crate::ids::WorkerId;
use crate::messages::ProtocolError;
use crate::service::CoordinatorClient;

/// Why a reduce could not read the list of map outputs it was given.
#[derive(Debug, thiserror::Error)]
pub enum OutputsError {
    /// The call failed (the coordinator is gone, or did not answer).
    #[error("cannot read the map outputs list from the coordinator: {0}")]
    Rpc(String),
    /// The coordinator refused.
    #[error("the coordinator refused the map outputs list: {0}")]
    Refused(ProtocolError),
    /// A page that does not continue the list (a coordinator of another
    /// build, or a bug): the list cannot be trusted.
    #[error("the map outputs list came back malformed: {0}")]
    Malformed(String),
    /// The list kept changing while it was read.
    #[error("the map outputs list changed {0} times while it was read")]
    Unsettled(u32),
}

/// Reads the whole list of accepted map outputs `v` in pages, or a newer
/// version of it when the outputs change meanwhile (then the version
/// returned is that one), handing each page's entries to `each` with the
/// map they start at: a page starting at 0 after others begins the list
/// again. Every entry is checked to be the map of its place, so the pages
/// handed over make one entry per map task, in order.
pub async fn read_map_outputs(
    client: &CoordinatorClient,
    worker: WorkerId,
    v: crate::OutputsVersion,
    mut each: impl FnMut(u32, &[crate::MapOutputRef]),
) -> Result<crate::OutputsVersion, OutputsError> {
    const MAX_RESTARTS: u32 = 3;
    let mut version = v.version;
    let mut restarts = 0;
    // The next map to read.
    let mut next = 0u32;
    loop {
        let page = client
            .map_outputs(tarpc::context::current(), worker, version, next)
            .await
            .map_err(|e| OutputsError::Rpc(e.to_string()))?
            .map_err(OutputsError::Refused)?;
        if page.version != version {
            // The outputs changed: what was read belongs to the old list.
            restarts += 1;
            if restarts > MAX_RESTARTS {
                return Err(OutputsError::Unsettled(restarts));
            }
            version = page.version;
            next = 0;
            if page.from != 0 {
                continue;
            }
        }
        let fits = u64::from(next) + page.outputs.len() as u64 <= u64::from(page.maps);
        if page.from != next || !fits || (page.outputs.is_empty() && next < page.maps) {
            return Err(OutputsError::Malformed(format!(
                "asked from map {next}, got {} entries from {} of {}",
                page.outputs.len(),
                page.from,
                page.maps
            )));
        }
        for (i, o) in page.outputs.iter().enumerate() {
            if o.map.0 != next + i as u32 {
                return Err(OutputsError::Malformed(format!(
                    "entry {} is {}",
                    next + i as u32,
                    o.map
                )));
            }
        }
        each(next, &page.outputs);
        next += page.outputs.len() as u32;
        if next == page.maps {
            return Ok(crate::OutputsVersion {
                version,
                maps: page.maps,
            });
        }
    }
}

/// Reads the whole list of accepted map outputs `v` (see
/// [`read_map_outputs`]) into one list.
pub async fn fetch_map_outputs(
    client: &CoordinatorClient,
    worker: WorkerId,
    v: crate::OutputsVersion,
) -> Result<(crate::OutputsVersion, crate::MapOutputs), OutputsError> {
    let mut list: Vec<crate::MapOutputRef> = Vec::with_capacity(v.maps as usize);
    let got = read_map_outputs(client, worker, v, |from, entries| {
        list.truncate(from as usize);
        list.extend_from_slice(entries);
    })
    .await?;
    Ok((got, crate::MapOutputs::new(list)))
}
