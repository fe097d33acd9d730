//! Line charts as SVG, for `--trace-cwnd` (cwnd and goodput over time) and the
//! benchmark's goodput against loss: panels stacked one above the other, each
//! with its axes, ticks and one line per series. No dependency: the charts
//! are a few dozen elements.

use std::fmt::Write as _;

/// One line: a name for the legend and its points (x, y).
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// One chart: its title, axis names and lines.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#7f7f7f",
];

/// A tick step near `span / 5` of the form 1, 2 or 5 × 10^k.
fn step(span: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The panels as one SVG document.
pub fn svg(panels: &[Panel]) -> String {
    let total = HEIGHT * panels.len().max(1) as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{total}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (i, panel) in panels.iter().enumerate() {
        draw(&mut out, panel, HEIGHT * i as f64);
    }
    out.push_str("</svg>\n");
    out
}

fn draw(out: &mut String, p: &Panel, y0: f64) {
    let points = p.series.iter().flat_map(|s| s.points.iter());
    let (mut xmax, mut ymax) = (0f64, 0f64);
    let mut xmin = f64::INFINITY;
    for &(x, y) in points {
        xmin = xmin.min(x);
        xmax = xmax.max(x);
        ymax = ymax.max(y);
    }
    if !xmin.is_finite() {
        xmin = 0.0;
    }
    xmin = xmin.min(0.0);
    let (xs, ys) = (step(xmax - xmin), step(ymax));
    let xmax = (xmax / xs).ceil().max(1.0) * xs;
    let ymax = (ymax / ys).ceil().max(1.0) * ys;
    let (w, h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let px = |x: f64| LEFT + (x - xmin) / (xmax - xmin).max(f64::MIN_POSITIVE) * w;
    let py = |y: f64| y0 + TOP + h - y / ymax * h;
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="{}" font-size="14" font-weight="bold">{}</text>"#,
        y0 + 22.0,
        escape(&p.title)
    );
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{}" width="{w}" height="{h}" fill="none" stroke="#444"/>"##,
        y0 + TOP
    );
    let mut t = 0.0;
    while t <= ymax + ys / 2.0 {
        let y = py(t);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + w,
            LEFT - 6.0,
            y + 4.0,
            fmt_num(t)
        );
        t += ys;
    }
    let mut t = xmin;
    while t <= xmax + xs / 2.0 {
        let x = px(t);
        let _ = writeln!(
            out,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            y0 + TOP + h + 16.0,
            fmt_num(t)
        );
        t += xs;
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        LEFT + w / 2.0,
        y0 + HEIGHT - 12.0,
        escape(&p.x_label)
    );
    let _ = writeln!(
        out,
        r#"<text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">{}</text>"#,
        y0 + TOP + h / 2.0,
        y0 + TOP + h / 2.0,
        escape(&p.y_label)
    );
    for (i, s) in p.series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        if s.points.len() < 20 {
            for &(x, y) in &s.points {
                let _ = writeln!(
                    out,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                    px(x),
                    py(y)
                );
            }
        }
        let ly = y0 + TOP + 10.0 + 18.0 * i as f64;
        let lx = LEFT + w + 12.0;
        let _ = writeln!(
            out,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            lx + 18.0,
            lx + 24.0,
            ly + 4.0,
            escape(&s.name)
        );
    }
}

fn fmt_num(v: f64) -> String {
    if (v - v.trunc()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_numbers() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(step(10.0), 2.0));
        assert!(close(step(1000.0), 200.0));
        assert!(close(step(0.3), 0.1));
        assert!(close(step(0.0), 1.0));
    }

    #[test]
    fn a_chart_has_one_line_per_series_and_its_legend() {
        let doc = svg(&[Panel {
            title: "goodput <loss>".into(),
            x_label: "loss (%)".into(),
            y_label: "MB/s".into(),
            series: vec![
                Series {
                    name: "selective-repeat".into(),
                    points: vec![(0.0, 100.0), (5.0, 60.0)],
                },
                Series {
                    name: "kernel TCP".into(),
                    points: vec![(0.0, 900.0), (5.0, 500.0)],
                },
            ],
        }]);
        assert_eq!(doc.matches("<polyline").count(), 2);
        assert!(doc.contains("kernel TCP") && doc.contains("goodput &lt;loss&gt;"));
        assert!(doc.starts_with("<svg") && doc.trim_end().ends_with("</svg>"));
    }
}
