//! The job's directories: its stable id, the checks on output and work
//! directories, the output directory's lock, and stale-output warnings.

use crate::job::{CoordinatorError, JobConfig};
use crate::plan::InputFile;
use std::path::{Path, PathBuf};
use tracing::warn;

/// A stable id for a job: the same inputs and settings give the same id, so a
/// restarted coordinator finds the same job directory.
pub fn job_id(files: &[InputFile], cfg: &JobConfig) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes.iter().chain([0xffu8].iter()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for f in files {
        feed(f.path.as_os_str().as_encoded_bytes());
        feed(&f.len.to_le_bytes());
    }
    feed(&cfg.reduces.to_le_bytes());
    feed(&cfg.split_size.to_le_bytes());
    feed(cfg.app.as_deref().unwrap_or("").as_bytes());
    format!("{h:016x}")
}

/// A directory error naming the directory.
pub fn dir_error(path: &Path, reason: impl Into<String>) -> CoordinatorError {
    CoordinatorError::Directory {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Checks that `dir` is an existing, writable directory; returns it absolute.
pub fn usable_dir(dir: &Path, what: &str) -> Result<PathBuf, CoordinatorError> {
    let meta =
        std::fs::metadata(dir).map_err(|e| dir_error(dir, format!("{what} is not usable: {e}")))?;
    if !meta.is_dir() {
        return Err(dir_error(dir, format!("{what} is not a directory")));
    }
    let probe = dir.join(format!(".mr-probe-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .map_err(|e| dir_error(dir, format!("{what} is not writable: {e}")))?;
    let _ = std::fs::remove_file(&probe);
    std::path::absolute(dir).map_err(|e| dir_error(dir, e.to_string()))
}

/// Takes an exclusive lock on the output directory itself (flock on its
/// descriptor: no lock file is left behind), so two jobs never write the same
/// `mr-out-*` files at once. The kernel drops the lock if we die.
pub fn lock_output_dir(dir: &Path) -> Result<std::fs::File, CoordinatorError> {
    let handle =
        std::fs::File::open(dir).map_err(|e| dir_error(dir, format!("cannot open: {e}")))?;
    match handle.try_lock() {
        Ok(()) => Ok(handle),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(CoordinatorError::Busy(dir.display().to_string()))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(dir_error(dir, format!("cannot lock: {e}"))),
    }
}

/// Warns about `mr-out-N` files with N >= R: left by an earlier job with more
/// reduces, they would mix into `cat mr-out*` without being part of this job.
pub fn warn_stale_outputs(dir: &Path, reduces: u32) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let stale: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| {
            n.strip_prefix("mr-out-")
                .and_then(|r| r.parse::<u32>().ok())
                .is_some_and(|r| r >= reduces)
        })
        .collect();
    if !stale.is_empty() {
        warn!(dir = %dir.display(), files = ?stale, "output directory holds outputs of an earlier job that this job (R={reduces}) will not replace");
    }
}
