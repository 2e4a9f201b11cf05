//! The SVG report: input rate over time, and the detection-latency distribution.

use super::Outcome;
use std::fmt::Write as _;

const W: f64 = 880.0;
const H: f64 = 260.0;
const PAD: f64 = 50.0;

/// One panel's frame, title and axis labels; returns the plot area's origin offset.
fn frame(out: &mut String, top: f64, title: &str, x_label: &str, y_max: &str) {
    let _ = write!(
        out,
        r##"<text x="{PAD}" y="{}" font-size="15" font-weight="bold">{title}</text>
<rect x="{PAD}" y="{}" width="{}" height="{}" fill="#fafafa" stroke="#999"/>
<text x="{}" y="{}" font-size="12" text-anchor="middle">{x_label}</text>
<text x="{}" y="{}" font-size="11" text-anchor="end">{y_max}</text>
<text x="{}" y="{}" font-size="11" text-anchor="end">0</text>
"##,
        top + 20.0,
        top + 30.0,
        W - 2.0 * PAD,
        H - 70.0,
        W / 2.0,
        top + H - 12.0,
        PAD - 4.0,
        top + 40.0,
        PAD - 4.0,
        top + H - 40.0,
    );
}

/// The chart as a standalone SVG document.
pub fn svg(o: &Outcome) -> String {
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
"#,
        2.0 * H + 20.0
    );
    let (plot_w, plot_h) = (W - 2.0 * PAD, H - 70.0);
    // Panel 1: messages per second.
    let peak = o.throughput.iter().cloned().fold(1.0, f64::max);
    frame(
        &mut out,
        0.0,
        "Input rate (messages/s, both sides)",
        "seconds",
        &format!("{peak:.0}"),
    );
    let n = o.throughput.len().max(2) as f64 - 1.0;
    let points: Vec<String> = o
        .throughput
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let x = PAD + plot_w * i as f64 / n;
            let y = 30.0 + plot_h * (1.0 - v / peak);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let _ = writeln!(
        out,
        r##"<polyline fill="none" stroke="#2a6fdb" stroke-width="2" points="{}"/>"##,
        points.join(" ")
    );
    // Panel 2: latency beyond grace at each percentile.
    let top = H + 10.0;
    let h = &o.latency;
    let max = if h.is_empty() { 1 } else { h.max().max(1) };
    frame(
        &mut out,
        top,
        &format!(
            "Detection latency beyond grace (ms), {} detections while input flowed",
            h.len()
        ),
        "percentile",
        &format!("{max}"),
    );
    let quantiles = [0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0];
    let bar = plot_w / quantiles.len() as f64;
    for (i, q) in quantiles.iter().enumerate() {
        let v = super::report::quantile(h, *q);
        let bh = plot_h * v as f64 / max as f64;
        let x = PAD + bar * i as f64 + 6.0;
        let _ = write!(
            out,
            r##"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="#e07b39"/>
<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{v}</text>
<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">p{}</text>
"##,
            top + 30.0 + plot_h - bh,
            bar - 12.0,
            x + (bar - 12.0) / 2.0,
            top + 26.0 + plot_h - bh,
            x + (bar - 12.0) / 2.0,
            top + H - 26.0,
            q * 100.0
        );
    }
    out.push_str("</svg>\n");
    out
}
