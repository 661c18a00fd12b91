//! Records within a map chunk: counting lines, mapping a chunk around the
//! records an attempt must skip, and finding the one record a failed chunk
//! panics on (so the failure can name it and `--skip-bad-records` skip it).

use crate::engine::split::Framing;
use mr_apps::{plugin::panic_message, App};
use mr_protocol::{BadRecord, TaskFailure};
use std::panic::{catch_unwind, AssertUnwindSafe};

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

/// Byte ranges `[s, e)` of each record of `data[start..end]` (a last line
/// may lack its newline).
fn records(
    framing: Framing,
    data: &[u8],
    start: usize,
    end: usize,
) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut at = start;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let s = at;
        at = framing.record_end(data, s, end);
        Some((s, at))
    })
}

/// After `map` panicked on chunk `[s, e)`: maps its records one at a time
/// (output discarded) to find the record that panics, so the failure can
/// name it and `--skip-bad-records` can skip exactly it. Falls back to the
/// chunk's start when no single record panics on its own.
fn find_bad_record(app: &dyn App, name: &str, data: &[u8], s: usize, e: usize) -> usize {
    let framing = Framing::of(app);
    if framing == Framing::WholeFile {
        return 0;
    }
    records(framing, data, s, e)
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
/// offsets in `skip` (sorted record starts in that stream; for whole-file
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
        at = Framing::of(app).record_end(data, off, e);
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
