//! Whole objects, for callers that keep files in a store rather than read
//! job inputs from it (the cache of incremental re-runs): get one into
//! memory or into a file, put one from memory or from a file, list what
//! lies under a prefix with sizes and times, delete one.
//!
//! Synchronous like reads: the caller's thread blocks while the call runs
//! on the store's runtime. A PUT makes an object appear whole or not at
//! all, so a reader never sees half of one; a large file goes up as a
//! multipart upload, which is just as atomic once completed.

use crate::error::{carried, from_io};
use crate::{client, run, store_error, ObjectUrl, StoreError, SCHEME};
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};
use std::io::{Read, Write};
use std::path::Path;
use std::time::SystemTime;

/// Bytes the first GET of [`get_to_file`] asks for.
const FIRST_STEP: u64 = 8 << 20;

/// Files up to this size go up in one PUT; larger ones in parts.
const ONE_PUT: u64 = crate::write::PART_SIZE as u64;

/// An object found under a prefix.
#[derive(Clone, Debug)]
pub struct Listed {
    /// Its URL (`s3://BUCKET/KEY`).
    pub url: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written.
    pub modified: SystemTime,
}

fn located(
    url: &str,
) -> Result<(std::sync::Arc<object_store::aws::AmazonS3>, ObjectPath), StoreError> {
    let parsed = ObjectUrl::parse(url)?;
    let store = client(&parsed)?;
    Ok((store, ObjectPath::from(parsed.key.as_str())))
}

/// The whole object at `url` and when it was last written, or None if
/// there is none.
pub fn get(url: &str) -> Result<Option<(bytes::Bytes, SystemTime)>, StoreError> {
    let (store, path) = located(url)?;
    let got = run(async move {
        let r = store.get(&path).await?;
        let modified = r.meta.last_modified;
        Ok::<_, object_store::Error>((r.bytes().await?, modified))
    });
    match got {
        Ok((b, modified)) => {
            crate::read::count_read(b.len());
            Ok(Some((b, modified.into())))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(store_error(url, e)),
    }
}

/// Copies the object at `url` into a new file at `dest` (replacing any),
/// in large ranged reads pinned to the object's ETag, so an object
/// replaced meanwhile is an error rather than a mix of two. Returns its
/// size, or None (and no file) if there is no object.
pub fn get_to_file(url: &str, dest: &Path) -> Result<Option<u64>, StoreError> {
    let (store, path) = located(url)?;
    // The first step's GET also says the object's size and ETag: a small
    // object (most) takes one request.
    let (s, p) = (store.clone(), path.clone());
    let first = run(async move {
        let opts = GetOptions {
            range: Some(GetRange::Bounded(0..FIRST_STEP)),
            ..GetOptions::default()
        };
        let r = s.get_opts(&p, opts).await?;
        let meta = r.meta.clone();
        Ok::<_, object_store::Error>((r.bytes().await?, meta))
    });
    let (head, meta) = match first {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => {
            // An empty object has no byte to range over (416): only then
            // is a failed first step not an error.
            match run(async move { store.head(&path).await }) {
                Ok(m) if m.size == 0 => {
                    std::fs::File::create(dest).map_err(|e| local(url, dest, e))?;
                    return Ok(Some(0));
                }
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                _ => return Err(store_error(url, e)),
            }
        }
    };
    crate::read::count_read(head.len());
    let local = |e| local(url, dest, e);
    let mut out = std::fs::File::create(dest).map_err(local)?;
    let len = meta.size;
    let mut reader = crate::read::ObjectReader::new(url, meta.e_tag.as_deref(), len);
    reader.skip_to(head.len() as u64);
    let mut buf = vec![0u8; 1 << 20];
    let copied = (|| -> Result<(), StoreError> {
        out.write_all(&head).map_err(local)?;
        loop {
            let n = reader.read(&mut buf).map_err(|e| from_io(url, e))?;
            if n == 0 {
                return Ok(());
            }
            out.write_all(&buf[..n]).map_err(local)?;
        }
    })();
    if let Err(e) = copied {
        drop(out);
        let _ = std::fs::remove_file(dest);
        return Err(e);
    }
    Ok(Some(len))
}

/// The failure of the local file at `path` that `url` was copied to or from.
fn local(url: &str, path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Local {
        url: url.to_string(),
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `data` as the object at `url` (one PUT).
pub fn put(url: &str, data: Vec<u8>) -> Result<(), StoreError> {
    let (store, path) = located(url)?;
    run(async move { store.put(&path, PutPayload::from(data)).await })
        .map(|_| ())
        .map_err(|e| store_error(url, e))
}

/// Writes the file at `src` as the object at `url`: one PUT when small,
/// else a multipart upload completed at the end (the object appears whole
/// once it is).
pub fn put_file(url: &str, src: &Path) -> Result<(), StoreError> {
    let local = |e| local(url, src, e);
    let mut file = std::fs::File::open(src).map_err(local)?;
    let len = file.metadata().map_err(local)?.len();
    if len <= ONE_PUT {
        let mut data = Vec::with_capacity(len as usize);
        file.read_to_end(&mut data).map_err(local)?;
        return put(url, data);
    }
    let mut w = crate::write::PartWriter::create(url)?;
    // Reading the file fails locally; writing carries the store's error.
    std::io::copy(&mut file, &mut w).map_err(|e| carried(e).unwrap_or_else(local))?;
    let upload = w.finish()?;
    run(async move { crate::write::complete_upload(&upload).await }).map(|_| ())
}

/// Every object whose key starts with `prefix`'s (`s3://BUCKET/dir/`),
/// however deep.
pub fn list_under(prefix: &str) -> Result<Vec<Listed>, StoreError> {
    let parsed = ObjectUrl::parse_prefix(prefix)?;
    let store = client(&parsed)?;
    let dir = parsed.key.trim_end_matches('/').to_string();
    let listed = run(async move {
        let dir = (!dir.is_empty()).then(|| ObjectPath::from(dir.as_str()));
        store.list(dir.as_ref()).try_collect::<Vec<_>>().await
    })
    .map_err(|e| store_error(prefix, e))?;
    Ok(listed
        .into_iter()
        .map(|m| Listed {
            url: format!("{SCHEME}{}/{}", parsed.bucket, m.location),
            size: m.size,
            modified: m.last_modified.into(),
        })
        .collect())
}

/// Deletes the object at `url` (a missing object is not an error).
pub fn delete(url: &str) -> Result<(), StoreError> {
    let (store, path) = located(url)?;
    match run(async move { store.delete(&path).await }) {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(store_error(url, e)),
    }
}
