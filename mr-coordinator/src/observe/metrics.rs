//! `/metrics`: the job report in Prometheus' text exposition format (version
//! 0.0.4), so a cluster's monitoring scrapes a job like any other service.
//! Named by Prometheus' conventions: a `mapreduce_` prefix, base units
//! (seconds, bytes), `_total` on counters, labels for phase, state and
//! reason. Everything here is derived from one [`Report`], like the status
//! page, so the two never disagree.

use crate::observe::report::Report;
use crate::scheduler::{DurationCounts, DURATION_BOUNDS};
use std::fmt::Write;

/// Upper bounds of the phase duration histogram's buckets, in seconds.
const PHASE_BUCKETS: &[f64] = &[1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0];

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The built-in counters (by the report's display name): metric name, how
/// to scale the value into base units, and help text.
const COUNTERS: &[(&str, &str, f64, &str)] = &[
    (
        "input bytes",
        "mapreduce_input_bytes_total",
        1.0,
        "Input bytes mapped by done map tasks.",
    ),
    (
        "input records",
        "mapreduce_input_records_total",
        1.0,
        "Input records mapped by done map tasks.",
    ),
    (
        "map output records",
        "mapreduce_map_output_records_total",
        1.0,
        "Pairs the app's map emitted.",
    ),
    (
        "combine input records",
        "mapreduce_combine_input_records_total",
        1.0,
        "Pairs fed to the combiner.",
    ),
    (
        "combine output records",
        "mapreduce_combine_output_records_total",
        1.0,
        "Pairs left after combining.",
    ),
    (
        "map output bytes",
        "mapreduce_map_output_bytes_total",
        1.0,
        "Intermediate bytes written for the shuffle.",
    ),
    (
        "spilled bytes",
        "mapreduce_spilled_bytes_total",
        1.0,
        "Bytes written to spill runs.",
    ),
    (
        "skipped records",
        "mapreduce_skipped_records_total",
        1.0,
        "Bad records skipped.",
    ),
    (
        "reduce input groups",
        "mapreduce_reduce_input_groups_total",
        1.0,
        "Distinct keys reduce tasks met.",
    ),
    (
        "reduce input records",
        "mapreduce_reduce_input_records_total",
        1.0,
        "Pairs reduce tasks read.",
    ),
    (
        "output records",
        "mapreduce_output_records_total",
        1.0,
        "Records written to the outputs.",
    ),
    (
        "output bytes",
        "mapreduce_output_bytes_total",
        1.0,
        "Bytes written to the outputs.",
    ),
    (
        "input bytes fetched",
        "mapreduce_input_fetched_bytes_total",
        1.0,
        "Input bytes map tasks fetched from the coordinator.",
    ),
    (
        "shuffle bytes fetched",
        "mapreduce_shuffle_fetched_bytes_total",
        1.0,
        "Intermediate bytes reduce tasks fetched from other workers.",
    ),
    (
        "shuffle fetch ms",
        "mapreduce_shuffle_fetch_seconds_total",
        0.001,
        "Time reduce tasks spent fetching.",
    ),
    (
        "output bytes uploaded",
        "mapreduce_output_uploaded_bytes_total",
        1.0,
        "Output bytes reduce tasks uploaded to the coordinator.",
    ),
    (
        "object bytes read",
        "mapreduce_object_read_bytes_total",
        1.0,
        "Bytes map tasks read from the object store.",
    ),
    (
        "object bytes written",
        "mapreduce_object_written_bytes_total",
        1.0,
        "Bytes reduce tasks wrote to the object store.",
    ),
];

/// Escapes a label value (backslash, double quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes a metric's HELP and TYPE lines.
fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A histogram's series: cumulative buckets, sum and count.
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        for (b, c) in self.bounds.iter().zip(&mut self.counts) {
            if v <= *b {
                *c += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    /// The histogram of run times the scheduler counted.
    fn of(d: &DurationCounts) -> Histogram {
        let mut below = 0;
        let counts = DURATION_BOUNDS
            .iter()
            .zip(&d.buckets)
            .map(|(_, n)| {
                below += n;
                below
            })
            .collect();
        Histogram {
            bounds: DURATION_BOUNDS,
            counts,
            sum: d.sum_s,
            count: d.count,
        }
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, r#"{name}_bucket{{{labels},le="{b}"}} {c}"#);
        }
        let _ = writeln!(out, r#"{name}_bucket{{{labels},le="+Inf"}} {}"#, self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// The exposition of `r` (its lists are not read: a report of the figures
/// alone serves).
pub fn render(r: &Report) -> String {
    let mut out = String::with_capacity(8 << 10);
    job(&mut out, r);
    tasks(&mut out, r);
    attempts(&mut out, r);
    workers(&mut out, r);
    counters(&mut out, r);
    journal_and_cache(&mut out, r);
    out
}

/// The job itself: what it is and how long its phases have run.
fn job(o: &mut String, r: &Report) {
    let j = &r.job;
    head(
        o,
        "mapreduce_job_info",
        "gauge",
        "The job: its id, app and state (always 1).",
    );
    let _ = writeln!(
        o,
        r#"mapreduce_job_info{{job_id="{}",app="{}",state="{}"}} 1"#,
        label(&j.id),
        label(j.app.as_deref().unwrap_or("")),
        label(&j.state)
    );
    head(
        o,
        "mapreduce_job_elapsed_seconds",
        "gauge",
        "Seconds since the coordinator started.",
    );
    let _ = writeln!(o, "mapreduce_job_elapsed_seconds {}", j.elapsed_s);
    head(
        o,
        "mapreduce_phase_elapsed_seconds",
        "gauge",
        "Wall time of each phase so far.",
    );
    let _ = writeln!(
        o,
        r#"mapreduce_phase_elapsed_seconds{{phase="map"}} {}"#,
        j.map_phase_s
    );
    let _ = writeln!(
        o,
        r#"mapreduce_phase_elapsed_seconds{{phase="reduce"}} {}"#,
        j.reduce_phase_s
    );
}

/// Tasks by phase and state.
fn tasks(o: &mut String, r: &Report) {
    let p = &r.progress;
    head(
        o,
        "mapreduce_tasks",
        "gauge",
        "Tasks by phase and state (idle, running, done).",
    );
    for (phase, total, done, running) in [
        ("map", p.maps, p.maps_done, p.maps_running),
        ("reduce", p.reduces, p.reduces_done, p.reduces_running),
    ] {
        // Backups make running attempts outnumber the tasks they run.
        let running = running.min(total.saturating_sub(done));
        let idle = total.saturating_sub(done + running);
        for (state, n) in [("idle", idle), ("running", running), ("done", done)] {
            let _ = writeln!(
                o,
                r#"mapreduce_tasks{{phase="{phase}",state="{state}"}} {n}"#
            );
        }
    }
}

/// Attempts started and failed, and the durations of tasks and phases.
fn attempts(o: &mut String, r: &Report) {
    let (j, p) = (&r.job, &r.progress);
    // Attempts: started by phase, and task durations of those that won,
    // as the scheduler counted them.
    let t = &r.tally;
    let started = [t.maps_started, t.reduces_started];
    let durations = [
        Histogram::of(&t.map_seconds),
        Histogram::of(&t.reduce_seconds),
    ];
    head(
        o,
        "mapreduce_attempts_started_total",
        "counter",
        "Task attempts started, backups and re-runs included.",
    );
    for (i, phase) in ["map", "reduce"].iter().enumerate() {
        let _ = writeln!(
            o,
            r#"mapreduce_attempts_started_total{{phase="{phase}"}} {}"#,
            started[i]
        );
    }
    head(
        o,
        "mapreduce_attempt_failures_total",
        "counter",
        "Attempts that failed or went with their worker, by reason.",
    );
    for reason in [
        "app_panic",
        "map_output_lost",
        "fetch_refused",
        "input",
        "io",
        "worker_lost",
    ] {
        let n = p.failures.get(reason).copied().unwrap_or(0);
        let _ = writeln!(
            o,
            r#"mapreduce_attempt_failures_total{{reason="{reason}"}} {n}"#
        );
    }
    for (reason, n) in &p.failures {
        if !matches!(
            reason.as_str(),
            "app_panic" | "map_output_lost" | "fetch_refused" | "input" | "io" | "worker_lost"
        ) {
            let _ = writeln!(
                o,
                r#"mapreduce_attempt_failures_total{{reason="{}"}} {n}"#,
                label(reason)
            );
        }
    }
    head(
        o,
        "mapreduce_task_duration_seconds",
        "histogram",
        "Run time of each task's winning attempt, from assignment to report.",
    );
    for (i, phase) in ["map", "reduce"].iter().enumerate() {
        durations[i].write(
            o,
            "mapreduce_task_duration_seconds",
            &format!(r#"phase="{phase}""#),
        );
    }
    head(
        o,
        "mapreduce_phase_duration_seconds",
        "histogram",
        "Wall time of each phase that has ended.",
    );
    let ended = matches!(j.state.as_str(), "succeeded");
    for (phase, secs, over) in [
        ("map", j.map_phase_s, p.maps > 0 && p.maps_done == p.maps),
        ("reduce", j.reduce_phase_s, ended),
    ] {
        let mut h = Histogram::new(PHASE_BUCKETS);
        if over {
            h.observe(secs);
        }
        h.write(
            o,
            "mapreduce_phase_duration_seconds",
            &format!(r#"phase="{phase}""#),
        );
    }
}

/// Workers in the job.
fn workers(o: &mut String, r: &Report) {
    let p = &r.progress;
    head(
        o,
        "mapreduce_workers_connected",
        "gauge",
        "Workers in the job now.",
    );
    let _ = writeln!(o, "mapreduce_workers_connected {}", p.workers_alive);
    head(
        o,
        "mapreduce_workers_joined_total",
        "counter",
        "Workers that joined the job.",
    );
    let _ = writeln!(
        o,
        "mapreduce_workers_joined_total {}",
        r.listed.workers_total
    );
}

/// The job's counters, built-in and the app's.
fn counters(o: &mut String, r: &Report) {
    for (display, name, scale, help) in COUNTERS {
        head(o, name, "counter", help);
        let v = r.counters.get(*display).copied().unwrap_or(0);
        if *scale == 1.0 {
            let _ = writeln!(o, "{name} {v}");
        } else {
            let _ = writeln!(o, "{name} {}", v as f64 * scale);
        }
    }
    head(
        o,
        "mapreduce_app_counter_total",
        "counter",
        "Counters the app defined, by name.",
    );
    for (k, v) in &r.counters {
        if let Some(app) = k.strip_prefix("app: ") {
            let _ = writeln!(
                o,
                r#"mapreduce_app_counter_total{{name="{}"}} {v}"#,
                label(app)
            );
        }
    }
}

/// What the journal made durable and what the cache gave.
fn journal_and_cache(o: &mut String, r: &Report) {
    if let Some(jr) = &r.journal {
        head(
            o,
            "mapreduce_journal_fsyncs_total",
            "counter",
            "Journal writes made durable, one fdatasync each.",
        );
        let _ = writeln!(o, "mapreduce_journal_fsyncs_total {}", jr.commits);
        head(
            o,
            "mapreduce_journal_records_total",
            "counter",
            "Records appended to the journal.",
        );
        let _ = writeln!(o, "mapreduce_journal_records_total {}", jr.records);
        head(
            o,
            "mapreduce_journal_written_bytes_total",
            "counter",
            "Bytes appended to the journal.",
        );
        let _ = writeln!(o, "mapreduce_journal_written_bytes_total {}", jr.bytes);
    }
    if let Some(c) = &r.cache {
        head(
            o,
            "mapreduce_cache_maps_reused_total",
            "counter",
            "Map tasks taken from the cache instead of run.",
        );
        let _ = writeln!(o, "mapreduce_cache_maps_reused_total {}", c.maps_reused);
        head(
            o,
            "mapreduce_cache_reduces_reused_total",
            "counter",
            "Outputs committed from the cache.",
        );
        let _ = writeln!(
            o,
            "mapreduce_cache_reduces_reused_total {}",
            c.reduces_reused
        );
        head(
            o,
            "mapreduce_cache_input_reused_bytes_total",
            "counter",
            "Input bytes not mapped again.",
        );
        let _ = writeln!(
            o,
            "mapreduce_cache_input_reused_bytes_total {}",
            c.input_bytes_reused
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::report::{JobInfo, ListedInfo, ProgressInfo, Report};
    use crate::scheduler::AttemptTally;
    use std::time::Duration;

    fn report() -> Report {
        // Map attempts of 0.3, 2.0 and 0.2 s won (and one failed); one
        // reduce of 1.0 s won, another runs.
        let mut tally = AttemptTally {
            maps_started: 4,
            reduces_started: 2,
            ..AttemptTally::default()
        };
        for ms in [300, 2000, 200] {
            tally.map_seconds.observe(Duration::from_millis(ms));
        }
        tally.reduce_seconds.observe(Duration::from_secs(1));
        Report {
            job: JobInfo {
                id: "j\"1".into(),
                app: Some("wc".into()),
                state: "reduce".into(),
                error: None,
                inputs: 2,
                output_dir: "/out".into(),
                elapsed_s: 12.5,
                map_phase_s: 10.0,
                reduce_phase_s: 2.5,
            },
            progress: ProgressInfo {
                maps_done: 3,
                maps: 3,
                reduces_done: 1,
                reduces: 4,
                maps_running: 0,
                reduces_running: 2,
                attempts: 6,
                failed_attempts: 1,
                workers_alive: 2,
                failures: [("io".to_string(), 1), ("worker_lost".to_string(), 1)].into(),
            },
            counters: [
                ("input bytes".to_string(), 1000),
                ("shuffle fetch ms".to_string(), 1500),
            ]
            .into(),
            workers: Vec::new(),
            attempts: Vec::new(),
            journal: None,
            cache: None,
            replay: None,
            shape: Default::default(),
            tally,
            listed: ListedInfo {
                workers_total: 2,
                ..ListedInfo::default()
            },
        }
    }

    fn value(text: &str, series: &str) -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"));
        line[series.len() + 1..].parse().unwrap()
    }

    #[test]
    fn the_exposition_counts_what_the_report_says() {
        let t = render(&report());
        assert_eq!(
            value(&t, "mapreduce_tasks{phase=\"map\",state=\"done\"}"),
            3.0
        );
        assert_eq!(
            value(&t, "mapreduce_tasks{phase=\"reduce\",state=\"running\"}"),
            2.0
        );
        assert_eq!(
            value(&t, "mapreduce_tasks{phase=\"reduce\",state=\"idle\"}"),
            1.0
        );
        assert_eq!(
            value(&t, "mapreduce_attempts_started_total{phase=\"map\"}"),
            4.0
        );
        assert_eq!(
            value(&t, "mapreduce_attempt_failures_total{reason=\"io\"}"),
            1.0
        );
        assert_eq!(
            value(&t, "mapreduce_attempt_failures_total{reason=\"app_panic\"}"),
            0.0
        );
        // Map durations 0.3, 2.0 and 0.2 s: cumulative buckets.
        let b = |le: &str| {
            value(
                &t,
                &format!("mapreduce_task_duration_seconds_bucket{{phase=\"map\",le=\"{le}\"}}"),
            )
        };
        assert_eq!(
            (b("0.25"), b("0.5"), b("2.5"), b("+Inf")),
            (1.0, 2.0, 3.0, 3.0)
        );
        let sum = value(&t, "mapreduce_task_duration_seconds_sum{phase=\"map\"}");
        assert!((sum - 2.5).abs() < 1e-9, "{sum}");
        // The map phase ended (observed once), the reduce phase not yet.
        assert_eq!(
            value(&t, "mapreduce_phase_duration_seconds_count{phase=\"map\"}"),
            1.0
        );
        assert_eq!(
            value(
                &t,
                "mapreduce_phase_duration_seconds_count{phase=\"reduce\"}"
            ),
            0.0
        );
        // Base units: milliseconds become seconds.
        assert_eq!(value(&t, "mapreduce_shuffle_fetch_seconds_total"), 1.5);
        assert_eq!(value(&t, "mapreduce_input_bytes_total"), 1000.0);
        assert_eq!(value(&t, "mapreduce_workers_joined_total"), 2.0);
        // A quote in a label value is escaped.
        assert!(t.contains("job_id=\"j\\\"1\""), "{t}");
    }
}
