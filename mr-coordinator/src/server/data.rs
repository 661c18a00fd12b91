//! The coordinator's data calls for workers that share no file system with
//! it: byte ranges of the planned inputs, and reduce outputs uploaded into
//! their uncommitted files beside the outputs.
//!
//! Both check what they are asked against what the job planned (a path must
//! be one of the inputs; an upload must belong to a running reduce attempt
//! of the caller, checked by the service), so a worker can never make the
//! coordinator read or write anything else. File I/O runs on blocking
//! threads, never on the runtime.

use mr_protocol::{AttemptId, PlannedFile, ProtocolError, MAX_CHUNK};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

fn io_error(path: &std::path::Path, e: impl std::fmt::Display) -> ProtocolError {
    ProtocolError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Reads `len` bytes at `offset` of planned input `path` (fewer at its end).
pub(crate) async fn read_input(
    inputs: &[PlannedFile],
    path: PathBuf,
    offset: u64,
    len: u32,
) -> Result<serde_bytes::ByteBuf, ProtocolError> {
    let Some(file) = inputs.iter().find(|f| f.path == path) else {
        return Err(ProtocolError::NotAnInput(path));
    };
    let file_len = file.len;
    if offset > file_len || len > MAX_CHUNK {
        return Err(ProtocolError::BadRange {
            path,
            offset,
            len: u64::from(len),
            file_len,
        });
    }
    let want = u64::from(len).min(file_len - offset) as usize;
    tokio::task::spawn_blocking(move || {
        let f = File::open(&path).map_err(|e| io_error(&path, e))?;
        let now = f.metadata().map_err(|e| io_error(&path, e))?.len();
        if now != file_len {
            return Err(io_error(
                &path,
                format!(
                    "the input changed size since the job was planned ({file_len} -> {now} bytes)"
                ),
            ));
        }
        let mut buf = vec![0u8; want];
        f.read_exact_at(&mut buf, offset)
            .map_err(|e| io_error(&path, e))?;
        Ok(serde_bytes::ByteBuf::from(buf))
    })
    .await
    .map_err(|e| ProtocolError::Io {
        path: "input".into(),
        reason: e.to_string(),
    })?
}

/// Writes an uploaded chunk at `offset` of `path` (created by the chunk at
/// offset 0; every other chunk must start where the file ends, so a retried
/// or reordered chunk can never leave a hole). Syncs after the last chunk.
pub(crate) async fn write_upload(
    path: PathBuf,
    attempt: AttemptId,
    offset: u64,
    data: Vec<u8>,
    last: bool,
) -> Result<(), ProtocolError> {
    tokio::task::spawn_blocking(move || {
        let f = OpenOptions::new()
            .write(true)
            .create(offset == 0)
            .truncate(offset == 0)
            .open(&path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => ProtocolError::UploadRefused {
                    attempt,
                    why: format!("chunk at offset {offset} before the first chunk"),
                },
                _ => io_error(&path, e),
            })?;
        let len = f.metadata().map_err(|e| io_error(&path, e))?.len();
        if len != offset {
            return Err(ProtocolError::UploadRefused {
                attempt,
                why: format!("chunk at offset {offset}, but {len} bytes are uploaded"),
            });
        }
        f.write_all_at(&data, offset)
            .map_err(|e| io_error(&path, e))?;
        if last {
            // On disk before the success report can commit it.
            f.sync_data().map_err(|e| io_error(&path, e))?;
        }
        Ok(())
    })
    .await
    .map_err(|e| ProtocolError::Io {
        path: "upload".into(),
        reason: e.to_string(),
    })?
}
