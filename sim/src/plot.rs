//! SVG plots of a report.
//!
//! Plots are rendered into memory with plotters' SVG backend (text is written
//! as `<text>` elements, so no font files are needed) and then written out,
//! so every failure becomes an [`Error::Plot`] naming the file. The output is
//! a pure function of the report: the same report gives byte-identical files.

use std::fmt::Display;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::{Error, Report};

/// Size of every plot, pixels.
const SIZE: (u32, u32) = (960, 600);

/// One colour per policy, in the report's order (wrapping around).
const PALETTE: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 128),
    RGBColor(128, 0, 0),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Writes `failover-cdf.svg` and `energy.svg` into `dir`.
///
/// The first is the empirical CDF of failover times (log-scaled seconds),
/// one line per policy that has samples; the second a bar chart of modelled
/// radio energy per node-hour, one bar per policy.
///
/// # Errors
/// [`Error::Plot`] if `dir` cannot be created, or a plot cannot be drawn or
/// written.
pub fn write_plots(report: &Report, dir: &Path) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(dir).map_err(|e| plot_error(dir, e))?;
    let cdf = dir.join("failover-cdf.svg");
    render(&cdf, |root| draw_failover_cdf(report, root))?;
    let energy = dir.join("energy.svg");
    render(&energy, |root| draw_energy(report, root))?;
    Ok(vec![cdf, energy])
}

fn plot_error(path: &Path, e: impl Display) -> Error {
    Error::Plot {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

fn msg(e: impl Display) -> String {
    e.to_string()
}

type Root<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Draws into an in-memory SVG document with `draw`, then writes it to `path`.
fn render(path: &Path, draw: impl FnOnce(&Root<'_>) -> Result<(), String>) -> Result<(), Error> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
        draw(&root).map_err(|e| plot_error(path, e))?;
        root.present().map_err(|e| plot_error(path, e))?;
    }
    std::fs::write(path, svg).map_err(|e| plot_error(path, e))
}

/// Seconds as a short axis label: `0.01`, `0.5`, `2`, `100`.
fn fmt_secs(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

/// The x range of the CDF: powers of ten around every positive sample,
/// `0.01..100` s when there are none.
fn log_range<'a>(samples: impl Iterator<Item = &'a f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &x in samples {
        if x.is_finite() && x > 0.0 {
            lo = lo.min(x);
            hi = hi.max(x);
        }
    }
    if !lo.is_finite() {
        return (0.01, 100.0);
    }
    let lo = 10f64.powf(lo.log10().floor()).clamp(1e-4, 0.01);
    let hi = 10f64.powf(hi.log10().ceil()).max(lo * 10.0).max(1.0);
    (lo, hi)
}

fn draw_failover_cdf(report: &Report, root: &Root<'_>) -> Result<(), String> {
    let with_samples: Vec<(usize, &crate::PolicyResult)> = report
        .policies
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.failover_samples.is_empty())
        .collect();
    let (lo, hi) = log_range(with_samples.iter().flat_map(|(_, p)| &p.failover_samples));

    let mut chart = ChartBuilder::on(root)
        .caption(
            format!(
                "Failover time CDF: {} (seed {})",
                report.scenario, report.seed
            ),
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(56)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..1f64)
        .map_err(msg)?;
    chart
        .configure_mesh()
        .x_desc("failover time (s, log scale)")
        .y_desc("share of failovers")
        .x_label_formatter(&|v| fmt_secs(*v))
        .y_label_formatter(&|v| format!("{v:.1}"))
        .draw()
        .map_err(msg)?;

    for &(i, p) in &with_samples {
        let n = p.failover_samples.len() as f64;
        // A step function: at each sample the share jumps by 1/n.
        let mut points = Vec::with_capacity(2 * p.failover_samples.len() + 2);
        points.push((lo, 0.0));
        for (k, &x) in p.failover_samples.iter().enumerate() {
            let x = if x.is_finite() { x.clamp(lo, hi) } else { hi };
            points.push((x, k as f64 / n));
            points.push((x, (k + 1) as f64 / n));
        }
        points.push((hi, 1.0));
        let c = color(i);
        chart
            .draw_series(LineSeries::new(points, c.stroke_width(2)))
            .map_err(msg)?
            .label(format!("{} (n={})", p.policy, p.failover_samples.len()))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    if !with_samples.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(msg)?;
    }
    Ok(())
}

fn draw_energy(report: &Report, root: &Root<'_>) -> Result<(), String> {
    let n = report.policies.len();
    let value = |j: f64| if j.is_finite() && j > 0.0 { j } else { 0.0 };
    let max = report
        .policies
        .iter()
        .map(|p| value(p.energy_j_per_node_hour))
        .fold(0.0, f64::max);
    let x_max = if max > 0.0 { max * 1.15 } else { 1.0 };
    // Horizontal bars, so long policy names fit; the first policy on top.
    // (An integer range is inclusive in plotters: `0..n - 1` is n segments.)
    let longest = report
        .policies
        .iter()
        .map(|p| p.policy.chars().count())
        .max()
        .unwrap_or(0);
    let label_area = u32::try_from(longest).unwrap_or(60).clamp(4, 60) * 8 + 16;
    let row = |segment: usize| {
        n.checked_sub(segment + 1)
            .and_then(|i| report.policies.get(i))
    };

    let mut chart = ChartBuilder::on(root)
        .caption(
            format!(
                "Radio energy per node-hour: {} (seed {})",
                report.scenario, report.seed
            ),
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(label_area)
        .build_cartesian_2d(0f64..x_max, (0..n.saturating_sub(1)).into_segmented())
        .map_err(msg)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n.max(1))
        .x_desc("energy (J per node-hour)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(s) => row(*s).map(|p| p.policy.clone()).unwrap_or_default(),
            _ => String::new(),
        })
        .draw()
        .map_err(msg)?;

    chart
        .draw_series((0..n).filter_map(|s| {
            let i = n - 1 - s;
            let p = report.policies.get(i)?;
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(s)),
                    (value(p.energy_j_per_node_hour), SegmentValue::Exact(s + 1)),
                ],
                color(i).filled(),
            );
            bar.set_margin(6, 6, 0, 0);
            Some(bar)
        }))
        .map_err(msg)?;
    chart
        .draw_series((0..n).filter_map(|s| {
            let p = report.policies.get(n - 1 - s)?;
            let v = value(p.energy_j_per_node_hour);
            Some(Text::new(
                format!("{v:.1}"),
                (v + x_max * 0.005, SegmentValue::CenterOf(s)),
                ("sans-serif", 14)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            ))
        }))
        .map_err(msg)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Percentiles, PolicyResult};

    fn policy(name: &str, samples: Vec<f64>, energy: f64) -> PolicyResult {
        let none = Percentiles {
            count: samples.len() as u64,
            unfinished: 0,
            p50: None,
            p95: None,
            p99: None,
        };
        PolicyResult {
            policy: name.to_owned(),
            time_to_first_connection: none.clone(),
            time_to_first_connection_after_restart: none.clone(),
            failover: none.clone(),
            failover_by_cause: crate::FailoverByCause {
                interface_lost: none.clone(),
                interface_lost_after_warning: none.clone(),
                silent_stall: none.clone(),
                peer_moved: none.clone(),
            },
            usable_share: None,
            best_route_share: None,
            direct_share: None,
            nat: crate::NatCounts {
                relayed_connections: 0,
                hole_punches: 0,
                hole_punches_ok: 0,
                circuits_cut: 0,
            },
            switches_per_node_hour: 0.0,
            energy_j_per_node_hour: energy,
            energy_by_radio: crate::EnergyByRadio {
                wifi: energy,
                ethernet: 0.0,
                cellular: 0.0,
                ble: 0.0,
            },
            energy_by_cause: crate::EnergyByCause {
                app: energy,
                connect: 0.0,
                liveness: 0.0,
                discovery: 0.0,
                lte_promotions: [0.0; 4],
            },
            lte_promotions_per_node_hour: 0.0,
            discoveries: 0,
            discovery_success: None,
            messages_sent: 0,
            messages_delivered: 0,
            messages_lost: 0,
            message_delay: none.clone(),
            dials: 0,
            dial_failures: 0,
            node_hours: 1.0,
            trace_hash: "0".repeat(16),
            failover_samples: samples,
        }
    }

    fn report() -> Report {
        Report {
            scenario: "plot test".to_owned(),
            seed: 7,
            nodes: 2,
            duration_s: 60.0,
            policies: vec![
                policy("multidriver", vec![0.0, 0.05, 0.2, 0.4, 1.5], 1234.5),
                policy("libp2p-stock", vec![2.0, 9.0, 30.0, 250.0], 987.0),
                policy("oracle", Vec::new(), 0.0),
            ],
            trace_hash: "0".repeat(16),
            wall: Vec::new(),
        }
    }

    #[test]
    fn writes_both_plots_deterministically() {
        let dir = std::env::temp_dir().join(format!(
            "multidriver-sim-plot-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let report = report();
        let paths = write_plots(&report, &dir).unwrap();
        assert_eq!(paths.len(), 2);
        let mut first = Vec::new();
        for path in &paths {
            let svg = std::fs::read_to_string(path).unwrap();
            assert!(svg.contains("<svg"), "{}", path.display());
            first.push(svg);
        }
        assert!(paths[0].ends_with("failover-cdf.svg"));
        assert!(paths[1].ends_with("energy.svg"));
        assert!(first[0].contains("multidriver (n=5)"));
        assert!(!first[0].contains("oracle"));
        assert!(first[1].contains("libp2p-stock"));
        assert!(first[1].contains("oracle"));
        write_plots(&report, &dir).unwrap();
        for (path, before) in paths.iter().zip(&first) {
            assert_eq!(&std::fs::read_to_string(path).unwrap(), before);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn empty_report_still_plots() {
        let dir = std::env::temp_dir().join(format!(
            "multidriver-sim-plot-empty-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let mut report = report();
        report.policies.clear();
        let paths = write_plots(&report, &dir).unwrap();
        for path in &paths {
            assert!(std::fs::read_to_string(path).unwrap().contains("<svg"));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unwritable_dir_is_a_plot_error() {
        let file = std::env::temp_dir().join(format!(
            "multidriver-sim-plot-file-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&file, "not a directory").unwrap();
        let err = write_plots(&report(), &file.join("sub")).unwrap_err();
        assert!(matches!(err, Error::Plot { .. }), "{err}");
        std::fs::remove_file(&file).unwrap();
    }
}
