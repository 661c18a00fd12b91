//! Reading objects: listing keys for the planner (one object or a glob
//! over keys) and fetching byte ranges for workers, with the planned ETag
//! as a precondition so a changed object is noticed, never half-read.

use crate::{client, run, store_error, ObjectUrl, StoreError, SCHEME};
use futures::TryStreamExt;
use mr_protocol::plan::{InputFile, PlanError};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore};

/// Everything before the first glob character: what to list.
pub(crate) fn literal_prefix(pattern: &str) -> &str {
    let end = pattern.find(['*', '?', '[']).unwrap_or(pattern.len());
    &pattern[..end]
}

/// The objects `arg` names: one object, or every object whose key matches
/// its glob pattern (listed under the pattern's literal prefix), in key
/// order, with size and ETag from the listing.
pub fn list(arg: &str) -> Result<Vec<InputFile>, StoreError> {
    let url = ObjectUrl::parse(arg)?;
    let store = client(&url)?;
    let pattern = url.key.clone();
    let prefix = literal_prefix(&pattern).to_string();
    let is_glob = prefix.len() < pattern.len();
    let matcher = match is_glob {
        true => Some(
            glob::Pattern::new(&pattern).map_err(|_| StoreError::BadUrl {
                url: arg.to_string(),
                why: "not a valid glob pattern",
            })?,
        ),
        false => None,
    };
    let bucket = url.bucket.clone();
    let listed = run(async move {
        // The listing is by "directory" prefix; the rest of the literal
        // prefix is matched below with the pattern.
        let dir = prefix.rsplit_once('/').map(|(d, _)| d.to_string());
        let dir = dir.map(ObjectPath::from);
        store.list(dir.as_ref()).try_collect::<Vec<_>>().await
    })
    .map_err(|e| store_error(arg, e))?;
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    let mut found: Vec<InputFile> = listed
        .into_iter()
        .filter(|m| {
            let key = m.location.as_ref();
            match &matcher {
                Some(p) => p.matches_with(key, opts),
                None => key == pattern,
            }
        })
        .map(|m| {
            let url = format!("{SCHEME}{bucket}/{}", m.location);
            InputFile {
                name: url.clone(),
                path: url.into(),
                len: m.size,
                version: m.e_tag,
            }
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    if found.is_empty() {
        return Err(match is_glob {
            true => StoreError::NoMatch(arg.to_string()),
            false => StoreError::Missing {
                url: arg.to_string(),
            },
        });
    }
    Ok(found)
}

/// Bytes this process has read from object stores.
static BYTES_READ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Bytes this process has read from object stores so far (a worker runs one
/// attempt at a time, so the difference across an attempt is its own).
pub fn bytes_read() -> u64 {
    BYTES_READ.load(std::sync::atomic::Ordering::Relaxed)
}

/// Adds `n` bytes to what this process has read from object stores.
pub(crate) fn count_read(n: usize) {
    BYTES_READ.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
}

/// Bytes `range` of the object at `url`, which must still have ETag
/// `etag` (when one was planned); retried by the client on 5xx and
/// timeouts.
pub fn read_range(
    url: &str,
    etag: Option<&str>,
    range: std::ops::Range<u64>,
) -> Result<bytes::Bytes, StoreError> {
    let parsed = ObjectUrl::parse(url)?;
    let store = client(&parsed)?;
    if range.is_empty() {
        return Ok(bytes::Bytes::new());
    }
    let path = ObjectPath::from(parsed.key.as_str());
    let opts = GetOptions {
        if_match: etag.map(str::to_string),
        range: Some(GetRange::Bounded(range)),
        ..GetOptions::default()
    };
    let got = run(async move {
        let r = store.get_opts(&path, opts).await?;
        r.bytes().await
    });
    if let Ok(b) = &got {
        count_read(b.len());
    }
    got.map_err(|e| match e {
        object_store::Error::Precondition { .. } => StoreError::Changed {
            url: url.to_string(),
            etag: etag.unwrap_or_default().to_string(),
        },
        other => store_error(url, other),
    })
}

/// Reads an object from its start in large ranged GETs, as a stream (for
/// decompressing): a `Read` over the object's bytes.
pub struct ObjectReader {
    url: String,
    etag: Option<String>,
    len: u64,
    at: u64,
    buf: bytes::Bytes,
}

/// Bytes per GET of a sequential read.
const READ_STEP: u64 = 8 << 20;

impl ObjectReader {
    /// A reader of the `len` bytes of the object at `url` (ETag `etag`).
    pub fn new(url: &str, etag: Option<&str>, len: u64) -> ObjectReader {
        ObjectReader {
            url: url.to_string(),
            etag: etag.map(str::to_string),
            len,
            at: 0,
            buf: bytes::Bytes::new(),
        }
    }

    /// Starts reading at byte `at` (the bytes before it were had otherwise).
    pub fn skip_to(&mut self, at: u64) {
        self.at = at.min(self.len);
        self.buf = bytes::Bytes::new();
    }
}

impl std::io::Read for ObjectReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.buf.is_empty() {
            if self.at >= self.len {
                return Ok(0);
            }
            let end = (self.at + READ_STEP).min(self.len);
            self.buf = read_range(&self.url, self.etag.as_deref(), self.at..end)
                .map_err(std::io::Error::other)?;
            if self.buf.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("{} ended at {} of {} bytes", self.url, self.at, self.len),
                ));
            }
            self.at += self.buf.len() as u64;
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf.split_to(n));
        Ok(n)
    }
}

/// The planner's view of object inputs.
pub struct Lister;

impl mr_protocol::plan::ObjectLister for Lister {
    fn list(&self, arg: &str) -> Result<Vec<InputFile>, PlanError> {
        list(arg).map_err(|e| PlanError::Object(Box::new(e)))
    }
}
