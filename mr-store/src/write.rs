//! Writing objects without rename: a reduce attempt streams its output
//! into a multipart upload it never completes ([`PartWriter`]); the
//! coordinator completes the winning attempt's upload when it commits the
//! task (the object then appears whole, or not at all) and aborts every
//! other. Small objects (the `_SUCCESS` manifest, the report) are plain PUTs.
//!
//! Each upload carries a tag of its own, a random name stored as the
//! object's metadata (`x-amz-meta-mr-upload`) when the upload starts: the
//! object the completed upload becomes bears it, whatever the store makes
//! its ETag (an MD5 of MD5s, or not, under SSE-KMS), so a restarted
//! coordinator can tell whether an object is the one an upload it journaled
//! produced ([`head_object`]).

use crate::error::from_io;
use crate::{client, run, spawn, store_error, ObjectUrl, StoreError};
use mr_protocol::OutputUpload;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions,
    PutOptions, PutPayload, UpdateVersion,
};
use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;

/// Bytes per part: above S3's 5 MiB minimum for every part but the last.
pub const PART_SIZE: usize = 8 << 20;
/// Parts uploading at once while the writer goes on filling the next.
const PARTS_IN_FLIGHT: usize = 3;

type PartHandle = tokio::task::JoinHandle<object_store::Result<PartId>>;

/// A `Write` that uploads what is written to `url` as a multipart upload,
/// part by part while writing goes on, and leaves it uncompleted: see
/// [`PartWriter::finish`]. Dropped unfinished (the attempt failed), it
/// aborts the upload, so no failed attempt leaves parts behind.
pub struct PartWriter {
    url: String,
    store: Arc<object_store::aws::AmazonS3>,
    path: ObjectPath,
    upload_id: String,
    /// The upload's own tag, stored as the object's metadata.
    tag: String,
    buf: Vec<u8>,
    in_flight: VecDeque<PartHandle>,
    parts: Vec<String>,
    next_part: usize,
    bytes: u64,
    crc: u32,
    finished: bool,
}

impl PartWriter {
    /// Starts a multipart upload to the object at `url`.
    pub fn create(url: &str) -> Result<PartWriter, StoreError> {
        let parsed = ObjectUrl::parse(url)?;
        let store = client(&parsed)?;
        let path = ObjectPath::from(parsed.key.as_str());
        let tag = new_tag()
            .map_err(|e| StoreError::other(url, format!("cannot make the upload's tag: {e}")))?;
        let opts = PutMultipartOptions {
            attributes: Attributes::from_iter([(Attribute::Metadata(TAG_KEY.into()), tag.clone())]),
            ..Default::default()
        };
        let (s, p) = (store.clone(), path.clone());
        let upload_id = run(async move { s.create_multipart_opts(&p, opts).await })
            .map_err(|e| store_error(url, e))?;
        Ok(PartWriter {
            url: url.to_string(),
            store,
            path,
            upload_id,
            tag,
            buf: Vec::with_capacity(PART_SIZE),
            in_flight: VecDeque::new(),
            parts: Vec::new(),
            next_part: 0,
            bytes: 0,
            crc: 0,
            finished: false,
        })
    }

    /// The store's id of this upload.
    pub fn upload_id(&self) -> &str {
        &self.upload_id
    }

    /// Sends the buffered bytes as the next part (in the background).
    fn send_part(&mut self) -> std::io::Result<()> {
        while self.in_flight.len() >= PARTS_IN_FLIGHT {
            self.wait_oldest()?;
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(PART_SIZE));
        let (store, path, id, idx) = (
            self.store.clone(),
            self.path.clone(),
            self.upload_id.clone(),
            self.next_part,
        );
        self.next_part += 1;
        self.in_flight.push_back(spawn(async move {
            store
                .put_part(&path, &id, idx, PutPayload::from(data))
                .await
        }));
        Ok(())
    }

    /// Waits for the oldest part in flight and records its ETag.
    fn wait_oldest(&mut self) -> std::io::Result<()> {
        let Some(h) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let part = futures::executor::block_on(h)
            .map_err(|e| {
                let failed = format!("the upload of a part stopped: {e}");
                std::io::Error::other(StoreError::other(&self.url, failed))
            })?
            .map_err(|e| std::io::Error::other(store_error(&self.url, e)))?;
        self.parts.push(part.content_id);
        Ok(())
    }

    /// Uploads the last part, waits for every part, and returns the upload
    /// for the coordinator to complete (or abort). The object does not
    /// exist until then.
    pub fn finish(mut self) -> Result<OutputUpload, StoreError> {
        // An empty output is one empty part: an upload needs at least one.
        if !self.buf.is_empty() || self.next_part == 0 {
            self.send_part().map_err(|e| from_io(&self.url, e))?;
        }
        while !self.in_flight.is_empty() {
            self.wait_oldest().map_err(|e| from_io(&self.url, e))?;
        }
        self.finished = true;
        Ok(OutputUpload {
            url: self.url.clone(),
            upload_id: self.upload_id.clone(),
            parts: std::mem::take(&mut self.parts),
            bytes: self.bytes,
            crc32c: self.crc,
            tag: self.tag.clone(),
        })
    }
}

impl Write for PartWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(PART_SIZE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        self.crc = crc32c::crc32c_append(self.crc, &data[..n]);
        self.bytes += n as u64;
        if self.buf.len() == PART_SIZE {
            self.send_part()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Parts go when full; the last goes with finish().
        Ok(())
    }
}

impl Drop for PartWriter {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Unfinished: the attempt failed. Parts in flight are dropped with
        // their handles' results; the abort discards whatever arrived.
        let (store, path, id) = (
            self.store.clone(),
            self.path.clone(),
            self.upload_id.clone(),
        );
        let _ = run(async move { store.abort_multipart(&path, &id).await });
    }
}

/// Runs `op` on the store's runtime against the object at `url` (its
/// bucket's client and key); the store's own result is the caller's to
/// read, since what counts as an error differs by call.
async fn on_store<T, F, Fut>(url: &str, op: F) -> Result<object_store::Result<T>, StoreError>
where
    F: FnOnce(Arc<object_store::aws::AmazonS3>, ObjectPath) -> Fut,
    Fut: std::future::Future<Output = object_store::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let parsed = ObjectUrl::parse(url)?;
    let store = client(&parsed)?;
    let path = ObjectPath::from(parsed.key.as_str());
    spawn(op(store, path))
        .await
        .map_err(|e| StoreError::other(url, e))
}

/// Completes `upload`: the object at its URL appears, whole. Returns the
/// object's ETag.
pub async fn complete_upload(upload: &OutputUpload) -> Result<Option<String>, StoreError> {
    let id = upload.upload_id.clone();
    let parts = upload
        .parts
        .iter()
        .map(|p| PartId {
            content_id: p.clone(),
        })
        .collect();
    on_store(&upload.url, |s, p| async move {
        s.complete_multipart(&p, &id, parts).await
    })
    .await?
    .map(|r| r.e_tag)
    .map_err(|e| store_error(&upload.url, e))
}

/// Aborts the multipart upload `upload_id` of the object at `url`: its
/// parts are discarded and the object is not touched. An upload that is
/// not there (already aborted, e.g. by its own worker racing the end of
/// job sweep, or completed) is not an error: the abort's end is reached.
pub async fn abort_upload(url: &str, upload_id: &str) -> Result<(), StoreError> {
    let id = upload_id.to_string();
    match on_store(url, |s, p| async move { s.abort_multipart(&p, &id).await }).await? {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(store_error(url, e)),
    }
}

/// Writes `data` as the object at `url` (one PUT: for small objects).
pub async fn put_object(url: &str, data: Vec<u8>) -> Result<(), StoreError> {
    on_store(url, |s, p| async move {
        s.put(&p, PutPayload::from(data)).await
    })
    .await?
    .map(|_| ())
    .map_err(|e| store_error(url, e))
}

/// Writes `data` as the object at `url` only if the object is as
/// `expect` says: absent (None, `If-None-Match: *`) or with that ETag
/// (`If-Match`). The new object's ETag, or None if the condition failed
/// (another writer got there first): a store-side compare-and-swap.
pub async fn put_if(
    url: &str,
    data: Vec<u8>,
    expect: Option<String>,
) -> Result<Option<String>, StoreError> {
    let mode = match expect {
        None => PutMode::Create,
        Some(e_tag) => PutMode::Update(UpdateVersion {
            e_tag: Some(e_tag),
            version: None,
        }),
    };
    let opts = PutOptions {
        mode,
        ..Default::default()
    };
    match on_store(url, |s, p| async move {
        s.put_opts(&p, PutPayload::from(data), opts).await
    })
    .await?
    {
        Ok(r) => match r.e_tag {
            Some(e_tag) => Ok(Some(e_tag)),
            None => Err(StoreError::other(
                url,
                "the store gave no ETag: conditional writes cannot be used with it",
            )),
        },
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => Ok(None),
        Err(e) => Err(store_error(url, e)),
    }
}

/// A small object as read, with the version it was read at.
#[derive(Clone, Debug)]
pub struct Versioned {
    /// Its bytes.
    pub bytes: bytes::Bytes,
    /// Its ETag when read: what a conditional write (`put_if`) expects.
    pub etag: String,
}

/// The (small) object at `url` and its ETag, or None if there is none.
pub async fn get_object(url: &str) -> Result<Option<Versioned>, StoreError> {
    let got = on_store(url, |s, p| async move {
        let r = s.get(&p).await?;
        let etag = r.meta.e_tag.clone().unwrap_or_default();
        let bytes = r.bytes().await?;
        Ok(Versioned { bytes, etag })
    })
    .await?;
    match got {
        Ok(x) => Ok(Some(x)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(store_error(url, e)),
    }
}

/// Deletes the object at `url` (a missing object is not an error).
pub async fn delete_object(url: &str) -> Result<(), StoreError> {
    match on_store(url, |s, p| async move { s.delete(&p).await }).await? {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(store_error(url, e)),
    }
}

/// The metadata key of an upload's tag (`x-amz-meta-mr-upload`).
const TAG_KEY: &str = "mr-upload";

/// A fresh tag: 128 random bits, in hex, made as the job's tokens are.
fn new_tag() -> std::io::Result<String> {
    mr_protocol::join::generate()
}

/// What a HEAD of an output object says: enough to tell whether an upload
/// of ours made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectHead {
    /// The tag of the upload that made it (None for an object no upload of
    /// ours made).
    pub upload_tag: Option<String>,
    /// Its size in bytes.
    pub size: u64,
}

/// The head of the object at `url`, or None if there is no object.
pub async fn head_object(url: &str) -> Result<Option<ObjectHead>, StoreError> {
    let head = GetOptions {
        head: true,
        ..Default::default()
    };
    match on_store(url, |s, p| async move { s.get_opts(&p, head).await }).await? {
        Ok(got) => {
            let upload_tag = got
                .attributes
                .get(&Attribute::Metadata(TAG_KEY.into()))
                .map(|v| v.to_string());
            Ok(Some(ObjectHead {
                upload_tag,
                size: got.meta.size,
            }))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(store_error(url, e)),
    }
}

/// Whether there is an object at `url`.
pub async fn exists(url: &str) -> Result<bool, StoreError> {
    match on_store(url, |s, p| async move { s.head(&p).await }).await? {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(store_error(url, e)),
    }
}

/// Checks that objects can be written under `prefix` (`s3://BUCKET/dir/`)
/// by starting a multipart upload there and aborting it: nothing is left.
pub async fn probe_writable(prefix: &str) -> Result<(), StoreError> {
    let url = format!("{prefix}_mr-probe");
    let r = on_store(&url, |s, p| async move {
        let id = s.create_multipart(&p).await?;
        s.abort_multipart(&p, &id).await
    })
    .await?;
    r.map_err(|e| StoreError::NotWritable {
        url: prefix.to_string(),
        kind: crate::error::kind_of(&e),
        reason: crate::error::concise(&e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_128_random_bits_in_hex_and_differ() {
        let (a, b) = (new_tag().unwrap(), new_tag().unwrap());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
