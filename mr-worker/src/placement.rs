//! Where a worker stands relative to the coordinator's files, and what it
//! does about it around each task.
//!
//! A worker that sees the coordinator's job directory (same machine, or a
//! shared file system) works in place: map outputs go to the job directory,
//! reduce outputs straight beside the outputs, inputs are read where they
//! are. A worker that does not (or is told `--local-dir`) keeps map outputs
//! in its own directory and serves them over its shuffle service, fetches
//! reduce inputs from the workers holding them, fetches input ranges it
//! cannot read from the coordinator, and uploads reduce outputs to it.

use crate::engine::reduce::ReduceInput;
use crate::shuffle::fetch::{gather, Gather, Peers};
use crate::shuffle::local::LocalStore;
use crate::shuffle::remote_input::{localize, readable_here, Localized};
use crate::shuffle::server::{Admission, ShuffleState};
use mr_protocol::wire::Identity;
use mr_protocol::{
    names, AttemptId, CoordinatorClient, FilePart, JobSettings, MapOutputRef, ReduceTaskId,
    TaskFailure, WorkerPlace, MAX_CHUNK,
};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tarpc::context;
use tracing::{info, warn};

/// How the worker was told to place its files.
#[derive(Clone, Debug, Default)]
pub struct PlacementConfig {
    /// Keep map outputs in this directory and serve them, even when the job
    /// directory is visible (None: only when it is not, under the system's
    /// temp directory).
    pub local_dir: Option<PathBuf>,
    /// Where the shuffle service listens (default: the address this host
    /// reaches the coordinator from, any free port).
    pub shuffle_listen: Option<String>,
    /// Fetch every input from the coordinator, even files that exist here.
    pub remote_inputs: bool,
}

/// The worker's placement, decided once at its first registration.
pub struct Placement {
    /// True when the worker uses the shared job and output directories.
    pub shared: bool,
    /// The worker's own directory (fetched data; map outputs unless shared)
    /// and the set of outputs it serves.
    pub store: Arc<LocalStore>,
    /// The shuffle service and its advertised address (None only if a
    /// shared worker could not start it: then it serves nothing).
    shuffle: Option<(Arc<ShuffleState>, String)>,
    remote_inputs: bool,
    peers: Peers,
    /// The coordinator's address as this worker reaches it.
    coordinator_ip: Option<IpAddr>,
}

/// Why a worker cannot set itself up to work outside the shared directory.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    /// Its own directory cannot be made.
    #[error("cannot create the worker's directory in {}: {source} (set --local-dir or TMPDIR)", dir.display())]
    Directory {
        /// The parent it was to be made in.
        dir: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The shuffle service cannot listen where it must.
    #[error("cannot listen for shuffle fetches on {addr}: {source} (set --shuffle-addr)")]
    Listen {
        /// The address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The shuffle service's certificate cannot be made.
    #[error("{0}")]
    Tls(mr_protocol::wire::IdentityError),
}

/// True when `settings.job_dir` is the coordinator's own job directory as
/// seen from here (it holds the job's marker) and the output directory exists.
fn sees_job_dir(settings: &JobSettings) -> bool {
    let marker = settings.job_dir.join(names::JOB_MARKER);
    std::fs::read_to_string(marker).is_ok_and(|id| id == settings.job_id)
        && settings.output_dir.is_dir()
}

/// Creates the worker's own directory (before it connects, so a bad
/// `--local-dir` is reported at once).
pub fn create_store(cfg: &PlacementConfig) -> Result<Arc<LocalStore>, PlacementError> {
    LocalStore::create(cfg.local_dir.as_deref())
        .map(Arc::new)
        .map_err(|source| PlacementError::Directory {
            dir: cfg.local_dir.clone().unwrap_or_else(std::env::temp_dir),
            source,
        })
}

impl Placement {
    /// Decides how to work for the job in `settings` and starts the shuffle
    /// service (a shared-directory worker serves what it writes there too,
    /// for reducers that do not see it). `ips` are this host's and the
    /// coordinator's addresses on the connection between them.
    pub async fn decide(
        cfg: &PlacementConfig,
        settings: &JobSettings,
        ips: Option<(IpAddr, IpAddr)>,
        store: Arc<LocalStore>,
    ) -> Result<Placement, PlacementError> {
        let shared = cfg.local_dir.is_none() && sees_job_dir(settings);
        let ip = ips.map_or(IpAddr::from([127, 0, 0, 1]), |(local, _)| local);
        let listen = cfg.shuffle_listen.clone().unwrap_or_else(|| match ip {
            IpAddr::V4(v4) => format!("{v4}:0"),
            IpAddr::V6(v6) => format!("[{v6}]:0"),
        });
        let mut placement = Placement {
            shared,
            store: store.clone(),
            shuffle: None,
            remote_inputs: cfg.remote_inputs,
            peers: Peers::default(),
            coordinator_ip: ips.map(|(_, c)| c),
        };
        // A job on an encrypted wire: the service gets a certificate of its
        // own, whose fingerprint goes with its address to the coordinator.
        let identity = match settings.tls {
            true => Some(Identity::generate().map_err(PlacementError::Tls)?),
            false => None,
        };
        let pin = identity.as_ref().map(Identity::fingerprint);
        let (state, bound) = match crate::shuffle::server::start(&listen, store.clone(), identity)
            .await
        {
            Ok(s) => s,
            Err(e) if shared && cfg.shuffle_listen.is_none() => {
                // Reducers that see the job directory do not need it.
                warn!("cannot listen for shuffle fetches on {listen}: {e}; serving no map outputs");
                return Ok(placement);
            }
            Err(source) => {
                return Err(PlacementError::Listen {
                    addr: listen,
                    source,
                })
            }
        };
        // A wildcard bind is advertised under the address peers reach us at.
        let advertised = if bound.ip().is_unspecified() {
            std::net::SocketAddr::new(ip, bound.port())
        } else {
            bound
        };
        if !shared {
            info!(dir = %store.dir().display(), shuffle = %advertised, "keeping map outputs on this host");
        }
        // Reducers pin the certificate: `host:port#<fingerprint>`.
        let endpoint = mr_protocol::join::pinned(&advertised.to_string(), pin);
        placement.shuffle = Some((state, endpoint));
        Ok(placement)
    }

    /// What to tell the coordinator, and what the shuffle service admits,
    /// for the job in `settings` (called at every registration).
    pub fn announce(&self, settings: &JobSettings, token: &str) -> WorkerPlace {
        if let Some((state, _)) = &self.shuffle {
            state.admit(Admission {
                job_id: settings.job_id.clone(),
                token: token.to_string(),
                reduces: settings.reduces,
            });
        }
        let mut place = WorkerPlace {
            shared: self.shared,
            shuffle: self.shuffle.as_ref().map(|(_, a)| a.clone()),
            local_inputs: Vec::new(),
        };
        if !self.remote_inputs {
            for (i, f) in settings.inputs.iter().enumerate() {
                // Every worker reads objects from the store itself.
                let object = f.path.to_str().is_some_and(mr_store::is_object_url);
                if self.shared || object || readable_here(&f.path, f.len) {
                    place.set_input(i);
                }
            }
        }
        place
    }

    /// The shuffle address, if this worker serves outputs.
    pub fn shuffle_addr(&self) -> Option<&str> {
        self.shuffle.as_ref().map(|(_, a)| a.as_str())
    }

    /// Where map attempt `attempt` of `task` writes its run file.
    pub fn map_output(
        &self,
        settings: &JobSettings,
        task: mr_protocol::MapTaskId,
        attempt: AttemptId,
    ) -> PathBuf {
        match self.shared {
            true => settings.job_dir.join(names::map_output(task, attempt)),
            false => self.store.map_output(task, attempt),
        }
    }

    /// Where reduce attempt `attempt` of `task` writes its output before
    /// it is committed (in the output directory, or here and uploaded).
    pub fn reduce_output(
        &self,
        settings: &JobSettings,
        task: ReduceTaskId,
        attempt: AttemptId,
    ) -> PathBuf {
        let dir = match self.shared {
            true => settings.output_dir.as_path(),
            false => self.store.dir(),
        };
        dir.join(names::reduce_temp(task, attempt))
    }

    /// Makes a split's parts readable here, fetching what is not.
    pub async fn inputs(
        &self,
        client: &CoordinatorClient,
        settings: &JobSettings,
        parts: &[FilePart],
        attempt: AttemptId,
        framing: crate::engine::split::Framing,
    ) -> Result<Localized, TaskFailure> {
        if self.shared && !self.remote_inputs {
            return Ok(Localized {
                parts: parts.to_vec(),
                held: Vec::new(),
                fetched: 0,
                copies: Vec::new(),
            });
        }
        let tag = attempt.0.to_string();
        let dir = self.store.dir();
        localize(
            client,
            settings.worker,
            parts,
            dir,
            &tag,
            framing,
            self.remote_inputs,
        )
        .await
    }

    /// Finds or fetches partition `reduce` of every map output; fetched
    /// ones go to `into`.
    pub async fn reduce_inputs(
        &self,
        settings: &JobSettings,
        token: &str,
        reduce: ReduceTaskId,
        maps: &[MapOutputRef],
        into: &Path,
    ) -> Result<(Vec<ReduceInput>, u64, Duration), TaskFailure> {
        std::fs::create_dir_all(into).map_err(|e| TaskFailure::Io {
            path: into.display().to_string(),
            reason: e.to_string(),
        })?;
        let own = self
            .shuffle
            .as_ref()
            .map(|(_, a)| (self.store.as_ref(), a.as_str()));
        let g = Gather {
            peers: &self.peers,
            token,
            job_id: &settings.job_id,
            reduce,
            shared: self.shared,
            job_dir: &settings.job_dir,
            own,
            into,
            coordinator_ip: self.coordinator_ip,
        };
        let got = gather(&g, maps).await?;
        Ok((got.inputs, got.bytes, got.took))
    }

    /// Uploads a finished reduce output to the coordinator (a worker that
    /// does not see the output directory); returns the bytes sent.
    pub async fn upload(
        &self,
        client: &CoordinatorClient,
        settings: &JobSettings,
        attempt: AttemptId,
        file: &Path,
    ) -> Result<u64, TaskFailure> {
        let fail = |reason: String| TaskFailure::Io {
            path: format!("{} (uploading to the coordinator)", file.display()),
            reason,
        };
        let f = Arc::new(std::fs::File::open(file).map_err(|e| fail(e.to_string()))?);
        let len = f.metadata().map_err(|e| fail(e.to_string()))?.len();
        let mut offset = 0u64;
        loop {
            let n = (len - offset).min(u64::from(MAX_CHUNK)) as usize;
            let f2 = f.clone();
            let data = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; n];
                std::os::unix::fs::FileExt::read_exact_at(&*f2, &mut buf, offset).map(|()| buf)
            })
            .await
            .map_err(|e| fail(e.to_string()))?
            .map_err(|e| fail(e.to_string()))?;
            let last = offset + n as u64 >= len;
            let mut ctx = context::current();
            ctx.deadline = Instant::now() + Duration::from_secs(60);
            client
                .upload_output(ctx, settings.worker, attempt, offset, data.into(), last)
                .await
                .map_err(|e| fail(format!("lost the coordinator: {e}")))?
                .map_err(|e| fail(e.to_string()))?;
            offset += n as u64;
            if last {
                return Ok(len);
            }
        }
    }
}
