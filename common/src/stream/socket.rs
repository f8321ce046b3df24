//! The same stream over a socket: one connection, and one more pair of copies, per reader.
//!
//! The producer listens (Unix socket or TCP, as for the one-image hand-off)
//! and accepts readers between frames. Each frame goes to each connection as
//! a 64-byte header ([`FrameHeader::to_wire`]) followed by the pixels: copied
//! into the kernel once per reader, and out of it by each reader. A header
//! with frame id 0 ends the stream.
//!
//! Under [`Policy::Latest`] a connection whose send buffer is full when a
//! frame starts misses that frame; under [`Policy::Every`] the producer
//! writes every frame to every reader. Either way a reader that takes no
//! byte for [`EVICT_AFTER`] is dropped.

use std::time::Duration;

use super::format::{Frame, FrameHeader, WIRE_LEN, WIRE_POLICY};
use super::frames::Source;
use super::{Policy, Read, ReaderStats, EVICT_AFTER};
use crate::copy::CopyMode;
use crate::error::{Error, Result, Role};
use crate::story::Story;
use crate::transport::socket::{Conn, Endpoint, Listener};
use crate::wait::Deadline;

/// The largest frame a socket reader accepts (1 GiB).
pub const MAX_FRAME_BYTES: u64 = 1 << 30;

/// The producer's side: a listener and the readers it accepted.
pub struct Sender {
    listener: Listener,
    readers: Vec<Conn>,
    policy: Policy,
    frame: Vec<u8>,
    next: u64,
    evicted: u64,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("readers", &self.readers.len())
            .field("next", &self.next)
            .finish()
    }
}

impl Sender {
    /// Listens on `endpoint`.
    ///
    /// # Errors
    /// As [`Listener::bind`].
    pub fn bind(endpoint: &Endpoint, name: &crate::Name, policy: Policy) -> Result<Sender> {
        Ok(Sender {
            listener: Listener::bind(endpoint, name)?,
            readers: Vec::new(),
            policy,
            frame: Vec::new(),
            next: 1,
            evicted: 0,
        })
    }

    /// Frames published so far.
    pub fn published(&self) -> u64 {
        self.next - 1
    }

    /// Readers dropped for holding the stream up.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Readers connected now (after accepting those waiting).
    ///
    /// # Errors
    /// As [`Listener::accept`].
    pub fn readers(&mut self, story: &Story) -> Result<usize> {
        while self.listener.pending() {
            match self
                .listener
                .accept(&Deadline::after(Duration::from_secs(2)), story)?
            {
                Some((conn, _pid)) => self.readers.push(conn),
                None => break,
            }
        }
        Ok(self.readers.len())
    }

    /// Waits until `count` readers are connected.
    ///
    /// # Errors
    /// [`Error::Timeout`] at the deadline.
    pub fn await_readers(
        &mut self,
        count: usize,
        deadline: &Deadline,
        story: &Story,
    ) -> Result<()> {
        while self.readers(story)? < count {
            match self.listener.accept(deadline, story)? {
                Some((conn, _pid)) => self.readers.push(conn),
                None => {
                    return Err(deadline.timeout(format!(
                        "{count} consumer(s) connected, {} did",
                        self.readers.len()
                    )))
                }
            }
        }
        Ok(())
    }

    /// Makes the next frame from `source` and writes it to every reader
    /// (under [`Policy::Latest`], to every reader with room for it).
    ///
    /// # Errors
    /// [`Error::Interrupted`] on a signal, or an error accepting a reader.
    pub fn publish(&mut self, source: &Source, copy: CopyMode, story: &Story) -> Result<u64> {
        self.readers(story)?;
        let shape = source.shape();
        let id = self.next;
        self.frame.resize(shape.len() as usize, 0);
        let crc32 = source.fill(id, &mut self.frame, copy);
        let header = self.wire(&shape.published(id, crc32));
        let readers = std::mem::take(&mut self.readers);
        let mut kept = Vec::with_capacity(readers.len());
        for mut conn in readers {
            if self.policy == Policy::Latest && !conn.writable() {
                kept.push(conn);
                continue;
            }
            let sent = conn
                .write_all(&header, EVICT_AFTER, Role::Consumer, None)
                .and_then(|()| conn.write_all(&self.frame, EVICT_AFTER, Role::Consumer, None));
            match sent {
                Ok(()) => kept.push(conn),
                Err(e @ Error::Interrupted(_)) => {
                    self.readers = kept;
                    return Err(e);
                }
                // A reader that left, or took no byte for EVICT_AFTER.
                Err(e) => {
                    if !matches!(&e, Error::PeerGone(m) if m.contains("closed")) {
                        self.evicted += 1;
                    }
                }
            }
        }
        self.readers = kept;
        self.next += 1;
        Ok(id)
    }

    /// A header on the wire, with the stream's policy.
    fn wire(&self, header: &FrameHeader) -> [u8; WIRE_LEN] {
        let mut wire = header.to_wire();
        wire[WIRE_POLICY..WIRE_POLICY + 4].copy_from_slice(&(self.policy as u32).to_le_bytes());
        wire
    }

    /// Tells every reader the stream has ended.
    pub fn end(&mut self) {
        let end = self.wire(&FrameHeader::default());
        for conn in &mut self.readers {
            let _ = conn.write_all(&end, EVICT_AFTER, Role::Consumer, None);
        }
    }
}

/// A reader's side: one connection, and a buffer the frames are copied into.
pub struct Receiver {
    conn: Conn,
    buf: Vec<u8>,
    last: u64,
    stats: ReaderStats,
    policy: Policy,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("last", &self.last)
            .finish()
    }
}

impl Receiver {
    /// Connects to a stream's producer, waiting until the deadline for it
    /// to listen.
    ///
    /// # Errors
    /// [`Error::Timeout`] if nobody listens by then; as [`Conn::connect`].
    pub fn connect(endpoint: &Endpoint, deadline: &Deadline) -> Result<Receiver> {
        let mut conn = Conn::connect(endpoint, deadline)?
            .ok_or_else(|| deadline.timeout(format!("no producer listening on {endpoint}")))?;
        conn.hello(EVICT_AFTER)?;
        Ok(Receiver {
            conn,
            buf: Vec::new(),
            last: 0,
            stats: ReaderStats::default(),
            policy: Policy::Every,
        })
    }

    /// The counts so far.
    pub fn stats(&self) -> ReaderStats {
        self.stats
    }

    /// The stream's policy, as the producer's headers say it.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Reads the next frame into this reader's buffer, verifies it and
    /// hands it to `look`.
    ///
    /// # Errors
    /// [`Error::PeerGone`] if the producer closes the connection without
    /// ending the stream or sends nothing for `stall`; [`Error::BadMessage`]
    /// for a header that lies; [`Error::CrcMismatch`].
    pub fn next<T>(
        &mut self,
        stall: Duration,
        mut look: impl FnMut(&Frame, &[u8]) -> T,
    ) -> Result<Read<T>> {
        let mut wire = [0u8; WIRE_LEN];
        let bad = |reason: String| Error::BadMessage {
            peer: Role::Producer,
            reason,
        };
        if !self
            .conn
            .read_exact_or_eof(&mut wire, stall, Role::Producer)?
        {
            return Err(Error::PeerGone(format!(
                "the producer closed the stream after frame {} without ending it \
                 (it dropped this reader as too slow, or it died)",
                self.last
            )));
        }
        let header = FrameHeader::from_wire(&wire).map_err(bad)?;
        let code = u32::from_le_bytes(wire[WIRE_POLICY..WIRE_POLICY + 4].try_into().unwrap());
        self.policy = Policy::from_u64(code.into())
            .ok_or_else(|| bad(format!("unknown stream policy {code}")))?;
        if header.frame_id == 0 {
            return Ok(Read::Ended);
        }
        let frame = header
            .check(MAX_FRAME_BYTES)
            .map_err(|reason| bad(format!("frame {}'s header lies: {reason}", header.frame_id)))?;
        if frame.id <= self.last {
            return Err(bad(format!(
                "frame {} came after frame {}",
                frame.id, self.last
            )));
        }
        self.buf.resize(frame.len, 0);
        self.conn
            .read_exact(&mut self.buf, stall, Role::Producer, None)?;
        let crc = crc32fast::hash(&self.buf);
        if crc != frame.crc32 {
            return Err(Error::CrcMismatch {
                expected: frame.crc32,
                actual: crc,
            });
        }
        if self.last > 0 {
            self.stats.skipped += frame.id - self.last - 1;
        }
        self.last = frame.id;
        self.stats.frames += 1;
        let seen = look(&frame, &self.buf);
        Ok(Read::Frame(frame, seen))
    }
}
