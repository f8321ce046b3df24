//! The memfd transport's framing on the Unix socket: offer, answer and decision.
//!
//! The memfd transport's framing on the Unix socket: the offer that carries
//! the descriptor, the consumer's answer and the producer's decision, each
//! read and written with bounded waits.
//!
//! 1. consumer → producer: the hello of the socket transports (16 bytes,
//!    `P1P2HEL\0`, u32 pid, u32 zero), written with `write(2)`.
//! 2. producer → consumer: the **offer**, one `sendmsg(2)` of 24 bytes,
//!    `P1P2MFD\0`, u64 length, u32 CRC-32, u32 zero, with exactly one
//!    descriptor (the sealed memfd) in an `SCM_RIGHTS` control message.
//! 3. consumer → producer: the **answer**, `P1P2ACK\0` or `P1P2NAK\0` (8 bytes).
//! 4. producer → consumer: the **decision**, [`DONE`] or [`WITHDRAWN`] (8
//!    bytes). The producer may send WITHDRAWN before any answer (its
//!    deadline, a signal) and then closes.
//!
//! All integers little-endian. The offer is received with `recvmsg(2)` and
//! `MSG_CMSG_CLOEXEC`; every descriptor that arrives with it is taken into an
//! [`OwnedFd`], so each one is closed whatever the consumer decides.
//! Descriptors beyond [`MAX_FDS`] are discarded by the kernel itself
//! (`MSG_CTRUNC`), which closes them.
//!
//! `sendmsg`/`recvmsg` are not counted in `/proc/self/io` (see
//! [`crate::ledger`]); the hello, the answer and the decision go through
//! `read(2)`/`write(2)` and are. No byte of the payload passes through the
//! socket at all.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};

use crate::error::{Error, Result, Role};
use crate::signals;
use crate::wait::Deadline;

pub(crate) use crate::transport::socket::protocol::{ACK, NAK};

/// Size of the offer.
pub const OFFER_LEN: usize = 24;

const OFFER: &[u8; 8] = b"P1P2MFD\0";

/// The magic of the `unix` transport's header: a producer of the other
/// transport answered.
const STREAM: &[u8; 8] = b"P1P2MSG\0";

/// The producer's decision after an ACK: the payload is delivered.
pub const DONE: &[u8; 8] = b"P1P2DON\0";

/// The producer's decision at its deadline (or on a signal) before any
/// answer: the payload is withdrawn, not delivered.
pub const WITHDRAWN: &[u8; 8] = b"P1P2WDR\0";

/// Descriptors the consumer makes room for with an offer: one is expected,
/// a few more are received only to be counted and closed.
pub const MAX_FDS: usize = 4;

/// The offer of a payload of `len` bytes with CRC-32 `crc32`.
pub fn offer(len: u64, crc32: u32) -> [u8; OFFER_LEN] {
    let mut offer = [0u8; OFFER_LEN];
    offer[..8].copy_from_slice(OFFER);
    offer[8..16].copy_from_slice(&len.to_le_bytes());
    offer[16..20].copy_from_slice(&crc32.to_le_bytes());
    offer
}

/// The announced length and CRC-32, or why `bytes` is not an offer.
pub fn parse_offer(bytes: &[u8; OFFER_LEN]) -> std::result::Result<(u64, u32), String> {
    if &bytes[..8] == OFFER {
        Ok((
            u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")),
            u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes")),
        ))
    } else if &bytes[..8] == STREAM {
        Err("it sends the payload through the socket (--transport unix), not as a memfd".into())
    } else {
        Err("wrong magic (is something else listening there?)".into())
    }
}

/// What arrived as the offer: its bytes and every descriptor that came with
/// them.
pub struct ReceivedOffer {
    /// The 24 bytes.
    pub bytes: [u8; OFFER_LEN],
    /// Every descriptor received, each closed when dropped.
    pub fds: Vec<OwnedFd>,
    /// Whether the kernel cut descriptors that did not fit (`MSG_CTRUNC`).
    pub truncated: bool,
}

/// Sends the offer and `fd` in one `sendmsg`, waiting at most until
/// `deadline` for room in the socket.
///
/// # Errors
/// [`Error::PeerGone`] if the consumer hung up, a timeout, a signal, or the
/// system's error.
pub fn send_offer(
    sock: BorrowedFd<'_>,
    offer: &[u8; OFFER_LEN],
    fd: BorrowedFd<'_>,
    deadline: &Deadline,
) -> Result<()> {
    loop {
        signals::check()?;
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        let fds = [fd];
        if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
            return Err(Error::Usage(
                "no room for one descriptor in a control message".into(),
            ));
        }
        match sendmsg(
            sock,
            &[IoSlice::new(offer)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            // The descriptor travels with the first byte; the rest of a
            // (never seen in practice) short send follows alone.
            Ok(n) => {
                return match write_all(sock, &offer[n..], deadline)? {
                    true => Ok(()),
                    false => Err(gone("hung up while the memfd was offered")),
                }
            }
            Err(Errno::AGAIN | Errno::INTR) if deadline.remaining().is_some() => {}
            Err(Errno::AGAIN | Errno::INTR) => {
                return Err(deadline.timeout("the consumer's socket had no room for the offer"))
            }
            Err(Errno::PIPE | Errno::CONNRESET) => {
                return Err(gone("hung up before the memfd was offered"))
            }
            Err(e) => return Err(Error::io("sendmsg the memfd", e.into())),
        }
    }
}

/// Receives the 24-byte offer with `recvmsg`, collecting every descriptor
/// that comes with it; waits at most until `deadline`.
///
/// # Errors
/// [`Error::PeerGone`] if the producer closed the connection first, a
/// timeout, a signal, or the system's error.
pub fn recv_offer(sock: BorrowedFd<'_>, deadline: &Deadline) -> Result<ReceivedOffer> {
    let mut bytes = [0u8; OFFER_LEN];
    let mut got = 0;
    let mut fds = Vec::new();
    let mut truncated = false;
    while got < OFFER_LEN {
        signals::check()?;
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [IoSliceMut::new(&mut bytes[got..])];
        let result = recvmsg(sock, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC);
        // Take every descriptor first, whatever else happened: each one is
        // closed when `fds` drops.
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = message {
                fds.extend(received);
            }
        }
        match result {
            Ok(msg) => {
                truncated |= msg.flags.contains(ReturnFlags::CTRUNC);
                if msg.bytes == 0 {
                    return Err(Error::PeerGone(format!(
                        "the producer closed the connection after {got} of the offer's \
                         {OFFER_LEN} bytes"
                    )));
                }
                got += msg.bytes;
            }
            Err(Errno::AGAIN | Errno::INTR) => {
                if deadline.remaining().is_none() {
                    return Err(deadline.timeout("the producer sent no memfd"));
                }
            }
            Err(Errno::CONNRESET) => {
                return Err(Error::PeerGone(
                    "the producer reset the connection before sending its memfd".into(),
                ))
            }
            Err(e) => return Err(Error::io("recvmsg the memfd", e.into())),
        }
    }
    Ok(ReceivedOffer {
        bytes,
        fds,
        truncated,
    })
}

/// What reading one 8-byte word found.
#[derive(Debug, PartialEq, Eq)]
pub enum Word {
    /// The word.
    Got([u8; 8]),
    /// The peer closed the connection (or reset it) first.
    Eof,
    /// Nothing arrived before the deadline.
    Timeout,
}

/// Reads one 8-byte word (an answer or a decision) with `read(2)`, at most
/// until `deadline`.
///
/// # Errors
/// [`Error::Interrupted`] on a signal, or the system's error.
pub fn read_word(sock: BorrowedFd<'_>, deadline: &Deadline) -> Result<Word> {
    let mut word = [0u8; 8];
    let mut got = 0;
    while got < word.len() {
        signals::check()?;
        match rustix::io::read(sock, &mut word[got..]) {
            Ok(0) => return Ok(Word::Eof),
            Ok(n) => got += n,
            Err(Errno::AGAIN | Errno::INTR) => {
                if deadline.remaining().is_none() {
                    return Ok(Word::Timeout);
                }
            }
            Err(Errno::CONNRESET | Errno::PIPE) => return Ok(Word::Eof),
            Err(e) => return Err(Error::io("read from the socket", e.into())),
        }
    }
    Ok(Word::Got(word))
}

/// Writes all of `bytes` with `write(2)`, at most until `deadline`; `false`
/// if the peer hung up.
///
/// # Errors
/// A timeout, [`Error::Interrupted`] on a signal, or the system's error.
pub fn write_all(sock: BorrowedFd<'_>, mut bytes: &[u8], deadline: &Deadline) -> Result<bool> {
    while !bytes.is_empty() {
        signals::check()?;
        match rustix::io::write(sock, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::AGAIN | Errno::INTR) => {
                if deadline.remaining().is_none() {
                    return Err(deadline.timeout("the peer's socket had no room for 8 bytes"));
                }
            }
            Err(Errno::PIPE | Errno::CONNRESET) => return Ok(false),
            Err(e) => return Err(Error::io("write to the socket", e.into())),
        }
    }
    Ok(true)
}

fn gone(what: &str) -> Error {
    Error::PeerGone(format!("the {} {what}", Role::Consumer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offer_round_trips_and_the_other_transport_is_named() {
        let bytes = offer(1 << 33, 0xdead_beef);
        assert_eq!(&bytes[..8], b"P1P2MFD\0");
        assert_eq!(&bytes[20..], &[0; 4]);
        assert_eq!(parse_offer(&bytes), Ok((1 << 33, 0xdead_beef)));
        let mut stream = bytes;
        stream[..8].copy_from_slice(b"P1P2MSG\0");
        assert!(parse_offer(&stream)
            .unwrap_err()
            .contains("--transport unix"));
        stream[0] = b'X';
        assert!(parse_offer(&stream).unwrap_err().contains("wrong magic"));
    }

    #[test]
    fn the_words_are_distinct_8_byte_magics() {
        let words = [ACK, NAK, DONE, WITHDRAWN];
        for (i, a) in words.iter().enumerate() {
            assert!(a.starts_with(b"P1P2") && a[7] == 0);
            for b in &words[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
