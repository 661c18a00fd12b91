//! The coordinator's Unix domain socket, the lab's way for workers on this
//! machine to find their coordinator: `/var/tmp/5840-mr-<uid>` unless told
//! otherwise. It serves the same tarpc service as the TCP port.
//!
//! Over the socket the file system is the authentication: the socket is
//! created with mode 0600 (bound under a temporary name, restricted, then
//! renamed into place, so it is never visible with wider permissions), and
//! each connection's peer uid (`SO_PEERCRED`) must be the coordinator's own,
//! so no token is needed there. A socket file left by a killed coordinator
//! (connecting is refused) is replaced; one that a live coordinator answers
//! on is refused, naming that coordinator's job from the note it keeps
//! beside the socket (`<socket>.job`). Both files are removed when the
//! [`SocketClaim`] is dropped, if they are still this coordinator's.
//! Claiming (look, remove a stale socket, put ours in place) holds an
//! exclusive lock on `<socket>.lock`, so two coordinators starting at once
//! cannot both think they own the path; that small file is left behind.

use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// Longest socket path the kernel accepts (`sun_path` is 108 bytes, with
/// its terminating NUL).
const MAX_PATH: usize = 107;

/// Why the socket cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// A live coordinator already serves this path.
    #[error("socket {} is in use by another running coordinator ({owner}); stop that job, or give this one another --socket PATH, or --no-socket", path.display())]
    Busy {
        /// The socket.
        path: PathBuf,
        /// What its owner's note says (job, output directory, pid).
        owner: String,
    },
    /// Something that is not a socket sits at the path.
    #[error("{} exists and is not a socket; remove it or choose another --socket PATH", .0.display())]
    NotASocket(PathBuf),
    /// The path is longer than a socket address can hold.
    #[error("socket path {} is longer than {MAX_PATH} bytes; choose a shorter --socket PATH", .0.display())]
    TooLong(PathBuf),
    /// The file system refused.
    #[error("cannot serve socket {}: {source}; choose another --socket PATH, or --no-socket", path.display())]
    Io {
        /// The socket.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The lab's socket path for this user: `/var/tmp/5840-mr-<uid>`.
pub fn default_path() -> PathBuf {
    mr_protocol::join::lab_socket()
}

/// A socket this coordinator created; removes it (and its note) on drop.
#[derive(Debug)]
pub struct SocketClaim {
    path: PathBuf,
    note: PathBuf,
    /// Identity of the socket file (device, inode, change time), so another
    /// coordinator's socket that replaced ours is never removed by us, even
    /// when it was given our freed inode number.
    id: FileId,
}

/// What tells one file from another that replaced it at the same path.
type FileId = (u64, u64, i64, i64);

fn file_id(m: &std::fs::Metadata) -> FileId {
    (m.dev(), m.ino(), m.ctime(), m.ctime_nsec())
}

impl SocketClaim {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketClaim {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path).is_ok_and(|m| file_id(&m) == self.id);
        if ours {
            let _ = std::fs::remove_file(&self.path);
            let _ = std::fs::remove_file(&self.note);
        }
    }
}

/// `path` with `suffix` appended to its file name.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The note kept beside a socket, naming the job that serves it.
fn note_path(path: &Path) -> PathBuf {
    beside(path, ".job")
}

/// Claims `path` for this coordinator, whose job `owner` describes (for the
/// message another coordinator shows when it finds the socket taken).
pub fn claim(path: &Path, owner: &str) -> Result<(UnixListener, SocketClaim), SocketError> {
    let io = |source| SocketError::Io {
        path: path.to_path_buf(),
        source,
    };
    if path.as_os_str().len() > MAX_PATH {
        return Err(SocketError::TooLong(path.to_path_buf()));
    }
    let note = note_path(path);
    // Held until this function returns: the look and the replacement below
    // are one step to any other coordinator claiming the same path.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(beside(path, ".lock"))
        .map_err(io)?;
    lock.lock().map_err(io)?;
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
        Ok(m) if !std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => {
            return Err(SocketError::NotASocket(path.to_path_buf()))
        }
        Ok(_) => match UnixStream::connect(path) {
            // Someone answers: a live coordinator owns it.
            Ok(_) => {
                let owner = std::fs::read_to_string(&note)
                    .map(|s| s.trim().to_string())
                    .unwrap_or_else(|_| "its job is not named".into());
                return Err(SocketError::Busy {
                    path: path.to_path_buf(),
                    owner,
                });
            }
            // Nobody listens: left by a coordinator that was killed.
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                tracing::info!(socket = %path.display(), "replacing a stale socket");
                std::fs::remove_file(path).map_err(io)?;
            }
            Err(e) => return Err(io(e)),
        },
    }
    // Bound under a private name and restricted before it appears at `path`.
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp).map_err(io)?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    let m = std::fs::symlink_metadata(path).map_err(io)?;
    let claim = SocketClaim {
        path: path.to_path_buf(),
        note: note.clone(),
        id: file_id(&m),
    };
    // The note is informative only: a coordinator that cannot write it
    // still serves, and others then say its job is not named.
    let _ = mr_protocol::join::write_private(&note, owner);
    listener.set_nonblocking(true).map_err(io)?;
    Ok((listener, claim))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_is_private_refused_while_live_and_replaced_when_stale() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("s");
        let (listener, claim) = claim(&path, "job A").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Live: a second claim is refused and names the first job.
        match super::claim(&path, "job B") {
            Err(SocketError::Busy { owner, .. }) => assert_eq!(owner, "job A"),
            other => panic!("expected Busy, got {other:?}"),
        }
        // Stale: the listener is gone but the file stays (a killed process).
        drop(listener);
        std::mem::forget(claim);
        let (_l2, claim2) = super::claim(&path, "job B").unwrap();
        assert_eq!(std::fs::read_to_string(note_path(&path)).unwrap(), "job B");
        drop(claim2);
        assert!(!path.exists() && !note_path(&path).exists());
    }

    #[test]
    fn other_files_and_long_paths_are_refused_by_name() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("plain");
        std::fs::write(&file, "x").unwrap();
        let e = claim(&file, "j").unwrap_err().to_string();
        assert!(e.contains("is not a socket") && e.contains("plain"), "{e}");
        let long = d.path().join("x".repeat(120));
        assert!(matches!(claim(&long, "j"), Err(SocketError::TooLong(_))));
    }

    #[test]
    fn a_claim_never_removes_a_socket_that_replaced_it() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("s");
        let (l1, c1) = claim(&path, "job A").unwrap();
        drop(l1);
        // Another coordinator replaces the (now stale) socket...
        let (_l2, _c2) = claim(&path, "job B").unwrap();
        // ...and the first one's exit leaves it alone.
        drop(c1);
        assert!(path.exists());
    }
}
