//! Where a reduce task's output goes: a local file (committed later by
//! rename), or an object in a store, streamed as a multipart upload that is
//! left uncompleted for the coordinator to publish or discard. The reduce
//! engine writes to either the same way and learns, at the end, what it
//! produced.
//!
//! Both keep the output's CRC-32C and size as they go (for the job's
//! `_SUCCESS` manifest) at no extra pass over the data.

use mr_protocol::{OutputUpload, TaskFailure};
use mr_store::PartWriter;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Buffer in front of either kind: output lines are small writes.
const BUFFER: usize = 1 << 20;

/// An open reduce output.
pub(crate) enum Sink {
    /// A temp file beside the outputs (or in the worker's own directory).
    File {
        /// The file.
        out: BufWriter<File>,
        /// Its name, for errors.
        name: String,
    },
    /// A multipart upload to the object at `name`.
    Object {
        /// The upload (boxed: its state is several times a file's, and a
        /// sink is moved around as the reduce starts).
        out: BufWriter<Box<PartWriter>>,
        /// The object's URL, for errors.
        name: String,
    },
}

impl Sink {
    /// Opens the output: an upload to `upload_to` when given, else the file `path`.
    pub(crate) fn open(path: &Path, upload_to: Option<&str>) -> Result<Sink, TaskFailure> {
        match upload_to {
            Some(url) => {
                let w = PartWriter::create(url).map_err(|e| TaskFailure::Io {
                    path: url.to_string(),
                    reason: e.to_string(),
                })?;
                Ok(Sink::Object {
                    out: BufWriter::with_capacity(BUFFER, Box::new(w)),
                    name: url.to_string(),
                })
            }
            None => {
                let f = File::create(path).map_err(|e| TaskFailure::Io {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
                Ok(Sink::File {
                    out: BufWriter::with_capacity(BUFFER, f),
                    name: path.display().to_string(),
                })
            }
        }
    }

    /// What failures name: the file or the object.
    pub(crate) fn name(&self) -> &str {
        match self {
            Sink::File { name, .. } | Sink::Object { name, .. } => name,
        }
    }

    /// Ends the output: a file is synced (on disk before the coordinator's
    /// rename makes it the committed output); an upload sends its last part
    /// and is returned, uncompleted, for the coordinator.
    pub(crate) fn finish(self) -> Result<Option<OutputUpload>, TaskFailure> {
        match self {
            Sink::File { out, name } => {
                let io = |e: std::io::Error| TaskFailure::Io {
                    path: name.clone(),
                    reason: e.to_string(),
                };
                let file = out.into_inner().map_err(|e| io(e.into_error()))?;
                file.sync_data().map_err(io)?;
                Ok(None)
            }
            Sink::Object { out, name } => {
                let io = |reason: String| TaskFailure::Io {
                    path: name.clone(),
                    reason,
                };
                let w = out.into_inner().map_err(|e| io(e.error().to_string()))?;
                w.finish().map(Some).map_err(|e| io(e.to_string()))
            }
        }
    }
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::File { out, .. } => out.write(data),
            Sink::Object { out, .. } => out.write(data),
        }
    }

    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::File { out, .. } => out.write_all(data),
            Sink::Object { out, .. } => out.write_all(data),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::File { out, .. } => out.flush(),
            Sink::Object { out, .. } => out.flush(),
        }
    }
}
