//! The reduce of a streaming app: one run of its reduce command per reduce
//! task, fed the partition's merged pairs as sorted `key<TAB>value` lines;
//! each line it prints becomes an output line (first tab -> space).

use crate::engine::fan_in::lost;
use crate::engine::merge::{GroupError, Merger, ReduceStats};
use mr_apps::apps::streaming::{spawn, tail_of};
use mr_protocol::{BadRecord, TaskFailure};
use std::io::{BufRead, BufReader, BufWriter, Write};

fn failed(cmd: &str, reduce: u32, how: String) -> TaskFailure {
    TaskFailure::AppPanic {
        message: format!("reduce command `{cmd}` {how}"),
        phase: mr_protocol::Phase::Reduce,
        record: BadRecord::Combined(format!("partition {reduce}")),
    }
}

/// Runs `cmd` over `merger`'s pairs, writing its output to `out`.
pub fn run(
    cmd: &str,
    reduce: u32,
    mut merger: Merger<crate::engine::fan_in::Source>,
    out: &mut dyn Write,
    io: &dyn Fn(std::io::Error) -> TaskFailure,
    cancel: &crate::engine::cancel::Cancel,
) -> Result<ReduceStats, TaskFailure> {
    let mut child =
        spawn(cmd, &[]).map_err(|e| failed(cmd, reduce, format!("could not be run: {e}")))?;
    let stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let mut stats = ReduceStats::default();
    // Feed, drain and collect stderr at once: any of the pipes may fill first.
    let (fed, err, written) = std::thread::scope(|s| {
        let feeder = s.spawn(move || {
            let mut w = BufWriter::with_capacity(1 << 16, stdin);
            let mut groups = 0u64;
            let r = merger.for_each_group(|key, values| {
                if cancel.is_cancelled() {
                    // Closing the command's input ends it; reported below.
                    return Err(std::io::Error::other("cancelled"));
                }
                groups += 1;
                while let Some(v) = values.next_value() {
                    w.write_all(key)?;
                    w.write_all(b"\t")?;
                    w.write_all(v)?;
                    w.write_all(b"\n")?;
                }
                Ok::<(), std::io::Error>(())
            });
            // Flushing closes the command's stdin when `w` drops.
            let r = r.and_then(|()| w.flush().map_err(GroupError::Callback));
            (r, groups, merger.records())
        });
        let err = s.spawn(move || tail_of(stderr));
        let mut lines = BufReader::with_capacity(1 << 16, stdout);
        let mut line = Vec::new();
        let mut written: Result<(u64, u64), std::io::Error> = Ok((0, 0));
        while lines.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            let l = line.strip_suffix(b"\n").unwrap_or(&line);
            if let Some(i) = l.iter().position(|&b| b == b'\t') {
                line[i] = b' ';
            }
            let l = line.strip_suffix(b"\n").unwrap_or(&line);
            if let Ok((n, bytes)) = &mut written {
                match out.write_all(l).and_then(|()| out.write_all(b"\n")) {
                    Ok(()) => {
                        *n += 1;
                        *bytes += l.len() as u64 + 1;
                    }
                    Err(e) => written = Err(e),
                }
            }
            line.clear();
        }
        let fed = feeder.join().expect("feeder thread does not panic");
        (fed, err.join().unwrap_or_default(), written)
    });
    cancel.check()?;
    let status = child
        .wait()
        .map_err(|e| failed(cmd, reduce, format!("could not be waited for: {e}")))?;
    let (r, groups, records) = fed;
    match r {
        Err(GroupError::Read((m, e))) => return Err(lost(m, e)),
        // The command stopped reading: its exit status says whether that was an error.
        Err(GroupError::Callback(_)) | Ok(()) => {}
    }
    if !status.success() {
        return Err(failed(cmd, reduce, format!("failed ({status}): {err}")));
    }
    let (lines, bytes) = written.map_err(io)?;
    stats.keys = lines;
    stats.bytes = bytes;
    stats.records = records;
    stats.groups = groups;
    Ok(stats)
}
