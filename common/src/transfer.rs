//! One whole transfer, as each binary runs it: check the image, pick the
//! transport, move the payload, verify and decode it, and report.
//!
//! The reports serialise to the JSON objects `--json` prints; their field
//! names are a stable interface for scripts.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::Result;
use crate::name::Name;
use crate::png::{self, Decoded, Limits};
use crate::signals;
use crate::story::{ms, thousands, Story};
use crate::transport::{shm::Shm, Incoming, Outgoing, Session, Transport, TransportKind};

/// How the producer runs.
#[derive(Clone, Debug)]
pub struct ProducerOptions {
    /// The PNG file to send.
    pub image: PathBuf,
    /// Segment or socket name.
    pub name: Name,
    /// How long to wait for a consumer.
    pub timeout: Duration,
    /// How long to keep exclusive access after copying.
    pub hold: Duration,
    /// The transport.
    pub transport: TransportKind,
}

/// How the consumer runs.
#[derive(Clone, Debug)]
pub struct ConsumerOptions {
    /// Segment or socket name.
    pub name: Name,
    /// How long to wait for a producer (and for its lock).
    pub timeout: Duration,
    /// Where to write the decoded image, if anywhere.
    pub out: Option<PathBuf>,
    /// Decode limits.
    pub limits: Limits,
    /// The transport.
    pub transport: TransportKind,
}

/// What `producer --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct ProducerReport {
    /// "shm".
    pub transport: &'static str,
    /// Segment or socket name.
    pub name: String,
    /// This process.
    pub pid: u32,
    /// The consumer, when known.
    pub consumer_pid: Option<u32>,
    /// The image file sent.
    pub image: String,
    /// Payload size.
    pub bytes: u64,
    /// CRC-32 of the payload, 8 lowercase hex digits.
    pub crc32: String,
    /// Time copying the payload to where the consumer reads it.
    pub copy_ms: f64,
    /// Time kept holding the lock after copying (`--hold`).
    pub hold_ms: f64,
    /// Time waiting for the consumer's acknowledgement.
    pub wait_ms: f64,
    /// Whole run.
    pub total_ms: f64,
}

/// What `consumer --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct ConsumerReport {
    /// "shm".
    pub transport: &'static str,
    /// Segment or socket name.
    pub name: String,
    /// This process.
    pub pid: u32,
    /// The producer, when known.
    pub producer_pid: Option<u32>,
    /// Payload size.
    pub bytes: u64,
    /// CRC-32 of the payload as received, 8 lowercase hex digits (verified
    /// against the producer's).
    pub crc32: String,
    /// Image width.
    pub width: u32,
    /// Image height.
    pub height: u32,
    /// The image crate's colour type name, e.g. "Rgb8".
    pub color: String,
    /// Time until the payload was within reach.
    pub wait_ms: f64,
    /// Time moving the payload into reach and checking its CRC-32.
    pub transfer_ms: f64,
    /// Time decoding the PNG.
    pub decode_ms: f64,
    /// Whole run.
    pub total_ms: f64,
    /// Where the decoded image was written.
    pub out: Option<String>,
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn transport_for(kind: TransportKind) -> Box<dyn Transport> {
    match kind {
        TransportKind::Shm => Box::new(Shm),
    }
}

/// Runs the producer side of a transfer.
///
/// The image is checked (exists, non-empty, PNG signature) before anything is
/// created, so a bad image leaves nothing behind.
///
/// # Errors
/// Any [`crate::Error`]; nothing this process created is left behind.
pub fn produce(options: &ProducerOptions, story: &Story) -> Result<ProducerReport> {
    let started = Instant::now();
    let image = png::open_source(&options.image)?;
    signals::install()?;
    story.say(format_args!(
        "pid {}: sending {} ({} bytes, PNG signature ok) over {}",
        std::process::id(),
        image.path.display(),
        thousands(image.len),
        options.transport.as_str()
    ));
    let session = Session {
        name: &options.name,
        timeout: options.timeout,
        story,
    };
    let transport = transport_for(options.transport);
    let sent = transport.send(
        &session,
        &Outgoing {
            image: &image,
            hold: options.hold,
        },
    )?;
    Ok(ProducerReport {
        transport: options.transport.as_str(),
        name: options.name.to_string(),
        pid: std::process::id(),
        consumer_pid: sent.consumer_pid,
        image: image.path.display().to_string(),
        bytes: image.len,
        crc32: format!("{:08x}", sent.crc32),
        copy_ms: millis(sent.copy),
        hold_ms: millis(options.hold),
        wait_ms: millis(sent.wait),
        total_ms: millis(started.elapsed()),
    })
}

/// Runs the consumer side of a transfer.
///
/// # Errors
/// Any [`crate::Error`].
pub fn consume(options: &ConsumerOptions, story: &Story) -> Result<ConsumerReport> {
    let started = Instant::now();
    if let Some(out) = &options.out {
        png::check_output(out)?;
    }
    signals::install()?;
    story.say(format_args!(
        "pid {}: waiting for {} over {}",
        std::process::id(),
        options.name,
        options.transport.as_str()
    ));
    let session = Session {
        name: &options.name,
        timeout: options.timeout,
        story,
    };
    let mut checked: Option<(u64, u32, Duration, Decoded, Duration)> = None;
    let mut accept = |incoming: Incoming<'_>| -> Result<()> {
        let t = Instant::now();
        let crc = png::crc32(incoming.bytes);
        if crc != incoming.crc32 {
            return Err(crate::Error::CrcMismatch {
                expected: incoming.crc32,
                actual: crc,
            });
        }
        let crc_time = t.elapsed();
        story.say(format_args!(
            "crc32 {crc:08x} ok over {} bytes ({})",
            thousands(incoming.bytes.len() as u64),
            ms(crc_time)
        ));
        let t = Instant::now();
        let decoded = png::decode(incoming.bytes, &options.limits)?;
        let decode_time = t.elapsed();
        story.say(format_args!(
            "decoded a {}x{} {} PNG straight from the payload in {}",
            decoded.width,
            decoded.height,
            decoded.color,
            ms(decode_time)
        ));
        checked = Some((
            incoming.bytes.len() as u64,
            crc,
            crc_time,
            decoded,
            decode_time,
        ));
        Ok(())
    };
    let transport = transport_for(options.transport);
    let received = transport.receive(&session, &mut accept)?;
    let (bytes, crc, crc_time, decoded, decode_time) =
        checked.expect("receive succeeds only after accept succeeded");
    if let Some(out) = &options.out {
        png::save(&decoded.image, out)?;
        story.say(format_args!("wrote the decoded image to {}", out.display()));
    }
    Ok(ConsumerReport {
        transport: options.transport.as_str(),
        name: options.name.to_string(),
        pid: std::process::id(),
        producer_pid: received.producer_pid,
        bytes,
        crc32: format!("{crc:08x}"),
        width: decoded.width,
        height: decoded.height,
        color: decoded.color,
        wait_ms: millis(received.wait),
        transfer_ms: millis(received.receive + crc_time),
        decode_ms: millis(decode_time),
        total_ms: millis(started.elapsed()),
        out: options.out.as_ref().map(|p| p.display().to_string()),
    })
}
