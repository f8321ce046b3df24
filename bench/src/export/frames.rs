//! The frame rows in `results.md` (a table per frame size) and in `frames.csv` (one line per row).
//!
//! Each frame size's table starts with its ceiling, the memcpy-bound frame
//! rate (1 / the faster copy of one frame), then every frame row: the
//! transport, policy, readers and variant, fps with its 95 % interval, the
//! producer's fps, × the ceiling, × unix (the unix row with as many readers,
//! the same policy, as fast as possible), publish-to-read latency, copies
//! per frame as the programs make them and as the kernel witnessed them,
//! and skipped frames.

use std::fmt::Write as _;

use super::csv::{csv_field, opt};
use super::{Exporter, RenderError};
use crate::frames::{FrameResult, FrameSize, Variant};
use crate::report::Report;
use crate::units::{human_ns, two_decimals};

/// The exporter of `frames.csv`.
pub struct FramesCsv;

impl Exporter for FramesCsv {
    fn file_name(&self) -> &'static str {
        "frames.csv"
    }

    fn render(&self, report: &Report) -> Result<String, RenderError> {
        Ok(to_frames_csv(report))
    }
}

/// The header line of each frame table in `results.md`.
pub const FRAMES_MARKDOWN_HEADER: &str = "| transport | policy | readers | variant | wait | fps | 95 % interval | producer fps | × memcpy-bound | × unix | latency p50 | latency p99 | copies/frame | witnessed | skipped |";

/// The header row of `frames.csv`.
pub const FRAMES_CSV_HEADER: &str =
    "transport,width,height,bytes,consumers,policy,variant,stopped,\
wait,pin,fps,ci95_lo,ci95_hi,producer_fps,latency_p50_us,latency_p99_us,memcpy_fps,x_memcpy,x_unix,\
copies,copies_witnessed,skipped,rounds";

/// The frame rows in table order: by size, then variant, readers, policy
/// and transport (shm, unix, tcp, then iceoryx2).
pub fn sorted_frames(frames: &[FrameResult]) -> Vec<&FrameResult> {
    let rank = |t: &str| match t {
        "shm" => 0,
        "unix" => 1,
        "tcp" => 2,
        _ => 3,
    };
    let mut v: Vec<&FrameResult> = frames.iter().collect();
    v.sort_by_key(|f| {
        (
            f.size(),
            f.variant != Variant::Max,
            f.policy != "every",
            f.variant,
            f.consumers,
            rank(&f.transport),
        )
    });
    v
}

/// `f`'s fps over the unix row with as many readers, the same policy, as
/// fast as possible; only for blocking readers, as the socket's are.
pub fn x_unix(frames: &[FrameResult], f: &FrameResult) -> Option<f64> {
    if f.variant != Variant::Max || f.wait != "block" {
        return None;
    }
    let unix = frames.iter().find(|u| {
        u.transport == "unix"
            && u.size() == f.size()
            && u.consumers == f.consumers
            && u.policy == f.policy
            && u.variant == Variant::Max
    })?;
    (unix.fps > 0.0).then(|| f.fps / unix.fps)
}

fn fps(x: f64) -> String {
    if !(x.is_finite() && x > 0.0) {
        "–".into()
    } else if x < 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

fn variant(f: &FrameResult) -> String {
    match f.variant {
        Variant::Max => "as fast as possible".into(),
        Variant::Stopped => "1 reader stopped".into(),
        Variant::Paced => format!("paced {} fps", f.pace_fps.unwrap_or(0.0)),
    }
}

/// The "## Frames" section of `results.md` (nothing without frame rows).
pub fn frames_markdown(md: &mut String, report: &Report) {
    if report.frames.is_empty() {
        return;
    }
    let pin = report.frames[0].pin;
    let _ = writeln!(
        md,
        "## Frames (producer --stream to consumer --stream, pin={pin})\n\n\
         fps: the slowest running reader's under `every`, the producer's under `latest` (median \
         over rounds); the ceiling is 1 / the faster copy of one frame in this run. Latency: \
         publish to the frame verified in the reader's hand (worst reader, median over rounds); \
         only the paced rows measure the hand-off rather than queueing.\n"
    );
    let mut sizes: Vec<FrameSize> = report.frames.iter().map(FrameResult::size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    for size in sizes {
        let _ = writeln!(
            md,
            "### {size} Rgb8 ({:.1} MB per frame)\n",
            size.bytes() as f64 / 1e6
        );
        md.push_str(FRAMES_MARKDOWN_HEADER);
        md.push_str(
            "\n|:---|:---|---:|:---|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        if let Some(c) = report.frame_ceilings.iter().find(|c| c.size() == size) {
            let _ = writeln!(
                md,
                "| memcpy-bound ({}) | – | – | ceiling | – | {} | {} | – | 1.00× | – | {} | – | 1 | – | – |",
                c.best_copy,
                fps(c.memcpy_fps),
                c.ci95
                    .map_or("–".into(), |i| format!("{}–{}", fps(i.lo), fps(i.hi))),
                human_ns(c.memcpy_ns),
            );
        }
        for f in sorted_frames(&report.frames)
            .into_iter()
            .filter(|f| f.size() == size)
        {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                f.transport,
                f.policy,
                f.consumers,
                variant(f),
                f.wait,
                fps(f.fps),
                f.ci95
                    .map_or("–".into(), |i| format!("{}–{}", fps(i.lo), fps(i.hi))),
                fps(f.producer_fps),
                if f.x_memcpy > 0.0 {
                    format!("{}×", two_decimals(f.x_memcpy))
                } else {
                    "–".into()
                },
                x_unix(&report.frames, f).map_or("–".into(), |x| format!("{}×", two_decimals(x))),
                human_ns(f.latency_us.p50 * 1e3),
                human_ns(f.latency_us.p99 * 1e3),
                two_decimals(f.copies),
                f.copies_witnessed.map_or("–".into(), two_decimals),
                f.skipped,
            );
        }
        md.push('\n');
    }
}

/// `frames.csv`: a header row ([`FRAMES_CSV_HEADER`]), then one row per
/// frame row in table order; missing values are empty fields.
pub fn to_frames_csv(report: &Report) -> String {
    let mut out = String::from(FRAMES_CSV_HEADER);
    out.push('\n');
    for f in sorted_frames(&report.frames) {
        let fields = [
            csv_field(&f.transport),
            f.width.to_string(),
            f.height.to_string(),
            f.bytes.to_string(),
            f.consumers.to_string(),
            csv_field(&f.policy),
            f.variant.as_str().to_string(),
            f.stopped.to_string(),
            csv_field(&f.wait),
            f.pin.as_str().to_string(),
            f.fps.to_string(),
            opt(f.ci95.map(|c| c.lo)),
            opt(f.ci95.map(|c| c.hi)),
            f.producer_fps.to_string(),
            f.latency_us.p50.to_string(),
            f.latency_us.p99.to_string(),
            f.memcpy_fps.to_string(),
            f.x_memcpy.to_string(),
            opt(x_unix(&report.frames, f)),
            f.copies.to_string(),
            opt(f.copies_witnessed),
            f.skipped.to_string(),
            f.rounds.len().to_string(),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::case::{Channel, Pin};
    use crate::frames::{FrameCase, FrameLatency, FrameRound, FULL_FRAME_SIZES};

    /// A report with a ceiling and shm and unix rows at 1080p.
    pub(crate) fn report() -> Report {
        let mut report = Report::new(crate::testdata::machine());
        let size = FULL_FRAME_SIZES[0];
        for (t, fps) in [(Channel::Shm, 2000.0), (Channel::Unix, 500.0)] {
            let case = FrameCase {
                transport: t,
                size,
                consumers: 1,
                policy: "every",
                variant: Variant::Max,
                spin: false,
                pin: Pin::Split,
            };
            let rounds = [0.95, 1.0, 1.05]
                .iter()
                .map(|k| FrameRound {
                    fps: fps * k,
                    producer_fps: fps * k,
                    reader_fps: vec![fps * k],
                    frames: 100,
                    latency_us: FrameLatency {
                        p50: 400.0,
                        p99: 900.0,
                    },
                    kernel_copies: Some(if t == Channel::Shm { 0.0 } else { 2.0 }),
                    ..FrameRound::default()
                })
                .collect();
            report
                .frames
                .push(FrameResult::from_rounds(&case, rounds, 4000.0));
        }
        report
    }

    #[test]
    fn frame_rows_go_into_the_markdown_and_the_csv() {
        let report = report();
        let mut md = String::new();
        frames_markdown(&mut md, &report);
        assert!(md.contains("### 1920×1080 Rgb8 (6.2 MB per frame)"), "{md}");
        assert!(md.contains(FRAMES_MARKDOWN_HEADER));
        assert!(
            md.contains("| shm | every | 1 | as fast as possible | block | 2000 | – | 2000 | 0.50× | 4.00× | 400 µs | 900 µs | 1.00 | 1.00 | 0 |"),
            "{md}"
        );
        let csv = to_frames_csv(&report);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], FRAMES_CSV_HEADER);
        assert_eq!(lines.len(), 3);
        assert!(lines[1].starts_with("shm,1920,1080,6220800,1,every,max,0,block,split,2000,"));
        assert!(lines[2].starts_with("unix,"), "{csv}");
        assert_eq!(
            lines[1].split(',').count(),
            FRAMES_CSV_HEADER.split(',').count()
        );
        let mut empty = String::new();
        frames_markdown(&mut empty, &Report::new(crate::testdata::machine()));
        assert!(empty.is_empty());
    }
}
