//! Frame streams: the rows of `producer --stream` and `consumer --stream` runs, their ceiling and their figures.
//!
//! A frame row is a stream of raw Rgb8 frames from one `producer --stream`
//! to one or more `consumer --stream` processes, over the shared-memory ring
//! or over a Unix or TCP socket, for a fixed time per round. Its figure is
//! frames per second; the ceiling is the memcpy-bound frame rate, one frame
//! per copy of its bytes (1 / the time of the best copy of one frame,
//! measured in the same run).
//!
//! A row's rounds are kept ([`FrameRound`]); its figures are medians over
//! rounds, and its fps interval a cluster bootstrap over rounds, each round
//! weighing alike (one value per round: the bootstrap draws rounds).
//!
//! The JSON key names of [`FrameResult`] (`transport`, `width`, `height`,
//! `consumers`, `policy`, `fps`, `latency_us` {`p50`, `p99`}, `memcpy_fps`)
//! are a stable interface for other tools.

use serde::{Deserialize, Serialize};

use crate::bootstrap::{self, Clusters, Interval};
use crate::case::{Channel, Pin};
use crate::report::CaseResult;
use common::error::{Error, Result};

/// The frame sizes of a full run: 1080p and 2160p.
pub const FULL_FRAME_SIZES: [FrameSize; 2] = [
    FrameSize {
        width: 1920,
        height: 1080,
    },
    FrameSize {
        width: 3840,
        height: 2160,
    },
];

/// The frame size of a quick run: 1080p.
pub const QUICK_FRAME_SIZES: [FrameSize; 1] = [FrameSize {
    width: 1920,
    height: 1080,
}];

/// The reader counts measured.
pub const READERS: [usize; 2] = [1, 3];

/// Frames a second of the paced latency rows.
pub const PACE_FPS: f64 = 30.0;

/// Bytes per Rgb8 pixel.
const RGB8: u64 = 3;

/// A frame's pixels: width × height, Rgb8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FrameSize {
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
}

impl FrameSize {
    /// Bytes of one Rgb8 frame.
    pub fn bytes(self) -> u64 {
        u64::from(self.width) * u64::from(self.height) * RGB8
    }

    /// "1920x1080", as `--size` takes it.
    pub fn arg(self) -> String {
        format!("{}x{}", self.width, self.height)
    }
}

impl std::fmt::Display for FrameSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}×{}", self.width, self.height)
    }
}

/// Parses `--frame-sizes`: comma-separated `WxH`, sorted, without repeats.
///
/// # Errors
/// [`Error::Usage`] for a bad size or an empty list.
pub fn parse_frame_sizes(text: &str) -> Result<Vec<FrameSize>> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (width, height) = common::stream::run::parse_size(item)
            .map_err(|e| Error::Usage(format!("--frame-sizes: {e}")))?;
        out.push(FrameSize { width, height });
    }
    if out.is_empty() {
        return Err(Error::Usage("--frame-sizes: give at least one size".into()));
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// What a frame row measures besides its transport and readers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// As many frames a second as the transport allows (`--fps 0`).
    Max,
    /// As fast as possible with one of the readers stopped (SIGSTOP) once
    /// attached.
    Stopped,
    /// Paced ([`PACE_FPS`]), so the latency is the hand-off's, not queueing.
    Paced,
}

impl Variant {
    /// "max", "stopped" or "paced".
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Max => "max",
            Variant::Stopped => "stopped",
            Variant::Paced => "paced",
        }
    }
}

/// What identifies a frame row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameCase {
    /// shm (the ring), unix, tcp or iceoryx2.
    pub transport: Channel,
    /// The frame size.
    pub size: FrameSize,
    /// Readers attached (the stopped one included).
    pub consumers: usize,
    /// `every` or `latest`.
    pub policy: &'static str,
    /// Free-running, with a stopped reader, or paced.
    pub variant: Variant,
    /// Whether the readers spin before sleeping (the ring), or poll
    /// (iceoryx2: spin, then yield).
    pub spin: bool,
    /// Where the processes run.
    pub pin: Pin,
}

impl std::fmt::Display for FrameCase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "frames {} {} {} reader(s) {}",
            self.transport, self.size, self.consumers, self.policy
        )?;
        match self.variant {
            Variant::Max => {}
            Variant::Stopped => f.write_str(" (1 stopped)")?,
            Variant::Paced => write!(f, " (paced {PACE_FPS} fps)")?,
        }
        if self.spin {
            f.write_str(" spin")?;
        }
        write!(f, " pin={}", self.pin)
    }
}

impl FrameCase {
    /// Copies of each frame's bytes, as the programs make them: the
    /// producer's one into the slot (or its frame buffer); over a socket, one
    /// more into the kernel and one out of it per reader.
    pub fn copies(&self) -> f64 {
        match self.transport {
            Channel::Shm | Channel::Iceoryx2 => 1.0,
            _ => 1.0 + 2.0 * self.consumers as f64,
        }
    }
}

/// Publish-to-read latency, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FrameLatency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// One round of a frame row: one producer and its readers, fresh processes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FrameRound {
    /// Its place in the run's order of rounds.
    pub index: usize,
    /// The round's figure: the slowest running reader's fps under `every`,
    /// the producer's under `latest`.
    pub fps: f64,
    /// Frames the producer published a second.
    pub producer_fps: f64,
    /// Each running reader's frames read a second (the stopped one left out).
    pub reader_fps: Vec<f64>,
    /// Frames published.
    pub frames: u64,
    /// Frames the running readers did not get, all of them together.
    pub skipped: u64,
    /// The worst running reader's publish-to-read latency.
    pub latency_us: FrameLatency,
    /// Bytes through read/write of every process (kernel counters) per
    /// published frame, over the frame's bytes: the kernel's copies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_copies: Option<f64>,
}

/// A frame row: rounds, figures and the ceiling of the same run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameResult {
    /// shm, unix or tcp.
    pub transport: String,
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Bytes of one frame.
    pub bytes: u64,
    /// Readers attached (a stopped one included).
    pub consumers: usize,
    /// `every` (every reader gets every frame) or `latest`.
    pub policy: String,
    /// `max` (as fast as possible), `stopped` (one reader stopped) or
    /// `paced` (at `pace_fps`).
    pub variant: Variant,
    /// Frames a second of a paced row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pace_fps: Option<f64>,
    /// Readers stopped with SIGSTOP once attached.
    pub stopped: usize,
    /// How the readers wait: "spin" or "block".
    pub wait: String,
    /// Where the processes ran.
    pub pin: Pin,
    /// The figure, frames a second: the median over rounds of each round's
    /// figure (the slowest running reader under `every`, the producer under
    /// `latest`).
    pub fps: f64,
    /// 95 % interval of `fps` (cluster bootstrap over rounds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci95: Option<Interval>,
    /// The producer's frames a second (median over rounds).
    pub producer_fps: f64,
    /// Publish-to-read latency of the worst running reader (medians over rounds).
    pub latency_us: FrameLatency,
    /// The memcpy-bound frame rate of this size, from the same run.
    pub memcpy_fps: f64,
    /// `fps / memcpy_fps`.
    pub x_memcpy: f64,
    /// Copies of each frame's bytes, as the programs make them.
    pub copies: f64,
    /// The same, witnessed: 1 (the producer's copy) + bytes through
    /// read/write of every process per frame over the frame's bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies_witnessed: Option<f64>,
    /// Frames the running readers did not get, over all rounds.
    pub skipped: u64,
    /// Every round.
    pub rounds: Vec<FrameRound>,
    /// Anything a reader should know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The memcpy-bound frame rate of one frame size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameCeiling {
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Bytes of one frame.
    pub bytes: u64,
    /// The faster copy: `memcpy` or `memcpy-nt`.
    pub best_copy: String,
    /// Its time per frame (the median of its round medians).
    pub memcpy_ns: f64,
    /// 1 / that time.
    pub memcpy_fps: f64,
    /// 95 % interval of `memcpy_fps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci95: Option<Interval>,
    /// The copy rows measured at this size, with every sample.
    pub copies: Vec<CaseResult>,
}

impl FrameCeiling {
    /// The ceiling of a size from its copy rows (analysed or not): the
    /// faster by the median of round medians. `None` without rows.
    pub fn of(size: FrameSize, mut copies: Vec<CaseResult>, seed: u64) -> Option<FrameCeiling> {
        for c in &mut copies {
            c.analyse(seed);
        }
        let best = copies
            .iter()
            .filter_map(|c| Some((c, c.clusters()?)))
            .min_by(|a, b| a.1.figure_ns().total_cmp(&b.1.figure_ns()))?;
        let ns = best.1.figure_ns();
        if ns <= 0.0 {
            return None;
        }
        let ci95 = best
            .1
            .figure_interval(seed)
            .map(|i| i.map_decreasing(|t| 1e9 / t));
        let best_copy = best.0.transport.as_str().to_string();
        Some(FrameCeiling {
            width: size.width,
            height: size.height,
            bytes: size.bytes(),
            best_copy,
            memcpy_ns: ns,
            memcpy_fps: 1e9 / ns,
            ci95,
            copies,
        })
    }

    /// The best copy's rounds for the bootstrap.
    pub fn clusters(&self) -> Option<Clusters> {
        self.copies
            .iter()
            .find(|c| c.transport.as_str() == self.best_copy)?
            .clusters()
    }

    /// The frame size.
    pub fn size(&self) -> FrameSize {
        FrameSize {
            width: self.width,
            height: self.height,
        }
    }
}

/// The median of the positive values of `xs` (0 when there are none): a
/// round in which a reader read fewer than two frames has no rate, and is
/// left out rather than counted as 0.
fn median(xs: impl IntoIterator<Item = f64>) -> f64 {
    let v: Vec<f64> = xs
        .into_iter()
        .filter(|x| x.is_finite() && *x > 0.0)
        .collect();
    bootstrap::median_f64(&v).unwrap_or(0.0)
}

/// Nanoseconds per frame at `fps` (0 fps: none).
fn ns_per_frame(fps: f64) -> Option<u64> {
    (fps.is_finite() && fps > 0.0).then(|| (1e9 / fps).round().max(1.0) as u64)
}

impl FrameResult {
    /// A row from its rounds (at least one), with the ceiling `memcpy_fps`
    /// of its size (0 when not measured).
    pub fn from_rounds(case: &FrameCase, rounds: Vec<FrameRound>, memcpy_fps: f64) -> FrameResult {
        let fps = median(rounds.iter().map(|r| r.fps));
        let witnessed: Option<Vec<f64>> = rounds.iter().map(|r| r.kernel_copies).collect();
        FrameResult {
            transport: case.transport.as_str().to_string(),
            width: case.size.width,
            height: case.size.height,
            bytes: case.size.bytes(),
            consumers: case.consumers,
            policy: case.policy.to_string(),
            variant: case.variant,
            pace_fps: (case.variant == Variant::Paced).then_some(PACE_FPS),
            stopped: usize::from(case.variant == Variant::Stopped),
            wait: if case.spin { "spin" } else { "block" }.to_string(),
            pin: case.pin,
            fps,
            ci95: None,
            producer_fps: median(rounds.iter().map(|r| r.producer_fps)),
            latency_us: FrameLatency {
                p50: median(rounds.iter().map(|r| r.latency_us.p50)),
                p99: median(rounds.iter().map(|r| r.latency_us.p99)),
            },
            memcpy_fps,
            x_memcpy: if memcpy_fps > 0.0 {
                fps / memcpy_fps
            } else {
                0.0
            },
            copies: case.copies(),
            copies_witnessed: witnessed.filter(|w| !w.is_empty()).map(|w| 1.0 + median(w)),
            skipped: rounds.iter().map(|r| r.skipped).sum(),
            rounds,
            note: None,
        }
    }

    /// The rounds' figures as the bootstrap takes them: one time per frame
    /// per round.
    pub fn clusters(&self) -> Option<Clusters> {
        self.clusters_of(|r| r.fps)
    }

    /// The rounds' producer rates for the bootstrap.
    pub fn producer_clusters(&self) -> Option<Clusters> {
        self.clusters_of(|r| r.producer_fps)
    }

    /// The rounds' latency medians (in ns) for the bootstrap.
    pub fn latency_clusters(&self) -> Option<Clusters> {
        let ns: Vec<[u64; 1]> = self
            .rounds
            .iter()
            .map(|r| [(r.latency_us.p50 * 1e3).round().max(0.0) as u64])
            .collect();
        Clusters::of(ns.iter().map(|s| (s.as_slice(), 0)), &[])
    }

    fn clusters_of(&self, f: impl Fn(&FrameRound) -> f64) -> Option<Clusters> {
        let ns: Vec<[u64; 1]> = self
            .rounds
            .iter()
            .filter_map(|r| ns_per_frame(f(r)).map(|t| [t]))
            .collect();
        Clusters::of(ns.iter().map(|s| (s.as_slice(), 0)), &[])
    }

    /// The frame size.
    pub fn size(&self) -> FrameSize {
        FrameSize {
            width: self.width,
            height: self.height,
        }
    }

    /// Derives the interval of `fps` and the ratio to `memcpy_fps` with `seed`.
    pub fn analyse(&mut self, memcpy_fps: Option<f64>, seed: u64) {
        if let Some(m) = memcpy_fps {
            self.memcpy_fps = m;
        }
        self.x_memcpy = if self.memcpy_fps > 0.0 {
            self.fps / self.memcpy_fps
        } else {
            0.0
        };
        self.ci95 = self
            .clusters()
            .and_then(|c| c.figure_interval(seed))
            .map(|i| i.map_decreasing(|t| 1e9 / t));
    }

    /// "shm every 3 readers 1920×1080" and the variant, for tables and notes.
    pub fn label(&self) -> String {
        let mut s = format!(
            "{} {} {} reader(s) {}×{}",
            self.transport, self.policy, self.consumers, self.width, self.height
        );
        match self.variant {
            Variant::Max => {}
            Variant::Stopped => s.push_str(", 1 stopped"),
            Variant::Paced => s.push_str(&format!(", paced {PACE_FPS} fps")),
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(fps: f64, p50: f64) -> FrameRound {
        FrameRound {
            fps,
            producer_fps: fps * 1.01,
            reader_fps: vec![fps],
            frames: 100,
            latency_us: FrameLatency {
                p50,
                p99: p50 * 2.0,
            },
            kernel_copies: Some(2.0),
            ..FrameRound::default()
        }
    }

    #[test]
    fn sizes_parse_sorted_and_count_rgb_bytes() {
        let s = parse_frame_sizes("3840x2160, 1920x1080,1920x1080").unwrap();
        assert_eq!(s, FULL_FRAME_SIZES);
        assert_eq!(s[0].bytes(), 6_220_800);
        assert_eq!(s[1].bytes(), 24_883_200);
        assert_eq!(s[0].arg(), "1920x1080");
        assert!(parse_frame_sizes("").is_err());
        assert!(parse_frame_sizes("1920").is_err());
    }

    #[test]
    fn a_row_takes_medians_over_rounds_and_counts_copies() {
        let case = FrameCase {
            transport: Channel::Unix,
            size: FULL_FRAME_SIZES[0],
            consumers: 1,
            policy: "every",
            variant: Variant::Max,
            spin: false,
            pin: Pin::Split,
        };
        let mut r = FrameResult::from_rounds(
            &case,
            vec![
                round(100.0, 900.0),
                round(300.0, 500.0),
                round(200.0, 700.0),
            ],
            1000.0,
        );
        assert_eq!(r.fps, 200.0);
        assert_eq!(r.latency_us.p50, 700.0);
        assert_eq!(r.copies, 3.0);
        assert_eq!(r.copies_witnessed, Some(3.0));
        assert!((r.x_memcpy - 0.2).abs() < 1e-12);
        r.analyse(None, 1);
        let ci = r.ci95.unwrap();
        assert!(ci.lo >= 99.9 && ci.hi <= 300.1 && ci.lo <= 200.0, "{ci:?}");
        let shm = FrameCase {
            transport: Channel::Shm,
            consumers: 3,
            ..case
        };
        assert_eq!(shm.copies(), 1.0);
        let iceoryx2 = FrameCase {
            transport: Channel::Iceoryx2,
            consumers: 3,
            ..case
        };
        assert_eq!(iceoryx2.copies(), 1.0, "one copy into a loaned sample");
        assert_eq!(
            FrameCase {
                consumers: 3,
                ..case
            }
            .copies(),
            7.0
        );
    }
}
