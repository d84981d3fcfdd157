//! The chart of a run: an SVG (plotters' SVG backend) of the eddy/nginx ratios per scenario, written next to the
//! JSON. For each scenario, six bars: req/s (higher is better for eddy), then server cores per 10 Gbit/s, the
//! server's user-space and kernel CPU per request, p99 latency and peak anonymous resident memory (RssAnon: VmRSS
//! less the page-cache pages a server maps), these five lower is better for eddy, with the parity line at 1.0 marked. A missing ratio (a skipped side, nothing moved) leaves
//! its bar out. Bars taller than the axis are cut at its top and labelled with their value.
//!
//! Text goes into the SVG as `<text>` elements: plotters is built without its font features, so nothing reads
//! system fonts at build or run time, and the viewer renders the text.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{Error, Result};
use crate::report::ScenarioSummary;

/// The ratios drawn, in bar order: label, colour, and how to read one from a summary.
type Metric = (&'static str, RGBColor, fn(&ScenarioSummary) -> Option<f64>);

const METRICS: [Metric; 6] = [
    ("req/s (higher is better)", RGBColor(31, 119, 180), |s| {
        s.eddy_over_nginx.req_s
    }),
    (
        "server cores per 10 Gbit/s (lower is better)",
        RGBColor(255, 127, 14),
        |s| s.eddy_over_nginx.server_cores_per_10gbps,
    ),
    (
        "server user CPU per request (lower is better)",
        RGBColor(214, 39, 40),
        |s| s.eddy_over_nginx.server_user_us_per_req,
    ),
    (
        "server kernel CPU per request (lower is better)",
        RGBColor(140, 86, 75),
        |s| s.eddy_over_nginx.server_system_us_per_req,
    ),
    (
        "p99 latency (lower is better)",
        RGBColor(44, 160, 44),
        |s| s.eddy_over_nginx.p99_ms,
    ),
    (
        "peak anonymous RSS (lower is better)",
        RGBColor(148, 103, 189),
        |s| s.eddy_over_nginx.server_rss_anon_mib,
    ),
];

/// Highest value the axis shows; taller bars are cut there.
const Y_CAP: f64 = 4.0;

/// Legend entries per row.
const LEGEND_ROW: usize = 4;

/// Where legend entry `i` starts, under the axis whose origin is at (`x0`, `y0`).
fn legend_at(x0: i32, y0: i32, i: usize) -> (i32, i32) {
    (
        x0 + (i % LEGEND_ROW) as i32 * 340,
        y0 + 45 + (i / LEGEND_ROW) as i32 * 22,
    )
}

/// Draw the chart of `summary` into `path` (SVG). `subtitle` says which run it is.
pub fn draw(summary: &[ScenarioSummary], subtitle: &str, path: &Path) -> Result<()> {
    draw_inner(summary, subtitle, path)
        .map_err(|e| Error::tool("chart", format!("{}: {e}", path.display())))
}

fn draw_inner(
    summary: &[ScenarioSummary],
    subtitle: &str,
    path: &Path,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let n = summary.len().max(1);
    let width = (160 * n as u32 + 200).max(1500);
    let root = SVGBackend::new(path, (width, 680)).into_drawing_area();
    root.fill(&WHITE)?;
    let top = summary
        .iter()
        .flat_map(|s| METRICS.iter().filter_map(move |(_, _, f)| f(s)))
        .fold(1.0f64, f64::max);
    let ymax = (top * 1.15).clamp(1.5, Y_CAP);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("eddy / nginx, same run: {subtitle}"),
            ("sans-serif", 20),
        )
        .margin(20)
        .x_label_area_size(100)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..n as f64, 0f64..ymax)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("ratio eddy / nginx")
        .label_style(("sans-serif", 15))
        .draw()?;
    // Scenario names under each group of bars, placed in pixels below the axis.
    for (i, s) in summary.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
        root.draw(&Text::new(
            format!("({})", s.scenario),
            (x, y + 8),
            ("sans-serif", 16)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Top)),
        ))?;
    }

    let bar_w = 0.8 / METRICS.len() as f64;
    for (m, (name, colour, get)) in METRICS.iter().enumerate() {
        let bars: Vec<(f64, f64)> = summary
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i as f64 + 0.1 + m as f64 * bar_w, get(s)?)))
            .collect();
        let colour = *colour;
        chart.draw_series(bars.iter().map(|&(x, v)| {
            Rectangle::new([(x, 0.0), (x + bar_w * 0.9, v.min(ymax))], colour.filled())
        }))?;
        chart.draw_series(bars.iter().map(|&(x, v)| {
            Text::new(
                format!("{v:.2}"),
                (x + bar_w * 0.45, v.min(ymax)),
                ("sans-serif", 11)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
            )
        }))?;
        // The legend goes under the scenario names, in rows of LEGEND_ROW entries side by side.
        let (x0, y0) = chart.backend_coord(&(0.0, 0.0));
        let (lx, ly) = legend_at(x0, y0, m);
        root.draw(&Rectangle::new(
            [(lx, ly), (lx + 14, ly + 14)],
            colour.filled(),
        ))?;
        root.draw(&Text::new(
            *name,
            (lx + 20, ly + 7),
            ("sans-serif", 13)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
    }
    // A scenario without any ratio (one side skipped) says so instead of standing empty.
    chart.draw_series(
        summary
            .iter()
            .enumerate()
            .filter(|(_, s)| METRICS.iter().all(|(_, _, f)| f(s).is_none()))
            .map(|(i, _)| {
                Text::new(
                    "no ratio (a side did not run)",
                    (i as f64 + 0.5, ymax * 0.05),
                    ("sans-serif", 12)
                        .into_font()
                        .color(&BLACK)
                        .pos(Pos::new(HPos::Center, VPos::Bottom)),
                )
            }),
    )?;
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(0.0, 1.0), (n as f64, 1.0)],
        ShapeStyle::from(&RED).stroke_width(2),
    )))?;
    // The parity line's legend entry, after the metrics'.
    let (x0, y0) = chart.backend_coord(&(0.0, 0.0));
    let (lx, ly) = legend_at(x0, y0, METRICS.len());
    let ly = ly + 7;
    root.draw(&PathElement::new(
        vec![(lx, ly), (lx + 24, ly)],
        ShapeStyle::from(&RED).stroke_width(2),
    ))?;
    root.draw(&Text::new(
        "parity 1.0",
        (lx + 30, ly),
        ("sans-serif", 13)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center)),
    ))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Ratios;

    #[test]
    fn draws_every_scenario_and_the_parity_line() {
        let s = |key: &str, req: Option<f64>| ScenarioSummary {
            scenario: key.into(),
            eddy_over_nginx: Ratios {
                req_s: req,
                server_cores_per_10gbps: Some(0.8),
                p99_ms: Some(9.0),
                server_rss_anon_mib: Some(0.5),
                ..Ratios::default()
            },
            ..ScenarioSummary::default()
        };
        let dir = std::env::temp_dir().join(format!("eddy-bench-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("c.svg");
        draw(&[s("a", Some(1.07)), s("d", None)], "test", &path).expect("drawn");
        let svg = std::fs::read_to_string(&path).expect("read");
        assert!(svg.starts_with("<svg"));
        for want in [
            "(a)",
            "(d)",
            "1.07",
            "parity 1.0",
            "9.00",
            "req/s (higher is better)",
        ] {
            assert!(svg.contains(want), "missing {want}");
        }
        // One label per bar: the missing req/s ratio of (d) has none.
        assert_eq!(svg.matches(">\n1.07\n<").count(), 1);
        assert_eq!(svg.matches(">\n0.80\n<").count(), 2);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
