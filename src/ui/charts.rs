//! Charts drawn on the server as inline SVG: no chart library, no JavaScript, nothing to
//! download, and they print, scale (`viewBox`, width 100%) and work with scripts off. Colours come
//! only from CSS classes (app.css), so light and dark mode restyle them:
//! `chart`, `sparkline`, `chart-line`, `chart-dot` (+ `over`: on the drifting side of the
//! threshold), `chart-threshold`, `chart-axis`, `chart-grid`, `chart-label`, `marker-drift`,
//! `marker-switch`, `chart-bar`.
//!
//! Each chart is `role="img"` with a `<title>` and a `<desc>` that says in words what it shows,
//! for screen readers. Coordinates are rounded to one decimal to keep pages small.

use maud::{html, Markup};

/// Which side of a threshold is drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drifting {
    /// Semantic similarity: drift when it falls below the threshold.
    Below,
    /// Length z-score: drift when it goes beyond ± the threshold.
    BeyondEither,
    /// Evidence or a rate: drift when it rises above the line.
    Above,
}

impl Drifting {
    pub fn is_drift(self, value: f64, threshold: f64) -> bool {
        match self {
            Drifting::Below => value < threshold,
            Drifting::BeyondEither => value.abs() > threshold,
            Drifting::Above => value > threshold,
        }
    }

    /// The threshold lines to draw.
    fn lines(self, threshold: f64) -> Vec<f64> {
        match self {
            Drifting::Below | Drifting::Above => vec![threshold],
            Drifting::BeyondEither => vec![threshold, -threshold],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerKind {
    Drift,
    Switch,
}

/// A vertical mark at `x` (a drift event, a version switch); `label` shows on hover.
#[derive(Debug, Clone)]
pub struct Marker {
    pub x: f64,
    pub kind: MarkerKind,
    pub label: String,
}

pub struct Series<'a> {
    pub name: &'a str,
    /// (x, y) with x ascending; non-finite values are skipped.
    pub points: &'a [(f64, f64)],
    pub threshold: f64,
    pub drifting: Drifting,
    /// What the first score waits for, shown while there is none.
    pub waiting: &'a str,
}

/// A bar of a bar chart.
pub struct Bar {
    pub label: String,
    pub value: f64,
}

/// One decimal, without a trailing ".0" where it adds nothing.
fn num(v: f64) -> String {
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

/// Maps a data range onto a pixel range; a range of zero width maps everything to its middle.
#[derive(Debug, Clone, Copy)]
struct Scale {
    from: (f64, f64),
    to: (f64, f64),
}

impl Scale {
    fn at(&self, v: f64) -> f64 {
        let span = self.from.1 - self.from.0;
        if span.abs() < f64::EPSILON {
            return (self.to.0 + self.to.1) / 2.0;
        }
        self.to.0 + (v - self.from.0) / span * (self.to.1 - self.to.0)
    }
}

/// The y range: every value and threshold line, and zero, with a little headroom.
fn y_range(values: impl Iterator<Item = f64>, lines: &[f64]) -> (f64, f64) {
    let (mut lo, mut hi) = (0.0f64, 0.0f64);
    for v in values.chain(lines.iter().copied()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    let pad = ((hi - lo) * 0.08).max(0.01);
    (if lo < 0.0 { lo - pad } else { lo }, hi + pad)
}

/// 3 to 6 round tick values covering `lo..=hi`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-9);
    let raw = span / 4.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| span / s <= 5.0).unwrap_or(raw);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 && out.len() < 8 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

/// A small trend line for a table cell, values oldest first, with the threshold dashed and
/// the last value as a dot (red when on the drifting side).
pub fn sparkline(values: &[f64], threshold: f64, drifting: Drifting, label: &str) -> Markup {
    let values: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let Some(&last) = values.last() else {
        return html! { span.muted { "no scores yet" } };
    };
    let (w, h) = (100.0, 24.0);
    let lines = drifting.lines(threshold);
    let y = Scale { from: y_range(values.iter().copied(), &lines), to: (h - 2.0, 2.0) };
    let x = Scale { from: (0.0, (values.len() - 1) as f64), to: (2.0, w - 4.0) };
    let path = polyline(values.iter().enumerate().map(|(i, v)| (x.at(i as f64), y.at(*v))));
    let over = drifting.is_drift(last, threshold);
    let summary = format!(
        "{} scores from {} to {}, latest {:.3}{}",
        values.len(),
        num_3(values.iter().copied().fold(f64::INFINITY, f64::min)),
        num_3(values.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
        last,
        if over { ", past the threshold" } else { "" }
    );
    html! {
        svg.sparkline viewBox={ "0 0 " (num(w)) " " (num(h)) } role="img" aria-label={ (label) ": " (summary) } {
            title { (label) }
            @for t in &lines {
                line.chart-threshold x1="0" x2=(num(w)) y1=(num(y.at(*t))) y2=(num(y.at(*t))) {}
            }
            path.chart-line d=(path) {}
            circle class=(if over { "chart-dot over" } else { "chart-dot" })
                cx=(num(x.at((values.len() - 1) as f64))) cy=(num(y.at(last))) r="2.5" {}
        }
    }
}

fn num_3(v: f64) -> String {
    format!("{v:.3}")
}

fn polyline(points: impl Iterator<Item = (f64, f64)>) -> String {
    let mut d = String::new();
    for (i, (px, py)) in points.enumerate() {
        d.push_str(if i == 0 { "M" } else { " L" });
        d.push_str(&format!("{} {}", num(px), num(py)));
    }
    d
}

/// A line chart of one series against its threshold, with drift events and version switches
/// as vertical markers (markers outside the plotted x range are left out: they concern samples
/// no longer shown).
pub fn line_chart(series: &Series, markers: &[Marker], x_label: &dyn Fn(f64) -> String) -> Markup {
    let points: Vec<(f64, f64)> =
        series.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return html! { p.muted { "No " (series.name.to_lowercase()) " yet: " (series.waiting) "." } };
    };
    let (w, h) = (640.0, 220.0);
    let (left, right, top, bottom) = (48.0, 12.0, 10.0, 28.0);
    let lines = series.drifting.lines(series.threshold);
    let (lo, hi) = y_range(points.iter().map(|p| p.1), &lines);
    let y = Scale { from: (lo, hi), to: (h - bottom, top) };
    let x = Scale { from: (first.0, last.0), to: (left, w - right) };
    let shown: Vec<&Marker> = markers.iter().filter(|m| m.x >= first.0 && m.x <= last.0).collect();
    let drift_count = shown.iter().filter(|m| m.kind == MarkerKind::Drift).count();
    let switch_count = shown.len() - drift_count;
    let over_count = points.iter().filter(|p| series.drifting.is_drift(p.1, series.threshold)).count();
    let desc = format!(
        "{} of {} samples, from {} to {}; threshold {}; {} past the threshold; {} drift event{}, {} version switch{}.",
        series.name,
        points.len(),
        num_3(points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min)),
        num_3(points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max)),
        series.threshold,
        over_count,
        drift_count,
        if drift_count == 1 { "" } else { "s" },
        switch_count,
        if switch_count == 1 { "" } else { "es" },
    );
    html! {
        svg.chart viewBox={ "0 0 " (num(w)) " " (num(h)) } role="img" aria-label=(series.name) {
            title { (series.name) }
            desc { (desc) }
            @for t in ticks(lo, hi) {
                line.chart-grid x1=(num(left)) x2=(num(w - right)) y1=(num(y.at(t))) y2=(num(y.at(t))) {}
                text.chart-label x=(num(left - 6.0)) y=(num(y.at(t) + 4.0)) text-anchor="end" { (trim_tick(t)) }
            }
            line.chart-axis x1=(num(left)) x2=(num(left)) y1=(num(top)) y2=(num(h - bottom)) {}
            @for t in &lines {
                line.chart-threshold x1=(num(left)) x2=(num(w - right)) y1=(num(y.at(*t))) y2=(num(y.at(*t))) {
                    title { "threshold " (t) }
                }
            }
            @for m in &shown {
                line class=(if m.kind == MarkerKind::Drift { "marker-drift" } else { "marker-switch" })
                    x1=(num(x.at(m.x))) x2=(num(x.at(m.x))) y1=(num(top)) y2=(num(h - bottom)) {
                    title { (m.label) }
                }
            }
            path.chart-line d=(polyline(points.iter().map(|(px, py)| (x.at(*px), y.at(*py))))) {}
            @for (px, py) in points.iter().filter(|p| series.drifting.is_drift(p.1, series.threshold)) {
                circle.chart-dot.over cx=(num(x.at(*px))) cy=(num(y.at(*py))) r="2.5" {}
            }
            text.chart-label x=(num(left)) y=(num(h - 8.0)) { (x_label(first.0)) }
            text.chart-label x=(num(w - right)) y=(num(h - 8.0)) text-anchor="end" { (x_label(last.0)) }
        }
        p.legend.muted {
            "Line: " (series.name.to_lowercase()) " · dashed: threshold " (series.threshold)
            @if drift_count > 0 { " · solid red: drift detected" }
            @if switch_count > 0 { " · dotted: version switched" }
        }
    }
}

fn trim_tick(t: f64) -> String {
    let s = format!("{t:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Horizontal bars side by side, one per item (variants of a model config).
pub fn bar_chart(title: &str, bars: &[Bar], unit: &str) -> Markup {
    let bars: Vec<&Bar> = bars.iter().filter(|b| b.value.is_finite()).collect();
    if bars.iter().all(|b| b.value <= 0.0) {
        return html! { p.muted { "No data yet." } };
    }
    let (w, row) = (640.0, 26.0);
    let label_w = 180.0;
    let h = row * bars.len() as f64 + 4.0;
    let max = bars.iter().map(|b| b.value).fold(0.0, f64::max);
    let x = Scale { from: (0.0, max), to: (label_w, w - 90.0) };
    let desc: Vec<String> = bars.iter().map(|b| format!("{}: {:.1} {unit}", b.label, b.value)).collect();
    html! {
        svg.chart viewBox={ "0 0 " (num(w)) " " (num(h)) } role="img" aria-label=(title) {
            title { (title) }
            desc { (desc.join("; ")) }
            @for (i, b) in bars.iter().enumerate() {
                @let top = 2.0 + row * i as f64;
                text.chart-label x=(num(label_w - 8.0)) y=(num(top + row * 0.65)) text-anchor="end" { (truncate_label(&b.label)) }
                rect.chart-bar x=(num(label_w)) y=(num(top + 4.0)) width=(num((x.at(b.value.max(0.0)) - label_w).max(1.0))) height=(num(row - 8.0)) {}
                text.chart-label x=(num(x.at(b.value.max(0.0)) + 6.0)) y=(num(top + row * 0.65)) { (format!("{:.1} {unit}", b.value)) }
            }
        }
    }
}

fn truncate_label(label: &str) -> String {
    match label.char_indices().nth(24) {
        Some((at, _)) => format!("{}…", &label[..at]),
        None => label.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(points: &[(f64, f64)], markers: &[Marker]) -> String {
        let series = Series {
            name: "Semantic score",
            points,
            threshold: 0.7,
            drifting: Drifting::Below,
            waiting: "scores start once the baseline is ready",
        };
        line_chart(&series, markers, &|x| format!("#{x}")).into_string()
    }

    #[test]
    fn the_threshold_line_sits_on_the_scale_and_drifting_points_are_marked() {
        // y from 0 to 1 + 8% headroom over 182 px (220 - 10 - 28), top at 10
        let svg = chart(&[(1.0, 0.9), (2.0, 1.0), (3.0, 0.5)], &[]);
        let y = Scale { from: (0.0, 1.08), to: (192.0, 10.0) }.at(0.7);
        assert!(svg.contains(&format!("class=\"chart-threshold\" x1=\"48\" x2=\"628\" y1=\"{}\"", num(y))), "{svg}");
        // only the point below 0.7 is marked
        assert_eq!(svg.matches("chart-dot over").count(), 1, "{svg}");
        let x3 = num(Scale { from: (1.0, 3.0), to: (48.0, 628.0) }.at(3.0));
        assert!(svg.contains(&format!("cx=\"{x3}\"")), "{svg}");
    }

    #[test]
    fn markers_are_drawn_escaped_and_counted() {
        let markers = [
            Marker { x: 2.0, kind: MarkerKind::Drift, label: "<script>alert(1)</script>".into() },
            Marker { x: 2.0, kind: MarkerKind::Switch, label: "a → b".into() },
            Marker { x: 99.0, kind: MarkerKind::Drift, label: "outside".into() },
        ];
        let svg = chart(&[(1.0, 0.9), (3.0, 0.8)], &markers);
        assert!(svg.contains("&lt;script&gt;") && !svg.contains("<script>"), "{svg}");
        assert_eq!((svg.matches("marker-drift").count(), svg.matches("marker-switch").count()), (1, 1));
        assert!(svg.contains("1 drift event, 1 version switch."), "{svg}");
        assert!(!svg.contains("outside"));
    }

    #[test]
    fn degenerate_series_render_without_nan() {
        for points in [vec![(5.0, 0.8)], vec![(1.0, 0.8), (2.0, 0.8)], vec![(1.0, f64::NAN), (2.0, 0.3)]] {
            let svg = chart(&points, &[]);
            assert!(svg.contains("<svg") && !svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        }
        assert!(chart(&[], &[]).contains("No semantic score yet"));
        assert!(chart(&[(1.0, f64::INFINITY)], &[]).contains("No semantic score yet"));
    }

    #[test]
    fn length_scores_drift_on_either_side() {
        let series = Series {
            name: "Length score",
            points: &[(1.0, 3.0), (2.0, -3.0), (3.0, 0.5)],
            threshold: 2.0,
            drifting: Drifting::BeyondEither,
            waiting: "",
        };
        let svg = line_chart(&series, &[], &|x| x.to_string()).into_string();
        assert_eq!(svg.matches("class=\"chart-threshold\"").count(), 2);
        assert_eq!(svg.matches("chart-dot over").count(), 2);
    }

    #[test]
    fn sparklines_show_the_latest_state() {
        let svg = sparkline(&[0.9, 0.85, 0.6], 0.7, Drifting::Below, "Recent scores").into_string();
        assert!(svg.contains("chart-dot over") && svg.contains("latest 0.600, past the threshold"), "{svg}");
        let svg = sparkline(&[0.9, f64::NAN], 0.7, Drifting::Below, "x").into_string();
        assert!(!svg.contains("over") && !svg.contains("NaN"), "{svg}");
        assert!(sparkline(&[], 0.7, Drifting::Below, "x").into_string().contains("no scores yet"));
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 1.08), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        let t = ticks(-3.2, 3.2);
        assert!(t.len() >= 3 && t.contains(&0.0), "{t:?}");
    }

    #[test]
    fn bars_scale_to_the_largest() {
        let bars = [Bar { label: "gpt-4o".into(), value: 200.0 }, Bar { label: "claude".into(), value: 100.0 }];
        let svg = bar_chart("Latency", &bars, "ms").into_string();
        assert!(svg.contains("width=\"370\"") && svg.contains("width=\"185\""), "{svg}");
        assert!(bar_chart("x", &[Bar { label: "a".into(), value: 0.0 }], "ms").into_string().contains("No data yet"));
    }
}
