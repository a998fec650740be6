//! SVG plots with plotters: the latency CDF of the alertmesh run and the baselines, and
//! delivery over time for scenarios with churn or a partition.

use crate::report::{Report, RunSummary};
use anyhow::Context;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

const SIZE: (u32, u32) = (900, 540);
const ALERTMESH: RGBColor = RGBColor(0xc0, 0x39, 0x2b);
const BASELINE: RGBColor = RGBColor(0x29, 0x80, 0xb9);
const ANONYMOUS: RGBColor = RGBColor(0x7f, 0x8c, 0x8d);

/// (x, y) of a plotted series.
type Point = (f64, f64);

fn cdf(samples: &[f64]) -> Vec<(f64, f64)> {
    let n = samples.len();
    let step = (n / 2000).max(1);
    let mut pts: Vec<(f64, f64)> = samples
        .iter()
        .enumerate()
        .filter(|(i, _)| i % step == 0 || *i == n - 1)
        .map(|(i, v)| (v.max(0.01), (i + 1) as f64 / n as f64))
        .collect();
    pts.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    pts
}

/// Writes `<dir>/<name>-latency.svg`; returns its path.
pub fn latency_cdf(r: &Report, dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("{}-latency.svg", r.scenario.name));
    let a = cdf(&r.alertmesh.samples);
    let baselines: Vec<(&RunSummary, Vec<Point>, RGBColor)> = r
        .baseline
        .iter()
        .map(|b| (b, BASELINE))
        .chain(r.anonymous.iter().map(|b| (b, ANONYMOUS)))
        .map(|(b, colour)| (b, cdf(&b.samples), colour))
        .collect();
    let all = || a.iter().chain(baselines.iter().flat_map(|b| &b.1));
    let max = all().map(|p| p.0).fold(1.0f64, f64::max) * 1.2;
    let min = all().map(|p| p.0).fold(max, f64::min).max(0.01) / 1.2;
    {
        let root = SVGBackend::new(&path, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let title = format!(
            "{}: publish-to-delivery latency CDF ({} nodes)",
            r.scenario.name, r.plan.nodes
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(55)
            .build_cartesian_2d((min..max).log_scale(), 0.0..1.0)?;
        chart
            .configure_mesh()
            .x_desc("latency (ms, log scale)")
            .y_desc("fraction of deliveries")
            .draw()?;
        let label = |s: &RunSummary| {
            format!(
                "{}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                s.system, s.latency.p50_ms, s.latency.p99_ms, s.latency.max_ms
            )
        };
        chart
            .draw_series(LineSeries::new(a, ALERTMESH.stroke_width(2)))?
            .label(label(&r.alertmesh))
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], ALERTMESH.stroke_width(2))
            });
        for (base, points, colour) in baselines {
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
                .label(label(base))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present().context("cannot write the SVG")?;
    }
    Ok(path)
}

/// Writes `<dir>/<name>-delivery.svg` (delivered / due over time, fault windows shaded).
pub fn delivery_over_time(
    r: &Report,
    dir: &Path,
    faults: &[(f64, f64, &str)],
) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("{}-delivery.svg", r.scenario.name));
    let a = &r.alertmesh.delivery_over_time;
    let baselines: Vec<(&RunSummary, RGBColor)> = r
        .baseline
        .iter()
        .map(|b| (b, BASELINE))
        .chain(r.anonymous.iter().map(|b| (b, ANONYMOUS)))
        .collect();
    let all = || {
        a.iter()
            .chain(baselines.iter().flat_map(|b| &b.0.delivery_over_time))
    };
    let end = all().map(|p| p.0).fold(1.0f64, f64::max);
    let low = all().map(|p| p.1).fold(1.0f64, f64::min);
    let low = (low - 0.05).clamp(0.0, 0.95);
    {
        let root = SVGBackend::new(&path, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{}: deliveries arrived / due, over time", r.scenario.name),
                ("sans-serif", 22),
            )
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..end, low..1.005)?;
        chart
            .configure_mesh()
            .x_desc("seconds since the workload started")
            .y_desc("delivered / due")
            .draw()?;
        for (from, to, what) in faults {
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(*from, low), (*to, 1.005)],
                    RGBColor(0xf3, 0x9c, 0x12).mix(0.18).filled(),
                )))?
                .label(what.to_string())
                .legend(|(x, y)| {
                    Rectangle::new(
                        [(x, y - 5), (x + 20, y + 5)],
                        RGBColor(0xf3, 0x9c, 0x12).mix(0.4).filled(),
                    )
                });
        }
        chart
            .draw_series(LineSeries::new(
                a.iter().copied(),
                ALERTMESH.stroke_width(2),
            ))?
            .label("alertmesh")
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], ALERTMESH.stroke_width(2))
            });
        for (base, colour) in baselines {
            chart
                .draw_series(LineSeries::new(
                    base.delivery_over_time.iter().copied(),
                    colour.stroke_width(2),
                ))?
                .label(base.system.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present().context("cannot write the SVG")?;
    }
    Ok(path)
}
