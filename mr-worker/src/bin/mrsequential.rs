//! `mrsequential`: runs a MapReduce app over inputs in one process, writing
//! `mr-out-0`. The reference answer for tests, and a local debugging mode.

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Run a MapReduce app sequentially in this process; output goes to mr-out-0.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Directory for mr-out-0.
    #[arg(long, default_value = ".")]
    output_dir: PathBuf,
    /// Memory budget for map buffers (bytes, or 64MiB, 1GiB...); past it,
    /// sorted runs are spilled to disk and merged.
    #[arg(long, allow_hyphen_values = true, env = "MR_MEMORY", default_value = "128MiB", value_parser = mr_protocol::size::parse_size)]
    memory: u64,
    /// The app: a built-in name or the path of a plugin (.so).
    app: String,
    /// Input files or glob patterns.
    #[arg(required = true)]
    inputs: Vec<String>,
}

fn run(args: Args) -> anyhow::Result<()> {
    let app = mr_apps::resolve(&args.app)?;
    let inputs = mr_protocol::plan::expand_inputs_with(&args.inputs, Some(&mr_store::Lister))?;
    if !args.output_dir.is_dir() {
        anyhow::bail!(
            "output directory '{}' does not exist",
            args.output_dir.display()
        );
    }
    mr_worker::sequential::run_sequential(&*app, &inputs, &args.output_dir, args.memory as usize)
        .with_context(|| format!("app '{}' failed", args.app))?;
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
            ExitCode::FAILURE
        }
    }
}
