//! The Unix and TCP socket peers, on the product's own connections.
//!
//! The Unix and TCP socket peers (throughput and round trip), on the
//! product's connections: `common`'s listener, connection and framing-free
//! reads and writes with stall timeouts.

use super::report::PeerReport;
use super::sample::{Measure, Tally};
use super::spec::Spec;
use crate::case::Channel;
use crate::checksum::{Expected, PageBuf};
use common::error::{Error, Result, Role};
use common::name::Name;
use common::story::Story;
use common::transport::socket::{Conn, Endpoint, Listener};
use common::wait::Deadline;

fn endpoint(spec: &Spec) -> Result<(Endpoint, Name)> {
    let name = spec.segment_name()?;
    let endpoint = match spec.transport {
        Channel::Tcp => Endpoint::Tcp(
            spec.addr
                .ok_or_else(|| Error::Usage("--bench-peer: a tcp case needs an address".into()))?,
        ),
        _ => Endpoint::Unix(name.socket_path()),
    };
    Ok((endpoint, name))
}

/// Sender side of a socket case: listens, accepts the receiver (which says
/// hello), and removes the socket file at once.
fn accept(spec: &Spec) -> Result<Conn> {
    let (endpoint, name) = endpoint(spec)?;
    let listener = Listener::bind(&endpoint, &name)?;
    let deadline = Deadline::after(spec.timeout());
    let (conn, _pid) = listener
        .accept(&deadline, &Story::new(Role::Producer, true))?
        .ok_or_else(|| deadline.timeout(format!("no receiver connected to {endpoint}")))?;
    Ok(conn)
}

fn connect(spec: &Spec) -> Result<Conn> {
    let (endpoint, _) = endpoint(spec)?;
    let deadline = Deadline::after(spec.timeout());
    let mut conn = Conn::connect(&endpoint, &deadline)?
        .ok_or_else(|| deadline.timeout(format!("no sender listened on {endpoint}")))?;
    conn.hello(spec.timeout())?;
    Ok(conn)
}

/// unix and tcp, sender: `write` the payload, then `read` the answer: an
/// 8-byte acknowledgement (throughput), or the whole message sent back
/// (latency). Closing the connection is the stop.
pub(super) fn sender(spec: &Spec, echo: bool) -> Result<PeerReport> {
    let mut conn = accept(spec)?;
    let mut src = PageBuf::pattern(spec.payload_len());
    let mut reply = PageBuf::pattern(if echo { spec.payload_len() } else { 8 });
    let expected = echo.then(|| Expected::of_pattern(reply.as_mut_slice()));
    let mut m = Measure::new(spec, 0);
    let stall = spec.timeout();
    m.stamped(&mut src, |payload, seq, lap| {
        conn.write_all(payload, stall, Role::Consumer, None)?;
        conn.read_exact(reply.as_mut_slice(), stall, Role::Consumer, None)?;
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
    let mut buf = PageBuf::pattern(spec.payload_len());
    let expected = Expected::of_pattern(buf.as_mut_slice());
    let mut tally = Tally::new(spec);
    let stall = spec.timeout();
    loop {
        let seq = tally.next_seq();
        if !conn.read_exact_or_eof(buf.as_mut_slice(), stall, Role::Producer)? {
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
    Ok(tally.finish(1.0, 1))
}
