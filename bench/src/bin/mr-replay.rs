//! `mr-replay`: how long a coordinator restarted on a large job's journal
//! takes before it can hand out tasks again, and how big that journal is.
//!
//! Writes the journal a job of `--maps` maps and `--reduces` reduces leaves
//! once its map phase is over and part of its reduces are committed (every
//! map done with realistic counters, a fraction of map outputs lost with
//! their worker and made again, then some reduces), through the journal's
//! own encoder, to a file. Then, timed: reading the file, replaying it,
//! turning it into the scheduler's resume state, and restoring a scheduler
//! from it, until that scheduler hands out its first task. Checks that the
//! restored scheduler has exactly the progress the journal holds.
//!
//!   mr-replay [--maps 1000000 --reduces 10000] [--json]

use anyhow::{bail, Context, Result};
use clap::Parser;
use mr_coordinator::journal::{self, JobIdentity, Record};
use mr_coordinator::scheduler::{Scheduler, SchedulerConfig};
use mr_protocol::plan::InputFile;
use mr_protocol::{Assignment, AttemptId, Counters, MapTaskId, ReduceTaskId};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Time a coordinator's recovery from a large job's journal.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Map tasks of the journaled job.
    #[arg(long, default_value_t = 1_000_000)]
    maps: u32,
    /// Reduce tasks of the journaled job.
    #[arg(long, default_value_t = 10_000)]
    reduces: u32,
    /// Fraction of the reduces already committed.
    #[arg(long, default_value_t = 0.5)]
    committed: f64,
    /// Fraction of map outputs lost with their worker and made again.
    #[arg(long, default_value_t = 0.01)]
    lost: f64,
    /// Directory for the journal file (a temporary one by default).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print one JSON object instead of lines.
    #[arg(long)]
    json: bool,
}

const SPLIT: u64 = 64 << 20;

fn inputs(maps: u32) -> Vec<InputFile> {
    let files = maps.div_ceil(1000).max(1);
    (0..files)
        .map(|f| InputFile {
            name: format!("logs/day-{f:05}.txt"),
            path: PathBuf::from(format!("/data/logs/day-{f:05}.txt")),
            len: u64::from((maps - f * 1000).min(1000)) * SPLIT,
            version: None,
        })
        .collect()
}

/// Counters as a word count's map reports them.
fn map_counters(m: u32) -> Counters {
    Counters {
        input_bytes: SPLIT,
        input_records: 1_100_000 + u64::from(m % 977),
        map_output_records: 11_000_000 + u64::from(m % 7919),
        combine_input_records: 11_000_000 + u64::from(m % 7919),
        combine_output_records: 480_000 + u64::from(m % 613),
        map_output_bytes: 6_500_000 + u64::from(m % 4099),
        ..Counters::default()
    }
}

fn reduce_counters(r: u32) -> Counters {
    Counters {
        reduce_input_groups: 50_000 + u64::from(r),
        reduce_input_records: 48_000_000,
        output_records: 50_000 + u64::from(r),
        output_bytes: 700_000,
        ..Counters::default()
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.maps == 0 || args.reduces == 0 {
        bail!("--maps and --reduces must be at least 1");
    }
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("mr-replay-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(journal::FILE_NAME);
    let files = inputs(args.maps);
    let identity = JobIdentity {
        inputs: files.iter().map(|f| (f.path.clone(), f.len, 0)).collect(),
        reduces: args.reduces,
        split_size: SPLIT,
        app: Some("wc".into()),
        output_dir: "/data/out".into(),
        shape: Vec::new(),
    };
    let written = Instant::now();
    let w = write_journal(&args, &path, &identity)?;
    let write_s = written.elapsed();
    let bytes = std::fs::metadata(&path)?.len();
    let r = restart(&args, &path, &identity, files)?;
    let _ = std::fs::remove_file(&path);
    if args.dir.is_none() {
        let _ = std::fs::remove_dir(&dir);
    }
    let broken = check(&args, &r, &w);
    let tasks = u64::from(args.maps) + u64::from(args.reduces);
    if args.json {
        println!(
            r#"{{"replay_tasks": {tasks}, "replay_records": {}, "replay_journal_mib": {:.1}, "replay_journal_bytes_per_task": {:.0}, "replay_read_s": {:.3}, "replay_decode_s": {:.3}, "replay_s": {:.3}, "replay_write_s": {:.3}, "replay_ok": {}}}"#,
            r.records,
            bytes as f64 / 1048576.0,
            bytes as f64 / tasks as f64,
            r.read.as_secs_f64(),
            r.decode.as_secs_f64(),
            r.total.as_secs_f64(),
            write_s.as_secs_f64(),
            broken.is_empty()
        );
    } else {
        println!(
            "journal of {} maps and {} reduces ({} committed): {:.1} MiB ({:.0} bytes per task)",
            args.maps,
            args.reduces,
            w.committed,
            bytes as f64 / 1048576.0,
            bytes as f64 / tasks as f64
        );
        println!(
            "read {:.3} s, replay {:.3} s; first task handed out {:.3} s after the start",
            r.read.as_secs_f64(),
            r.decode.as_secs_f64(),
            r.total.as_secs_f64()
        );
    }
    for b in &broken {
        eprintln!("mr-replay: {b}");
    }
    if !broken.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

/// What the journal written says was done.
struct Written {
    /// Maps done (each once, whatever was lost and made again).
    maps: u64,
    /// Reduces committed: the first ones.
    committed: u32,
}

/// Writes the journal a coordinator would leave (with its one encoder):
/// every map done, a share of them lost with their holders and made again,
/// and the first `--committed` share of the reduces committed.
fn write_journal(args: &Args, path: &Path, identity: &JobIdentity) -> Result<Written> {
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
    );
    out.write_all(journal::MAGIC)?;
    let mut put = |r: &Record| out.write_all(&journal::encode(r));
    put(&Record::Begin(identity.clone()))?;
    put(&Record::Incarnation(0))?;
    put(&Record::AppFixed {
        app: "wc".into(),
        whole_file: false,
    })?;
    let holder = |m: u32| Some(format!("10.1.{}.{}:7071", (m / 250) % 40, m % 250));
    let mut attempt = 0u64;
    for m in 0..args.maps {
        put(&Record::MapDone(
            MapTaskId(m),
            AttemptId(attempt),
            map_counters(m),
            holder(m),
        ))?;
        attempt += 1;
    }
    // Some workers' outputs went with them; their maps ran again.
    if args.lost > 0.0 {
        let lost_every = ((1.0 / args.lost) as usize).max(1);
        for m in (0..args.maps).step_by(lost_every) {
            put(&Record::MapLost(MapTaskId(m)))?;
            put(&Record::MapDone(
                MapTaskId(m),
                AttemptId(attempt),
                map_counters(m),
                holder(m + 1),
            ))?;
            attempt += 1;
        }
    }
    let committed = ((f64::from(args.reduces) * args.committed) as u32).min(args.reduces);
    for r in 0..committed {
        put(&Record::ReduceDone(
            ReduceTaskId(r),
            AttemptId(attempt),
            reduce_counters(r),
        ))?;
        attempt += 1;
    }
    out.flush()?;
    Ok(Written {
        maps: u64::from(args.maps),
        committed,
    })
}

/// A restarted coordinator's state, and how long getting there took.
struct Restarted {
    sched: Scheduler,
    /// The first assignment handed out after the restart.
    first: Assignment,
    records: usize,
    read: Duration,
    decode: Duration,
    /// From the start of the read to the first assignment.
    total: Duration,
}

/// Timed: what a restarted coordinator does before its first assignment
/// (read the journal, replay it, restore a scheduler, register a worker
/// and hand it a task).
fn restart(
    args: &Args,
    path: &Path,
    identity: &JobIdentity,
    files: Vec<InputFile>,
) -> Result<Restarted> {
    let t0 = Instant::now();
    let data = std::fs::read(path)?;
    let read = t0.elapsed();
    let replay = journal::replay(&data).map_err(|e| anyhow::anyhow!("replay failed: {e}"))?;
    let decode = t0.elapsed() - read;
    if replay.identity != *identity {
        bail!("the journal's identity did not round-trip");
    }
    let resume = mr_coordinator::server::resume_from(&replay.recovered);
    let mut sched = Scheduler::new(
        SchedulerConfig {
            reduces: args.reduces,
            split_size: SPLIT,
            task_timeout: Duration::from_secs(10),
            max_attempts: 4,
            app: Some("wc".into()),
            wait: Duration::from_millis(50),
            skip_bad_records: false,
            record_size: 0,
            backups: true,
            backup_after: Duration::from_secs(10),
        },
        files,
    );
    sched.restore(&resume);
    let now = Instant::now();
    let w = sched
        .register(now, "wc", false)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let first = sched.assign(w, now);
    Ok(Restarted {
        sched,
        first,
        records: replay.records,
        read,
        decode,
        total: t0.elapsed(),
    })
}

/// Where the restored state is not the journal's, exactly.
fn check(args: &Args, r: &Restarted, w: &Written) -> Vec<String> {
    let (p, committed) = (r.sched.progress(), w.committed);
    let mut broken = Vec::new();
    if p.maps as u64 != w.maps || p.maps_done as u64 != w.maps {
        broken.push(format!(
            "{} of {} maps done, expected all {}",
            p.maps_done, p.maps, w.maps
        ));
    }
    if p.reduces_done as u32 != committed {
        broken.push(format!(
            "{} reduces done, expected {committed}",
            p.reduces_done
        ));
    }
    let want_input = u64::from(args.maps) * SPLIT;
    if r.sched.counters().input_bytes != want_input {
        broken.push(format!(
            "input bytes {} after restore, expected {want_input} (a re-made map counted twice?)",
            r.sched.counters().input_bytes
        ));
    }
    let gives_reduce =
        matches!(&r.first, Assignment::Work(mr_protocol::Work::Reduce(t)) if t.task.0 == committed);
    if committed < args.reduces && !gives_reduce {
        broken.push(format!(
            "the first assignment was {:?}, not reduce {committed}",
            r.first
        ));
    }
    broken
}
