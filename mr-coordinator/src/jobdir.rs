//! The job's directories: its stable id, the checks on output and work
//! directories, the output directory's lock, and stale-output warnings.

use crate::job::{CoordinatorError, JobConfig};
use crate::journal::{JobIdentity, Recovered, FILE_NAME as JOURNAL};
use mr_protocol::join::JoinSecret;
use mr_protocol::names;
use mr_protocol::plan::InputFile;
use std::path::{Path, PathBuf};
use tracing::warn;

/// Name of the job directory inside the work directory. It is fixed (not
/// derived from the job) so that an unfinished job's journal is always
/// found: the same command resumes it, a different one is refused.
pub const JOB_DIR: &str = "mr-job";
/// Name of the file in the job directory holding the job's join secret
/// (token and certificate fingerprint) for workers on other hosts.
pub const TOKEN_FILE: &str = "token";

/// The identity a journal records: inputs with their sizes and modification
/// times, and the flags that shape the plan and outputs.
pub fn identity(
    files: &[InputFile],
    cfg: &JobConfig,
    output_dir: &Path,
    shape: &mr_protocol::JobShape,
) -> Result<JobIdentity, CoordinatorError> {
    let mut inputs = Vec::with_capacity(files.len());
    for f in files {
        if let Some(etag) = &f.version {
            // An object: its ETag says which version was planned.
            let v = i128::from(mr_apps::fnv1a(etag.as_bytes()));
            inputs.push((f.path.clone(), f.len, v));
            continue;
        }
        let mtime = std::fs::metadata(&f.path)
            .and_then(|m| m.modified())
            .map_err(|e| dir_error(&f.path, format!("cannot stat input: {e}")))?;
        let ns = match mtime.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i128,
            Err(e) => -(e.duration().as_nanos() as i128),
        };
        inputs.push((f.path.clone(), f.len, ns));
    }
    Ok(JobIdentity {
        inputs,
        reduces: cfg.reduces,
        split_size: cfg.split_size,
        // Planned by content, the same inputs make other splits: another job.
        app: match &cfg.cache {
            Some(_) => cfg.app.as_ref().map(|a| format!("{a} (split by content)")),
            None => cfg.app.clone(),
        },
        output_dir: output_dir.to_path_buf(),
        shape: shape.key_bytes(),
    })
}

/// The job's token: the one given, else the one a previous run of this job
/// kept in the job directory, else a new one. The server keeps it there,
/// inside the join secret, before it listens (written once: a worker must
/// never read a bare token there while the secret is being made).
pub fn job_token(job_dir: &Path, given: Option<&str>) -> Result<String, CoordinatorError> {
    if let Some(t) = given {
        if t.trim().is_empty() {
            return Err(CoordinatorError::Config(
                "--token (or MR_TOKEN) is empty; give a non-empty secret or leave it unset to generate one".into(),
            ));
        }
        // A join secret given to the coordinator too gives it its token.
        return JoinSecret::parse(t)
            .map(|j| j.token)
            .map_err(|e| CoordinatorError::Config(format!("--token (or MR_TOKEN): {e}")));
    }
    // A restarted coordinator keeps the token its workers were given (the
    // file holds the join secret, see the server).
    let file = job_dir.join(TOKEN_FILE);
    if let Ok(t) = std::fs::read_to_string(&file) {
        if let Ok(j) = JoinSecret::parse(&t) {
            if !j.token.is_empty() {
                return Ok(j.token);
            }
        }
    }
    mr_protocol::join::generate().map_err(CoordinatorError::Token)
}

/// After replaying a journal: forgets accepted outputs whose files are gone
/// (they will be redone) and removes every leftover that is not accepted
/// (partial map outputs, spills, uncommitted reduce temps). Reduce outputs
/// are checked here only when `local_outputs` (objects are checked by the
/// server, over the network).
pub fn reconcile(job_dir: &Path, output_dir: &Path, local_outputs: bool, r: &mut Recovered) {
    r.maps.retain(|&m, d| {
        // Outputs on a worker's own disk cannot be checked from here; a
        // reducer that cannot fetch one reports it lost and the map reruns.
        let in_job_dir = job_dir.join(names::map_output(m, d.done.attempt));
        let ok = d.holder.is_some() || in_job_dir.is_file();
        if !ok {
            warn!(map = %m, "journaled map output is missing; the map will run again");
        }
        ok
    });
    r.reduces.retain(|&red, _| {
        let ok = !local_outputs || output_dir.join(names::output(red)).is_file();
        if !ok {
            warn!(reduce = %red, "journaled output is missing; the reduce will run again");
        }
        ok
    });
    let keep: std::collections::HashSet<String> = r
        .maps
        .iter()
        .map(|(&m, d)| names::map_output(m, d.done.attempt))
        .chain([
            JOURNAL.to_string(),
            TOKEN_FILE.to_string(),
            // The certificate whose fingerprint the workers pinned.
            mr_protocol::wire::IDENTITY_FILE.to_string(),
            names::JOB_MARKER.to_string(),
        ])
        .collect();
    if let Ok(entries) = std::fs::read_dir(job_dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(output_dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".mr-out-") && name.ends_with(".tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

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
    let meta = std::fs::metadata(dir).map_err(|e| {
        let why = match e.kind() {
            // A typo must not become a directory: it is made by hand.
            std::io::ErrorKind::NotFound => {
                format!("{what} does not exist; create it first (mkdir -p), or name another")
            }
            _ => format!("{what} is not usable: {e}"),
        };
        dir_error(dir, why)
    })?;
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

/// Writes the file at `path` whole or not at all: `write` fills a
/// temporary file beside it (`.NAME.tmp`: the directory is the job's, held
/// under its lock), which then replaces `path`. A reader never sees a
/// partial file. Made as any file of the job is (permissions from the
/// umask), unlike the 0600 of `join::write_private`.
pub fn write_replacing(
    path: &Path,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::io::Write;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let written = std::fs::File::create(&tmp).and_then(|f| {
        let mut out = std::io::BufWriter::with_capacity(1 << 16, f);
        write(&mut out)?;
        out.flush()
    });
    match written.and_then(|()| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}
