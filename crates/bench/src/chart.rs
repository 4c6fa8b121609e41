//! A PNG of throughput and p99 latency against connections, drawn from a report's JSON.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

fn load_font() -> Result<(), String> {
    for p in FONT_PATHS {
        if let Ok(bytes) = std::fs::read(p) {
            // plotters keeps fonts for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            return register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| format!("{p} is not a usable font"));
        }
    }
    Err(format!(
        "no font found (looked for {}); install fonts-dejavu-core",
        FONT_PATHS.join(", ")
    ))
}

struct Series {
    label: String,
    points: Vec<(f64, f64, f64)>, // connections, calls/s, p99 ms
}

fn series(report: &serde_json::Value) -> Vec<Series> {
    let runs = report["runs"].as_array().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for (label, key) in [("gateway", "gateway"), ("ceiling", "ceiling")] {
        let points: Vec<(f64, f64, f64)> = runs
            .iter()
            .filter_map(|r| {
                let m = &r[key];
                Some((
                    r["concurrency"].as_f64()?,
                    m["throughput_rps"].as_f64()?,
                    m["latency"]["p99_ms"].as_f64()?,
                ))
            })
            .collect();
        if !points.is_empty() {
            let backend = report["settings"]["backend"].as_str().unwrap_or("");
            let label = if key == "gateway" {
                format!("{label} ({backend})")
            } else {
                label.to_string()
            };
            out.push(Series { label, points });
        }
    }
    out
}

/// Draws the reports (one per backend, say) into one PNG.
pub fn draw(reports: &[serde_json::Value], out: &Path) -> Result<(), String> {
    load_font()?;
    let mut all: Vec<Series> = Vec::new();
    for r in reports {
        for s in series(r) {
            if s.label == "ceiling" && all.iter().any(|x| x.label == "ceiling") {
                continue;
            }
            all.push(s);
        }
    }
    if all.is_empty() {
        return Err("the report has no runs".into());
    }
    let max_c = all
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let max_rps = all
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.1;
    let max_p99 = all
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.2))
        .fold(1.0, f64::max)
        * 1.1;

    let root = BitMapBackend::new(out, (1200, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (left, right) = root.split_horizontally(600);
    panel(&left, "throughput (calls/s)", &all, max_c, max_rps, |p| p.1)?;
    panel(&right, "p99 latency (ms)", &all, max_c, max_p99, |p| p.2)?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

/// One chart: a line per series of `y(point)` against connections (log scale).
fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    all: &[Series],
    max_c: f64,
    max_y: f64,
    y: impl Fn(&(f64, f64, f64)) -> f64,
) -> Result<(), String> {
    let colors = [RED, BLUE, GREEN, MAGENTA, CYAN, BLACK];
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((1f64..max_c * 1.2).log_scale(), 0f64..max_y)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("connections")
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, s) in all.iter().enumerate() {
        let color = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(
                s.points.iter().map(|p| (p.0, y(p))),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(
                s.points
                    .iter()
                    .map(|p| Circle::new((p.0, y(p)), 4, color.filled())),
            )
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}
