//! The Unix and TCP socket peers, on the product's own connections.
//!
//! The Unix and TCP socket peers (throughput and round trip), on the
//! product's connections: `common`'s listener, connection and framing-free
//! reads and writes with stall timeouts.
//!
//! Stop-and-wait (`unix`, `tcp`): the sender writes a payload and waits for
//! its acknowledgement before the next. Streamed (`unix-stream`,
//! `tcp-stream`): the sender keeps up to `slots` payloads outstanding, as
//! `shm-pipelined` does with its slots, and a sample is the interval
//! between two acknowledgements ([`Measure::pipelined`]). The receiver is
//! the same for both: read a payload, check it, acknowledge it.
//!
//! Waiting: with a spin budget (`--wait spin`, `spin_us` > 0) every reader
//! first busy-polls with non-blocking reads (`recv(MSG_DONTWAIT)`) until no
//! byte has arrived for `spin_us`, then blocks in `read(2)`; without one
//! (`--wait block`) it blocks at once.

use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::{sockopt, RecvFlags};

use super::report::PeerReport;
use super::sample::{Measure, Tally, POLLED_READS};
use super::spec::Spec;
use crate::case::Channel;
use crate::checksum::{stamp, Expected, PageBuf};
use common::error::{Error, Result, Role};
use common::name::Name;
use common::story::Story;
use common::transport::socket::{Conn, Endpoint, Listener};
use common::wait::Deadline;

fn endpoint(spec: &Spec) -> Result<(Endpoint, Name)> {
    let name = spec.segment_name()?;
    let endpoint = match spec.transport {
        Channel::Tcp | Channel::TcpStream => Endpoint::Tcp(
            spec.addr
                .ok_or_else(|| Error::Usage("--bench-peer: a tcp case needs an address".into()))?,
        ),
        _ => Endpoint::Unix(name.socket_path()),
    };
    Ok((endpoint, name))
}

/// Sender side of a socket case (and of the memfd case, whose descriptors
/// travel over a Unix socket): listens, accepts the receiver (which says
/// hello), and removes the socket file at once.
pub(super) fn accept(spec: &Spec) -> Result<Conn> {
    let (endpoint, name) = endpoint(spec)?;
    let listener = Listener::bind(&endpoint, &name)?;
    let deadline = Deadline::after(spec.timeout());
    let (conn, _pid) = listener
        .accept(&deadline, &Story::new(Role::Producer, true))?
        .ok_or_else(|| deadline.timeout(format!("no receiver connected to {endpoint}")))?;
    Ok(conn)
}

/// Receiver side of a socket or memfd case: connects and says hello.
pub(super) fn connect(spec: &Spec) -> Result<Conn> {
    let (endpoint, _) = endpoint(spec)?;
    let deadline = Deadline::after(spec.timeout());
    let mut conn = Conn::connect(&endpoint, &deadline)?
        .ok_or_else(|| deadline.timeout(format!("no sender listened on {endpoint}")))?;
    conn.hello(spec.timeout())?;
    Ok(conn)
}

/// Fills `buf` from `conn`: with a spin budget, first by non-blocking reads
/// in a loop until no byte has come for `spin`, then by blocking reads.
/// `Ok(false)` when `eof_ok` and the peer closed before the first byte.
fn read_spin(
    conn: &mut Conn,
    buf: &mut [u8],
    spin: Duration,
    stall: Duration,
    peer: Role,
    eof_ok: bool,
) -> Result<bool> {
    let mut got = 0;
    if !spin.is_zero() {
        let mut last = Instant::now();
        while got < buf.len() {
            POLLED_READS.fetch_add(1, Ordering::Relaxed);
            match rustix::net::recv(conn.as_fd(), &mut buf[got..], RecvFlags::DONTWAIT) {
                Ok((0, _)) if got == 0 && eof_ok => return Ok(false),
                Ok((0, _)) => {
                    return Err(Error::PeerGone(format!(
                        "the {peer} closed the connection after {got} of {} bytes",
                        buf.len()
                    )))
                }
                Ok((n, _)) => {
                    got += n;
                    last = Instant::now();
                }
                Err(Errno::AGAIN | Errno::INTR) => {
                    if last.elapsed() >= spin {
                        break;
                    }
                    common::signals::check()?;
                    std::hint::spin_loop();
                }
                Err(e) => return Err(Error::io("read from the socket", e.into())),
            }
        }
    }
    if got == buf.len() {
        Ok(true)
    } else if got == 0 && eof_ok {
        conn.read_exact_or_eof(buf, stall, peer)
    } else {
        conn.read_exact(&mut buf[got..], stall, peer, None)
            .map(|()| true)
    }
}

/// unix and tcp, sender: `write` the payload, then `read` the answer: an
/// 8-byte acknowledgement (throughput), or the whole message sent back
/// (latency). Closing the connection is the stop.
pub(super) fn sender(spec: &Spec, echo: bool) -> Result<PeerReport> {
    let mut conn = accept(spec)?;
    let granted = sockopt::socket_send_buffer_size(conn.as_fd()).ok();
    if spec.transport.is_stream() && !echo {
        return stream_sender(spec, conn).map(|r| PeerReport {
            socket_buffer: granted.map(|b| b as u64),
            ..r
        });
    }
    let spin = spec.spin();
    let mut src = PageBuf::pattern(spec.payload_len());
    let mut reply = PageBuf::pattern(if echo { spec.payload_len() } else { 8 });
    let expected = echo.then(|| Expected::of_pattern(reply.as_mut_slice()));
    let mut m = Measure::new(spec, 0);
    let stall = spec.timeout();
    m.stamped(&mut src, |payload, seq, lap| {
        conn.write_all(payload, stall, Role::Consumer, None)?;
        read_spin(
            &mut conn,
            reply.as_mut_slice(),
            spin,
            stall,
            Role::Consumer,
            false,
        )?;
        lap.stop();
        match &expected {
            Some(expected) => {
                expected
                    .verify(reply.as_slice(), seq)
                    .map_err(|reason| Error::BadMessage {
                        peer: Role::Consumer,
                        reason: format!("reply: {reason}"),
                    })
            }
            None => check_ack(reply.as_slice().try_into().expect("8 bytes"), seq),
        }
    })?;
    Ok(PeerReport {
        socket_buffer: granted.map(|b| b as u64),
        ..m.finish(1.0)
    })
}

/// unix-stream and tcp-stream, sender: writes payload after payload,
/// keeping at most `slots` unacknowledged, and reads the acknowledgements
/// in order; a sample ends when its payload's acknowledgement arrives.
fn stream_sender(spec: &Spec, conn: Conn) -> Result<PeerReport> {
    let depth = u64::from(spec.slots.max(2));
    let mut src = PageBuf::pattern(spec.payload_len());
    let mut m = Measure::new(spec, depth as usize);
    let stall = spec.timeout();
    let spin = spec.spin();
    // Sending and reading acknowledgements take turns on one thread, so
    // both closures share the connection.
    let conn = std::cell::RefCell::new(conn);
    m.pipelined(
        depth,
        |seq| {
            stamp(src.as_mut_slice(), seq);
            conn.borrow_mut()
                .write_all(src.as_slice(), stall, Role::Consumer, None)
        },
        |seq| {
            let mut ack = [0u8; 8];
            read_spin(
                &mut conn.borrow_mut(),
                &mut ack,
                spin,
                stall,
                Role::Consumer,
                false,
            )?;
            check_ack(&ack, seq)
        },
    )?;
    Ok(m.finish(1.0))
}

fn check_ack(ack: &[u8; 8], seq: u64) -> Result<()> {
    let got = u64::from_le_bytes(*ack);
    if got != seq {
        return Err(Error::BadMessage {
            peer: Role::Consumer,
            reason: format!("acknowledged payload {got}, expected {seq}"),
        });
    }
    Ok(())
}

/// unix and tcp, receiver: `read` every byte into a buffer, check it, and
/// answer: with the 8-byte sequence number as an acknowledgement (throughput),
/// or with the whole message (latency). The sender closing the connection
/// ends the case.
pub(super) fn receiver(spec: &Spec, echo: bool) -> Result<PeerReport> {
    let mut conn = connect(spec)?;
    let granted = sockopt::socket_recv_buffer_size(conn.as_fd()).ok();
    let spin = spec.spin();
    let mut buf = PageBuf::pattern(spec.payload_len());
    let expected = Expected::of_pattern(buf.as_mut_slice());
    let mut tally = Tally::new(spec);
    let stall = spec.timeout();
    loop {
        let seq = tally.next_seq();
        if !read_spin(
            &mut conn,
            buf.as_mut_slice(),
            spin,
            stall,
            Role::Producer,
            true,
        )? {
            break;
        }
        expected
            .verify(buf.as_slice(), seq)
            .map_err(|reason| Error::BadMessage {
                peer: Role::Producer,
                reason,
            })?;
        let answer = if echo {
            buf.as_slice()
        } else {
            &seq.to_le_bytes()[..]
        };
        conn.write_all(answer, stall, Role::Producer, None)?;
    }
    // The read that found the end of the stream is not a transfer.
    Ok(PeerReport {
        socket_buffer: granted.map(|b| b as u64),
        ..tally.finish(1.0, 1)
    })
}
