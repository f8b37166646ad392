//! `docs/benchmarks-latency.svg`, drawn by hand: cumulative distributions (empirical CDFs,
//! logarithmic time axis) of the recovery latency and of the node's own share, one curve
//! per configuration.

use std::fmt::Write as _;

use crate::Results;
use crate::latency::{Mining, Sample};

/// Width and height of the picture.
const W: f64 = 1000.0;
/// Height of the picture.
const H: f64 = 580.0;

/// One curve.
struct Curve {
    /// Legend text.
    label: String,
    /// Stroke colour.
    color: &'static str,
    /// Dashed (7 nodes) or solid (4 nodes).
    dashed: bool,
    /// Values (ms).
    values: Vec<f64>,
}

/// Escapes text for SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Curves of `f` for the configurations of `configs` that have samples: (nodes, mining,
/// colour, dashed, label suffix).
fn curves(
    res: &Results,
    configs: &[(usize, Mining, &'static str, bool, &str)],
    f: fn(&Sample) -> Option<f64>,
) -> Vec<Curve> {
    configs
        .iter()
        .filter_map(|&(n, mining, color, dashed, suffix)| {
            let values: Vec<f64> = res
                .series
                .iter()
                .filter(|s| s.nodes == n && s.mining == mining)
                .flat_map(|s| s.samples.iter().filter(|x| x.valid()).filter_map(f))
                .collect();
            (!values.is_empty()).then(|| Curve {
                label: format!(
                    "{n} nodes, {}{suffix} (n = {})",
                    mining.label(),
                    values.len()
                ),
                color,
                dashed,
                values,
            })
        })
        .collect()
}

/// Draws one panel at (`x0`, `y0`) of size `w` × `h`; `target` draws a vertical marker.
fn panel(
    out: &mut String,
    (x0, y0, w, h): (f64, f64, f64, f64),
    title: &str,
    xlabel: &str,
    curves: &[Curve],
    target: Option<(f64, &str)>,
) {
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" font-size="15" font-weight="bold" text-anchor="middle">{}</text>"#,
        x0 + w / 2.0,
        y0 - 12.0,
        esc(title)
    );
    let all: Vec<f64> = curves
        .iter()
        .flat_map(|c| c.values.iter().copied())
        .chain(target.map(|t| t.0))
        .map(|v| v.max(1.0))
        .collect();
    if all.is_empty() {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="13" text-anchor="middle">no data</text>"#,
            x0 + w / 2.0,
            y0 + h / 2.0
        );
        return;
    }
    let min = all.iter().copied().fold(f64::INFINITY, f64::min);
    let max = all.iter().copied().fold(0.0, f64::max);
    let lo = min.log10().floor();
    let hi = max.log10().ceil().max(lo + 1.0);
    let x = |v: f64| x0 + (v.max(1.0).log10() - lo) / (hi - lo) * w;
    let y = |p: f64| y0 + h - p * h;

    // Frame, grid and ticks.
    let _ = writeln!(
        out,
        r##"<rect x="{x0:.1}" y="{y0:.1}" width="{w:.1}" height="{h:.1}" fill="none" stroke="#333"/>"##
    );
    for i in 0..=10 {
        let p = f64::from(i) / 10.0;
        let yy = y(p);
        let _ = writeln!(
            out,
            r##"<line x1="{x0:.1}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ddd"/>"##,
            x0 + w
        );
        if i % 2 == 0 {
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{:.1}</text>"#,
                x0 - 6.0,
                yy + 4.0,
                p
            );
        }
    }
    let mut decade = lo;
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let v = 10f64.powf(decade) * m;
            if v.log10() > hi + 1e-9 {
                break;
            }
            let xx = x(v);
            let _ = writeln!(
                out,
                r##"<line x1="{xx:.1}" y1="{y0:.1}" x2="{xx:.1}" y2="{:.1}" stroke="{}"/>"##,
                y0 + h,
                if m == 1.0 { "#bbb" } else { "#eee" }
            );
            // Every 1-2-5 tick is labelled on a narrow range; on three decades or more only
            // the decades are, so that labels do not run into each other.
            if m == 1.0 || hi - lo < 3.0 {
                let label = if v >= 1000.0 {
                    format!("{} s", v / 1000.0)
                } else {
                    format!("{v} ms")
                };
                let _ = writeln!(
                    out,
                    r#"<text x="{xx:.1}" y="{:.1}" font-size="11" text-anchor="middle">{label}</text>"#,
                    y0 + h + 16.0
                );
            }
        }
        decade += 1.0;
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">{}</text>"#,
        x0 + w / 2.0,
        y0 + h + 36.0,
        esc(xlabel)
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle" transform="rotate(-90 {:.1} {:.1})">fraction of incidents ≤ x</text>"#,
        x0 - 38.0,
        y0 + h / 2.0,
        x0 - 38.0,
        y0 + h / 2.0
    );
    if let Some((t, label)) = target {
        let xx = x(t);
        let _ = writeln!(
            out,
            r##"<line x1="{xx:.1}" y1="{y0:.1}" x2="{xx:.1}" y2="{:.1}" stroke="#2ca02c" stroke-width="1.5" stroke-dasharray="2 3"/><text x="{:.1}" y="{:.1}" font-size="11" fill="#2ca02c">{}</text>"##,
            y0 + h,
            xx + 4.0,
            y0 + h - 8.0,
            esc(label)
        );
    }

    // Curves: empirical CDF as steps.
    for c in curves {
        let mut v = c.values.clone();
        v.sort_by(f64::total_cmp);
        let n = v.len() as f64;
        let mut pts = String::new();
        let mut prev = 0.0;
        for (i, val) in v.iter().enumerate() {
            let p = (i + 1) as f64 / n;
            let _ = write!(
                pts,
                "{:.1},{:.1} {:.1},{:.1} ",
                x(*val),
                y(prev),
                x(*val),
                y(p)
            );
            prev = p;
        }
        let _ = write!(pts, "{:.1},{:.1}", x0 + w, y(1.0));
        let _ = writeln!(
            out,
            r#"<polyline points="{pts}" fill="none" stroke="{}" stroke-width="2"{}/>"#,
            c.color,
            if c.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            }
        );
    }

    // Legend, under the axis title.
    let lx = x0 + 10.0;
    let mut ly = y0 + h + 62.0;
    for c in curves {
        let _ = writeln!(
            out,
            r#"<line x1="{lx:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="2"{}/><text x="{:.1}" y="{ly:.1}" font-size="11">{}</text>"#,
            ly - 4.0,
            lx + 24.0,
            ly - 4.0,
            c.color,
            if c.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            },
            lx + 30.0,
            esc(&c.label)
        );
        ly += 18.0;
    }
}

/// The picture.
pub fn latency_svg(res: &Results) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="Helvetica, Arial, sans-serif">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let blue = "#1f77b4";
    let red = "#d62728";
    let orange = "#ff7f0e";
    panel(
        &mut out,
        (70.0, 50.0, 400.0, 330.0),
        "Recovery latency: gap tx → last leg paid",
        "time (log scale)",
        &curves(
            res,
            &[
                (4, Mining::OneSecond, blue, false, ""),
                (7, Mining::OneSecond, blue, true, ""),
                (4, Mining::Instant, red, false, ""),
                (7, Mining::Instant, red, true, ""),
            ],
            |s| Some(s.recovery_ms),
        ),
        None,
    );
    let mut share = curves(
        res,
        &[
            (4, Mining::Instant, red, false, ", own"),
            (7, Mining::Instant, red, true, ", own"),
        ],
        |s| s.node_share_ms,
    );
    share.extend(curves(
        res,
        &[
            (4, Mining::Instant, orange, false, ", first sight"),
            (7, Mining::Instant, orange, true, ", first sight"),
        ],
        |s| s.share_any_ms,
    ));
    panel(
        &mut out,
        (570.0, 50.0, 400.0, 330.0),
        "Node's share: gap seen → registration sent",
        "time (log scale)",
        &share,
        Some((50.0, "target p50 ≤ 50 ms (4 nodes)")),
    );
    for (i, line) in [
        "Empirical CDFs over every incident of a configuration (all runs pooled); solid: 4 nodes, dashed: 7 nodes.",
        "Left: blue 1-s blocks (confirmations = 1), red instant mining (confirmations = 0). Right, instant mining: red from the",
        "submitter's own \"gap seen\" (only incidents where it saw the gap itself), orange from the first \"gap seen\" on any node.",
    ]
    .iter()
    .enumerate()
    {
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" fill="#555" text-anchor="middle">{}</text>"##,
            W / 2.0,
            H - 40.0 + 14.0 * i as f64,
            esc(line)
        );
    }
    let _ = writeln!(out, "</svg>");
    out
}
