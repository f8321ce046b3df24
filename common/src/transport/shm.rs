//! The shared-memory transport: one segment, one slot, one robust lock, and the hand-off's state machine.
//!
//! # The protocol
//! Every change of the slot's state word is a [`Step`] of the hand-off's
//! state machine (`handoff`): a compare-and-swap from the state it expects,
//! so when the two sides race, one wins and both report its outcome.
//!
//! Producer (P1):
//! 1. creates the segment unnamed (or under a temporary name) and takes slot
//!    0's mutex;
//! 2. publishes it (so a consumer that attaches now finds the lock held);
//! 3. copies the image into the payload (the sequence number is odd while it
//!    writes), records length and CRC-32, checks that the file was not
//!    truncated meanwhile ([`Segment::check_intact`]), and applies Publish:
//!    Empty → Ready;
//! 4. keeps the lock for `--hold` ms, then releases it;
//! 5. sleeps on the state word until a consumer applies Take (Ready →
//!    Taken), checking every 100 ms that the consumer that claimed it lives;
//! 6. then waits for the lock, which that consumer holds until it applies Ack
//!    or Reject; if the consumer dies holding it, the robust mutex hands it
//!    over at once and the producer applies Withdraw;
//! 7. at its deadline, on a signal or an error, applies Withdraw from
//!    wherever the word is (Empty, Ready, Taken): if that loses to an Ack,
//!    the payload was delivered after all, and the producer says so;
//! 8. removes the segment.
//!
//! Consumer (P2):
//! 1. waits for the segment to appear, opens and validates it, and claims it
//!    (records its identity so the producer can watch it, and releases the
//!    claim if it leaves before the hand-off has an outcome, unless killed);
//! 2. waits for slot 0's robust mutex, in slices that check for signals,
//!    until its deadline on CLOCK_MONOTONIC;
//! 3. holding the lock, reads the state: Ready → applies Take; Empty after a
//!    dead holder → the producer died writing, so it applies Withdraw and
//!    discards the half-written payload; Ready or Taken after a dead holder
//!    → the payload was complete (a dead producer published it, or a dead
//!    consumer had taken it), so it is used; Withdrawn → refused;
//! 4. verifies the CRC-32 and decodes the payload in place, checks that the
//!    sequence number did not move, keeps the lock for its own `--hold` ms,
//!    checks that the file was not truncated meanwhile (a truncation turns
//!    the rest of the mapping into zero pages instead of a SIGBUS, and is
//!    the error whatever the decode made of those zeros), applies Ack (or
//!    Reject) and releases the lock. It keeps its claim when its step won,
//!    so the producer names it in its report; an Ack that loses to the
//!    producer's Withdraw is reported as not delivered, and the claim
//!    released.
//!
//! No condition variable is shared between the processes: all sleeping is on
//! futexes and a robust mutex, with deadlines, so a process killed at any
//! point cannot wedge its peer. The `failpoint` names mark the steps.

use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::error::{Error, Result, Role};
use crate::failpoint;
use crate::handoff::{self, Found, Outcome, State, Step};
use crate::layout::{Geometry, Kind};
use crate::ledger::{Ledger, Meter};
use crate::png;
use crate::segment::{Published, Segment, SlotGuard};
use crate::story::{gbps, ms, thousands, Story};
use crate::transport::fill::{fill, Destination};
use crate::transport::{self, Incoming, Outgoing, Received, Sent, Session, Transport};
use crate::wait::{self, Deadline};

/// The shared-memory transport.
#[derive(Clone, Copy, Debug, Default)]
pub struct Shm;

impl Transport for Shm {
    fn send(&self, session: &Session<'_>, out: &Outgoing<'_>) -> Result<Sent> {
        let story = session.story;
        let name = session.name;
        let len = out.payload.size();
        let segment = Segment::create(name, Geometry::new(Kind::Transfer, len, 1))?;
        let mut guard = segment
            .try_lock(0)?
            .ok_or_else(|| Error::Usage("a fresh segment's lock was taken".into()))?;
        failpoint::hit("producer:created");
        // Dropped before `guard` on every early return, so the payload is
        // withdrawn while the lock is still held.
        let _withdraw = Withdraw(&segment);
        if let Published::ReplacedStale { pid } = segment.publish()? {
            story.say(format_args!(
                "replaced a stale segment {name} left by {}",
                pid.map_or("a dead process".to_owned(), |pid| format!("dead pid {pid}"))
            ));
        }
        story.say(format_args!(
            "created {} ({} header + {}-byte payload) and took its lock",
            name.shm_path().display(),
            "4 KiB",
            thousands(len)
        ));
        failpoint::hit("producer:published");

        let meter = Meter::start();
        let copy_started = SystemTime::now();
        let started = Instant::now();
        let slot = guard.slot();
        // The sequence lock: odd while the payload is being written. The
        // Release fence keeps the odd value ahead of the payload's bytes for
        // a lock-free reader that checks it (see docs/segment-format.md).
        let seq = slot.seq.load(Ordering::Relaxed);
        slot.seq.store(seq | 1, Ordering::Relaxed);
        fence(Ordering::Release);
        failpoint::hit("producer:writing");
        let payload = &mut guard.payload_mut()?[..len as usize];
        let mut ledger = Ledger::new();
        let how = fill(payload, out, len, &mut ledger, Destination::Segment)?;
        let copy = started.elapsed();
        let crc32 = png::crc32(payload);
        // A truncation during the copy sent the rest of it to private zero
        // pages: the consumer would never see it. `_withdraw` withdraws.
        segment.check_intact()?;
        let slot = guard.slot();
        slot.len.store(len, Ordering::Relaxed);
        slot.crc32.store(crc32, Ordering::Relaxed);
        // Even again, and two more than before: the payload is complete.
        // Release: a reader that loads this value with Acquire sees the bytes.
        slot.seq.store((seq | 1) + 1, Ordering::Release);
        // Publish's Release publishes the payload, its length and CRC to the
        // consumer that reads Ready with Acquire. Nobody else leaves Empty
        // while this process lives and holds the lock.
        handoff::apply(&slot.state, Step::Publish).map_err(|found| bad_state(&segment, found))?;
        story.say(format_args!(
            "copied {} bytes {how} in {} ({}); crc32 {crc32:08x}",
            thousands(len),
            ms(copy),
            gbps(len, copy)
        ));
        failpoint::hit("producer:ready");

        transport::hold(story, session.hold, "holding exclusive access", "")?;
        drop(guard);
        story.say("released the lock; waiting for a consumer to read it");
        failpoint::hit("producer:released");

        let deadline = Deadline::after(session.timeout);
        let outcome = {
            let _spin = story.waiting(format!("waiting for a consumer to read segment {name}"));
            await_outcome(&segment, &deadline, story)
        };
        let wait = deadline.elapsed();
        let witness = meter.finish();
        let consumer_pid = segment.consumer_pid();
        // A file truncated below its header page while we waited zeroed our
        // view of the state word too: whatever the wait made of it, the
        // truncation is the cause.
        segment.check_intact()?;
        match outcome? {
            Outcome::Delivered => Ok(Sent {
                crc32,
                copy_started,
                copy,
                wait,
                consumer_pid,
                ledger,
                witness,
            }
            .acknowledged(story, "; removing the segment")),
            Outcome::Rejected => Err(Error::rejected_by(consumer_pid)),
            // Only this process withdraws while it lives, and it does so
            // only with an error of its own.
            Outcome::Withdrawn => Err(bad_state(&segment, Found::State(State::Withdrawn))),
        }
    }

    fn receive(
        &self,
        session: &Session<'_>,
        accept: &mut dyn FnMut(Incoming<'_>) -> Result<()>,
    ) -> Result<Received> {
        let story = session.story;
        let name = session.name;
        let deadline = Deadline::after(session.timeout);
        let mut stale = None;
        let segment = {
            let _spin = story.waiting(format!("waiting for a producer to publish segment {name}"));
            Segment::wait_open(name, &deadline, |pid| {
                if stale.is_none() {
                    story.say(format_args!(
                        "segment {name} is stale (its producer pid {pid} is dead); \
                         waiting for a live producer to replace it"
                    ));
                }
                stale = Some(pid);
            })?
        };
        let segment = segment.ok_or_else(|| {
            deadline.timeout(match stale {
                Some(pid) => format!(
                    "segment {name} is stale (its producer pid {pid} is dead) and no live \
                     producer replaced it"
                ),
                None => format!("no producer published segment {name}"),
            })
        })?;
        let kind = segment.geometry().kind;
        if kind != Kind::Transfer {
            return Err(Error::BadSegment {
                name: name.to_string(),
                reason: format!("it holds {}, not a transfer", kind.with_article()),
            });
        }
        failpoint::hit("consumer:opened");
        let claim = segment.claim()?;
        failpoint::hit("consumer:claimed");
        let producer = segment.producer_pid();
        story.say(format_args!(
            "attached {} (payload capacity {} bytes) made by producer pid {producer}",
            name.shm_path().display(),
            thousands(segment.geometry().capacity),
        ));

        let (guard, producer_died) = take(&segment, &deadline, story)?;
        failpoint::hit("consumer:taken");
        let wait = deadline.elapsed();
        let slot = guard.slot();
        // Acquire: pairs with the producer's Release store of the even
        // value, after its last write of the payload.
        let seq = slot.seq.load(Ordering::Acquire);
        let len = slot.len.load(Ordering::Relaxed);
        let crc32 = slot.crc32.load(Ordering::Relaxed);
        story.say(format_args!(
            "got the lock after {}; reading {} bytes in place (no copy)",
            ms(wait),
            thousands(len)
        ));
        let meter = Meter::start();
        let result = (|| {
            if seq % 2 == 1 {
                return Err(Error::BadSegment {
                    name: name.to_string(),
                    reason: format!("its sequence number {seq} is odd: a write never finished"),
                });
            }
            let bytes = guard.payload(len)?;
            accept(Incoming {
                bytes,
                crc32,
                meter,
            })?;
            transport::hold(
                story,
                session.hold,
                "holding exclusive access",
                " before acknowledging",
            )?;
            // Last: the bytes were not rewritten while we used them.
            let now = slot.seq.load(Ordering::Acquire);
            if now != seq {
                return Err(Error::BadSegment {
                    name: name.to_string(),
                    reason: format!(
                        "the payload changed while being read (sequence {seq} -> {now})"
                    ),
                });
            }
            Ok(())
        })();
        // A truncation while the payload was read turned the rest of it into
        // zeros, which usually makes the CRC or the decode fail: the
        // truncation is the real cause, so it replaces whatever `accept`
        // said, and the payload is rejected.
        let intact = segment.check_intact();
        let truncated = intact.is_err();
        let result = intact.and(result);
        let step = if result.is_ok() {
            Step::Ack
        } else {
            Step::Reject
        };
        // Asked before the step: once the consumer acknowledges, a live
        // producer may finish and exit at once, and would look dead.
        let orphaned = producer_died || !segment.owner_alive();
        let resolved = handoff::apply(&slot.state, step);
        failpoint::hit("consumer:resolved");
        drop(guard);
        if resolved.is_ok() {
            // This consumer ended the hand-off: its claim names it to the
            // producer, which reads it after taking the lock back.
            claim.keep();
        } else {
            drop(claim);
        }
        if orphaned && segment.remove_stale(STALE_PATIENCE) {
            story.say(format_args!(
                "removed segment {name}, left behind by its dead producer pid {producer}"
            ));
        }
        match (result, resolved) {
            // The header page may be among the zeroed pages, so the state
            // word may have said anything: the truncation is the message.
            (Err(e), _) if truncated => Err(e),
            (Ok(()), Ok(_)) => {
                story.say(if orphaned {
                    "acknowledged (to nobody: the producer is dead) and released the lock"
                } else {
                    "acknowledged and released the lock"
                });
                Ok(Received {
                    wait,
                    receive: Duration::ZERO,
                    producer_pid: Some(producer),
                    // Read in place: no copy of the payload at all.
                    ledger: Ledger::new(),
                    seals: None,
                    tamper: None,
                })
            }
            (Err(e), Ok(_)) => Err(e),
            (_, Err(Found::State(State::Withdrawn))) => Err(Error::PeerGone(format!(
                "producer pid {producer} withdrew segment {name} before the acknowledgement \
                 (its --timeout passed, or it was interrupted): the image was not delivered"
            ))),
            (_, Err(found)) => Err(bad_state(&segment, found)),
        }
    }
}

/// The producer's wait after releasing the lock, until the hand-off has an
/// outcome: for a consumer to take the payload, then for that consumer to
/// release the lock. At the deadline, on a signal or when the claimed
/// consumer dies, it withdraws the payload, unless a consumer's step won.
fn await_outcome(segment: &Segment, deadline: &Deadline, story: &Story) -> Result<Outcome> {
    let name = segment.name();
    let word = &segment.slot(0).state;
    let consumer_label = || {
        segment
            .consumer_pid()
            .map_or("the consumer".to_owned(), |pid| {
                format!("consumer pid {pid}")
            })
    };
    loop {
        // Until a consumer takes it (or someone ends the hand-off).
        let moved = wait::until(
            word,
            deadline,
            |s| s != State::Ready as u32,
            || match segment.dead_consumer() {
                Some(pid) => Err(Error::PeerDied {
                    role: Role::Consumer,
                    pid: Some(pid),
                    when: format!("before acknowledging segment {name}"),
                }),
                None => Ok(()),
            },
        );
        let why = match moved {
            Ok(Some(_)) => None,
            Ok(None) => Some(deadline.timeout(match segment.consumer_pid() {
                Some(pid) => format!("consumer pid {pid} did not acknowledge segment {name}"),
                None => format!("no consumer read segment {name}"),
            })),
            Err(e) => Some(e),
        };
        if let Some(why) = why {
            match withdraw(segment) {
                Ok(_) => return Err(why),
                Err(found) => {
                    if let Some(outcome) = final_outcome(segment, found)? {
                        return Ok(outcome);
                    }
                    continue; // Taken just now: wait for its taker below.
                }
            }
        }
        match handoff::load(word) {
            Ok(State::Taken) => {}
            Ok(state) if state.is_final() => return Ok(state.outcome().expect("final")),
            other => return Err(bad_state(segment, found(other))),
        }
        // A consumer took it and holds the lock until it acknowledges.
        let locked = segment.lock(0, deadline, |_| {});
        let guard = match locked {
            Ok(Some(guard)) => guard,
            Ok(None) | Err(_) => {
                let why = match locked {
                    Err(e) => e,
                    _ => deadline.timeout(format!(
                        "{} took segment {name} but did not acknowledge it",
                        consumer_label()
                    )),
                };
                return match withdraw(segment) {
                    Ok(_) => Err(why),
                    Err(found) => {
                        final_outcome(segment, found)?.ok_or_else(|| bad_state(segment, found))
                    }
                };
            }
        };
        failpoint::hit("producer:locked");
        match handoff::load(word) {
            Ok(state) if state.is_final() => return Ok(state.outcome().expect("final")),
            Ok(State::Taken) if guard.recovered().is_some() => {
                let dead = guard.recovered().and_then(|r| r.holder).map(|id| id.pid);
                story.say(format_args!(
                    "the consumer died holding the lock while reading; withdrawing segment {name}"
                ));
                return match withdraw(segment) {
                    Ok(_) => Err(Error::PeerDied {
                        role: Role::Consumer,
                        pid: dead.or(segment.consumer_pid()),
                        when: format!("while reading segment {name}"),
                    }),
                    Err(found) => {
                        final_outcome(segment, found)?.ok_or_else(|| bad_state(segment, found))
                    }
                };
            }
            other => {
                let _ = withdraw(segment);
                return Err(bad_state(segment, found(other)));
            }
        }
    }
}

/// Applies Withdraw to slot 0's word.
fn withdraw(segment: &Segment) -> std::result::Result<State, Found> {
    handoff::apply(&segment.slot(0).state, Step::Withdraw)
}

/// The outcome a failed Withdraw found: `Some` for a final state, `None`
/// for Taken (a consumer took it just now), an error for anything else.
fn final_outcome(segment: &Segment, found: Found) -> Result<Option<Outcome>> {
    match found {
        Found::State(State::Taken) => Ok(None),
        Found::State(state) if state.is_final() => Ok(state.outcome()),
        other => Err(bad_state(segment, other)),
    }
}

/// How long a consumer waits for a producer it saw die to release its flock,
/// so that it can remove the file the producer left.
const STALE_PATIENCE: Duration = Duration::from_secs(1);

/// Takes slot 0's lock once it holds a payload this consumer may use, and
/// applies Take (or takes over a dead consumer's Taken). Also says whether
/// the lock came from the producer, dead.
fn take<'s>(
    segment: &'s Segment,
    deadline: &Deadline,
    story: &Story,
) -> Result<(SlotGuard<'s>, bool)> {
    let name = segment.name();
    let producer = segment.producer_pid();
    loop {
        let guard = {
            let _spin = story.waiting(format!("waiting for the lock on segment {name}"));
            segment.lock(0, deadline, |holder| {
                story.say(format_args!(
                    "waiting for the lock, held by {}",
                    holder_label(segment, holder)
                ));
            })?
        };
        let Some(guard) = guard else {
            return Err(deadline.timeout(format!(
                "the lock on segment {name} stayed held by {}",
                holder_label(segment, segment.holder_pid(0))
            )));
        };
        failpoint::hit("consumer:locked");
        let dead = guard.recovered().map(|r| {
            r.holder.map_or(
                "its holder (which had not recorded its pid)".to_owned(),
                |id| holder_label(segment, Some(id.pid)),
            )
        });
        // A dead holder over Ready is the producer (during its --hold), or
        // a consumer that died before taking the payload.
        let producer_died = guard.recovered().is_some_and(|r| match r.holder {
            Some(id) => id.pid == producer,
            None => !segment.owner_alive(),
        });
        let word = &guard.slot().state;
        match handoff::load(word) {
            Ok(State::Ready) => {
                if let Some(dead) = &dead {
                    story.say(if producer_died {
                        format!(
                            "{dead} died holding the lock after publishing a complete \
                             payload; using it"
                        )
                    } else {
                        format!("{dead} died holding the lock before taking the payload")
                    });
                }
                match handoff::apply(word, Step::Take) {
                    Ok(_) => return Ok((guard, producer_died)),
                    Err(found) => return Err(refusal(segment, found)),
                }
            }
            Ok(State::Taken) if dead.is_some() => {
                story.say(format_args!(
                    "{} died while reading the payload; taking over",
                    dead.unwrap_or_default()
                ));
                return Ok((guard, false));
            }
            Ok(State::Empty) if dead.is_some() => {
                // Only the producer holds the lock while the word is Empty:
                // it died writing. Discard the half-written payload.
                let _ = handoff::apply(word, Step::Withdraw);
                drop(guard);
                if segment.remove_stale(STALE_PATIENCE) {
                    story.say(format_args!(
                        "removed segment {name}, left behind by its dead producer pid {producer}"
                    ));
                }
                return Err(Error::PeerDied {
                    role: Role::Producer,
                    pid: Some(producer),
                    when: format!(
                        "while writing its payload into segment {name}; the half-written \
                         payload was discarded"
                    ),
                });
            }
            Ok(State::Empty) => {
                // Not written yet: let the producer in, and sleep until the
                // state moves (the producer normally holds the lock until
                // the payload is Ready, so this is rare).
                drop(guard);
                let moved = wait::until(
                    word_of(segment),
                    deadline,
                    |s| s != State::Empty as u32,
                    || {
                        if segment.owner_alive() {
                            Ok(())
                        } else {
                            Err(Error::PeerDied {
                                role: Role::Producer,
                                pid: Some(producer),
                                when: format!("before writing a payload into segment {name}"),
                            })
                        }
                    },
                )?;
                if moved.is_none() {
                    return Err(
                        deadline.timeout(format!("no payload was written into segment {name}"))
                    );
                }
            }
            other => return Err(refusal(segment, found(other))),
        }
    }
}

/// A state read as what a step found there.
fn found(read: std::result::Result<State, Found>) -> Found {
    match read {
        Ok(state) => Found::State(state),
        Err(found) => found,
    }
}

fn word_of(segment: &Segment) -> &std::sync::atomic::AtomicU32 {
    &segment.slot(0).state
}

/// Why a consumer refuses a payload in `found`'s state.
fn refusal(segment: &Segment, found: Found) -> Error {
    let name = segment.name();
    match found {
        Found::State(State::Withdrawn) => Error::PeerGone(format!(
            "producer pid {} withdrew segment {name} before handing it over \
             (it was interrupted or gave up)",
            segment.producer_pid()
        )),
        other => bad_state(segment, other),
    }
}

/// A state word that the protocol does not allow at this point.
fn bad_state(segment: &Segment, found: Found) -> Error {
    Error::BadSegment {
        name: segment.name().to_string(),
        reason: match found {
            Found::State(state) => format!("its payload was already {}", state.as_str()),
            Found::Invalid(raw) => format!("its state word holds {raw}, which is no state"),
        },
    }
}

/// Withdraws the payload when the producer leaves before it released the
/// lock (an error, a signal): a consumer that takes the lock afterwards
/// refuses it. A Withdraw that finds a final state changes nothing.
struct Withdraw<'a>(&'a Segment);

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        let _ = withdraw(self.0);
    }
}

/// Who holds the lock, for messages; a holder not recorded yet can only be
/// the producer, which locks before publishing.
fn holder_label(segment: &Segment, pid: Option<u32>) -> String {
    match pid {
        Some(pid) if pid != segment.producer_pid() => format!("pid {pid}"),
        _ => format!("producer pid {}", segment.producer_pid()),
    }
}
