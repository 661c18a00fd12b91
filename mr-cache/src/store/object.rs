//! A cache under an object store prefix (`s3://BUCKET/prefix/mr-cache-v2/`):
//! an object appears whole when written, so entries need no temporary
//! names (data first, then meta, as in a directory); a use rewrites the
//! (small) meta, which renews its modification time for eviction. A store
//! that cannot be reached is a miss, and says so.

use super::{CacheFile, Data, Kind, Medium};
use std::path::Path;
use std::time::SystemTime;

/// The cache's prefix of this format, ending in `/`.
#[derive(Debug)]
pub(super) struct Prefix {
    root: String,
}

impl Prefix {
    /// The cache whose format's prefix is `root` (checked by the caller).
    pub(super) fn new(root: String) -> Prefix {
        Prefix { root }
    }
}

impl Medium for Prefix {
    fn shown(&self) -> String {
        self.root.clone()
    }

    fn at(&self, kind: Kind, name: &str) -> String {
        format!("{}{}/{name}", self.root, kind.dir())
    }

    fn remote(&self) -> bool {
        true
    }

    fn read_dated(&self, at: &str) -> Option<(Vec<u8>, Option<SystemTime>)> {
        match mr_store::blob::get(at) {
            Ok(got) => got.map(|(b, t)| (b.to_vec(), Some(t))),
            Err(e) => {
                tracing::warn!("reading the cache: {e}; taken as a miss");
                None
            }
        }
    }

    fn fetch(&self, at: &str, dest: &Path) -> bool {
        match mr_store::blob::get_to_file(at, dest) {
            Ok(got) => got.is_some(),
            Err(e) => {
                tracing::warn!("reading the cache: {e}; taken as a miss");
                false
            }
        }
    }

    fn remove(&self, at: &str) {
        let _ = mr_store::blob::delete(at);
    }

    fn touch(&self, meta: &str, bytes: &[u8]) {
        let _ = mr_store::blob::put(meta, bytes.to_vec());
    }

    fn write_entry(
        &self,
        data_at: &str,
        meta_at: &str,
        data: Data<'_>,
        header: &[u8],
    ) -> Result<(), String> {
        let store = |e: mr_store::StoreError| e.to_string();
        match data {
            Data::File(p) => mr_store::blob::put_file(data_at, p).map_err(store)?,
            Data::Bytes(b) => mr_store::blob::put(data_at, b.to_vec()).map_err(store)?,
        }
        mr_store::blob::put(meta_at, header.to_vec()).map_err(store)
    }

    fn files(&self) -> (String, Vec<CacheFile>) {
        let listed = match mr_store::blob::list_under(&self.root) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("listing the cache: {e}");
                Vec::new()
            }
        };
        let files = listed
            .into_iter()
            .map(|o| CacheFile {
                at: o.url,
                modified: o.modified,
                size: o.size,
            })
            .collect();
        (self.root.clone(), files)
    }
}
