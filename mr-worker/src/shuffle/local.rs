//! The worker's own directory, for workers that do not share the
//! coordinator's file system: map outputs it serves to reducers, partitions
//! it fetched, input ranges it fetched, reduce outputs before upload.
//!
//! One directory per worker process (`<base>/mr-worker-<host>-<pid>`),
//! removed when the worker ends; directories left by killed workers of this
//! host (their pid gone) are removed at start. The host is in the name
//! because a base directory may be shared by workers of several hosts or
//! containers (each with its own pids: in containers every worker may be
//! pid 1): a pid says whether a worker lives only on its own host. The set of map outputs the worker serves
//! is kept here too: the shuffle service serves only those, by id, so a
//! request can never name a path.

use mr_protocol::{names, AttemptId, MapTaskId};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tracing::{debug, warn};

const PREFIX: &str = "mr-worker-";

/// A worker's private directory and the map outputs in it that it serves.
#[derive(Debug)]
pub struct LocalStore {
    dir: PathBuf,
    served: Mutex<HashMap<(MapTaskId, AttemptId), PathBuf>>,
}

impl LocalStore {
    /// Creates this process's directory under `base` (the system's temp
    /// directory if None), removing ones left by dead workers.
    pub fn create(base: Option<&Path>) -> std::io::Result<Self> {
        let base = base.map_or_else(std::env::temp_dir, Path::to_path_buf);
        std::fs::create_dir_all(&base)?;
        remove_stale(&base);
        let dir = base.join(format!("{PREFIX}{}-{}", host(), std::process::id()));
        if dir.exists() {
            // Our pid, reused after a crash: nothing in it is ours.
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir(&dir)?;
        Ok(Self {
            dir,
            served: Mutex::new(HashMap::new()),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where this worker writes map attempt `attempt`'s output.
    pub fn map_output(&self, map: MapTaskId, attempt: AttemptId) -> PathBuf {
        self.dir.join(names::map_output(map, attempt))
    }

    /// Starts serving a map output (before its report, so a reducer sent
    /// here the moment it is accepted finds it).
    pub fn serve(&self, map: MapTaskId, attempt: AttemptId, path: PathBuf) {
        self.lock().insert((map, attempt), path);
    }

    /// Stops serving a map output and deletes it.
    pub fn forget(&self, map: MapTaskId, attempt: AttemptId) {
        if let Some(p) = self.lock().remove(&(map, attempt)) {
            let _ = std::fs::remove_file(p);
        }
    }

    /// The file of a served map output.
    pub fn lookup(&self, map: MapTaskId, attempt: AttemptId) -> Option<PathBuf> {
        self.lock().get(&(map, attempt)).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(MapTaskId, AttemptId), PathBuf>> {
        self.served.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for LocalStore {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            warn!(dir = %self.dir.display(), "cannot remove the worker's directory: {e}");
        }
    }
}

/// This host's name as it goes into a directory name: letters, digits,
/// `.` and `-` only (anything else becomes `_`).
fn host() -> String {
    let name = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    name.chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                true => c,
                false => '_',
            },
        )
        .collect()
}

/// Removes this host's `mr-worker-<host>-<pid>` directories in `base`
/// whose process is gone; other hosts' are theirs to clean.
fn remove_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    let mine = format!("{PREFIX}{}-", host());
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(&mine).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        // Same host only: /proc tells whether that pid lives here.
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            debug!(dir = %e.path().display(), "removing a dead worker's directory");
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_hosts_dead_workers_directories_are_removed() {
        let base = tempfile::tempdir().unwrap();
        // A pid no process has (above the kernel's pid_max).
        let dead = 4_194_305 + 7;
        let ours_dead = base.path().join(format!("{PREFIX}{}-{dead}", host()));
        let theirs = base.path().join(format!("{PREFIX}other-host-{dead}"));
        // Another container's worker, pid 1 there: not ours to judge.
        let pid_one_elsewhere = base.path().join(format!("{PREFIX}pod-b-1"));
        for d in [&ours_dead, &theirs, &pid_one_elsewhere] {
            std::fs::create_dir(d).unwrap();
        }
        let store = LocalStore::create(Some(base.path())).unwrap();
        assert!(!ours_dead.exists());
        assert!(theirs.exists() && pid_one_elsewhere.exists());
        let name = store
            .dir()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert_eq!(name, format!("{PREFIX}{}-{}", host(), std::process::id()));
    }
}
