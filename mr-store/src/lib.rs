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

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{BackoffConfig, ClientOptions, RetryConfig};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub mod blob;
mod error;
mod pending;
mod read;
mod write;

use error::store_error;
pub use error::{ErrorKind, StoreError};
pub use pending::{pending_uploads, PendingUpload};
pub use read::{bytes_read, list, read_range, Lister, ObjectReader};
pub use write::{
    abort_upload, complete_upload, delete_object, exists, get_object, head_object, probe_writable,
    put_if, put_object, ObjectHead, PartWriter, Versioned,
};

/// The URL scheme of object inputs.
pub const SCHEME: &str = "s3://";

/// Bytes as the store returns them (cheap to slice and share).
pub use bytes::Bytes;

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

    /// Parses an output prefix, `s3://BUCKET/` or `s3://BUCKET/dir/`: the
    /// key part (possibly empty) is a "directory", so it ends with `/`.
    pub fn parse_prefix(url: &str) -> Result<ObjectUrl, StoreError> {
        let bad = |why| StoreError::BadUrl {
            url: url.to_string(),
            why,
        };
        let rest = url.strip_prefix(SCHEME).ok_or_else(|| bad("not s3://"))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket"));
        }
        if key.contains(['*', '?', '[']) {
            return Err(bad("an output prefix cannot be a pattern"));
        }
        let mut key = key.to_string();
        if !key.is_empty() && !key.ends_with('/') {
            key.push('/');
        }
        Ok(ObjectUrl {
            bucket: bucket.to_string(),
            key,
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

/// Installs rustls on ring as the process's TLS provider (a no-op if one
/// is installed): reqwest is built without a provider of its own, so the
/// S3 client speaks TLS as the rest of the project does. Called before any
/// client is built.
pub fn use_ring() {
    let _ = rustls::crypto::ring::default_provider().install_default();
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

/// Starts `fut` on the store's runtime; the handle may be awaited from
/// any runtime (the coordinator's) or blocked on from any thread.
fn spawn<T: Send + 'static>(
    fut: impl Future<Output = T> + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    runtime().spawn(fut)
}

/// Runs `fut` on the store's runtime and waits for it, from a thread that
/// may block (never a runtime's worker thread).
fn run<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    futures::executor::block_on(spawn(fut)).expect("an object store call panicked")
}

/// A bucket's client, and the HTTP options a request the client cannot
/// make itself (listing open uploads) is sent with.
struct Connection {
    store: Arc<AmazonS3>,
    options: ClientOptions,
}

/// One client per bucket, made from the environment on first use.
fn client(url: &ObjectUrl) -> Result<Arc<AmazonS3>, StoreError> {
    connection(url).map(|c| c.store.clone())
}

/// The bucket's connection, made on first use.
fn connection(url: &ObjectUrl) -> Result<Arc<Connection>, StoreError> {
    static CLIENTS: OnceLock<Mutex<HashMap<String, Arc<Connection>>>> = OnceLock::new();
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
    let options = ClientOptions::new()
        .with_allow_http(allow_http)
        .with_connect_timeout(Duration::from_secs(3))
        .with_timeout(Duration::from_secs(60));
    use_ring();
    let builder = AmazonS3Builder::from_env().with_bucket_name(&url.bucket);
    let store = builder
        .with_client_options(options.clone())
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
    let conn = Arc::new(Connection {
        store: Arc::new(store),
        options,
    });
    map.insert(url.bucket.clone(), conn.clone());
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use read::literal_prefix;

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

    #[test]
    fn output_prefixes_parse_as_directories() {
        let p = |u: &str| ObjectUrl::parse_prefix(u).map(|o| o.url());
        assert_eq!(p("s3://b/out").unwrap(), "s3://b/out/");
        assert_eq!(p("s3://b/out/").unwrap(), "s3://b/out/");
        assert_eq!(p("s3://b").unwrap(), "s3://b/");
        assert_eq!(p("s3://b/").unwrap(), "s3://b/");
        for bad in ["s3:///x", "s3://b/out/*", "gs://b/x"] {
            let e = ObjectUrl::parse_prefix(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }
}
