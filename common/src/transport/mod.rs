//! Transports: the ways a payload can travel from producer to consumer, behind
//! one interface so that every transport gets the same checks (length, CRC-32,
//! decode), the same output and the same timeouts.
//!
//! - [`shm`]: a shared-memory segment; the producer copies the payload in once
//!   and the consumer reads it in place.

pub mod shm;

use std::time::Duration;

use crate::error::Result;
use crate::name::Name;
use crate::png::SourceImage;
use crate::story::Story;

/// Which transport carries the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    /// A shared-memory segment in /dev/shm.
    Shm,
}

impl TransportKind {
    /// The name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Shm => "shm",
        }
    }
}

/// Everything a transport needs to know about the run it serves.
pub struct Session<'a> {
    /// The segment or socket name.
    pub name: &'a Name,
    /// How long any single wait for the peer may last.
    pub timeout: Duration,
    /// Where the story is told.
    pub story: &'a Story,
}

/// What the producer hands to a transport.
pub struct Outgoing<'a> {
    /// The checked image file.
    pub image: &'a SourceImage,
    /// How long to keep exclusive access after copying (`--hold`).
    pub hold: Duration,
}

/// What a transport reports after sending.
#[derive(Clone, Copy, Debug)]
pub struct Sent {
    /// CRC-32 of the payload as sent.
    pub crc32: u32,
    /// Time spent copying the payload to where the consumer can reach it.
    pub copy: Duration,
    /// Time spent waiting for the consumer to take and acknowledge it.
    pub wait: Duration,
    /// The consumer's pid, when the transport knows it.
    pub consumer_pid: Option<u32>,
}

/// The payload as the consumer sees it, valid only during the callback.
pub struct Incoming<'a> {
    /// The payload bytes (for shared memory: the mapped segment itself).
    pub bytes: &'a [u8],
    /// CRC-32 the producer recorded.
    pub crc32: u32,
}

/// What a transport reports after receiving.
#[derive(Clone, Copy, Debug)]
pub struct Received {
    /// Time from the start until the payload was within reach (shared memory:
    /// until the lock was taken with a payload ready).
    pub wait: Duration,
    /// Time spent moving the bytes into this process (zero for shared memory,
    /// which is read in place).
    pub receive: Duration,
    /// The producer's pid, when the transport knows it.
    pub producer_pid: Option<u32>,
}

/// One way of carrying a payload from producer to consumer.
pub trait Transport {
    /// Which transport this is.
    fn kind(&self) -> TransportKind;

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
