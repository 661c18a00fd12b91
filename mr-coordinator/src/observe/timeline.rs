//! The job's timeline picture, `mr-timeline.svg`: one lane per worker and a
//! bar per attempt, coloured by phase and outcome, drawn with plotters. At a
//! glance it shows stragglers (long bars), crashes (grey, abandoned bars),
//! failures (red) and idle time (gaps).
//!
//! A large job is drawn in aggregate, so the picture stays readable and
//! small: past [`MAX_LANES`] workers a lane holds a run of workers, and past
//! [`MAX_BARS`] attempts the bars of one colour in a lane that overlap or
//! nearly touch (less than a pixel apart) merge into one.

use crate::observe::report::{AttemptInfo, Outcome, PhaseName, Report};
use plotters::prelude::*;
use std::collections::HashMap;
use std::path::Path;

/// Most lanes drawn; past this many workers a lane holds several.
pub const MAX_LANES: usize = 48;
/// Most attempts drawn a bar each; past this, bars merge.
pub const MAX_BARS: usize = 2_000;

/// Name of the picture in the output directory.
pub const FILE_NAME: &str = "mr-timeline.svg";

/// Bar colours: succeeded maps, succeeded reduces, failed, abandoned, running.
pub const MAP: RGBColor = RGBColor(0x46, 0x82, 0xb4);
/// Succeeded reduce attempts.
pub const REDUCE: RGBColor = RGBColor(0x2e, 0x8b, 0x57);
/// Failed attempts.
pub const FAILED: RGBColor = RGBColor(0xd6, 0x27, 0x28);
/// Abandoned attempts (worker lost, or beaten by a backup).
pub const ABANDONED: RGBColor = RGBColor(0x99, 0x99, 0x99);
/// Attempts still running.
pub const RUNNING: RGBColor = RGBColor(0xff, 0x9f, 0x1c);

fn colour(a: &AttemptInfo) -> RGBColor {
    match (a.outcome, a.phase) {
        (Outcome::Succeeded, PhaseName::Map) => MAP,
        (Outcome::Succeeded, PhaseName::Reduce) => REDUCE,
        (Outcome::Failed, _) => FAILED,
        (Outcome::Abandoned, _) => ABANDONED,
        (Outcome::Running, _) => RUNNING,
    }
}

/// One bar: lane, start and end (s), colour.
type Bar = (usize, f64, f64, RGBColor);

/// The lanes (a label each) and the bars to draw in them.
fn layout(r: &Report, end: f64) -> (Vec<String>, Vec<Bar>) {
    let per_lane = r.workers.len().div_ceil(MAX_LANES).max(1);
    let lane_of: HashMap<u64, usize> = r
        .workers
        .iter()
        .enumerate()
        .map(|(i, w)| (w.id, i / per_lane))
        .collect();
    let labels: Vec<String> = r
        .workers
        .chunks(per_lane)
        .map(|ws| match ws {
            [w] => format!("worker-{} {}", w.id, w.label),
            _ => format!("workers {} to {}", ws[0].id, ws.last().map_or(0, |w| w.id)),
        })
        .collect();
    // Very short attempts still get a visible sliver.
    let min_width = end / 500.0;
    let mut bars: Vec<Bar> = r
        .attempts
        .iter()
        .map(|a| {
            let x1 = a
                .end_s
                .unwrap_or(r.job.elapsed_s)
                .max(a.start_s + min_width);
            let lane = lane_of.get(&a.worker).copied().unwrap_or(0);
            (lane, a.start_s, x1, colour(a))
        })
        .collect();
    if r.attempts.len() > MAX_BARS || per_lane > 1 {
        bars = merged(bars, end / 1000.0);
    }
    (labels, bars)
}

/// `bars` with those of one lane and colour that overlap or are less than
/// `gap` apart made one.
fn merged(mut bars: Vec<Bar>, gap: f64) -> Vec<Bar> {
    let key = |c: &RGBColor| (c.0, c.1, c.2);
    bars.sort_by(|a, b| {
        (a.0, key(&a.3))
            .cmp(&(b.0, key(&b.3)))
            .then(a.1.total_cmp(&b.1))
    });
    let mut out: Vec<Bar> = Vec::new();
    for b in bars {
        match out.last_mut() {
            Some(last) if last.0 == b.0 && last.3 == b.3 && b.1 <= last.2 + gap => {
                last.2 = last.2.max(b.2);
            }
            _ => out.push(b),
        }
    }
    out
}

/// Draws the report's attempts as an SVG document.
pub fn render(r: &Report) -> Result<String, String> {
    let end = r
        .attempts
        .iter()
        .map(|a| a.end_s.unwrap_or(r.job.elapsed_s))
        .fold(r.job.elapsed_s, f64::max)
        .max(0.001);
    let (labels, bars) = layout(r, end);
    let height = 150 + 28 * labels.len().max(1) as u32;
    let mut svg = String::new();
    {
        let err = |e: DrawingAreaErrorKind<_>| format!("cannot draw the timeline: {e}");
        let root = SVGBackend::with_string(&mut svg, (1000, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (upper, lower) = root.split_vertically(height - 30);
        let title = format!(
            "job {} ({}): {} attempts on {} workers, {:.2} s",
            r.job.id,
            r.job.app.as_deref().unwrap_or("?"),
            r.attempts.len(),
            r.workers.len(),
            end
        );
        let n = labels.len().max(1) as i32;
        let mut chart = ChartBuilder::on(&upper)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(170)
            // Segments 0..=n: one lane each and headroom on top.
            .build_cartesian_2d(0f64..end * 1.02, (0..n).into_segmented())
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(labels.len().max(1))
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .x_desc("seconds since the coordinator started")
            .label_style(("sans-serif", 12))
            .axis_desc_style(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(bars.iter().map(|&(lane, x0, x1, c)| {
                let lane = lane as i32;
                let mut bar = Rectangle::new(
                    [
                        (x0, SegmentValue::Exact(lane)),
                        (x1, SegmentValue::Exact(lane + 1)),
                    ],
                    c.filled(),
                );
                bar.set_margin(4, 4, 0, 1);
                bar
            }))
            .map_err(err)?;
        // The legend is text in the bar colours (not swatches), so every
        // filled rectangle in the picture is an attempt.
        let mut x = 190;
        for (name, c) in [
            ("map", MAP),
            ("reduce", REDUCE),
            ("failed", FAILED),
            ("abandoned", ABANDONED),
            ("running", RUNNING),
        ] {
            lower
                .draw(&Text::new(
                    name,
                    (x, 6),
                    ("sans-serif", 14).into_font().color(&c),
                ))
                .map_err(err)?;
            x += 90;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Draws and writes `mr-timeline.svg` in `dir`, atomically.
pub fn write(dir: &Path, r: &Report) -> std::io::Result<()> {
    let svg = render(r).map_err(std::io::Error::other)?;
    crate::jobdir::write_replacing(&dir.join(FILE_NAME), |out| {
        std::io::Write::write_all(out, svg.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::report::{JobInfo, ProgressInfo, WorkerInfo};

    /// A report of `workers` workers, each running `each` back-to-back
    /// 10 ms maps from time 0.
    fn busy(workers: u64, each: u64) -> Report {
        let attempts = (0..workers)
            .flat_map(|w| {
                (0..each).map(move |i| AttemptInfo {
                    attempt: w * each + i,
                    phase: PhaseName::Map,
                    task: (w * each + i) as u32,
                    worker: w,
                    start_s: i as f64 * 0.01,
                    end_s: Some((i + 1) as f64 * 0.01),
                    outcome: Outcome::Succeeded,
                })
            })
            .collect();
        Report {
            job: JobInfo {
                id: "t".into(),
                app: Some("wc".into()),
                state: "succeeded".into(),
                error: None,
                inputs: 1,
                output_dir: "/out".into(),
                elapsed_s: each as f64 * 0.01,
                map_phase_s: 0.0,
                reduce_phase_s: 0.0,
            },
            progress: ProgressInfo {
                maps_done: 0,
                maps: 0,
                reduces_done: 0,
                reduces: 0,
                maps_running: 0,
                reduces_running: 0,
                attempts: 0,
                failed_attempts: 0,
                workers_alive: 0,
                failures: Default::default(),
            },
            counters: Default::default(),
            workers: (0..workers)
                .map(|id| WorkerInfo {
                    id,
                    label: format!("host:{id}"),
                    alive: false,
                    attempts: each,
                    tasks_done: each,
                    input_bytes: 0,
                    object_bytes_read: 0,
                })
                .collect(),
            attempts,
            journal: None,
            cache: None,
            replay: None,
            shape: Default::default(),
            tally: Default::default(),
            listed: Default::default(),
        }
    }

    #[test]
    fn a_small_job_gets_a_lane_per_worker_and_a_bar_per_attempt() {
        let r = busy(3, 4);
        let (labels, bars) = layout(&r, 0.04);
        assert_eq!(
            labels,
            ["worker-0 host:0", "worker-1 host:1", "worker-2 host:2"]
        );
        assert_eq!(bars.len(), 12);
    }

    #[test]
    fn a_large_job_is_drawn_in_aggregate_lanes_with_merged_bars() {
        // 1,000 workers, 100 back-to-back attempts each: 100,000 bars, or
        // one busy bar per lane once merged.
        let r = busy(1000, 100);
        let (labels, bars) = layout(&r, 1.0);
        assert_eq!(
            labels.len(),
            1000usize.div_ceil(1000usize.div_ceil(MAX_LANES))
        );
        assert!(labels.len() <= MAX_LANES);
        assert_eq!(labels[0], "workers 0 to 20");
        assert_eq!(
            bars.len(),
            labels.len(),
            "one merged bar per lane: {bars:?}"
        );
        assert!(bars.iter().all(|b| b.1 == 0.0 && (b.2 - 1.0).abs() < 1e-9));
        let svg = render(&r).unwrap();
        assert!(svg.len() < 100_000, "{} bytes", svg.len());
    }

    #[test]
    fn merging_keeps_gaps_and_colours_apart() {
        let bars = vec![
            (0, 0.0, 1.0, MAP),
            (0, 1.0005, 2.0, MAP), // less than the gap apart: merged
            (0, 3.0, 4.0, MAP),    // a real gap: kept
            (0, 0.5, 0.7, FAILED), // another colour: kept
            (1, 0.0, 1.0, MAP),    // another lane: kept
        ];
        let m = merged(bars, 0.001);
        assert_eq!(m.len(), 4);
        assert!(m.contains(&(0, 0.0, 2.0, MAP)));
        assert!(m.contains(&(0, 3.0, 4.0, MAP)));
    }
}
