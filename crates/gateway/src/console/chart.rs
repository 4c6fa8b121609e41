//! A stacked bar chart as SVG, rendered on the server (no script, no library to ship).

use std::fmt::Write;

/// One stacked part of every bar.
pub struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    /// One value per bar.
    pub values: Vec<i64>,
}

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 10.0;

/// Bars labelled `labels` (shown in each bar's tooltip, the first and last under the axis),
/// stacked from `series`, with a legend. The `<svg>` carries its total in `data-total`.
pub fn stacked_bars(id: &str, labels: &[String], series: &[Series<'_>]) -> String {
    let bars = labels.len().max(1);
    let totals: Vec<i64> = (0..bars)
        .map(|i| {
            series
                .iter()
                .map(|s| s.values.get(i).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let total: i64 = totals.iter().sum();
    let max = totals.iter().copied().max().unwrap_or(0).max(1);
    let plot_w = WIDTH - LEFT - 8.0;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let step = plot_w / bars as f64;
    let bar_w = (step * 0.8).max(1.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg id="{id}" class="chart" data-total="{total}" role="img" viewBox="0 0 {WIDTH} {h}" xmlns="http://www.w3.org/2000/svg" aria-label="calls per interval by outcome, {total} in all">"##,
        h = HEIGHT + 22.0,
    );
    // Axis and the top value.
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#888" stroke-width="1"/><text x="{tx}" y="{ty}" font-size="11" text-anchor="end" fill="#555">{max}</text><text x="{tx}" y="{y0}" font-size="11" text-anchor="end" fill="#555">0</text>"##,
        y0 = TOP + plot_h,
        x1 = WIDTH - 8.0,
        tx = LEFT - 6.0,
        ty = TOP + 10.0,
    );
    for (i, label) in labels.iter().enumerate() {
        let x = LEFT + i as f64 * step + (step - bar_w) / 2.0;
        let mut y = TOP + plot_h;
        let mut tip = format!("{} — {}", escape(label), totals[i]);
        for s in series {
            let v = s.values.get(i).copied().unwrap_or(0);
            if v > 0 {
                let _ = write!(tip, ", {} {}", s.name, v);
            }
        }
        let _ = write!(svg, r##"<g class="bar"><title>{tip}</title>"##);
        for s in series {
            let v = s.values.get(i).copied().unwrap_or(0);
            if v == 0 {
                continue;
            }
            let h = v as f64 / max as f64 * plot_h;
            y -= h;
            let _ = write!(
                svg,
                r##"<rect x="{x:.1}" y="{y:.1}" width="{bar_w:.1}" height="{h:.1}" fill="{c}" data-series="{n}" data-value="{v}"/>"##,
                c = s.color,
                n = s.name,
            );
        }
        svg.push_str("</g>");
    }
    if let (Some(first), Some(last)) = (labels.first(), labels.last()) {
        let _ = write!(
            svg,
            r##"<text x="{LEFT}" y="{y}" font-size="11" fill="#555">{a}</text><text x="{x}" y="{y}" font-size="11" text-anchor="end" fill="#555">{b}</text>"##,
            y = TOP + plot_h + 16.0,
            x = WIDTH - 8.0,
            a = escape(first),
            b = escape(last),
        );
    }
    let mut lx = LEFT;
    for s in series {
        let _ = write!(
            svg,
            r##"<rect x="{lx}" y="{y}" width="10" height="10" fill="{c}"/><text x="{tx}" y="{ty}" font-size="11" fill="#333">{n}</text>"##,
            y = HEIGHT + 8.0,
            c = s.color,
            tx = lx + 14.0,
            ty = HEIGHT + 17.0,
            n = s.name,
        );
        lx += 24.0 + 7.0 * s.name.len() as f64;
    }
    svg.push_str("</svg>");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_holds_a_bar_part_per_non_zero_value_and_its_total() {
        let labels = vec!["10:00".to_string(), "10:01".to_string()];
        let series = [
            Series {
                name: "applied",
                color: "#2a2",
                values: vec![3, 0],
            },
            Series {
                name: "refused",
                color: "#c22",
                values: vec![1, 2],
            },
        ];
        let svg = stacked_bars("c", &labels, &series);
        assert!(svg.contains(r#"data-total="6""#), "{svg}");
        assert_eq!(
            svg.matches("<rect x=").count(),
            3 + 2,
            "three parts and two legend keys"
        );
        assert!(svg.contains("10:00 — 4, applied 3, refused 1"));
    }
}
