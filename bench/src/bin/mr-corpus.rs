//! `mr-corpus`: writes a deterministic benchmark corpus: prose-like text,
//! or the sort benchmark's records (`--records N`), and checks sorted
//! records as the benchmark's `valsort` does (`--check`).
//!
//! Text: lines of 50-110 bytes; words drawn Zipf-like (exponent 1.1) from a
//! fixed vocabulary of distinct words, about 1% of which carry a non-ASCII
//! letter; digits and punctuation between words. The same arguments always
//! write the same bytes (own PRNG, fixed seeds); files are generated in
//! parallel. Records: byte for byte `gensort`'s ([`mr_bench::gensort`]),
//! `records-NNNN` holding consecutive ranges, so the files concatenated
//! in name order are `gensort -bBEGIN N`'s one file.

use clap::Parser;
use mr_bench::{gensort, Rng};
use rayon::prelude::*;
use std::collections::HashSet;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

/// Generate a benchmark corpus of prose-like text files (or sort-benchmark
/// records), or check sorted records.
#[derive(Parser, Debug)]
struct Args {
    /// Write this many sort-benchmark records (100 bytes each, gensort's)
    /// instead of text, spread over --files files.
    #[arg(long, conflicts_with = "check")]
    records: Option<u64>,
    /// With --records: printable records ending in \r\n (gensort -a).
    #[arg(long, requires = "records")]
    ascii: bool,
    /// With --records: skewed keys (gensort -s).
    #[arg(long, requires = "records")]
    skew: bool,
    /// With --records: the first record's number (gensort -b).
    #[arg(long, requires = "records", default_value_t = 0)]
    begin: u64,
    /// Check the files given (in order, as one sequence) as valsort does:
    /// print the record count, the checksum and duplicate keys, and exit 1
    /// unless every key is at least the one before.
    #[arg(long)]
    check: bool,
    /// With --check: only count and sum the records (for inputs, which are
    /// not sorted).
    #[arg(long, requires = "check")]
    unordered: bool,
    /// Total size (e.g. 1GiB, 100MiB).
    #[arg(long, default_value = "1GiB", value_parser = mr_protocol::size::parse_size)]
    size: u64,
    /// Number of files to spread it over.
    #[arg(long, default_value_t = 64)]
    files: u32,
    /// Distinct words in the vocabulary.
    #[arg(long, default_value_t = 500_000)]
    vocabulary: usize,
    /// Zipf exponent of word frequencies.
    #[arg(long, default_value_t = 1.1)]
    zipf: f64,
    /// Seed (the same seed gives the same bytes).
    #[arg(long, default_value_t = 5840)]
    seed: u64,
    /// Output directory (created if missing); with --check, the files.
    #[arg(required = true)]
    out: Vec<PathBuf>,
    /// Also write each file compressed beside it (`corpus-N.txt.gz`,
    /// `.zst` or `.bz2`), for timing compressed inputs against plain ones.
    #[arg(long, value_parser = ["gz", "zst", "bz2"])]
    compress: Option<String>,
}

/// Non-ASCII letters (all general category L) sprinkled into 1% of words.
const ACCENTS: &[&str] = &["é", "ü", "ñ", "ø", "ß", "ж", "λ", "ç", "å", "ğ", "ł", "я"];

fn vocabulary(n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    let mut seen = HashSet::with_capacity(n);
    let mut words = Vec::with_capacity(n);
    while words.len() < n {
        // Lengths 2..=12, weighted towards 4-8 like English.
        let len = 2 + (rng.below(6) + rng.below(6)) as usize;
        let mut w: Vec<u8> = (0..len).map(|_| b'a' + rng.below(26) as u8).collect();
        if rng.below(100) == 0 {
            let pos = rng.below(len as u64) as usize;
            let acc = ACCENTS[rng.below(ACCENTS.len() as u64) as usize].as_bytes();
            w.splice(pos..pos + 1, acc.iter().copied());
        }
        if seen.insert(w.clone()) {
            words.push(w);
        }
    }
    words
}

/// Cumulative Zipf weights scaled to u64, for sampling by binary search.
fn zipf_cdf(n: usize, s: f64) -> Vec<u64> {
    let weights: Vec<f64> = (1..=n).map(|k| 1.0 / (k as f64).powf(s)).collect();
    let total: f64 = weights.iter().sum();
    let mut acc = 0.0;
    weights
        .iter()
        .map(|w| {
            acc += w / total;
            (acc.min(1.0) * u64::MAX as f64) as u64
        })
        .collect()
}

fn write_file(
    path: &PathBuf,
    bytes: u64,
    seed: u64,
    vocab: &[Vec<u8>],
    cdf: &[u64],
) -> std::io::Result<()> {
    let mut rng = Rng::new(seed);
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut written = 0u64;
    let mut line = Vec::with_capacity(256);
    let mut num = Vec::new();
    while written < bytes {
        line.clear();
        let target = 50 + rng.below(61) as usize;
        loop {
            let u = rng.next_u64();
            let idx = cdf.partition_point(|&c| c < u).min(vocab.len() - 1);
            let word = &vocab[idx];
            let sep: &[u8] = match rng.below(100) {
                0..=89 => b" ",
                90..=93 => b", ",
                94..=96 => b". ",
                97..=98 => {
                    num.clear();
                    write!(num, " {} ", rng.below(10_000))?;
                    &num
                }
                _ => b" - ",
            };
            let extra = if line.is_empty() {
                word.len()
            } else {
                sep.len() + word.len()
            };
            // Stop once the target is reached, never passing 110 bytes.
            if !line.is_empty() && (line.len() >= target || line.len() + extra > 109) {
                break;
            }
            if !line.is_empty() {
                line.extend_from_slice(sep);
            }
            line.extend_from_slice(word);
        }
        line.push(b'\n');
        out.write_all(&line)?;
        written += line.len() as u64;
    }
    out.flush()
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    let args = Args::parse();
    if args.check {
        return check(&args.out, args.unordered);
    }
    anyhow::ensure!(args.files > 0, "--files must be at least 1");
    anyhow::ensure!(args.out.len() == 1, "give one output directory");
    let out = &args.out[0];
    std::fs::create_dir_all(out)?;
    if let Some(n) = args.records {
        let mode = gensort::Mode {
            ascii: args.ascii,
            skew: args.skew,
        };
        let files = u64::from(args.files);
        (0..files).into_par_iter().try_for_each(|i| {
            // File i holds records [n*i/files, n*(i+1)/files).
            let (from, to) = (n * i / files, n * (i + 1) / files);
            let path = out.join(format!("records-{i:04}"));
            let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
            gensort::write_records(
                &mut w,
                u128::from(args.begin) + u128::from(from),
                to - from,
                mode,
            )?;
            w.flush()
        })?;
        return Ok(std::process::ExitCode::SUCCESS);
    }
    anyhow::ensure!(args.vocabulary > 0, "--vocabulary must be at least 1");
    let vocab = vocabulary(args.vocabulary, args.seed);
    let cdf = zipf_cdf(vocab.len(), args.zipf);
    let per_file = args.size / u64::from(args.files);
    (0..args.files).into_par_iter().try_for_each(|i| {
        let path = out.join(format!("corpus-{i:04}.txt"));
        let seed = args.seed ^ (u64::from(i) + 1).wrapping_mul(0x2545_f491_4f6c_dd1d);
        write_file(&path, per_file, seed, &vocab, &cdf)?;
        match args.compress.as_deref() {
            Some(ext) => compress(&path, ext),
            None => Ok(()),
        }
    })?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// `--check`: the files as one sequence of records, summed in parallel.
fn check(files: &[PathBuf], unordered: bool) -> anyhow::Result<std::process::ExitCode> {
    use anyhow::Context;
    let parts: Vec<gensort::Summary> = files
        .par_iter()
        .map(|path| {
            let data =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            anyhow::ensure!(
                data.len() % gensort::RECORD == 0,
                "{} is {} bytes: a partial record at its end",
                path.display(),
                data.len()
            );
            let mut s = gensort::Summary::default();
            data.chunks_exact(gensort::RECORD).for_each(|r| s.add(r));
            Ok(s)
        })
        .collect::<anyhow::Result<_>>()?;
    let all = parts
        .into_iter()
        .fold(gensort::Summary::default(), gensort::Summary::then);
    println!("Records: {}", all.records);
    println!("Checksum: {}", all.checksum_hex());
    if unordered {
        return Ok(std::process::ExitCode::SUCCESS);
    }
    println!("Duplicate keys: {}", all.duplicates);
    match all.first_unordered {
        None => {
            println!("SUCCESS - all records are in order");
            Ok(std::process::ExitCode::SUCCESS)
        }
        Some(first) => {
            println!("First unordered record is record {first}");
            println!("ERROR - there are {} unordered records", all.unordered);
            Ok(std::process::ExitCode::FAILURE)
        }
    }
}

/// Writes `path` compressed as `<path>.<ext>`, at each tool's default level.
fn compress(path: &std::path::Path, ext: &str) -> std::io::Result<()> {
    let data = std::fs::read(path)?;
    let packed = match ext {
        "gz" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(&data)?;
            e.finish()?
        }
        "bz2" => {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
            e.write_all(&data)?;
            e.finish()?
        }
        _ => zstd::encode_all(&data[..], 3)?,
    };
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{ext}"));
    std::fs::write(name, packed)
}
