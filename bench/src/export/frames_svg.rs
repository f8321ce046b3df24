//! `frames.svg`: frames a second against the number of readers, one line per transport and frame size.
//!
//! Frames a second (the figure of each frame row under `every`, as fast as
//! possible; log scale) against the readers of the stream (1 and 3), one
//! line per transport (colours as in `throughput.svg`) and frame size (the
//! smallest size thick, larger ones thinner), with a bar from the low to
//! the high end of each point's 95 % interval, and each size's memcpy-bound
//! frame rate dashed. The legend stands right of the plotting area.

use plotters::prelude::*;
use plotters::series::DashedLineSeries;

use super::svg::{color, finite, no_results, SIZE};
use super::{Exporter, RenderError};
use crate::case::Channel;
use crate::frames::{FrameResult, FrameSize, Variant, READERS};
use crate::report::Report;

/// The exporter of `frames.svg`.
pub struct FramesSvg;

impl Exporter for FramesSvg {
    fn file_name(&self) -> &'static str {
        "frames.svg"
    }

    fn render(&self, report: &Report) -> Result<String, RenderError> {
        to_frames_svg(report)
    }
}

const LEGEND_WIDTH: u32 = 210;

struct Line {
    label: String,
    color: RGBColor,
    width: u32,
    ceiling: bool,
    points: Vec<(f64, f64)>,
    bars: Vec<(f64, f64, f64)>,
}

fn lines(report: &Report) -> Vec<Line> {
    let mut sizes: Vec<FrameSize> = report.frames.iter().map(FrameResult::size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let (lo, hi) = (
        *READERS.first().unwrap_or(&1) as f64,
        *READERS.last().unwrap_or(&3) as f64,
    );
    let mut out = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let width = if i == 0 { 2 } else { 1 };
        if let Some(c) = report.frame_ceilings.iter().find(|c| c.size() == size) {
            if finite(c.memcpy_fps) > 0.0 {
                out.push(Line {
                    label: format!("memcpy-bound {size}"),
                    color: color(Channel::Memcpy),
                    width,
                    ceiling: true,
                    points: vec![(lo, c.memcpy_fps), (hi, c.memcpy_fps)],
                    bars: Vec::new(),
                });
            }
        }
        // The ring's readers block, as the sockets' do; with iceoryx2 (whose
        // subscribers poll) the run adds the ring with spinning readers.
        for (t, wait) in [
            (Channel::Shm, "block"),
            (Channel::Shm, "spin"),
            (Channel::Unix, "block"),
            (Channel::Tcp, "block"),
            (Channel::Iceoryx2, "spin"),
        ] {
            let mut rows: Vec<&FrameResult> = report
                .frames
                .iter()
                .filter(|f| {
                    f.size() == size
                        && f.transport == t.as_str()
                        && f.wait == wait
                        && f.policy == "every"
                        && f.variant == Variant::Max
                        && finite(f.fps) > 0.0
                })
                .collect();
            rows.sort_by_key(|f| f.consumers);
            if rows.is_empty() {
                continue;
            }
            let spinning = if t == Channel::Shm && wait == "spin" {
                " spin"
            } else {
                ""
            };
            out.push(Line {
                label: format!("{t}{spinning} {size}"),
                color: color(t),
                width,
                ceiling: false,
                points: rows.iter().map(|f| (f.consumers as f64, f.fps)).collect(),
                bars: rows
                    .iter()
                    .filter_map(|f| {
                        let ci = f.ci95?;
                        (finite(ci.lo) > 0.0 && finite(ci.hi) > 0.0).then_some((
                            f.consumers as f64,
                            ci.lo,
                            ci.hi,
                        ))
                    })
                    .collect(),
            });
        }
    }
    out
}

/// `frames.svg` for `report`, as SVG text (empty axes without frame rows).
///
/// # Errors
/// [`RenderError::Plot`] when plotters fails to draw.
pub fn to_frames_svg(report: &Report) -> Result<String, RenderError> {
    let lines = lines(report);
    let (y_lo, y_hi) = super::svg::log_range(
        lines.iter().flat_map(|l| {
            l.points
                .iter()
                .map(|p| p.1)
                .chain(l.bars.iter().flat_map(|b| [b.1, b.2]))
        }),
        (1.0, 10_000.0),
    );
    let pin = report
        .frames
        .first()
        .map_or("split".to_string(), |f| f.pin.to_string());
    let mut svg = String::new();
    draw(&mut svg, &pin, &lines, (y_lo, y_hi)).map_err(|e| RenderError::Plot(e.to_string()))?;
    Ok(svg)
}

fn draw(
    svg: &mut String,
    pin: &str,
    lines: &[Line],
    (y_lo, y_hi): (f64, f64),
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Frames a second by readers (every reader gets every frame, pin={pin})"),
            ("sans-serif", 20),
        )
        .margin(20)
        .margin_right(LEGEND_WIDTH + 20)
        .x_label_area_size(50)
        .y_label_area_size(65)
        .build_cartesian_2d(0.5f64..3.5f64, (y_lo..y_hi).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("readers (consumer processes)")
        .y_desc("frames a second (log scale)")
        .x_labels(7)
        .x_label_formatter(&|x| {
            if (x.round() - x).abs() < 1e-9 && x.round() >= 1.0 {
                format!("{}", x.round() as u32)
            } else {
                String::new()
            }
        })
        // "100", not "100.0": frame rates are whole numbers at these scales.
        .y_label_formatter(&|y| format!("{}", (y * 100.0).round() / 100.0))
        .y_max_light_lines(1)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;
    for line in lines {
        let color = line.color;
        chart.draw_series(line.bars.iter().map(|&(x, lo, hi)| {
            PathElement::new(vec![(x, lo), (x, hi)], color.mix(0.6).stroke_width(1))
        }))?;
        if line.ceiling {
            chart.draw_series(DashedLineSeries::new(
                line.points.iter().copied(),
                10,
                6,
                color.stroke_width(line.width),
            ))?;
        } else {
            chart.draw_series(
                LineSeries::new(line.points.iter().copied(), color.stroke_width(line.width))
                    .point_size(line.width + 1),
            )?;
        }
    }
    if lines.is_empty() {
        no_results(&root, "no frame rows")?;
    }
    let x = (SIZE.0 - LEGEND_WIDTH) as i32;
    for (i, line) in lines.iter().enumerate() {
        let y = 70 + 22 * i as i32;
        let style = line.color.stroke_width(line.width);
        if line.ceiling {
            for x0 in [x, x + 12] {
                root.draw(&PathElement::new(vec![(x0, y), (x0 + 7, y)], style))?;
            }
        } else {
            root.draw(&PathElement::new(vec![(x, y), (x + 21, y)], style))?;
        }
        root.draw(&Text::new(
            line.label.clone(),
            (x + 28, y - 7),
            ("sans-serif", 14),
        ))?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plot_has_a_line_per_transport_and_says_when_empty() {
        let svg = to_frames_svg(&super::super::frames::tests::report()).unwrap();
        let texts = super::super::svg::texts(&svg);
        assert!(texts.iter().any(|t| t == "shm 1920×1080"), "{texts:?}");
        assert!(texts.iter().any(|t| t == "unix 1920×1080"), "{texts:?}");
        assert!(texts.iter().any(|t| t.starts_with("readers")), "{texts:?}");
        // The log axis labels its decades as whole numbers.
        assert!(texts.iter().any(|t| t == "1000"), "{texts:?}");
        assert!(!texts.iter().any(|t| t.ends_with(".0")), "{texts:?}");
        // An iceoryx2 row (a run with --peers) gets its own line.
        let mut with_iceoryx2 = super::super::frames::tests::report();
        let mut row = with_iceoryx2.frames[0].clone();
        row.transport = Channel::Iceoryx2.as_str().to_string();
        row.wait = "spin".into();
        let mut spinning_shm = with_iceoryx2.frames[0].clone();
        spinning_shm.wait = "spin".into();
        with_iceoryx2.frames.push(row);
        with_iceoryx2.frames.push(spinning_shm);
        let texts = super::super::svg::texts(&to_frames_svg(&with_iceoryx2).unwrap());
        assert!(texts.iter().any(|t| t == "iceoryx2 1920×1080"), "{texts:?}");
        // ... and the ring's spinning readers, beside it, their own.
        assert!(texts.iter().any(|t| t == "shm spin 1920×1080"), "{texts:?}");
        assert!(texts.iter().any(|t| t == "shm 1920×1080"), "{texts:?}");
        let empty = to_frames_svg(&Report::new(crate::testdata::machine())).unwrap();
        assert!(super::super::svg::texts(&empty)
            .iter()
            .any(|t| t == "no frame rows"));
    }
}
