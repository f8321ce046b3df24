//! The memfd peers of the benchmark: a fresh sealed memfd per payload, on `common`'s memfd code.
//!
//! The memfd peers (throughput, cold): the product's sealed-memfd hand-off,
//! once per payload, on `common`'s memfd code, listener and connection.
//!
//! Each transfer is what `producer --transport memfd` does for one image:
//! the sender creates a memfd, sizes it, copies the payload in through a
//! writable mapping (`memcpy`: its one copy), unmaps it, seals it (shrink,
//! grow, write, seal) and passes it with its length in one `sendmsg`
//! (`SCM_RIGHTS`); the receiver takes it with `recvmsg`, makes every check
//! the product's consumer makes (`fstat`, `/proc/self/fd`, `F_GET_SEALS`,
//! size), maps it read-only, reads every byte in place (stamp and checksum),
//! unmaps it, closes it and answers with the 8-byte sequence number. The
//! sample runs from the sender's `memfd_create` until it has read that
//! answer: the honest cost of a fresh, sealed memory per payload.
//!
//! There is no steady mode. A pool of memfds reused for many payloads could
//! only be sealed against resizing: `F_SEAL_WRITE` is for good, so a memfd
//! that the sender rewrites cannot carry it. The receiver would then read
//! memory the sender can still change, safe only while the sender follows
//! the protocol, which is the named segment's guarantee, already measured
//! by the `shm` steady row, and not this transport's.

use std::os::fd::AsFd;

use super::report::PeerReport;
use super::sample::{Measure, Tally};
use super::spec::Spec;
use crate::checksum::{read_stamp, Expected, PageBuf, STOP};
use common::copy::copy_payload;
use common::error::{Error, Result, Role};
use common::transport::memfd::{seal, wire};
use common::transport::socket::Conn;
use common::wait::Deadline;

/// Sends one payload as a fresh sealed memfd and waits for its answer.
fn send_one(conn: &Conn, name: &common::Name, src: &[u8], seq: u64, spec: &Spec) -> Result<()> {
    let fd = seal::create(name, src.len() as u64, |memory| {
        copy_payload(memory, src, spec.copy_mode());
        Ok(())
    })?;
    let deadline = Deadline::after(spec.timeout());
    wire::send_offer(
        conn.as_fd(),
        &wire::offer(src.len() as u64, 0),
        fd.as_fd(),
        &deadline,
    )?;
    drop(fd);
    match wire::read_word(conn.as_fd(), &deadline)? {
        wire::Word::Got(word) if u64::from_le_bytes(word) == seq => Ok(()),
        wire::Word::Got(word) => Err(Error::BadMessage {
            peer: Role::Consumer,
            reason: format!(
                "acknowledged payload {}, expected {seq}",
                u64::from_le_bytes(word)
            ),
        }),
        wire::Word::Eof => Err(Error::PeerGone(
            "the receiver closed the connection before answering".into(),
        )),
        wire::Word::Timeout => Err(deadline.timeout(format!("no answer to payload {seq}"))),
    }
}

/// memfd cold, sender: a fresh sealed memfd for every transfer.
pub(super) fn cold_sender(spec: &Spec) -> Result<PeerReport> {
    let name = spec.segment_name()?;
    let conn = super::socket::accept(spec)?;
    let mut src = PageBuf::pattern(spec.payload_len());
    let mut m = Measure::new(spec, 0);
    m.stamped(&mut src, |payload, seq, _lap| {
        send_one(&conn, &name, payload, seq, spec)
    })?;
    let report = m.finish(1.0);
    send_one(&conn, &name, &STOP.to_le_bytes(), STOP, spec)?;
    Ok(report)
}

/// memfd cold, receiver: checks, maps, reads in place, unmaps and closes
/// every memfd, and answers with its sequence number.
pub(super) fn cold_receiver(spec: &Spec) -> Result<PeerReport> {
    let conn = super::socket::connect(spec)?;
    let expected = Expected::for_size(spec.payload_len());
    let mut tally = Tally::new(spec);
    loop {
        let seq = tally.next_seq();
        let offer = wire::recv_offer(conn.as_fd(), &Deadline::after(spec.timeout()))?;
        let refuse = |reason: String| Error::BadMessage {
            peer: Role::Producer,
            reason,
        };
        let (len, _) = wire::parse_offer(&offer.bytes).map_err(refuse)?;
        let mut fds = offer.fds;
        if fds.len() != 1 || offer.truncated {
            return Err(refuse(format!(
                "{} descriptors with payload {seq}, expected one",
                fds.len()
            )));
        }
        let checked = seal::check(fds.pop().expect("one descriptor"), len)?;
        let bytes = &checked.map[..];
        let stop = read_stamp(bytes) == Some(STOP);
        if !stop {
            expected.verify(bytes, seq).map_err(refuse)?;
        }
        // Unmapped (and, the descriptor being closed already, freed) before
        // the answer, as the product's consumer does.
        drop(checked);
        let answer = if stop { STOP } else { seq }.to_le_bytes();
        if !wire::write_all(conn.as_fd(), &answer, &Deadline::after(spec.timeout()))? {
            return Err(Error::PeerGone(
                "the sender closed the connection before the answer".into(),
            ));
        }
        if stop {
            break;
        }
    }
    // Read in place: no copy of the payload.
    Ok(tally.finish(0.0, 0))
}
