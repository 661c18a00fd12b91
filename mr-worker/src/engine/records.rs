//! Records within a map chunk: counting lines, mapping a chunk around the
//! records an attempt must skip, and finding the one record a failed chunk
//! panics on (so the failure can name it and `--skip-bad-records` skip it).

use mr_apps::{plugin::panic_message, App};
use mr_protocol::{BadRecord, TaskFailure};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Lines in `data` (a last line without its newline counts).
pub(crate) fn count_lines(data: &[u8]) -> u64 {
    let newlines = memchr::memchr_iter(b'\n', data).count() as u64;
    newlines + u64::from(data.last().is_some_and(|&b| b != b'\n'))
}

/// An emitter that drops everything (for re-running a failed chunk), but
/// refuses what the accumulators refuse (a pair too large; for apps that
/// sum counts, a value that is no count), so the record that made them
/// fail is the one found.
struct Discard {
    counts: bool,
}

impl mr_apps::Emit for Discard {
    fn emit(&mut self, key: &[u8], value: &[u8]) {
        crate::engine::table::check_pair(key, value);
        if self.counts {
            crate::engine::table::check_count(value);
        }
    }
}

/// Byte ranges `[s, e)` of each line of `data[start..end]` (the last may
/// lack its newline).
fn lines(data: &[u8], start: usize, end: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut at = start;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let s = at;
        let e = data[s..end]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(end, |i| s + i + 1);
        at = e;
        Some((s, e))
    })
}

/// After `map` panicked on chunk `[s, e)`: maps its lines one at a time
/// (output discarded) to find the record that panics, so the failure can
/// name it and `--skip-bad-records` can skip exactly it. Falls back to the
/// chunk's start when no single line panics on its own.
fn find_bad_record(app: &dyn App, name: &str, data: &[u8], s: usize, e: usize) -> usize {
    if app.whole_file() {
        return 0;
    }
    lines(data, s, e)
        .find(|&(ls, le)| {
            catch_unwind(AssertUnwindSafe(|| {
                let mut discard = Discard {
                    counts: app.sums_counts(),
                };
                app.map(name, &data[ls..le], &mut discard)
            }))
            .is_err()
        })
        .map_or(s, |(ls, _)| ls)
}

/// Maps one chunk of an input, `data`, whose first byte is at offset
/// `base` of the input's record stream, leaving out the records at the
/// offsets in `skip` (sorted line starts in that stream; for whole-file
/// apps, offset 0 skips the file). Returns how many records were skipped,
/// or the failure naming the record that panicked.
pub(crate) fn map_chunk(
    app: &dyn App,
    name: &str,
    data: &[u8],
    base: u64,
    skip: &[u64],
    emit: &mut dyn mr_apps::Emit,
) -> Result<u64, TaskFailure> {
    let (s, e) = (0, data.len());
    let mut skipped = 0;
    let mut ranges = Vec::new();
    let mut at = s;
    let within = |o: u64| o >= base && o < base + (e as u64).max(1);
    for &off in skip.iter().filter(|&&o| within(o)) {
        let off = (off - base) as usize;
        if off < at {
            continue;
        }
        if off > at {
            ranges.push((at, off));
        }
        at = if app.whole_file() {
            e
        } else {
            lines(data, off, e).next().map_or(e, |(_, le)| le)
        };
        skipped += 1;
    }
    if ranges.is_empty() && skipped == 0 {
        ranges.push((s, e));
    } else if at < e {
        ranges.push((at, e));
    }
    for (a, b) in ranges {
        catch_unwind(AssertUnwindSafe(|| app.map(name, &data[a..b], emit))).map_err(|p| {
            TaskFailure::AppPanic {
                message: panic_message(p.as_ref()),
                phase: mr_protocol::Phase::Map,
                record: BadRecord::Line {
                    input: name.to_string(),
                    offset: base + find_bad_record(app, name, data, a, b) as u64,
                },
            }
        })?;
    }
    Ok(skipped)
}
