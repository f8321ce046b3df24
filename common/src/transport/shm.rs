//! The shared-memory transport: one segment, one slot, one lock.
//!
//! # The protocol
//! Producer (P1):
//! 1. creates the segment under a temporary name and takes slot 0's mutex;
//! 2. publishes it (so a consumer that attaches now finds the lock held);
//! 3. copies the image into the payload, records length, CRC-32 and sequence
//!    number, sets the state to READY (Release store, futex wake);
//! 4. keeps the lock for `--hold` ms, then releases it;
//!    (if it gives up at any point before an acknowledgement, it marks the
//!    payload WITHDRAWN, so no consumer uses it);
//! 5. sleeps on the state word until the consumer sets ACKED or REJECTED,
//!    checking every 100 ms that the consumer that claimed it is alive;
//! 6. removes the segment.
//!
//! Consumer (P2):
//! 1. waits for the segment to appear, opens and validates it, and claims it
//!    (records its pid so the producer can watch it);
//! 2. waits for slot 0's mutex in whole-second slices, checking that the
//!    holder is alive between slices;
//! 3. holding the lock, checks the state is READY, reads length, CRC and
//!    sequence number, and hands the payload slice, in place, to the caller
//!    (which verifies the CRC and decodes);
//! 4. checks the sequence number did not move, keeps the lock for its own
//!    `--hold` ms, sets ACKED (or REJECTED), wakes the producer and releases
//!    the lock.
//!
//! No condition variable is shared between the processes: all sleeping is on
//! futexes with timeouts, so a process killed at any point cannot wedge its peer.

use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use crate::error::{Error, Result, Role};
use crate::layout::{state, Geometry, Kind};
use crate::ledger::{Copier, Ledger, Meter};
use crate::png;
use crate::segment::{state_name, Published, Segment, SlotGuard};
use crate::story::{gbps, ms, thousands};
use crate::transport::{Incoming, Outgoing, Payload, Received, Sent, Session, Transport};
use crate::wait::{self, Deadline};

/// The shared-memory transport.
#[derive(Clone, Copy, Debug, Default)]
pub struct Shm;

impl Transport for Shm {
    fn send(&self, session: &Session<'_>, out: &Outgoing<'_>) -> Result<Sent> {
        let story = session.story;
        let name = session.name;
        let len = match &out.payload {
            Payload::File(image) => image.len,
            Payload::Heap(bytes) => bytes.len() as u64,
        };
        let segment = Segment::create(name, Geometry::new(Kind::Transfer, len, 1))?;
        let mut guard = segment
            .try_lock(0)?
            .ok_or_else(|| Error::Usage("a fresh segment's lock was taken".into()))?;
        // Dropped before `guard` on every early return, so the payload is
        // marked withdrawn while the lock is still held.
        let mut withdraw = Withdraw {
            segment: &segment,
            armed: true,
        };
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

        let meter = Meter::start();
        let copy_started = SystemTime::now();
        let started = Instant::now();
        let payload = &mut guard.payload_mut()?[..len as usize];
        let mut ledger = Ledger::new();
        let how = match &out.payload {
            Payload::File(image) => {
                // The kernel copies the file's page-cache pages straight into
                // the segment: one copy, no heap buffer in between.
                image
                    .file
                    .read_exact_at(payload, 0)
                    .map_err(|e| Error::BadImage {
                        path: image.path.clone(),
                        reason: format!("reading it failed ({e}); did it change meanwhile?"),
                    })?;
                ledger.record("file -> segment (pread)", len, Copier::Kernel);
                "from the file straight into shared memory (the kernel's copy)"
            }
            Payload::Heap(bytes) => {
                payload.copy_from_slice(bytes);
                ledger.record("heap -> segment (memcpy)", len, Copier::User);
                "from the heap into shared memory (memcpy)"
            }
        };
        let copy = started.elapsed();
        let crc32 = png::crc32(payload);
        publish_payload(&guard, len, crc32);
        story.say(format_args!(
            "copied {} bytes {how} in {} ({}); crc32 {crc32:08x}",
            thousands(len),
            ms(copy),
            gbps(len, copy)
        ));

        hold(story, session.hold, "")?;
        drop(guard);
        story.say("released the lock; waiting for a consumer to read it");

        let deadline = Deadline::after(session.timeout);
        let slot = segment.slot(0);
        let outcome = {
            let _spin = story.waiting(format!("waiting for a consumer to read segment {name}"));
            wait::until(
                &slot.state,
                &deadline,
                |s| s == state::ACKED || s == state::REJECTED,
                || match segment.dead_consumer() {
                    Some(pid) => Err(Error::PeerDied {
                        role: Role::Consumer,
                        pid,
                        when: format!("before acknowledging segment {name}"),
                    }),
                    None => Ok(()),
                },
            )?
        };
        let wait = deadline.elapsed();
        let witness = meter.finish();
        let consumer_pid = segment.consumer_pid();
        if outcome.is_some() {
            withdraw.armed = false;
        }
        match outcome {
            Some(state::ACKED) => {
                story.say(format_args!(
                    "{} acknowledged after {}; removing the segment",
                    consumer_pid.map_or("the consumer".to_owned(), |pid| format!(
                        "consumer pid {pid}"
                    )),
                    ms(wait)
                ));
                Ok(Sent {
                    crc32,
                    copy_started,
                    copy,
                    wait,
                    consumer_pid,
                    ledger,
                    witness,
                })
            }
            Some(_) => Err(Error::rejected_by(consumer_pid)),
            None => Err(deadline.timeout(match consumer_pid {
                Some(pid) => format!("consumer pid {pid} did not acknowledge segment {name}"),
                None => format!("no consumer read segment {name}"),
            })),
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
                reason: format!("it holds a {}, not a transfer", kind.as_str()),
            });
        }
        segment.claim()?;
        let producer = segment.producer_pid();
        story.say(format_args!(
            "attached {} (payload capacity {} bytes) made by producer pid {producer}",
            name.shm_path().display(),
            thousands(segment.geometry().capacity),
        ));

        let guard = lock_ready(&segment, &deadline, story)?;
        let wait = deadline.elapsed();
        let slot = guard.slot();
        let seq = slot.seq.load(Ordering::Relaxed);
        let len = slot.len.load(Ordering::Relaxed);
        let crc32 = slot.crc32.load(Ordering::Relaxed);
        story.say(format_args!(
            "got the lock after {}; reading {} bytes in place (no copy)",
            ms(wait),
            thousands(len)
        ));
        let meter = Meter::start();
        let result = guard.payload(len).and_then(|bytes| {
            accept(Incoming {
                bytes,
                crc32,
                meter,
            })?;
            hold(story, session.hold, " before acknowledging")?;
            // Last: the bytes were not rewritten while we used them.
            let now = slot.seq.load(Ordering::Relaxed);
            if now != seq {
                return Err(Error::BadSegment {
                    name: name.to_string(),
                    reason: format!(
                        "the payload changed while being read (sequence {seq} -> {now})"
                    ),
                });
            }
            Ok(())
        });
        match result {
            Ok(()) => {
                guard.set_state(state::ACKED);
                drop(guard);
                story.say("acknowledged and released the lock");
                Ok(Received {
                    wait,
                    receive: Duration::ZERO,
                    producer_pid: Some(producer),
                    // Read in place: no copy of the payload at all.
                    ledger: Ledger::new(),
                })
            }
            Err(e) => {
                guard.set_state(state::REJECTED);
                Err(e)
            }
        }
    }
}

/// Keeps the lock for `--hold`, telling the story; returns early on a signal.
fn hold(story: &crate::story::Story, hold: Duration, before: &str) -> Result<()> {
    if hold.is_zero() {
        return Ok(());
    }
    story.say(format_args!(
        "holding exclusive access for {} ms{before} (--hold)",
        hold.as_millis()
    ));
    let _spin = story.waiting("holding the lock (--hold)");
    wait::sleep(hold)
}

/// Marks an unconsumed payload WITHDRAWN when the producer leaves early (an
/// error, a timeout, a signal), so a consumer that takes the lock afterwards
/// refuses it instead of using a payload whose producer gave up.
struct Withdraw<'a> {
    segment: &'a Segment,
    armed: bool,
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let word = &self.segment.slot(0).state;
        for from in [state::READY, state::EMPTY] {
            // AcqRel: pairs with the consumer's Acquire load of the state.
            if word
                .compare_exchange(from, state::WITHDRAWN, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                wait::wake_all(word);
                return;
            }
        }
    }
}

/// Records a payload's length, CRC and sequence number and marks it READY.
/// The Release store of the state publishes the payload bytes and fields
/// written before it to whoever loads the state with Acquire.
fn publish_payload(guard: &SlotGuard<'_>, len: u64, crc32: u32) {
    let slot = guard.slot();
    slot.len.store(len, Ordering::Relaxed);
    slot.crc32.store(crc32, Ordering::Relaxed);
    slot.seq.fetch_add(1, Ordering::Relaxed);
    guard.set_state(state::READY);
}

/// Takes slot 0's lock once it holds a READY payload.
fn lock_ready<'s>(
    segment: &'s Segment,
    deadline: &Deadline,
    story: &crate::story::Story,
) -> Result<SlotGuard<'s>> {
    let name = segment.name();
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
        match guard.slot().state.load(Ordering::Acquire) {
            state::READY => return Ok(guard),
            state::EMPTY => {}
            state::WITHDRAWN => {
                return Err(Error::PeerGone(format!(
                    "producer pid {} withdrew segment {name} before handing it over \
                     (it was interrupted or gave up)",
                    segment.producer_pid()
                )))
            }
            other => {
                return Err(Error::BadSegment {
                    name: name.to_string(),
                    reason: format!("its payload was already {}", state_name(other)),
                })
            }
        }
        // Not written yet: let the producer in, and sleep until the state moves.
        drop(guard);
        let moved = wait::until(
            &segment.slot(0).state,
            deadline,
            |s| s != state::EMPTY,
            || {
                if segment.owner_alive() {
                    Ok(())
                } else {
                    Err(Error::PeerDied {
                        role: Role::Producer,
                        pid: segment.producer_pid(),
                        when: format!("before writing a payload into segment {name}"),
                    })
                }
            },
        )?;
        if moved.is_none() {
            return Err(deadline.timeout(format!("no payload was written into segment {name}")));
        }
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
