//! Line charts as standalone SVG text: a few series of (x, y) points over a linear or
//! logarithmic x axis, optional horizontal reference lines, axis ticks and a legend. Small on
//! purpose: the reports need throughput, latency and cost against flow count, nothing more.

use std::fmt::Write as _;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points, in x order.
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed.
    pub dashed: bool,
    /// Colour index (series of one mode share it); `None`: by position.
    pub color: Option<usize>,
}

/// A horizontal reference line (e.g. the testpmd limit).
#[derive(Debug, Clone)]
pub struct HLine {
    /// Legend text.
    pub name: String,
    /// Its y.
    pub y: f64,
}

/// A chart.
#[derive(Debug, Clone, Default)]
pub struct Chart {
    /// Title above the plot.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// Logarithmic x axis (flow counts).
    pub log_x: bool,
    /// Logarithmic y axis (latencies that span decades).
    pub log_y: bool,
    /// Lines.
    pub series: Vec<Series>,
    /// Reference lines.
    pub hlines: Vec<HLine>,
}

const W: f64 = 720.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f",
];

/// A human number for an axis tick: 1k, 100k, 1M, 10M; 0.5, 2, 150.
pub fn tick_label(v: f64) -> String {
    let a = v.abs();
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        }
    };
    if a >= 1e6 {
        format!("{}M", trim(format!("{:.1}", v / 1e6)))
    } else if a >= 1e3 {
        format!("{}k", trim(format!("{:.1}", v / 1e3)))
    } else if a >= 10.0 || a == 0.0 {
        format!("{v:.0}")
    } else {
        trim(format!("{v:.2}"))
    }
}

/// Round tick values covering `lo..=hi` (about five).
fn nice_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(f64::MIN_POSITIVE);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 6.0)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    // The last tick is the top of the axis: it must not be below the highest value.
    if out.last().is_none_or(|&l| l < hi - step * 1e-9) {
        out.push(t);
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Chart {
    fn drawable(&self, (x, y): (f64, f64)) -> bool {
        x.is_finite() && y.is_finite() && (!self.log_x || x > 0.0) && (!self.log_y || y > 0.0)
    }

    /// The SVG document.
    pub fn render(&self) -> String {
        let pts = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|&p| self.drawable(p));
        let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
        let (mut ymin, mut y1) = (f64::INFINITY, 0.0f64);
        for (x, y) in pts {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y1 = y1.max(y);
            ymin = ymin.min(y);
        }
        for h in &self.hlines {
            if h.y.is_finite() && (!self.log_y || h.y > 0.0) {
                y1 = y1.max(h.y);
                ymin = ymin.min(h.y);
            }
        }
        if !x0.is_finite() {
            (x0, x1) = if self.log_x { (1.0, 10.0) } else { (0.0, 1.0) };
        }
        if self.log_x {
            x0 = 10f64.powf(x0.log10().floor());
            x1 = 10f64.powf(x1.log10().ceil());
            if x1 <= x0 {
                x1 = x0 * 10.0;
            }
        } else if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        let yticks: Vec<f64> = if self.log_y {
            let lo = if ymin.is_finite() && ymin > 0.0 {
                ymin.log10().floor() as i32
            } else {
                0
            };
            let hi = if y1 > 0.0 {
                y1.log10().ceil() as i32
            } else {
                lo + 1
            };
            (lo..=hi.max(lo + 1)).map(|e| 10f64.powi(e)).collect()
        } else {
            nice_ticks(0.0, if y1 > 0.0 { y1 * 1.08 } else { 1.0 })
        };
        let ytop = *yticks.last().unwrap_or(&1.0);
        let ybot = if self.log_y { yticks[0] } else { 0.0 };
        let pw = W - LEFT - RIGHT;
        let ph = H - TOP - BOTTOM;
        let fx = |x: f64| {
            let t = if self.log_x {
                (x.log10() - x0.log10()) / (x1.log10() - x0.log10())
            } else {
                (x - x0) / (x1 - x0)
            };
            LEFT + t * pw
        };
        let fy = |y: f64| {
            let t = if self.log_y {
                (y.log10() - ybot.log10()) / (ytop.log10() - ybot.log10())
            } else {
                y / ytop
            };
            TOP + ph - t.clamp(0.0, 1.0) * ph
        };

        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
            LEFT + pw / 2.0,
            esc(&self.title)
        );
        // Grid and y ticks.
        for &t in &yticks {
            let y = fy(t);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT + pw,
                LEFT - 6.0,
                y + 4.0,
                tick_label(t)
            );
        }
        // X ticks.
        let xticks: Vec<f64> = if self.log_x {
            let (a, b) = (x0.log10().round() as i32, x1.log10().round() as i32);
            (a..=b).map(|e| 10f64.powi(e)).collect()
        } else {
            nice_ticks(x0, x1)
        };
        for &t in &xticks {
            let x = fx(t);
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#eee"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                TOP + ph,
                TOP + ph + 18.0,
                tick_label(t)
            );
        }
        let _ = writeln!(
            s,
            r#"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + pw / 2.0,
            H - 10.0,
            esc(&self.x_label)
        );
        let _ = writeln!(
            s,
            r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">{}</text>"#,
            TOP + ph / 2.0,
            TOP + ph / 2.0,
            esc(&self.y_label)
        );
        // Lines and legend.
        let mut legend_y = TOP + 10.0;
        let lx = LEFT + pw + 14.0;
        for h in &self.hlines {
            if !h.y.is_finite() || (self.log_y && h.y <= 0.0) {
                continue;
            }
            let y = fy(h.y);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#000" stroke-width="1.5" stroke-dasharray="2,3"><title>{}</title></line>"##,
                LEFT + pw,
                esc(&h.name)
            );
            let _ = writeln!(
                s,
                r##"<line x1="{lx}" y1="{legend_y}" x2="{:.1}" y2="{legend_y}" stroke="#000" stroke-width="1.5" stroke-dasharray="2,3"/><text x="{:.1}" y="{:.1}">{}</text>"##,
                lx + 24.0,
                lx + 30.0,
                legend_y + 4.0,
                esc(&h.name)
            );
            legend_y += 18.0;
        }
        for (i, ser) in self.series.iter().enumerate() {
            let color = COLORS[ser.color.unwrap_or(i) % COLORS.len()];
            let dash = if ser.dashed {
                r#" stroke-dasharray="6,4""#
            } else {
                ""
            };
            let pts: Vec<String> = ser
                .points
                .iter()
                .filter(|&&p| self.drawable(p))
                .map(|&(x, y)| format!("{:.1},{:.1}", fx(x), fy(y)))
                .collect();
            if !pts.is_empty() {
                let _ = writeln!(
                    s,
                    r#"<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="{}"/>"#,
                    pts.join(" ")
                );
                for p in &pts {
                    let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
                    let _ = writeln!(s, r#"<circle cx="{x}" cy="{y}" r="3" fill="{color}"/>"#);
                }
            }
            let _ = writeln!(
                s,
                r#"<line x1="{lx}" y1="{legend_y}" x2="{:.1}" y2="{legend_y}" stroke="{color}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
                lx + 24.0,
                lx + 30.0,
                legend_y + 4.0,
                esc(&ser.name)
            );
            legend_y += 18.0;
        }
        s.push_str("</svg>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart() -> Chart {
        Chart {
            title: "Mpps <by> flows".into(),
            x_label: "flows".into(),
            y_label: "Mpps".into(),
            log_x: true,
            log_y: false,
            series: vec![
                Series {
                    name: "dr".into(),
                    points: vec![(1e3, 5.0), (1e5, 4.0), (1e6, 3.0), (1e7, 2.0)],
                    dashed: false,
                    color: None,
                },
                Series {
                    name: "nat".into(),
                    points: vec![(1e5, 2.5)],
                    dashed: true,
                    color: Some(0),
                },
            ],
            hlines: vec![HLine {
                name: "testpmd".into(),
                y: 9.0,
            }],
        }
    }

    #[test]
    fn renders_every_series_point_and_reference_line() {
        let s = chart().render();
        assert!(s.starts_with("<svg "));
        assert!(s.trim_end().ends_with("</svg>"));
        assert_eq!(s.matches("<polyline").count(), 2);
        assert_eq!(s.matches("<circle").count(), 5);
        assert!(s.contains("stroke-dasharray=\"6,4\""));
        assert!(s.contains(">testpmd<"));
        assert!(s.contains("Mpps &lt;by&gt; flows"), "text is escaped");
        for t in ["1k", "10k", "100k", "1M", "10M"] {
            assert!(s.contains(&format!(">{t}<")), "x tick {t}");
        }
        // Every coordinate lies inside the picture.
        for cap in s.split("points=\"").skip(1) {
            for p in cap.split('"').next().unwrap().split(' ') {
                let (x, y) = p.split_once(',').unwrap();
                let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
                assert!((LEFT..=W - RIGHT).contains(&x), "{x}");
                assert!((TOP - 1.0..=H - BOTTOM).contains(&y), "{y}");
            }
        }
    }

    #[test]
    fn empty_and_degenerate_charts_still_render() {
        let mut c = chart();
        c.series.clear();
        c.hlines.clear();
        let s = c.render();
        assert!(s.contains("</svg>"));
        c.series.push(Series {
            name: "one".into(),
            points: vec![(100.0, 0.0), (f64::NAN, 1.0)],
            dashed: false,
            color: None,
        });
        c.log_x = false;
        let s = c.render();
        assert_eq!(s.matches("<circle").count(), 1);
        assert!(!s.contains("NaN"));
    }

    #[test]
    fn the_axis_covers_the_highest_point() {
        let mut c = chart();
        c.series[0].points.push((2e7, 9.7));
        let s = c.render();
        // The top tick is at least the highest value (9.7 * 1.08 → 12).
        assert!(s.contains(">12<"), "{s}");
        let ticks = nice_ticks(0.0, 4.87);
        assert!(*ticks.last().unwrap() >= 4.87, "{ticks:?}");
    }

    #[test]
    fn log_y_spans_decades_and_skips_zero() {
        let mut c = chart();
        c.log_y = true;
        c.series[0].points = vec![(1e3, 300.0), (1e5, 20_000.0), (1e6, 0.0)];
        let s = c.render();
        for t in ["100", "1k", "10k", "100k"] {
            assert!(s.contains(&format!(">{t}<")), "y tick {t}");
        }
        assert_eq!(
            s.matches("<circle").count(),
            3,
            "zero is not drawn on a log axis"
        );
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick_label(1000.0), "1k");
        assert_eq!(tick_label(100_000.0), "100k");
        assert_eq!(tick_label(10_000_000.0), "10M");
        assert_eq!(tick_label(2_500_000.0), "2.5M");
        assert_eq!(tick_label(0.0), "0");
        assert_eq!(tick_label(0.5), "0.5");
        assert_eq!(tick_label(150.0), "150");
        assert_eq!(nice_ticks(0.0, 10.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
    }
}
