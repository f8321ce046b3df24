//! `throughput.svg`: median GB/s against payload size, one line per transport.
//!
//! `throughput.svg`: each row's figure in GB/s (bytes / the median of its
//! round medians) against payload size, on log–log axes, one line per
//! transport, with a p10–p90 bar at every point and the two one-copy
//! ceilings dashed: memcpy (long dashes) and memcpy-nt,
//! the copy with non-temporal stores (short dashes, grey).
//!
//! - Both axes are logarithmic, the x axis with a labelled tick ("4 KiB" ...
//!   "256 MiB") at every size measured, so that rows below 1 MiB do not sit
//!   on zero; a point of 0 GB/s is left out.
//! - A thin vertical bar at every point spans the GB/s of the p90 and p10
//!   transfer times.
//! - Steady-state rows are thick lines with dots; cold rows (a fresh segment
//!   or connection per transfer), where measured, are thin lines of the same
//!   colour labelled "(cold)".
//! - One pinning is plotted ([`Report::plotted_pin`]): `split` when measured,
//!   otherwise the pinning with the most rows; the caption names it. memcpy rows of that pinning are
//!   preferred for the ceiling, but any memcpy row of a size will do.
//! - The legend stands right of the plotting area, where no line can hide it.
//! - The `[std]` and `[nt]` rows, measured at a few sizes to compare the two
//!   copies, are left to the tables.
//! - A transport that lacks some sizes is drawn through the sizes it has; a
//!   single size gives dots without lines; no results give empty axes.
//!
//! Text is written into the SVG as `<text>` elements, so no fonts are needed
//! to draw it. The dashes of the memcpy line are separate short `<polyline>`
//! segments (plotters' SVG backend has no dash attribute), and so are those of
//! memcpy-nt.

use std::collections::BTreeMap;

use plotters::prelude::*;
use plotters::series::DashedLineSeries;

use super::{Exporter, RenderError};
use crate::case::{Channel, Mode, Pin};
use crate::report::{CaseResult, Report};
use crate::units::human_bytes;

/// The exporter of `throughput.svg`.
pub struct Svg;

impl Exporter for Svg {
    fn file_name(&self) -> &'static str {
        "throughput.svg"
    }

    fn render(&self, report: &Report) -> Result<String, RenderError> {
        to_svg(report)
    }
}

/// Width and height of the plot, in SVG pixels.
pub const SIZE: (u32, u32) = (960, 600);

/// Room kept right of the plotting area for the legend, in SVG pixels.
const LEGEND_WIDTH: u32 = 170;

/// The caption for a plot of pinning `pin`.
pub fn caption(pin: Pin) -> String {
    format!("Throughput by payload size (median, steady state, pin={pin})")
}

/// The colour of a transport's line (and of its latency bar in
/// `latency.svg`); fixed so plots of different runs can be compared at a
/// glance.
pub(super) fn color(transport: Channel) -> RGBColor {
    match transport {
        Channel::Memcpy => RGBColor(0x33, 0x33, 0x33),
        Channel::MemcpyNt => RGBColor(0x99, 0x99, 0x99),
        Channel::Shm | Channel::ShmStd | Channel::ShmNt => RGBColor(0x1f, 0x77, 0xb4),
        Channel::ShmPipelined | Channel::ShmPipelinedStd | Channel::ShmPipelinedNt => {
            RGBColor(0x17, 0xbe, 0xcf)
        }
        Channel::Memfd => RGBColor(0x8c, 0x56, 0x4b),
        Channel::Unix | Channel::UnixStream => RGBColor(0xff, 0x7f, 0x0e),
        Channel::Tcp | Channel::TcpStream => RGBColor(0xd6, 0x27, 0x28),
        Channel::PythonShm => RGBColor(0x2c, 0xa0, 0x2c),
        Channel::PythonArray => RGBColor(0xbc, 0xbd, 0x22),
        Channel::Iceoryx2 => RGBColor(0x94, 0x67, 0xbd),
    }
}

/// One line of the plot: (bytes, GB/s) points in size order, and at each
/// the p10–p90 bar (bytes, GB/s at p90, GB/s at p10).
struct Line {
    transport: Channel,
    mode: Mode,
    points: Vec<(f64, f64)>,
    bars: Vec<(f64, f64, f64)>,
}

/// The lines to draw, the ceilings first, each transport's steady line
/// before its cold one.
fn lines(report: &Report, pin: Pin) -> Vec<Line> {
    let mut lines = Vec::new();
    for &transport in Channel::ALL {
        if transport.forced_copy().is_some() {
            continue;
        }
        for &mode in Mode::ALL {
            let rows: Vec<&CaseResult> = report
                .results
                .iter()
                .filter(|r| r.transport == transport && r.mode == mode && r.bytes > 0)
                .collect();
            // Ceilings: prefer the plotted pinning, accept any; others: only it.
            let ceiling = transport.is_ceiling();
            let mut by_size: BTreeMap<u64, &CaseResult> = BTreeMap::new();
            for r in rows {
                let better = match by_size.get(&r.bytes) {
                    None => ceiling || r.pin == pin,
                    Some(old) => ceiling && old.pin != pin && r.pin == pin,
                };
                if better {
                    by_size.insert(r.bytes, r);
                }
            }
            if ceiling && mode == Mode::Cold {
                // The ceiling is the steady line alone (a cold one is still
                // drawn if it is the only one there is).
                if lines.iter().any(|l: &Line| l.transport == transport) {
                    continue;
                }
            }
            // A log axis has no place for 0: such points are left out.
            let plotted: Vec<&CaseResult> = by_size
                .into_values()
                .filter(|r| finite(r.gbps) > 0.0)
                .collect();
            if !plotted.is_empty() {
                lines.push(Line {
                    transport,
                    mode,
                    points: plotted.iter().map(|r| (r.bytes as f64, r.gbps)).collect(),
                    bars: plotted
                        .iter()
                        .map(|r| {
                            let gbps = |ns: f64| finite(crate::stats::gbps(r.bytes, ns));
                            (r.bytes as f64, gbps(r.p90_ns), gbps(r.p10_ns))
                        })
                        .filter(|&(_, lo, hi)| lo > 0.0 && hi > 0.0)
                        .collect(),
                });
            }
        }
    }
    lines
}

/// `throughput.svg` for `report`, as SVG text.
///
/// # Errors
///
/// [`RenderError::Plot`] when plotters fails to draw (it should not for any
/// report; all values are checked to be finite first).
pub fn to_svg(report: &Report) -> Result<String, RenderError> {
    let pin = report.plotted_pin();
    let lines = lines(report, pin);

    let mut sizes: Vec<f64> = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .collect();
    sizes.sort_by(f64::total_cmp);
    sizes.dedup();
    let (x_lo, x_hi) = match (sizes.first(), sizes.last()) {
        (Some(&lo), Some(&hi)) => (lo / 1.6, hi * 1.6),
        _ => (4096.0 / 1.6, 268_435_456.0 * 1.6),
    };
    let (y_lo, y_hi) = log_range(
        lines.iter().flat_map(|l| {
            l.points
                .iter()
                .map(|p| p.1)
                .chain(l.bars.iter().flat_map(|b| [b.1, b.2]))
        }),
        (0.01, 100.0),
    );

    let mut svg = String::new();
    draw(&mut svg, pin, &lines, sizes, (x_lo, x_hi), (y_lo, y_hi))
        .map_err(|e| RenderError::Plot(e.to_string()))?;
    Ok(svg)
}

fn draw(
    svg: &mut String,
    pin: Pin,
    lines: &[Line],
    sizes: Vec<f64>,
    (x_lo, x_hi): (f64, f64),
    (y_lo, y_hi): (f64, f64),
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption(pin), ("sans-serif", 22))
        .margin(20)
        .margin_right(LEGEND_WIDTH + 20)
        .x_label_area_size(50)
        .y_label_area_size(65)
        .build_cartesian_2d(
            (x_lo..x_hi).log_scale().with_key_points(sizes),
            (y_lo..y_hi).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("payload size (log scale)")
        .y_desc("throughput, GB/s (10^9 bytes/s; log scale)")
        .x_label_formatter(&|x| human_bytes(x.round() as u64))
        .y_max_light_lines(1)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;

    for line in lines {
        let color = color(line.transport);
        // The p10–p90 bars: the spread of single transfers at each size.
        chart.draw_series(line.bars.iter().map(|&(x, lo, hi)| {
            PathElement::new(vec![(x, lo), (x, hi)], color.mix(0.6).stroke_width(1))
        }))?;
        if line.transport.is_ceiling() {
            let style = color.stroke_width(2);
            let (dash, gap) = dashes(line.transport);
            chart.draw_series(DashedLineSeries::new(
                line.points.iter().copied(),
                dash,
                gap,
                style,
            ))?;
            chart.draw_series(
                line.points
                    .iter()
                    .map(|&p| Circle::new(p, 3, color.filled())),
            )?;
        } else {
            let (width, dot) = match line.mode {
                Mode::Steady => (2, 3),
                Mode::Cold => (1, 2),
            };
            chart.draw_series(
                LineSeries::new(line.points.iter().copied(), color.stroke_width(width))
                    .point_size(dot),
            )?;
        }
    }

    if lines.is_empty() {
        no_results(&root, "no throughput results")?;
    }

    // The legend, right of the plotting area where no line can hide it.
    let x = (SIZE.0 - LEGEND_WIDTH) as i32;
    for (i, line) in lines.iter().enumerate() {
        let y = 70 + 22 * i as i32;
        let color = color(line.transport);
        let label = match (line.transport.is_ceiling(), line.mode) {
            (true, _) => format!("{} (ceiling)", line.transport),
            (_, Mode::Steady) => line.transport.to_string(),
            (_, Mode::Cold) => format!("{} (cold)", line.transport),
        };
        if line.transport.is_ceiling() {
            let style = color.stroke_width(2);
            let (dash, gap) = dashes(line.transport);
            let (dash, gap) = ((dash / 2) as i32, (gap / 2) as i32);
            let mut x0 = x;
            while x0 < x + 21 {
                let x1 = (x0 + dash).min(x + 21);
                root.draw(&PathElement::new(vec![(x0, y), (x1, y)], style))?;
                x0 = x1 + gap;
            }
        } else {
            let width = if line.mode == Mode::Steady { 2 } else { 1 };
            root.draw(&PathElement::new(
                vec![(x, y), (x + 21, y)],
                color.stroke_width(width),
            ))?;
        }
        root.draw(&Text::new(label, (x + 28, y - 7), ("sans-serif", 14)))?;
    }
    root.present()?;
    Ok(())
}

/// Writes `text` in the middle of an empty plot.
pub(super) fn no_results(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    text: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    root.draw(&Text::new(
        text.to_string(),
        (SIZE.0 as i32 / 2 - 90, SIZE.1 as i32 / 2),
        ("sans-serif", 18),
    ))?;
    Ok(())
}

/// The trimmed contents of every `<text>` element of `svg`.
/// The range of a log axis over `values`: from the smallest positive value
/// / 1.5 to the largest × 1.5, or `fallback` when there is none.
pub(super) fn log_range(
    values: impl Iterator<Item = f64> + Clone,
    fallback: (f64, f64),
) -> (f64, f64) {
    let max = values.clone().fold(0.0, f64::max);
    let min = values.filter(|&y| y > 0.0).fold(f64::INFINITY, f64::min);
    if max > 0.0 && min.is_finite() {
        (min / 1.5, max * 1.5)
    } else {
        fallback
    }
}

#[cfg(test)]
pub(super) fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let (_, rest) = t.split_once('>')?;
            let (inner, _) = rest.split_once("</text>")?;
            Some(inner.trim().to_string())
        })
        .collect()
}

/// Dash and gap lengths of a ceiling's line, in pixels: long dashes for
/// memcpy, short ones for memcpy-nt.
fn dashes(transport: Channel) -> (u32, u32) {
    match transport {
        Channel::MemcpyNt => (4, 4),
        _ => (10, 6),
    }
}

/// `v` when it is finite and positive (a point a log axis can show), else 0.
pub(super) fn finite(v: f64) -> f64 {
    if v.is_finite() && v > 0.0 {
        v
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{self, row, KIB4, MIB8};

    #[test]
    fn svg_has_caption_axes_legend_and_a_dashed_ceiling() {
        let mut report = testdata::report();
        for t in [
            Channel::ShmPipelined,
            Channel::Memfd,
            Channel::PythonShm,
            Channel::PythonArray,
            Channel::Iceoryx2,
            Channel::ShmNt,
            Channel::ShmPipelinedStd,
            Channel::UnixStream,
            Channel::TcpStream,
        ] {
            report
                .results
                .push(row(t, Mode::Steady, Pin::Split, MIB8, 1.0));
        }
        for (bytes, gbps) in [(KIB4, 4.0), (MIB8, 12.0)] {
            report
                .results
                .push(row(Channel::MemcpyNt, Mode::Steady, Pin::None, bytes, gbps));
        }
        let dir = tempfile::tempdir().unwrap();
        let paths = crate::export::write_all(&report, dir.path()).unwrap();
        let path = dir.path().join("throughput.svg");
        assert!(paths.contains(&path));
        let svg = std::fs::read_to_string(&path).unwrap();

        assert!(svg.starts_with("<svg"));
        let texts = texts(&svg);
        let has = |s: &str| texts.iter().any(|t| t == s);
        assert!(has(
            "Throughput by payload size (median, steady state, pin=split)"
        ));
        assert!(has("payload size (log scale)"));
        assert!(has("4 KiB") && has("8 MiB"));
        assert!(has("memcpy (ceiling)"));
        assert!(has("memcpy-nt (ceiling)"));
        assert!(has("shm (cold)"));
        for t in Channel::ALL.iter().filter(|t| !t.is_ceiling()) {
            // The [std] and [nt] rows are left to the tables.
            let drawn = t.forced_copy().is_none();
            assert_eq!(has(t.as_str()), drawn, "{t} in the legend: {}", !drawn);
        }
        // Both ceilings are drawn as separate dashes in their colours: many
        // short polylines (plus a few in the legend), memcpy-nt's shorter.
        for (color, what) in [("#333333", "memcpy"), ("#999999", "memcpy-nt")] {
            let dashes = svg
                .lines()
                .filter(|l| {
                    l.starts_with("<polyline") && l.contains(&format!("stroke=\"{color}\""))
                })
                .count();
            assert!(dashes >= 10, "only {dashes} {what} dashes");
        }
    }

    #[test]
    fn a_single_size_gives_dots() {
        let mut report = testdata::report();
        report.results.retain(|r| r.bytes == KIB4);
        let svg = to_svg(&report).unwrap();
        let texts = texts(&svg);
        assert!(texts.iter().any(|t| t == "4 KiB"));
        assert!(!texts.iter().any(|t| t == "8 MiB"));
        assert!(svg.contains("<circle"));
    }

    #[test]
    fn empty_and_zero_reports_still_draw_axes() {
        let empty = Report::new(testdata::machine());
        let svg = to_svg(&empty).unwrap();
        assert!(svg.contains(&caption(Pin::Split)));
        assert!(!texts(&svg).iter().any(|t| t == "memcpy (ceiling)"));

        let mut zero = testdata::report();
        for r in &mut zero.results {
            r.gbps = 0.0;
        }
        zero.results[0].gbps = f64::NAN;
        assert!(to_svg(&zero).unwrap().contains("<svg"));
    }

    #[test]
    fn the_plotted_pin_prefers_split_then_the_most_common() {
        let mut report = testdata::report();
        assert_eq!(report.plotted_pin(), Pin::Split);
        report.results.retain(|r| r.transport == Channel::Memcpy);
        report
            .results
            .push(row(Channel::Shm, Mode::Steady, Pin::Same, MIB8, 5.0));
        assert_eq!(report.plotted_pin(), Pin::Same);
        assert!(to_svg(&report).unwrap().contains(&caption(Pin::Same)));
    }

    #[test]
    fn the_y_axis_is_logarithmic_with_p10_p90_bars() {
        let report = testdata::report();
        let lines = lines(&report, Pin::Split);
        let shm = lines
            .iter()
            .find(|l| l.transport == Channel::Shm && l.mode == Mode::Steady)
            .unwrap();
        // shm at 8 MiB: 6 GB/s, its samples ±5 %: the bar spans about
        // 5.7 to 6.3 GB/s around the point.
        let &(x, lo, hi) = shm.bars.iter().find(|b| b.0 == MIB8 as f64).unwrap();
        assert_eq!(x, MIB8 as f64);
        assert!(lo < 6.0 && hi > 6.0 && lo > 5.6 && hi < 6.4, "{lo} {hi}");
        let svg = to_svg(&report).unwrap();
        assert!(texts(&svg)
            .iter()
            .any(|t| t.contains("log scale)") && t.starts_with("throughput")));
        // Cold rows are labelled.
        assert!(texts(&svg).iter().any(|t| t == "shm (cold)"));
    }
}
