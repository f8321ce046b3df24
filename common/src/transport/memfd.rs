//! The memfd transport: an anonymous, sealed memfd passed over a Unix socket.
//!
//! The named segments of [`shm`](super::shm) have a name that can be guessed,
//! squatted on or leaked by a crash, and a file that any process of the same
//! user can truncate or rewrite while the consumer reads it. This transport
//! does it the way Wayland (`wl_shm`), GStreamer (`unixfdsink`) and PipeWire
//! do: the payload lives in a memfd, which has no name in any directory; the
//! producer seals it so that nobody can change or resize it any more, and
//! passes the descriptor itself over a Unix socket (`SCM_RIGHTS`). The
//! consumer checks the seals, maps it read-only and decodes in place, trusting
//! nothing the producer says: what the kernel guarantees is enough.
//!
//! # Producer (P1)
//! 1. creates a memfd (`MFD_CLOEXEC | MFD_ALLOW_SEALING`), sizes it, reads
//!    the image into it through a writable mapping (`pread` from the file, or
//!    a `memcpy` from the heap with `--read heap`), unmaps it, and seals it
//!    with `F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL` (why
//!    `F_SEAL_WRITE` and not `F_SEAL_FUTURE_WRITE`: see `seal`);
//! 2. listens on the Unix socket of the `unix` transport (same path, the
//!    same 0600-from-bind publication and `SO_PEERCRED` check, the same
//!    code) and waits for a consumer's hello;
//! 3. keeps it waiting for `--hold` ms, then sends ONE message: the offer
//!    (length and CRC-32) with the memfd in `SCM_RIGHTS`, and closes its own
//!    descriptor;
//! 4. waits for the answer until its deadline. It is the arbiter of the
//!    outcome: an ACK before the deadline makes the payload **delivered**,
//!    and it replies DONE; a NAK makes it rejected; the deadline or a signal
//!    before any answer makes it **withdrawn**, and it sends WITHDRAWN if it
//!    can, then closes.
//!
//! # Consumer (P2)
//! 1. connects (refusing a socket or listener of another user), says hello;
//! 2. receives the offer with `recvmsg` (`MSG_CMSG_CLOEXEC`), taking every
//!    descriptor that came with it, so each is closed whatever happens;
//! 3. refuses, with one line naming the reason: no descriptor, more than one,
//!    one that is not a memfd (a socket, a disk or `/dev/shm` file), a memfd
//!    lacking any of the shrink, grow and write seals, or smaller than the
//!    length claimed; it answers NAK;
//! 4. maps the memfd read-only (with `--try-tamper`, first tries to shrink,
//!    grow, write and writably map it, and reports the kernel's refusals:
//!    any attempt allowed is a NAK), verifies the CRC-32, decodes in place,
//!    keeps it `--hold` ms, and answers ACK (or NAK);
//! 5. reports **delivered** only after the producer's DONE; after WITHDRAWN
//!    it reports "not delivered: the producer withdrew it"; if the connection
//!    closes instead, "the producer died before confirming" (and there is no
//!    surviving producer to disagree).
//!
//! # Nothing named, nothing leaked
//! Nothing appears in `/dev/shm` at any moment. The memory lives while a
//! descriptor or a mapping of it does, in either process or in flight in the
//! socket, and goes with the last of them, however the processes end. The
//! only file is the socket, removed by its listener when it ends normally,
//! replaced by the next producer or removed by `producer --clean` when it
//! was killed.
//!
//! # Copies
//! The producer makes one copy, into the memfd (a kernel `pread`, or a
//! `memcpy` with `--read heap`); the consumer none. No byte of the payload
//! goes through `read`/`write` between the processes: the socket carries the
//! hello, the 24-byte offer, the answer and the decision.

pub mod seal;
pub mod wire;

use std::os::fd::AsFd;
use std::time::{Duration, Instant, SystemTime};

use crate::error::{Error, Result, Role};
use crate::failpoint;
use crate::ledger::{Ledger, Meter};
use crate::png;
use crate::story::{gbps, ms, thousands, Story};
use crate::transport::fill::{fill, Destination};
use crate::transport::socket::{Conn, Endpoint, Listener};
use crate::transport::{self, Incoming, Outgoing, Received, Sent, Session, Transport};
use crate::wait::Deadline;
use wire::Word;

/// How long the producer tries to deliver its decision (8 bytes into an
/// idle socket: in practice at once).
const DECISION_PATIENCE: Duration = Duration::from_secs(1);

/// The memfd transport.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memfd;

impl Transport for Memfd {
    fn send(&self, session: &Session<'_>, out: &Outgoing<'_>) -> Result<Sent> {
        let story = session.story;
        let name = session.name;
        let len = out.payload.size();
        let meter = Meter::start();
        let copy_started = SystemTime::now();
        let started = Instant::now();
        let mut ledger = Ledger::new();
        let mut crc32 = 0;
        let mut how = "";
        let memfd = seal::create(name, len, |memory| {
            how = fill(memory, out, len, &mut ledger, Destination::Memfd)?;
            crc32 = png::crc32(memory);
            Ok(())
        })?;
        let copy = started.elapsed();
        story.say(format_args!(
            "copied {} bytes {how} in {} ({}); crc32 {crc32:08x}",
            thousands(len),
            ms(copy),
            gbps(len, copy)
        ));
        story.say(
            "unmapped it and sealed it: shrink, grow, write and seal (nothing can change it \
             now); it has no name in /dev/shm",
        );
        failpoint::hit("producer:sealed");

        let endpoint = Endpoint::Unix(name.socket_path());
        let listener = Listener::bind(&endpoint, name)?;
        story.say(format_args!("listening on {endpoint}"));
        let deadline = Deadline::after(session.timeout);
        let accepted = {
            let _spin = story.waiting(format!("waiting for a consumer to connect to {endpoint}"));
            listener.accept(&deadline, story)?
        };
        let Some((conn, consumer_pid)) = accepted else {
            return Err(deadline.timeout(format!("no consumer connected to {endpoint}")));
        };
        story.say(format_args!("consumer pid {consumer_pid} connected"));
        transport::hold(story, session.hold, "holding", " before passing the memfd")?;

        let offer = wire::offer(len, crc32);
        wire::send_offer(
            conn.as_fd(),
            &offer,
            memfd.as_fd(),
            &Deadline::after(session.timeout),
        )?;
        // The consumer (or the socket, while the message is in flight) holds
        // the memory now.
        drop(memfd);
        story.say(format_args!(
            "passed the sealed memfd to consumer pid {consumer_pid} in one message (SCM_RIGHTS, \
             with its length and crc32): no payload byte went through the socket"
        ));
        failpoint::hit("producer:sent");

        let answer_deadline = Deadline::after(session.timeout);
        let answer = {
            let _spin = story.waiting("waiting for the consumer's answer");
            wire::read_word(conn.as_fd(), &answer_deadline)
        };
        let wait = answer_deadline.elapsed();
        let witness = meter.finish();
        let withdraw = |conn: &Conn| {
            let told = wire::write_all(
                conn.as_fd(),
                wire::WITHDRAWN,
                &Deadline::after(DECISION_PATIENCE),
            );
            if matches!(told, Ok(true)) {
                story.say("withdrew the memfd (told the consumer: WITHDRAWN)");
            }
        };
        match answer {
            Ok(Word::Got(word)) if &word == wire::ACK => {
                // Decided: delivered. The consumer learns it from DONE; if it
                // hung up meanwhile it is no longer there to disagree.
                let told = wire::write_all(
                    conn.as_fd(),
                    wire::DONE,
                    &Deadline::after(DECISION_PATIENCE),
                );
                let then = match told {
                    Ok(true) => "; delivered (told it: DONE)",
                    _ => "; delivered (it hung up before hearing DONE)",
                };
                Ok(Sent {
                    crc32,
                    copy_started,
                    copy,
                    wait,
                    consumer_pid: Some(consumer_pid),
                    ledger,
                    witness,
                }
                .acknowledged(story, then))
            }
            Ok(Word::Got(word)) if &word == wire::NAK => {
                Err(Error::rejected_by(Some(consumer_pid)))
            }
            Ok(Word::Got(_)) => {
                withdraw(&conn);
                Err(Error::BadMessage {
                    peer: Role::Consumer,
                    reason: "its answer is neither ACK nor NAK; the memfd was withdrawn".into(),
                })
            }
            Ok(Word::Eof) => Err(Error::PeerGone(format!(
                "consumer pid {consumer_pid} closed the connection before answering: the memfd \
                 was not delivered"
            ))),
            Ok(Word::Timeout) => {
                withdraw(&conn);
                Err(answer_deadline.timeout(format!(
                    "consumer pid {consumer_pid} did not answer, so the memfd was withdrawn \
                     (not delivered)"
                )))
            }
            Err(e) => {
                withdraw(&conn);
                Err(e)
            }
        }
    }

    fn receive(
        &self,
        session: &Session<'_>,
        accept: &mut dyn FnMut(Incoming<'_>) -> Result<()>,
    ) -> Result<Received> {
        let story = session.story;
        let endpoint = Endpoint::Unix(session.name.socket_path());
        let deadline = Deadline::after(session.timeout);
        let conn = {
            let _spin = story.waiting(format!("waiting for a producer on {endpoint}"));
            Conn::connect(&endpoint, &deadline)?
        };
        let mut conn =
            conn.ok_or_else(|| deadline.timeout(format!("no producer listened on {endpoint}")))?;
        let producer_pid = conn.peer_pid();
        let producer = crate::error::peer_label(Role::Producer, producer_pid);
        // The phase starts with the hello, so the kernel's counters show
        // every byte this side puts through read/write: hello and answer.
        let meter = Meter::start();
        conn.hello(session.timeout)?;
        story.say(format_args!("connected to {endpoint} ({producer})"));

        let offer = {
            let _spin = story.waiting("waiting for the producer's memfd");
            wire::recv_offer(conn.as_fd(), &deadline)?
        };
        failpoint::hit("consumer:received");
        let wait = deadline.elapsed();
        let started = Instant::now();
        let nak = |conn: &Conn| {
            let _ = wire::write_all(conn.as_fd(), wire::NAK, &Deadline::after(DECISION_PATIENCE));
        };
        let checked = check_offer(offer, session.max_payload, session.try_tamper);
        let (checked, len, crc32, tamper) = match checked {
            Ok(ok) => ok,
            Err(e) => {
                // Every descriptor received is closed by now.
                nak(&conn);
                return Err(e);
            }
        };
        let receive = started.elapsed();
        let seals = seal::names(checked.seals);
        story.say(format_args!(
            "received a memfd sealed with {} holding {} bytes; mapped it read-only and read it \
             in place (no copy)",
            seals.join(", "),
            thousands(len)
        ));
        if let Some(attempts) = &tamper {
            if let Err(e) = tell_attempts(story, attempts) {
                nak(&conn);
                return Err(e);
            }
        }
        let accepted = accept(Incoming {
            bytes: &checked.map[..len as usize],
            crc32,
            meter,
        })
        .and_then(|()| transport::hold(story, session.hold, "holding", " before acknowledging"));
        drop(checked);
        if let Err(e) = accepted {
            nak(&conn);
            return Err(e);
        }
        // A producer that withdrew may have hung up already: its decision
        // is still in the socket, so read it whatever this write says.
        let _ = wire::write_all(conn.as_fd(), wire::ACK, &Deadline::after(session.timeout))?;
        failpoint::hit("consumer:answered");
        let decided = Deadline::after(session.timeout);
        let decision = {
            let _spin = story.waiting("waiting for the producer's decision");
            wire::read_word(conn.as_fd(), &decided)?
        };
        match decision {
            Word::Got(word) if &word == wire::DONE => {
                story.say("acknowledged; the producer confirmed: delivered");
                Ok(Received {
                    wait,
                    receive,
                    producer_pid,
                    // Read in place: no copy of the payload at all.
                    ledger: Ledger::new(),
                    seals: Some(seals),
                    tamper,
                })
            }
            Word::Got(word) if &word == wire::WITHDRAWN => Err(Error::PeerGone(format!(
                "not delivered: the producer withdrew it ({producer} gave up or was interrupted \
                 before it read the acknowledgement)"
            ))),
            Word::Got(_) => Err(Error::BadMessage {
                peer: Role::Producer,
                reason: "its decision is neither DONE nor WITHDRAWN".into(),
            }),
            Word::Eof => Err(Error::PeerDied {
                role: Role::Producer,
                pid: producer_pid,
                when: "before confirming the hand-off: the image was verified but not delivered"
                    .into(),
            }),
            Word::Timeout => Err(decided.timeout(format!(
                "{producer} did not confirm the acknowledgement (is it stopped?); its decision, \
                 not this one, says whether the image was delivered"
            ))),
        }
    }
}

/// What [`check_offer`] returns: the checked memfd, its length and CRC-32,
/// and the attempts to change it (with `--try-tamper`).
type CheckedOffer = (seal::Checked, u64, u32, Option<Vec<seal::Attempt>>);

/// Checks an offer and its descriptors; on success the memfd is mapped
/// read-only and, if `tamper`, the calls that would change it are tried
/// ([`seal::try_to_change`]). Every descriptor received is closed before
/// this returns, whatever it returns (the mapping keeps the memory).
fn check_offer(offer: wire::ReceivedOffer, max: u64, tamper: bool) -> Result<CheckedOffer> {
    let refuse = |reason: String| Error::BadMessage {
        peer: Role::Producer,
        reason,
    };
    let (len, crc32) = wire::parse_offer(&offer.bytes).map_err(refuse)?;
    let mut fds = offer.fds;
    if offer.truncated {
        return Err(refuse(format!(
            "it sent more than {} file descriptors with its offer, expected exactly one",
            wire::MAX_FDS
        )));
    }
    let fd = match fds.len() {
        0 => {
            return Err(refuse(
                "it sent no file descriptor with its offer (SCM_RIGHTS), expected exactly one"
                    .into(),
            ))
        }
        1 => fds.pop().expect("one descriptor"),
        n => {
            return Err(refuse(format!(
                "it sent {n} file descriptors with its offer, expected exactly one"
            )))
        }
    };
    if len == 0 {
        return Err(refuse("it offered an empty payload".into()));
    }
    if len > max {
        return Err(refuse(format!(
            "it offered {len} bytes, more than the {max} allowed (--max-alloc)"
        )));
    }
    // A second descriptor of the same memory for the attempts: `check`
    // closes the one it is given.
    let spare = if tamper {
        Some(
            fd.try_clone()
                .map_err(|e| Error::io("dup the received memfd", e))?,
        )
    } else {
        None
    };
    let checked = seal::check(fd, len)?;
    let attempts = spare.map(|spare| seal::try_to_change(spare.as_fd(), len, checked.map[0]));
    Ok((checked, len, crc32, attempts))
}

/// Tells each attempt to change the received memfd and the kernel's answer;
/// an attempt that was allowed is an error, since the seals promised it
/// could not be.
fn tell_attempts(story: &Story, attempts: &[seal::Attempt]) -> Result<()> {
    for a in attempts {
        let doing = match a.what {
            "shrink" => "shrink it",
            "grow" => "grow it",
            "write" => "write one byte into it",
            _ => "map it writable",
        };
        match &a.error {
            Some(error) => story.say(format_args!(
                "tried to {doing} ({}): refused with {} ({error})",
                a.call,
                a.errno.as_deref().unwrap_or("error")
            )),
            None => story.say(format_args!("tried to {doing} ({}): allowed", a.call)),
        }
    }
    match attempts.iter().find(|a| !a.refused) {
        Some(a) => Err(Error::BadMessage {
            peer: Role::Producer,
            reason: format!(
                "its memfd could still be changed ({} succeeded) although its seals say it \
                 cannot",
                a.call
            ),
        }),
        None => Ok(()),
    }
}
