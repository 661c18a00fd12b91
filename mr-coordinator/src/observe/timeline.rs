//! The job's timeline picture, `mr-timeline.svg`: one lane per worker and a
//! bar per attempt, coloured by phase and outcome, drawn with plotters. At a
//! glance it shows stragglers (long bars), crashes (grey, abandoned bars),
//! failures (red) and idle time (gaps).

use crate::observe::report::{AttemptInfo, Report};
use plotters::prelude::*;
use std::path::Path;

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
    match (a.outcome.as_str(), a.phase.as_str()) {
        ("succeeded", "map") => MAP,
        ("succeeded", _) => REDUCE,
        ("failed", _) => FAILED,
        ("abandoned", _) => ABANDONED,
        _ => RUNNING,
    }
}

/// Draws the report's attempts as an SVG document.
pub fn render(r: &Report) -> Result<String, String> {
    let lanes: Vec<u64> = r.workers.iter().map(|w| w.id).collect();
    let lane_of = |w: u64| lanes.iter().position(|&x| x == w).unwrap_or(0);
    let end = r
        .attempts
        .iter()
        .map(|a| a.end_s.unwrap_or(r.job.elapsed_s))
        .fold(r.job.elapsed_s, f64::max)
        .max(0.001);
    let height = 150 + 28 * lanes.len().max(1) as u32;
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
            lanes.len(),
            end
        );
        let n = lanes.len().max(1) as i32;
        let mut chart = ChartBuilder::on(&upper)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(170)
            // Segments 0..=n: one lane per worker and headroom on top.
            .build_cartesian_2d(0f64..end * 1.02, (0..n).into_segmented())
            .map_err(err)?;
        let labels: Vec<String> = r
            .workers
            .iter()
            .map(|w| format!("worker-{} {}", w.id, w.label))
            .collect();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(lanes.len().max(1))
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .x_desc("seconds since the coordinator started")
            .label_style(("sans-serif", 12))
            .axis_desc_style(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        // Very short attempts still get a visible sliver.
        let min_width = end / 500.0;
        chart
            .draw_series(r.attempts.iter().map(|a| {
                let lane = lane_of(a.worker) as i32;
                let x1 = a
                    .end_s
                    .unwrap_or(r.job.elapsed_s)
                    .max(a.start_s + min_width);
                let mut bar = Rectangle::new(
                    [
                        (a.start_s, SegmentValue::Exact(lane)),
                        (x1, SegmentValue::Exact(lane + 1)),
                    ],
                    colour(a).filled(),
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
    let tmp = dir.join(format!(".{FILE_NAME}.tmp"));
    std::fs::write(&tmp, svg)?;
    std::fs::rename(&tmp, dir.join(FILE_NAME))
}
