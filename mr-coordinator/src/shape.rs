//! The job's shape: what it decides before any task runs about its
//! parameters (`--conf`), its records (`--record-size`, or the app's own)
//! and its partitions (a total order's split points, from a sample of
//! the inputs' keys), which every worker then applies the same way.
//!
//! Decided once at start-up, on a blocking thread (sampling reads the
//! inputs), from the app when `--app` names it: a missing parameter, a
//! record size at odds with the app's, or an input that is not whole
//! records refuses the job before it starts, naming the flag or the file.

use crate::job::{CoordinatorError, JobConfig};
use mr_apps::{App, Conf, Emit};
use mr_protocol::plan::{check_records, InputFile};
use mr_protocol::JobShape;
use std::os::unix::fs::FileExt;
use tracing::{info, warn};

/// Bytes read at each sampled place of the inputs.
const PIECE: u64 = 64 << 10;
/// Sampled places, at most (spread evenly over all input bytes).
const MAX_PIECES: u64 = 400;
/// Keys kept per reduce, at most (a few thousand make ranges within a few
/// per cent of equal; more only cost sorting time).
const KEYS_PER_REDUCE: usize = 2_000;

/// Decides the job's shape (see the module's doc).
pub async fn decide(cfg: &JobConfig, files: &[InputFile]) -> Result<JobShape, CoordinatorError> {
    let (cfg, files) = (cfg.clone(), files.to_vec());
    tokio::task::spawn_blocking(move || decide_blocking(&cfg, &files))
        .await
        .map_err(|e| CoordinatorError::Internal {
            what: "deciding the job's records and partitions",
            reason: e.to_string(),
        })?
}

fn decide_blocking(cfg: &JobConfig, files: &[InputFile]) -> Result<JobShape, CoordinatorError> {
    let conf = Conf::from_pairs(cfg.conf.iter().cloned());
    let app: Option<Box<dyn App>> = match (&cfg.streaming, &cfg.app) {
        (Some((m, r)), _) => Some(Box::new(mr_apps::apps::streaming::Streaming::new(m, r))),
        // An app unknown here may be known to workers elsewhere (the
        // server warns of it, or refuses it with --workers): its shape is
        // then what the flags say, and a worker running it is checked at
        // registration.
        (None, Some(spec)) => match mr_apps::load(spec) {
            Ok(mut app) => {
                mr_apps::configure(&mut *app, &conf)
                    .map_err(|e| CoordinatorError::Refused(e.to_string()))?;
                Some(app)
            }
            Err(_) => None,
        },
        (None, None) => None,
    };
    let own_size = app.as_ref().and_then(|a| a.record_size());
    if let Some(n) = cfg.record_size.or(own_size) {
        mr_protocol::plan::check_record_size(n).map_err(CoordinatorError::Refused)?;
    }
    let record_size = match (cfg.record_size, own_size) {
        (Some(flag), Some(own)) if flag != own => {
            return Err(CoordinatorError::Refused(format!(
                "--record-size {flag}: the app '{}' reads records of {own} bytes; leave --record-size out",
                app.as_ref().map_or("", |a| a.name())
            )))
        }
        (flag, own) => flag.or(own).unwrap_or(0),
    };
    if record_size > 0 && app.as_ref().is_some_and(|a| a.whole_file()) {
        return Err(CoordinatorError::Refused(
            "--record-size: the app reads whole files, not records; leave --record-size out".into(),
        ));
    }
    check_records(files, record_size).map_err(|e| CoordinatorError::Refused(e.to_string()))?;
    let total_order = cfg.total_order || app.as_ref().is_some_and(|a| a.total_order());
    let split_points = match (total_order, &app) {
        // One reduce is in order by itself (and keys as mrsequential's do).
        (false, _) => None,
        (true, Some(_)) if cfg.reduces <= 1 => None,
        (true, None) => {
            return Err(CoordinatorError::Refused(
                "--total-order samples the keys the app's map emits before the job starts: add --app NAME, of an app known here".into(),
            ))
        }
        (true, Some(app)) => {
            let started = std::time::Instant::now();
            let sample = sample_keys(&**app, files, record_size, cfg.reduces)?;
            let n = sample.len();
            let points = mr_apps::range::split_points(sample, cfg.reduces);
            info!(keys = n, points = points.len(), took = ?started.elapsed(), "sampled the inputs' keys for a total order");
            Some(points)
        }
    };
    Ok(JobShape {
        conf: conf.to_pairs(),
        record_size,
        split_points,
    })
}

/// Collects a pair's key, dropping its value.
#[derive(Default)]
struct Keys(Vec<Vec<u8>>);

impl Emit for Keys {
    fn emit(&mut self, key: &[u8], _value: &[u8]) {
        self.0.push(key.to_vec());
    }
}

/// Keys of `app`'s map over pieces of the inputs spread evenly over all
/// their bytes (as TeraSort samples its input): at most
/// [`KEYS_PER_REDUCE`] per reduce, the same share from every piece.
/// Compressed inputs are not sampled (their bytes cannot be read from the
/// middle); a piece that makes the app panic is left out (the split points
/// only balance the reduces, the order holds whatever they are). The
/// sample is the same on every run over the same inputs (each piece's
/// keys are sorted before some are kept): the points are part of the
/// job's identity, so a restarted coordinator resumes its own journal.
fn sample_keys(
    app: &dyn App,
    files: &[InputFile],
    record_size: u32,
    reduces: u32,
) -> Result<Vec<Vec<u8>>, CoordinatorError> {
    let readable: Vec<&InputFile> = files
        .iter()
        .filter(|f| f.len > 0 && mr_protocol::codec::Codec::of(&f.name).is_none())
        .collect();
    let total: u64 = readable.iter().map(|f| f.len).sum();
    if total == 0 {
        return Ok(Vec::new());
    }
    let pieces = (total / PIECE).clamp(1, MAX_PIECES);
    let wanted = KEYS_PER_REDUCE * reduces as usize;
    let per_piece = wanted.div_ceil(pieces as usize).max(1);
    let mut sample = Vec::new();
    for i in 0..pieces {
        // The middle of the i-th of `pieces` equal stretches of all bytes.
        let mut at = total / pieces * i + total / pieces / 2;
        let Some(f) = readable.iter().find(|f| {
            let here = at < f.len;
            if !here {
                at -= f.len;
            }
            here
        }) else {
            continue;
        };
        // A read that fails fails the start: skipped, it would make other
        // split points than a later run's, and another job.
        let bytes = read_piece(f, at, record_size).map_err(|e| {
            CoordinatorError::Config(format!(
                "cannot read input {} to sample its keys for the total order: {e}",
                f.name
            ))
        })?;
        let mut keys = Keys::default();
        let mapped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            app.map(&f.name, &bytes, &mut keys)
        }));
        if mapped.is_err() {
            warn!(input = %f.name, offset = at, "the app panicked on a sampled piece; left out of the sample");
            continue;
        }
        // An even share of each piece's keys, spread over their order (not
        // the order the app emitted them in, which may be a hash's).
        let mut keys = keys.0;
        keys.sort_unstable();
        let step = keys.len().div_ceil(per_piece).max(1);
        sample.extend(keys.into_iter().step_by(step));
    }
    Ok(sample)
}

/// Whole records from about `at` in `f`: [`PIECE`] bytes moved to the next
/// record start and cut after the last whole record.
fn read_piece(f: &InputFile, at: u64, record_size: u32) -> Result<Vec<u8>, String> {
    let n = u64::from(record_size);
    let start = match n {
        0 => at.saturating_sub(1),
        _ => at / n * n,
    };
    // At least one whole record, however large records are.
    let end = (start + PIECE.max(n)).min(f.len);
    let mut bytes = match mr_store::is_object_url(&f.name) {
        true => mr_store::read_range(&f.name, f.version.as_deref(), start..end)
            .map_err(|e| e.to_string())?
            .to_vec(),
        false => {
            let file = std::fs::File::open(&f.path).map_err(|e| e.to_string())?;
            let mut buf = vec![0; (end - start) as usize];
            file.read_exact_at(&mut buf, start)
                .map_err(|e| e.to_string())?;
            buf
        }
    };
    if n > 0 {
        bytes.truncate(bytes.len() / n as usize * n as usize);
        return Ok(bytes);
    }
    // Lines: from the first line start (the byte before `at` is read to
    // know whether `at` is one) to the end of the last whole line.
    let first = match start {
        0 if at == 0 => 0,
        _ => memchr::memchr(b'\n', &bytes).map_or(bytes.len(), |i| i + 1),
    };
    let last = match end == f.len {
        true => bytes.len(),
        false => memchr::memrchr(b'\n', &bytes).map_or(first, |i| i + 1),
    };
    Ok(bytes[first..last.max(first)].to_vec())
}
