//! `mr-bench`: the benchmark runner behind `bench/run.sh`.
//!
//! Generates the corpus if it is missing, runs each contender several times
//! (wall time, user+sys CPU and peak RSS from `wait4`, which covers the
//! contender's reaped children such as embedded workers), checks that the
//! word counters agree line for line, and prints a Markdown table with each
//! contender's ratio to the yardstick.

use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Benchmark the framework against a hand-written word counter.
#[derive(Parser, Debug)]
struct Args {
    /// Corpus size.
    #[arg(long, default_value = "1GiB")]
    size: String,
    /// Corpus files.
    #[arg(long, default_value_t = 64)]
    files: u32,
    /// Runs per contender.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Scratch directory for the corpus and outputs.
    #[arg(long, env = "MR_BENCH_DIR", default_value = "/tmp/mr-bench")]
    dir: PathBuf,
    /// Only contenders whose name contains one of these (comma-separated).
    #[arg(long)]
    only: Option<String>,
    /// Also time a job over this many 1 KiB inputs (scheduling overhead); 0 skips it.
    #[arg(long, default_value_t = 10_000)]
    tiny_files: u32,
    /// Extra arguments for every mrcoordinator run (e.g. "--split-size 32MiB").
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    coordinator_args: String,
    /// Distinct words in the generated corpus's vocabulary.
    #[arg(long, default_value_t = 500_000)]
    vocabulary: usize,
    /// The reference word counter the ratios are taken against: its binary,
    /// or its source directory (built in a copy under --dir), called as
    /// `PATH OUT INPUT...`. Without it the ratios are against the yardstick.
    #[arg(long)]
    reference: Option<PathBuf>,
}

/// The reference counter's binary: `path` itself, or built from the crate
/// at `path` in a copy under `dir` (the source may be read-only).
fn reference_binary(path: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    if !path.join("Cargo.toml").exists() {
        anyhow::ensure!(
            path.is_file(),
            "--reference {}: neither a binary nor a crate directory",
            path.display()
        );
        return Ok(path.to_path_buf());
    }
    let name = path
        .file_name()
        .ok_or_else(|| anyhow::anyhow!("--reference {}: no directory name", path.display()))?;
    let copy = dir.join("reference").join(name);
    std::fs::create_dir_all(&copy)?;
    let st = Command::new("cp")
        .arg("-r")
        .arg(path.join("."))
        .arg(&copy)
        .status()?;
    anyhow::ensure!(st.success(), "copying {} failed", path.display());
    eprintln!("building the reference in {} ...", copy.display());
    let st = Command::new("cargo")
        .args(["build", "--release", "--quiet"])
        .current_dir(&copy)
        .status()?;
    anyhow::ensure!(st.success(), "building {} failed", copy.display());
    let bin = copy.join("target/release").join(name);
    anyhow::ensure!(bin.is_file(), "no binary at {}", bin.display());
    Ok(bin)
}

struct Contender {
    name: &'static str,
    argv: Vec<String>,
    /// Where its output lands: a file, or a directory of mr-out-* files.
    output: Option<PathBuf>,
    /// Outputs compared with the yardstick's (word counts).
    check: Check,
}

#[derive(PartialEq)]
enum Check {
    Wc,
    Indexer,
    None,
}

struct Sample {
    wall: f64,
    cpu: f64,
    rss_kib: i64,
}

/// Runs argv to completion and measures it with wait4.
fn measure(argv: &[String], cwd: &Path) -> anyhow::Result<Sample> {
    let start = Instant::now();
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(cwd)
        .spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid out-parameter.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child; wait4 reaps it (so `child` must not wait again).
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = start.elapsed().as_secs_f64();
    drop(child);
    anyhow::ensure!(r == pid, "wait4 failed for {}", argv[0]);
    anyhow::ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{} failed (status {status})",
        argv.join(" ")
    );
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Sample {
        wall,
        cpu: secs(ru.ru_utime) + secs(ru.ru_stime),
        rss_kib: ru.ru_maxrss,
    })
}

/// An order-independent digest of the lines of a file or of a directory's
/// mr-out-* files: (line count, wrapping sum of per-line FNV-1a hashes).
/// Streams the files, so this process never holds an output in memory: a
/// child started by `posix_spawn` inherits the parent's peak RSS into its
/// own `ru_maxrss`, which would otherwise inflate every later measurement.
fn digest_of(path: &Path) -> anyhow::Result<(u64, u64)> {
    use std::io::BufRead;
    let mut files = Vec::new();
    if path.is_dir() {
        for e in std::fs::read_dir(path)? {
            let p = e?.path();
            if p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("mr-out-"))
            {
                files.push(p);
            }
        }
    } else {
        files.push(path.to_path_buf());
    }
    let (mut count, mut sum) = (0u64, 0u64);
    let mut line = Vec::new();
    for f in files {
        let mut r = std::io::BufReader::with_capacity(1 << 16, std::fs::File::open(&f)?);
        loop {
            line.clear();
            if r.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            if line.is_empty() {
                continue;
            }
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for &b in &line {
                h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
            count += 1;
            sum = sum.wrapping_add(h);
        }
    }
    Ok((count, sum))
}

/// Reads every input once so each run starts with the corpus in the page
/// cache (this machine's memory reclaim otherwise evicts it between runs,
/// and the contenders would be timed partly on disk reads).
fn warm(inputs: &[String]) -> anyhow::Result<()> {
    use std::io::Read;
    let mut buf = vec![0u8; 1 << 20];
    for p in inputs {
        let mut f = std::fs::File::open(p)?;
        while f.read(&mut buf)? > 0 {}
    }
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Generates a corpus unless a complete one is already there; returns its files.
fn ensure_corpus(
    bin: &Path,
    corpus: &Path,
    size: &str,
    files: u32,
    vocabulary: usize,
) -> anyhow::Result<Vec<String>> {
    if !corpus.join(".complete").exists() {
        eprintln!("generating {size} corpus in {} ...", corpus.display());
        let t = Instant::now();
        let st = Command::new(bin.join("mr-corpus"))
            .args(["--size", size, "--files", &files.to_string()])
            .args(["--vocabulary", &vocabulary.to_string()])
            .arg(corpus)
            .status()?;
        anyhow::ensure!(st.success(), "mr-corpus failed");
        std::fs::write(corpus.join(".complete"), b"")?;
        eprintln!("generated in {:.1} s", t.elapsed().as_secs_f64());
    }
    let mut inputs: Vec<String> = std::fs::read_dir(corpus)?
        .filter_map(|e| e.ok().map(|e| e.path().display().to_string()))
        .filter(|p| p.ends_with(".txt"))
        .collect();
    inputs.sort();
    Ok(inputs)
}

/// Times a word count over many tiny inputs: what each task costs the framework.
fn tiny_inputs(bin: &Path, dir: &Path, n: u32, runs: usize) -> anyhow::Result<()> {
    let corpus = dir.join(format!("tiny-{n}"));
    let inputs = ensure_corpus(bin, &corpus, &format!("{n}KiB"), n, 500_000)?;
    let seq = dir.join("out-tiny-seq");
    std::fs::create_dir_all(&seq)?;
    let st = Command::new(bin.join("mrsequential"))
        .arg("--output-dir")
        .arg(&seq)
        .arg("wc")
        .args(&inputs)
        .status()?;
    anyhow::ensure!(st.success(), "mrsequential over the tiny inputs failed");
    let want = digest_of(&seq.join("mr-out-0"))?;
    println!(
        "\nScheduling overhead: {} inputs of 1 KiB, wc, --workers 2, R = 10, {runs} runs\n",
        inputs.len()
    );
    println!("| job | wall median s (min-max) | map tasks | per task (wall x 2 workers / tasks) |");
    println!("|---|---|---|---|");
    // Default splits pack the small files into one task; 1 KiB splits force
    // one map task per file, which measures the cost of a task itself, with
    // the embedded workers on loopback TCP or on the coordinator's socket.
    let socket = dir.join("bench.sock").display().to_string();
    let tcp_only: &[String] = &["--no-socket".to_string()];
    let via_socket: &[String] = &["--socket".to_string(), socket];
    for (label, split, maps, transport) in [
        (
            "packed (default --split-size 64MiB), TCP",
            "64MiB",
            1,
            tcp_only,
        ),
        (
            "one task per file (--split-size 1KiB), TCP",
            "1KiB",
            inputs.len(),
            tcp_only,
        ),
        (
            "one task per file (--split-size 1KiB), Unix socket",
            "1KiB",
            inputs.len(),
            via_socket,
        ),
    ] {
        let out = dir.join("out-tiny");
        let mut walls = Vec::new();
        for run in 0..runs {
            let _ = std::fs::remove_dir_all(&out);
            std::fs::create_dir_all(&out)?;
            let mut argv: Vec<String> = vec![
                bin.join("mrcoordinator").display().to_string(),
                "--quiet".into(),
                "--listen".into(),
                "127.0.0.1:0".into(),
            ];
            argv.extend(transport.iter().cloned());
            argv.extend([
                "--app".into(),
                "wc".into(),
                "--workers".into(),
                "2".into(),
                "--split-size".into(),
                split.into(),
                format!("{}/*.txt", corpus.display()),
            ]);
            let s = measure(&argv, &out)?;
            eprintln!(
                "{} tiny inputs, {label}: run {} {:.2} s",
                inputs.len(),
                run + 1,
                s.wall
            );
            walls.push(s.wall);
        }
        anyhow::ensure!(
            digest_of(&out)? == want,
            "tiny-input job ({label}) output differs from mrsequential"
        );
        let (min, max) = (
            walls.iter().cloned().fold(f64::MAX, f64::min),
            walls.iter().cloned().fold(0.0, f64::max),
        );
        let med = median(&mut walls);
        let tasks = maps + 10;
        println!(
            "| {label} | {med:.2} ({min:.2}-{max:.2}) | {maps} | {:.2} ms |",
            med * 2.0 * 1000.0 / tasks as f64
        );
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = std::env::current_exe()?.parent().unwrap().to_path_buf();
    let corpus = args.dir.join(match args.vocabulary {
        500_000 => format!("corpus-{}-{}", args.size, args.files),
        v => format!("corpus-{}-{}-v{v}", args.size, args.files),
    });
    let inputs = ensure_corpus(&bin, &corpus, &args.size, args.files, args.vocabulary)?;
    let reference = args
        .reference
        .as_deref()
        .map(|p| reference_binary(p, &args.dir))
        .transpose()?;
    let out = args.dir.join("out");
    let contenders = contenders(&args, &bin, &corpus, &inputs, &out, reference.as_deref());
    let only: Vec<String> = args
        .only
        .as_ref()
        .map(|s| s.split(',').map(String::from).collect())
        .unwrap_or_default();
    let mut rows = Vec::new();
    // The first output of each kind (word counts, index), which the
    // others must equal.
    let mut agreed: [Option<(u64, u64)>; 2] = [None, None];
    for c in contenders
        .iter()
        .filter(|c| only.is_empty() || only.iter().any(|o| c.name.contains(o.as_str())))
    {
        rows.push(run_contender(c, args.runs, &inputs, &out, &mut agreed)?);
    }
    print_table(&args, &inputs, &rows);
    if args.tiny_files > 0 {
        tiny_inputs(&bin, &args.dir, args.tiny_files, args.runs)?;
    }
    Ok(())
}

/// What ran, in the order of the table: the reference counter if given,
/// the yardstick, mrsequential, the framework's word count and indexer on
/// one and two workers, and a shell pipeline for scale.
fn contenders(
    args: &Args,
    bin: &Path,
    corpus: &Path,
    inputs: &[String],
    out: &Path,
    reference: Option<&Path>,
) -> Vec<Contender> {
    let b = |n: &str| bin.join(n).display().to_string();
    let pattern = format!("{}/*.txt", corpus.display());
    let extra: Vec<String> = args
        .coordinator_args
        .split_whitespace()
        .map(String::from)
        .collect();
    let dist = |app: &str, workers: u32, dir: &Path| -> Vec<String> {
        let mut v = vec![
            b("mrcoordinator"),
            "--quiet".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
        ];
        v.extend([
            "--app".into(),
            app.into(),
            "--workers".into(),
            workers.to_string(),
        ]);
        v.extend(["--output-dir".into(), dir.display().to_string()]);
        v.extend(extra.iter().cloned());
        v.push(pattern.clone());
        v
    };
    let with_inputs = |mut v: Vec<String>| {
        v.extend(inputs.iter().cloned());
        v
    };
    let o = |n: &str| out.join(n);
    let mut contenders = Vec::new();
    if let Some(r) = reference {
        let mut argv = vec![
            r.display().to_string(),
            o("reference.txt").display().to_string(),
        ];
        argv.extend(inputs.iter().cloned());
        contenders.push(Contender {
            name: "reference counter (--reference)",
            argv,
            output: Some(o("reference.txt")),
            check: Check::Wc,
        });
    }
    contenders.extend([
        Contender {
            name: "yardstick (plain Rust word count)",
            argv: with_inputs(vec![
                b("wc-yardstick"),
                "--output".into(),
                o("yardstick.txt").display().to_string(),
            ]),
            output: Some(o("yardstick.txt")),
            check: Check::Wc,
        },
        Contender {
            name: "mrsequential wc",
            argv: with_inputs(vec![
                b("mrsequential"),
                "--output-dir".into(),
                o("seq").display().to_string(),
                "wc".into(),
            ]),
            output: Some(o("seq/mr-out-0")),
            check: Check::Wc,
        },
        Contender {
            name: "mrcoordinator wc --workers 1",
            argv: dist("wc", 1, &o("wc1")),
            output: Some(o("wc1")),
            check: Check::Wc,
        },
        Contender {
            name: "mrcoordinator wc --workers 2",
            argv: dist("wc", 2, &o("wc2")),
            output: Some(o("wc2")),
            check: Check::Wc,
        },
        Contender {
            name: "mrcoordinator indexer --workers 1",
            argv: dist("indexer", 1, &o("ix1")),
            output: Some(o("ix1")),
            check: Check::Indexer,
        },
        Contender {
            name: "mrcoordinator indexer --workers 2",
            argv: dist("indexer", 2, &o("ix2")),
            output: Some(o("ix2")),
            check: Check::Indexer,
        },
        Contender {
            name: "tr -cs + sort + uniq -c pipeline (ASCII words; for scale only)",
            argv: vec![
                "sh".into(),
                "-c".into(),
                format!(
                    "cat {} | tr -cs 'A-Za-z' '\\n' | LC_ALL=C sort | uniq -c > {}",
                    inputs.join(" "),
                    o("tr.txt").display()
                ),
            ],
            output: None,
            check: Check::None,
        },
    ]);
    contenders
}

/// One row of the table: a contender's median, fastest and slowest wall
/// time, median CPU time and largest process.
struct Row {
    name: &'static str,
    wall: f64,
    min: f64,
    max: f64,
    cpu: f64,
    rss_kib: i64,
}

/// Runs contender `c` `runs` times on warm inputs, and checks its last
/// output against the first of its kind (`agreed`).
fn run_contender(
    c: &Contender,
    runs: usize,
    inputs: &[String],
    out: &Path,
    agreed: &mut [Option<(u64, u64)>; 2],
) -> anyhow::Result<Row> {
    let mut samples = Vec::new();
    for run in 0..runs {
        let _ = std::fs::remove_dir_all(out);
        for d in ["seq", "wc1", "wc2", "ix1", "ix2"] {
            std::fs::create_dir_all(out.join(d))?;
        }
        warm(inputs)?;
        let s = measure(&c.argv, out)?;
        eprintln!("{}: run {} {:.2} s", c.name, run + 1, s.wall);
        samples.push(s);
    }
    if let (Some(path), slot) = (&c.output, &mut agreed[(c.check == Check::Indexer) as usize]) {
        if c.check != Check::None {
            let lines = digest_of(path)?;
            match slot {
                None => *slot = Some(lines),
                Some(want) => anyhow::ensure!(
                    *want == lines,
                    "{}: output differs from the reference",
                    c.name
                ),
            }
        }
    }
    let mut walls: Vec<f64> = samples.iter().map(|s| s.wall).collect();
    let mut cpus: Vec<f64> = samples.iter().map(|s| s.cpu).collect();
    Ok(Row {
        name: c.name,
        min: walls.iter().cloned().fold(f64::MAX, f64::min),
        max: walls.iter().cloned().fold(0.0, f64::max),
        wall: median(&mut walls),
        cpu: median(&mut cpus),
        rss_kib: samples.iter().map(|s| s.rss_kib).max().unwrap_or(0),
    })
}

/// Prints the table, with ratios against the reference counter when it
/// ran, else the yardstick.
fn print_table(args: &Args, inputs: &[String], rows: &[Row]) {
    let bytes: u64 = inputs
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    let (yard, against) = match rows.iter().find(|r| r.name.starts_with("reference")) {
        Some(r) => (Some(r.wall), "reference"),
        None => (
            rows.iter()
                .find(|r| r.name.starts_with("yardstick"))
                .map(|r| r.wall),
            "yardstick",
        ),
    };
    println!(
        "\nCorpus: {} in {} files ({} bytes, {}-word vocabulary), {} runs each, {} cores\n",
        args.size,
        inputs.len(),
        bytes,
        args.vocabulary,
        args.runs,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "| contender | wall median s (min-max) | CPU s | largest process MiB | MB/s | x {against} |"
    );
    println!("|---|---|---|---|---|---|");
    for r in rows {
        let ratio = yard.map_or("-".to_string(), |y| format!("{:.2}", r.wall / y));
        println!(
            "| {} | {:.2} ({:.2}-{:.2}) | {:.2} | {:.0} | {:.0} | {ratio} |",
            r.name,
            r.wall,
            r.min,
            r.max,
            r.cpu,
            r.rss_kib as f64 / 1024.0,
            bytes as f64 / 1e6 / r.wall
        );
    }
    println!("\nOutputs of the word counters agree line for line; so do the indexer runs.");
}
