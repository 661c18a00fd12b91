//! Object storage for jobs: inputs named by `s3://BUCKET/KEY` URLs (or
//! glob patterns over keys) in any S3-compatible store, listed by the
//! coordinator and read by workers with ranged GETs, never through the
//! coordinator.
//!
//! The endpoint and credentials come from the standard AWS environment
//! (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, `AWS_REGION` / `AWS_DEFAULT_REGION`); a plain
//! `http://` endpoint is allowed, as for a local test server. Retries are
//! bounded (a few, with backoff, within seconds), so a dead endpoint fails
//! a job quickly instead of retrying for minutes.
//!
//! Callers are synchronous (the planner, the map engine's threads): each
//! call runs on this crate's own small tokio runtime and the caller blocks
//! on its result, so no caller needs a runtime of its own, and none of the
//! async client leaks into the engines.

use futures::TryStreamExt;
use mr_protocol::plan::{InputFile, PlanError};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, RetryConfig};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The URL scheme of object inputs.
pub const SCHEME: &str = "s3://";

/// Bytes as the store returns them (cheap to slice and share).
pub use bytes::Bytes;

/// Why an object could not be listed or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is not `s3://BUCKET/KEY`.
    #[error("'{url}' is not a valid object URL ({why}); write s3://BUCKET/KEY or s3://BUCKET/prefix/*.txt")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The store could not be set up from the environment.
    #[error("cannot use the object store for {url}: {reason}; set AWS_ENDPOINT_URL, AWS_REGION and credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)")]
    Config {
        /// The URL.
        url: String,
        /// What the client said.
        reason: String,
    },
    /// The object is not there.
    #[error("object {url} does not exist")]
    Missing {
        /// The URL.
        url: String,
    },
    /// A pattern matched no object.
    #[error("no object matches {0}; check the bucket, prefix and pattern")]
    NoMatch(String),
    /// The object changed since the job was planned.
    #[error("object {url} changed since the job was planned (its ETag is no longer {etag}); inputs must not change during a job")]
    Changed {
        /// The URL.
        url: String,
        /// The ETag planned.
        etag: String,
    },
    /// Anything else the store or the network said.
    #[error("object store error on {url}: {reason}")]
    Store {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

/// An object (or key pattern) in a bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectUrl {
    /// The bucket.
    pub bucket: String,
    /// The key, or a glob pattern over keys.
    pub key: String,
}

impl ObjectUrl {
    /// Parses `s3://BUCKET/KEY`.
    pub fn parse(url: &str) -> Result<ObjectUrl, StoreError> {
        let bad = |why| StoreError::BadUrl {
            url: url.to_string(),
            why,
        };
        let rest = url.strip_prefix(SCHEME).ok_or_else(|| bad("not s3://"))?;
        let (bucket, key) = rest
            .split_once('/')
            .ok_or_else(|| bad("no key after the bucket"))?;
        if bucket.is_empty() {
            return Err(bad("no bucket"));
        }
        if key.is_empty() {
            return Err(bad("no key after the bucket"));
        }
        Ok(ObjectUrl {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }

    /// The URL again.
    pub fn url(&self) -> String {
        format!("{SCHEME}{}/{}", self.bucket, self.key)
    }
}

/// Whether an input argument names objects rather than local files.
pub fn is_object_url(arg: &str) -> bool {
    arg.starts_with(SCHEME)
}

/// The runtime every store call runs on.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mr-store")
            .enable_all()
            .build()
            .expect("cannot start the object store's runtime")
    })
}

/// Runs `fut` on the store's runtime and waits for it, from any thread
/// (also from inside another runtime's blocking section).
fn run<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    let handle = runtime().spawn(fut);
    futures::executor::block_on(handle).expect("an object store call panicked")
}

/// One client per bucket, made from the environment on first use.
fn client(url: &ObjectUrl) -> Result<Arc<AmazonS3>, StoreError> {
    static CLIENTS: OnceLock<Mutex<HashMap<String, Arc<AmazonS3>>>> = OnceLock::new();
    let clients = CLIENTS.get_or_init(Default::default);
    let mut map = clients.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = map.get(&url.bucket) {
        return Ok(c.clone());
    }
    // Plain http when the endpoint says so, or AWS_ALLOW_HTTP=true (the
    // client options below replace the ones from_env read, so both are
    // looked at here).
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let allow_http = env("AWS_ENDPOINT_URL").starts_with("http://")
        || env("AWS_ALLOW_HTTP").eq_ignore_ascii_case("true");
    // The client options carry "allow http" too: set it there, since
    // options given later replace earlier ones.
    let store = AmazonS3Builder::from_env()
        .with_bucket_name(&url.bucket)
        .with_client_options(
            ClientOptions::new()
                .with_allow_http(allow_http)
                .with_connect_timeout(Duration::from_secs(3))
                .with_timeout(Duration::from_secs(60)),
        )
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 3.0,
            },
            max_retries: 4,
            retry_timeout: Duration::from_secs(15),
        })
        .build()
        .map_err(|e| StoreError::Config {
            url: url.url(),
            reason: e.to_string(),
        })?;
    let store = Arc::new(store);
    map.insert(url.bucket.clone(), store.clone());
    Ok(store)
}

/// Turns the client's error into ours, naming `url`.
fn store_error(url: &str, e: object_store::Error) -> StoreError {
    match e {
        object_store::Error::NotFound { .. } => StoreError::Missing {
            url: url.to_string(),
        },
        other => StoreError::Store {
            url: url.to_string(),
            reason: other.to_string(),
        },
    }
}

/// Everything before the first glob character: what to list.
fn literal_prefix(pattern: &str) -> &str {
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
        list(arg).map_err(|e| PlanError::Object(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_bad_ones_are_named() {
        assert_eq!(
            ObjectUrl::parse("s3://b/logs/a.gz").unwrap(),
            ObjectUrl {
                bucket: "b".into(),
                key: "logs/a.gz".into()
            }
        );
        for bad in [
            "s3://",
            "s3://bucket",
            "s3://bucket/",
            "s3:///key",
            "gs://b/k",
        ] {
            let e = ObjectUrl::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("s3://BUCKET/KEY"), "{e}");
        }
        assert_eq!(literal_prefix("logs/2024-*/x?.txt"), "logs/2024-");
        assert_eq!(literal_prefix("plain/key"), "plain/key");
    }
}
