//! SVG plots with plotters' SVG backend: latency by percentile (the HdrHistogram view,
//! percentiles on a "number of nines" axis) and throughput over time, boxoffice next to
//! the ceiling. Text is laid out with plotters' built-in metrics and drawn by the viewer,
//! so no system font is needed.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use plotters::prelude::*;

use super::report::{Report, RunReport};
use super::workload::Kind;

const SIZE: (u32, u32) = (900, 540);
const BOXOFFICE: RGBColor = RGBColor(31, 119, 180);
const CEILING: RGBColor = RGBColor(255, 127, 14);

fn runs(report: &Report) -> Vec<(&RunReport, RGBColor)> {
    let mut out = Vec::new();
    if let Some(b) = &report.boxoffice {
        out.push((b, BOXOFFICE));
    }
    if let Some(c) = &report.ceiling {
        out.push((c, CEILING));
    }
    out
}

fn nines(p: f64) -> f64 {
    -(1.0 - p / 100.0).max(1e-5).log10()
}

/// Writes `<dir>/load-<workload>-latency.svg` and `-throughput.svg`; returns their paths.
pub fn write(report: &Report, kind: Kind, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let name = report.workload.kind.name();
    let latency = dir.join(format!("load-{name}-latency.svg"));
    let throughput = dir.join(format!("load-{name}-throughput.svg"));
    latency_plot(report, kind, &latency).map_err(|e| anyhow!("{}: {e}", latency.display()))?;
    throughput_plot(report, &throughput).map_err(|e| anyhow!("{}: {e}", throughput.display()))?;
    Ok(vec![latency, throughput])
}

/// A labelled line: legend text, points, colour.
type Series = (String, Vec<(f64, f64)>, RGBColor);

type PlotResult = Result<(), Box<dyn std::error::Error>>;

fn latency_plot(report: &Report, kind: Kind, path: &Path) -> PlotResult {
    let series: Vec<Series> = runs(report)
        .into_iter()
        .filter_map(|(run, color)| {
            let k = run.kind(kind)?;
            let points = k.curve.iter().map(|(p, ms)| (nines(*p), *ms)).collect();
            let label = format!("{} (p99 {:.2} ms)", run.target, k.p99_ms);
            Some((label, points, color))
        })
        .collect();
    let y_max = series
        .iter()
        .flat_map(|(_, pts, _)| pts.iter().map(|p| p.1))
        .fold(0.1f64, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "{} latency by percentile, {} ({})",
        kind.name(),
        report.workload.kind.name(),
        mode(report)
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .margin_right(40)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..5f64, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .y_label_formatter(&|y| format!("{y:.1}"))
        .x_labels(6)
        .x_label_formatter(&|x| {
            let p = 100.0 - 100.0 * 10f64.powf(-x);
            format!("{}%", trim(p))
        })
        .draw()?;
    for (label, points, color) in series {
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn throughput_plot(report: &Report, path: &Path) -> PlotResult {
    let series: Vec<Series> = runs(report)
        .into_iter()
        .map(|(run, color)| {
            let points = run
                .timeline_per_s
                .iter()
                .enumerate()
                .map(|(i, r)| ((i as f64 + 0.5) * run.bucket_s, *r))
                .collect();
            let label = format!("{} ({:.0} req/s)", run.target, run.requests_per_s);
            (label, points, color)
        })
        .collect();
    let x_max = series
        .iter()
        .flat_map(|(_, pts, _)| pts.iter().map(|p| p.0))
        .fold(1f64, f64::max);
    let y_max = series
        .iter()
        .flat_map(|(_, pts, _)| pts.iter().map(|p| p.1))
        .fold(1f64, f64::max)
        * 1.15;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "throughput over time, {} ({})",
        report.workload.kind.name(),
        mode(report)
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .margin_right(40)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds after warm-up")
        .y_desc("requests/s")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    for (label, points, color) in series {
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn mode(report: &Report) -> String {
    match report.rate {
        Some(rate) => format!(
            "open loop {rate:.0} req/s, {} connections",
            report.connections
        ),
        None => format!("{} connections", report.connections),
    }
}

fn trim(p: f64) -> String {
    let s = format!("{p:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_axis() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(99.0) - 2.0).abs() < 1e-9);
        assert_eq!(trim(99.9), "99.9");
        assert_eq!(trim(90.0), "90");
    }
}
