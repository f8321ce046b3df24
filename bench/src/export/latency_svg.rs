//! `latency.svg`: each round-trip case's time with a p10–p90 bar, grouped by placement.
//!
//! `latency.svg`: one horizontal line per round-trip latency case, on a
//! logarithmic time axis:
//!
//! - a dot at the case's figure (the median of its round medians,
//!   [`LatencyResult::figure_ns`]; the pooled median for a report not yet
//!   analysed), filled for a receiver that spins, hollow for one that
//!   blocks (sleeps), and the variant named in the case's label;
//! - a bar from its p10 to its p90 round-trip time;
//! - the cases grouped by placement (`pin=same`, then `pin=split`, then
//!   `pin=none`), each group under a heading, in table order within it;
//! - each transport in its colour of `throughput.svg`.
//!
//! A case whose figure is 0 or not finite has no place on a log axis and is
//! left out; no cases give empty axes.

use plotters::prelude::*;

use super::order::sorted_latency;
use super::svg::{color, finite, no_results, SIZE};
use super::{Exporter, RenderError};
use crate::case::Pin;
use crate::report::{LatencyResult, Report};
use crate::units::{human_bytes, human_ns};

/// The exporter of `latency.svg`.
pub struct LatencySvg;

impl Exporter for LatencySvg {
    fn file_name(&self) -> &'static str {
        "latency.svg"
    }

    fn render(&self, report: &Report) -> Result<String, RenderError> {
        to_latency_svg(report)
    }
}

/// Room kept right of the plotting area for the legend, in SVG pixels.
const LEGEND_WIDTH: u32 = 190;

/// One line of the plot, top to bottom: a placement's heading or a case.
enum Slot<'a> {
    Group(Pin),
    Case(&'a LatencyResult),
}

/// Whether a case's receiver spins (busy-polls) rather than sleeping.
fn spins(l: &LatencyResult) -> bool {
    l.variant == "spin"
}

/// The heading of a placement's group.
fn heading(pin: Pin) -> String {
    let place = match pin {
        Pin::Same => "same CPU",
        Pin::Split => "two CPUs",
        Pin::None => "unpinned",
    };
    format!("pin={pin} ({place}):")
}

/// A case's label: transport and variant, and its size when not 64 B.
fn label(l: &LatencyResult) -> String {
    let mut label = format!("{} · {}", l.transport, l.variant);
    if l.bytes != 64 {
        label = format!("{label} · {}", human_bytes(l.bytes));
    }
    label
}

/// The lines to draw, grouped by placement, each group after its heading.
fn slots(report: &Report) -> Vec<Slot<'_>> {
    let mut cases: Vec<&LatencyResult> = sorted_latency(&report.latency)
        .into_iter()
        .filter(|l| finite(l.figure_ns()) > 0.0)
        .collect();
    cases.sort_by_key(|l| l.pin);
    let mut slots = Vec::new();
    for l in cases {
        if !matches!(slots.last(), Some(Slot::Case(prev)) if prev.pin == l.pin) {
            slots.push(Slot::Group(l.pin));
        }
        slots.push(Slot::Case(l));
    }
    slots
}

/// The caption of the plot, naming the sizes of `report`'s cases.
pub fn caption(report: &Report) -> String {
    let mut sizes: Vec<u64> = report.latency.iter().map(|l| l.bytes).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let sizes: Vec<String> = sizes.into_iter().map(human_bytes).collect();
    if sizes.is_empty() {
        "Round-trip latency".to_string()
    } else {
        format!("Round-trip latency ({})", sizes.join(", "))
    }
}

/// Ticks of a log time axis from `lo` to `hi` ns: 1, 2 and 5 times each
/// power of ten in between.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    let mut decade = 10f64.powi(lo.log10().floor() as i32);
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let t = decade * m;
            if (lo..=hi).contains(&t) {
                ticks.push(t);
            }
        }
        decade *= 10.0;
    }
    ticks
}

/// `latency.svg` for `report`, as SVG text.
///
/// # Errors
///
/// [`RenderError::Plot`] when plotters fails to draw (it should not for any
/// report; all values are checked to be finite first).
pub fn to_latency_svg(report: &Report) -> Result<String, RenderError> {
    let slots = slots(report);
    let times = slots.iter().flat_map(|s| match s {
        Slot::Case(l) => vec![finite(l.figure_ns()), finite(l.p10_ns), finite(l.p90_ns)],
        Slot::Group(_) => vec![],
    });
    let (lo, hi) = times
        .filter(|&t| t > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), t| {
            (lo.min(t), hi.max(t))
        });
    let (x_lo, x_hi) = if hi > 0.0 {
        (lo / 1.5, hi * 1.5)
    } else {
        (100.0, 100_000.0)
    };
    let mut svg = String::new();
    draw(&mut svg, &caption(report), &slots, (x_lo, x_hi))
        .map_err(|e| RenderError::Plot(e.to_string()))?;
    Ok(svg)
}

fn draw(
    svg: &mut String,
    caption: &str,
    slots: &[Slot],
    (x_lo, x_hi): (f64, f64),
) -> Result<(), Box<dyn std::error::Error>> {
    let n = slots.len().max(1) as i32;
    // The first slot at the top.
    let y = |i: usize| n - 1 - i as i32;
    let labels: Vec<String> = slots
        .iter()
        .map(|s| match s {
            Slot::Group(pin) => heading(*pin),
            Slot::Case(l) => label(l),
        })
        .collect();
    let label_of = |v: &i32| {
        usize::try_from(n - 1 - v)
            .ok()
            .and_then(|i| labels.get(i).cloned())
            .unwrap_or_default()
    };

    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 22))
        .margin(20)
        .margin_right(LEGEND_WIDTH + 20)
        .x_label_area_size(50)
        .y_label_area_size(190)
        .build_cartesian_2d(
            (x_lo..x_hi).log_scale().with_key_points(ticks(x_lo, x_hi)),
            (-1..n).with_key_points((0..slots.len()).map(y).collect()),
        )?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc("round-trip time (log scale)")
        .x_label_formatter(&|x| human_ns(*x))
        .y_label_formatter(&label_of)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;

    for (i, slot) in slots.iter().enumerate() {
        let Slot::Case(l) = slot else { continue };
        let color = color(l.transport);
        let (p10, p90) = (finite(l.p10_ns), finite(l.p90_ns));
        // The p10–p90 bar: the spread of single round trips.
        if p10 > 0.0 && p90 > 0.0 {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(p10, y(i)), (p90, y(i))],
                color.mix(0.6).stroke_width(3),
            )))?;
        }
        let style = if spins(l) {
            color.filled()
        } else {
            color.stroke_width(2)
        };
        chart.draw_series(std::iter::once(Circle::new(
            (l.figure_ns(), y(i)),
            5,
            style,
        )))?;
    }

    if slots.is_empty() {
        no_results(&root, "no latency results")?;
    }

    // The legend, right of the plotting area.
    let x = (SIZE.0 - LEGEND_WIDTH) as i32;
    let grey = RGBColor(0x55, 0x55, 0x55);
    let entries = [(true, "spin (busy-polls)"), (false, "blocking (sleeps)")];
    for (k, (filled, text)) in entries.into_iter().enumerate() {
        let y = 70 + 22 * k as i32;
        let style = if filled {
            grey.filled()
        } else {
            grey.stroke_width(2)
        };
        root.draw(&Circle::new((x + 10, y), 5, style))?;
        root.draw(&Text::new(text, (x + 24, y - 7), ("sans-serif", 14)))?;
    }
    let y = 70 + 22 * entries.len() as i32;
    root.draw(&PathElement::new(
        vec![(x, y), (x + 21, y)],
        grey.mix(0.6).stroke_width(3),
    ))?;
    root.draw(&Text::new("p10–p90", (x + 28, y - 7), ("sans-serif", 14)))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::svg::texts;
    use super::*;
    use crate::bootstrap::Interval;
    use crate::case::Channel;
    use crate::testdata;

    /// The test report's two latency cases (unix blocking, shm spin, both
    /// split) plus tcp blocking and shm blocking on one CPU.
    fn report() -> Report {
        let mut report = testdata::report();
        for (transport, base) in [(Channel::Tcp, 30_000), (Channel::Shm, 4_000)] {
            report.latency.push(
                LatencyResult::from_samples(
                    transport,
                    Pin::Same,
                    64,
                    "blocking",
                    (1..=100).map(|x| base + 10 * x).collect(),
                )
                .unwrap(),
            );
        }
        report
    }

    /// The `<polyline>` elements drawn as p10–p90 bars (3 px wide,
    /// translucent); the legend's sample is one of them.
    fn bars(svg: &str) -> Vec<&str> {
        svg.lines()
            .filter(|l| {
                l.starts_with("<polyline")
                    && l.contains("stroke-width=\"3\"")
                    && l.contains("opacity=\"0.6\"")
            })
            .collect()
    }

    #[test]
    fn one_bar_per_case_on_a_log_axis_grouped_by_placement() {
        let report = report();
        let dir = tempfile::tempdir().unwrap();
        let paths = crate::export::write_all(&report, dir.path()).unwrap();
        let path = dir.path().join("latency.svg");
        assert!(paths.contains(&path));
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));

        assert_eq!(bars(&svg).len(), report.latency.len() + 1, "{svg}");
        let texts = texts(&svg);
        let has = |s: &str| texts.iter().any(|t| t == s);
        assert!(has("Round-trip latency (64 B)"));
        assert!(has("round-trip time (log scale)"));
        // Log ticks: 1, 2 and 5 times powers of ten, across three decades.
        for t in ["200 ns", "500 ns", "1.00 µs", "10.0 µs", "20.0 µs"] {
            assert!(has(t), "no tick {t}: {texts:?}");
        }
        for t in [
            "unix · blocking",
            "shm · spin",
            "tcp · blocking",
            "shm · blocking",
        ] {
            assert!(has(t), "no label {t}: {texts:?}");
        }
        assert!(has("spin (busy-polls)") && has("blocking (sleeps)"));

        // pin=same first, each group under its heading, then its cases in
        // table order; top to bottom.
        let lines: Vec<String> = slots(&report)
            .iter()
            .map(|s| match s {
                Slot::Group(pin) => heading(*pin),
                Slot::Case(l) => label(l),
            })
            .collect();
        assert_eq!(
            lines,
            [
                "pin=same (same CPU):",
                "shm · blocking",
                "tcp · blocking",
                "pin=split (two CPUs):",
                "shm · spin",
                "unix · blocking",
            ]
        );
        // The same lines label the y axis, top to bottom.
        let y_of = |text: &str| -> f64 {
            let at = svg.find(&format!("\n{text}\n</text>")).unwrap();
            let element = &svg[svg[..at].rfind("<text").unwrap()..at];
            let y = element.split(" y=\"").nth(1).unwrap();
            y[..y.find('"').unwrap()].parse().unwrap()
        };
        let ys: Vec<f64> = lines.iter().map(|l| y_of(l)).collect();
        assert!(ys.windows(2).all(|w| w[0] < w[1]), "{ys:?}");
    }

    #[test]
    fn the_figure_is_the_median_of_round_medians_when_analysed() {
        let mut report = report();
        report.latency.truncate(1);
        report.latency[0].round_median_ns = Some(123_456.0);
        report.latency[0].ci95 = Some(Interval {
            lo: 120_000.0,
            hi: 130_000.0,
        });
        let svg = to_latency_svg(&report).unwrap();
        // The axis reaches the figure, far beyond the samples (9–10 µs).
        assert!(texts(&svg).iter().any(|t| t == "100 µs"), "{svg}");
        report.latency[0].round_median_ns = None;
        let svg = to_latency_svg(&report).unwrap();
        assert!(!texts(&svg).iter().any(|t| t == "100 µs"), "{svg}");
    }

    #[test]
    fn no_cases_give_empty_axes() {
        let mut report = report();
        report.latency.clear();
        let svg = to_latency_svg(&report).unwrap();
        assert!(texts(&svg).iter().any(|t| t == "no latency results"));
        assert!(bars(&svg).len() == 1);

        let mut zero = self::report();
        for l in &mut zero.latency {
            l.median_ns = 0.0;
        }
        zero.latency[0].median_ns = f64::NAN;
        assert_eq!(bars(&to_latency_svg(&zero).unwrap()).len(), 1);
    }
}
