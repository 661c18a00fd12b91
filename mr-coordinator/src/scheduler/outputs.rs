//! The list of accepted map outputs that reduces read, in pages.
//!
//! A reduce must learn where each of the M map outputs is. Sent inside
//! every reduce assignment, that made each assignment O(M) and handing out
//! R reduces at once O(R x M) in the coordinator (a million maps: 7 MB an
//! assignment). Instead the list is built once per version, cut into pages
//! of [`OUTPUTS_PAGE`] entries, each encoded once on its first send and
//! shared by every reader; an assignment names only the version.

use super::tasks::Task;
use mr_protocol::{MapOutputRef, MapOutputs, MapTaskId, OutputsPage, OutputsVersion, OUTPUTS_PAGE};

/// One version of the list, in pages.
pub(crate) struct OutputsList {
    /// Its version: 1 for the first list, one more for each rebuild.
    pub(crate) version: u64,
    /// Entries in all: the job's number of maps.
    pub(crate) maps: u32,
    /// Pages of [`OUTPUTS_PAGE`] entries (the last may be shorter).
    pub(crate) pages: Vec<MapOutputs>,
}

impl OutputsList {
    /// Version `version` of the list, from the map tasks (every one done).
    pub(crate) fn build(version: u64, maps: &[Task]) -> OutputsList {
        let pages = maps
            .chunks(OUTPUTS_PAGE as usize)
            .enumerate()
            .map(|(k, tasks)| {
                let first = k * OUTPUTS_PAGE as usize;
                tasks
                    .iter()
                    .enumerate()
                    .map(|(i, t)| MapOutputRef {
                        map: MapTaskId((first + i) as u32),
                        attempt: t.done.expect("every map is done"),
                        host: t.holder.clone(),
                        in_job_dir: t.in_job_dir,
                        bytes: t.output_bytes,
                    })
                    .collect()
            })
            .collect();
        OutputsList {
            version,
            maps: maps.len() as u32,
            pages,
        }
    }

    /// What a reduce assignment names.
    pub(crate) fn version(&self) -> OutputsVersion {
        OutputsVersion {
            version: self.version,
            maps: self.maps,
        }
    }

    /// The entries from map `from` on, at most a page: the page itself
    /// when `from` starts one (what readers ask), else its tail.
    pub(crate) fn page(&self, from: u32) -> OutputsPage {
        let (k, skip) = (
            (from / OUTPUTS_PAGE) as usize,
            (from % OUTPUTS_PAGE) as usize,
        );
        let outputs = match self.pages.get(k) {
            Some(p) if skip == 0 => p.clone(),
            Some(p) => p.get(skip..).unwrap_or_default().iter().cloned().collect(),
            None => MapOutputs::default(),
        };
        OutputsPage {
            version: self.version,
            maps: self.maps,
            from: from.min(self.maps),
            outputs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mr_protocol::AttemptId;

    fn list(maps: u32) -> OutputsList {
        let all: Vec<MapOutputRef> = (0..maps)
            .map(|m| MapOutputRef {
                map: MapTaskId(m),
                attempt: AttemptId(u64::from(m) + 7),
                host: None,
                in_job_dir: true,
                bytes: 1,
            })
            .collect();
        OutputsList {
            version: 3,
            maps,
            pages: all
                .chunks(OUTPUTS_PAGE as usize)
                .map(|c| MapOutputs::new(c.to_vec()))
                .collect(),
        }
    }

    #[test]
    fn pages_cover_the_list_once_in_order_and_a_tail_starts_where_asked() {
        let maps = OUTPUTS_PAGE * 2 + 5;
        let l = list(maps);
        let mut from = 0;
        let mut seen = Vec::new();
        while from < maps {
            let p = l.page(from);
            assert_eq!((p.version, p.maps, p.from), (3, maps, from));
            assert!(!p.outputs.is_empty() && p.outputs.len() <= OUTPUTS_PAGE as usize);
            seen.extend(p.outputs.iter().map(|o| o.map.0));
            from += p.outputs.len() as u32;
        }
        assert_eq!(seen, (0..maps).collect::<Vec<_>>());
        assert_eq!(l.pages.len(), 3);
        let tail = l.page(OUTPUTS_PAGE + 10);
        assert_eq!(tail.outputs.len(), OUTPUTS_PAGE as usize - 10);
        assert_eq!(tail.outputs[0].map, MapTaskId(OUTPUTS_PAGE + 10));
        // Past the end, and a list of no maps: an empty page.
        assert!(l.page(maps).outputs.is_empty());
        assert!(l.page(maps + 100).outputs.is_empty());
        assert_eq!(l.page(maps + 100).from, maps);
        assert!(list(0).page(0).outputs.is_empty());
    }
}
