//! A whole stream as `producer --stream` and `consumer --stream` run it, and their reports.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::frames::Source;
use super::preview::{Picture, Preview};
use super::ring::{monotonic_ns, Reader, Writer};
use super::socket::{Receiver, Sender};
use super::{Frame, Policy, Read, ReaderStats};
use crate::copy::CopyMode;
use crate::error::{Error, Result};
use crate::ledger::{Meter, Witness};
use crate::name::Name;
use crate::segment::{Published, Segment};
use crate::story::{thousands, Story};
use crate::transport::socket::Endpoint;
use crate::transport::TransportKind;
use crate::wait::{self, Deadline};

/// How long a stream runs when neither `--frames` nor `--seconds` is given.
pub const DEFAULT_SECONDS: f64 = 10.0;

/// Parses `--size WxH` (e.g. `1920x1080`).
///
/// # Errors
/// A message for clap when it is not two positive numbers joined by `x`.
pub fn parse_size(text: &str) -> std::result::Result<(u32, u32), String> {
    let bad = || format!("{text:?} is not a size like 1920x1080");
    let (w, h) = text.split_once(['x', 'X']).ok_or_else(bad)?;
    let w: u32 = w.parse().map_err(|_| bad())?;
    let h: u32 = h.parse().map_err(|_| bad())?;
    if w == 0 || h == 0 || u64::from(w) * u64::from(h) > 1 << 28 {
        return Err(format!("{text:?}: give 1 to 2^28 pixels"));
    }
    Ok((w, h))
}

/// Where the frames come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// A PNG, decoded once.
    Png(PathBuf),
    /// A generated Rgb8 picture of this many pixels (`--size WxH`).
    Pattern {
        /// Pixels per row.
        width: u32,
        /// Rows.
        height: u32,
    },
}

/// Everything `producer --stream` is asked to do.
#[derive(Clone, Debug)]
pub struct ProducerOptions {
    /// The frames' source.
    pub input: Input,
    /// The stream's name.
    pub name: Name,
    /// Shared memory (the ring), or a socket baseline.
    pub transport: TransportKind,
    /// TCP address with [`TransportKind::Tcp`].
    pub addr: SocketAddr,
    /// Frames a second; 0 means as fast as possible.
    pub fps: f64,
    /// Stop after this many frames.
    pub frames: Option<u64>,
    /// Stop after this long.
    pub seconds: Option<Duration>,
    /// Slots in the ring.
    pub slots: u32,
    /// Readers to wait for before the first frame.
    pub consumers: usize,
    /// What to do about slow readers.
    pub policy: Policy,
    /// How long to wait for those readers.
    pub timeout: Duration,
    /// How the pixels are copied into a slot (or the socket's frame buffer).
    pub copy: CopyMode,
}

/// What `producer --stream --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct ProducerReport {
    /// "producer".
    pub role: &'static str,
    /// "stream".
    pub mode: &'static str,
    /// shm, unix or tcp.
    pub transport: &'static str,
    /// The stream's name.
    pub name: String,
    /// latest or every.
    pub policy: Policy,
    /// Frames published.
    pub frames: u64,
    /// Frames published a second, from the first frame to the last.
    pub fps: f64,
    /// Seconds from the first frame to the end.
    pub seconds: f64,
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// The pixel format, e.g. "Rgb8".
    pub format: &'static str,
    /// Bytes of one frame.
    pub frame_bytes: u64,
    /// Slots in the ring (shm).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slots: Option<u32>,
    /// Readers attached when the first frame went out.
    pub consumers: usize,
    /// Readers dropped for holding the stream up.
    pub evicted: u64,
    /// Which copy wrote the pixels (std or nt).
    pub copy_mode: &'static str,
    /// The kernel's counters over the stream.
    pub witness: Witness,
}

/// Runs `producer --stream`.
///
/// # Errors
/// A bad image, a name in use, a timeout waiting for readers, a signal.
pub fn produce(options: &ProducerOptions, story: &Story) -> Result<ProducerReport> {
    crate::signals::install()?;
    let source = match &options.input {
        Input::Png(path) => Source::from_png(path)?,
        Input::Pattern { width, height } => Source::pattern(*width, *height),
    };
    let shape = source.shape();
    let copy_mode = options.copy.choose(shape.len() as usize).label();
    if !(options.fps.is_finite() && options.fps >= 0.0) {
        return Err(Error::Usage(format!(
            "--fps {}: give a number of frames a second, or 0 for as fast as possible",
            options.fps
        )));
    }
    let mut sink = match options.transport {
        TransportKind::Shm => {
            let (writer, published) =
                Writer::create(&options.name, shape.len(), options.slots, options.policy)?;
            if let Published::ReplacedStale { pid } = published {
                story.say(format_args!(
                    "replaced a stale stream left by {}",
                    pid.map_or("a dead producer".into(), |p| format!("pid {p}"))
                ));
            }
            Sink::Ring(writer)
        }
        TransportKind::Unix | TransportKind::Tcp => {
            let endpoint = Endpoint::new(options.transport, &options.name, options.addr);
            Sink::Socket(Sender::bind(&endpoint, &options.name, options.policy)?)
        }
        TransportKind::Memfd => return Err(no_memfd_stream()),
    };
    story.say(format_args!(
        "streaming {}x{} {} frames ({} bytes each) over {} as {:?}, policy {}",
        shape.width,
        shape.height,
        shape.format,
        thousands(shape.len()),
        options.transport,
        options.name.as_str(),
        options.policy
    ));
    if options.consumers > 0 {
        let waiting = story.waiting(format!("waiting for {} consumer(s)", options.consumers));
        sink.await_readers(options.consumers, &Deadline::after(options.timeout), story)?;
        drop(waiting);
    }
    let consumers = sink.readers(story)?;
    let limit = match (options.frames, options.seconds) {
        (None, None) => (None, Some(Duration::from_secs_f64(DEFAULT_SECONDS))),
        (frames, seconds) => (frames, seconds),
    };
    let meter = Meter::start();
    let start = Instant::now();
    let period = (options.fps > 0.0).then(|| Duration::from_secs_f64(1.0 / options.fps));
    let mut published = 0u64;
    loop {
        if limit.0.is_some_and(|n| published >= n) || limit.1.is_some_and(|s| start.elapsed() >= s)
        {
            break;
        }
        if let Some(period) = period {
            let due = period.mul_f64(published as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                wait::sleep(wait)?;
            }
        } else {
            crate::signals::check()?;
        }
        sink.publish(&source, options.copy, story)?;
        published += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    sink.end();
    let witness = meter.finish();
    let evicted = sink.evicted();
    story.say(format_args!(
        "published {published} frames in {seconds:.2} s ({:.1} fps); {evicted} consumer(s) dropped",
        published as f64 / seconds.max(1e-9)
    ));
    Ok(ProducerReport {
        role: "producer",
        mode: "stream",
        transport: options.transport.as_str(),
        name: options.name.to_string(),
        policy: options.policy,
        frames: published,
        fps: published as f64 / seconds.max(1e-9),
        seconds,
        width: shape.width,
        height: shape.height,
        format: shape.format.as_str(),
        frame_bytes: shape.len(),
        slots: matches!(sink, Sink::Ring(_)).then_some(options.slots),
        consumers,
        evicted,
        copy_mode,
        witness,
    })
}

/// The error for `--stream --transport memfd`.
fn no_memfd_stream() -> Error {
    Error::Usage(
        "a stream goes over shm, unix or tcp (--transport memfd hands over one image)".into(),
    )
}

/// Where a producer's frames go.
enum Sink {
    Ring(Writer),
    Socket(Sender),
}

impl Sink {
    fn readers(&mut self, story: &Story) -> Result<usize> {
        match self {
            Sink::Ring(w) => Ok(w.readers()),
            Sink::Socket(s) => s.readers(story),
        }
    }

    fn await_readers(&mut self, count: usize, deadline: &Deadline, story: &Story) -> Result<()> {
        match self {
            Sink::Ring(w) => w.await_readers(count, deadline),
            Sink::Socket(s) => s.await_readers(count, deadline, story),
        }
    }

    fn publish(&mut self, source: &Source, copy: CopyMode, story: &Story) -> Result<u64> {
        match self {
            Sink::Ring(w) => {
                let id = w.published() + 1;
                w.publish(source.shape(), |dst| source.fill(id, dst, copy))
            }
            Sink::Socket(s) => s.publish(source, copy, story),
        }
    }

    fn end(&mut self) {
        match self {
            Sink::Ring(w) => w.end(),
            Sink::Socket(s) => s.end(),
        }
    }

    fn evicted(&self) -> u64 {
        match self {
            Sink::Ring(w) => w.evicted(),
            Sink::Socket(s) => s.evicted(),
        }
    }
}

/// Everything `consumer --stream` is asked to do.
#[derive(Clone, Debug)]
pub struct ConsumerOptions {
    /// The stream's name.
    pub name: Name,
    /// Shared memory (the ring), or a socket baseline.
    pub transport: TransportKind,
    /// TCP address with [`TransportKind::Tcp`].
    pub addr: SocketAddr,
    /// How long to wait for the producer, and then for each frame.
    pub timeout: Duration,
    /// Spin (on another CPU than the producer's) before sleeping.
    pub spin: bool,
    /// Draw the newest frame in the terminal (only when stdout is one).
    pub preview: bool,
    /// Stop after this many frames.
    pub frames: Option<u64>,
    /// Stop after this long.
    pub seconds: Option<Duration>,
}

/// Publish-to-read latency percentiles, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Latency {
    /// The percentiles of latencies given in nanoseconds (nearest rank).
    pub fn of(samples: &mut [u64]) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples[rank - 1] as f64 / 1e3
        };
        Latency {
            p50: at(0.50),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// What `consumer --stream --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct ConsumerReport {
    /// "consumer".
    pub role: &'static str,
    /// "stream".
    pub mode: &'static str,
    /// shm, unix or tcp.
    pub transport: &'static str,
    /// The stream's name.
    pub name: String,
    /// latest or every, as the producer set it (sockets: every).
    pub policy: Policy,
    /// Frames read and verified.
    pub frames: u64,
    /// Frames published while attached that this reader did not get.
    pub skipped: u64,
    /// Times the producer dropped this reader for holding the stream up.
    pub evicted: u64,
    /// Frames read a second, from the first to the last.
    pub fps: f64,
    /// Seconds from the first frame read to the last.
    pub seconds: f64,
    /// Publish-to-read latency (to the frame verified in hand).
    pub latency_us: Latency,
    /// Pixels per row (of the last frame).
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// The pixel format, e.g. "Rgb8".
    pub format: &'static str,
    /// Copies of each frame this reader made: 0 in place (shm), 1 from
    /// the kernel into its buffer (sockets).
    pub copies: u32,
    /// "block" or "spin".
    pub wait: &'static str,
    /// The kernel's counters over the stream.
    pub witness: Witness,
}

/// Where a consumer's frames come from.
enum Tap {
    Ring(Reader),
    Socket(Receiver),
}

/// Runs `consumer --stream`.
///
/// # Errors
/// No producer before the timeout, a producer that dies or lies, a signal.
pub fn consume(options: &ConsumerOptions, story: &Story) -> Result<ConsumerReport> {
    crate::signals::install()?;
    let deadline = Deadline::after(options.timeout);
    let waiting = story.waiting(format!("waiting for stream {}", options.name.as_str()));
    let mut tap = match options.transport {
        TransportKind::Shm => {
            let segment =
                Segment::wait_open(&options.name, &deadline, |_| {})?.ok_or_else(|| {
                    deadline.timeout(format!("no stream named {} appeared", options.name))
                })?;
            Tap::Ring(Reader::attach(
                segment,
                super::ring::spin_for(options.spin),
            )?)
        }
        TransportKind::Unix | TransportKind::Tcp => {
            let endpoint = Endpoint::new(options.transport, &options.name, options.addr);
            Tap::Socket(Receiver::connect(&endpoint, &deadline)?)
        }
        TransportKind::Memfd => return Err(no_memfd_stream()),
    };
    drop(waiting);
    let mut preview = if options.preview {
        Preview::new()
    } else {
        None
    };
    let mut latencies: Vec<u64> = Vec::new();
    let mut last: Option<Frame> = None;
    let mut first_at: Option<Instant> = None;
    let mut last_at = Instant::now();
    let meter = Meter::start();
    let started = Instant::now();
    loop {
        if options.frames.is_some_and(|n| latencies.len() as u64 >= n)
            || options.seconds.is_some_and(|s| started.elapsed() >= s)
        {
            break;
        }
        let mut look = |frame: &Frame, pixels: &[u8]| {
            preview.as_mut().filter(|p| p.due()).map(|p| {
                let status = status_line(&latencies, last.as_ref(), first_at, last_at);
                p.compose(
                    &Picture {
                        pixels,
                        width: frame.width,
                        height: frame.height,
                        stride: frame.stride,
                        format: frame.format,
                    },
                    &format!("frame {}  {status}", frame.id),
                )
            })
        };
        let frame_deadline = Deadline::after(options.timeout);
        let read = match &mut tap {
            Tap::Ring(r) => r.next(&frame_deadline, &mut look)?,
            Tap::Socket(s) => s.next(options.timeout, &mut look)?,
        };
        let (frame, drawn) = match read {
            Read::Frame(frame, drawn) => (frame, drawn),
            Read::Ended => break,
        };
        latencies.push(monotonic_ns().saturating_sub(frame.timestamp_ns));
        last_at = Instant::now();
        first_at.get_or_insert(last_at);
        last = Some(frame);
        if let (Some(p), Some(text)) = (preview.as_mut(), drawn) {
            // A closed terminal ends the preview, not the stream.
            if p.show(&text).is_err() {
                preview = None;
            }
        }
    }
    drop(preview);
    let witness = meter.finish();
    let (stats, policy, copies): (ReaderStats, Policy, u32) = match &tap {
        Tap::Ring(r) => (r.stats(), r.policy(), 0),
        Tap::Socket(s) => (s.stats(), s.policy(), 1),
    };
    let seconds = first_at.map_or(0.0, |t| last_at.duration_since(t).as_secs_f64());
    let fps = rate(stats.frames, first_at, last_at);
    let latency_us = Latency::of(&mut latencies);
    let frame = last.ok_or_else(|| {
        Error::PeerGone(format!(
            "stream {} ended before this consumer read a frame",
            options.name
        ))
    })?;
    story.say(format_args!(
        "read {} frames of {}x{} {} ({:.1} fps), {} skipped, {}; latency p50 {:.0} us, p99 {:.0} us, max {:.0} us",
        stats.frames,
        frame.width,
        frame.height,
        frame.format,
        fps,
        stats.skipped,
        if copies == 0 {
            "read in place: 0 copies".to_owned()
        } else {
            format!("{copies} copy each out of the kernel")
        },
        latency_us.p50,
        latency_us.p99,
        latency_us.max
    ));
    Ok(ConsumerReport {
        role: "consumer",
        mode: "stream",
        transport: options.transport.as_str(),
        name: options.name.to_string(),
        policy,
        frames: stats.frames,
        skipped: stats.skipped,
        evicted: stats.evicted,
        fps,
        seconds,
        latency_us,
        width: frame.width,
        height: frame.height,
        format: frame.format.as_str(),
        copies,
        wait: if options.spin { "spin" } else { "block" },
        witness,
    })
}

/// Frames a second over `frames` frames read from `first` to `last`: the
/// `frames - 1` intervals between them; 0 with fewer than two.
fn rate(frames: u64, first: Option<Instant>, last: Instant) -> f64 {
    match first.map(|t| last.duration_since(t).as_secs_f64()) {
        Some(span) if frames > 1 && span > 0.0 => (frames - 1) as f64 / span,
        _ => 0.0,
    }
}

/// "29.8 fps  latency 0.41 ms" for the preview's status line.
fn status_line(
    latencies: &[u64],
    last: Option<&Frame>,
    first_at: Option<Instant>,
    last_at: Instant,
) -> String {
    let fps = rate(latencies.len() as u64, first_at, last_at);
    let latency = latencies.last().map_or(0.0, |&ns| ns as f64 / 1e6);
    match last {
        Some(f) => format!(
            "{fps:.1} fps  latency {latency:.2} ms  {}x{} {}",
            f.width, f.height, f.format
        ),
        None => "waiting for frames".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_nonsense_is_refused() {
        assert_eq!(parse_size("1920x1080"), Ok((1920, 1080)));
        assert_eq!(parse_size("4X3"), Ok((4, 3)));
        for bad in ["1920", "0x5", "x", "axb", "100000x100000"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_rate_counts_the_intervals_between_frames() {
        let t = Instant::now();
        let later = t + Duration::from_secs(2);
        assert_eq!(rate(5, Some(t), later), 2.0);
        assert_eq!(rate(1, Some(t), later), 0.0);
        assert_eq!(rate(5, None, later), 0.0);
        assert_eq!(rate(5, Some(t), t), 0.0);
    }

    #[test]
    fn latency_percentiles_take_the_nearest_rank() {
        let mut samples: Vec<u64> = (1..=100).map(|us| us * 1000).collect();
        let l = Latency::of(&mut samples);
        assert_eq!((l.p50, l.p99, l.max), (50.0, 99.0, 100.0));
        let mut one = vec![7_000];
        assert_eq!(Latency::of(&mut one).p99, 7.0);
        assert_eq!(Latency::of(&mut []), Latency::default());
    }
}
