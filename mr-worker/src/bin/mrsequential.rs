//! `mrsequential`: runs a MapReduce app over inputs in one process, writing
//! `mr-out-0`. The reference answer for tests, and a local debugging mode.

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Run a MapReduce app sequentially in this process; output goes to mr-out-0.
#[derive(Parser, Debug)]
#[command(version = mr_build::VERSION)]
struct Args {
    /// Directory for mr-out-0.
    #[arg(long, default_value = ".")]
    output_dir: PathBuf,
    /// Memory budget for map buffers (bytes, or 64MiB, 1GiB...); past it,
    /// sorted runs are spilled to disk and merged.
    #[arg(long, allow_hyphen_values = true, env = "MR_MEMORY", default_value = "128MiB", value_parser = mr_protocol::size::parse_size)]
    memory: u64,
    /// Keep each split's map output and the job's output in this
    /// directory (or under an s3://BUCKET/prefix), and reuse them in later
    /// runs: only what changed inputs or app change is computed again
    /// (inputs are split by content). Shared with `mrcoordinator --cache
    /// DIR --reduces 1` at the same split size.
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    cache: Option<PathBuf>,
    /// With --cache: after the run, evict least recently used results until
    /// the cache holds at most this much (e.g. 10GiB).
    #[arg(long, requires = "cache", value_parser = mr_protocol::size::parse_size)]
    cache_max: Option<u64>,
    /// With --cache: a file whose contents the cache keys must include
    /// (repeatable): what the keys cannot see themselves, such as a module
    /// a streaming script imports. The keys already cover this build of
    /// the framework, a plugin's file, and the executables and files a
    /// streaming command names.
    #[arg(long, requires = "cache", value_name = "PATH")]
    cache_key_file: Vec<PathBuf>,
    /// With --cache: the size splits are planned at (as mrcoordinator's
    /// --split-size; the same size makes the same addresses).
    #[arg(long, requires = "cache", default_value = "64MiB", value_parser = mr_protocol::size::parse_size)]
    split_size: u64,
    /// A job parameter for the app (repeatable), e.g. --conf pattern=ERROR
    /// for grep; part of every cache key.
    #[arg(long, value_name = "KEY=VALUE", value_parser = mr_apps::Conf::parse_flag)]
    conf: Vec<(String, String)>,
    /// Inputs are records of this many bytes (any bytes, newlines
    /// included) instead of lines; a file that is not whole records is
    /// refused. Apps with records of their own (sort) need no flag.
    #[arg(long, value_name = "BYTES")]
    record_size: Option<u32>,
    /// The app: a built-in name or the path of a plugin (.so).
    app: String,
    /// Input files or glob patterns.
    #[arg(required = true)]
    inputs: Vec<String>,
}

/// A refusal of the command as given (exit status 2): the app's
/// parameters or records do not fit it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

fn run(args: Args) -> anyhow::Result<()> {
    let conf = mr_apps::Conf::from_pairs(args.conf.iter().cloned());
    let app = mr_apps::resolve(&args.app, &conf).map_err(|e| match e {
        e @ mr_apps::LoadError::Conf { .. } => anyhow::Error::new(Refused(e.to_string())),
        e => e.into(),
    })?;
    let record_size = match (args.record_size, app.record_size()) {
        (Some(flag), Some(own)) if flag != own => {
            return Err(Refused(format!(
                "--record-size {flag}: the app '{}' reads records of {own} bytes; leave --record-size out",
                args.app
            ))
            .into())
        }
        (flag, own) => flag.or(own),
    };
    if let Some(n) = record_size {
        mr_protocol::plan::check_record_size(n).map_err(Refused)?;
    }
    let app = mr_apps::JobApp::wrap(app, record_size, None);
    let inputs = mr_protocol::plan::expand_inputs_with(&args.inputs, Some(&mr_store::Lister))?;
    mr_protocol::plan::check_records(&inputs, record_size.unwrap_or(0))
        .map_err(|e| Refused(e.to_string()))?;
    if !args.output_dir.is_dir() {
        anyhow::bail!(
            "output directory '{}' does not exist",
            args.output_dir.display()
        );
    }
    let memory = args.memory as usize;
    let Some(cache) = &args.cache else {
        mr_worker::sequential::run_sequential(&*app, &inputs, &args.output_dir, memory)
            .with_context(|| format!("app '{}' failed", args.app))?;
        return Ok(());
    };
    let spec = mr_cache::job::AppSpec {
        app: &args.app,
        streaming: None,
        reduces: 1,
        split_size: args.split_size.max(1),
        key_files: &args.cache_key_file,
        record_size,
        params: &mr_protocol::JobShape {
            conf: conf.to_pairs(),
            record_size: record_size.unwrap_or(0),
            split_points: None,
        }
        .key_bytes(),
    };
    let run = mr_worker::sequential::run_sequential_cached(
        &*app,
        &spec,
        &inputs,
        &args.output_dir,
        memory,
        (cache, args.cache_max),
    )
    .map_err(|e| match e {
        mr_worker::sequential::CachedRunError::Task(f) => {
            anyhow::anyhow!("app '{}' failed: {f}", args.app)
        }
        other => other.into(),
    })?;
    let output = match (run.output_reused, run.output_bytes_copied) {
        (true, _) => " and the output".to_string(),
        (false, 0) => String::new(),
        (false, n) => format!(" and {n} output bytes copied from an earlier output"),
    };
    eprintln!(
        "mrsequential: reused from the cache: {} of {} map tasks ({} input bytes not mapped again){output}",
        run.maps_reused, run.maps, run.input_bytes_reused,
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    mr_worker::init_logging();
    mr_worker::raise_open_file_limit();
    mr_worker::return_freed_memory();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mrsequential: {e:#}");
            match e.is::<Refused>() {
                true => ExitCode::from(2),
                false => ExitCode::FAILURE,
            }
        }
    }
}
