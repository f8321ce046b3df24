//! Transports: the ways a payload travels from producer to consumer, behind one interface.
//!
//! Transports: the ways a payload can travel from producer to consumer, behind
//! one interface so that every transport gets the same checks (length, CRC-32,
//! decode), the same output, the same timeouts and the same copy ledger.
//!
//! - [`shm`]: a shared-memory segment; the producer copies the payload in once
//!   and the consumer reads it in place.
//! - [`socket`]: a Unix domain or TCP stream; the payload is copied into the
//!   kernel by `write` and out of it by `read`.
//! - [`memfd`]: an anonymous, sealed memfd passed over a Unix socket
//!   (`SCM_RIGHTS`); the consumer maps it read-only and reads it in place.

mod fill;
pub mod memfd;
pub mod shm;
pub mod socket;

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use crate::copy::CopyMode;
use crate::error::Result;
use crate::ledger::{Ledger, Meter, Witness};
use crate::name::Name;
use crate::png::SourceImage;
use crate::story::{ms, Story};

/// Which transport carries the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    /// A shared-memory segment in /dev/shm.
    Shm,
    /// A Unix domain stream socket.
    Unix,
    /// A TCP connection (loopback by default).
    Tcp,
    /// An anonymous, sealed memfd passed over a Unix socket.
    Memfd,
}

impl TransportKind {
    /// Every transport, in the order tables show them.
    pub const ALL: [TransportKind; 4] = [
        TransportKind::Shm,
        TransportKind::Unix,
        TransportKind::Tcp,
        TransportKind::Memfd,
    ];

    /// The name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Shm => "shm",
            TransportKind::Unix => "unix",
            TransportKind::Tcp => "tcp",
            TransportKind::Memfd => "memfd",
        }
    }

    /// The transport object for this kind (`addr` is used by TCP).
    pub fn transport(self, addr: SocketAddr) -> Box<dyn Transport> {
        match self {
            TransportKind::Shm => Box::new(shm::Shm),
            TransportKind::Unix | TransportKind::Tcp => Box::new(socket::Socket::new(self, addr)),
            TransportKind::Memfd => Box::new(memfd::Memfd),
        }
    }
}

impl FromStr for TransportKind {
    type Err = String;

    fn from_str(s: &str) -> Result<TransportKind, String> {
        TransportKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown transport {s:?} (choose shm, unix, tcp or memfd)"))
    }
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything a transport needs to know about the run it serves.
pub struct Session<'a> {
    /// The segment or socket name.
    pub name: &'a Name,
    /// How long any single wait for the peer may last.
    pub timeout: Duration,
    /// The largest payload a consumer accepts from a socket.
    pub max_payload: u64,
    /// How long to keep exclusive access (`--hold`): the producer after
    /// copying, before releasing; the consumer after verifying, before
    /// acknowledging.
    pub hold: Duration,
    /// Consumer over memfd only (`--try-tamper`): before reading the
    /// received memory, try to shrink, grow, write and writably map it, and
    /// report the kernel's refusals ([`memfd::seal::try_to_change`]).
    pub try_tamper: bool,
    /// Where the story is told.
    pub story: &'a Story,
}

/// Waits `hold` (`--hold`), saying "{doing} for N ms{after} (--hold)" and
/// showing a spinner meanwhile; returns early on a signal.
pub(crate) fn hold(story: &Story, hold: Duration, doing: &str, after: &str) -> Result<()> {
    if hold.is_zero() {
        return Ok(());
    }
    story.say(format_args!(
        "{doing} for {} ms{after} (--hold)",
        hold.as_millis()
    ));
    let _spin = story.waiting(format!("{doing} (--hold)"));
    crate::wait::sleep(hold)
}

/// Where the producer's payload is when the transport gets it.
pub enum Payload<'a> {
    /// Still in the (checked) file: the shared-memory transport reads it
    /// straight into the segment.
    File(&'a SourceImage),
    /// Already read into this process's memory.
    Heap(&'a [u8]),
}

impl Payload<'_> {
    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        match self {
            Payload::File(image) => image.len,
            Payload::Heap(bytes) => bytes.len() as u64,
        }
    }
}

/// What the producer hands to a transport.
pub struct Outgoing<'a> {
    /// The payload.
    pub payload: Payload<'a>,
    /// How a payload in the heap is copied into shared memory (`--copy`).
    pub copy: CopyMode,
}

/// What a transport reports after sending.
#[derive(Clone, Debug)]
pub struct Sent {
    /// CRC-32 of the payload as sent.
    pub crc32: u32,
    /// Wall-clock time at which the first copy towards the consumer began.
    pub copy_started: SystemTime,
    /// Time spent copying the payload to where the consumer can reach it.
    pub copy: Duration,
    /// Time spent waiting for the consumer to take and acknowledge it.
    pub wait: Duration,
    /// The consumer's pid, when the transport knows it.
    pub consumer_pid: Option<u32>,
    /// The copies of the payload this process made while sending.
    pub ledger: Ledger,
    /// The kernel's view of the transfer phase (first copy to acknowledgement).
    pub witness: Witness,
}

impl Sent {
    /// Tells the story of the consumer's acknowledgement, which came after
    /// `self.wait`, followed by `then` (what the producer does next, if
    /// anything), and returns the report.
    pub(crate) fn acknowledged(self, story: &Story, then: &str) -> Sent {
        story.say(format_args!(
            "{} acknowledged after {}{then}",
            self.consumer_pid
                .map_or("the consumer".to_owned(), |pid| format!(
                    "consumer pid {pid}"
                )),
            ms(self.wait)
        ));
        self
    }
}

/// The payload as the consumer sees it, valid only during the callback.
pub struct Incoming<'a> {
    /// The payload bytes (for shared memory: the mapped segment itself).
    pub bytes: &'a [u8],
    /// CRC-32 the producer recorded.
    pub crc32: u32,
    /// Started when the payload began to arrive; the callback finishes it once
    /// the payload is verified, which ends the consumer's transfer phase.
    pub meter: Meter,
}

/// What a transport reports after receiving.
#[derive(Clone, Debug)]
pub struct Received {
    /// Time from the start until the payload began to arrive (shared memory:
    /// until the lock was taken with a payload ready).
    pub wait: Duration,
    /// Time spent moving the bytes into this process (zero for shared memory,
    /// which is read in place).
    pub receive: Duration,
    /// The producer's pid, when the transport knows it.
    pub producer_pid: Option<u32>,
    /// The copies of the payload this process made while receiving.
    pub ledger: Ledger,
    /// The seals found on the payload's memory (memfd only).
    pub seals: Option<Vec<&'static str>>,
    /// The attempts to change that memory and the kernel's answers (memfd
    /// with [`Session::try_tamper`] only).
    pub tamper: Option<Vec<memfd::seal::Attempt>>,
}

/// One way of carrying a payload from producer to consumer.
pub trait Transport {
    /// Producer side: makes the payload available, waits for the consumer's
    /// acknowledgement, and removes what it created.
    ///
    /// # Errors
    /// A timeout waiting for the consumer, a dead consumer, a rejection, a
    /// signal, or a system error.
    fn send(&self, session: &Session<'_>, out: &Outgoing<'_>) -> Result<Sent>;

    /// Consumer side: waits for a payload and calls `accept` with it. If
    /// `accept` succeeds the producer gets an acknowledgement, otherwise a
    /// rejection, and the error is returned.
    ///
    /// # Errors
    /// A timeout waiting for the producer, a dead producer, a malformed
    /// segment or message, a signal, or whatever `accept` returns.
    fn receive(
        &self,
        session: &Session<'_>,
        accept: &mut dyn FnMut(Incoming<'_>) -> Result<()>,
    ) -> Result<Received>;
}
