//! One whole transfer, as each binary runs it, and the report it makes.
//!
//! One whole transfer, as each binary runs it: check the image, pick the
//! transport, move the payload, verify and decode it, and report.
//!
//! The reports serialise to the JSON objects `--json` prints; their field
//! names are a stable interface for scripts.
//!
//! # Phases
//! The producer's **transfer phase** runs from its first copy of the payload
//! towards the consumer until the acknowledgement; the consumer's from the
//! moment the payload starts to arrive (shared memory: the lock is taken) until
//! its CRC-32 is verified, before decoding. The copy ledger and the kernel's
//! counters (`copies`, `proc_io`, `minflt`, `nvcsw`, `nivcsw`) cover that
//! phase. Reading the image file into the producer's heap, when it happens,
//! is a phase of its own, reported apart as `read_file`.

use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::copy::CopyMode;
use crate::error::{Error, Result};
use crate::ledger::{Copier, Copy, Ledger, Meter, Witness};
use crate::name::Name;
use crate::png::{self, Decoded, Limits};
use crate::signals;
use crate::story::{ms, thousands, Story};
use crate::transport::memfd::seal::Attempt;
use crate::transport::{Incoming, Outgoing, Payload, Session, TransportKind};

/// How the producer gets the image file into shared memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReadMode {
    /// `pread` from the file straight into the segment: the kernel copies
    /// page cache -> segment, once.
    #[default]
    Direct,
    /// Read the file into a heap buffer, then `memcpy` it into the segment
    /// (file -> heap -> segment: two copies). The socket transports always
    /// work this way.
    Heap,
}

impl ReadMode {
    /// The name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadMode::Direct => "direct",
            ReadMode::Heap => "heap",
        }
    }
}

impl FromStr for ReadMode {
    type Err = String;

    fn from_str(s: &str) -> Result<ReadMode, String> {
        match s {
            "direct" => Ok(ReadMode::Direct),
            "heap" => Ok(ReadMode::Heap),
            _ => Err(format!("unknown read mode {s:?} (choose direct or heap)")),
        }
    }
}

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
    /// TCP address (for `tcp`).
    pub addr: SocketAddr,
    /// How the file gets into shared memory (`shm` and `memfd`).
    pub read: ReadMode,
    /// How a heap buffer is copied into shared memory (`shm --read heap`).
    pub copy: CopyMode,
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
    /// Decode limits (`max_alloc` also caps a socket payload).
    pub limits: Limits,
    /// How long to keep exclusive access after verifying, before acknowledging.
    pub hold: Duration,
    /// The transport.
    pub transport: TransportKind,
    /// TCP address (for `tcp`).
    pub addr: SocketAddr,
    /// memfd only: try to change the received memory before reading it, and
    /// report the kernel's refusals (`--try-tamper`).
    pub try_tamper: bool,
}

/// The producer's separate phase of reading the file into its heap.
#[derive(Clone, Debug, Serialize)]
pub struct ReadFile {
    /// The copies made (file -> heap).
    pub copies: Vec<Copy>,
    /// The kernel's view of the phase.
    #[serde(flatten)]
    pub witness: Witness,
}

/// What `producer --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct ProducerReport {
    /// "shm", "unix", "tcp" or "memfd".
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
    /// "direct" (file straight into the segment) or "heap".
    pub read_mode: &'static str,
    /// The `--copy` asked for: "std", "nt" or "auto" (it applies to a copy
    /// from the heap into shared memory; `copies` names the copy made).
    pub copy_mode: &'static str,
    /// Wall-clock time (ns since the Unix epoch) when the first copy towards
    /// the consumer began: with the consumer's `verified_unix_ns`, the length
    /// of the whole hand-off.
    pub copy_start_unix_ns: u64,
    /// Time copying the payload to where the consumer reads it.
    pub copy_ms: f64,
    /// Time kept holding the lock after copying (`--hold`).
    pub hold_ms: f64,
    /// Time waiting for the consumer's acknowledgement.
    pub wait_ms: f64,
    /// Whole run.
    pub total_ms: f64,
    /// The copies of the payload in the transfer phase.
    pub copies: Vec<Copy>,
    /// The kernel's view of the transfer phase (`proc_io`, `minflt`, `nvcsw`, `nivcsw`).
    #[serde(flatten)]
    pub witness: Witness,
    /// Reading the file into the heap, when that happened.
    pub read_file: Option<ReadFile>,
}

/// What `consumer --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct ConsumerReport {
    /// "shm", "unix", "tcp" or "memfd".
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
    /// Time until the payload began to arrive.
    pub wait_ms: f64,
    /// Time moving the payload into reach and checking its CRC-32.
    pub transfer_ms: f64,
    /// Time decoding the PNG.
    pub decode_ms: f64,
    /// Wall-clock time (ns since the Unix epoch) when the CRC-32 was verified.
    pub verified_unix_ns: u64,
    /// Whole run.
    pub total_ms: f64,
    /// Where the decoded image was written.
    pub out: Option<String>,
    /// The copies of the payload in the transfer phase.
    pub copies: Vec<Copy>,
    /// The kernel's view of the transfer phase.
    #[serde(flatten)]
    pub witness: Witness,
    /// memfd only: the seals found on the memory, e.g. `["seal", "shrink",
    /// "grow", "write"]` (absent for the other transports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seals: Option<Vec<&'static str>>,
    /// memfd with `--try-tamper` only: each attempt to change the received
    /// memory (`what`, `call`, `refused`, `errno`, `error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tamper: Option<Vec<Attempt>>,
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Reads the whole checked file into a heap buffer, as its own phase.
fn read_to_heap(image: &png::SourceImage) -> Result<(Vec<u8>, ReadFile)> {
    let meter = Meter::start();
    let mut bytes = vec![0u8; image.len as usize];
    image
        .file
        .read_exact_at(&mut bytes, 0)
        .map_err(|e| Error::BadImage {
            path: image.path.clone(),
            reason: format!("reading it failed ({e}); did it change meanwhile?"),
        })?;
    let mut ledger = Ledger::new();
    ledger.record("file -> heap (pread)", image.len, Copier::Kernel);
    Ok((
        bytes,
        ReadFile {
            copies: ledger.copies().to_vec(),
            witness: meter.finish(),
        },
    ))
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
    let read_mode = match options.transport {
        TransportKind::Shm | TransportKind::Memfd => options.read,
        _ => ReadMode::Heap,
    };
    story.say(format_args!(
        "pid {}: sending {} ({} bytes, PNG signature ok) over {}",
        std::process::id(),
        image.path.display(),
        thousands(image.len),
        options.transport
    ));
    let (heap, read_file) = match read_mode {
        ReadMode::Direct => (None, None),
        ReadMode::Heap => {
            let (bytes, phase) = read_to_heap(&image)?;
            story.say(format_args!(
                "read the file into a heap buffer in {} (the kernel's copy)",
                ms(Duration::from_secs_f64(phase.witness.phase_ms / 1e3))
            ));
            (Some(bytes), Some(phase))
        }
    };
    let payload = match &heap {
        Some(bytes) => Payload::Heap(bytes),
        None => Payload::File(&image),
    };
    let session = Session {
        name: &options.name,
        timeout: options.timeout,
        max_payload: u64::MAX,
        hold: options.hold,
        try_tamper: false,
        story,
    };
    let transport = options.transport.transport(options.addr);
    let sent = transport.send(
        &session,
        &Outgoing {
            payload,
            copy: options.copy,
        },
    )?;
    // A signal that arrived during a step that does not wait (a copy, a
    // decode) still ends the run as interrupted.
    signals::check()?;
    Ok(ProducerReport {
        transport: options.transport.as_str(),
        name: options.name.to_string(),
        pid: std::process::id(),
        consumer_pid: sent.consumer_pid,
        image: image.path.display().to_string(),
        bytes: image.len,
        crc32: format!("{:08x}", sent.crc32),
        read_mode: read_mode.as_str(),
        copy_mode: options.copy.as_str(),
        copy_start_unix_ns: unix_ns(sent.copy_started),
        copy_ms: millis(sent.copy),
        hold_ms: millis(options.hold),
        wait_ms: millis(sent.wait),
        total_ms: millis(started.elapsed()),
        copies: sent.ledger.copies().to_vec(),
        witness: sent.witness,
        read_file,
    })
}

/// What the consumer's check of the payload found.
struct Checked {
    bytes: u64,
    crc32: u32,
    crc_time: Duration,
    verified: SystemTime,
    witness: Witness,
    decoded: Decoded,
    decode_time: Duration,
}

/// Runs the consumer side of a transfer.
///
/// # Errors
/// Any [`crate::Error`].
pub fn consume(options: &ConsumerOptions, story: &Story) -> Result<ConsumerReport> {
    let started = Instant::now();
    if options.try_tamper && options.transport != TransportKind::Memfd {
        return Err(Error::Usage(format!(
            "--try-tamper tries to change a sealed memfd: it needs --transport memfd, not {}",
            options.transport
        )));
    }
    if let Some(out) = &options.out {
        png::check_output(out)?;
    }
    signals::install()?;
    story.say(format_args!(
        "pid {}: waiting for {} over {}",
        std::process::id(),
        options.name,
        options.transport
    ));
    let session = Session {
        name: &options.name,
        timeout: options.timeout,
        max_payload: options.limits.max_alloc,
        hold: options.hold,
        try_tamper: options.try_tamper,
        story,
    };
    let mut checked: Option<Checked> = None;
    let mut accept = |incoming: Incoming<'_>| -> Result<()> {
        let t = Instant::now();
        let crc = png::crc32(incoming.bytes);
        if crc != incoming.crc32 {
            return Err(Error::CrcMismatch {
                expected: incoming.crc32,
                actual: crc,
            });
        }
        let crc_time = t.elapsed();
        let verified = SystemTime::now();
        let witness = incoming.meter.finish();
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
        checked = Some(Checked {
            bytes: incoming.bytes.len() as u64,
            crc32: crc,
            crc_time,
            verified,
            witness,
            decoded,
            decode_time,
        });
        Ok(())
    };
    let transport = options.transport.transport(options.addr);
    let received = transport.receive(&session, &mut accept)?;
    signals::check()?;
    let checked = checked.expect("receive succeeds only after accept succeeded");
    if let Some(out) = &options.out {
        png::save(&checked.decoded.image, out)?;
        story.say(format_args!("wrote the decoded image to {}", out.display()));
    }
    Ok(ConsumerReport {
        transport: options.transport.as_str(),
        name: options.name.to_string(),
        pid: std::process::id(),
        producer_pid: received.producer_pid,
        bytes: checked.bytes,
        crc32: format!("{:08x}", checked.crc32),
        width: checked.decoded.width,
        height: checked.decoded.height,
        color: checked.decoded.color,
        wait_ms: millis(received.wait),
        transfer_ms: millis(received.receive + checked.crc_time),
        decode_ms: millis(checked.decode_time),
        verified_unix_ns: unix_ns(checked.verified),
        total_ms: millis(started.elapsed()),
        out: options.out.as_ref().map(|p| p.display().to_string()),
        copies: received.ledger.copies().to_vec(),
        witness: checked.witness,
        seals: received.seals,
        tamper: received.tamper,
    })
}
