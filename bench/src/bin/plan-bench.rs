//! `plan-bench`: what planning by content costs (issue: incremental
//! re-runs): reading and hashing every input into content-defined pieces,
//! then the same again with the pieces kept in a cache (files unchanged).
//!
//!   plan-bench [--split-size 64MiB] FILES...

use anyhow::Result;
use clap::Parser;
use mr_cache::plan::{all_pieces, plan};
use mr_protocol::plan::InputFile;
use std::time::Instant;

/// Time planning FILES by content, cold and with a cache.
#[derive(Parser, Debug)]
struct Args {
    /// Target split size.
    #[arg(long, default_value = "64MiB", value_parser = mr_protocol::size::parse_size)]
    split_size: u64,
    /// Input files.
    files: Vec<std::path::PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let files: Vec<InputFile> = args
        .files
        .iter()
        .map(|p| {
            Ok(InputFile {
                name: p.display().to_string(),
                path: std::fs::canonicalize(p)?,
                len: std::fs::metadata(p)?.len(),
                version: None,
            })
        })
        .collect::<Result<_>>()?;
    let bytes: u64 = files.iter().map(|f| f.len).sum();
    let dir = tempfile::tempdir()?;
    let cache = mr_cache::Cache::open(dir.path())?;
    for (what, cache) in [
        ("cold, no cache", None),
        ("cold, filling the cache", Some(&cache)),
        ("unchanged, from the cache", Some(&cache)),
    ] {
        let t = Instant::now();
        let pieces = all_pieces(&files, args.split_size, mr_cache::chunk::Cut::Lines, cache)?;
        let (splits, _) = plan(&files, &pieces, args.split_size);
        let s = t.elapsed().as_secs_f64();
        println!(
            "{what:28} {} files, {:.0} MiB, {} splits: {s:.3} s ({:.0} MiB/s)",
            files.len(),
            bytes as f64 / 1048576.0,
            splits.len(),
            bytes as f64 / 1048576.0 / s
        );
    }
    Ok(())
}
